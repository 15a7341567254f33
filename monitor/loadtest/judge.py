"""Judge a finished load test: build the LoadTestResult from what the child reported, with
its findings. No process handling and no clock (loadtest-loaded-differs alone looks at the
file system: whether two paths are the same file).

The findings are monitor.loadtest.classify's (what stopped TensorFlow) plus the runner's own:
loadtest-cpu-fallback (TF used no GPU, and why), loadtest-loaded-differs (the library the child
loaded is not the one the inventory predicted), loadtest-throughput-drop (GFLOP/s fell by more
than 30% since a good run on the same GPU), and loadtest-failed when the run failed and nothing
else names why.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from monitor.loadtest.child_output import STDERR_TAIL, ChildRun, json_float
from monitor.loadtest.cpu_fallback import cpu_fallback, fold_cpu_fallback
from monitor.loadtest.exits import result_signal
from monitor.loadtest.gpu_sampler import SampleSummary
from monitor.loadtest.run_findings import (
    failed_finding,
    host_os,
    loaded_differs,
    python_finding,
    throughput_drop,
)
from monitor.model import Finding, Inventory, Link, LoadTestResult, LoadTestStep, Severity
from monitor.record import replace

GPU_STEPS = ("matmul", "train", "memory")


def judge(
    python: str,
    run: ChildRun,
    summary: SampleSummary,
    inventory: Inventory | None = None,
    previous: LoadTestResult | None = None,
    started_at: str = "",
    timeout: float = 0.0,
) -> LoadTestResult:
    """Build the LoadTestResult (findings included) from what the child did."""
    results, last_step = _step_records(run.events)
    done = next((e for e in run.events if e.get("event") == "done"), None)
    outcome = _outcome(run, results, done)
    build = results.get("build_info", {})
    gpus = results.get("gpus", {})
    matmul = results.get("matmul", {})
    cpu_matmul = results.get("cpu_matmul", {})
    devices = gpus.get("devices") if isinstance(gpus.get("devices"), list) else []
    used_gpu = outcome == "gpu" or bool(gpus.get("logical"))
    device = ""
    if used_gpu and devices and isinstance(devices[0], dict):
        device = str(devices[0].get("device_name") or devices[0].get("name") or "GPU")
    elif cpu_matmul:
        device = "CPU"
    libraries = results.get("libraries", {}).get("libraries")
    build_info = build.get("build_info") if isinstance(build.get("build_info"), dict) else {}
    result = LoadTestResult(
        python=python,
        ok=outcome == "gpu",
        outcome=outcome,
        started_at=started_at,
        duration_s=round(run.duration_s, 3),
        last_step=last_step,
        steps=tuple(_to_step(r) for r in results.values()),
        tf_version=str(build.get("tf_version") or results.get("import", {}).get("version") or ""),
        built_with_cuda=build.get("built_with_cuda") if "built_with_cuda" in build else None,
        build_info=tuple(sorted((str(k), str(v)) for k, v in build_info.items())),
        physical_gpus=_int(gpus.get("physical")),
        logical_gpus=_int(gpus.get("logical")),
        device=device,
        device_placement=str((matmul or cpu_matmul).get("placement") or ""),
        gpu_uuid=summary.gpu_uuid if used_gpu else "",
        matmul_size=_int(matmul.get("n") or cpu_matmul.get("n")) or 0,
        gflops=_rounded(matmul.get("gflops")) if matmul.get("on_device") else None,
        cpu_gflops=_rounded(cpu_matmul.get("gflops")),
        import_seconds=_rounded(results.get("import", {}).get("seconds"), 3),
        peak_memory_mib=_rounded(results.get("memory", {}).get("peak_mib")),
        loaded_libraries=tuple(str(p) for p in libraries) if isinstance(libraries, list) else (),
        max_utilization_gpu=summary.max_utilization_gpu,
        max_memory_used_mib=summary.max_memory_used_mib,
        child_seen_on_gpu=summary.child_seen_on_gpu,
        nvml_error=summary.error,
        gpu_samples=summary.samples,
        exit_code=run.returncode,
        signal=result_signal(run.returncode),
        timed_out=run.timed_out,
        stderr_tail=run.stderr[-STDERR_TAIL:],
    )
    findings = list(_classified(result, run, inventory, summary))
    own = [
        *cpu_fallback(result, results, run, inventory, summary),
        *loaded_differs(result, inventory),
        *throughput_drop(result, previous, summary),
    ]
    known = {f.id for f in findings}
    findings.extend(f for f in own if f.id not in known)
    findings = fold_cpu_fallback(findings, result)
    if outcome in ("failed", "timeout", "crashed") and not any(
        f.severity is Severity.ERROR for f in findings
    ):
        findings.append(failed_finding(result, results, run, timeout))
    return replace(result, findings=tuple(findings), detail=_detail(result, results, run))


def _step_records(events: Iterable[dict[str, Any]]) -> tuple[dict[str, dict[str, Any]], str | None]:
    """(results by step name, the last step started)."""
    results: dict[str, dict[str, Any]] = {}
    last_started: str | None = None
    for event in events:
        if event.get("event") == "start" and isinstance(event.get("step"), str):
            last_started = event["step"]
        elif "event" not in event and isinstance(event.get("step"), str):
            results[event["step"]] = event
            if last_started is None:
                last_started = event["step"]
    return results, last_started


def _to_step(record: dict[str, Any]) -> LoadTestStep:
    skip = {"step", "ok", "seconds", "detail"}
    data = tuple(
        (str(key), _short(value))
        for key, value in sorted(record.items())
        if key not in skip and not isinstance(value, (list, dict))
    )
    return LoadTestStep(
        name=str(record.get("step", "")),
        ok=bool(record.get("ok")),
        seconds=json_float(record.get("seconds")) or 0.0,
        detail=str(record.get("detail") or ""),
        data=data,
    )


def _short(value: Any, limit: int = 500) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _rounded(value: Any, digits: int = 1) -> float | None:
    number = json_float(value)
    return round(number, digits) if number is not None else None


def _outcome(run: ChildRun, results: dict[str, dict[str, Any]], done: dict[str, Any] | None) -> str:
    if run.start_error is not None:
        return "failed"
    if run.timed_out:
        return "timeout"
    if run.unkillable:
        return "crashed"
    code = run.returncode
    if code is not None and (code < 0 or code >= 0xC0000000):
        return "crashed"
    if code != 0 or done is None:
        return "failed"
    gpus = results.get("gpus", {})
    if gpus.get("logical"):
        gpu_steps = [results[name] for name in GPU_STEPS if name in results]
        if "matmul" in results and all(r.get("ok") for r in gpu_steps):
            return "gpu"
        return "failed"
    if results.get("cpu_matmul", {}).get("ok") and results.get("train", {}).get("ok", True):
        return "cpu-only"
    return "failed"


def _classified(
    result: LoadTestResult, run: ChildRun, inventory: Inventory | None, summary: SampleSummary
) -> tuple[Finding, ...]:
    """monitor.loadtest.classify's findings; its failure is a warning, not a crash."""
    stderr = run.stderr
    if run.start_error is not None:
        stderr = f"{run.start_error}\n{stderr}"
    try:
        from monitor.loadtest.classify import classify
    except ImportError as exc:
        return (
            python_finding(
                "loadtest-classify-failed",
                Severity.WARNING,
                Link.TENSORFLOW,
                result,
                "The load test's failure classifier is missing",
                f"{type(exc).__name__}: {exc}",
            ),
        )
    try:
        return tuple(
            classify(
                run.returncode,
                run.timed_out,
                stderr,
                result.last_step,
                inventory,
                result.python,
                host_os(inventory),
                gpu_processes=summary.other_processes,
                built_for_cuda=dict(result.build_info).get("cuda_version") or None,
            )
        )
    except Exception as exc:  # a classifier bug must not hide the load test's result
        return (
            python_finding(
                "loadtest-classify-failed",
                Severity.WARNING,
                Link.TENSORFLOW,
                result,
                "Internal error in the load test's failure classifier",
                f"{type(exc).__name__}: {exc}",
                fix=(
                    "Report this at the tf-stack-monitor issue tracker with a snapshot "
                    "(tf-stack-monitor check --save-snapshot FILE --redact).",
                ),
            ),
        )


def _detail(result: LoadTestResult, results: dict[str, dict[str, Any]], run: ChildRun) -> str:
    step = result.last_step or "start"
    if result.outcome == "gpu":
        return (
            f"TensorFlow {result.tf_version} computed on {result.device}: "
            f"{result.gflops or 0:.0f} GFLOP/s matmul, checked against the CPU"
        )
    if result.outcome == "cpu-only":
        reason = results.get("gpus", {}).get("reason") or "no GPU used"
        return (
            f"TensorFlow {result.tf_version} works on the CPU only ({reason}); CPU matmul "
            f"{result.cpu_gflops or 0:.1f} GFLOP/s"
        )
    if result.outcome == "timeout":
        return f"timed out in step {step}"
    if result.outcome == "crashed":
        return f"crashed ({result.signal or 'killed'}) in step {step}"
    if run.start_error is not None:
        return f"could not start: {run.start_error}"
    failed = next((r for r in results.values() if not r.get("ok")), None)
    if failed is not None:
        return f"failed in step {failed.get('step')}: {failed.get('detail') or ''}".strip()
    return f"exited with {result.exit_code} after step {step}"
