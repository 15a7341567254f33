"""Rules about the GPUs: present, readable, and runnable by the TensorFlow build.

A TF wheel carries machine code (SASS) for the architectures in its build_info
`cuda_compute_capabilities` and PTX for the `compute_XY` entries. SASS `sm_XY` runs on the same
major with an equal or higher minor; PTX `compute_XY` is JIT-compiled by the driver for any GPU
of compute capability X.Y or newer (NVIDIA CUDA C++ Programming Guide, binary and PTX
compatibility). A GPU reachable only through PTX works after a long first start; one reachable
by neither cannot run TensorFlow's kernels.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from monitor import compat
from monitor.model import Finding, GpuInfo, HostInfo, Inventory, Link, PythonEnv, Severity
from monitor.record import record
from monitor.rules import fixes
from monitor.rules.driver import driver_state
from monitor.rules.tensorflow import (
    build_value,
    cuda_pythons,
    install_requirement,
    normalize,
    python_release,
    tf_release,
)
from monitor.versions import major_minor, parse_version

_ENTRY = re.compile(r"^(sm|compute)_(\d+)([a-z]?)$")

# Architectures in the official wheels, from their build_info.py (compat README: wheels 2.3.0,
# 2.4.0, 2.10.1-win, 2.12.0-2.18.0, 2.21.0 opened; 2.5-2.9, 2.11, 2.19, 2.20 inferred from their
# neighbours). Used only to suggest another release; a finding judges the installed build's
# own list.
_WHEEL_ARCHS: tuple[tuple[tuple[int, int], tuple[int, int], tuple[str, ...]], ...] = (
    ((2, 3), (2, 3), ("sm_35", "sm_37", "sm_52", "sm_60", "sm_61", "compute_70")),
    ((2, 4), (2, 14), ("sm_35", "sm_50", "sm_60", "sm_70", "sm_75", "compute_80")),
    ((2, 15), (2, 15), ("sm_50", "sm_60", "sm_70", "sm_75", "compute_80")),
    ((2, 16), (2, 16), ("sm_50", "sm_60", "sm_70", "sm_80", "compute_90")),
    ((2, 17), (2, 21), ("sm_60", "sm_70", "sm_80", "sm_89", "compute_90")),
)
_JIT_CACHE_BYTES = "4294967296"  # CUDA_CACHE_MAXSIZE's maximum, 4 GiB


@record
class _Arch:
    kind: str  # "sm" or "compute"
    cc: tuple[int, int]
    specific: bool  # sm_90a-style: runs only on exactly this CC
    text: str


def parse_arch(entry: str) -> _Arch | None:
    """ "sm_89" -> SASS for 8.9; "compute_90" -> SASS and PTX for 9.0; others None."""
    match = _ENTRY.match(entry.strip().lower())
    if not match:
        return None
    digits = match.group(2)
    if len(digits) < 2:
        return None
    return _Arch(
        match.group(1), (int(digits[:-1]), int(digits[-1])), bool(match.group(3)), entry.strip()
    )


def reach(cc: tuple[int, int], entries: Sequence[str]) -> str:
    """ "native", "ptx" or "none": how a GPU of compute capability `cc` runs these entries."""
    archs = [a for a in (parse_arch(e) for e in entries) if a is not None]
    for arch in archs:
        if arch.specific:
            if arch.cc == cc:
                return "native"
        elif arch.cc[0] == cc[0] and arch.cc[1] <= cc[1]:
            return "native"
    for arch in archs:
        if arch.kind == "compute" and (arch.cc == cc if arch.specific else arch.cc <= cc):
            return "ptx"
    return "none"


def build_archs(python: PythonEnv) -> tuple[str, ...]:
    tf = python.tensorflow
    if tf is None:
        return ()
    if tf.compute_capabilities:
        return tuple(c for c in tf.compute_capabilities if c.strip())
    raw = build_value(tf, "cuda_compute_capabilities") or ""
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _wheel_archs(release: tuple[int, int]) -> tuple[str, ...]:
    for first, last, archs in _WHEEL_ARCHS:
        if first <= release <= last:
            return archs
    return ()


def _native_releases(
    cc: tuple[int, int], host: HostInfo, python: PythonEnv
) -> list[tuple[int, int]]:
    """Known releases (GPU builds on this OS, this Python) with native code for `cc`."""
    py = python_release(python.version)
    found = []
    for text in compat.known_tf_versions():
        release = tf_release(text)
        facts = compat.tf_build(text, host.os)
        if release is None or facts is None or not facts.gpu_supported:
            continue
        low, high = major_minor(facts.python_min), major_minor(facts.python_max)
        if py is not None and low and high and not low <= py <= high:
            continue
        if reach(cc, _wheel_archs(release)) == "native":
            found.append(release)
    return sorted(found)


def _gpu_label(gpu: GpuInfo) -> str:
    return f"GPU {gpu.index}" + (f": {gpu.name}" if gpu.name else "")


def _arch_text(cc_text: str) -> str:
    arch = compat.gpu_arch(cc_text)
    return f"{arch.architecture}, CC {cc_text}" if arch else f"CC {cc_text}"


# --------------------------------------------------------------------------- rules


def no_gpu(inventory: Inventory) -> Iterable[Finding]:
    host, driver = inventory.host, inventory.driver
    if host.os not in ("linux", "windows") or driver_state(driver) != "ok" or driver.gpus:
        return
    if host.is_wsl:
        fix: tuple[str, ...] = (
            "Check on the Windows side that `nvidia-smi` in PowerShell lists the GPU.",
            "Update the Windows NVIDIA driver and WSL (`wsl --update`), then `wsl --shutdown`.",
        )
    elif host.os == "windows":
        fix = (
            "Open Device Manager > Display adapters and check that the NVIDIA GPU is listed"
            " and enabled; on laptops make sure the NVIDIA GPU is not disabled in the BIOS"
            " or by a power-saving mode.",
        )
    else:
        fix = (
            "Check that the GPU is on the PCI bus: `lspci | grep -i nvidia`.",
            "Look for initialisation errors: `sudo dmesg | grep -iE 'nvrm|nvidia'` (e.g."
            " 'RmInitAdapter failed', 'fallen off the bus'); reboot after fixing power or"
            " seating problems.",
            "In a container, start it with the GPU exposed (`docker run --gpus all ...` with"
            " the NVIDIA Container Toolkit); in a VM, pass the GPU through.",
        )
    yield Finding(
        id="no-gpu",
        severity=Severity.ERROR,
        link=Link.GPU,
        title="The NVIDIA driver is loaded but reports no GPU",
        detail=(
            "NVML initialised but counted 0 GPUs, so there is nothing for TensorFlow to use."
            " The GPU is missing from the bus, disabled, failed to initialise, or not"
            " passed into this container or VM."
        ),
        evidence=(("driver version", driver.driver_version or "?"), ("GPUs", "0")),
        fix=fix,
    )


def gpu_query_failed(inventory: Inventory) -> Iterable[Finding]:
    host, driver = inventory.host, inventory.driver
    if host.os not in ("linux", "windows") or driver_state(driver) != "ok":
        return
    for gpu in driver.gpus:
        if not gpu.error:
            continue
        lost = (gpu.error_code or "").upper() == "NVML_ERROR_GPU_IS_LOST" or (
            "lost" in gpu.error.lower()
        )
        if lost:
            fix: tuple[str, ...] = (
                "The GPU stopped answering (often power, temperature or a PCIe problem); it"
                " needs a reset: stop the programs using it and reboot.",
                "Linux: `sudo dmesg | grep -i xid` shows the error that preceded it.",
            )
        else:
            fix = (f"Query it directly: `nvidia-smi -q -i {gpu.index}`.",)
        yield Finding(
            id="gpu-query-failed",
            severity=Severity.ERROR if lost else Severity.WARNING,
            link=Link.GPU,
            title=f"{_gpu_label(gpu)} could not be queried: {gpu.error}",
            detail=(
                "NVML returned an error for this GPU, so its properties (compute capability,"
                " memory) are unknown and the GPU checks skip it."
                + (" A lost GPU cannot be used until it is reset." if lost else "")
            ),
            evidence=(
                ("GPU index", str(gpu.index)),
                ("name", gpu.name or "?"),
                ("error", gpu.error),
            ),
            fix=fix,
            subject=f"GPU {gpu.index}",
        )


def gpu_arch_support(inventory: Inventory) -> Iterable[Finding]:
    """gpu-arch-unsupported (error) and gpu-ptx-jit-only (warning)."""
    host, driver = inventory.host, inventory.driver
    if driver_state(driver) != "ok":
        return
    for python, tf in cuda_pythons(inventory):
        archs = build_archs(python)
        if not any(parse_arch(a) for a in archs):
            continue
        for gpu in driver.gpus:
            cc = major_minor(gpu.compute_capability) if gpu.compute_capability else None
            if cc is None or parse_version(gpu.compute_capability) is None:
                continue  # unreadable: gpu-query-failed says so
            how = reach(cc, archs)
            if how == "native":
                continue
            cc_text = f"{cc[0]}.{cc[1]}"
            evidence = (
                ("GPU", _gpu_label(gpu)),
                ("compute capability", cc_text),
                ("architecture", _arch_text(cc_text)),
                ("build architectures", ",".join(archs)),
                ("tensorflow", tf.version or "?"),
                ("interpreter", python.executable),
            )
            subject = f"{python.executable} GPU {gpu.index}"
            if how == "ptx":
                yield _ptx_only(inventory, python, tf.version, gpu, cc, archs, evidence, subject)
            else:
                yield _unsupported(host, python, tf.version, gpu, cc, archs, evidence, subject)


def _ptx_only(
    inventory: Inventory,
    python: PythonEnv,
    version: str,
    gpu: GpuInfo,
    cc: tuple[int, int],
    archs: Sequence[str],
    evidence: tuple,
    subject: str,
) -> Finding:
    host = inventory.host
    cc_text = f"{cc[0]}.{cc[1]}"
    ptx = [a.text for a in (parse_arch(e) for e in archs) if a and a.kind == "compute"]
    steps = list(fixes.set_env_steps(host, "CUDA_CACHE_MAXSIZE", _JIT_CACHE_BYTES))
    steps.append(
        "Expect the first start to take many minutes while the driver compiles"
        " TensorFlow's kernels; later starts reuse the cache (~/.nv/ComputeCache,"
        " %APPDATA%\\NVIDIA\\ComputeCache on Windows). Do not clear it."
    )
    arch = compat.gpu_arch(cc_text)
    first = major_minor(arch.first_cuda) if arch else None
    nvcc = next(
        (d for d in python.distributions if normalize(d.name).startswith("nvidia-cuda-nvcc-cu")),
        None,
    )
    if first and nvcc is not None and (major_minor(nvcc.version) or (0, 0)) < first:
        steps.append(
            f"XLA's ptxas ({nvcc.name} {nvcc.version}) predates CC {cc_text} (first supported"
            f" by CUDA {arch.first_cuda if arch else '?'}) and falls back to the driver: "
            + fixes.pip(
                python.executable,
                host,
                "install",
                "--upgrade",
                f"{nvcc.name}>={first[0]}.{first[1]},<{first[0] + 1}",
            )
        )
    newer = [r for r in _native_releases(cc, host, python) if r > (tf_release(version) or (0, 0))]
    if newer:
        best = newer[-1]
        steps.append(
            f"Or use TensorFlow {best[0]}.{best[1]}, whose wheel has native code for"
            f" CC {cc_text}: "
            + fixes.pip(
                python.executable,
                host,
                "install",
                install_requirement(f"{best[0]}.{best[1]}", host),
            )
        )
    else:
        steps.append(
            f"No released TensorFlow wheel in the monitor's data has native code for"
            f" CC {cc_text}; a newer release or a source build with"
            f" TF_CUDA_COMPUTE_CAPABILITIES including sm_{cc[0]}{cc[1]} removes the JIT"
            " step."
        )
    return Finding(
        id="gpu-ptx-jit-only",
        severity=Severity.WARNING,
        link=Link.GPU,
        title=(
            f"{_gpu_label(gpu)} ({_arch_text(cc_text)}) runs TensorFlow {version} only"
            " through PTX JIT compilation"
        ),
        detail=(
            f"This TensorFlow build has no machine code for compute capability {cc_text};"
            f" the driver must JIT-compile its PTX ({', '.join(ptx)}) for the GPU. The first"
            " start takes many minutes (often looking like a hang) and repeats whenever the"
            " JIT cache is too small or cleared; some XLA paths may still fail when the"
            " bundled ptxas does not know this architecture."
        ),
        evidence=evidence,
        fix=tuple(steps),
        subject=subject,
    )


def _unsupported(
    host: HostInfo,
    python: PythonEnv,
    version: str,
    gpu: GpuInfo,
    cc: tuple[int, int],
    archs: Sequence[str],
    evidence: tuple,
    subject: str,
) -> Finding:
    cc_text = f"{cc[0]}.{cc[1]}"
    parsed = [a for a in (parse_arch(e) for e in archs) if a is not None]
    oldest = min(a.cc for a in parsed)
    if cc < oldest:
        why = (
            f"CC {cc_text} is older than every architecture in the build (the oldest is"
            f" {oldest[0]}.{oldest[1]}), and PTX only runs on the same or newer GPUs."
        )
    else:
        why = (
            f"The build has no machine code for CC {cc_text}'s major version and no PTX"
            " old enough to be JIT-compiled for it."
        )
    steps = []
    releases = _native_releases(cc, host, python)
    if releases:
        best = releases[-1]
        steps.append(
            f"Use TensorFlow {best[0]}.{best[1]}, the newest release whose wheel has"
            f" code for CC {cc_text}: "
            + fixes.pip(
                python.executable,
                host,
                "install",
                install_requirement(f"{best[0]}.{best[1]}", host),
            )
        )
        arch = compat.gpu_arch(cc_text)
        if arch and "R470" in arch.notes:
            steps.append(
                "Kepler's last driver branch is R470 (CUDA 11.4): it runs TF up to"
                " 2.14 (CUDA 11.8) through CUDA 11.x minor version compatibility."
            )
    else:
        steps.append(
            f"No TensorFlow 2.x wheel has code for CC {cc_text}: run on the CPU, use a"
            " newer GPU, or build TensorFlow from source with"
            f" TF_CUDA_COMPUTE_CAPABILITIES=sm_{cc[0]}{cc[1]} (and a CUDA that still"
            " supports it)."
        )
    return Finding(
        id="gpu-arch-unsupported",
        severity=Severity.ERROR,
        link=Link.GPU,
        title=(
            f"{_gpu_label(gpu)} ({_arch_text(cc_text)}) cannot run TensorFlow {version}'s GPU code"
        ),
        detail=(
            f'{why} TensorFlow ignores the GPU ("Ignoring visible gpu device ... with Cuda'
            " compute capability\") or fails with 'no kernel image is available for"
            " execution on the device'."
        ),
        evidence=evidence,
        fix=tuple(steps),
        subject=subject,
    )


RULES = [no_gpu, gpu_query_failed, gpu_arch_support]
