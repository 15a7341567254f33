"""File paths and the loader's search paths, for the library rules' fix text.

basename / dirname for POSIX and Windows paths, and the steps that edit LD_LIBRARY_PATH or
the Windows Path. Shared with the environment and windows rules.
"""

from __future__ import annotations

import ntpath
import posixpath
import re
from collections.abc import Iterable

from monitor.model import Inventory, PythonEnv
from monitor.rules import fixes
from monitor.rules.fixes import quote_path


def is_windows(inventory: Inventory) -> bool:
    return fixes.is_windows(inventory.host)


def basename(path: str) -> str:
    """The file name of a POSIX or Windows path."""
    return re.split(r"[\\/]", path or "")[-1]


def dirname(path: str, os_name: str) -> str:
    return ntpath.dirname(path) if os_name == "windows" or "\\" in path else posixpath.dirname(path)


def ld_library_path_without(inventory: Inventory, remove: Iterable[str]) -> str:
    """`export LD_LIBRARY_PATH=...` without the given directories (or `unset ...`)."""
    drop = {posixpath.normpath(p) for p in remove if p}
    kept = [
        e.path
        for e in inventory.environment.ld_library_path
        if e.path and posixpath.normpath(e.path) not in drop
    ]
    if not kept:
        return "unset LD_LIBRARY_PATH"
    return f"export LD_LIBRARY_PATH={quote_path(':'.join(kept), 'linux')}"


def where_set_hint(variable: str, python: PythonEnv | None) -> str:
    """Where a Linux user's variable is usually set, as a grep over those files."""
    files = [
        "~/.bashrc",
        "~/.profile",
        "~/.bash_profile",
        "~/.zshrc",
        "/etc/environment",
        "/etc/profile.d/*.sh",
    ]
    if python and python.prefix:
        files.append(quote_path(posixpath.join(python.prefix, "bin", "activate"), "linux"))
    return (
        f"Make it permanent where {variable} is set (find it with: grep -n {variable} "
        f"{' '.join(files)}), then open a new shell."
    )


def windows_add_to_path(directory: str) -> str:
    return (
        "Add the directory to your user Path (PowerShell), then open a new terminal: "
        '[Environment]::SetEnvironmentVariable("Path", '
        '[Environment]::GetEnvironmentVariable("Path", "User") + '
        f'";{directory}", "User")'
    )
