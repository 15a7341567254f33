"""Fix steps for library-not-found: how to get a missing library for this OS and install kind.

pip wheels (tensorflow[and-cuda]), a CUDA toolkit / cuDNN on Linux, a toolkit on the Windows
Path, or the driver; first, a copy that is on disk but not where the loader looks.
"""

from __future__ import annotations

import posixpath

from monitor.model import Inventory, LibraryFile, LibraryResolution
from monitor.rules import fixes
from monitor.rules.fixes import quote_path
from monitor.rules.libraries_files import DRIVER_ROLES, major_minor_text, wanted_major
from monitor.rules.libraries_interpreter import TfNeeds, pip_install
from monitor.rules.libraries_paths import (
    basename,
    dirname,
    is_windows,
    where_set_hint,
    windows_add_to_path,
)
from monitor.rules.libraries_wheels import and_cuda_requirements, has_and_cuda, installed, wheel_for
from monitor.versions import major_minor

_CUDA_ARCHIVE = "https://developer.nvidia.com/cuda-toolkit-archive"
_CUDNN_ARCHIVE = "https://developer.nvidia.com/rdp/cudnn-archive"
_APPEND_LD = "${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
_WIN_CUDA_ROOT = "C:\\Program Files\\NVIDIA GPU Computing Toolkit\\CUDA"


def found_elsewhere(members: list[LibraryResolution]) -> list[LibraryFile]:
    """Usable files with a wanted name that the loader does not search."""
    wanted = {m.wanted.lower() for m in members}
    seen, found = set(), []
    for member in members:
        for file in member.candidates:
            if file.error or basename(file.path).lower() not in wanted or file.path in seen:
                continue
            if file.soname and wanted_major(file.soname) != wanted_major(member.wanted):
                continue
            seen.add(file.path)
            found.append(file)
    return found


def unlinked_copies(
    members: list[LibraryResolution],
) -> list[tuple[LibraryResolution, LibraryFile]]:
    """Files of the right major that lack the soname link TF asks for (ldconfig not run)."""
    out = []
    for member in members:
        for file in member.candidates:
            if file.error and "link next to it" in file.error:
                out.append((member, file))
                break
    return out


def _linux_elsewhere_steps(
    inventory: Inventory,
    members: list[LibraryResolution],
    elsewhere: list[LibraryFile],
    needs: TfNeeds | None,
) -> list[str]:
    """Steps when the file is on disk but not where the loader looks (empty: it is not)."""
    if elsewhere:
        file = elsewhere[0]
        directory = dirname(file.path, "linux")
        if file.via == "ld.so.conf":
            return [
                f"{directory} is listed in /etc/ld.so.conf.d but the loader cache is stale: "
                "sudo ldconfig"
            ]
        if members[0].role in DRIVER_ROLES:
            return [
                f"{file.path} exists, but the loader does not search {directory}: "
                f"echo {quote_path(directory, 'linux')} | sudo tee "
                "/etc/ld.so.conf.d/nvidia-driver.conf && sudo ldconfig"
            ]
        return [
            f"The file exists in {directory}, which the loader does not search; add it: "
            f"export LD_LIBRARY_PATH={quote_path(directory, 'linux')}{_APPEND_LD}",
            where_set_hint("LD_LIBRARY_PATH", needs.python if needs else None),
        ]
    unlinked = unlinked_copies(members)
    if unlinked:
        member, file = unlinked[0]
        directory = dirname(file.path, "linux")
        return [
            f"{file.path} is there but the {member.wanted} link is not: create the links with "
            f"sudo ldconfig, or by hand: ln -s {quote_path(basename(file.path), 'linux')} "
            f"{quote_path(posixpath.join(directory, member.wanted), 'linux')}"
        ]
    return []


def not_found_fix(
    inventory: Inventory,
    python: str,
    members: list[LibraryResolution],
    needs: TfNeeds | None,
    elsewhere: list[LibraryFile],
) -> list[str]:
    role = members[0].role
    if is_windows(inventory):
        if role in DRIVER_ROLES:
            return driver_library_fix(inventory)
        return _windows_not_found_fix(inventory, members, needs, elsewhere)
    if role in DRIVER_ROLES:
        return _linux_elsewhere_steps(inventory, members, elsewhere, needs) or (
            driver_library_fix(inventory)
        )
    if needs is not None and has_and_cuda(inventory, needs.tf):
        return _pip_not_found_fix(inventory, python, members, needs, elsewhere)
    return _toolkit_not_found_fix(inventory, members, needs, elsewhere)


def driver_library_fix(inventory: Inventory) -> list[str]:
    """How to get libcuda.so.1 / nvcuda.dll / libnvidia-ml.so.1: they come with the driver."""
    return list(fixes.driver_install_steps(inventory.host))


def _pip_not_found_fix(
    inventory: Inventory,
    python: str,
    members: list[LibraryResolution],
    needs: TfNeeds,
    elsewhere: list[LibraryFile],
) -> list[str]:
    wheel = wheel_for(members[0].role, needs.cuda_major)
    dist_name = needs.gpu_distribution
    in_wheel = next((f for f in elsewhere if f.via == "pip"), None)
    if in_wheel is not None:
        # The wheel's file is there; TF's RUNPATH just does not lead to it (TF 2.16.1).
        directory = dirname(in_wheel.path, "linux")
        return [
            f"The file is in {directory}, but TensorFlow's RUNPATH does not lead there (a known "
            "problem of TF 2.16.1, tensorflow#63362). Link the pip libraries into the package: "
            f"cd {quote_path(needs.tf.package_dir, 'linux')} && ln -svf ../nvidia/*/lib/*.so* .",
            f"Or add it to the search path: export LD_LIBRARY_PATH={quote_path(directory, 'linux')}"
            f"{_APPEND_LD}",
        ]
    steps = _linux_elsewhere_steps(inventory, members, [], needs)
    present = installed(needs.python, wheel) if wheel else None
    if present is not None:
        steps.append(
            f"{present.name} {present.version} is installed but its files are missing; "
            "reinstall it: "
            + pip_install(
                inventory,
                python,
                "--force-reinstall",
                "--no-deps",
                f"{present.name}=={present.version}",
            )
        )
        if major_minor(needs.tf.version) == (2, 16):
            steps.append(
                "TensorFlow 2.16 often does not find the pip CUDA libraries (tensorflow#63362); "
                "link them into the package: cd "
                + quote_path(needs.tf.package_dir, "linux")
                + " && ln -svf ../nvidia/*/lib/*.so* ."
            )
        return steps
    if wheel:
        requirement = and_cuda_requirements(needs.tf).get(wheel)
        cudnn = major_minor(needs.cudnn)
        if requirement is not None:
            spec = requirement.text
        elif members[0].role == "cudnn" and cudnn is not None:
            spec = f"{wheel}>={needs.cudnn},<{cudnn[0] + 1}"
        else:
            spec = wheel
        steps.append("Install the wheel that provides it: " + pip_install(inventory, python, spec))
    steps.append(
        "Or reinstall TensorFlow with all its CUDA wheels: "
        + pip_install(inventory, python, f"{dist_name}[and-cuda]=={needs.tf.version}")
    )
    return steps


def _toolkit_not_found_fix(
    inventory: Inventory,
    members: list[LibraryResolution],
    needs: TfNeeds | None,
    elsewhere: list[LibraryFile],
) -> list[str]:
    role = members[0].role
    steps = _linux_elsewhere_steps(inventory, members, elsewhere, needs)
    if steps:
        return steps
    cuda = major_minor_text(needs.cuda) if needs else None
    cudnn = major_minor_text(needs.cudnn) if needs else None
    if not cuda:
        return [
            f"Install the library that provides {members[0].wanted} (the CUDA toolkit or cuDNN "
            "version your TensorFlow was built for) and add its lib64 directory to "
            "LD_LIBRARY_PATH."
        ]
    lib64 = f"/usr/local/cuda-{cuda}/lib64"
    if role == "cudnn":
        steps.append(
            f"Install cuDNN {cudnn or ''} for CUDA {cuda.split('.')[0]}.x ({_CUDNN_ARCHIVE}) "
            f"and copy its lib files into {lib64} (or add its lib directory to LD_LIBRARY_PATH)."
        )
    elif role == "cupti":
        lib64 = f"/usr/local/cuda-{cuda}/extras/CUPTI/lib64"
        steps.append(f"CUPTI ships with the CUDA {cuda} toolkit ({_CUDA_ARCHIVE}) in {lib64}.")
    else:
        steps.append(
            f"{needs.label if needs else 'TensorFlow'} needs CUDA {cuda}"
            + (f" and cuDNN {cudnn}" if cudnn else "")
            + f": install the CUDA {cuda} toolkit ({_CUDA_ARCHIVE})"
            + (f" and cuDNN {cudnn} ({_CUDNN_ARCHIVE})." if cudnn else ".")
        )
    steps.append(f"export LD_LIBRARY_PATH={lib64}{_APPEND_LD}")
    steps.append(where_set_hint("LD_LIBRARY_PATH", needs.python if needs else None))
    return steps


def _windows_not_found_fix(
    inventory: Inventory,
    members: list[LibraryResolution],
    needs: TfNeeds | None,
    elsewhere: list[LibraryFile],
) -> list[str]:
    role = members[0].role
    if needs is not None and needs.facts is not None and not needs.facts.gpu_supported:
        return [
            f"{needs.label} has no native-Windows GPU build (the last one is 2.10): run "
            'TensorFlow in WSL2 with the Linux wheel (pip install "tensorflow[and-cuda]"), or '
            "install tensorflow==2.10.1 with CUDA 11.2 and cuDNN 8.1."
        ]
    steps = []
    if elsewhere:
        directory = dirname(elsewhere[0].path, "windows")
        steps.append(f"The DLL exists in {directory}, which is not on Path.")
        steps.append(windows_add_to_path(directory))
        return steps
    cuda = major_minor_text(needs.cuda) if needs else None
    cudnn = major_minor_text(needs.cudnn) if needs else None
    if not cuda:
        return [
            f"Install the CUDA toolkit / cuDNN that provide {members[0].wanted} and add their "
            "bin directories to Path."
        ]
    root = _windows_toolkit_root(inventory, cuda)
    if role == "cudnn":
        steps.append(
            f"Install cuDNN {cudnn or ''} for CUDA {cuda.split('.')[0]}.x ({_CUDNN_ARCHIVE}) and "
            f"copy its bin\\*.dll into {root}\\bin (or add the cuDNN bin folder to Path)."
        )
        steps.append(windows_add_to_path(f"{root}\\bin"))
    elif role == "cupti":
        steps.append(windows_add_to_path(f"{root}\\extras\\CUPTI\\lib64"))
    else:
        steps.append(
            f"{needs.label if needs else 'TensorFlow'} needs CUDA {cuda}"
            + (f" and cuDNN {cudnn}" if cudnn else "")
            + f": install CUDA {cuda} ({_CUDA_ARCHIVE})"
            + (f" and cuDNN {cudnn} ({_CUDNN_ARCHIVE})" if cudnn else "")
            + ", then put their bin directories on Path."
        )
        steps.append(windows_add_to_path(f"{root}\\bin"))
    steps.append(f"Check in a new terminal: where {members[0].wanted}")
    return steps


def _windows_toolkit_root(inventory: Inventory, cuda_mm: str) -> str:
    for toolkit in inventory.toolkits:
        if major_minor_text(toolkit.version) == cuda_mm and toolkit.root:
            return toolkit.root
    return f"{_WIN_CUDA_ROOT}\\v{cuda_mm}"
