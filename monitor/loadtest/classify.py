"""Turn a failed GPU load test into findings: exit status + stderr + TensorFlow's log -> causes.

The child reports its steps as JSON on stdout; TensorFlow's log lines and Python's tracebacks go
to stderr. `classify` reads that stderr line by line against RULES, a table of
(id, pattern, builder): a builder turns one matching line into a Finding, using the Inventory
of the compatibility check for context (which file the loader picks instead, the driver
version, the CUDA/cuDNN the TF build wants). Pure: no I/O, no clock.

How findings are chosen:
- stderr is read whatever the exit status: the child exits 0 after falling back to the CPU,
  and the log is what says why no GPU was used. Exit 0 with nothing recognised gives ().
- Each (id, subject) is reported once; the first line that matches wins, and on one line the
  first rule of an id wins (so "Could not load dynamic library 'X'; dlerror: Y: cannot open
  shared object file" is one finding about X, not a second one about Y).
- Wrappers yield to their cause: TensorFlow's "Failed to load the native TensorFlow runtime"
  follows every import failure and counts only when nothing more specific matched; a crash
  (signal, "core dumped") is not reported separately when a cause that aborts the process was
  found (CRASH_EXPLAINED_BY) - the cause's evidence carries the exit status and the step.
- Findings come most specific first (ORDER); loadtest-unknown-failure only when nothing else
  matched and the test did not exit 0.
- Severity is error for all, except loadtest-gpu-libs-skipped: that line is TensorFlow's summary
  of the failed loads, so it is info when a loadtest-library-load-failed finding names the
  library, and the error when it stands alone (TF 2.21 logs the failed loads only at VLOG
  level: run the child with TF_CPP_VMODULE=dso_loader=1 to get them named).
- Optional pieces are ignored: TensorRT (libnvinfer*) and CUPTI (the profiler) fail to load on
  most working setups.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from monitor.loadtest.crash_failures import (
    build_crash_text,
    build_illegal,
    crash_finding,
    illegal_finding,
    timeout_finding,
    unknown_finding,
)
from monitor.loadtest.cuda_failures import (
    build_cublas,
    build_cudnn_init,
    build_cudnn_version,
    build_oom,
    build_ptxas,
)
from monitor.loadtest.driver_failures import (
    build_driver_mismatch,
    build_driver_old,
    build_no_device,
)
from monitor.loadtest.exits import describe_exit, signal_name
from monitor.loadtest.failure_context import FailureContext, GpuProcess
from monitor.loadtest.failure_ids import (
    CRASH_EXPLAINED_BY,
    CRASHED,
    CUBLAS,
    CUDNN_INIT,
    CUDNN_VERSION,
    DRIVER,
    ILLEGAL,
    IMPORT,
    LIBRARY,
    LIBS_SKIPPED,
    NO_DEVICE,
    OOM,
    ORDER,
    PTXAS,
    TIMEOUT,
    UNKNOWN,
)
from monitor.loadtest.failure_text import IGNORED, tail_lines
from monitor.loadtest.import_failures import (
    build_cannot_import,
    build_native_runtime,
    build_no_attribute,
    build_no_module,
    build_tf_own_unloadable,
    build_tf_undefined_symbol,
)
from monitor.loadtest.library_failures import (
    VC_REDIST,
    build_cudart_stub,
    build_dll_load_failed,
    build_dlopen,
    build_libs_skipped,
    build_load_library,
    build_missing_dlls,
    build_shared_object,
    build_undefined_symbol,
)
from monitor.model import Finding, Inventory, Severity
from monitor.record import record, replace

# The classifier's names, importable from here (the ids and the builders live beside it).
__all__ = [
    "CRASHED",
    "CRASH_EXPLAINED_BY",
    "CUBLAS",
    "CUDNN_INIT",
    "CUDNN_VERSION",
    "DRIVER",
    "ILLEGAL",
    "IMPORT",
    "LIBRARY",
    "LIBS_SKIPPED",
    "MAX_LINE",
    "NO_DEVICE",
    "OOM",
    "ORDER",
    "PTXAS",
    "RULES",
    "TIMEOUT",
    "UNKNOWN",
    "VC_REDIST",
    "GpuProcess",
    "Rule",
    "classify",
    "describe_exit",
    "signal_name",
    "tail_lines",
]


# Longer lines are cut in the middle before the patterns see them: TF's log lines are short,
# and a few patterns ("<lib>.so...: undefined symbol") backtrack quadratically on one huge
# line (a dumped array): 20,000 characters of "a.so." cost seconds, 4,000 a tenth of one.
MAX_LINE = 4000
_MAX_LINES = 5_000  # a runaway log is read at its start and its end (~60 us a line)

_ILLEGAL_NAMES = frozenset({"SIGILL", "STATUS_ILLEGAL_INSTRUCTION"})


def _short_lines(text: str, keep: int = MAX_LINE // 2) -> str:
    """Lines over MAX_LINE characters cut in the middle (see MAX_LINE)."""
    if all(len(line) <= MAX_LINE for line in text.split("\n")):
        return text
    return "\n".join(
        line if len(line) <= MAX_LINE else f"{line[:keep]} [...] {line[-keep:]}"
        for line in text.split("\n")
    )


# --------------------------------------------------------------------------- the rule table

Builder = Callable[[re.Match[str], FailureContext], "Finding | None"]


@record
class Rule:
    """One stderr pattern: `build` turns a match into a Finding, or None to let others try.

    `unless`: ids that make this rule's finding redundant (a wrapper message and its cause).
    """

    id: str
    pattern: re.Pattern[str]
    build: Builder
    unless: frozenset[str] = frozenset()


def _rule(finding_id: str, pattern: str, build: Builder, unless: Sequence[str] = ()) -> Rule:
    return Rule(finding_id, re.compile(pattern, re.IGNORECASE), build, frozenset(unless))


_SO = r"[\w.+-]+?\.so(?:\.\d+)*"

RULES: tuple[Rule, ...] = (
    # -- the driver
    _rule(
        DRIVER,
        r"CUDA driver version is insufficient for CUDA runtime version|cudaErrorInsufficientDriver"
        r"|CUDA_ERROR_UNSUPPORTED_PTX_VERSION|the provided PTX was compiled with an unsupported "
        r"toolchain",
        build_driver_old,
    ),
    _rule(
        DRIVER,
        r"kernel version (?P<kernel>[\d.]+) does not match DSO version (?P<dso>[\d.]+)"
        r"|CUDA_ERROR_SYSTEM_DRIVER_MISMATCH|system has unsupported display driver / cuda driver "
        r"combination|Driver/library version mismatch",
        build_driver_mismatch,
    ),
    # -- the CPU
    _rule(
        ILLEGAL,
        r"compiled to use (?P<isa>\w+) instructions, but these aren't available on your machine",
        build_illegal,
    ),
    _rule(ILLEGAL, r"\bIllegal instruction\b", build_illegal),
    # -- libraries (first rule per line wins: the dlopen message before its dlerror part)
    _rule(
        LIBRARY,
        r"Could not (?:load dynamic library|dlopen library) '(?P<lib>[^']+)'"
        r"(?:; dlerror: (?P<err>[^;]*))?",
        build_dlopen,
    ),
    _rule(
        LIBRARY,
        r"Could not load library (?P<lib>[\w.+-]+?)\. Error(?: code (?P<code>\d+)|: (?P<err>.*))",
        build_load_library,
    ),
    _rule(LIBRARY, r"Could not locate (?P<lib>zlibwapi\.dll)", build_shared_object),
    _rule(
        LIBRARY,
        r"DLL load failed(?: while importing (?P<module>\w+))?: (?P<reason>.*)",
        build_dll_load_failed,
    ),
    _rule(LIBRARY, r"Could not find the DLL\(s\) '(?P<libs>[^']+)'", build_missing_dlls),
    _rule(
        LIBRARY,
        r"Could not find cuda drivers on your machine, GPU will not be used",
        build_cudart_stub,
    ),
    _rule(
        IMPORT,
        r"(?<!\S)(?P<lib>\S+?\.(?:so[\w.]*|pyd|dll)): undefined symbol: (?P<sym>\S+)",
        build_tf_undefined_symbol,
    ),
    _rule(
        LIBRARY,
        r"(?<!\S)(?P<lib>\S+?\.(?:so[\w.]*|pyd|dll)): undefined symbol: (?P<sym>\S+)",
        build_undefined_symbol,
    ),
    _rule(
        IMPORT,
        r"(?<![^\s:'\"])(?P<lib>[^\s:'\"]+\.so[\w.]*): "
        r"(?:cannot open shared object file|file too short|invalid ELF header)",
        build_tf_own_unloadable,
    ),
    _rule(LIBRARY, rf"(?P<lib>\b{_SO}): cannot open shared object file", build_shared_object),
    _rule(LIBRARY, r"\b(?P<lib>[\w.+-]+\.dll) not found", build_shared_object),
    # -- TensorFlow's own modules
    _rule(
        IMPORT,
        r"No module named '(?P<mod>(?:tensorflow|tensorflow_core|keras|tf_keras)(?:\.[\w.]+)?)'",
        build_no_module,
    ),
    _rule(
        IMPORT,
        r"cannot import name '(?P<name>\w+)' from '(?P<mod>(?:tensorflow|keras|tf_keras)[\w.]*)'",
        build_cannot_import,
    ),
    _rule(
        IMPORT,
        r"module '(?P<mod>tensorflow[\w.]*)' has no attribute '(?P<name>\w+)'",
        build_no_attribute,
    ),
    _rule(
        IMPORT,
        r"Failed to load the native TensorFlow runtime"
        r"|No module named '_?pywrap_tensorflow_internal'",
        build_native_runtime,
        unless=(LIBRARY, ILLEGAL),
    ),
    # -- cuDNN
    _rule(
        CUDNN_VERSION,
        r"Loaded runtime CuDNN library: (?P<loaded>\d+(?:\.\d+)*)(?: \(compatibility version "
        r"[\d.]+\))? but source was compiled with:? (?P<built>\d+(?:\.\d+)*)",
        build_cudnn_version,
    ),
    _rule(
        CUDNN_INIT,
        r"Could not create cudnn handle[^\n]*|DNN library is not found|Failed to get convolution "
        r"algorithm|cuDNN failed to initialize|CUDNN_STATUS_(?!SUCCESS)[A-Z_]+",
        build_cudnn_init,
    ),
    # -- the device
    _rule(
        NO_DEVICE,
        r"failed call to cuInit: CUDA_ERROR_NO_DEVICE[^\n]*|CUDA_ERROR_NO_DEVICE|no CUDA-capable "
        r"device is detected|cudaErrorNoDevice|kernel driver does not appear to be running on "
        r"this host",
        build_no_device,
        unless=(DRIVER,),
    ),
    _rule(NO_DEVICE, r"failed call to cuInit: [^\n]*", build_no_device, unless=(DRIVER, LIBRARY)),
    # -- XLA's compiler tools
    _rule(
        PTXAS,
        r"Couldn't (?:get ptxas version|invoke ptxas)[^\n]*|ptxas not found|Failed to launch "
        r"ptxas|No PTX compilation provider is available|Couldn't find a suitable version of ptxas",
        build_ptxas,
    ),
    _rule(
        PTXAS,
        r"libdevice not found[^\n]*|Can't find libdevice directory \S*|libdevice is required by "
        r"this HLO module but was not found[^\n]*",
        build_ptxas,
    ),
    # -- memory, cuBLAS
    _rule(
        OOM,
        r"CUDA_ERROR_OUT_OF_MEMORY|OOM when allocating tensor|ResourceExhaustedError"
        r"|Resource exhausted: OOM|RESOURCE_EXHAUSTED: Out of memory|Out of memory while trying "
        r"to allocate",
        build_oom,
    ),
    _rule(
        CUBLAS,
        r"failed to create cublas handle[^\n]*|CUBLAS_STATUS_(?!SUCCESS)[A-Z_]+|cublasLt ran into "
        r"an error|Blas \w*GEMM\w* launch failed|perform BLAS operation using StreamExecutor "
        r"without BLAS support",
        build_cublas,
    ),
    # -- TensorFlow's summary of failed loads
    _rule(
        LIBS_SKIPPED,
        r"Cannot dlopen some GPU libraries|Skipping registering GPU devices",
        build_libs_skipped,
    ),
    # -- crashes told by the log (the exit status tells the rest)
    _rule(
        CRASHED,
        r"\bSegmentation fault\b|\(core dumped\)|^\s*Aborted\b|Fatal Python error: [^\n]*"
        r"|\bBus error\b",
        build_crash_text,
        unless=(*CRASH_EXPLAINED_BY, ILLEGAL),
    ),
)


# --------------------------------------------------------------------------- classify


def classify(
    exit_code: int | None,
    timed_out: bool,
    stderr: str,
    last_step: str | None,
    inventory: Inventory | None,
    python: str,
    os_name: str,
    gpu_processes: Sequence[GpuProcess] = (),
    built_for_cuda: str | None = None,
) -> tuple[Finding, ...]:
    """The causes of a load test's failure, most specific first; () for a clean run.

    exit_code: negative = killed by that signal (subprocess convention), None = unknown.
    last_step: the last step the child reported before it died ("import", "gpus", ...).
    gpu_processes: other processes holding GPU memory, as (pid, name, used MiB).
    built_for_cuda: the CUDA version TF's build_info reported in the child ("12.5.1"), used
    where the inventory does not say.
    """
    ctx = FailureContext(
        exit_code=exit_code,
        timed_out=timed_out,
        stderr=_short_lines(stderr or ""),
        last_step=last_step,
        inventory=inventory,
        python=python,
        os_name=os_name,
        gpu_processes=tuple(gpu_processes),
        built_for_cuda=built_for_cuda,
    )
    candidates = _status_candidates(ctx) + _line_candidates(ctx)
    findings = _choose(candidates)
    if not findings and not timed_out and exit_code != 0:
        findings = [unknown_finding(ctx)]
    if any(f.id == LIBRARY for f in findings):
        findings = [
            replace(f, severity=Severity.INFO) if f.id == LIBS_SKIPPED else f for f in findings
        ]
    findings.sort(key=lambda f: ORDER.index(f.id))
    return tuple(_with_run_evidence(f, ctx) for f in findings)


Candidate = tuple[Finding, frozenset[str]]


def _status_candidates(ctx: FailureContext) -> list[Candidate]:
    """What the exit status alone says: a timeout, an illegal instruction, a crash."""
    if ctx.timed_out:
        return [(timeout_finding(ctx), frozenset())]
    name = signal_name(ctx.exit_code, ctx.os_name)
    if name is None or name in ("SIGINT", "STATUS_CONTROL_C_EXIT"):
        return []
    evidence = describe_exit(ctx.exit_code, ctx.os_name)
    if name in _ILLEGAL_NAMES:
        isa = re.search(r"compiled to use (\w+) instructions", ctx.stderr)
        finding = illegal_finding(ctx, f"It died of {evidence}.", isa.group(1) if isa else None)
        return [(finding, frozenset())]
    return [(crash_finding(ctx, name, evidence), CRASH_EXPLAINED_BY | {ILLEGAL})]


def _line_candidates(ctx: FailureContext) -> list[Candidate]:
    lines = ctx.stderr.splitlines()
    if len(lines) > _MAX_LINES:
        lines = lines[: _MAX_LINES // 2] + lines[-_MAX_LINES // 2 :]
    found: list[Candidate] = []
    for line in lines:
        if not line.strip():
            continue
        taken: set[str] = set()
        for rule in RULES:
            if rule.id in taken:
                continue
            match = rule.pattern.search(line)
            if match is None:
                continue
            finding = rule.build(match, ctx)
            if finding is None:
                continue
            taken.add(rule.id)
            if finding is not IGNORED:
                evidence = (("log line", line.strip()[:300]), *finding.evidence)
                found.append((replace(finding, evidence=evidence), rule.unless))
    return found


def _choose(candidates: list[Candidate]) -> list[Finding]:
    """One finding per (id, subject); unconditional ones first, then those not made redundant."""
    chosen: dict[tuple[str, str], Finding] = {}
    for finding, unless in candidates:
        if not unless:
            chosen.setdefault((finding.id, finding.subject), finding)
    present = {key[0] for key in chosen}
    for finding, unless in candidates:
        if unless and not unless & present:
            chosen.setdefault((finding.id, finding.subject), finding)
    return list(chosen.values())


def _with_run_evidence(finding: Finding, ctx: FailureContext) -> Finding:
    extra = [
        ("exit status", "timed out" if ctx.timed_out else describe_exit(ctx.exit_code, ctx.os_name))
    ]
    if ctx.last_step:
        extra.append(("last step", ctx.last_step))
    return replace(finding, evidence=(*finding.evidence, *extra))
