"""Render a Report: human text grouped by link of the chain, and versioned JSON.

The JSON layout is the public contract of `check --json` (README, "JSON output"); bump
JSON_SCHEMA when a field changes meaning or goes away (adding fields does not bump it).
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable

from monitor.compat import build_version
from monitor.model import (
    Finding,
    Inventory,
    Link,
    LoadTestResult,
    Report,
    Severity,
    Verdict,
    to_jsonable,
)
from monitor.text import plural

JSON_SCHEMA = 1

EXIT_CODES = {Verdict.HEALTHY: 0, Verdict.WARNINGS: 1, Verdict.BROKEN: 2}
EXIT_CHECK_FAILED = 3

LINK_TITLES = {
    Link.DRIVER: "Driver",
    Link.GPU: "GPU",
    Link.CUDA: "CUDA toolkit",
    Link.CUDNN: "cuDNN",
    Link.LIBRARIES: "Libraries",
    Link.TENSORFLOW: "TensorFlow",
    Link.PYTHON: "Python",
    Link.ENVIRONMENT: "Environment",
    Link.RUNTIME: "VC++ runtime",
}

WRAP = 100
_MARKS = {Severity.ERROR: "✗", Severity.WARNING: "!", Severity.INFO: "i"}
_ASCII_MARKS = {Severity.ERROR: "X", Severity.WARNING: "!", Severity.INFO: "i"}
_COLOURS = {Severity.ERROR: "31", Severity.WARNING: "33", Severity.INFO: "36"}
_VERDICT_COLOURS = {Verdict.HEALTHY: "32", Verdict.WARNINGS: "33", Verdict.BROKEN: "31"}


class _Unknown(str):
    """A link summary for a state that could not be judged (no driver, no cuDNN found): shown
    with a neutral "-", never a green tick. A type, not a text prefix, so that no summary's
    own text (a "?" version) can be taken for the marker."""


def exit_code(report: Report) -> int:
    return EXIT_CODES[report.verdict]


def headline(report: Report) -> str:
    """The one-line verdict, e.g. "BROKEN: 2 errors, 1 warning. No NVIDIA driver found"."""
    counts = {s: sum(1 for f in report.findings if f.severity is s) for s in Severity}
    parts = [
        _plural(counts[Severity.ERROR], "error"),
        _plural(counts[Severity.WARNING], "warning"),
    ]
    tally = ", ".join(p for p in parts if p) or "no problems found"
    worst = next((f for f in report.findings if f.severity is not Severity.INFO), None)
    label = {
        Verdict.HEALTHY: "HEALTHY",
        Verdict.WARNINGS: "WARNINGS",
        Verdict.BROKEN: "BROKEN",
    }[report.verdict]
    if worst is None:
        return f"{label}: {tally}. The TensorFlow GPU stack looks right."
    return f"{label}: {tally}. {worst.title}"


def _plural(count: int, word: str) -> str:
    """Like text.plural, but nothing for none ("2 errors, 1 warning" leaves out the zeros)."""
    return plural(count, word) if count else ""


# --------------------------------------------------------------------------- text


def render_text(report: Report, colour: bool = False, unicode: bool = True) -> str:
    paint = _painter(colour)
    marks = _MARKS if unicode else _ASCII_MARKS
    inv = report.inventory
    lines = [
        paint(_VERDICT_COLOURS[report.verdict], headline(report)),
        f"Checked {inv.host.hostname or 'this machine'} at {report.checked_at or inv.collected_at}"
        f" in {report.duration_s:.2f} s (tf-stack-monitor {report.tool_version}).",
        "",
    ]
    by_link: dict[Link, list[Finding]] = {}
    for finding in report.findings:
        by_link.setdefault(finding.link, []).append(finding)
    width = max(len(t) for t in LINK_TITLES.values())
    for link in Link:
        summary = SUMMARIES[link](inv)
        findings = by_link.get(link, [])
        if summary is None and not findings:
            continue
        worst = min((f.severity for f in findings), key=lambda s: -s.rank, default=None)
        unknown = isinstance(summary, _Unknown)
        if worst:
            mark = paint(_COLOURS[worst], marks[worst])
        elif unknown:
            mark = "-"
        else:
            mark = paint("32", "✓" if unicode else "+")
        lines.append(f"{mark} {LINK_TITLES[link]:<{width}}  {summary or ''}".rstrip())
        for finding in findings:
            lines.extend(_finding_lines(finding, paint, marks))
    for result in report.load_tests:
        while lines and not lines[-1]:
            lines.pop()
        lines.extend(_load_test_lines(result, paint, unicode))
    for error in inv.probe_errors:
        lines.append(paint("31", f"Internal: {error}"))
    while lines and not lines[-1]:
        lines.pop()
    if report.findings:
        lines += [
            "",
            "Run with --json for every fact, or --save-snapshot FILE for a support bundle.",
        ]
    return "\n".join(lines) + "\n"


def _finding_lines(finding: Finding, paint: Callable[[str, str], str], marks) -> list[str]:
    colour = _COLOURS[finding.severity]
    head = f"    {paint(colour, marks[finding.severity])} {finding.title}  [{finding.id}]"
    lines = [head]
    for text in finding.detail.splitlines():
        lines.extend(
            textwrap.wrap(
                text,
                WRAP,
                initial_indent=" " * 8,
                subsequent_indent=" " * 8,
                break_on_hyphens=False,
                break_long_words=False,
            )
            or [""]
        )
    if finding.evidence:
        lines.append("        Evidence:")
        lines.extend(f"          {name}: {value}" for name, value in finding.evidence)
    if finding.fix:
        lines.append("        Fix:")
        for number, step in enumerate(finding.fix, 1):
            first, *rest = step.splitlines() or [""]
            lines.append(f"          {number}. {first}")
            lines.extend(f"             {more}" for more in rest)
    lines.append("")
    return lines


def _load_test_lines(result: LoadTestResult, paint, unicode: bool) -> list[str]:
    """The GPU load test of one interpreter: outcome, figures, steps."""
    good = result.outcome == "gpu"
    symbol = ("✓" if unicode else "+") if good else ("✗" if unicode else "X")
    mark = paint("32" if good else "31", symbol)
    outcome = {
        "gpu": "TensorFlow computed on the GPU",
        "cpu-only": "TensorFlow works, but on the CPU only",
        "failed": "the load test failed",
        "timeout": "the load test timed out",
        "crashed": "the load test crashed",
    }.get(result.outcome, result.outcome or "unknown")
    lines = ["", f"{mark} GPU load test  {outcome} ({result.python})"]
    figures = []
    if result.device:
        figures.append(f"device {result.device}")
    if result.gflops is not None:
        figures.append(f"matmul {result.gflops:,.0f} GFLOP/s on the GPU")
    if result.cpu_gflops is not None:
        figures.append(f"matmul {result.cpu_gflops:,.0f} GFLOP/s on the CPU")
    if result.import_seconds is not None:
        figures.append(f"import tensorflow {result.import_seconds:.1f} s")
    if result.peak_memory_mib is not None:
        figures.append(f"peak GPU memory {result.peak_memory_mib:,.0f} MiB")
    if result.max_utilization_gpu is not None:
        figures.append(f"NVML: up to {result.max_utilization_gpu}% busy")
    if figures:
        lines.append("    " + "; ".join(figures))
    steps = ", ".join(
        f"{step.name} {'ok' if step.ok else 'FAILED'} ({step.seconds:.2f} s)"
        for step in result.steps
    )
    if steps:
        lines.extend(
            textwrap.wrap(
                "steps: " + steps, WRAP, initial_indent="    ", subsequent_indent="      "
            )
        )
    return lines


def _painter(colour: bool) -> Callable[[str, str], str]:
    if not colour:
        return lambda _code, text: text
    return lambda code, text: f"\033[{code}m{text}\033[0m"


# --------------------------------------------------------------------------- link summaries


def _driver_summary(inv: Inventory) -> str | None:
    d = inv.driver
    if d.nvml_loaded and d.driver_version:
        cuda = f" (supports CUDA {d.cuda_driver_version})" if d.cuda_driver_version else ""
        return f"NVIDIA {d.driver_version}{cuda}"
    return _Unknown(f"not available: {d.error}" if d.error else "not available")


def _gpu_summary(inv: Inventory) -> str | None:
    gpus = inv.driver.gpus
    if not inv.driver.nvml_loaded:
        return _Unknown("unknown (no driver)")
    if not gpus:
        return _Unknown("none found")
    names = [f"{g.index}: {g.name or '?'} (CC {g.compute_capability or '?'})" for g in gpus]
    return "; ".join(names)


def _cuda_summary(inv: Inventory) -> str | None:
    if not inv.toolkits:
        return "no toolkit installed (pip wheels provide the runtime for TF >= 2.14)"
    active = next((t for t in inv.toolkits if t.active), None)
    chosen = active or inv.toolkits[0]
    others = len(inv.toolkits) - 1
    extra = f" (+{others} more)" if others else ""
    state = "active" if active else "not on PATH"
    return f"{chosen.version or 'unknown version'} at {chosen.root}, {state}{extra}"


def _cudnn_summary(inv: Inventory) -> str | None:
    loaded = [
        r
        for r in inv.libraries
        if r.role == "cudnn"
        and r.resolved
        and r.wanted.split(".")[0] in ("libcudnn", "cudnn64_7", "cudnn64_8", "cudnn64_9")
    ]
    if loaded and loaded[0].resolved:
        version = loaded[0].resolved.version or "unknown version"
        return f"{version} from {loaded[0].resolved.path}"
    if inv.cudnn:
        first = inv.cudnn[0]
        return f"{first.version or 'unknown version'} at {first.location} ({first.source})"
    return _Unknown("not found")


def _libraries_summary(inv: Inventory) -> str | None:
    if not inv.libraries:
        return None
    found = sum(1 for r in inv.libraries if r.resolved is not None)
    missing = list(dict.fromkeys(r.wanted for r in inv.libraries if not r.resolved and r.required))
    summary = f"{found} of {len(inv.libraries)} found"
    if not missing:
        return summary
    # Missing required ones with no finding of their own are explained under another link
    # (no driver: libcuda and NVML); never a check mark for them.
    shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
    return _Unknown(f"{summary}; missing {shown}")


def _tensorflow_summary(inv: Inventory) -> str | None:
    parts = []
    for py in inv.pythons:
        tf = py.tensorflow
        if tf is None:
            continue
        cuda, cudnn = build_version(tf.cuda_version), build_version(tf.cudnn_version)
        build = f"CUDA {cuda}, cuDNN {cudnn}" if tf.is_cuda_build else "CPU-only build"
        where = f" in {py.executable}" if len(inv.pythons) > 1 else ""
        parts.append(f"{tf.distribution or 'tensorflow'} {tf.version} ({build}){where}")
    return "; ".join(parts) if parts else _Unknown("not installed in a watched interpreter")


def _python_summary(inv: Inventory) -> str | None:
    if not inv.pythons:
        return "no interpreter watched"
    return "; ".join(
        f"{py.executable}: not inspected"
        if py.error
        else f"{py.version or 'unknown version'} {py.bits}-bit at {py.executable}"
        for py in inv.pythons
    )


def _environment_summary(inv: Inventory) -> str | None:
    env = inv.environment
    names = [name for name, _ in env.variables if name not in ("PATH",)]
    return "set: " + ", ".join(names) if names else "nothing CUDA-related set"


def _runtime_summary(inv: Inventory) -> str | None:
    if inv.host.os != "windows":
        return None
    missing = [dll.name for dll in inv.runtime if dll.path is None]
    return f"missing {', '.join(missing)}" if missing else "present"


SUMMARIES: dict[Link, Callable[[Inventory], str | None]] = {
    Link.DRIVER: _driver_summary,
    Link.GPU: _gpu_summary,
    Link.CUDA: _cuda_summary,
    Link.CUDNN: _cudnn_summary,
    Link.LIBRARIES: _libraries_summary,
    Link.TENSORFLOW: _tensorflow_summary,
    Link.PYTHON: _python_summary,
    Link.ENVIRONMENT: _environment_summary,
    Link.RUNTIME: _runtime_summary,
}


# --------------------------------------------------------------------------- JSON


def render_json(report: Report) -> dict:
    """The `check --json` document (schema JSON_SCHEMA)."""
    return {
        "schema": JSON_SCHEMA,
        "tool_version": report.tool_version,
        "verdict": report.verdict.value,
        "exit_code": exit_code(report),
        "headline": headline(report),
        "checked_at": report.checked_at,
        "duration_s": round(report.duration_s, 4),
        "findings": [_finding_json(f) for f in report.findings],
        "load_tests": to_jsonable(report.load_tests),
        "inventory": to_jsonable(report.inventory),
    }


def _finding_json(finding: Finding) -> dict:
    data = to_jsonable(finding)
    data["evidence"] = dict(finding.evidence)
    return data
