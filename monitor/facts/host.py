"""Facts about the host itself: OS, release, hostname, user, WSL."""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Mapping

from monitor.facts.paths import Root
from monitor.model import HostInfo


def current_os() -> str:
    """ "linux", "windows" or "darwin" for the running interpreter."""
    if sys.platform.startswith("win"):
        return "windows"
    if sys.platform == "darwin":
        return "darwin"
    return "linux"


def probe_host(root: Root, env: Mapping[str, str], os_name: str) -> HostInfo:
    machine, hostname = _machine_and_node()
    return HostInfo(
        os=os_name,
        os_release=_os_release(root, os_name),
        machine=machine,
        hostname=hostname,
        user=_safe(getpass.getuser),
        home=env.get("HOME") or env.get("USERPROFILE") or os.path.expanduser("~"),
        is_wsl=os_name == "linux" and _is_wsl(root, env),
        root=root.root,
    )


def _machine_and_node() -> tuple[str, str]:
    """From os.uname; `platform` (2 ms of a fast check to import) only where that is
    missing (Windows)."""
    if hasattr(os, "uname"):
        name = os.uname()
        return name.machine, name.nodename
    import platform

    return platform.machine(), _safe(platform.node)


def _safe(function) -> str:
    try:
        return str(function())
    except (OSError, KeyError, ImportError):
        return ""


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read(65536)
    except OSError:
        return ""


def _os_release(root: Root, os_name: str) -> str:
    if os_name != "linux":
        import platform

        return f"{platform.system()} {platform.release()}".strip()
    for line in _read(root.path("/etc/os-release")).splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return ""


def _is_wsl(root: Root, env: Mapping[str, str]) -> bool:
    if env.get("WSL_DISTRO_NAME"):
        return True
    return "microsoft" in _read(root.path("/proc/sys/kernel/osrelease")).lower()
