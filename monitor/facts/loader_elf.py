"""The checks glibc's loader makes on a file it found by name, before it maps it.

glibc (elf/dl-load.c open_verify) skips a file of the wrong ELF class (a 32-bit library in a
64-bit process) or the wrong machine and keeps searching; any other defect of a file it found
is fatal for that dlopen ("invalid ELF header", "file too short"). The verdict here tells which.
"""

from __future__ import annotations

import os
import struct
import sys

OK, SKIP, FATAL = "ok", "skip", "fatal"

_PT_LOAD = 1
_ET_EXEC, _ET_DYN = 2, 3

# platform.machine() -> (e_machine of a 64-bit process, e_machine of a 32-bit one)
MACHINES = {
    "x86_64": (62, 3),
    "amd64": (62, 3),
    "aarch64": (183, 40),
    "arm64": (183, 40),
    "ppc64le": (21, 20),
    "ppc64": (21, 20),
    "s390x": (22, 22),
    "riscv64": (243, 243),
    "i386": (None, 3),
    "i686": (None, 3),
}
MACHINE_NAMES = {
    3: "x86 (32-bit)",
    20: "PowerPC",
    21: "PowerPC64",
    22: "s390",
    40: "ARM (32-bit)",
    62: "x86-64",
    183: "AArch64",
    243: "RISC-V",
}


def expected_machine(machine: str, bits: int) -> int | None:
    pair = MACHINES.get((machine or "").lower())
    if pair is None:
        return None
    return pair[0] if bits == 64 else pair[1]


def verdict(path: str, bits: int = 64, machine: int | None = None) -> tuple[str, str | None]:
    """(OK | SKIP | FATAL, why) for the real file at `path`. Never raises."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            head = handle.read(64)
            result = _check_header(head, size, bits, machine)
            if result is not None:
                return result
            return _check_segments(handle, head, size)
    except IsADirectoryError:
        return FATAL, "is a directory, not a library"
    except PermissionError:
        return SKIP, "permission denied"
    except OSError as exc:
        return FATAL, f"cannot read: {exc.strerror or exc}"
    except (struct.error, ValueError) as exc:
        return FATAL, f"malformed ELF file: {exc}"


def _check_header(head: bytes, size: int, bits: int, machine: int | None):
    # glibc reads the whole header first ("file too short"), then checks the magic
    if len(head) < 4 or head[:4] != b"\x7fELF":
        if size == 0:
            return FATAL, "empty file (file too short)"
        if len(head) < 64:
            return FATAL, "not an ELF file (file too short)"
        return FATAL, "not an ELF file (invalid ELF header)"
    if len(head) < 52:
        return FATAL, "file too short"
    file_class = head[4]
    file_bits = {1: 32, 2: 64}.get(file_class)
    if file_bits != bits:
        label = f"{file_bits}-bit" if file_bits else f"class {file_class}"
        return SKIP, f"wrong ELF class: {label}"
    endian = {1: "<", 2: ">"}.get(head[5])
    native = "<" if sys.byteorder == "little" else ">"
    if endian != native:
        return FATAL, "ELF file data encoding is not the machine's byte order"
    if bits == 64 and len(head) < 64:
        return FATAL, "file too short"
    e_type, e_machine = struct.unpack_from(endian + "HH", head, 16)
    if machine is not None and e_machine != machine:
        return SKIP, f"wrong machine: {MACHINE_NAMES.get(e_machine, f'e_machine {e_machine}')}"
    if e_type not in (_ET_DYN, _ET_EXEC):
        return FATAL, f"not a shared object (ELF type {e_type})"
    return None


def _check_segments(handle, head: bytes, size: int) -> tuple[str, str | None]:
    endian = "<" if head[5] == 1 else ">"
    if head[4] == 2:
        (phoff,) = struct.unpack_from(endian + "Q", head, 32)
        phentsize, phnum = struct.unpack_from(endian + "HH", head, 54)
    else:
        (phoff,) = struct.unpack_from(endian + "I", head, 28)
        phentsize, phnum = struct.unpack_from(endian + "HH", head, 42)
    if phnum == 0:
        return FATAL, "no program headers"
    end = phoff + phentsize * phnum
    if end > size or phentsize < (56 if head[4] == 2 else 32) or phnum > 4096:
        return FATAL, f"file too short ({size} bytes; program headers end at {end})"
    handle.seek(phoff)
    table = handle.read(phentsize * phnum)
    need = 0
    for index in range(phnum):
        entry = table[index * phentsize : (index + 1) * phentsize]
        if head[4] == 2:
            p_type, _flags, offset, _va, _pa, filesz = struct.unpack_from(endian + "IIQQQQ", entry)
        else:
            p_type, offset, _va, _pa, filesz = struct.unpack_from(endian + "IIIII", entry)
        if p_type == _PT_LOAD:
            need = max(need, offset + filesz)
    if need > size:
        return FATAL, f"truncated file: {size} bytes, its segments need {need}"
    return OK, None
