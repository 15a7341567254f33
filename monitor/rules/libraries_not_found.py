"""Rule library-not-found: a file TensorFlow opens is nowhere the loader looks.

One finding per interpreter and wheel / library group; several missing pip wheels at once
become one `tensorflow[and-cuda]` finding. The fix steps come from libraries_not_found_fixes.
"""

from __future__ import annotations

from collections.abc import Iterator

from monitor.model import Finding, Inventory, LibraryResolution, Link
from monitor.rules.libraries_files import DRIVER_ROLES, describe_file, severity_for
from monitor.rules.libraries_interpreter import is_cpu_only, pip_install, subject_for, tf_needs
from monitor.rules.libraries_not_found_fixes import found_elsewhere, not_found_fix, unlinked_copies
from monitor.rules.libraries_paths import is_windows
from monitor.rules.libraries_wheels import (
    WHEEL_COMPONENT,
    and_cuda_requirements,
    has_and_cuda,
    installed,
    wheel_for,
)

_ROLE_LABEL = {
    "cudart": "the CUDA runtime",
    "cublas": "cuBLAS",
    "cublasLt": "cuBLASLt",
    "cufft": "cuFFT",
    "curand": "cuRAND",
    "cusolver": "cuSOLVER",
    "cusparse": "cuSPARSE",
    "cudnn": "cuDNN",
    "cupti": "CUPTI",
    "nvjitlink": "nvJitLink",
    "nccl": "NCCL",
    "nvrtc": "NVRTC",
    "cuda_driver": "the CUDA driver library",
    "nvml": "NVML (the driver's management library)",
    "msvc_runtime": "the Visual C++ runtime",
}

# What TensorFlow loses when an optional library is missing.
_OPTIONAL_IMPACT = {
    "cupti": "Only the TensorFlow profiler needs it; training and inference still use the GPU.",
    "nccl": "Only multi-GPU collectives (e.g. MirroredStrategy over NCCL) need it; a single "
    "GPU still works.",
    "nvml": "TensorFlow uses it only for extra device information; the GPU still works.",
    "nvjitlink": "cuSPARSE and cuSOLVER 12 link against it; without it they can fail to load.",
    "curand": "TensorFlow built for CUDA 12 does not open cuRAND itself; the GPU still works.",
}


def _driver_missing_story(inventory: Inventory) -> bool:
    """NVML itself could not be found: the driver rules report driver-not-found for that one
    cause, so library-not-found stays quiet about libcuda/NVML (one cause, one finding)."""
    driver = inventory.driver
    return not driver.nvml_loaded and driver.error_code == "NVML_ERROR_LIBRARY_NOT_FOUND"


def _group_key(res: LibraryResolution) -> str:
    """Files that come and go together (one wheel, one cuDNN) make one finding."""
    return WHEEL_COMPONENT.get(res.role, res.role)


def library_not_found(inventory: Inventory) -> Iterator[Finding]:
    groups: dict[tuple[str, str], list[LibraryResolution]] = {}
    for res in inventory.libraries:
        if res.resolved is not None or res.on_path_only is not None:
            continue
        if res.role == "msvc_runtime":
            continue  # windows.vc-runtime-missing tells that story, with the redistributable
        if res.role in DRIVER_ROLES and _driver_missing_story(inventory):
            continue
        if is_cpu_only(inventory, res.python):
            continue
        groups.setdefault((res.python, _group_key(res)), []).append(res)
    merged: dict[str, list[list[LibraryResolution]]] = {}
    for (python, _), members in groups.items():
        if _wheel_not_installed(inventory, python, members):
            merged.setdefault(python, []).append(members)
    for python, wheel_groups in merged.items():
        if len(wheel_groups) >= 2:
            yield _and_cuda_missing_finding(inventory, python, wheel_groups)
    for (python, _), members in groups.items():
        if len(merged.get(python, ())) >= 2 and any(members is g for g in merged[python]):
            continue
        yield _not_found_finding(inventory, python, members)


def _wheel_not_installed(
    inventory: Inventory, python: str, members: list[LibraryResolution]
) -> bool:
    """Linux pip TensorFlow, and the wheel that provides these files is simply not there."""
    needs = tf_needs(inventory, python)
    if needs is None or not has_and_cuda(inventory, needs.tf):
        return False
    wheel = wheel_for(members[0].role, needs.cuda_major)
    if wheel is None or installed(needs.python, wheel) is not None:
        return False
    return not found_elsewhere(members) and not unlinked_copies(members)


def _and_cuda_missing_finding(
    inventory: Inventory, python: str, wheel_groups: list[list[LibraryResolution]]
) -> Finding:
    """Several pip CUDA wheels missing at once: TF was installed without [and-cuda]. One
    finding with one command instead of one per wheel."""
    needs = tf_needs(inventory, python)
    assert needs is not None
    members = [m for group in wheel_groups for m in group]
    required = any(m.required for m in members)
    wheels = [wheel_for(g[0].role, needs.cuda_major) or g[0].role for g in wheel_groups]
    requirements = and_cuda_requirements(needs.tf)
    specs = [requirements[w].text if w in requirements else w for w in wheels]
    dist_name = needs.gpu_distribution
    consequence = (
        'TensorFlow cannot use the GPU: it logs "Cannot dlopen some GPU libraries" and runs '
        "on the CPU."
        if required
        else "Only optional features (profiler, multi-GPU) are affected."
    )
    evidence: list[tuple[str, str]] = [
        ("missing wheels", ", ".join(wheels)),
        ("files not found", ", ".join(m.wanted for m in members)),
    ]
    if python:
        evidence.append(("python", python))
    evidence.append(
        (
            "tensorflow",
            f"{needs.tf.version} built for CUDA {needs.cuda or '?'}, cuDNN {needs.cudnn or '?'}",
        )
    )
    return Finding(
        id="library-not-found",
        severity=severity_for(required),
        link=Link.LIBRARIES,
        title=f"{len(members)} CUDA libraries of {needs.label} are missing: its nvidia-* "
        f"wheels ({len(wheels)}) are not installed",
        detail=(
            f"{needs.label} gets its CUDA libraries from the nvidia-*-cu{needs.cuda_major} "
            f"wheels of the [and-cuda] extra, and {len(wheels)} of them are not installed in "
            f"this environment (a plain `pip install {dist_name}` does not bring them). "
            f"{consequence}"
        ),
        evidence=tuple(evidence),
        fix=(
            "Install TensorFlow with its CUDA wheels: "
            + pip_install(inventory, python, f"{dist_name}[and-cuda]=={needs.tf.version}"),
            "Or only the missing wheels: " + pip_install(inventory, python, *specs),
        ),
        subject=subject_for(inventory, f"{dist_name}[and-cuda]", python),
    )


def _not_found_finding(
    inventory: Inventory, python: str, members: list[LibraryResolution]
) -> Finding:
    first = members[0]
    required = any(m.required for m in members)
    names = [m.wanted for m in members]
    label = _ROLE_LABEL.get(first.role, first.role)
    if len(names) == 1:
        title = f"{first.wanted} ({label}) not found"
    else:
        title = f"{first.wanted} and {len(names) - 1} more {label} files not found"
    windows = is_windows(inventory)
    if required:
        impact = (
            f"TensorFlow cannot use the GPU without {'it' if len(names) == 1 else 'them'}: it "
            'logs "Cannot dlopen some GPU libraries" and silently runs on the CPU.'
        )
    else:
        impact = _OPTIONAL_IMPACT.get(first.role, "TensorFlow works without it, with less.")
    where = (
        "in the application directory, System32 or any PATH directory"
        if windows
        else "in LD_LIBRARY_PATH, TensorFlow's RUNPATH (the pip nvidia-* wheels), the ld.so "
        "cache or /lib and /usr/lib"
    )
    detail = f"TensorFlow opens {', '.join(names)} by name; the loader finds no such file {where}."
    evidence: list[tuple[str, str]] = [("wanted", ", ".join(names))]
    evidence.append(("required", "yes" if required else "no (optional)"))
    if python:
        evidence.append(("python", python))
    needs = tf_needs(inventory, python)
    if needs:
        evidence.append(
            (
                "tensorflow",
                f"{needs.tf.version} built for CUDA {needs.cuda or '?'}, "
                f"cuDNN {needs.cudnn or '?'}",
            )
        )
    variable = "PATH" if windows else "LD_LIBRARY_PATH"
    evidence.append((variable, inventory.environment.get(variable) or "(not set)"))
    elsewhere = found_elsewhere(members)
    for file in elsewhere:
        evidence.append(("found elsewhere", describe_file(file)))
    for member in members:
        if member.note:
            evidence.append(("note", f"{member.wanted}: {member.note}"))
    return Finding(
        id="library-not-found",
        severity=severity_for(required),
        link=Link.LIBRARIES,
        title=title,
        detail=f"{detail} {impact}",
        evidence=tuple(evidence),
        fix=tuple(not_found_fix(inventory, python, members, needs, elsewhere)),
        subject=subject_for(inventory, first.wanted, python),
    )
