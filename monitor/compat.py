"""Compatibility facts from monitor/data/*.csv: TF builds, driver floors, library names, GPUs.

The CSV files are derived from ../shared/compat (see monitor/data/README.md); every row keeps
its `source`. Lookups here are pure and cached; they never touch the machine.
"""

from __future__ import annotations

import csv
import functools
import io
import os

from monitor.record import record
from monitor.versions import major_minor, parse_version


@record
class TfBuildFacts:
    """One TF minor release on one platform (tensorflow_builds.csv)."""

    tf_version: str
    platform: str
    python_min: str
    python_max: str
    cuda: str
    cudnn: str
    gpu_supported: bool
    notes: str
    source: str


@record
class DriverFloor:
    """A minimum driver for a CUDA version (cuda_driver.csv). kind: toolkit-release/minor-compat."""

    cuda_version: str
    min_driver: str
    kind: str
    source: str
    notes: str


@record
class LibraryName:
    """A file TF (or a library TF loads) opens (libraries.csv), and whether TF needs it to start.

    Optional ones (cupti, nccl, nvjitlink, nvml, and curand for CUDA 12 builds) degrade
    features instead of hiding the GPU.
    """

    generation: str
    platform: str
    role: str
    file_name: str
    required: bool
    source: str
    notes: str


@record
class GpuArch:
    """A CUDA compute capability (gpu_arch.csv)."""

    compute_capability: str
    architecture: str
    example_gpus: str
    first_cuda: str
    last_cuda: str
    notes: str
    source: str


# Distributions that own a `tensorflow` package: the one whose RECORD lists its files is "the"
# TensorFlow (on Windows 2.11-2.18.0 `tensorflow` is a stub that pulls `tensorflow-intel`).
TF_BUILD_NAMES = (
    "tensorflow",
    "tensorflow-gpu",
    "tensorflow-cpu",
    "tensorflow-intel",
    "tensorflow-macos",
    "tensorflow-cpu-aws",
    "tensorflow-aarch64",
    "tensorflow-rocm",
    "intel-tensorflow",
    "intel-tensorflow-avx512",
)

_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
OPTIONAL_ROLES = frozenset({"cupti", "nccl", "nvjitlink", "nvml"})


def data_text(name: str) -> str:
    """The text of a file shipped in monitor/data (a plain directory in the wheel; reading it
    directly spares importlib.resources' import, a tenth of a check)."""
    with open(os.path.join(_DATA, name), encoding="utf-8") as handle:
        return handle.read()


@functools.cache
def _rows(name: str) -> tuple[dict[str, str], ...]:
    return tuple(csv.DictReader(io.StringIO(data_text(name))))


def platform_name(os_name: str) -> str:
    """Our host os ("linux", "windows", "darwin") to the tables' platform ("macos")."""
    return "macos" if os_name == "darwin" else os_name


# --------------------------------------------------------------------------- TensorFlow


def tf_build(tf_version: str | None, os_name: str) -> TfBuildFacts | None:
    """The tested build configuration of a TF release (matched on major.minor)."""
    mm = major_minor(tf_version)
    if mm is None:
        return None
    key = f"{mm[0]}.{mm[1]}"
    for row in _rows("tensorflow_builds.csv"):
        if row["tf_version"] == key and row["platform"] == platform_name(os_name):
            return TfBuildFacts(
                tf_version=row["tf_version"],
                platform=row["platform"],
                python_min=row["python_min"],
                python_max=row["python_max"],
                cuda=row["cuda"],
                cudnn=row["cudnn"],
                gpu_supported=row["gpu_supported"] == "yes",
                notes=row["notes"],
                source=row["source"],
            )
    return None


def known_tf_versions() -> tuple[str, ...]:
    return tuple(dict.fromkeys(row["tf_version"] for row in _rows("tensorflow_builds.csv")))


# --------------------------------------------------------------------------- drivers


def _driver_column(os_name: str) -> str:
    return "min_driver_windows" if os_name == "windows" else "min_driver_linux"


def toolkit_min_driver(cuda_version: str | None, os_name: str) -> DriverFloor | None:
    """The driver a CUDA release needs without minor-version compatibility (NVIDIA Table 3).

    Picks the newest listed release of the same major.minor that is not newer than
    `cuda_version` ("12.5.1" -> 12.5.1; "12.3" -> 12.3.0); falls back to the oldest release of
    that major.minor.
    """
    wanted = parse_version(cuda_version)
    mm = major_minor(cuda_version)
    if wanted is None or mm is None:
        return None
    same_minor = []
    for row in _rows("cuda_driver.csv"):
        if row["kind"] != "toolkit-release" or major_minor(row["cuda_version"]) != mm:
            continue
        value = row[_driver_column(os_name)]
        if parse_version(value) is None:
            continue
        same_minor.append((parse_version(row["cuda_version"]) or (), row, value))
    if not same_minor:
        return None
    same_minor.sort(key=lambda item: item[0])
    padded = wanted + (0,) * (3 - len(wanted))
    eligible = [item for item in same_minor if item[0] <= padded] or same_minor[:1]
    _, row, value = eligible[-1]
    return DriverFloor(row["cuda_version"], value, row["kind"], row["source"], row["notes"])


def minor_compat_min_driver(cuda_version: str | None, os_name: str) -> DriverFloor | None:
    """The driver floor for CUDA minor-version compatibility of a major (NVIDIA Table 2)."""
    parsed = parse_version(cuda_version)
    if parsed is None:
        return None
    for row in _rows("cuda_driver.csv"):
        if row["kind"] == "minor-compat" and row["cuda_version"] == f"{parsed[0]}.x":
            value = row[_driver_column(os_name)]
            if parse_version(value) is None:
                return None
            return DriverFloor(row["cuda_version"], value, row["kind"], row["source"], row["notes"])
    return None


# --------------------------------------------------------------------------- libraries


def build_version(text: str | None) -> str | None:
    """A build_info CUDA/cuDNN version as a plain version.

    Windows builds store the DLL suffix instead: "64_112" is CUDA 11.2, "64_8" cuDNN 8,
    "64_100" CUDA 10.0. Plain versions ("12.5.1", "9") pass through; garbage gives None.
    """
    if not text:
        return None
    text = str(text).strip()
    if text.startswith("64_"):
        digits = text[3:]
        if not digits.isdigit():
            return None
        if len(digits) == 1:
            return digits
        return f"{digits[:-1]}.{digits[-1]}"
    return text if parse_version(text) else None


def cuda_generation(cuda_version: str | None) -> str | None:
    """The libraries.csv generation for a CUDA version: "cuda-11.2", "cuda-12.x", ..."""
    mm = major_minor(cuda_version)
    if mm is None:
        return None
    major, minor = mm
    if major >= 12:
        return f"cuda-{major}.x"
    if (major, minor) in ((10, 0), (10, 1), (11, 0), (11, 8)):
        return f"cuda-{major}.{minor}"
    if major == 10:
        return "cuda-10.1"
    if major == 11:
        return "cuda-11.2"
    return None


def required_libraries(
    cuda_version: str | None, cudnn_version: str | None, os_name: str
) -> tuple[LibraryName, ...]:
    """Every library file a CUDA build of TF opens, for its CUDA and cuDNN versions.

    Includes the driver's own libraries and, on Windows, the VC++ runtime DLLs.
    """
    platform = platform_name(os_name)
    cuda_gen = cuda_generation(build_version(cuda_version))
    cudnn_mm = major_minor(build_version(cudnn_version))
    generations = {"driver"}
    if cuda_gen:
        generations.add(cuda_gen)
    if cudnn_mm:
        generations.add(f"cudnn-{cudnn_mm[0]}")
    if platform == "windows":
        generations.add("msvc")
    found: dict[tuple[str, str], LibraryName] = {}
    for row in _rows("libraries.csv"):
        if row["cuda_or_cudnn_version"] not in generations or row["platform"] != platform:
            continue
        role = row["library_role"]
        optional = role in OPTIONAL_ROLES or (role == "curand" and cuda_gen == "cuda-12.x")
        name = LibraryName(
            generation=row["cuda_or_cudnn_version"],
            platform=platform,
            role=role,
            file_name=row["file_name"],
            required=not optional,
            source=row["source"],
            notes=row["notes"],
        )
        found.setdefault((role, name.file_name), name)
    return tuple(found.values())


def library_roles_for_file(file_name: str) -> tuple[str, ...]:
    """Which roles a file name plays in any generation (for classifying stray files)."""
    return tuple(
        dict.fromkeys(
            row["library_role"] for row in _rows("libraries.csv") if row["file_name"] == file_name
        )
    )


# --------------------------------------------------------------------------- GPUs


def gpu_arch(compute_capability: str | None) -> GpuArch | None:
    mm = major_minor(compute_capability)
    if mm is None:
        return None
    for row in _rows("gpu_arch.csv"):
        if major_minor(row["compute_capability"]) == mm:
            return GpuArch(
                compute_capability=row["compute_capability"],
                architecture=row["architecture"],
                example_gpus=row["example_gpus"],
                first_cuda=row["first_cuda"],
                last_cuda=row["last_cuda"],
                notes=row["notes"],
                source=row["source"],
            )
    return None
