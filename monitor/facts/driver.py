"""The driver probe: NVML (through NVIDIA's pynvml bindings) and /proc/driver/nvidia/version.

The only module that imports pynvml. It is imported lazily, so `check` starts fast and a
missing or wrong binding is a fact (error_code "PYNVML_IMPORT_ERROR"), not a crash.

pynvml keeps one library handle (`pynvml.nvmlLib`) and caches function pointers for the life
of the process. An explicit `library_path` is installed there by hand (ctypes.CDLL of the
absolute path, the pointer cache cleared), so calls with different paths work in one process.
Two things no process can undo in itself, so a fresh child process reads NVML instead:
- the default (`library_path=None`) after an explicit library was loaded: a load of
  libnvidia-ml.so.1 by name would now return the loaded file (the loader matches its soname);
- a loaded library whose file a driver upgrade has since replaced (`nvml_library_replaced`):
  this process still talks through the old one, a new process (TensorFlow) gets the new one.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import os
import re
import subprocess
import sys
import threading
import warnings
from types import ModuleType
from typing import Any

from monitor.facts.paths import Root
from monitor.model import DriverInfo, GpuInfo, from_jsonable, to_jsonable
from monitor.record import replace

SYSTEM_ROOT = Root("/")
PROC_VERSION = "/proc/driver/nvidia/version"
IMPORT_ERROR_CODE = "PYNVML_IMPORT_ERROR"
LINUX_LIBRARY = "libnvidia-ml.so.1"  # the name pynvml loads on Linux
_MIB = 1024 * 1024

# pynvml's module state is process-global: one probe at a time touches it.
_LOCK = threading.Lock()
# Explicit library paths this process has loaded, by absolute path.
_explicit: dict[str, ctypes.CDLL] = {}
# Set in the child process that reads NVML for a parent (no grandchildren).
_CHILD_ENV = "TFSM_DRIVER_PROBE_CHILD"
_CHILD_TIMEOUT_S = 30.0

_NVRM_LINE = re.compile(r"^NVRM version:.*$", re.MULTILINE)
_NVRM_VERSION = re.compile(r"Kernel Module\b.*?\s(\d+\.\d+(?:\.\d+)?)(?=\s|$)")
_LIBRARY_FILE_VERSION = re.compile(r"libnvidia-ml\.so\.(\d+\.\d+(?:\.\d+)?)$")


def probe_driver(root: Root = SYSTEM_ROOT, library_path: str | None = None) -> DriverInfo:
    """What NVML and the kernel module say. Never raises: failures are in the result.

    root: where /proc is read from (tests lay out <root>/proc/driver/nvidia/version); NVML is
    always this machine's. library_path: the NVML library to load instead of the loader's
    libnvidia-ml.so.1 (nvml.dll on Windows).
    """
    kernel_version, kernel_open, kernel_error = read_kernel_module(root)
    try:
        info = _probe_nvml(library_path)
    except Exception as exc:  # a bug of ours or a binding's surprise: still a result
        info = DriverInfo(error=f"driver probe failed: {type(exc).__name__}: {exc}")
    extra = (("kernel_module_version", kernel_error),) if kernel_error else ()
    return replace(
        info,
        kernel_module_version=kernel_version,
        kernel_module_open=kernel_open,
        query_errors=info.query_errors + extra,
    )


# --------------------------------------------------------------------------- /proc


def read_kernel_module(root: Root) -> tuple[str | None, bool | None, str | None]:
    """(version, open flavour, error) from <root>/proc/driver/nvidia/version.

    The line looks like "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  Thu Feb 22
    ..." or "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  550.54.14  Release Build
    ...". A missing file (no module loaded, WSL, not Linux) is no error.
    """
    try:
        with open(root.path(PROC_VERSION), "rb") as f:
            text = f.read(65536).decode("utf-8", "replace")
    except FileNotFoundError:
        return None, None, None
    except OSError as exc:
        return None, None, f"{PROC_VERSION}: {exc.strerror or exc}"
    return parse_kernel_module(text)


def parse_kernel_module(text: str) -> tuple[str | None, bool | None, str | None]:
    """(version, open flavour, error) from the text of /proc/driver/nvidia/version."""
    line = _NVRM_LINE.search(text)
    match = _NVRM_VERSION.search(line.group(0)) if line else None
    if not line or not match:
        first = text.strip().splitlines()[0][:120] if text.strip() else ""
        return None, None, f"{PROC_VERSION}: no NVRM version line in {first!r}"
    return match.group(1), "Open Kernel Module" in line.group(0), None


# --------------------------------------------------------------------------- NVML


def _import_pynvml() -> tuple[ModuleType | None, str | None]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the deprecated `pynvml` package warns on import
            import pynvml
    except Exception as exc:
        return None, (
            f"the NVML Python bindings cannot be imported ({type(exc).__name__}: {exc}); "
            "install them with `pip install nvidia-ml-py` (the package named `pynvml` is "
            "deprecated and not the one to install)"
        )
    if not all(hasattr(pynvml, name) for name in ("nvmlInit", "NVMLError", "nvmlDeviceGetCount")):
        where = getattr(pynvml, "__file__", "?")
        return None, (
            f"the module `pynvml` at {where} is not NVIDIA's bindings; "
            "`pip install nvidia-ml-py` (and remove whatever provides that module)"
        )
    return pynvml, None


def _probe_nvml(library_path: str | None) -> DriverInfo:
    missing = _default_library_missing() if library_path is None and not _explicit else None
    if missing:  # no driver here: importing the bindings only to hear that is a tenth of a check
        return DriverInfo(
            error="NVML Shared Library Not Found", error_code="NVML_ERROR_LIBRARY_NOT_FOUND"
        )
    pynvml, import_error = _import_pynvml()
    if pynvml is None:
        return DriverInfo(error=import_error, error_code=IMPORT_ERROR_CODE)
    in_child = os.environ.get(_CHILD_ENV) == "1"
    if library_path is None and _explicit and not in_child:
        return _probe_in_child(None)
    with _LOCK:
        info = _probe_here(pynvml, library_path)
    if info.nvml_library_replaced and not in_child:
        return replace(_probe_in_child(library_path), nvml_library_replaced=True)
    return info


def _default_library_missing() -> str | None:
    """Why libnvidia-ml.so.1 cannot be loaded by name (as pynvml would), or None if it can.

    The error then reads as pynvml's own ("NVML Shared Library Not Found").

    Linux only (pynvml's Windows search is its own). A library that loads stays loaded, as it
    would when pynvml loads it a moment later.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        ctypes.CDLL(LINUX_LIBRARY)
    except OSError as exc:
        return str(exc)
    return None


def _probe_here(pynvml: Any, library_path: str | None) -> DriverInfo:
    load_error = _select_library(pynvml, library_path)
    if load_error:
        return DriverInfo(error=load_error, error_code="NVML_ERROR_LIBRARY_NOT_FOUND")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return DriverInfo(
            error=_text(exc), error_code=_error_name(pynvml, exc.value), **_library_facts(pynvml)
        )
    try:
        return _read_nvml(pynvml)
    finally:
        with contextlib.suppress(Exception):  # nothing to do about it: the facts are read
            pynvml.nvmlShutdown()


def _select_library(pynvml: Any, library_path: str | None) -> str | None:
    """Make pynvml use `library_path` (None: its own load by name); error text if it can't."""
    if library_path is None:
        return None  # only reached while no explicit library was loaded: pynvml's default
    wanted = os.path.abspath(library_path)
    lib = _explicit.get(wanted)
    if lib is None:
        try:
            lib = ctypes.CDLL(wanted)
        except OSError as exc:
            return f"NVML Shared Library Not Found: {exc}"
        _explicit[wanted] = lib
    if pynvml.nvmlLib is not lib:
        pynvml.nvmlLib = lib
        cache = getattr(pynvml, "_nvmlGetFunctionPointer_cache", None)
        if isinstance(cache, dict):
            cache.clear()
    return None


def _probe_in_child(library_path: str | None) -> DriverInfo:
    """The NVML facts as a fresh process of this interpreter sees them."""
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, **{_CHILD_ENV: "1"})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
    try:
        done = subprocess.run(
            [sys.executable, "-m", "monitor.facts.driver", json.dumps(library_path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=_CHILD_TIMEOUT_S,
            check=True,
        )
        return from_jsonable(DriverInfo, json.loads(done.stdout.strip().splitlines()[-1]))
    except subprocess.CalledProcessError as exc:
        tail = (exc.stderr or "").strip().splitlines()[-1:] or ["no output"]
        return DriverInfo(error=f"the NVML probe in a fresh process failed: {tail[0]}")
    except Exception as exc:
        return DriverInfo(error=f"the NVML probe in a fresh process failed: {exc}")


def _read_nvml(pynvml: Any) -> DriverInfo:
    errors: list[tuple[str, str]] = []

    def query(function: str, *args: Any) -> Any:
        try:
            return getattr(pynvml, function)(*args)
        except pynvml.NVMLError as exc:
            errors.append((function, f"{_error_name(pynvml, exc.value)}: {_text(exc)}"))
        except Exception as exc:
            errors.append((function, f"{type(exc).__name__}: {exc}"))
        return None

    driver_version = query("nvmlSystemGetDriverVersion")
    nvml_version = query("nvmlSystemGetNVMLVersion")
    count = query("nvmlDeviceGetCount")
    return DriverInfo(
        nvml_loaded=True,
        driver_version=_str_or_none(driver_version),
        cuda_driver_version=_cuda_driver_version(pynvml, errors),
        nvml_version=_str_or_none(nvml_version),
        gpus=tuple(_read_gpu(pynvml, index) for index in range(count or 0)),
        query_errors=tuple(errors),
        **_library_facts(pynvml),
    )


def _cuda_driver_version(pynvml: Any, errors: list[tuple[str, str]]) -> str | None:
    """ "12.4" from 12040; _v2 first, the older entry point where a driver lacks it."""
    for function in ("nvmlSystemGetCudaDriverVersion_v2", "nvmlSystemGetCudaDriverVersion"):
        try:
            return format_cuda_version(getattr(pynvml, function)())
        except pynvml.NVMLError as exc:
            if exc.value == pynvml.NVML_ERROR_FUNCTION_NOT_FOUND:
                continue
            errors.append((function, f"{_error_name(pynvml, exc.value)}: {_text(exc)}"))
            return None
        except Exception as exc:
            errors.append((function, f"{type(exc).__name__}: {exc}"))
            return None
    errors.append(("nvmlSystemGetCudaDriverVersion", "NVML_ERROR_FUNCTION_NOT_FOUND"))
    return None


def format_cuda_version(value: int) -> str | None:
    """NVML's 1000 * major + 10 * minor as "major.minor"; None for nothing sensible."""
    if not isinstance(value, int) or value < 1000:
        return None
    return f"{value // 1000}.{value % 1000 // 10}"


def _read_gpu(pynvml: Any, index: int) -> GpuInfo:
    """One GPU; a failing query leaves its field empty and is named in `error`."""
    failures: list[tuple[str, str, str]] = []

    def query(function: str, *args: Any) -> Any:
        try:
            return getattr(pynvml, function)(*args)
        except pynvml.NVMLError as exc:
            failures.append((function, _error_name(pynvml, exc.value), _text(exc)))
        except Exception as exc:
            failures.append((function, "", f"{type(exc).__name__}: {exc}"))
        return None

    fields: dict[str, Any] = {}
    handle = query("nvmlDeviceGetHandleByIndex", index)
    if handle is not None:
        fields["name"] = _str_or_none(query("nvmlDeviceGetName", handle)) or ""
        fields["uuid"] = _str_or_none(query("nvmlDeviceGetUUID", handle)) or ""
        cc = query("nvmlDeviceGetCudaComputeCapability", handle)
        if cc is not None:
            fields["compute_capability"] = f"{cc[0]}.{cc[1]}"
        memory = query("nvmlDeviceGetMemoryInfo", handle)
        if memory is not None:
            fields["memory_total_mib"] = int(memory.total) // _MIB
        pci = query("nvmlDeviceGetPciInfo", handle)
        if pci is not None:
            fields["pci_bus_id"] = _str_or_none(pci.busId) or ""
    if failures:
        fields["error"] = "; ".join(f"{function}: {text}" for function, _, text in failures)
        fields["error_code"] = failures[0][1] or None
    return GpuInfo(index=index, **fields)


@functools.lru_cache(maxsize=4)
def _error_names(pynvml: ModuleType) -> dict[int, str]:
    return {getattr(pynvml, name): name for name in dir(pynvml) if name.startswith("NVML_ERROR_")}


def _error_name(pynvml: Any, code: int) -> str:
    return _error_names(pynvml).get(code, f"NVML_ERROR_{code}")


def _text(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return f"{type(exc).__name__} {getattr(exc, 'value', '')}".strip()


def _str_or_none(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value if isinstance(value, str) and value else None


# --------------------------------------------------------------------------- loaded library


def _library_facts(pynvml: Any) -> dict[str, Any]:
    """nvml_library / nvml_library_version / nvml_library_replaced for pynvml's handle."""
    lib = getattr(pynvml, "nvmlLib", None)
    handle = getattr(lib, "_handle", None)
    if not handle:
        return {}
    try:
        if sys.platform.startswith("win"):
            return {"nvml_library": _windows_module_path(handle)}
        return _posix_library_facts(handle)
    except Exception:
        return {}


class _LinkMap(ctypes.Structure):
    # The public head of glibc's struct link_map (<link.h>).
    _fields_ = [("l_addr", ctypes.c_void_p), ("l_name", ctypes.c_char_p), ("l_ld", ctypes.c_void_p)]


_RTLD_DI_LINKMAP = 2


def _dlinfo() -> Any:
    for name in (None, "libdl.so.2"):
        try:
            return ctypes.CDLL(name).dlinfo
        except (OSError, AttributeError):
            continue
    return None


def _posix_library_facts(handle: int) -> dict[str, Any]:
    dlinfo = _dlinfo()
    if dlinfo is None:
        return {}
    link_map = ctypes.POINTER(_LinkMap)()
    if dlinfo(ctypes.c_void_p(handle), _RTLD_DI_LINKMAP, ctypes.byref(link_map)) != 0:
        return {}
    name = (link_map.contents.l_name or b"").decode("utf-8", "surrogateescape")
    facts: dict[str, Any] = {"nvml_library": name or None}
    mapped = _mapping_of(link_map.contents.l_ld or 0)
    if mapped is None:
        real = os.path.realpath(name) if name else ""
        facts["nvml_library_version"] = _file_version(real)
        return facts
    mapped_path, mapped_inode = mapped
    deleted = mapped_path.endswith(" (deleted)")
    mapped_path = mapped_path.removesuffix(" (deleted)")
    facts["nvml_library_version"] = _file_version(mapped_path)
    try:
        now = os.stat(name).st_ino if name else mapped_inode
    except OSError:
        now = -1
    facts["nvml_library_replaced"] = deleted or now != mapped_inode
    return facts


def _mapping_of(address: int) -> tuple[str, int] | None:
    """(path, inode) of the file mapped at `address` in this process, from /proc/self/maps."""
    if not address:
        return None
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="surrogateescape") as maps:
            for line in maps:
                parts = line.split(maxsplit=5)
                if len(parts) < 6:
                    continue
                start, _, end = parts[0].partition("-")
                if int(start, 16) <= address < int(end, 16):
                    return parts[5].rstrip("\n"), int(parts[4])
    except (OSError, ValueError):
        return None
    return None


def _file_version(path: str) -> str | None:
    match = _LIBRARY_FILE_VERSION.search(os.path.basename(path))
    return match.group(1) if match else None


def _windows_module_path(handle: int) -> str | None:
    buffer = ctypes.create_unicode_buffer(32768)
    kernel32 = ctypes.WinDLL("kernel32")  # type: ignore[attr-defined]
    length = kernel32.GetModuleFileNameW(ctypes.c_void_p(handle), buffer, len(buffer))
    return buffer.value if length else None


# --------------------------------------------------------------------------- load-test sampling
# Added for the GPU load test (monitor/loadtest/gpu_sampler.py, issue 3): kept here because
# this is the only module allowed to import pynvml. Owner of this section: the load test.

_THROTTLE_REASONS = (
    (0x2, "applications_clocks_setting"),
    (0x4, "sw_power_cap"),
    (0x8, "hw_slowdown"),
    (0x10, "sync_boost"),
    (0x20, "sw_thermal_slowdown"),
    (0x40, "hw_thermal_slowdown"),
    (0x80, "hw_power_brake_slowdown"),
    (0x100, "display_clock_setting"),
)


# The default library after an explicit one was loaded (see the module docstring): a load by
# name would return the explicit file, so sampling "the default" here would be a lie.
_DEFAULT_UNREACHABLE = (
    "the default NVML library cannot be sampled in this process: an explicit library was "
    "loaded before"
)


def throttle_reason_names(mask: int) -> tuple[str, ...]:
    """NVML's clock event reason bits as names; "gpu idle" (0x1) is no slowdown and left out."""
    return tuple(name for bit, name in _THROTTLE_REASONS if mask & bit)


@contextlib.contextmanager
def nvml_held(library_path: str | None = None):
    """Keep NVML initialised for a while (a load test), so each `sample_gpus` is cheap.

    Yields None, or the error text when NVML cannot be loaded or initialised (the samples
    will say so too). Always balanced: one nvmlShutdown for the nvmlInit that succeeded.
    """
    pynvml, error = _import_pynvml()
    initialised = False
    if pynvml is not None and library_path is None and _explicit:
        error = _DEFAULT_UNREACHABLE
    elif pynvml is not None:
        with _LOCK:
            error = _select_library(pynvml, library_path)
            if error is None:
                try:
                    pynvml.nvmlInit()
                    initialised = True
                except pynvml.NVMLError as exc:
                    error = f"{_error_name(pynvml, exc.value)}: {_text(exc)}"
    try:
        yield error
    finally:
        if initialised:
            with _LOCK, contextlib.suppress(Exception):
                _select_library(pynvml, library_path)
                pynvml.nvmlShutdown()


def sample_gpus(library_path: str | None = None) -> tuple[Any, ...]:
    """Every GPU's utilisation, memory, compute PIDs, SM clock and throttle reasons, now.

    Returns GpuSample objects (monitor.model); when NVML as a whole fails, one sample with
    index -1 and `error` set. Never raises.
    """
    from monitor.model import GpuSample

    pynvml, error = _import_pynvml()
    if pynvml is None:
        return (GpuSample(index=-1, error=error),)
    if library_path is None and _explicit:
        return (GpuSample(index=-1, error=_DEFAULT_UNREACHABLE),)
    with _LOCK:
        error = _select_library(pynvml, library_path)
        if error is not None:
            return (GpuSample(index=-1, error=error),)
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            return (GpuSample(index=-1, error=f"{_error_name(pynvml, exc.value)}: {_text(exc)}"),)
        try:
            try:
                count = int(pynvml.nvmlDeviceGetCount())
            except pynvml.NVMLError as exc:
                text = f"{_error_name(pynvml, exc.value)}: {_text(exc)}"
                return (GpuSample(index=-1, error=text),)
            return tuple(_sample_gpu(pynvml, index) for index in range(count))
        except Exception as exc:  # a binding's surprise: still a sample
            return (GpuSample(index=-1, error=f"{type(exc).__name__}: {exc}"),)
        finally:
            with contextlib.suppress(Exception):
                pynvml.nvmlShutdown()


def _sample_gpu(pynvml: Any, index: int) -> Any:
    from monitor.model import GpuSample

    failures: list[str] = []

    def query(function: str, *args: Any) -> Any:
        if not hasattr(pynvml, function):
            return None
        try:
            return getattr(pynvml, function)(*args)
        except pynvml.NVMLError as exc:
            if exc.value != getattr(pynvml, "NVML_ERROR_FUNCTION_NOT_FOUND", -1):
                failures.append(f"{function}: {_error_name(pynvml, exc.value)}")
        except Exception as exc:
            failures.append(f"{function}: {type(exc).__name__}: {exc}")
        return None

    handle = query("nvmlDeviceGetHandleByIndex", index)
    if handle is None:
        return GpuSample(index=index, error="; ".join(failures) or "no handle")
    fields: dict[str, Any] = {
        "uuid": _str_or_none(query("nvmlDeviceGetUUID", handle)) or "",
        "name": _str_or_none(query("nvmlDeviceGetName", handle)) or "",
    }
    rates = query("nvmlDeviceGetUtilizationRates", handle)
    if rates is not None:
        fields["utilization_gpu"] = int(rates.gpu)
    memory = query("nvmlDeviceGetMemoryInfo", handle)
    if memory is not None:
        fields["memory_used_mib"] = int(memory.used) // _MIB
        fields["memory_total_mib"] = int(memory.total) // _MIB
    processes = None
    for function in (
        "nvmlDeviceGetComputeRunningProcesses_v3",
        "nvmlDeviceGetComputeRunningProcesses_v2",
    ):
        before = len(failures)
        processes = query(function, handle)
        if processes is not None or len(failures) > before:
            break
    if processes is not None:
        fields["processes"] = tuple(
            (int(p.pid), None if p.usedGpuMemory is None else int(p.usedGpuMemory) // _MIB)
            for p in processes
        )
    sm = getattr(pynvml, "NVML_CLOCK_SM", 1)
    clock = query("nvmlDeviceGetClockInfo", handle, sm)
    if clock is not None:
        fields["sm_clock_mhz"] = int(clock)
    max_clock = query("nvmlDeviceGetMaxClockInfo", handle, sm)
    if max_clock is not None:
        fields["max_sm_clock_mhz"] = int(max_clock)
    mask = query("nvmlDeviceGetCurrentClocksEventReasons", handle)
    if mask is None:
        mask = query("nvmlDeviceGetCurrentClocksThrottleReasons", handle)
    if mask is not None:
        fields["throttle_reasons"] = throttle_reason_names(int(mask))
    if failures:
        fields["error"] = "; ".join(failures)
    return GpuSample(index=index, **fields)


def _child_main(argv: list[str]) -> int:
    """`python -m monitor.facts.driver '"/path"'`: the NVML facts as JSON (see _probe_in_child)."""
    library_path = json.loads(argv[1]) if len(argv) > 1 else None
    print(json.dumps(to_jsonable(_probe_nvml(library_path))))
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv))
