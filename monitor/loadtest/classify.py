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

import ntpath
import posixpath
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from monitor import compat
from monitor.loadtest.exits import NTSTATUS_NAMES
from monitor.model import (
    Finding,
    HostInfo,
    Inventory,
    LibraryFile,
    LibraryResolution,
    Link,
    PythonEnv,
    Severity,
    TensorflowBuild,
)
from monitor.rules import fixes
from monitor.rules.libraries import (
    DRIVER_ROLES,
    TfNeeds,
    basename,
    has_and_cuda,
    normalize_name,
    tf_needs,
    wheel_for,
)
from monitor.rules.windows import VC_REDIST_URL
from monitor.versions import major_minor, parse_version

LIBRARY = "loadtest-library-load-failed"
IMPORT = "loadtest-tf-import-broken"
DRIVER = "loadtest-driver-insufficient"
NO_DEVICE = "loadtest-no-device"
LIBS_SKIPPED = "loadtest-gpu-libs-skipped"
CUDNN_INIT = "loadtest-cudnn-init-failed"
CUDNN_VERSION = "loadtest-cudnn-version-mismatch"
CUBLAS = "loadtest-cublas-failed"
OOM = "loadtest-gpu-oom"
PTXAS = "loadtest-ptxas-missing"
ILLEGAL = "loadtest-illegal-instruction"
CRASHED = "loadtest-crashed"
TIMEOUT = "loadtest-timeout"
UNKNOWN = "loadtest-unknown-failure"

# Most specific first: a root cause before the symptoms it produces.
ORDER = (
    DRIVER,
    ILLEGAL,
    LIBRARY,
    IMPORT,
    CUDNN_VERSION,
    NO_DEVICE,
    PTXAS,
    OOM,
    CUDNN_INIT,
    CUBLAS,
    LIBS_SKIPPED,
    CRASHED,
    TIMEOUT,
    UNKNOWN,
)

# Causes after which an abort or segfault is expected, not a second problem.
CRASH_EXPLAINED_BY = frozenset(
    {DRIVER, ILLEGAL, LIBRARY, CUDNN_VERSION, CUDNN_INIT, CUBLAS, OOM, PTXAS}
)

GpuProcess = tuple[int, str, int]  # (pid, name, used MiB)

# Longer lines are cut in the middle before the patterns see them: TF's log lines are short,
# and a few patterns ("<lib>.so...: undefined symbol") backtrack quadratically on one huge
# line (a dumped array): 20,000 characters of "a.so." cost seconds, 4,000 a tenth of one.
MAX_LINE = 4000
_MAX_LINES = 5_000  # a runaway log is read at its start and its end (~60 us a line)
_TAIL_IN_DETAIL = 10

VC_REDIST = (
    "Install the latest Microsoft Visual C++ Redistributable for Visual Studio 2015-2022 (x64): "
    f"{VC_REDIST_URL}"
)


# --------------------------------------------------------------------------- exit status

_SIGNALS = {
    1: "SIGHUP",
    2: "SIGINT",
    3: "SIGQUIT",
    4: "SIGILL",
    5: "SIGTRAP",
    6: "SIGABRT",
    7: "SIGBUS",
    8: "SIGFPE",
    9: "SIGKILL",
    11: "SIGSEGV",
    13: "SIGPIPE",
    15: "SIGTERM",
}

_ILLEGAL_NAMES = frozenset({"SIGILL", "STATUS_ILLEGAL_INSTRUCTION"})


def _short_lines(text: str, keep: int = MAX_LINE // 2) -> str:
    """Lines over MAX_LINE characters cut in the middle (see MAX_LINE)."""
    if all(len(line) <= MAX_LINE for line in text.split("\n")):
        return text
    return "\n".join(
        line if len(line) <= MAX_LINE else f"{line[:keep]} [...] {line[-keep:]}"
        for line in text.split("\n")
    )


def signal_name(exit_code: int | None, os_name: str = "") -> str | None:
    """The signal or Windows status an exit status stands for, or None for a plain exit.

    -11 (subprocess: killed by signal 11) and 139 (a shell's 128 + 11) are "SIGSEGV";
    3221225477 and -1073741819 (0xC0000005, unsigned or signed) are "STATUS_ACCESS_VIOLATION".
    128 + N is read as a signal except on Windows.
    """
    if exit_code is None:
        return None
    unsigned = exit_code & 0xFFFFFFFF
    if unsigned in NTSTATUS_NAMES:
        return NTSTATUS_NAMES[unsigned]
    if exit_code < 0:
        return _SIGNALS.get(-exit_code, f"signal {-exit_code}")
    if os_name != "windows" and 128 < exit_code <= 128 + 64:
        return _SIGNALS.get(exit_code - 128)
    return None


def describe_exit(exit_code: int | None, os_name: str = "") -> str:
    """A short human reading of an exit status: "SIGSEGV (signal 11)", "exit status 1"."""
    if exit_code is None:
        return "no exit status"
    name = signal_name(exit_code, os_name)
    unsigned = exit_code & 0xFFFFFFFF
    if name and unsigned in NTSTATUS_NAMES:
        return f"{name} (0x{unsigned:08X})"
    if name and exit_code < 0:
        return f"{name} (signal {-exit_code})" if not name.startswith("signal") else name
    if name:
        return f"exit status {exit_code} ({name})"
    return f"exit status {exit_code}"


def tail_lines(stderr: str, n: int = 20) -> str:
    """The last `n` lines of `stderr`, verbatim (trailing blank lines dropped)."""
    lines = stderr.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines[-n:]) if n > 0 else ""


# --------------------------------------------------------------------------- steps

_STEP_WORDS = {
    "import": "importing TensorFlow",
    "build_info": "reading TensorFlow's build information",
    "gpus": "finding and setting up the GPUs",
    "devices": "finding and setting up the GPUs",
    "matmul": "a matrix multiplication on the GPU",
    "matmul_gpu": "a matrix multiplication on the GPU",
    "cpu_matmul": "a matrix multiplication on the CPU",
    "train": "a Keras training step",
    "keras_step": "a Keras training step",
    "memory": "reading GPU memory statistics",
    "libraries": "listing the loaded libraries",
}
_GPU_STEPS = frozenset({"gpus", "devices", "matmul", "matmul_gpu", "train", "keras_step", "memory"})


def _step_text(step: str | None) -> str:
    if not step:
        return "before it reported any step"
    words = _STEP_WORDS.get(step)
    return f"in step '{step}' ({words})" if words else f"in step '{step}'"


# --------------------------------------------------------------------------- context


@dataclass(frozen=True)
class _Context:
    """What every builder may look at: the raw inputs and lookups into the inventory."""

    exit_code: int | None
    timed_out: bool
    stderr: str
    last_step: str | None
    inventory: Inventory | None
    python: str
    os_name: str
    gpu_processes: tuple[GpuProcess, ...]
    built_for_cuda: str | None = None  # the child's own build_info, when it got that far

    @property
    def windows(self) -> bool:
        return self.os_name == "windows"

    @property
    def host(self) -> HostInfo:
        inventory = self.inventory
        return (
            inventory.host
            if inventory and inventory.host.os == self.os_name
            else HostInfo(os=self.os_name)
        )

    def env(self) -> PythonEnv | None:
        if self.inventory is None or not self.inventory.pythons:
            return None
        for env in self.inventory.pythons:
            if _same_path(env.executable, self.python, self.windows):
                return env
        return self.inventory.pythons[0]

    def needs(self) -> TfNeeds | None:
        """The CUDA and cuDNN this interpreter's TensorFlow was built for (the rules' view)."""
        return tf_needs(self.inventory, self.python) if self.inventory else None

    def tf(self) -> TensorflowBuild | None:
        needs = self.needs()
        return needs.tf if needs else None

    def tf_version(self) -> str:
        tf = self.tf()
        return tf.version if tf else ""

    def cuda_version(self) -> str | None:
        needs = self.needs()
        return needs.cuda if needs and needs.cuda else self.built_for_cuda

    def cudnn_version(self) -> str | None:
        needs = self.needs()
        return needs.cudnn if needs else None

    def resolution(self, file_name: str | None) -> LibraryResolution | None:
        """The loader check's answer for `file_name` and this interpreter, when it has one."""
        if not file_name or self.inventory is None:
            return None
        fallback = None
        for res in self.inventory.libraries:
            if not _same_name(res.wanted, file_name, self.windows):
                continue
            if _same_path(res.python, self.python, self.windows):
                return res
            if not res.python or fallback is None:
                fallback = res
        return fallback

    def role_resolutions(self, role: str) -> tuple[LibraryResolution, ...]:
        if self.inventory is None:
            return ()
        return tuple(
            res
            for res in self.inventory.libraries
            if res.role == role
            and (not res.python or _same_path(res.python, self.python, self.windows))
        )

    def variable(self, name: str) -> str | None:
        return self.inventory.environment.get(name) if self.inventory else None

    def pip(self, *args: str) -> str:
        """`<the watched python> -m pip <args>`, quoted for this host's shell."""
        return fixes.pip(self.python, self.host, *args)


def _same_path(a: str, b: str, windows: bool) -> bool:
    return a.casefold() == b.casefold() if windows else a == b


def _same_name(a: str, b: str, windows: bool) -> bool:
    return _same_path(basename(a), basename(b), windows or b.lower().endswith(".dll"))


# --------------------------------------------------------------------------- the rule table

Builder = Callable[[re.Match[str], _Context], "Finding | None"]


@dataclass(frozen=True)
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


# A builder returns this to claim a line without reporting it (optional libraries).
_IGNORED = Finding(id="", severity=Severity.INFO, link=Link.LIBRARIES, title="")


def _error(
    finding_id: str,
    link: Link,
    title: str,
    detail: str | Sequence[str],
    fix: Sequence[str],
    subject: str = "",
) -> Finding:
    """An error finding; a `detail` given as sentences is joined (empty ones dropped)."""
    text = detail if isinstance(detail, str) else " ".join(part for part in detail if part)
    return Finding(
        id=finding_id,
        severity=Severity.ERROR,
        link=link,
        title=title,
        detail=text,
        fix=tuple(fix),
        subject=subject,
    )


# --------------------------------------------------------------------------- libraries

# Library roles by file-name stem (after "lib"), longest prefix first where they overlap.
_ROLE_PREFIXES = (
    ("cublaslt", "cublasLt"),
    ("cublas", "cublas"),
    ("cudart", "cudart"),
    ("cufft", "cufft"),
    ("curand", "curand"),
    ("cusolver", "cusolver"),
    ("cusparse", "cusparse"),
    ("cudnn", "cudnn"),
    ("cupti", "cupti"),
    ("nvjitlink", "nvjitlink"),
    ("nccl", "nccl"),
    ("nvrtc", "nvrtc"),
    ("nvinfer", "tensorrt"),
    ("nvidia-ml", "nvml"),
    ("nvml", "nvml"),
    ("nvcuda", "cuda_driver"),
    ("cuda.", "cuda_driver"),
    ("msvcp", "msvc_runtime"),
    ("vcruntime", "msvc_runtime"),
    ("zlibwapi", "zlib"),
)
_OPTIONAL_ROLES = frozenset({"cupti", "tensorrt"})
_ROLE_WORDS = {
    "cudart": "the CUDA runtime",
    "cublas": "cuBLAS (matrix multiplication)",
    "cublasLt": "cuBLASLt (matrix multiplication)",
    "cufft": "cuFFT",
    "curand": "cuRAND",
    "cusolver": "cuSOLVER",
    "cusparse": "cuSPARSE",
    "cudnn": "cuDNN (convolutions and RNNs)",
    "nvjitlink": "nvJitLink (needed by cuSPARSE and cuSOLVER)",
    "nccl": "NCCL",
    "nvrtc": "NVRTC",
    "cuda_driver": "the NVIDIA driver's CUDA library",
    "nvml": "the NVIDIA driver's management library",
    "msvc_runtime": "the Microsoft Visual C++ runtime",
    "zlib": "zlib (needed by cuDNN 8 on Windows)",
}
_TF_OWN = re.compile(r"^(?:lib)?_?pywrap_|^libtensorflow", re.IGNORECASE)


def _role(file_name: str) -> str:
    stem = basename(file_name).lower()
    stem = stem[3:] if stem.startswith("lib") else stem
    for prefix, role in _ROLE_PREFIXES:
        if stem.startswith(prefix):
            return role
    return ""


def _file_text(found: LibraryFile) -> str:
    facts = [f"version {found.version}"] if found.version else []
    if found.via:
        facts.append(f"via {found.via}")
    return f"{found.path} ({', '.join(facts)})" if facts else found.path


def _describe_resolution(res: LibraryResolution | None, name: str) -> str:
    if res is None:
        return ""
    if res.resolved is None:
        text = f"The monitor's loader check finds no {name} for this interpreter either"
        if res.candidates:
            text += "; other copies on this machine: " + ", ".join(
                _file_text(c) for c in res.candidates[:3]
            )
        if res.on_path_only:
            text += (
                f"; {res.on_path_only.path} is on PATH, but Python 3.8+ does not search PATH "
                "for the DLLs of extension modules"
            )
        return text + "."
    return f"The loader would pick {_file_text(res.resolved)} for {name}."


def _cuda_major(ctx: _Context) -> int | None:
    parsed = parse_version(ctx.cuda_version())
    return parsed[0] if parsed else None


def _pip_era(ctx: _Context) -> bool:
    """Linux TF that gets its CUDA libraries from pip wheels (tensorflow[and-cuda], 2.14+);
    without an inventory, any Linux TF (today's releases all do)."""
    tf = ctx.tf()
    if tf is None or ctx.inventory is None:
        return ctx.os_name == "linux"
    return has_and_cuda(ctx.inventory, tf)


def _tf_spec(ctx: _Context) -> str:
    """What to pip install: this TF version, with its CUDA wheels where it has them."""
    version = ctx.tf_version()
    name = "tensorflow[and-cuda]" if _pip_era(ctx) else "tensorflow"
    return f"{name}=={version}" if version else name


def _cuda_library_steps(ctx: _Context, role: str) -> list[str]:
    """How to get TF's CUDA libraries (role: the one that failed) for this OS and TF version."""
    tf, version = ctx.tf(), ctx.tf_version()
    if tf is not None and tf.is_cuda_build is False:
        return [
            f"This TensorFlow ({tf.distribution or 'tensorflow'} {version}) is built without "
            f"CUDA: install a GPU build, e.g. {ctx.pip('install', _tf_spec(ctx))}"
        ]
    cuda, cudnn = ctx.cuda_version(), ctx.cudnn_version()
    if ctx.windows:
        facts = compat.tf_build(version, "windows")
        if facts is not None and not facts.gpu_supported:
            return [
                f"TensorFlow {version} has no GPU support on native Windows: use WSL2 with "
                '`pip install "tensorflow[and-cuda]"`, or TensorFlow 2.10 with CUDA 11.2 and '
                "cuDNN 8.1."
            ]
        if cuda and cudnn:
            return [
                f"Install CUDA {cuda} and cuDNN {cudnn} (the versions TensorFlow {version} was "
                "built with) and put their bin directories on PATH, or in a conda environment: "
                f"conda install -c conda-forge cudatoolkit={cuda} cudnn={cudnn}"
            ]
        return [
            "Install the CUDA and cuDNN versions your TensorFlow was built with "
            "(tf.sysconfig.get_build_info()) and put their bin directories on PATH."
        ]
    if _pip_era(ctx):
        steps = []
        wheel = wheel_for(role, _cuda_major(ctx))
        if wheel:
            steps.append(ctx.pip("install", wheel))
        steps.append(
            ctx.pip("install", _tf_spec(ctx))
            + " (installs every CUDA library this TensorFlow needs, as pip wheels)"
        )
        return steps
    if cuda and cudnn:
        return [
            f"Install CUDA {cuda} and cuDNN {cudnn} (the versions TensorFlow {version} was built "
            f"with), e.g. conda install -c conda-forge cudatoolkit={cuda} cudnn={cudnn}, and add "
            "their lib directory to LD_LIBRARY_PATH (or register it with ldconfig)."
        ]
    return [
        "Install the CUDA and cuDNN versions your TensorFlow was built with "
        "(tf.sysconfig.get_build_info()) where the loader finds them."
    ]


def _library_fixes(
    ctx: _Context, missing: str, role: str, error: str, res: LibraryResolution | None
) -> tuple[str, ...]:
    steps: list[str] = []
    wrong_version = bool(re.search(r"undefined symbol|version `|wrong ELF|invalid ELF", error))
    if (
        res is not None
        and res.resolved is not None
        and res.resolved.via == "LD_LIBRARY_PATH"
        and not ctx.windows
    ):
        folder = posixpath.dirname(res.resolved.path)
        steps.append(
            f"Remove {folder} from LD_LIBRARY_PATH: it puts {res.resolved.path} ahead of the "
            f"{missing} TensorFlow was built for."
        )
    if role == "msvc_runtime":
        steps.append(VC_REDIST)
    elif role in DRIVER_ROLES:
        steps.extend(fixes.driver_install_steps(ctx.host))
    elif role == "zlib":
        steps.append(
            "Install zlibwapi.dll as NVIDIA's cuDNN installation guide for Windows says "
            "(section 'Installing Zlib') and put its folder on PATH."
        )
    elif not (wrong_version and steps):  # a stray copy first on the path: removing it is enough
        steps.extend(_cuda_library_steps(ctx, role))
    return tuple(steps)


def _library_finding(
    ctx: _Context, wanted: str, error: str = "", dependency: str | None = None
) -> Finding | None:
    """TensorFlow could not load `wanted` (because `dependency` is missing, when it says so)."""
    name = basename(wanted)
    if _TF_OWN.search(name):
        return None  # TensorFlow's own module: a broken install, the import rules say so
    role = _role(name)
    if role in _OPTIONAL_ROLES:
        return _IGNORED
    dep = basename(dependency) if dependency else None
    if dep == name or not dep:
        dep = None
    missing = dep or name
    missing_role = _role(missing) or role
    link = (
        Link.DRIVER
        if missing_role in DRIVER_ROLES
        else Link.RUNTIME
        if missing_role == "msvc_runtime"
        else Link.LIBRARIES
    )
    title = f"TensorFlow could not load {name}"
    if dep:
        title += f": it needs {dep}, which is missing"
    parts = []
    if role in _ROLE_WORDS:
        parts.append(f"{name} is {_ROLE_WORDS[role]}.")
    if dep and missing_role in _ROLE_WORDS:
        parts.append(f"{dep} is {_ROLE_WORDS[missing_role]}.")
    if error:
        parts.append(f"The loader said: {_sentence(error)}")
    res = ctx.resolution(missing)
    if dep:
        parts.append(_describe_resolution(ctx.resolution(name), name))
    parts.append(_describe_resolution(res, missing))
    return _error(
        LIBRARY,
        link,
        title,
        parts,
        _library_fixes(ctx, missing, missing_role, error, res),
        subject=name,
    )


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?", ")")) else text + "."


def _dependency(error: str) -> str | None:
    """The file a dlerror / loader message names first ("libX.so.1: cannot open ...")."""
    match = re.match(r"\s*([^\s:;]+?)(?::| not found)", error)
    return match.group(1) if match else None


def _build_dlopen(m: re.Match[str], ctx: _Context) -> Finding | None:
    error = (m.group("err") or "").strip()
    return _library_finding(ctx, m.group("lib"), error, _dependency(error))


def _build_load_library(m: re.Match[str], ctx: _Context) -> Finding | None:
    error = (m.group("err") or "").strip()
    if m.group("code"):
        error = f"error code {m.group('code')}"
        if m.group("code") == "126":
            error += " (a DLL it depends on was not found)"
    return _library_finding(ctx, m.group("lib"), error, _dependency(error))


def _build_shared_object(m: re.Match[str], ctx: _Context) -> Finding | None:
    return _library_finding(ctx, m.group("lib"), m.string[m.start() :].strip())


def _build_undefined_symbol(m: re.Match[str], ctx: _Context) -> Finding | None:
    return _library_finding(ctx, m.group("lib"), m.group(0).strip())


def _build_cudart_stub(m: re.Match[str], ctx: _Context) -> Finding | None:
    # xla/tsl/cuda/cudart_stub.cc logs this when the CUDA *runtime* cannot be loaded.
    found = ctx.role_resolutions("cudart")
    major = _cuda_major(ctx)
    name = found[0].wanted if found else "libcudart.so" + (f".{major}" if major else "")
    return _library_finding(
        ctx,
        name,
        "TensorFlow's CUDA runtime loader says 'Could not find cuda drivers on your machine': "
        "it could not load the CUDA runtime library (the message blames the driver, but the "
        "runtime is what failed to load).",
    )


def _build_dll_load_failed(m: re.Match[str], ctx: _Context) -> Finding | None:
    module = m.group("module") or (
        "_pywrap_tensorflow_internal" if "_pywrap_tensorflow_internal" in ctx.stderr else ""
    )
    reason = m.group("reason").strip()
    parts = [
        f"Python: DLL load failed{' while importing ' + module if module else ''}: {reason}",
        "Windows does not say which DLL it could not load.",
    ]
    missing_runtime = [
        dll.name for dll in (ctx.inventory.runtime if ctx.inventory else ()) if dll.path is None
    ] + [res.wanted for res in ctx.role_resolutions("msvc_runtime") if res.resolved is None]
    missing_runtime = list(dict.fromkeys(missing_runtime))
    if missing_runtime:
        parts.append(f"The monitor finds no {', '.join(missing_runtime)} on this machine.")
    if "initialization routine failed" in reason.lower():
        parts.append(
            "This message usually means the CPU lacks AVX (which TensorFlow's wheels need) or an "
            "old copy of the VC++ runtime DLLs is found first (e.g. one beside python.exe)."
        )
    fix = (
        VC_REDIST,
        "Check that the CPU supports AVX (TensorFlow's Windows wheels need it), e.g. with "
        "Sysinternals Coreinfo.",
        "If it still fails, reinstall TensorFlow: "
        + ctx.pip("install", "--force-reinstall", "--no-cache-dir", _tf_spec(ctx)),
    )
    return _error(
        LIBRARY,
        Link.RUNTIME if missing_runtime else Link.LIBRARIES,
        f"Windows could not load a DLL that {module or 'TensorFlow'} needs",
        parts,
        fix,
        subject=module or "DLL",
    )


def _build_missing_dlls(m: re.Match[str], ctx: _Context) -> Finding | None:
    names = [n.strip() for n in re.split(r"\s+or\s+|\s*,\s*", m.group("libs")) if n.strip()]
    subject = " or ".join(names)
    parts = [f"TensorFlow's import check could not load {subject}: {_ROLE_WORDS['msvc_runtime']}."]
    parts += [_describe_resolution(ctx.resolution(name), name) for name in names]
    return _error(
        LIBRARY,
        Link.RUNTIME,
        f"TensorFlow could not find {subject}",
        parts,
        (VC_REDIST, "Open a new terminal (or sign out and in) and run the load test again."),
        subject=subject,
    )


# --------------------------------------------------------------------------- TensorFlow itself

_TF_FAMILY = frozenset(
    {
        "tensorflow",
        "tensorflow-gpu",
        "tensorflow-cpu",
        "tensorflow-intel",
        "intel-tensorflow",
        "tensorflow-macos",
        "tensorflow-aarch64",
        "tensorflow-cpu-aws",
        "tensorflow-rocm",
    }
)
_DEFAULT_UNINSTALL = (
    "tensorflow",
    "tensorflow-gpu",
    "tensorflow-cpu",
    "tensorflow-intel",
    "tf-nightly",
)


def _tf_distributions(ctx: _Context, with_keras: bool = False) -> list[str]:
    env = ctx.env()
    found = []
    for dist in env.distributions if env else ():
        name = normalize_name(dist.name)
        is_tf = name in _TF_FAMILY or name.startswith("tf-nightly")
        if is_tf or (with_keras and name in ("keras", "tf-keras")):
            found.append((name, dist.version))
    return [f"{name} {version}" for name, version in found]


def _import_finding(ctx: _Context, title: str, what: str, keras: bool = False) -> Finding:
    dists = _tf_distributions(ctx, with_keras=keras)
    parts = [what]
    if dists:
        parts.append(f"Installed: {', '.join(dists)}.")
        if len([d for d in dists if not d.startswith(("keras ", "tf-keras "))]) > 1:
            parts.append(
                "Several TensorFlow distributions write into the same tensorflow/ folder: the "
                "files of one overwrite the other's."
            )
    tf = ctx.tf()
    if tf is not None and tf.missing_files:
        shown = ", ".join(tf.missing_files[:3])
        more = f" and {len(tf.missing_files) - 3} more" if len(tf.missing_files) > 3 else ""
        parts.append(f"Files of TensorFlow's own install are missing: {shown}{more}.")
    names = [d.split(" ")[0] for d in dists] or list(_DEFAULT_UNINSTALL)
    fix = (
        ctx.pip("uninstall", "-y", *names),
        ctx.pip("install", "--no-cache-dir", _tf_spec(ctx)),
    )
    return _error(IMPORT, Link.TENSORFLOW, title, parts, fix)


def _build_tf_own_unloadable(m: re.Match[str], ctx: _Context) -> Finding | None:
    """One of TensorFlow's own native libraries is gone or damaged: a broken install."""
    name = basename(m.group("lib"))
    if not _TF_OWN.search(name):
        return None
    return _import_finding(
        ctx,
        f"TensorFlow's own {name} cannot be loaded: the install is broken",
        f"Python: {m.group(0).strip()}",
    )


def _build_no_module(m: re.Match[str], ctx: _Context) -> Finding | None:
    module = m.group("mod")
    if module == "tensorflow":
        return _error(
            IMPORT,
            Link.TENSORFLOW,
            f"TensorFlow is not installed for {ctx.python or 'this interpreter'}",
            f"Python: {m.group(0)}",
            (ctx.pip("install", _tf_spec(ctx)),),
        )
    return _import_finding(
        ctx,
        f"TensorFlow's install is broken: module {module} is missing",
        f"Python: {m.group(0)}. Part of TensorFlow's own files are gone or come from another "
        "version.",
        keras=module.startswith(("keras", "tf_keras")),
    )


def _build_cannot_import(m: re.Match[str], ctx: _Context) -> Finding | None:
    module = m.group("mod")
    return _import_finding(
        ctx,
        f"TensorFlow's install is broken: {module} has no {m.group('name')}",
        f"Python: {m.group(0)}. Modules of different TensorFlow (or Keras) versions are mixed.",
        keras=module.startswith(("keras", "tf_keras")),
    )


def _build_no_attribute(m: re.Match[str], ctx: _Context) -> Finding | None:
    return _import_finding(
        ctx,
        f"TensorFlow's install is broken: tensorflow has no {m.group('name')}",
        f"Python: {m.group(0)}. The tensorflow package is incomplete, or a file or folder named "
        "tensorflow shadows it.",
    )


def _build_tf_undefined_symbol(m: re.Match[str], ctx: _Context) -> Finding | None:
    name = basename(m.group("lib"))
    if not _TF_OWN.search(name):
        return None
    return _import_finding(
        ctx,
        f"TensorFlow's own libraries do not match each other ({name})",
        f"{name} misses a symbol another part of TensorFlow provides ({m.group(0).strip()}): "
        "files of two TensorFlow versions are mixed.",
    )


def _build_native_runtime(m: re.Match[str], ctx: _Context) -> Finding | None:
    return _import_finding(
        ctx,
        "TensorFlow's native runtime does not load",
        f"Python: {m.group(0).strip()}",
    )


# --------------------------------------------------------------------------- driver and device


def _driver_floor(ctx: _Context) -> tuple[str | None, str | None]:
    """(toolkit floor, minor-version-compatibility floor) for TF's CUDA on this OS."""
    cuda = ctx.cuda_version()
    platform = fixes.driver_platform(ctx.host)  # WSL2 runs the Windows driver
    floor = compat.toolkit_min_driver(cuda, platform)
    minor = compat.minor_compat_min_driver(cuda, platform)
    return (floor.min_driver if floor else None, minor.min_driver if minor else None)


def _build_driver_old(m: re.Match[str], ctx: _Context) -> Finding | None:
    driver = ctx.inventory.driver if ctx.inventory else None
    parts = [f"CUDA: {m.group(0).strip()}."]
    if driver is not None and driver.driver_version:
        supports = (
            f" (supports CUDA up to {driver.cuda_driver_version})"
            if driver.cuda_driver_version
            else ""
        )
        parts.append(f"Installed driver: {driver.driver_version}{supports}.")
    floor, minor = _driver_floor(ctx)
    cuda = ctx.cuda_version()
    if floor and cuda:
        text = (
            f"TensorFlow {ctx.tf_version()} uses CUDA {cuda}, which needs driver {floor} or newer"
        )
        if minor and minor != floor:
            text += f" ({minor} at the very least, through CUDA minor-version compatibility)"
        parts.append(text + ".")
    return _error(
        DRIVER,
        Link.DRIVER,
        "The NVIDIA driver is too old for the CUDA version TensorFlow uses",
        parts,
        (
            *fixes.driver_install_steps(ctx.host, floor),
            "Or use a TensorFlow release built for an older CUDA that this driver supports.",
        ),
    )


def _build_driver_mismatch(m: re.Match[str], ctx: _Context) -> Finding | None:
    driver = ctx.inventory.driver if ctx.inventory else None
    parts = [f"CUDA: {m.group(0).strip()}."]
    kernel = m.groupdict().get("kernel")
    library = m.groupdict().get("dso")
    if not kernel and driver is not None and driver.kernel_module_version:
        kernel, library = driver.kernel_module_version, driver.driver_version
    if kernel and library and kernel != library:
        parts.append(
            f"The loaded kernel module is {kernel}, but the driver libraries are {library}: "
            "typically a driver update that has not been followed by a reboot."
        )
    fix = (
        *fixes.reboot_steps(ctx.host),
        "If it persists, reinstall the NVIDIA driver so that the kernel module and the libraries "
        "come from the same version.",
    )
    if not ctx.windows:
        fix += (
            "In a container: do not install a driver or CUDA compat package in the image; the "
            "host's driver is mounted in by the NVIDIA container toolkit.",
        )
    return _error(
        DRIVER,
        Link.DRIVER,
        "The NVIDIA driver's kernel module and libraries do not match",
        parts,
        fix,
    )


def _hides_all_gpus(value: str, count: int) -> bool:
    """Whether CUDA_VISIBLE_DEVICES leaves no GPU (CUDA stops at the first invalid entry)."""
    text = value.strip()
    if text in ("", "-1", "none", "NoDevFiles"):
        return True
    first = text.split(",")[0].strip()
    if first.upper().startswith(("GPU-", "MIG-")):
        return False  # a UUID: cannot tell from here
    try:
        index = int(first)
    except ValueError:
        return True
    return index < 0 or (count > 0 and index >= count)


_DRIVER_NOT_RUNNING = re.compile(
    r"kernel driver does not appear to be running on this host|"
    r"/proc/driver/nvidia/version does not exist",
    re.IGNORECASE,
)


def _build_no_device(m: re.Match[str], ctx: _Context) -> Finding | None:
    driver = ctx.inventory.driver if ctx.inventory else None
    gpus = driver.gpus if driver else ()
    names = ", ".join(g.name or f"GPU {g.index}" for g in gpus)
    visible = ctx.variable("CUDA_VISIBLE_DEVICES")
    parts = [f"CUDA: {m.group(0).strip()}."]
    if visible is not None and _hides_all_gpus(visible, len(gpus)):
        title = f"CUDA_VISIBLE_DEVICES={visible!r} hides every GPU"
        if gpus:
            parts.append(f"The driver sees {len(gpus)}: {names}.")
        fix: tuple[str, ...] = (
            "Unset CUDA_VISIBLE_DEVICES (or set it to the index of the GPU to use, e.g. 0) "
            "where TensorFlow runs.",
        )
    elif _DRIVER_NOT_RUNNING.search(ctx.stderr) or (driver is not None and not driver.nvml_loaded):
        title = "No GPU: the NVIDIA kernel driver is not running"
        if driver is not None and driver.error:
            parts.append(f"NVML: {driver.error}.")
        fix = fixes.driver_install_steps(ctx.host)
        if not ctx.windows:
            fix += (
                "If a driver is installed: with Secure Boot on, enroll the driver's signing key "
                "(MOK) or the kernel refuses the module; check with: lsmod | grep nvidia",
            )
    elif gpus:
        title = "CUDA finds no GPU, although the driver sees one"
        parts.append(f"NVML sees: {names}.")
        fix = (
            "In a container: start it with the GPU passed in (docker run --gpus all ...).",
            "Check that this user may open /dev/nvidia* (on some distributions: the video or "
            "render group).",
            "If the GPU fell off the bus (Xid errors in dmesg), reboot.",
        )
    else:
        title = "CUDA finds no GPU"
        fix = fixes.driver_install_steps(ctx.host)
    return _error(NO_DEVICE, Link.GPU, title, parts, fix)


# --------------------------------------------------------------------------- cuDNN, cuBLAS, memory


def _cudnn_version_text(raw: str) -> str:
    """cuDNN's integer versions as dotted ones: 7201 -> 7.2.1, 90100 -> 9.1.0."""
    if "." in raw or not raw.isdigit():
        return raw
    number = int(raw)
    if number >= 10000:  # cuDNN 9+: major * 10000 + minor * 100 + patch
        return f"{number // 10000}.{number % 10000 // 100}.{number % 100}"
    return f"{number // 1000}.{number % 1000 // 100}.{number % 100}"


def _memory_steps(ctx: _Context) -> list[str]:
    steps = []
    if ctx.gpu_processes:
        steps.append(
            "Close the programs that hold GPU memory, or wait for them to finish: "
            + _process_list(ctx.gpu_processes)
        )
    steps.append(
        "Let TensorFlow take GPU memory as it needs it instead of all at once: set "
        "TF_FORCE_GPU_ALLOW_GROWTH=true (or call tf.config.experimental.set_memory_growth)."
    )
    return steps


def _process_list(processes: Sequence[GpuProcess]) -> str:
    ordered = sorted(processes, key=lambda p: -p[2])
    return "; ".join(f"{name} (pid {pid}, {mib:,} MiB)" for pid, name, mib in ordered)


def _cudnn_state(ctx: _Context) -> list[str]:
    """What TF wants and what the loader picks, as sentences ("" where unknown)."""
    built = ctx.cudnn_version()
    res = next(iter(ctx.role_resolutions("cudnn")), None)
    return [
        f"TensorFlow {ctx.tf_version()} was built with cuDNN {built}." if built else "",
        _describe_resolution(res, res.wanted) if res else "",
    ]


def _build_cudnn_init(m: re.Match[str], ctx: _Context) -> Finding | None:
    status = re.search(r"CUDNN_STATUS_[A-Z_]+", ctx.stderr)
    code = status.group(0) if status else ""
    not_found = "dnn library is not found" in m.group(0).lower()
    parts = [f"TensorFlow: {m.group(0).strip()}."]
    if code and code != m.group(0).strip():
        parts.append(f"cuDNN status: {code}.")
    parts += _cudnn_state(ctx)
    if not_found:
        title = "TensorFlow found no usable cuDNN"
        fix = _cuda_library_steps(ctx, "cudnn")
    else:
        title = f"cuDNN failed to start{': ' + code if code else ''}"
        parts.append(
            "cuDNN usually fails to start when the GPU has no free memory left (another "
            "process, or TensorFlow took it all up front) or when the cuDNN loaded is not the "
            "one TensorFlow was built for."
        )
        fix = _memory_steps(ctx) + _cuda_library_steps(ctx, "cudnn")
    return _error(CUDNN_INIT, Link.CUDNN, title, parts, fix)


def _build_cudnn_version(m: re.Match[str], ctx: _Context) -> Finding | None:
    loaded = _cudnn_version_text(m.group("loaded"))
    built = _cudnn_version_text(m.group("built"))
    parts = [
        f"cuDNN {loaded} was loaded, but this TensorFlow was compiled with cuDNN {built}; it "
        "needs the same major version and an equal or newer minor version."
    ]
    res = next(iter(ctx.role_resolutions("cudnn")), None)
    parts.append(_describe_resolution(res, res.wanted) if res else "")
    fix: list[str] = []
    if res is not None and res.resolved is not None and res.resolved.via == "LD_LIBRARY_PATH":
        fix.append(
            f"Remove {posixpath.dirname(res.resolved.path)} from LD_LIBRARY_PATH: it puts "
            "another cuDNN ahead of the one TensorFlow needs."
        )
    built_major = major_minor(built)
    major = _cuda_major(ctx)
    if _pip_era(ctx) and built_major and major:
        fix.append(ctx.pip("install", f"nvidia-cudnn-cu{major}>={built},<{built_major[0] + 1}"))
    else:
        fix.append(
            f"Install cuDNN {built} or a newer {built_major[0] if built_major else ''}.x and make "
            "it the one the loader finds first."
        )
    return _error(
        CUDNN_VERSION,
        Link.CUDNN,
        f"cuDNN {loaded} is loaded, but TensorFlow was built with cuDNN {built}",
        parts,
        fix,
    )


def _build_cublas(m: re.Match[str], ctx: _Context) -> Finding | None:
    status = re.search(r"CUBLAS_STATUS_[A-Z_]+", m.string)
    code = status.group(0) if status else ""
    parts = [f"TensorFlow: {m.group(0).strip()}."]
    if code in ("CUBLAS_STATUS_ALLOC_FAILED", "CUBLAS_STATUS_NOT_INITIALIZED"):
        parts.append(
            f"{code} usually means the GPU had no free memory left when cuBLAS started "
            "(another process, or TensorFlow took it all up front)."
        )
    fix = _memory_steps(ctx) + _cuda_library_steps(ctx, "cublas")
    return _error(
        CUBLAS, Link.LIBRARIES, f"cuBLAS failed to start{': ' + code if code else ''}", parts, fix
    )


def _build_oom(m: re.Match[str], ctx: _Context) -> Finding | None:
    size = re.search(r"failed to allocate (\S+) \((\d+) bytes\)", m.string)
    shape = re.search(r"OOM when allocating tensor with shape\s*(\[[^\]]*\])", m.string)
    if size:
        parts = [
            f"TensorFlow could not allocate {size.group(1)} ({size.group(2)} bytes) on the GPU."
        ]
    elif shape:
        parts = [f"TensorFlow could not allocate a tensor of shape {shape.group(1)} on the GPU."]
    else:
        parts = [f"TensorFlow: {_sentence(m.group(0))}"]
    driver = ctx.inventory.driver if ctx.inventory else None
    if driver is not None and driver.gpus and driver.gpus[0].memory_total_mib:
        gpu = driver.gpus[0]
        parts.append(f"{gpu.name or 'GPU 0'} has {gpu.memory_total_mib:,} MiB in all.")
    if ctx.gpu_processes:
        parts.append("Other processes hold GPU memory: " + _process_list(ctx.gpu_processes) + ".")
    return _error(
        OOM,
        Link.GPU,
        "The GPU ran out of memory",
        parts,
        (*_memory_steps(ctx), "Then run the load test again."),
    )


# --------------------------------------------------------------------------- XLA, CPU, crashes


def _searched_dirs(stderr: str) -> list[str]:
    lines = stderr.splitlines()
    for index, line in enumerate(lines):
        if "Searched for CUDA in the following directories" in line:
            found = []
            for following in lines[index + 1 : index + 10]:
                if not following.startswith(" "):
                    break
                found.append(following.strip())
            return found
    return []


def _build_ptxas(m: re.Match[str], ctx: _Context) -> Finding | None:
    libdevice = "libdevice" in m.group(0).lower()
    what = "libdevice (nvvm/libdevice/libdevice.10.bc)" if libdevice else "ptxas"
    parts = [
        f"TensorFlow: {m.group(0).strip()}.",
        "XLA (used by jit_compile and some Keras models) compiles GPU code with CUDA's ptxas "
        f"and libdevice, which are not part of the CUDA runtime libraries; it did not find {what}.",
    ]
    searched = _searched_dirs(ctx.stderr)
    if searched:
        parts.append(f"It looked in: {', '.join(searched)}.")
    fix: list[str] = []
    setter = "set" if ctx.windows else "export"
    dists = ctx.env().distributions if ctx.env() else ()
    nvcc = next((d for d in dists if normalize_name(d.name).startswith("nvidia-cuda-nvcc")), None)
    if nvcc is not None and nvcc.location:  # the wheel is there: point XLA at it
        join = ntpath.join if ctx.windows else posixpath.join
        where = join(nvcc.location, "nvidia", "cuda_nvcc")
        fix.append(f"{setter} XLA_FLAGS=--xla_gpu_cuda_data_dir={where}")
    elif _pip_era(ctx):
        fix.append(ctx.pip("install", f"nvidia-cuda-nvcc-cu{_cuda_major(ctx) or 12}"))
    toolkits = ctx.inventory.toolkits if ctx.inventory else ()
    toolkit = next((t for t in toolkits if t.active), toolkits[0] if toolkits else None)
    if toolkit is not None:
        fix.append(f"{setter} XLA_FLAGS=--xla_gpu_cuda_data_dir={toolkit.root}")
    elif not fix:
        fix.append(
            f"{setter} XLA_FLAGS=--xla_gpu_cuda_data_dir=<the CUDA folder that holds "
            "nvvm/libdevice and bin/ptxas>"
        )
    return _error(
        PTXAS,
        Link.CUDA,
        f"XLA cannot find CUDA's {'libdevice' if libdevice else 'ptxas'}",
        parts,
        fix,
    )


def _illegal_finding(ctx: _Context, evidence: str, isa: str | None) -> Finding:
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
    return _error(
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


def _build_illegal(m: re.Match[str], ctx: _Context) -> Finding | None:
    isa = m.groupdict().get("isa")
    return _illegal_finding(ctx, f"Log: {m.group(0).strip()}.", isa)


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


def _crash_finding(ctx: _Context, name: str | None, evidence: str) -> Finding:
    what = name or "a crash"
    parts = [f"The load test died {_step_text(ctx.last_step)}: {evidence}."]
    note = _SIGNAL_NOTES.get(name or "")
    if note:
        parts.append(f"{what}: {note}.")
    fatal = _FATAL_LINE.search(ctx.stderr)
    if fatal:
        parts.append(f"The fatal message: {fatal.group(0).strip()}")
    detail = " ".join(parts)
    tail = tail_lines(ctx.stderr, _TAIL_IN_DETAIL)
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
            + ctx.pip("install", "--force-reinstall", _tf_spec(ctx)),
            "Update the NVIDIA driver.",
        )
    return _error(
        CRASHED,
        Link.TENSORFLOW,
        f"The GPU load test crashed ({what}) {_step_text(ctx.last_step)}",
        detail,
        fix,
    )


def _build_crash_text(m: re.Match[str], ctx: _Context) -> Finding | None:
    name = signal_name(ctx.exit_code, ctx.os_name)
    return _crash_finding(ctx, name, f"its output says '{m.group(0).strip()}'")


def _build_libs_skipped(m: re.Match[str], ctx: _Context) -> Finding | None:
    parts = [
        "TensorFlow could not load all the CUDA libraries it needs, so it registered no GPU "
        "and runs on the CPU."
    ]
    missing = [
        res
        for res in (ctx.inventory.libraries if ctx.inventory else ())
        if res.required
        and res.resolved is None
        and (not res.python or _same_path(res.python, ctx.python, ctx.windows))
    ]
    fix: list[str] = []
    if missing:
        parts.append(
            "The monitor's loader check finds none of: "
            + ", ".join(res.wanted for res in missing)
            + "."
        )
        for res in missing:
            for step in _library_fixes(ctx, res.wanted, res.role, "", res):
                if step not in fix:
                    fix.append(step)
    else:
        fix.extend(_cuda_library_steps(ctx, ""))
    fix.append(
        "To see which library failed, run TensorFlow with TF_CPP_VMODULE=dso_loader=1 (recent "
        "versions name the failed loads only then)."
    )
    return _error(
        LIBS_SKIPPED,
        Link.LIBRARIES,
        "TensorFlow skipped the GPU: some CUDA libraries could not be loaded",
        parts,
        fix,
    )


# --------------------------------------------------------------------------- the table

_SO = r"[\w.+-]+?\.so(?:\.\d+)*"

RULES: tuple[Rule, ...] = (
    # -- the driver
    _rule(
        DRIVER,
        r"CUDA driver version is insufficient for CUDA runtime version|cudaErrorInsufficientDriver"
        r"|CUDA_ERROR_UNSUPPORTED_PTX_VERSION|the provided PTX was compiled with an unsupported "
        r"toolchain",
        _build_driver_old,
    ),
    _rule(
        DRIVER,
        r"kernel version (?P<kernel>[\d.]+) does not match DSO version (?P<dso>[\d.]+)"
        r"|CUDA_ERROR_SYSTEM_DRIVER_MISMATCH|system has unsupported display driver / cuda driver "
        r"combination|Driver/library version mismatch",
        _build_driver_mismatch,
    ),
    # -- the CPU
    _rule(
        ILLEGAL,
        r"compiled to use (?P<isa>\w+) instructions, but these aren't available on your machine",
        _build_illegal,
    ),
    _rule(ILLEGAL, r"\bIllegal instruction\b", _build_illegal),
    # -- libraries (first rule per line wins: the dlopen message before its dlerror part)
    _rule(
        LIBRARY,
        r"Could not (?:load dynamic library|dlopen library) '(?P<lib>[^']+)'"
        r"(?:; dlerror: (?P<err>[^;]*))?",
        _build_dlopen,
    ),
    _rule(
        LIBRARY,
        r"Could not load library (?P<lib>[\w.+-]+?)\. Error(?: code (?P<code>\d+)|: (?P<err>.*))",
        _build_load_library,
    ),
    _rule(LIBRARY, r"Could not locate (?P<lib>zlibwapi\.dll)", _build_shared_object),
    _rule(
        LIBRARY,
        r"DLL load failed(?: while importing (?P<module>\w+))?: (?P<reason>.*)",
        _build_dll_load_failed,
    ),
    _rule(LIBRARY, r"Could not find the DLL\(s\) '(?P<libs>[^']+)'", _build_missing_dlls),
    _rule(
        LIBRARY,
        r"Could not find cuda drivers on your machine, GPU will not be used",
        _build_cudart_stub,
    ),
    _rule(
        IMPORT,
        r"(?<!\S)(?P<lib>\S+?\.(?:so[\w.]*|pyd|dll)): undefined symbol: (?P<sym>\S+)",
        _build_tf_undefined_symbol,
    ),
    _rule(
        LIBRARY,
        r"(?<!\S)(?P<lib>\S+?\.(?:so[\w.]*|pyd|dll)): undefined symbol: (?P<sym>\S+)",
        _build_undefined_symbol,
    ),
    _rule(
        IMPORT,
        r"(?<![^\s:'\"])(?P<lib>[^\s:'\"]+\.so[\w.]*): "
        r"(?:cannot open shared object file|file too short|invalid ELF header)",
        _build_tf_own_unloadable,
    ),
    _rule(LIBRARY, rf"(?P<lib>\b{_SO}): cannot open shared object file", _build_shared_object),
    _rule(LIBRARY, r"\b(?P<lib>[\w.+-]+\.dll) not found", _build_shared_object),
    # -- TensorFlow's own modules
    _rule(
        IMPORT,
        r"No module named '(?P<mod>(?:tensorflow|tensorflow_core|keras|tf_keras)(?:\.[\w.]+)?)'",
        _build_no_module,
    ),
    _rule(
        IMPORT,
        r"cannot import name '(?P<name>\w+)' from '(?P<mod>(?:tensorflow|keras|tf_keras)[\w.]*)'",
        _build_cannot_import,
    ),
    _rule(
        IMPORT,
        r"module '(?P<mod>tensorflow[\w.]*)' has no attribute '(?P<name>\w+)'",
        _build_no_attribute,
    ),
    _rule(
        IMPORT,
        r"Failed to load the native TensorFlow runtime"
        r"|No module named '_?pywrap_tensorflow_internal'",
        _build_native_runtime,
        unless=(LIBRARY, ILLEGAL),
    ),
    # -- cuDNN
    _rule(
        CUDNN_VERSION,
        r"Loaded runtime CuDNN library: (?P<loaded>\d+(?:\.\d+)*)(?: \(compatibility version "
        r"[\d.]+\))? but source was compiled with:? (?P<built>\d+(?:\.\d+)*)",
        _build_cudnn_version,
    ),
    _rule(
        CUDNN_INIT,
        r"Could not create cudnn handle[^\n]*|DNN library is not found|Failed to get convolution "
        r"algorithm|cuDNN failed to initialize|CUDNN_STATUS_(?!SUCCESS)[A-Z_]+",
        _build_cudnn_init,
    ),
    # -- the device
    _rule(
        NO_DEVICE,
        r"failed call to cuInit: CUDA_ERROR_NO_DEVICE[^\n]*|CUDA_ERROR_NO_DEVICE|no CUDA-capable "
        r"device is detected|cudaErrorNoDevice|kernel driver does not appear to be running on "
        r"this host",
        _build_no_device,
        unless=(DRIVER,),
    ),
    _rule(NO_DEVICE, r"failed call to cuInit: [^\n]*", _build_no_device, unless=(DRIVER, LIBRARY)),
    # -- XLA's compiler tools
    _rule(
        PTXAS,
        r"Couldn't (?:get ptxas version|invoke ptxas)[^\n]*|ptxas not found|Failed to launch "
        r"ptxas|No PTX compilation provider is available|Couldn't find a suitable version of ptxas",
        _build_ptxas,
    ),
    _rule(
        PTXAS,
        r"libdevice not found[^\n]*|Can't find libdevice directory \S*|libdevice is required by "
        r"this HLO module but was not found[^\n]*",
        _build_ptxas,
    ),
    # -- memory, cuBLAS
    _rule(
        OOM,
        r"CUDA_ERROR_OUT_OF_MEMORY|OOM when allocating tensor|ResourceExhaustedError"
        r"|Resource exhausted: OOM|RESOURCE_EXHAUSTED: Out of memory|Out of memory while trying "
        r"to allocate",
        _build_oom,
    ),
    _rule(
        CUBLAS,
        r"failed to create cublas handle[^\n]*|CUBLAS_STATUS_(?!SUCCESS)[A-Z_]+|cublasLt ran into "
        r"an error|Blas \w*GEMM\w* launch failed|perform BLAS operation using StreamExecutor "
        r"without BLAS support",
        _build_cublas,
    ),
    # -- TensorFlow's summary of failed loads
    _rule(
        LIBS_SKIPPED,
        r"Cannot dlopen some GPU libraries|Skipping registering GPU devices",
        _build_libs_skipped,
    ),
    # -- crashes told by the log (the exit status tells the rest)
    _rule(
        CRASHED,
        r"\bSegmentation fault\b|\(core dumped\)|^\s*Aborted\b|Fatal Python error: [^\n]*"
        r"|\bBus error\b",
        _build_crash_text,
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
    ctx = _Context(
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
        findings = [_unknown_finding(ctx)]
    if any(f.id == LIBRARY for f in findings):
        findings = [
            replace(f, severity=Severity.INFO) if f.id == LIBS_SKIPPED else f for f in findings
        ]
    findings.sort(key=lambda f: ORDER.index(f.id))
    return tuple(_with_run_evidence(f, ctx) for f in findings)


Candidate = tuple[Finding, frozenset[str]]


def _status_candidates(ctx: _Context) -> list[Candidate]:
    """What the exit status alone says: a timeout, an illegal instruction, a crash."""
    if ctx.timed_out:
        return [(_timeout_finding(ctx), frozenset())]
    name = signal_name(ctx.exit_code, ctx.os_name)
    if name is None or name in ("SIGINT", "STATUS_CONTROL_C_EXIT"):
        return []
    evidence = describe_exit(ctx.exit_code, ctx.os_name)
    if name in _ILLEGAL_NAMES:
        isa = re.search(r"compiled to use (\w+) instructions", ctx.stderr)
        finding = _illegal_finding(ctx, f"It died of {evidence}.", isa.group(1) if isa else None)
        return [(finding, frozenset())]
    return [(_crash_finding(ctx, name, evidence), CRASH_EXPLAINED_BY | {ILLEGAL})]


def _line_candidates(ctx: _Context) -> list[Candidate]:
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
            if finding is not _IGNORED:
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


def _with_run_evidence(finding: Finding, ctx: _Context) -> Finding:
    extra = [
        ("exit status", "timed out" if ctx.timed_out else describe_exit(ctx.exit_code, ctx.os_name))
    ]
    if ctx.last_step:
        extra.append(("last step", ctx.last_step))
    return replace(finding, evidence=(*finding.evidence, *extra))


def _arch(name: str) -> tuple[str, tuple[int, int]] | None:
    """ "sm_89" -> ("sm", (8, 9)); "compute_90" -> ("compute", (9, 0)); else None."""
    kind, _, digits = name.partition("_")
    if not digits.isdigit() or len(digits) < 2:
        return None
    return kind, (int(digits[:-1]), int(digits[-1]))


def _gpu_without_kernels(ctx: _Context) -> str:
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


def _timeout_finding(ctx: _Context) -> Finding:
    step = ctx.last_step
    on_gpu = step in _GPU_STEPS
    detail = f"The load test did not finish in its time limit; it hung {_step_text(step)}."
    if on_gpu:
        detail += _gpu_without_kernels(ctx)
    tail = tail_lines(ctx.stderr, _TAIL_IN_DETAIL)
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
    return _error(
        TIMEOUT,
        Link.GPU if on_gpu else Link.TENSORFLOW,
        f"The GPU load test hung {_step_text(step)}",
        detail,
        fix,
    )


def _unknown_finding(ctx: _Context) -> Finding:
    tail = tail_lines(ctx.stderr, 20)
    exit_text = describe_exit(ctx.exit_code, ctx.os_name)
    detail = f"The load test ended with {exit_text} {_step_text(ctx.last_step)}."
    detail += (
        "\nThe last lines of its error output:\n" + tail
        if tail
        else " It wrote nothing to its error output."
    )
    return _error(
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
