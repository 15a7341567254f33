"""cuDNN on disk: headers, libraries and pip wheels, each with the version it claims.

Only known directories are listed (each toolkit's, the distribution's, the Windows cuDNN
installer's, each site-packages' nvidia/cudnn). A file reached several ways (the
/usr/include/cudnn_version.h alternatives link, /usr/local/cuda -> cuda-12.4) is reported once,
at its real path.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence

from monitor.facts import syspath
from monitor.facts.paths import Root
from monitor.model import CudaToolkit, CudnnInstall
from monitor.versions import parse_version

_HEADER_LIMIT = 256 * 1024
_VERSION_HEADER = re.compile(r"cudnn_version(_v\d+)?\.h", re.IGNORECASE)
_LINUX_LIBRARY = re.compile(r"libcudnn\.so\.(\d+(?:\.\d+)*)")
_WINDOWS_LIBRARY = re.compile(r"cudnn64_(\d+)\.dll", re.IGNORECASE)
_DIST_INFO = re.compile(r"nvidia_cudnn_cu\d+-(\d[^-]*)\.dist-info")
_LINUX_INCLUDE = (
    "/usr/include",
    "/usr/include/x86_64-linux-gnu",
    "/usr/include/aarch64-linux-gnu",
    "/usr/local/cuda/include",
)
_LINUX_LIB = (
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/local/cuda/lib64",
)


def probe_cudnn(
    root: Root,
    env: Mapping[str, str],
    os_name: str,
    toolkits: Sequence[CudaToolkit],
    site_packages: Sequence[str],
) -> tuple[CudnnInstall, ...]:
    include_dirs, library_dirs = _places(root, env, os_name, toolkits)
    seen: set[str] = set()
    installs = []
    for _, path in _unique(root, os_name, seen, _header_files(root, include_dirs, os_name)):
        version, error = read_header(root, path, os_name)
        installs.append(CudnnInstall(path, version, "header", error))
    for found, path in _unique(root, os_name, seen, _library_files(root, library_dirs, os_name)):
        installs.append(_library(root, found, path, os_name))
    wheel_dirs = (syspath.join(os_name, sp, "nvidia", "cudnn") for sp in site_packages)
    for _, path in _unique(root, os_name, seen, wheel_dirs):
        if os.path.isdir(root.path(path)):
            installs.append(_wheel(root, path, os_name))
    return tuple(installs)


def read_header(root: Root, path: str, os_name: str) -> tuple[str | None, str | None]:
    """(version, error) from the CUDNN_MAJOR / MINOR / PATCHLEVEL defines of a header."""
    text, error = syspath.read_text(root, path, os_name, limit=_HEADER_LIMIT)
    if text is None:
        return None, error or "vanished while reading"
    parts = []
    for name in ("MAJOR", "MINOR", "PATCHLEVEL"):
        match = re.search(rf"^[ \t]*#[ \t]*define[ \t]+CUDNN_{name}[ \t]+(\d+)", text, re.M)
        if not match:
            what = "not a cuDNN version header" if not parts else "truncated"
            return ".".join(parts) or None, f"no CUDNN_{name} define: {what}?"
        parts.append(match.group(1))
    return ".".join(parts), None


def _places(
    root: Root, env: Mapping[str, str], os_name: str, toolkits: Sequence[CudaToolkit]
) -> tuple[list[str], list[str]]:
    """The include and library directories to list."""
    if os_name != "windows":
        include = [f"{t.root}/include" for t in toolkits] + list(_LINUX_INCLUDE)
        library = [f"{t.root}/{sub}" for t in toolkits for sub in ("lib64", "lib")]
        return include, library + list(_LINUX_LIB)
    include = [syspath.join(os_name, t.root, "include") for t in toolkits]
    library = [syspath.join(os_name, t.root, "bin") for t in toolkits]
    # The cuDNN >= 8.9 installer: CUDNN\v9.1\include\12.4\cudnn_version.h, bin\12.4\cudnn64_9.dll
    program_files = syspath.env_get(env, "ProgramFiles", os_name) or "C:\\Program Files"
    base = syspath.join(os_name, program_files, "NVIDIA", "CUDNN")
    for version in syspath.by_version(syspath.list_dir(root, base, os_name)):
        if not re.fullmatch(r"v\d.*", version):
            continue
        for kind, places in (("include", include), ("bin", library)):
            kind_dir = syspath.join(os_name, base, version, kind)
            places.append(kind_dir)
            places += [
                syspath.join(os_name, kind_dir, cuda)
                for cuda in syspath.by_version(syspath.list_dir(root, kind_dir, os_name))
                if re.fullmatch(r"\d+\.\d+", cuda)
            ]
    return include, library


def _header_files(root: Root, directories: list[str], os_name: str) -> Iterable[str]:
    """cudnn_version*.h of each directory, else its cudnn.h (cuDNN 7 keeps the defines there)."""
    for directory in directories:
        names = syspath.list_dir(root, directory, os_name)
        headers = [name for name in names if _VERSION_HEADER.fullmatch(name)]
        if not headers:
            headers = [name for name in names if name.lower() == "cudnn.h"]
        for name in headers:
            yield syspath.join(os_name, directory, name)


def _library_files(root: Root, directories: list[str], os_name: str) -> Iterable[str]:
    pattern = _WINDOWS_LIBRARY if os_name == "windows" else _LINUX_LIBRARY
    for directory in directories:
        for name in syspath.list_dir(root, directory, os_name):
            if pattern.fullmatch(name):
                yield syspath.join(os_name, directory, name)


def _unique(
    root: Root, os_name: str, seen: set[str], paths: Iterable[str]
) -> Iterable[tuple[str, str]]:
    """(path, resolved path) of each path, once across every kind of find."""
    for path in paths:
        resolved, _ = syspath.resolve(root, path, os_name)
        key = resolved.lower() if os_name == "windows" else resolved
        if key not in seen:
            seen.add(key)
            yield path, resolved


def _library_version(path: str, os_name: str) -> str | None:
    """A libcudnn.so.8.9.7 gives "8.9.7"; a cudnn64_8.dll only its major, "8"."""
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    pattern = _WINDOWS_LIBRARY if os_name == "windows" else _LINUX_LIBRARY
    match = pattern.fullmatch(name)
    return match.group(1) if match else None


def _library(root: Root, found: str, resolved: str, os_name: str) -> CudnnInstall:
    """A library file, versioned by its real name (the link's target)."""
    version = _library_version(resolved, os_name)
    if os.path.isfile(root.path(resolved)):
        return CudnnInstall(resolved, version, "library")
    error = f"dangling link to {resolved}" if resolved != found else "not a file"
    return CudnnInstall(found, version, "library", error)


def _wheel(root: Root, cudnn_dir: str, os_name: str) -> CudnnInstall:
    """An nvidia-cudnn-cu* wheel: version from its header, else its dist-info, else its library."""
    errors = []
    header_version = None
    headers = list(_header_files(root, [syspath.join(os_name, cudnn_dir, "include")], os_name))
    if headers:
        header_version, error = read_header(root, headers[0], os_name)
        if error:
            errors.append(f"{headers[0]}: {error}")
    site_packages = syspath.dirname(os_name, syspath.dirname(os_name, cudnn_dir))
    dist_infos = [
        match
        for name in syspath.list_dir(root, site_packages, os_name)
        if (match := _DIST_INFO.fullmatch(name))
    ]
    dist_version = dist_infos[0].group(1) if dist_infos else None
    if len(dist_infos) > 1:
        names = ", ".join(match.group(0) for match in dist_infos)
        errors.append(f"several cuDNN wheels share this directory: {names}")
    elif header_version and dist_version:
        header_parts = parse_version(header_version) or ()
        if (parse_version(dist_version) or ())[: len(header_parts)] != header_parts:
            errors.append(
                f"the header says {header_version} but {dist_infos[0].group(0)} says "
                f"{dist_version}: a mixed or half-upgraded install?"
            )
    library_dir = syspath.join(os_name, cudnn_dir, "bin" if os_name == "windows" else "lib")
    libraries = list(_library_files(root, [library_dir], os_name))
    if not libraries:
        errors.append(f"no cuDNN library in {library_dir}")
    library_version = _library_version(libraries[0], os_name) if libraries else None
    version = header_version or dist_version or library_version
    if version is None and not errors:
        errors.append("no header, dist-info or library tells the version")
    return CudnnInstall(cudnn_dir, version, "pip", "; ".join(errors) or None)
