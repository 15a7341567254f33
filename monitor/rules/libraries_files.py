"""What a library file is: its role, the CUDA major its name asks for, how to show it.

Shared by the library rules: which roles belong to the driver, which carry a major in their
version, whether a resolved file has the major TF asked for, and the severity of a missing
or broken file.
"""

from __future__ import annotations

import re

from monitor.model import LibraryFile, LibraryResolution, Severity
from monitor.rules.libraries_paths import basename
from monitor.versions import major_minor, parse_version

# The driver's own libraries: they come with the NVIDIA driver, never from pip or a toolkit.
DRIVER_ROLES = frozenset({"cuda_driver", "nvml"})

# Roles whose own version shares its major with the soname (libcublas.so.12 is cuBLAS 12.x,
# libcufft.so.11 is cuFFT 11.x). Not CUPTI: its files carry year versions (2023.1.1).
VERSIONED_ROLES = frozenset(
    {
        "cudart",
        "cublas",
        "cublasLt",
        "cufft",
        "curand",
        "cusolver",
        "cusparse",
        "cudnn",
        "nvjitlink",
        "nccl",
        "nvrtc",
    }
)


def severity_for(required: bool) -> Severity:
    return Severity.ERROR if required else Severity.WARNING


def describe_file(file: LibraryFile) -> str:
    parts = [file.path]
    extra = []
    if file.version:
        extra.append(f"version {file.version}")
    if file.soname and file.soname != basename(file.path):
        extra.append(f"soname {file.soname}")
    if file.via:
        extra.append(f"via {file.via}")
    if extra:
        parts.append(f"({', '.join(extra)})")
    return " ".join(parts)


def wanted_major(file_name: str) -> int | None:
    """The major a file name asks for: libcudart.so.12 -> 12, libcudart.so.11.0 -> 11,
    cudart64_110.dll -> 11, cublas64_11.dll -> 11, cudnn64_8.dll -> 8; nvcuda.dll -> None."""
    name = basename(file_name or "")
    match = re.search(r"\.so\.(\d+)", name)
    if match:
        return int(match.group(1))
    match = re.search(r"64_(\d+)\.dll$", name, re.IGNORECASE)
    if match:
        digits = match.group(1)
        if len(digits) <= 2:
            return int(digits)
        if len(digits) == 3:
            return int(digits[:2])
    return None


def version_major(text: str | None) -> int | None:
    parsed = parse_version(text)
    return parsed[0] if parsed else None


def wrong_version_reasons(res: LibraryResolution) -> list[str]:
    """Why the resolved file is not the major TF asked for (empty: it is, or cannot tell)."""
    file = res.resolved
    if file is None or file.error or res.role in DRIVER_ROLES or res.role == "msvc_runtime":
        return []
    wanted = wanted_major(res.wanted)
    if wanted is None:
        return []
    reasons = []
    soname_major = wanted_major(file.soname or "")
    if file.soname and soname_major is not None and soname_major != wanted:
        reasons.append(f"its soname is {file.soname} (major {soname_major}, not {wanted})")
    if res.role in VERSIONED_ROLES and file.version_source != "soname":
        major = version_major(file.version)
        if major is not None and major != wanted:
            source = f" (from its {file.version_source})" if file.version_source else ""
            reasons.append(f"it is version {file.version}{source}, major {major}, not {wanted}")
    return reasons


def major_minor_text(version: str | None) -> str | None:
    mm = major_minor(version)
    return f"{mm[0]}.{mm[1]}" if mm else None
