"""The data model: what the probes found (Inventory) and what the rules concluded (Report).

Everything is a frozen record (monitor/record.py) so a report can be diffed, stored and
re-judged later.
Absence and errors are data: a probe that cannot read something fills the `error` field.
Stdlib only: this module is imported by every other one, and by support-bundle readers.
"""

from __future__ import annotations

import enum
import time
import types
import typing
from typing import Any

from monitor.record import field, fields, is_record, record

INVENTORY_SCHEMA = 1
REPORT_SCHEMA = 1


def utc_now() -> str:
    """Now, as every time in the model is written: ISO 8601, UTC, to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())  # not datetime: 3 ms to import


class Severity(str, enum.Enum):
    """How bad a finding is; the order is the order of the enum."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return {"error": 2, "warning": 1, "info": 0}[self.value]


class Verdict(str, enum.Enum):
    """The one-word state of the whole stack; also the tray icon's state."""

    HEALTHY = "healthy"
    WARNINGS = "warnings"
    BROKEN = "broken"


class Link(str, enum.Enum):
    """The links of the chain, in the order the report shows them."""

    DRIVER = "driver"
    GPU = "gpu"
    CUDA = "cuda"
    CUDNN = "cudnn"
    LIBRARIES = "libraries"
    TENSORFLOW = "tensorflow"
    PYTHON = "python"
    ENVIRONMENT = "environment"
    RUNTIME = "runtime"


# --------------------------------------------------------------------------- host


@record
class HostInfo:
    """The machine the inventory was taken on. `os` is "linux", "windows" or "darwin"."""

    os: str
    os_release: str = ""
    machine: str = ""
    hostname: str = ""
    user: str = ""
    home: str = ""
    is_wsl: bool = False
    root: str = "/"


# --------------------------------------------------------------------------- driver


@record
class GpuInfo:
    """One GPU as NVML reports it. compute_capability is "major.minor", e.g. "8.6".

    error: what failed, "; "-joined as "nvmlDeviceGetName: GPU is lost"; the fields whose query
    failed keep their defaults. error_code: the first failure's NVML name
    ("NVML_ERROR_GPU_IS_LOST").
    """

    index: int
    name: str = ""
    uuid: str = ""
    compute_capability: str | None = None
    memory_total_mib: int | None = None
    pci_bus_id: str = ""
    error: str | None = None
    error_code: str | None = None


@record
class DriverInfo:
    """The NVIDIA driver as seen through NVML and /proc.

    nvml_loaded: the NVML library could be loaded and initialised.
    driver_version: user-space driver version ("550.54.14"), from nvmlSystemGetDriverVersion.
    cuda_driver_version: the newest CUDA the driver supports ("12.4").
    kernel_module_version: from /proc/driver/nvidia/version (Linux), None where absent.
    kernel_module_open: the "Open Kernel Module" flavour (needs a Turing or newer GPU); None
    where the kernel module version is unknown.
    nvml_library: the NVML file the monitor's process loaded, as the loader named it
    ("/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1"); set whenever it loaded, even if init failed.
    nvml_library_version: the driver version in the loaded file's real name
    (libnvidia-ml.so.550.54.14): the user-space version even when nvmlInit fails.
    nvml_library_replaced: the NVML file this process had loaded was since deleted or replaced
    on disk (a driver upgrade while it ran), so the other facts were read by a fresh child
    process: they are what a newly started program (TensorFlow) sees.
    error / error_code: why NVML could not be used: the NVML error text and its symbolic name
    ("NVML_ERROR_LIB_RM_VERSION_MISMATCH"), or "PYNVML_IMPORT_ERROR" when the bindings are
    missing.
    query_errors: (what, error) for facts that could not be read although NVML initialised,
    and for an unreadable or unrecognised /proc version file ("kernel_module_version").
    """

    nvml_loaded: bool = False
    driver_version: str | None = None
    cuda_driver_version: str | None = None
    nvml_version: str | None = None
    kernel_module_version: str | None = None
    nvml_library: str | None = None
    gpus: tuple[GpuInfo, ...] = ()
    error: str | None = None
    error_code: str | None = None
    kernel_module_open: bool | None = None
    nvml_library_version: str | None = None
    nvml_library_replaced: bool = False
    query_errors: tuple[tuple[str, str], ...] = ()


# --------------------------------------------------------------------------- toolkits


@record
class CudaToolkit:
    """One CUDA toolkit install.

    root: the real directory (symlinks followed; several ways to the same root are one toolkit).
    origin: how it was found, "; "-joined when found several ways ("/usr/local/cuda -> cuda-12.4",
    "/usr/local/cuda-*", "/opt/cuda", "CUDA_HOME", "CUDA_PATH", "CUDA_PATH_V12_2", "nvcc on PATH",
    "conda", "Program Files").
    version_source: "version.json", "version.txt", "conda-meta", "nvcc" or "" when unknown.
    error: what went wrong reading it (a garbage version.json, a dangling CUDA_HOME...), even
    when a later source still gave the version.
    active: the toolkit a build or a user's shell would use (first nvcc on PATH, else CUDA_HOME /
    CUDA_PATH).
    """

    root: str
    version: str | None = None
    version_source: str = ""
    origin: str = ""
    active: bool = False
    error: str | None = None


@record
class CudnnInstall:
    """One cuDNN found on disk.

    source: "header" (cudnn_version.h / cudnn.h), "library" (a libcudnn file), "pip"
    (nvidia-cudnn-cu* wheel under site-packages/nvidia/cudnn).
    location: the header or library file (symlinks followed), or the wheel's nvidia/cudnn dir.
    """

    location: str
    version: str | None = None
    source: str = ""
    error: str | None = None


# --------------------------------------------------------------------------- python / tensorflow


@record
class Distribution:
    """An installed Python distribution (from its dist-info), e.g. tensorflow 2.21.0.

    name: PEP 503 normalised ("nvidia-cuda-runtime-cu12"). version: METADATA's, else the
    dist-info directory name's. location: the sys.path directory holding the dist-info.
    """

    name: str
    version: str
    location: str = ""


@record
class TensorflowBuild:
    """What the installed TensorFlow was built for, read from files (never imported).

    package_dir: the directory holding TF's code: site-packages/tensorflow, or the sibling
    tensorflow_core for TF 2.0/2.1.
    distribution: the distribution whose RECORD owns that package ("tensorflow",
    "tensorflow-gpu", "tensorflow-intel" behind the Windows stub...; "" when none has metadata).
    version: that distribution's version, else tensorflow/include/.../version.h.
    is_cuda_build, cuda_version, cudnn_version, compute_capabilities: from build_info, as
    written (Windows 2.10: "64_112" / "64_8"); cuda_version_number / cudnn_version_number in
    the 2.0-2.2 format.
    build_info: the raw key/value pairs of tensorflow/python/platform/build_info.py in file
    order, values as strings (lists joined with ",", booleans "True"/"False").
    runpath: the RUNPATH (else RPATH) entries of TF's own shared objects
    (libtensorflow_framework.so.2 first, then libtensorflow_cc.so.2 and
    python/_pywrap_tensorflow_internal.so), $ORIGIN expanded, deduplicated, in order; entries
    that do not exist are kept (the loader tries them too).
    missing_files: TF's own native files (.so, .so.N, .pyd, .dll, .dylib) listed in its RECORD
    but absent on disk (a dangling symlink counts); without a RECORD, the few every TF has.
    requires: the Requires-Dist lines of the TF distribution, markers included.
    error: "; "-joined problems reading it (build_info.py missing or unparsable, package
    directory deleted); the other fields hold what could still be read.
    """

    package_dir: str
    distribution: str = ""
    version: str = ""
    is_cuda_build: bool | None = None
    cuda_version: str | None = None
    cudnn_version: str | None = None
    compute_capabilities: tuple[str, ...] = ()
    build_info: tuple[tuple[str, str], ...] = ()
    runpath: tuple[str, ...] = ()
    missing_files: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    error: str | None = None


@record
class PythonEnv:
    """A watched interpreter and what it has installed.

    executable: as given (not resolved). version: "3.11.7"; platform: sys.platform.
    sys_path: the interpreter's sys.path (PYTHONPATH, .pth files and the user site included;
    the "" of `-c` left out). site_packages: site.getsitepackages() plus the user site when
    enabled, existing or not.
    distributions: tensorflow*, tf-nightly*, keras, tf-keras, nvidia-*, torch, jax, jaxlib,
    jax-cuda*, in import order. A name can appear twice: a shadowed copy in a later sys.path
    directory (the first is imported), or a stale dist-info beside the real one.
    tensorflow: the TensorFlow `import tensorflow` would find; None when there is none.
    error: the interpreter could not be asked (not found, not executable, timed out, crashed,
    no answer); then only `executable` is set.
    """

    executable: str
    version: str = ""
    bits: int = 64
    platform: str = ""
    prefix: str = ""
    sys_path: tuple[str, ...] = ()
    site_packages: tuple[str, ...] = ()
    distributions: tuple[Distribution, ...] = ()
    tensorflow: TensorflowBuild | None = None
    error: str | None = None


# --------------------------------------------------------------------------- libraries


@record
class LibraryFile:
    """A shared library file on disk.

    via: why the loader looks there: "LD_LIBRARY_PATH", "RUNPATH", "ld.so.cache", "default",
    "pip", "PATH", "CUDA_PATH", "application dir", "System32", "add_dll_directory".
    Also "RPATH" (a caller without RUNPATH), "Windows dir", "DLL load dir" (the directory of the
    .pyd whose imports these are); and, for candidates the loader would not look at, "toolkit"
    (a CUDA toolkit's lib dirs), "conda", "driver" (NVIDIA driver dirs such as /usr/lib/wsl/lib
    or NVSMI), "ld.so.conf" (listed there but not in the cache: ldconfig was not run).
    version: the library's own version where it could be told ("12.9.79", "9.3.0").
    version_source: "soname", "file name", "version function", "".
    real_path: the file `path` leads to after following symlinks ("" when not followed or
    the same); its name is where a "file name" version comes from.
    error: why the loader would skip it ("wrong ELF class: 32-bit") or fail on it ("not an
    ELF file"); on a resolved file it means the load fails.
    """

    path: str
    via: str = ""
    soname: str | None = None
    version: str | None = None
    version_source: str = ""
    error: str | None = None
    real_path: str = ""


@record
class LibraryResolution:
    """Which file the OS loader would pick for one library that TensorFlow needs.

    role: "cudart", "cublas", "cublasLt", "cufft", "curand", "cusolver", "cusparse", "cudnn",
    "nvml", "cuda_driver", "msvc_runtime", ...
    wanted: the file name TF asks for ("libcudnn.so.9", "cudnn64_8.dll").
    python: the watched interpreter this resolution is for ("" when not tied to one).
    resolved: what the loader would load, or None when not found.
    candidates: every other file with that name or role found on the machine (shadowed copies,
    other majors), for evidence.
    required: TF cannot use the GPU without it (False: cupti, nccl, nvml... degrade features).
    on_path_only: Windows: found on PATH but not in the directories a Python >= 3.8 extension
    module's dependencies are searched in.
    searched: the directories the loader would try, in order, each as "via: directory".
    """

    role: str
    wanted: str
    python: str = ""
    required: bool = True
    resolved: LibraryFile | None = None
    candidates: tuple[LibraryFile, ...] = ()
    on_path_only: LibraryFile | None = None
    note: str = ""
    searched: tuple[str, ...] = ()


# --------------------------------------------------------------------------- environment


@record
class PathEntry:
    """One directory of a search-path variable, in order, as written in the variable.

    An empty or relative entry depends on the current directory of whoever searches: it is not
    checked (exists and is_dir False) and `note` says so. writable_by_others is POSIX only
    (Windows ACLs are not read: always False there). cuda_version: "major.minor" of the CUDA
    toolkit the directory belongs to.
    """

    path: str
    exists: bool = True
    is_dir: bool = True
    writable_by_others: bool = False
    is_system: bool = False
    cuda_version: str | None = None
    note: str = ""


@record
class EnvironmentInfo:
    """The variables that steer the stack, as the monitor's caller sees them.

    variables: the relevant ones (CUDA_*, TF_*, LD_LIBRARY_PATH, PATH, ...), sorted by name.
    path / ld_library_path: the split entries with their properties.
    """

    variables: tuple[tuple[str, str], ...] = ()
    path: tuple[PathEntry, ...] = ()
    ld_library_path: tuple[PathEntry, ...] = ()

    def get(self, name: str) -> str | None:
        for key, value in self.variables:
            if key == name:
                return value
        return None


@record
class RuntimeDll:
    """A Windows C++ runtime DLL (msvcp140.dll, vcruntime140_1.dll...) and where it was found.

    path: None when absent. version: the PE file version ("14.38.33135.0"); error: why the
    version could not be read from a file that is there.
    """

    name: str
    path: str | None = None
    version: str | None = None
    error: str | None = None


# --------------------------------------------------------------------------- inventory


@record
class Inventory:
    """Every fact one check read. Rules judge it; snapshots store it."""

    host: HostInfo
    collected_at: str = ""
    driver: DriverInfo = field(default_factory=DriverInfo)
    toolkits: tuple[CudaToolkit, ...] = ()
    cudnn: tuple[CudnnInstall, ...] = ()
    pythons: tuple[PythonEnv, ...] = ()
    libraries: tuple[LibraryResolution, ...] = ()
    environment: EnvironmentInfo = field(default_factory=EnvironmentInfo)
    runtime: tuple[RuntimeDll, ...] = ()
    probe_errors: tuple[str, ...] = ()
    schema: int = INVENTORY_SCHEMA


# --------------------------------------------------------------------------- findings and report


@record
class Finding:
    """One conclusion of a rule.

    id: stable, kebab-case (`driver-too-old`); tests, history and users key on it.
    subject: what it is about when a rule can fire several times (a library, an interpreter).
    evidence: the facts it used, as (name, value) pairs.
    fix: concrete steps or commands for this OS, in order.
    """

    id: str
    severity: Severity
    link: Link
    title: str
    detail: str = ""
    evidence: tuple[tuple[str, str], ...] = ()
    fix: tuple[str, ...] = ()
    subject: str = ""


@record
class LoadTestStep:
    """One step of the load test child (import, build_info, gpus, matmul, train, memory...).

    ok False with no `detail` never happens: a failed step says why. data: the step's other
    values as strings, for evidence ("device", "/job:localhost/replica:0/task:0/device:GPU:0").
    """

    name: str
    ok: bool = False
    seconds: float = 0.0
    detail: str = ""
    data: tuple[tuple[str, str], ...] = ()


@record
class GpuSample:
    """One GPU as NVML saw it at one moment of a load test.

    t_s: seconds since the load test started. processes: the compute processes on the GPU as
    (pid, used MiB or None where NVML cannot tell); host PIDs: inside a container NVML may
    show other numbers, or none. throttle_reasons: NVML's clock event reason names
    ("sw_power_cap", "hw_thermal_slowdown", ...), idle excluded. None is "NVML could not
    tell"; `error` says why when the whole sample failed.
    """

    index: int
    uuid: str = ""
    name: str = ""
    t_s: float = 0.0
    utilization_gpu: int | None = None
    memory_used_mib: int | None = None
    memory_total_mib: int | None = None
    processes: tuple[tuple[int, int | None], ...] = ()
    sm_clock_mhz: int | None = None
    max_sm_clock_mhz: int | None = None
    throttle_reasons: tuple[str, ...] = ()
    error: str | None = None


@record
class LoadTestResult:
    """The GPU load test of one watched interpreter: did TensorFlow compute on the GPU?

    outcome: "gpu" (matmul on the GPU matched the CPU, and the Keras step passed),
    "cpu-only" (TF works but used no GPU: `findings` say why), "failed" (a step failed, or
    the child exited non-zero), "timeout" (killed after `timeout`), "crashed" (killed by a
    signal / an access violation). ok is outcome == "gpu".
    last_step: the step that was running when the child stopped (the last one started).
    exit_code: the child's return code as subprocess reports it (-11: killed by SIGSEGV);
    signal: that signal's name. gflops: the GPU matmul; cpu_gflops: the CPU matmul (run
    when no GPU was used). gpu_uuid: the NVML GPU the child ran on, where it could be told.
    max_utilization_gpu / child_seen_on_gpu: from the NVML samples (None: NVML unavailable).
    gpu_samples: a thinned-out series of them.
    """

    python: str
    ok: bool = False
    outcome: str = ""
    detail: str = ""
    started_at: str = ""
    duration_s: float = 0.0
    last_step: str | None = None
    steps: tuple[LoadTestStep, ...] = ()
    tf_version: str = ""
    built_with_cuda: bool | None = None
    build_info: tuple[tuple[str, str], ...] = ()
    physical_gpus: int | None = None
    logical_gpus: int | None = None
    device: str = ""
    device_placement: str = ""
    gpu_uuid: str = ""
    matmul_size: int = 0
    gflops: float | None = None
    cpu_gflops: float | None = None
    import_seconds: float | None = None
    peak_memory_mib: float | None = None
    loaded_libraries: tuple[str, ...] = ()
    max_utilization_gpu: int | None = None
    max_memory_used_mib: int | None = None
    child_seen_on_gpu: bool | None = None
    nvml_error: str | None = None
    gpu_samples: tuple[GpuSample, ...] = ()
    exit_code: int | None = None
    signal: str | None = None
    timed_out: bool = False
    stderr_tail: str = ""
    findings: tuple[Finding, ...] = ()


@record
class Report:
    """An inventory, the findings the rules drew from it, and how long it took."""

    inventory: Inventory
    findings: tuple[Finding, ...] = ()
    checked_at: str = ""
    duration_s: float = 0.0
    tool_version: str = ""
    load_tests: tuple[LoadTestResult, ...] = ()
    schema: int = REPORT_SCHEMA

    @property
    def verdict(self) -> Verdict:
        return verdict_of(self.findings)


def verdict_of(findings: typing.Iterable[Finding]) -> Verdict:
    """Broken if any error, warnings if any warning, else healthy (info does not count)."""
    severities = {f.severity for f in findings}
    if Severity.ERROR in severities:
        return Verdict.BROKEN
    if Severity.WARNING in severities:
        return Verdict.WARNINGS
    return Verdict.HEALTHY


# --------------------------------------------------------------------------- the monitor


class ChangeKind(str, enum.Enum):
    """What a trigger saw change; decides whether the daemon also runs the load test."""

    DRIVER = "driver"  # driver version, CUDA driver version, GPU set, NVML gone / back
    TOOLKIT = "toolkit"  # a CUDA toolkit root appeared, vanished or changed
    CUDNN = "cudnn"  # cuDNN files appeared, vanished or changed
    LOADER = "loader"  # /etc/ld.so.conf.d, /etc/ld.so.cache
    PACKAGES = "packages"  # dist-info directories in a watched interpreter's site-packages
    ENVIRONMENT = "environment"  # PATH, LD_LIBRARY_PATH, CUDA_* as the next login sees them
    PERIODIC = "periodic"  # the periodic full check
    MANUAL = "manual"  # "Check now", `check-now`, "Run GPU test"

    @property
    def touches_stack(self) -> bool:
        """Changes after which the load test is re-run too."""
        return self in (
            ChangeKind.DRIVER,
            ChangeKind.TOOLKIT,
            ChangeKind.CUDNN,
            ChangeKind.PACKAGES,
        )


@record
class Change:
    """One change a trigger noticed: what, before, after, when (ISO 8601, UTC).

    subject: the thing that changed, for people ("NVIDIA driver", "/usr/local/cuda-12.4",
    "PATH", "tensorflow in /home/ana/venvs/tf"). before/after: "" where it did not exist.
    """

    kind: ChangeKind
    subject: str
    before: str = ""
    after: str = ""
    at: str = ""


@record
class FactChange:
    """One fact of the stack that differs between two reports ("NVIDIA driver", 535 -> 550)."""

    link: Link
    subject: str
    before: str = ""
    after: str = ""


@record
class ReportDiff:
    """What changed between two reports: facts, findings that appeared and cleared, verdicts.

    before_verdict is None for the first report the monitor ever made.
    """

    before_verdict: Verdict | None
    after_verdict: Verdict
    facts: tuple[FactChange, ...] = ()
    appeared: tuple[Finding, ...] = ()
    cleared: tuple[Finding, ...] = ()

    @property
    def verdict_changed(self) -> bool:
        return self.before_verdict is not None and self.before_verdict != self.after_verdict

    @property
    def empty(self) -> bool:
        return not (self.facts or self.appeared or self.cleared or self.verdict_changed)


class MonitorState(str, enum.Enum):
    """What the tray shows: a verdict, or what the monitor itself is doing."""

    HEALTHY = "healthy"
    WARNINGS = "warnings"
    BROKEN = "broken"
    CHECKING = "checking"
    PAUSED = "paused"
    ERROR = "error"  # the monitor itself failed (the check raised, history unwritable...)


@record
class TimelineEntry:
    """One verdict the monitor recorded, with what changed just before it (for history views).

    summary: one line for people, built from the diff ("driver 535.104 -> 550.54; new error:
    libcudnn.so.8 not found").
    """

    at: str
    verdict: Verdict
    summary: str = ""
    changes: tuple[Change, ...] = ()
    appeared: tuple[str, ...] = ()
    cleared: tuple[str, ...] = ()


# --------------------------------------------------------------------------- JSON


def to_jsonable(value: Any) -> Any:
    """Records to dicts, enums to their values, tuples to lists; recursively."""
    if is_record(value) and not isinstance(value, type):
        return {name: to_jsonable(getattr(value, name)) for name in fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    return value


T = typing.TypeVar("T")


def from_jsonable(cls: type[T], data: Any) -> T:
    """Rebuild a record tree from `to_jsonable` output, guided by the type hints.

    Unknown keys are ignored and missing ones take their defaults, so older and newer
    snapshots still load.
    """
    return typing.cast(T, _convert(cls, data))


def _convert(tp: Any, data: Any) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if data is None:
            return None
        non_none = [a for a in args if a is not type(None)]
        return _convert(non_none[0], data)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], item) for item in data or ())
        return tuple(_convert(a, item) for a, item in zip(args, data, strict=False))
    if is_record(tp):
        if not isinstance(data, dict):
            raise ValueError(f"expected an object for {tp.__name__}, got {type(data).__name__}")
        hints = typing.get_type_hints(tp)
        kwargs = {name: _convert(hints[name], data[name]) for name in fields(tp) if name in data}
        return tp(**kwargs)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp(data)
    if tp is float and isinstance(data, int):
        return float(data)
    return data
