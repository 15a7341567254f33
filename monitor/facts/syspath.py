"""Reading the target system through a Root: its variables, its paths, small files.

Shared by the toolkit, cuDNN, environment and runtime probes. Paths are system paths ("/usr/
local/cuda", "C:\\Windows"); symlinks are followed inside the root, so an absolute link target
in a test tree (/usr/local/cuda -> /usr/local/cuda-12.4, as NVIDIA's packages make it) stays in
that tree. Nothing here raises for a missing or unreadable file.
"""

from __future__ import annotations

import errno
import ntpath
import os
import posixpath
import re
import stat
from collections.abc import Mapping

from monitor.facts.paths import Root
from monitor.versions import parse_version

MAX_SMALL_FILE = 1 << 20
_MAX_SYMLINKS = 40
_CUDA_PATH_V = re.compile(r"CUDA_PATH_V(\d+)_(\d+)")


def env_get(env: Mapping[str, str], name: str, os_name: str) -> str | None:
    """A variable's value; on Windows names are case-insensitive ("Path", "ProgramFiles")."""
    value = env.get(name)
    if value is not None or os_name != "windows":
        return value
    upper = name.upper()
    return next((v for k, v in env.items() if k.upper() == upper), None)


def cuda_path_variables(env: Mapping[str, str], os_name: str) -> list[tuple[str, str]]:
    """(name, value) of every CUDA_PATH_V<major>_<minor> set, oldest CUDA first."""
    found = {}
    for key, value in env.items():
        match = _CUDA_PATH_V.fullmatch(key.upper() if os_name == "windows" else key)
        if match:
            major, minor = int(match.group(1)), int(match.group(2))
            found[(major, minor)] = (f"CUDA_PATH_V{match.group(1)}_{match.group(2)}", value)
    return [found[key] for key in sorted(found)]


def split_search_path(value: str | None, os_name: str) -> list[str]:
    """A PATH-like value split with the OS separator; empty entries kept, "" gives none."""
    if not value:
        return []
    return value.split(";" if os_name == "windows" else ":")


def join(os_name: str, *parts: str) -> str:
    return (ntpath if os_name == "windows" else posixpath).join(*parts)


def dirname(os_name: str, path: str) -> str:
    return (ntpath if os_name == "windows" else posixpath).dirname(path)


def normpath(os_name: str, path: str) -> str:
    return (ntpath if os_name == "windows" else posixpath).normpath(path)


def is_absolute(path: str, os_name: str) -> bool:
    """A path the Root can map: "/x" on POSIX, "C:\\x" on Windows (not UNC, not relative)."""
    if os_name == "windows":
        return re.match(r"[A-Za-z]:[\\/]", path) is not None
    return path.startswith("/")


def resolve(root: Root, system_path: str, os_name: str) -> tuple[str, str | None]:
    """The system path with every symlink followed inside `root`, and an error for a loop.

    Missing components are kept as written (the result then does not exist). Windows paths are
    normalised and matched case-insensitively, as Windows does (a tree copied onto a Linux disk
    is case-sensitive); junctions and links are not followed there.
    """
    if os_name == "windows":
        return _windows_case(root, ntpath.normpath(system_path)), None
    path, exc = follow_links(root, system_path)
    if isinstance(exc, LinkError):
        return posixpath.normpath(system_path), exc.strerror
    return path, None


class LinkError(OSError):
    """A symlink that cannot be followed: a loop, or a link that cannot be read."""


def follow_links(
    root: Root, system_path: str, *, strict: bool = False
) -> tuple[str, OSError | None]:
    """Walk a POSIX system path inside `root`, following symlinks (at most 40, as Linux does).

    (final path, None) when every component exists. Otherwise the OSError that stopped the walk
    (a LinkError for a loop or an unreadable link) and the path as far as it got, the rest
    joined on as written. `strict` also stops at a non-directory with components after it
    (ENOTDIR), as open() does; otherwise "file/.." is taken lexically.
    """
    pending = system_path.split("/")
    pending.reverse()
    resolved = "/"
    links = 0
    while pending:
        name = pending.pop()
        if name in ("", "."):
            continue
        if name == "..":
            resolved = posixpath.dirname(resolved)
            continue
        candidate = posixpath.join(resolved, name)
        real = root.path(candidate)
        try:
            mode = os.lstat(real).st_mode
        except (OSError, ValueError) as exc:  # ValueError: an embedded NUL
            pending.reverse()
            path = posixpath.normpath(posixpath.join(candidate, *pending))
            if isinstance(exc, ValueError):
                return path, OSError(errno.EINVAL, str(exc))
            return path, exc
        if not stat.S_ISLNK(mode):
            if strict and any(pending) and not stat.S_ISDIR(mode):
                return candidate, OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
            resolved = candidate
            continue
        links += 1
        if links > _MAX_SYMLINKS:
            return candidate, LinkError(errno.ELOOP, "symlink loop (too many levels of links)")
        try:
            target = os.readlink(real)
        except OSError as exc:
            return candidate, LinkError(exc.errno, f"cannot read link: {exc.strerror or exc}")
        if target.startswith("/"):
            resolved = "/"
        pending.extend(reversed(target.split("/")))
    return resolved, None


def _windows_case(root: Root, path: str) -> str:
    """`path` with each component spelt as on disk ("C:\\WINDOWS\\system32" -> "...System32")."""
    if os.path.lexists(root.path(path)):
        return path
    drive, rest = ntpath.splitdrive(path)
    current = drive + "\\"
    parts = [part for part in rest.split("\\") if part]
    for index, part in enumerate(parts):
        if not os.path.lexists(root.path(ntpath.join(current, part))):
            lowered = part.lower()
            try:
                names = os.listdir(root.path(current))
            except OSError:
                names = []
            part = next((name for name in names if name.lower() == lowered), None)
            if part is None:
                return ntpath.join(current, *parts[index:])
        current = ntpath.join(current, part)
    return current


def real_path(root: Root, system_path: str, os_name: str) -> str:
    """Where to open `system_path` on this disk (symlinks followed inside the root)."""
    return root.path(resolve(root, system_path, os_name)[0])


def list_dir(root: Root, system_dir: str, os_name: str) -> list[str]:
    """The names in a directory, sorted; [] when it is absent or unreadable."""
    try:
        return sorted(os.listdir(real_path(root, system_dir, os_name)))
    except OSError:
        return []


def by_version(names: list[str]) -> list[str]:
    """Names sorted by the first version number in them ("cuda-9.2" before "cuda-11.8")."""
    return sorted(names, key=lambda name: (parse_version(name) or (), name))


def read_text(
    root: Root, system_path: str, os_name: str, limit: int = MAX_SMALL_FILE
) -> tuple[str | None, str | None]:
    """(text, error): (None, None) when the file is absent; binary content is an error."""
    try:
        with open(real_path(root, system_path, os_name), "rb") as handle:
            data = handle.read(limit)
    except (FileNotFoundError, NotADirectoryError):
        return None, None
    except OSError as exc:
        return None, f"cannot read: {exc.strerror or exc}"
    if b"\0" in data:
        return None, "binary data, not text"
    return data.decode("utf-8", errors="replace"), None
