"""Builders for CUDA libraries that load but fail at work: cuDNN (start-up, version), cuBLAS,
GPU memory, and XLA's compiler tools (ptxas, libdevice)."""

from __future__ import annotations

import ntpath
import posixpath
import re
from collections.abc import Sequence

from monitor.loadtest.failure_context import FailureContext, GpuProcess
from monitor.loadtest.failure_ids import CUBLAS, CUDNN_INIT, CUDNN_VERSION, OOM, PTXAS
from monitor.loadtest.failure_text import describe_resolution, error_finding, sentence
from monitor.loadtest.install_advice import cuda_library_steps, cuda_major, pip_era
from monitor.model import Finding, Link
from monitor.rules.libraries import normalize_name
from monitor.versions import major_minor


def _cudnn_version_text(raw: str) -> str:
    """cuDNN's integer versions as dotted ones: 7201 -> 7.2.1, 90100 -> 9.1.0."""
    if "." in raw or not raw.isdigit():
        return raw
    number = int(raw)
    if number >= 10000:  # cuDNN 9+: major * 10000 + minor * 100 + patch
        return f"{number // 10000}.{number % 10000 // 100}.{number % 100}"
    return f"{number // 1000}.{number % 1000 // 100}.{number % 100}"


def _memory_steps(ctx: FailureContext) -> list[str]:
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


def _cudnn_state(ctx: FailureContext) -> list[str]:
    """What TF wants and what the loader picks, as sentences ("" where unknown)."""
    built = ctx.cudnn_version()
    res = next(iter(ctx.role_resolutions("cudnn")), None)
    return [
        f"TensorFlow {ctx.tf_version()} was built with cuDNN {built}." if built else "",
        describe_resolution(res, res.wanted) if res else "",
    ]


def build_cudnn_init(m: re.Match[str], ctx: FailureContext) -> Finding | None:
    status = re.search(r"CUDNN_STATUS_[A-Z_]+", ctx.stderr)
    code = status.group(0) if status else ""
    not_found = "dnn library is not found" in m.group(0).lower()
    parts = [f"TensorFlow: {m.group(0).strip()}."]
    if code and code != m.group(0).strip():
        parts.append(f"cuDNN status: {code}.")
    parts += _cudnn_state(ctx)
    if not_found:
        title = "TensorFlow found no usable cuDNN"
        fix = cuda_library_steps(ctx, "cudnn")
    else:
        title = f"cuDNN failed to start{': ' + code if code else ''}"
        parts.append(
            "cuDNN usually fails to start when the GPU has no free memory left (another "
            "process, or TensorFlow took it all up front) or when the cuDNN loaded is not the "
            "one TensorFlow was built for."
        )
        fix = _memory_steps(ctx) + cuda_library_steps(ctx, "cudnn")
    return error_finding(CUDNN_INIT, Link.CUDNN, title, parts, fix)


def build_cudnn_version(m: re.Match[str], ctx: FailureContext) -> Finding | None:
    loaded = _cudnn_version_text(m.group("loaded"))
    built = _cudnn_version_text(m.group("built"))
    parts = [
        f"cuDNN {loaded} was loaded, but this TensorFlow was compiled with cuDNN {built}; it "
        "needs the same major version and an equal or newer minor version."
    ]
    res = next(iter(ctx.role_resolutions("cudnn")), None)
    parts.append(describe_resolution(res, res.wanted) if res else "")
    fix: list[str] = []
    if res is not None and res.resolved is not None and res.resolved.via == "LD_LIBRARY_PATH":
        fix.append(
            f"Remove {posixpath.dirname(res.resolved.path)} from LD_LIBRARY_PATH: it puts "
            "another cuDNN ahead of the one TensorFlow needs."
        )
    built_major = major_minor(built)
    major = cuda_major(ctx)
    if pip_era(ctx) and built_major and major:
        fix.append(ctx.pip("install", f"nvidia-cudnn-cu{major}>={built},<{built_major[0] + 1}"))
    else:
        fix.append(
            f"Install cuDNN {built} or a newer {built_major[0] if built_major else ''}.x and make "
            "it the one the loader finds first."
        )
    return error_finding(
        CUDNN_VERSION,
        Link.CUDNN,
        f"cuDNN {loaded} is loaded, but TensorFlow was built with cuDNN {built}",
        parts,
        fix,
    )


def build_cublas(m: re.Match[str], ctx: FailureContext) -> Finding | None:
    status = re.search(r"CUBLAS_STATUS_[A-Z_]+", m.string)
    code = status.group(0) if status else ""
    parts = [f"TensorFlow: {m.group(0).strip()}."]
    if code in ("CUBLAS_STATUS_ALLOC_FAILED", "CUBLAS_STATUS_NOT_INITIALIZED"):
        parts.append(
            f"{code} usually means the GPU had no free memory left when cuBLAS started "
            "(another process, or TensorFlow took it all up front)."
        )
    fix = _memory_steps(ctx) + cuda_library_steps(ctx, "cublas")
    return error_finding(
        CUBLAS, Link.LIBRARIES, f"cuBLAS failed to start{': ' + code if code else ''}", parts, fix
    )


def build_oom(m: re.Match[str], ctx: FailureContext) -> Finding | None:
    size = re.search(r"failed to allocate (\S+) \((\d+) bytes\)", m.string)
    shape = re.search(r"OOM when allocating tensor with shape\s*(\[[^\]]*\])", m.string)
    if size:
        parts = [
            f"TensorFlow could not allocate {size.group(1)} ({size.group(2)} bytes) on the GPU."
        ]
    elif shape:
        parts = [f"TensorFlow could not allocate a tensor of shape {shape.group(1)} on the GPU."]
    else:
        parts = [f"TensorFlow: {sentence(m.group(0))}"]
    driver = ctx.inventory.driver if ctx.inventory else None
    if driver is not None and driver.gpus and driver.gpus[0].memory_total_mib:
        gpu = driver.gpus[0]
        parts.append(f"{gpu.name or 'GPU 0'} has {gpu.memory_total_mib:,} MiB in all.")
    if ctx.gpu_processes:
        parts.append("Other processes hold GPU memory: " + _process_list(ctx.gpu_processes) + ".")
    return error_finding(
        OOM,
        Link.GPU,
        "The GPU ran out of memory",
        parts,
        (*_memory_steps(ctx), "Then run the load test again."),
    )


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


def build_ptxas(m: re.Match[str], ctx: FailureContext) -> Finding | None:
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
    elif pip_era(ctx):
        fix.append(ctx.pip("install", f"nvidia-cuda-nvcc-cu{cuda_major(ctx) or 12}"))
    toolkits = ctx.inventory.toolkits if ctx.inventory else ()
    toolkit = next((t for t in toolkits if t.active), toolkits[0] if toolkits else None)
    if toolkit is not None:
        fix.append(f"{setter} XLA_FLAGS=--xla_gpu_cuda_data_dir={toolkit.root}")
    elif not fix:
        fix.append(
            f"{setter} XLA_FLAGS=--xla_gpu_cuda_data_dir=<the CUDA folder that holds "
            "nvvm/libdevice and bin/ptxas>"
        )
    return error_finding(
        PTXAS,
        Link.CUDA,
        f"XLA cannot find CUDA's {'libdevice' if libdevice else 'ptxas'}",
        parts,
        fix,
    )
