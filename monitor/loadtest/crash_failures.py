"""Builders for runs that end without a named cause: an illegal instruction, a crash, a
timeout, or an error the monitor does not know."""

from __future__ import annotations

import re

from monitor.loadtest.exits import describe_exit, signal_name
from monitor.loadtest.failure_context import FailureContext
from monitor.loadtest.failure_ids import CRASHED, ILLEGAL, TIMEOUT, UNKNOWN
from monitor.loadtest.failure_text import TAIL_IN_DETAIL, error_finding, step_text, tail_lines
from monitor.loadtest.install_advice import tf_spec
from monitor.model import Finding, Link
from monitor.rules import fixes
from monitor.versions import major_minor


def illegal_finding(ctx: FailureContext, evidence: str, isa: str | None) -> Finding:
    needs = isa or "probably AVX"
    parts = [
        evidence,
        f"This TensorFlow build uses {isa or 'CPU'} instructions which this CPU (or the virtual "
        "CPU a hypervisor presents) does not have. The official wheels need AVX since "
        "TensorFlow 1.6.",
    ]
    if ctx.windows:
        check = "Check the CPU's instruction sets, e.g. with Sysinternals Coreinfo."
    else:
        check = "Check the CPU's flags: grep -o -w -E 'avx|avx2|fma' /proc/cpuinfo | sort -u"
    return error_finding(
        ILLEGAL,
        Link.TENSORFLOW,
        f"The CPU lacks instructions this TensorFlow build uses ({needs})",
        parts,
        (
            check,
            "In a virtual machine, pass the host CPU's features through (e.g. CPU type 'host').",
            "Otherwise run TensorFlow on a CPU with these instructions, or build TensorFlow from "
            "source for this CPU.",
        ),
    )


def build_illegal(m: re.Match[str], ctx: FailureContext) -> Finding | None:
    isa = m.groupdict().get("isa")
    return illegal_finding(ctx, f"Log: {m.group(0).strip()}.", isa)


_SIGNAL_NOTES = {
    "SIGSEGV": "a native library (TensorFlow, CUDA, cuDNN or the driver) touched invalid memory",
    "STATUS_ACCESS_VIOLATION": (
        "a native library (TensorFlow, CUDA, cuDNN or the driver) touched invalid memory"
    ),
    "SIGABRT": "a native library aborted the process after a failed check",
    "STATUS_STACK_BUFFER_OVERRUN": "a native library aborted the process (fail-fast)",
    "SIGBUS": "a native library touched memory that does not exist (e.g. a truncated file)",
    "SIGKILL": (
        "something outside killed it: often the kernel's out-of-memory killer (host memory, "
        "not GPU memory)"
    ),
    "STATUS_HEAP_CORRUPTION": "a native library corrupted its memory",
    "STATUS_DLL_NOT_FOUND": "Windows could not find a DLL the program needs",
}
# A fatal (F-level) log line: "2022-03-11 15:15:48.010891: F file.cc:435] ...", "F0000 00:00:...
# 12345 file.cc:123] ...", "F file.cc:35] ...", or a failed CHECK.
_FATAL_LINE = re.compile(
    r"^(?:\S+ \S+: )?F(?:\d{4} \S+\s+\d+)? \S+\] .*|Check failed: .*", re.MULTILINE
)


def crash_finding(ctx: FailureContext, name: str | None, evidence: str) -> Finding:
    what = name or "a crash"
    parts = [f"The load test died {step_text(ctx.last_step)}: {evidence}."]
    note = _SIGNAL_NOTES.get(name or "")
    if note:
        parts.append(f"{what}: {note}.")
    fatal = _FATAL_LINE.search(ctx.stderr)
    if fatal:
        parts.append(f"The fatal message: {fatal.group(0).strip()}")
    detail = " ".join(parts)
    tail = tail_lines(ctx.stderr, TAIL_IN_DETAIL)
    if tail:
        detail += "\nThe last lines of its error output:\n" + tail
    if name == "SIGKILL":
        fix: tuple[str, ...] = (
            "Look for the out-of-memory killer: journalctl -k | grep -i 'out of memory'",
            "Free host memory (close other programs) and run the load test again.",
        )
    else:
        fix = (
            "Run the load test again: if it dies in the same step, the likely cause is a mix of "
            "CUDA libraries from different installs.",
            "Reinstall TensorFlow with its own CUDA libraries: "
            + ctx.pip("install", "--force-reinstall", tf_spec(ctx)),
            "Update the NVIDIA driver.",
        )
    return error_finding(
        CRASHED,
        Link.TENSORFLOW,
        f"The GPU load test crashed ({what}) {step_text(ctx.last_step)}",
        detail,
        fix,
    )


def build_crash_text(m: re.Match[str], ctx: FailureContext) -> Finding | None:
    name = signal_name(ctx.exit_code, ctx.os_name)
    return crash_finding(ctx, name, f"its output says '{m.group(0).strip()}'")


# Steps that run on the GPU: a hang there may be the driver compiling kernels.
_GPU_STEPS = frozenset({"gpus", "devices", "matmul", "matmul_gpu", "train", "keras_step", "memory"})


def _arch(name: str) -> tuple[str, tuple[int, int]] | None:
    """ "sm_89" -> ("sm", (8, 9)); "compute_90" -> ("compute", (9, 0)); else None."""
    kind, _, digits = name.partition("_")
    if not digits.isdigit() or len(digits) < 2:
        return None
    return kind, (int(digits[:-1]), int(digits[-1]))


def _gpu_without_kernels(ctx: FailureContext) -> str:
    """A note when TF ships no compiled kernels for the GPU (the driver JIT-compiles PTX)."""
    tf = ctx.tf()
    driver = ctx.inventory.driver if ctx.inventory else None
    if tf is None or not tf.compute_capabilities or driver is None or not driver.gpus:
        return ""
    gpu = driver.gpus[0]
    cc = major_minor(gpu.compute_capability)
    archs = [a for a in map(_arch, tf.compute_capabilities) if a is not None]
    if cc is None:
        return ""
    # Compiled kernels (SASS) run on the same major version with an equal or newer minor.
    if any(kind == "sm" and v[0] == cc[0] and v[1] <= cc[1] for kind, v in archs):
        return ""
    if not any(kind == "compute" and v <= cc for kind, v in archs):
        return ""  # no PTX to compile from: TensorFlow does not use this GPU at all
    return (
        f" TensorFlow {tf.version} has no ready-made kernels for {gpu.name or 'this GPU'} "
        f"(compute capability {gpu.compute_capability}): the driver compiles them from PTX on "
        "first use, which can take many minutes; the result is cached (~/.nv/ComputeCache) for "
        "later runs."
    )


def timeout_finding(ctx: FailureContext) -> Finding:
    step = ctx.last_step
    on_gpu = step in _GPU_STEPS
    detail = f"The load test did not finish in its time limit; it hung {step_text(step)}."
    if on_gpu:
        detail += _gpu_without_kernels(ctx)
    tail = tail_lines(ctx.stderr, TAIL_IN_DETAIL)
    if tail:
        detail += "\nThe last lines of its error output:\n" + tail
    if on_gpu:
        fix: tuple[str, ...] = (
            "Run the load test again with a longer time limit: a first run may compile GPU "
            "kernels.",
            "Check with nvidia-smi whether another process keeps the GPU busy, or whether the "
            "GPU is stuck (100% utilisation with no process: reboot).",
        )
    else:
        fix = (
            f'Run {fixes.python_cmd(ctx.python, ctx.host)} -c "import tensorflow" by '
            "hand to see where it stops.",
        )
    return error_finding(
        TIMEOUT,
        Link.GPU if on_gpu else Link.TENSORFLOW,
        f"The GPU load test hung {step_text(step)}",
        detail,
        fix,
    )


def unknown_finding(ctx: FailureContext) -> Finding:
    tail = tail_lines(ctx.stderr, 20)
    exit_text = describe_exit(ctx.exit_code, ctx.os_name)
    detail = f"The load test ended with {exit_text} {step_text(ctx.last_step)}."
    detail += (
        "\nThe last lines of its error output:\n" + tail
        if tail
        else " It wrote nothing to its error output."
    )
    return error_finding(
        UNKNOWN,
        Link.TENSORFLOW,
        f"The GPU load test failed ({exit_text}) with an error the monitor does not know",
        detail,
        (
            "Read the error output above: the last lines usually name the cause.",
            "If it points at the TensorFlow stack, report it to tf-stack-monitor with a snapshot "
            "(tf-stack-monitor check --save-snapshot FILE --redact).",
        ),
    )
