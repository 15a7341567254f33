"""Fix text for the host the inventory was taken on: pip commands, driver installs, reboots.

Rules call these so that every finding's fix names the user's own interpreter and the package
tool of the user's own OS. Pure functions of their arguments; shared by the rule modules, so the
signatures are kept stable.
"""

from __future__ import annotations

import re
import shlex

from monitor.model import HostInfo
from monitor.versions import parse_version

NVIDIA_DRIVER_PAGE = "https://www.nvidia.com/en-us/drivers/"
NVIDIA_APP_PAGE = "https://www.nvidia.com/en-us/software/nvidia-app/"
WSL_CUDA_GUIDE = "https://docs.nvidia.com/cuda/wsl-user-guide/index.html"

# Driver branches that distributions and NVIDIA's CUDA repositories package for years (LTS and
# production branches); a requested minimum is rounded up to the next of these.
_PACKAGED_BRANCHES = (470, 535, 550, 570, 580)

# Arguments made only of these need no quotes in cmd.exe or PowerShell.
_WINDOWS_SAFE = re.compile(r"[A-Za-z0-9_./:=@%+,-]+")
# Characters that make cmd.exe split or reinterpret a Windows path (< > | " cannot occur in one).
_WINDOWS_PATH_SPECIAL = frozenset(" &()^%!;,")


# --------------------------------------------------------------------------- quoting


def is_windows(host: HostInfo) -> bool:
    """Native Windows (WSL reports "linux" with is_wsl set)."""
    return host.os == "windows"


def quote(arg: str, host: HostInfo) -> str:
    """A command argument (a pip requirement like `pkg>=1,<2`) quoted for the host's usual
    shell when it needs it: POSIX sh, or on Windows double quotes around anything outside a
    small safe set, so that < > | reach pip intact in cmd.exe and PowerShell."""
    if is_windows(host):
        return arg if _WINDOWS_SAFE.fullmatch(arg) else '"' + arg.replace('"', '\\"') + '"'
    return shlex.quote(arg)


def quote_path(path: str, os_name: str) -> str:
    """A file path quoted for the user's shell: POSIX sh as `quote`; on Windows (os_name
    "windows") double quotes only when the path holds a space or a cmd.exe special character,
    so a plain C:\\dir\\file.dll stays bare."""
    if os_name == "windows":
        return f'"{path}"' if any(c in path for c in _WINDOWS_PATH_SPECIAL) else path
    return shlex.quote(path)


def python_cmd(python: str, host: HostInfo) -> str:
    """The interpreter path as the first word of a command line."""
    if not python:
        return "python" if is_windows(host) else "python3"
    if is_windows(host):
        return f'"{python}"' if (" " in python or "&" in python) else python
    return quote(python, host)


def pip(python: str, host: HostInfo, *args: str) -> str:
    """`<python> -m pip <args>` for the watched interpreter, each argument quoted as needed."""
    words = " ".join(quote(a, host) for a in args)
    return f"{python_cmd(python, host)} -m pip {words}".rstrip()


# --------------------------------------------------------------------------- the host


def linux_distro(host: HostInfo) -> str:
    """ "ubuntu", "debian", "fedora", "rhel", "arch", "opensuse" or "" from os_release."""
    text = (host.os_release or "").lower()
    for name, needles in (
        ("ubuntu", ("ubuntu", "pop!_os", "linux mint", "elementary")),
        ("debian", ("debian",)),
        ("fedora", ("fedora",)),
        ("rhel", ("red hat", "rhel", "rocky", "alma", "centos", "oracle linux")),
        ("arch", ("arch", "manjaro", "endeavour")),
        ("opensuse", ("suse",)),
    ):
        if any(n in text for n in needles):
            return name
    return ""


def driver_platform(host: HostInfo) -> str:
    """Which numbering the driver version follows: "windows" also under WSL2.

    Inside WSL2 the driver is the Windows one (NVML reports its Windows version, e.g. 560.94),
    so it is compared with the Windows columns of NVIDIA's tables.
    """
    if host.os == "windows" or host.is_wsl:
        return "windows"
    return host.os


def suggested_branch(min_driver: str | None) -> int | None:
    """The first widely packaged driver branch at or above `min_driver` (e.g. 555.42 -> 570)."""
    parsed = parse_version(min_driver)
    if parsed is None:
        return None
    for branch in _PACKAGED_BRANCHES:
        if branch >= parsed[0]:
            return branch
    return parsed[0]


# --------------------------------------------------------------------------- driver steps


def driver_install_steps(host: HostInfo, min_driver: str | None = None) -> tuple[str, ...]:
    """How to install or update the NVIDIA driver on this host to at least `min_driver`."""
    at_least = f" {min_driver} or newer" if min_driver else ""
    if host.is_wsl:
        return (
            f"Update the NVIDIA driver on the Windows side (NVIDIA app, or {NVIDIA_DRIVER_PAGE})"
            f" to{at_least or ' the newest release'}; WSL2 uses the Windows driver, which"
            " provides /usr/lib/wsl/lib/libcuda.so.1 and libnvidia-ml.so.1.",
            "Do not install a Linux NVIDIA driver inside WSL: it would shadow the Windows one.",
            "Then run `wsl --shutdown` in PowerShell, reopen the WSL terminal and check with"
            " `nvidia-smi`.",
        )
    if host.os == "windows":
        return (
            f"Update the driver with the NVIDIA app ({NVIDIA_APP_PAGE}) or download the Game"
            f" Ready / Studio (GeForce) or data-center driver{at_least} from"
            f" {NVIDIA_DRIVER_PAGE}.",
            "Restart Windows after the installer finishes.",
        )
    if host.os == "darwin":
        return ("macOS has no NVIDIA CUDA driver; use a Linux or Windows (WSL2) machine.",)
    branch = suggested_branch(min_driver)
    distro = linux_distro(host)
    steps: list[str] = []
    if distro == "ubuntu":
        steps.append("sudo ubuntu-drivers install   # installs the recommended driver")
        if branch:
            steps.append(
                f"or choose a branch{at_least}: `ubuntu-drivers list`, then"
                f" `sudo apt install nvidia-driver-{branch}`"
            )
    elif distro == "debian":
        steps.append(
            "sudo apt install nvidia-driver firmware-misc-nonfree   # needs the contrib,"
            " non-free and non-free-firmware components"
        )
        if min_driver:
            steps.append(
                f"if Debian's packaged driver is older than {min_driver}: add NVIDIA's CUDA"
                " repository (https://developer.nvidia.com/cuda-downloads) and"
                " `sudo apt install cuda-drivers`"
            )
    elif distro == "fedora":
        steps.append("sudo dnf install akmod-nvidia   # from RPM Fusion (nonfree)")
    elif distro == "rhel":
        steps.append(
            "add NVIDIA's CUDA repository (https://developer.nvidia.com/cuda-downloads), then"
            " `sudo dnf module install nvidia-driver:latest-dkms`"
        )
    elif distro == "arch":
        steps.append("sudo pacman -Syu nvidia   # or nvidia-open / nvidia-dkms for your kernel")
    elif distro == "opensuse":
        steps.append(
            "sudo zypper install-new-recommends --repo NVIDIA   # after adding NVIDIA's repository"
        )
    else:
        steps.append(
            f"Install the NVIDIA driver{at_least} from your distribution's packages or"
            f" from {NVIDIA_DRIVER_PAGE}."
        )
    steps.append("Reboot, then check with `nvidia-smi`.")
    return tuple(steps)


def reboot_steps(host: HostInfo) -> tuple[str, ...]:
    """Reboot so the loaded kernel module matches the installed user-space driver."""
    if host.is_wsl:
        return (
            "Restart Windows (the Windows driver was updated), or at least run `wsl --shutdown`"
            " in PowerShell and reopen WSL.",
        )
    if host.os == "windows":
        return ("Restart Windows to finish the driver update.",)
    return (
        "sudo reboot",
        "Without a reboot (no desktop running on the GPU): stop every CUDA program, then"
        " `sudo rmmod nvidia_uvm nvidia_drm nvidia_modeset nvidia && sudo modprobe nvidia`.",
        "Check afterwards: `nvidia-smi` and `cat /proc/driver/nvidia/version` show the same"
        " version.",
    )


def set_env_steps(host: HostInfo, name: str, value: str) -> tuple[str, ...]:
    """Set an environment variable for the user's future sessions."""
    if host.os == "windows":
        return (f"setx {name} {value}   # then open a new terminal",)
    return (
        f"export {name}={value}",
        f"add `export {name}={value}` to ~/.bashrc (or the venv's bin/activate) to keep it",
    )
