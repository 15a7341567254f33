"""The variables that steer the stack, and every directory of PATH and LD_LIBRARY_PATH.

Reads only the mapping it is given, never os.environ, so the daemon can probe the environment
of a user's shell or of a service. Entries keep their order, duplicates and empty entries:
the loader's order is the point. Windows ACLs are not read: writable_by_others stays False.
"""

from __future__ import annotations

import ntpath
import os
import re
import stat
from collections.abc import Mapping

from monitor.facts import syspath
from monitor.facts.paths import Root
from monitor.facts.toolkits import read_version_files
from monitor.model import EnvironmentInfo, PathEntry
from monitor.versions import major_minor

VARIABLES = (
    "PATH",
    "LD_LIBRARY_PATH",
    "LD_PRELOAD",
    "CUDA_HOME",
    "CUDA_PATH",
    "CUDA_VISIBLE_DEVICES",
    "CUDA_DEVICE_ORDER",
    "TF_FORCE_GPU_ALLOW_GROWTH",
    "TF_CPP_MIN_LOG_LEVEL",
    "TF_GPU_ALLOCATOR",
    "TF_ENABLE_ONEDNN_OPTS",
    "XLA_FLAGS",
    "CONDA_PREFIX",
    "VIRTUAL_ENV",
)
_POSIX_SYSTEM = re.compile(r"/(usr|bin|sbin|lib|lib32|lib64|libx32|snap/bin)(/.*)?")
_POSIX_VERSIONED_CUDA = re.compile(r"(?:^|/)cuda-(\d+\.\d+)(?:/|$)")
_POSIX_CUDA_ROOT = re.compile(r"(.*?/cuda)(?:/|$)")
_WINDOWS_CUDA = re.compile(r"[\\/]CUDA[\\/]v(\d+\.\d+)(?:[\\/]|$)", re.IGNORECASE)


def probe_environment(root: Root, env: Mapping[str, str], os_name: str) -> EnvironmentInfo:
    names = [*VARIABLES, *(name for name, _ in syspath.cuda_path_variables(env, os_name))]
    variables = []
    for name in names:
        value = syspath.env_get(env, name, os_name)
        if value is not None:
            variables.append((name, value))

    def entries(name: str) -> tuple[PathEntry, ...]:
        value = syspath.env_get(env, name, os_name)
        return tuple(
            path_entry(root, entry, env, os_name)
            for entry in syspath.split_search_path(value, os_name)
        )

    return EnvironmentInfo(
        variables=tuple(sorted(variables)),
        path=entries("PATH"),
        ld_library_path=entries("LD_LIBRARY_PATH"),
    )


def path_entry(root: Root, entry: str, env: Mapping[str, str], os_name: str) -> PathEntry:
    """One search-path directory and its properties; `entry` is kept exactly as written."""
    windows = os_name == "windows"
    target = entry.strip('"') if windows else entry
    if not target:
        return PathEntry(
            entry, exists=False, is_dir=False, note="empty entry: searches the current directory"
        )
    if not syspath.is_absolute(target, os_name):
        note = (
            "network path: not checked"
            if windows and target.startswith("\\\\")
            else ("relative entry: depends on the current directory")
        )
        return PathEntry(entry, exists=False, is_dir=False, note=note)
    resolved, error = syspath.resolve(root, target, os_name)
    try:
        info = os.stat(root.path(resolved))
    except OSError:
        info = None
    return PathEntry(
        entry,
        exists=info is not None,
        is_dir=info is not None and stat.S_ISDIR(info.st_mode),
        writable_by_others=info is not None and not windows and _writable_by_others(info),
        is_system=_is_system(target, env, os_name),
        cuda_version=_cuda_version(root, target, resolved, os_name),
        note=error or "",
    )


def _writable_by_others(info: os.stat_result) -> bool:
    """Someone besides root and the current user can put files there (PATH hijack risk)."""
    mode = info.st_mode
    if mode & stat.S_IWOTH:
        return True
    if mode & stat.S_IWGRP and info.st_gid not in (0, os.getegid()):
        return True
    return bool(mode & stat.S_IWUSR) and info.st_uid not in (0, os.geteuid())


def _is_system(target: str, env: Mapping[str, str], os_name: str) -> bool:
    if os_name != "windows":
        return _POSIX_SYSTEM.fullmatch(syspath.normpath(os_name, target)) is not None
    system_root = (
        syspath.env_get(env, "SystemRoot", os_name)
        or syspath.env_get(env, "windir", os_name)
        or "C:\\Windows"
    )
    system_root = ntpath.normcase(ntpath.normpath(system_root))
    path = ntpath.normcase(ntpath.normpath(target))
    return path == system_root or path.startswith(system_root + "\\")


def _cuda_version(root: Root, target: str, resolved: str, os_name: str) -> str | None:
    """ "11.8" for /usr/local/cuda-11.8/bin, ...\\CUDA\\v11.2\\bin, or /usr/local/cuda/bin when
    the link leads to cuda-11.8 or the toolkit's version file says 11.8."""
    if os_name == "windows":
        match = _WINDOWS_CUDA.search(target)
        return match.group(1) if match else None
    for path in (syspath.normpath(os_name, target), resolved):
        match = _POSIX_VERSIONED_CUDA.search(path)
        if match:
            return match.group(1)
    match = _POSIX_CUDA_ROOT.match(resolved)
    if not match:
        return None
    version = major_minor(read_version_files(root, match.group(1), os_name)[0])
    return f"{version[0]}.{version[1]}" if version else None
