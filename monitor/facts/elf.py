"""Read the dynamic section of an ELF shared object: SONAME, NEEDED, RUNPATH/RPATH.

A small reader instead of pyelftools: we need four tags, and `check` must start fast.
Never raises for a bad file: `read_dynamic` returns an ElfInfo with `error` set.
"""

from __future__ import annotations

import os
import struct

from monitor.record import record

_DT_NEEDED, _DT_STRTAB, _DT_SONAME, _DT_RPATH, _DT_RUNPATH = 1, 5, 14, 15, 29
_PT_LOAD, _PT_DYNAMIC = 1, 2
_MAX_HEADER_BYTES = 1 << 20


@record
class ElfInfo:
    """What the loader needs to know about one ELF file. bits is 32 or 64; machine e_machine."""

    path: str
    bits: int = 0
    machine: int = 0
    soname: str | None = None
    needed: tuple[str, ...] = ()
    runpath: tuple[str, ...] = ()
    rpath: tuple[str, ...] = ()
    error: str | None = None


def read_dynamic(path: str) -> ElfInfo:
    """Parse `path`; any problem (not ELF, truncated, unreadable) is reported in `error`."""
    try:
        with open(path, "rb") as handle:
            return _parse(path, handle)
    except OSError as exc:
        return ElfInfo(path=path, error=f"cannot read: {exc.strerror or exc}")
    except (struct.error, ValueError, IndexError) as exc:
        return ElfInfo(path=path, error=f"malformed ELF file: {exc}")


def is_elf(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == b"\x7fELF"
    except OSError:
        return False


def expand_origin(entries: tuple[str, ...], path: str) -> tuple[str, ...]:
    """Replace $ORIGIN / ${ORIGIN} with the directory of `path`, normalised."""
    origin = os.path.dirname(os.path.abspath(path))
    expanded = []
    for entry in entries:
        value = entry.replace("${ORIGIN}", origin).replace("$ORIGIN", origin)
        expanded.append(os.path.normpath(value) if value else value)
    return tuple(expanded)


def _parse(path: str, handle) -> ElfInfo:
    ident = handle.read(16)
    if len(ident) < 16 or ident[:4] != b"\x7fELF":
        return ElfInfo(path=path, error="not an ELF file")
    bits = {1: 32, 2: 64}.get(ident[4])
    endian = {1: "<", 2: ">"}.get(ident[5])
    if bits is None or endian is None:
        return ElfInfo(path=path, error="unknown ELF class or byte order")
    if bits == 64:
        header = struct.unpack(endian + "HHIQQQIHHHHHH", handle.read(48))
    else:
        header = struct.unpack(endian + "HHIIIIIHHHHHH", handle.read(36))
    machine, phoff, phentsize, phnum = header[1], header[4], header[8], header[9]
    segments = _program_headers(handle, endian, bits, phoff, phentsize, phnum)
    dynamic = [s for s in segments if s[0] == _PT_DYNAMIC]
    if not dynamic:
        return ElfInfo(path=path, bits=bits, machine=machine)
    entries = _dynamic_entries(handle, endian, bits, dynamic[0][1], dynamic[0][2])
    strtab_vaddr = next((value for tag, value in entries if tag == _DT_STRTAB), None)
    if strtab_vaddr is None:
        return ElfInfo(path=path, bits=bits, machine=machine, error="no string table")
    strtab_offset = _vaddr_to_offset(segments, strtab_vaddr)

    def string(offset: int) -> str:
        handle.seek(strtab_offset + offset)
        raw = handle.read(4096)
        return raw.split(b"\0", 1)[0].decode("utf-8", "replace")

    soname = next((string(v) for t, v in entries if t == _DT_SONAME), None)
    needed = tuple(string(v) for t, v in entries if t == _DT_NEEDED)
    runpath = tuple(p for t, v in entries if t == _DT_RUNPATH for p in string(v).split(":"))
    rpath = tuple(p for t, v in entries if t == _DT_RPATH for p in string(v).split(":"))
    return ElfInfo(path, bits, machine, soname, needed, runpath, rpath)


def _program_headers(handle, endian: str, bits: int, phoff: int, size: int, count: int):
    """(type, file offset, file size, vaddr) for each program header."""
    if count * size > _MAX_HEADER_BYTES:
        raise ValueError("too many program headers")
    handle.seek(phoff)
    segments = []
    for _ in range(count):
        raw = handle.read(size)
        if bits == 64:
            p_type, _flags, offset, vaddr, _pa, filesz = struct.unpack(endian + "IIQQQQ", raw[:40])
        else:
            p_type, offset, vaddr, _pa, filesz = struct.unpack(endian + "IIIII", raw[:20])
        segments.append((p_type, offset, filesz, vaddr))
    return segments


def _dynamic_entries(handle, endian: str, bits: int, offset: int, size: int):
    entry_format = endian + ("qQ" if bits == 64 else "iI")
    entry_size = struct.calcsize(entry_format)
    handle.seek(offset)
    data = handle.read(min(size, _MAX_HEADER_BYTES))
    entries = []
    for start in range(0, len(data) - entry_size + 1, entry_size):
        tag, value = struct.unpack(entry_format, data[start : start + entry_size])
        if tag == 0:
            break
        entries.append((tag, value))
    return entries


def _vaddr_to_offset(segments, vaddr: int) -> int:
    for p_type, offset, filesz, seg_vaddr in segments:
        if p_type == _PT_LOAD and seg_vaddr <= vaddr < seg_vaddr + max(filesz, 1):
            return offset + (vaddr - seg_vaddr)
    return vaddr
