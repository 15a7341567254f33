"""The Visual C++ runtime DLLs TensorFlow needs on Windows, where they are, and their version.

Looked for in %SystemRoot%\\System32 first, then the watched interpreters' directories (Python
ships vcruntime140.dll beside python.exe). The version is the FileVersion of the DLL's
VS_FIXEDFILEINFO resource, read with struct: no Windows API, so it works on a copied tree.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping, Sequence

from monitor.facts import syspath
from monitor.facts.paths import Root
from monitor.model import RuntimeDll

DLL_NAMES = ("msvcp140.dll", "msvcp140_1.dll", "vcruntime140.dll", "vcruntime140_1.dll")
_MAX_PE_BYTES = 64 << 20
_RT_VERSION = 16
_FIXED_FILE_INFO_SIGNATURE = struct.pack("<I", 0xFEEF04BD)


def probe_runtime(
    root: Root, env: Mapping[str, str], os_name: str, python_dirs: Sequence[str] = ()
) -> tuple[RuntimeDll, ...]:
    if os_name != "windows":
        return ()
    system_root = (
        syspath.env_get(env, "SystemRoot", os_name)
        or syspath.env_get(env, "windir", os_name)
        or "C:\\Windows"
    )
    directories = [syspath.join(os_name, system_root, "System32"), *python_dirs]
    return tuple(_find(root, name, directories, os_name) for name in DLL_NAMES)


def _find(root: Root, name: str, directories: list[str], os_name: str) -> RuntimeDll:
    for directory in directories:
        path, _ = syspath.resolve(root, syspath.join(os_name, directory, name), os_name)
        if os.path.isfile(root.path(path)):
            return RuntimeDll(name, path, *pe_file_version(root.path(path)))
    return RuntimeDll(name)


def pe_file_version(path: str) -> tuple[str | None, str | None]:
    """(FileVersion "14.38.33135.0", error) of a PE file, from its RT_VERSION resource."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_PE_BYTES)
    except OSError as exc:
        return None, f"cannot read: {exc.strerror or exc}"
    try:
        return _file_version(data)
    except struct.error:
        return None, "truncated PE file"
    except ValueError as exc:
        return None, f"malformed PE file: {exc}"


def _file_version(data: bytes) -> tuple[str | None, str | None]:
    if data[:2] != b"MZ":
        return None, "not a PE file (no MZ header)"
    pe = struct.unpack_from("<I", data, 0x3C)[0]
    if data[pe : pe + 4] != b"PE\0\0":
        return None, "not a PE file (no PE signature)"
    sections, optional_size = struct.unpack_from("<H12xH", data, pe + 6)
    optional = pe + 24
    magic = struct.unpack_from("<H", data, optional)[0]
    if magic not in (0x10B, 0x20B):
        return None, f"unknown optional header magic {magic:#x}"
    count_at = optional + (92 if magic == 0x10B else 108)
    if struct.unpack_from("<I", data, count_at)[0] <= 2:
        return None, "no resource directory"
    resource_rva = struct.unpack_from("<I", data, count_at + 4 + 2 * 8)[0]
    table = optional + optional_size
    spans = [struct.unpack_from("<8xIIII", data, table + 40 * i) for i in range(sections)]

    def offset(rva: int) -> int:
        for virtual_size, address, raw_size, raw_pointer in spans:
            if address <= rva < address + max(virtual_size, raw_size):
                return raw_pointer + rva - address
        raise ValueError(f"RVA {rva:#x} is in no section")

    if not resource_rva:
        return None, "no resources"
    base = offset(resource_rva)
    # Three levels: type (RT_VERSION) -> name -> language; take the first name and language.
    entry = _directory_entry(data, base, _RT_VERSION)
    if entry is None:
        return None, "no version resource"
    for _ in range(2):
        if not entry & 0x80000000:
            break
        entry = _directory_entry(data, base + (entry & 0x7FFFFFFF), None)
        if entry is None:
            return None, "empty version resource directory"
    if entry & 0x80000000:
        return None, "version resource nested too deep"
    data_rva, size = struct.unpack_from("<II", data, base + entry)
    start = offset(data_rva)
    blob = data[start : start + size]
    at = blob.find(_FIXED_FILE_INFO_SIGNATURE)
    if at < 0:
        return None, "no VS_FIXEDFILEINFO in the version resource"
    most, least = struct.unpack_from("<II", blob, at + 8)
    return f"{most >> 16}.{most & 0xFFFF}.{least >> 16}.{least & 0xFFFF}", None


def _directory_entry(data: bytes, directory: int, wanted: int | None) -> int | None:
    """The OffsetToData of the entry with id `wanted` (any entry when None) of a directory."""
    named, ids = struct.unpack_from("<HH", data, directory + 12)
    for index in range(min(named + ids, 4096)):
        name, target = struct.unpack_from("<II", data, directory + 16 + 8 * index)
        if wanted is None or (not name & 0x80000000 and name == wanted):
            return target
    return None
