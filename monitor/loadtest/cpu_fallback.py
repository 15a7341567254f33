"""loadtest-cpu-fallback: TensorFlow ran but computed on no GPU, and why; and its folding into
the classifier's finding where that one already names the cause."""

from __future__ import annotations

import re
from typing import Any

from monitor.loadtest.child_output import ChildRun, json_float
from monitor.loadtest.gpu_sampler import SampleSummary
from monitor.loadtest.run_findings import host_os, python_finding
from monitor.model import Finding, Inventory, Link, LoadTestResult, Severity
from monitor.record import replace

# Lines of TF's stderr that say why it set up no GPU.
_NO_GPU_HINT = re.compile(
    r"cuInit|Cannot dlopen|Could not load dynamic library|Could not find cuda drivers|"
    r"Ignoring visible gpu device|minimum required Cuda capability|CUDA driver version is|"
    r"cudaGetDevice|libcuda reported version|kernel driver does not appear|"
    r"no NVIDIA GPU device|cuda_diagnostics",
    re.IGNORECASE,
)
# cuInit's result as TensorFlow logs it ("failed call to cuInit: ... UNKNOWN ERROR (303)").
_CUINIT = re.compile(r"failed call to cuInit:.*?\((\d+)\)", re.IGNORECASE)
_CUINIT_MEANING = {
    "100": "CUDA_ERROR_NO_DEVICE: the driver reports no CUDA-capable GPU",
    "101": "CUDA_ERROR_INVALID_DEVICE: CUDA_VISIBLE_DEVICES names no existing GPU",
    "35": "CUDA_ERROR_INSUFFICIENT_DRIVER: the NVIDIA driver is older than this CUDA needs",
    "303": (
        "CUDA_ERROR_SHARED_OBJECT_INIT_FAILED: TensorFlow's CUDA stub could not load the "
        "driver's libcuda.so.1 (no NVIDIA driver installed, or not visible here)"
    ),
    "804": "CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE: the CUDA forward-compat package "
    "does not support this GPU",
    "999": "CUDA_ERROR_UNKNOWN: often a driver / kernel module mismatch or a GPU fault",
}
# tsl's cudart_stub logs this when it cannot dlopen libcudart (not the driver's libcuda).
_CUDART_MISSING = re.compile(r"cudart_stub\.cc.*Could not find cuda drivers", re.IGNORECASE)


def cpu_fallback(
    result: LoadTestResult,
    results: dict[str, dict[str, Any]],
    run: ChildRun,
    inventory: Inventory | None,
    summary: SampleSummary,
) -> list[Finding]:
    """TensorFlow ran but computed on no GPU: say so, and why, truthfully."""
    gpus = results.get("gpus")
    if gpus is None or result.outcome == "gpu":
        return []
    matmul = results.get("matmul")
    if gpus.get("logical") and matmul is not None and matmul.get("on_device"):
        return []  # the GPU was used (a wrong result is another finding's business)
    if gpus.get("logical") and matmul is None:
        return []  # it never got to the matmul: timeout / crash findings say why
    on_machine = _gpus_on_machine(inventory, summary)
    visible = gpus.get("cuda_visible_devices")
    hidden = isinstance(visible, str) and visible.strip() in ("", "-1", "none", "NoDevFiles")
    reason = str(gpus.get("reason") or "")
    if not gpus.get("ok", True):
        reason = f"setting up the GPUs raised {gpus.get('detail') or 'an error'}"
    if gpus.get("logical") and matmul is not None:
        reason = (
            f"a GPU is set up, but the matmul asked for /GPU:0 ran on "
            f"{matmul.get('placement') or 'another device'}"
        )
    hints = _no_gpu_hints(run.stderr)
    if not hidden and not gpus.get("logical") and result.built_with_cuda is not False:
        reason = _stderr_reason(run.stderr, result) or reason
    severity = Severity.ERROR if on_machine and not hidden else Severity.WARNING
    cpu = results.get("cpu_matmul", {})
    works = ""
    if cpu.get("ok"):
        works = (
            f" TensorFlow itself works: the CPU matmul checked out at "
            f"{json_float(cpu.get('gflops')) or 0:.1f} GFLOP/s."
        )
    if on_machine:
        machine = f" NVML sees {len(on_machine)} GPU(s) on this machine: {', '.join(on_machine)}."
    elif summary.error is not None:
        machine = f" NVML is not usable here ({summary.error})."
    else:
        machine = " NVML sees no GPU on this machine."
    detail = f"{reason[:1].upper()}{reason[1:]}.{machine}{works}"
    if hints:
        detail += " TensorFlow said: " + " | ".join(hints)
    fix = _fallback_fix(result, gpus, hidden, on_machine, inventory)
    evidence = [
        ("reason", reason),
        ("tensorflow", result.tf_version),
        ("built_with_cuda", str(result.built_with_cuda)),
        ("physical_gpus", str(gpus.get("physical"))),
        ("logical_gpus", str(gpus.get("logical"))),
        ("cuda_visible_devices", "(unset)" if visible is None else repr(visible)),
        ("nvml_gpus", ", ".join(on_machine) or "none"),
    ]
    evidence += [(f"stderr_{i + 1}", line) for i, line in enumerate(hints)]
    return [
        python_finding(
            "loadtest-cpu-fallback",
            severity,
            Link.TENSORFLOW,
            result,
            f"TensorFlow computes on the CPU only in {result.python}",
            detail,
            evidence,
            fix,
        )
    ]


def _stderr_reason(stderr: str, result: LoadTestResult) -> str:
    """Why TF set up no GPU, from its own log lines, in plain words ("" when it did not say)."""
    reasons = []
    if _CUDART_MISSING.search(stderr):
        major = dict(result.build_info).get("cuda_version", "").split(".")[0]
        name = f"libcudart.so.{major}" if major.isdigit() else "libcudart.so"
        reasons.append(
            f'TensorFlow could not load the CUDA runtime {name} (its log says "Could not find '
            'cuda drivers", which is what it says when libcudart is missing)'
        )
    cuinit = _CUINIT.search(stderr)
    if cuinit:
        meaning = _CUINIT_MEANING.get(cuinit.group(1), f"CUDA error {cuinit.group(1)}")
        reasons.append(f"TensorFlow could not initialise CUDA: cuInit failed with {meaning}")
    return "; ".join(reasons)


def _fallback_fix(
    result: LoadTestResult,
    gpus: dict[str, Any],
    hidden: bool,
    on_machine: list[str],
    inventory: Inventory | None,
) -> list[str]:
    os_name = host_os(inventory)
    if hidden:
        return [
            "CUDA_VISIBLE_DEVICES hides every GPU from this process: unset it "
            "(`unset CUDA_VISIBLE_DEVICES`) or list the GPUs to use (CUDA_VISIBLE_DEVICES=0).",
        ]
    if result.built_with_cuda is False:
        if os_name == "windows":
            return [
                "TensorFlow >= 2.11 has no GPU support on native Windows: run it in WSL2 "
                "(`pip install tensorflow[and-cuda]` there), or use TensorFlow 2.10 with "
                "CUDA 11.2 and cuDNN 8.1 on Windows.",
            ]
        if os_name == "darwin":
            return ["TensorFlow has no CUDA support on macOS (tensorflow-metal is another path)."]
        return [
            f"Install a CUDA build: `{result.python} -m pip install 'tensorflow[and-cuda]'` "
            "(tensorflow-cpu and some distro / conda builds have no GPU support).",
        ]
    if not on_machine:
        return [
            "Make sure an NVIDIA GPU and its driver are present: `nvidia-smi` must list the "
            "GPU. Then run `tf-stack-monitor check`: its other findings name the broken link.",
        ]
    if gpus.get("physical"):
        return [
            "TensorFlow sees the GPU but did not set it up: read the stderr lines above "
            "(compute capability too old for this build, or a CUDA library that failed to "
            "load); `tf-stack-monitor check` names the library.",
        ]
    return [
        "The driver sees the GPU but TensorFlow does not: a CUDA library (libcuda / cudart / "
        "cuDNN / cuBLAS) failed to load or does not match. `tf-stack-monitor check` names it; "
        f"`{result.python} -m pip install 'tensorflow[and-cuda]'` brings matching CUDA wheels.",
    ]


def _gpus_on_machine(inventory: Inventory | None, summary: SampleSummary) -> list[str]:
    names = [f"{s.name or 'GPU'} ({s.uuid})" for s in summary.samples if s.index >= 0]
    if inventory is not None:
        names += [f"{g.name or 'GPU'} ({g.uuid})" for g in inventory.driver.gpus]
    return sorted(set(names))


def _no_gpu_hints(stderr: str, limit: int = 4) -> list[str]:
    hints: list[str] = []
    for line in stderr.splitlines():
        if _NO_GPU_HINT.search(line):
            line = line.strip()
            if line not in hints:
                hints.append(line[:400])
        if len(hints) >= limit:
            break
    return hints


def fold_cpu_fallback(findings: list[Finding], result: LoadTestResult) -> list[Finding]:
    """One finding for "no GPU, and why" on a machine without one: where the classifier named
    the cause (an error from TF's own output), the CPU-fallback warning would only repeat it;
    its news, that TF itself works on the CPU, goes into the cause's detail instead. (With a
    GPU on the machine the fallback is an error of its own: NVML's GPUs are its evidence.)"""
    fallback = next(
        (f for f in findings if f.id == "loadtest-cpu-fallback" and f.severity is Severity.WARNING),
        None,
    )
    cause = next(
        (f for f in findings if f.severity is Severity.ERROR and f.id.startswith("loadtest-")),
        None,
    )
    if fallback is None or cause is None or cause is fallback:
        return findings
    works = ""
    if result.cpu_gflops is not None:
        works = (
            f" TensorFlow itself works: it fell back to the CPU, where the matmul checked out "
            f"at {result.cpu_gflops:.1f} GFLOP/s."
        )
    merged = replace(cause, detail=cause.detail + works)
    return [merged if f is cause else f for f in findings if f is not fallback]
