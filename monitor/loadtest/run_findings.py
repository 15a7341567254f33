"""The runner's own findings about a finished run (beside the classifier's and the CPU
fallback): loadtest-loaded-differs, loadtest-throughput-drop, loadtest-failed; and the helpers
every runner finding is built with."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any

from monitor.loadtest.child_output import ChildRun
from monitor.loadtest.exits import IS_WINDOWS
from monitor.loadtest.gpu_sampler import SampleSummary
from monitor.model import (
    Finding,
    GpuSample,
    Inventory,
    LibraryResolution,
    Link,
    LoadTestResult,
    Severity,
)
from monitor.record import replace

THROUGHPUT_DROP = 0.30


def python_finding(
    id: str,
    severity: Severity,
    link: Link,
    result: LoadTestResult,
    title: str,
    detail: str = "",
    evidence: Iterable[tuple[str, str]] = (),
    fix: Iterable[str] = (),
) -> Finding:
    """A finding about the watched python (its subject and first evidence)."""
    return Finding(
        id=id,
        severity=severity,
        link=link,
        title=title,
        detail=detail,
        evidence=(("python", result.python), *evidence),
        fix=tuple(fix),
        subject=result.python,
    )


def host_os(inventory: Inventory | None) -> str:
    """The OS the findings speak of: the inventory's, else this host's."""
    if inventory is not None and inventory.host.os:
        return inventory.host.os
    if IS_WINDOWS:
        return "windows"
    return "darwin" if sys.platform == "darwin" else "linux"


def _same_file(a: str, b: str) -> bool:
    try:
        sa, sb = os.stat(a), os.stat(b)
        return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)
    except OSError:
        return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))


def _loaded_for(resolution: LibraryResolution, loaded: Iterable[str]) -> str | None:
    wanted = resolution.wanted
    if not wanted:
        return None
    for path in loaded:
        base = os.path.basename(path)
        if IS_WINDOWS or wanted.lower().endswith(".dll"):
            if base.lower() == wanted.lower():
                return path
        elif base == wanted or base.startswith(wanted + "."):
            return path
    return None


def loaded_differs(result: LoadTestResult, inventory: Inventory | None) -> list[Finding]:
    """A library the child really loaded is not the file the inventory said would load."""
    if inventory is None or not result.loaded_libraries:
        return []
    findings = []
    for resolution in inventory.libraries:
        if resolution.python not in ("", result.python):
            continue
        loaded = _loaded_for(resolution, result.loaded_libraries)
        if loaded is None:
            continue
        predicted = resolution.resolved.path if resolution.resolved else None
        if predicted is not None and _same_file(predicted, loaded):
            continue
        title = (
            f"{resolution.wanted} loaded from {loaded}, not from {predicted}"
            if predicted
            else f"{resolution.wanted} loaded from {loaded}, where none was expected"
        )
        detail = (
            f"The load test's TensorFlow loaded {loaded} for {resolution.role}, but the "
            f"inventory predicted "
            + (
                f"{predicted} (via {resolution.resolved.via})"
                if resolution.resolved and predicted
                else "that no file would be found"
            )
            + ". What is installed is not what runs: an LD_LIBRARY_PATH / PATH entry, a "
            "preloaded library or a second copy wins at run time."
        )
        evidence = [
            ("role", resolution.role),
            ("wanted", resolution.wanted),
            ("predicted", predicted or "(none)"),
            ("loaded", loaded),
        ]
        evidence += [(f"candidate_{i + 1}", c.path) for i, c in enumerate(resolution.candidates)]
        finding = python_finding(
            "loadtest-loaded-differs",
            Severity.WARNING,
            Link.LIBRARIES,
            result,
            title,
            detail,
            evidence,
            fix=(
                "Make the intended copy the one that loads: remove the other copy from "
                "the search path (LD_LIBRARY_PATH / PATH) or uninstall it, then run the "
                "load test again.",
            ),
        )
        subject = f"{result.python} {resolution.wanted}"
        findings.append(replace(finding, subject=subject))
    return findings


def throughput_drop(
    result: LoadTestResult, previous: LoadTestResult | None, summary: SampleSummary
) -> list[Finding]:
    """GFLOP/s fell by more than THROUGHPUT_DROP since a good run on the same GPU."""
    if (
        previous is None
        or not previous.ok
        or not result.ok
        or not previous.gflops
        or result.gflops is None
        or not result.gpu_uuid
        or previous.gpu_uuid != result.gpu_uuid
        or (previous.matmul_size and previous.matmul_size != result.matmul_size)
    ):
        return []
    if result.gflops >= previous.gflops * (1 - THROUGHPUT_DROP):
        return []
    drop = 1 - result.gflops / previous.gflops
    peak: GpuSample | None = summary.peak
    evidence = [
        ("gpu", f"{result.device} ({result.gpu_uuid})"),
        ("gflops_now", f"{result.gflops:.1f}"),
        ("gflops_before", f"{previous.gflops:.1f}"),
        ("before_at", previous.started_at),
    ]
    clocks = ""
    if peak is not None:
        if peak.sm_clock_mhz is not None:
            evidence.append(("sm_clock_mhz", str(peak.sm_clock_mhz)))
        if peak.max_sm_clock_mhz is not None:
            evidence.append(("max_sm_clock_mhz", str(peak.max_sm_clock_mhz)))
        evidence.append(("throttle_reasons", ", ".join(peak.throttle_reasons) or "none"))
        if peak.sm_clock_mhz and peak.max_sm_clock_mhz:
            clocks = f" The SM clock was {peak.sm_clock_mhz} of {peak.max_sm_clock_mhz} MHz"
            clocks += (
                f", held back by: {', '.join(peak.throttle_reasons)}."
                if peak.throttle_reasons
                else "."
            )
    if summary.other_processes:
        others = ", ".join(
            f"{pid} {name or '?'} ({mib} MiB)" for pid, name, mib in summary.other_processes
        )
        evidence.append(("other_gpu_processes", others))
    return [
        python_finding(
            "loadtest-throughput-drop",
            Severity.WARNING,
            Link.GPU,
            result,
            f"GPU matmul throughput fell {drop:.0%} since the last good run",
            f"{result.gflops:.0f} GFLOP/s now against {previous.gflops:.0f} GFLOP/s on "
            f"{previous.started_at or 'the previous run'}, same GPU.{clocks}"
            + (" Other processes were using the GPU." if summary.other_processes else ""),
            evidence,
            fix=(
                "Check cooling and power (`nvidia-smi -q -d PERFORMANCE,TEMPERATURE,POWER`), "
                "and what else runs on the GPU (`nvidia-smi`).",
            ),
        )
    ]


def failed_finding(
    result: LoadTestResult, results: dict[str, dict[str, Any]], run: ChildRun, timeout: float
) -> Finding:
    """The fallback when the run failed and no other finding says why (an error always does)."""
    step = result.last_step or "start"
    record = results.get(step, {})
    tail = [line for line in run.stderr.strip().splitlines() if line.strip()][-3:]
    if run.start_error is not None:
        title = f"The load test could not start {result.python}"
        detail = run.start_error
    elif result.outcome == "timeout":
        title = f"The load test timed out after {timeout:.0f} s in step {step}"
        detail = f"{result.python} was killed while running step {step!r}."
    elif result.outcome == "crashed":
        title = f"The load test crashed ({result.signal or 'killed'}) in step {step}"
        detail = f"{result.python} died of {result.signal or 'a signal'} in step {step!r}."
    else:
        failed = next((r for r in results.values() if not r.get("ok")), None)
        where = str(failed.get("step")) if failed else step
        title = f"The load test failed in step {where}"
        detail = str((failed or record).get("detail") or f"exit code {result.exit_code}")
    if tail:
        detail += " Last stderr lines: " + " | ".join(t.strip()[:300] for t in tail)
    return python_finding(
        "loadtest-failed",
        Severity.ERROR,
        Link.TENSORFLOW,
        result,
        title,
        detail,
        (
            ("last_step", step),
            ("exit_code", str(result.exit_code)),
            ("signal", result.signal or ""),
        ),
        fix=(
            "Run the load test by hand to see everything it prints: "
            f"`{result.python} -B <monitor>/loadtest/child.py`.",
        ),
    )
