"""Builders for libraries TensorFlow could not load: dlopen / LoadLibrary failures, missing
DLLs and the VC++ runtime, and TensorFlow's summary that it skipped the GPU for them."""

from __future__ import annotations

import posixpath
import re

from monitor.loadtest.failure_context import FailureContext, same_path
from monitor.loadtest.failure_ids import LIBRARY, LIBS_SKIPPED
from monitor.loadtest.failure_text import IGNORED, describe_resolution, error_finding, sentence
from monitor.loadtest.import_failures import TF_OWN
from monitor.loadtest.install_advice import cuda_library_steps, cuda_major, tf_spec
from monitor.model import Finding, LibraryResolution, Link
from monitor.rules import fixes
from monitor.rules.libraries import DRIVER_ROLES, basename
from monitor.rules.windows import VC_REDIST_URL

VC_REDIST = (
    "Install the latest Microsoft Visual C++ Redistributable for Visual Studio 2015-2022 (x64): "
    f"{VC_REDIST_URL}"
)


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


def _role(file_name: str) -> str:
    stem = basename(file_name).lower()
    stem = stem[3:] if stem.startswith("lib") else stem
    for prefix, role in _ROLE_PREFIXES:
        if stem.startswith(prefix):
            return role
    return ""


def _library_fixes(
    ctx: FailureContext, missing: str, role: str, error: str, res: LibraryResolution | None
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
        steps.extend(cuda_library_steps(ctx, role))
    return tuple(steps)


def _library_finding(
    ctx: FailureContext, wanted: str, error: str = "", dependency: str | None = None
) -> Finding | None:
    """TensorFlow could not load `wanted` (because `dependency` is missing, when it says so)."""
    name = basename(wanted)
    if TF_OWN.search(name):
        return None  # TensorFlow's own module: a broken install, the import rules say so
    role = _role(name)
    if role in _OPTIONAL_ROLES:
        return IGNORED
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
        parts.append(f"The loader said: {sentence(error)}")
    res = ctx.resolution(missing)
    if dep:
        parts.append(describe_resolution(ctx.resolution(name), name))
    parts.append(describe_resolution(res, missing))
    return error_finding(
        LIBRARY,
        link,
        title,
        parts,
        _library_fixes(ctx, missing, missing_role, error, res),
        subject=name,
    )


def _dependency(error: str) -> str | None:
    """The file a dlerror / loader message names first ("libX.so.1: cannot open ...")."""
    match = re.match(r"\s*([^\s:;]+?)(?::| not found)", error)
    return match.group(1) if match else None


def build_dlopen(m: re.Match[str], ctx: FailureContext) -> Finding | None:
    error = (m.group("err") or "").strip()
    return _library_finding(ctx, m.group("lib"), error, _dependency(error))


def build_load_library(m: re.Match[str], ctx: FailureContext) -> Finding | None:
    error = (m.group("err") or "").strip()
    if m.group("code"):
        error = f"error code {m.group('code')}"
        if m.group("code") == "126":
            error += " (a DLL it depends on was not found)"
    return _library_finding(ctx, m.group("lib"), error, _dependency(error))


def build_shared_object(m: re.Match[str], ctx: FailureContext) -> Finding | None:
    return _library_finding(ctx, m.group("lib"), m.string[m.start() :].strip())


def build_undefined_symbol(m: re.Match[str], ctx: FailureContext) -> Finding | None:
    return _library_finding(ctx, m.group("lib"), m.group(0).strip())


def build_cudart_stub(m: re.Match[str], ctx: FailureContext) -> Finding | None:
    # xla/tsl/cuda/cudart_stub.cc logs this when the CUDA *runtime* cannot be loaded.
    found = ctx.role_resolutions("cudart")
    major = cuda_major(ctx)
    name = found[0].wanted if found else "libcudart.so" + (f".{major}" if major else "")
    return _library_finding(
        ctx,
        name,
        "TensorFlow's CUDA runtime loader says 'Could not find cuda drivers on your machine': "
        "it could not load the CUDA runtime library (the message blames the driver, but the "
        "runtime is what failed to load).",
    )


def build_dll_load_failed(m: re.Match[str], ctx: FailureContext) -> Finding | None:
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
        + ctx.pip("install", "--force-reinstall", "--no-cache-dir", tf_spec(ctx)),
    )
    return error_finding(
        LIBRARY,
        Link.RUNTIME if missing_runtime else Link.LIBRARIES,
        f"Windows could not load a DLL that {module or 'TensorFlow'} needs",
        parts,
        fix,
        subject=module or "DLL",
    )


def build_missing_dlls(m: re.Match[str], ctx: FailureContext) -> Finding | None:
    names = [n.strip() for n in re.split(r"\s+or\s+|\s*,\s*", m.group("libs")) if n.strip()]
    subject = " or ".join(names)
    parts = [f"TensorFlow's import check could not load {subject}: {_ROLE_WORDS['msvc_runtime']}."]
    parts += [describe_resolution(ctx.resolution(name), name) for name in names]
    return error_finding(
        LIBRARY,
        Link.RUNTIME,
        f"TensorFlow could not find {subject}",
        parts,
        (VC_REDIST, "Open a new terminal (or sign out and in) and run the load test again."),
        subject=subject,
    )


def build_libs_skipped(m: re.Match[str], ctx: FailureContext) -> Finding | None:
    parts = [
        "TensorFlow could not load all the CUDA libraries it needs, so it registered no GPU "
        "and runs on the CPU."
    ]
    missing = [
        res
        for res in (ctx.inventory.libraries if ctx.inventory else ())
        if res.required
        and res.resolved is None
        and (not res.python or same_path(res.python, ctx.python, ctx.windows))
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
        fix.extend(cuda_library_steps(ctx, ""))
    fix.append(
        "To see which library failed, run TensorFlow with TF_CPP_VMODULE=dso_loader=1 (recent "
        "versions name the failed loads only then)."
    )
    return error_finding(
        LIBS_SKIPPED,
        Link.LIBRARIES,
        "TensorFlow skipped the GPU: some CUDA libraries could not be loaded",
        parts,
        fix,
    )
