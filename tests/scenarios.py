"""Inventories of real-world machines, for rule tests. Vary them with record.replace.

`linux_tf221_pip()` is a healthy workstation: driver 570.133.07 (CUDA 12.8), an RTX 4090,
Python 3.11 with tensorflow 2.21.0 and its nvidia-*-cu12 wheels, every library resolved
through TF's RUNPATH. `windows_tf210()` is the last native-Windows GPU setup: TF 2.10.1,
CUDA 11.2 and cuDNN 8.1 on PATH, driver 537.13, an RTX 3060.
"""

from __future__ import annotations

from monitor import compat
from monitor.model import (
    CudaToolkit,
    CudnnInstall,
    Distribution,
    DriverInfo,
    EnvironmentInfo,
    GpuInfo,
    HostInfo,
    Inventory,
    LibraryFile,
    LibraryResolution,
    PathEntry,
    PythonEnv,
    RuntimeDll,
    TensorflowBuild,
)
from monitor.record import replace

LINUX_PY = "/home/ada/venvs/tf/bin/python"
LINUX_SITE = "/home/ada/venvs/tf/lib/python3.11/site-packages"
WIN_PY = "C:\\Users\\ada\\venvs\\tf\\Scripts\\python.exe"
WIN_SITE = "C:\\Users\\ada\\venvs\\tf\\Lib\\site-packages"
WIN_CUDA = "C:\\Program Files\\NVIDIA GPU Computing Toolkit\\CUDA\\v11.2"

_PIP_DIRS = {
    "cudart": ("cuda_runtime", "12.9.79"),
    "cublas": ("cublas", "12.9.1.4"),
    "cublasLt": ("cublas", "12.9.1.4"),
    "cufft": ("cufft", "11.4.1.4"),
    "curand": ("curand", "10.3.10.19"),
    "cusolver": ("cusolver", "11.7.5.82"),
    "cusparse": ("cusparse", "12.5.10.65"),
    "cudnn": ("cudnn", "9.10.2.21"),
    "cupti": ("cuda_cupti", "12.9.79"),
    "nvjitlink": ("nvjitlink", "12.9.86"),
    "nccl": ("nccl", "2.27.3"),
}


def _linux_library(name: compat.LibraryName) -> LibraryResolution:
    if name.role in ("cuda_driver", "nvml"):
        path = f"/usr/lib/x86_64-linux-gnu/{name.file_name}"
        resolved = LibraryFile(
            path=path,
            via="ld.so.cache",
            soname=name.file_name,
            version="570.133.07",
            version_source="file name",
        )
    else:
        component, version = _PIP_DIRS[name.role]
        path = f"{LINUX_SITE}/nvidia/{component}/lib/{name.file_name}"
        via = "pip" if name.role in ("curand", "nvjitlink") else "RUNPATH"
        resolved = LibraryFile(
            path=path, via=via, soname=name.file_name, version=version, version_source="file name"
        )
    return LibraryResolution(
        role=name.role,
        wanted=name.file_name,
        python=LINUX_PY,
        required=name.required,
        resolved=resolved,
    )


def linux_tf221_pip() -> Inventory:
    """A healthy Linux workstation running TF 2.21 from pip with tensorflow[and-cuda]."""
    wheels = tuple(
        Distribution(f"nvidia-{component.replace('_', '-')}-cu12", version, LINUX_SITE)
        for component, version in dict(_PIP_DIRS.values()).items()
    )
    tf = TensorflowBuild(
        package_dir=f"{LINUX_SITE}/tensorflow",
        distribution="tensorflow",
        version="2.21.0",
        is_cuda_build=True,
        cuda_version="12.5.1",
        cudnn_version="9",
        compute_capabilities=("sm_60", "sm_70", "sm_80", "sm_89", "compute_90"),
        build_info=(
            ("cuda_version", "12.5.1"),
            ("cudnn_version", "9"),
            ("is_cuda_build", "True"),
            ("cuda_compute_capabilities", "sm_60,sm_70,sm_80,sm_89,compute_90"),
        ),
        runpath=tuple(
            f"{LINUX_SITE}/nvidia/{c}/lib"
            for c in (
                "nccl",
                "cuda_cupti",
                "cublas",
                "cudnn",
                "cufft",
                "cusparse",
                "cuda_runtime",
                "cusolver",
            )
        ),
    )
    python = PythonEnv(
        executable=LINUX_PY,
        version="3.11.7",
        bits=64,
        platform="linux",
        prefix="/home/ada/venvs/tf",
        sys_path=(LINUX_SITE,),
        site_packages=(LINUX_SITE,),
        distributions=(
            Distribution("tensorflow", "2.21.0", LINUX_SITE),
            Distribution("keras", "3.12.0", LINUX_SITE),
            *wheels,
        ),
        tensorflow=tf,
    )
    libraries = tuple(_linux_library(n) for n in compat.required_libraries("12.5.1", "9", "linux"))
    return Inventory(
        host=HostInfo(
            os="linux",
            os_release="Debian GNU/Linux 12",
            machine="x86_64",
            hostname="ws1",
            user="ada",
            home="/home/ada",
        ),
        collected_at="2026-11-23T12:00:00+00:00",
        driver=DriverInfo(
            nvml_loaded=True,
            driver_version="570.133.07",
            cuda_driver_version="12.8",
            nvml_version="12.570.133.07",
            kernel_module_version="570.133.07",
            nvml_library="/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1",
            gpus=(
                GpuInfo(
                    index=0,
                    name="NVIDIA GeForce RTX 4090",
                    uuid="GPU-5d1e2b9c-0000-4000-8000-000000000001",
                    compute_capability="8.9",
                    memory_total_mib=24564,
                    pci_bus_id="00000000:01:00.0",
                ),
            ),
        ),
        toolkits=(),
        cudnn=(
            CudnnInstall(location=f"{LINUX_SITE}/nvidia/cudnn", version="9.10.2", source="pip"),
        ),
        pythons=(python,),
        libraries=libraries,
        environment=EnvironmentInfo(
            variables=(("PATH", "/home/ada/venvs/tf/bin:/usr/local/bin:/usr/bin:/bin"),),
            path=(
                PathEntry("/home/ada/venvs/tf/bin"),
                PathEntry("/usr/local/bin", is_system=True),
                PathEntry("/usr/bin", is_system=True),
                PathEntry("/bin", is_system=True),
            ),
        ),
    )


def _windows_library(name: compat.LibraryName) -> LibraryResolution:
    if name.role in ("msvc_runtime", "cuda_driver", "nvml"):
        path, via = f"C:\\Windows\\System32\\{name.file_name}", "System32"
    else:
        path, via = f"{WIN_CUDA}\\bin\\{name.file_name}", "PATH"
    version = "8.1.1" if name.role == "cudnn" else None
    return LibraryResolution(
        role=name.role,
        wanted=name.file_name,
        python=WIN_PY,
        required=name.required,
        resolved=LibraryFile(
            path=path,
            via=via,
            version=version,
            version_source="version function" if version else "",
        ),
    )


def windows_tf210() -> Inventory:
    """A healthy native-Windows setup: TF 2.10.1, CUDA 11.2 + cuDNN 8.1 on PATH."""
    tf = TensorflowBuild(
        package_dir=f"{WIN_SITE}\\tensorflow",
        distribution="tensorflow",
        version="2.10.1",
        is_cuda_build=True,
        cuda_version="64_112",
        cudnn_version="64_8",
        compute_capabilities=("sm_35", "sm_50", "sm_60", "sm_70", "sm_75", "compute_80"),
        build_info=(
            ("cuda_version", "64_112"),
            ("cudnn_version", "64_8"),
            ("cudart_dll_name", "cudart64_112.dll"),
            ("cudnn_dll_name", "cudnn64_8.dll"),
            ("is_cuda_build", "True"),
            ("msvcp_dll_names", "msvcp140.dll,msvcp140_1.dll"),
            ("nvcuda_dll_name", "nvcuda.dll"),
        ),
    )
    python = PythonEnv(
        executable=WIN_PY,
        version="3.10.11",
        bits=64,
        platform="win32",
        prefix="C:\\Users\\ada\\venvs\\tf",
        sys_path=(WIN_SITE,),
        site_packages=(WIN_SITE,),
        distributions=(
            Distribution("tensorflow", "2.10.1", WIN_SITE),
            Distribution("keras", "2.10.0", WIN_SITE),
        ),
        tensorflow=tf,
    )
    libraries = tuple(
        _windows_library(n) for n in compat.required_libraries("11.2", "8.1", "windows")
    )
    path_value = ";".join(
        (f"{WIN_CUDA}\\bin", f"{WIN_CUDA}\\libnvvp", "C:\\Windows\\system32", "C:\\Windows")
    )
    return Inventory(
        host=HostInfo(
            os="windows",
            os_release="10.0.19045",
            machine="AMD64",
            hostname="WS2",
            user="ada",
            home="C:\\Users\\ada",
        ),
        collected_at="2026-11-23T12:00:00+00:00",
        driver=DriverInfo(
            nvml_loaded=True,
            driver_version="537.13",
            cuda_driver_version="12.2",
            nvml_library="C:\\Windows\\System32\\nvml.dll",
            gpus=(
                GpuInfo(
                    index=0,
                    name="NVIDIA GeForce RTX 3060",
                    uuid="GPU-0a0b0c0d-0000-4000-8000-000000000002",
                    compute_capability="8.6",
                    memory_total_mib=12288,
                ),
            ),
        ),
        toolkits=(
            CudaToolkit(
                root=WIN_CUDA,
                version="11.2.152",
                version_source="version.txt",
                origin="CUDA_PATH",
                active=True,
            ),
        ),
        cudnn=(
            CudnnInstall(
                location=f"{WIN_CUDA}\\include\\cudnn_version.h", version="8.1.1", source="header"
            ),
        ),
        pythons=(python,),
        libraries=libraries,
        environment=EnvironmentInfo(
            variables=(
                ("CUDA_PATH", WIN_CUDA),
                ("CUDA_PATH_V11_2", WIN_CUDA),
                ("PATH", path_value),
            ),
            path=(
                PathEntry(f"{WIN_CUDA}\\bin", cuda_version="11.2"),
                PathEntry(f"{WIN_CUDA}\\libnvvp", cuda_version="11.2"),
                PathEntry("C:\\Windows\\system32", is_system=True),
                PathEntry("C:\\Windows", is_system=True),
            ),
        ),
        runtime=tuple(
            RuntimeDll(name, f"C:\\Windows\\System32\\{name}", "14.38.33135.0")
            for name in ("msvcp140.dll", "msvcp140_1.dll", "vcruntime140.dll", "vcruntime140_1.dll")
        ),
    )


def with_python(inventory: Inventory, **changes) -> Inventory:
    """The inventory with its (first) watched interpreter changed."""
    python = replace(inventory.pythons[0], **changes)
    return replace(inventory, pythons=(python, *inventory.pythons[1:]))


def with_tensorflow(inventory: Inventory, **changes) -> Inventory:
    """The inventory with its (first) TensorFlow build changed."""
    tf = replace(inventory.pythons[0].tensorflow, **changes)
    return with_python(inventory, tensorflow=tf)
