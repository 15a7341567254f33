"""Read /etc/ld.so.cache the way glibc's dynamic loader does, without running ldconfig.

Two on-disk formats exist (glibc sysdeps/generic/dl-cache.h):

* "ld.so-1.7.0" (old): a 16-byte header (11-byte magic, padding, uint32 nlibs), then nlibs
  12-byte entries (int32 flags, uint32 key, uint32 value); key and value index a string table
  that starts right after the entries.
* "glibc-ld.so.cache1.1" (new, the only one glibc >= 2.32 writes): a 48-byte header (magic,
  version, uint32 nlibs, uint32 len_strings, uint8 byte-order flag, 3 pad, uint32
  extension_offset, 3 x uint32 unused), then nlibs 24-byte entries (int32 flags, uint32 key,
  uint32 value, uint32 osversion, uint64 hwcap); key and value are offsets from the start of
  the new header.

Older ldconfig wrote both: the old table first, the new one after it, 8-byte aligned. The
loader prefers the new one; so do we.

Never raises: a missing, truncated or garbage cache gives an LdCache with `error` set and no
entries, as the loader itself ignores a cache it cannot use.
"""

from __future__ import annotations

import struct

from monitor.record import record

OLD_MAGIC = b"ld.so-1.7.0"
NEW_MAGIC = b"glibc-ld.so.cache1.1"
_NEW_PREFIX = b"glibc-ld.so.cache"
_OLD_HEADER = 16
_OLD_ENTRY = 12
_NEW_HEADER = 48
_NEW_ENTRY = 24
_MAX_CACHE_BYTES = 64 << 20

FLAG_TYPE_MASK = 0x00FF
FLAG_ELF_LIBC6 = 0x0003
FLAG_REQUIRED_MASK = 0xFF00

# The flags an entry must carry to be used by a process of this architecture
# (glibc sysdeps/*/dl-cache.h _DL_CACHE_DEFAULT_ID).
_DEFAULT_ID = {
    ("x86_64", 64): 0x0303,  # FLAG_X8664_LIB64
    ("x86_64", 32): 0x0003,
    ("i386", 32): 0x0003,
    ("i686", 32): 0x0003,
    ("aarch64", 64): 0x0A03,  # FLAG_AARCH64_LIB64
    ("arm64", 64): 0x0A03,
    ("ppc64le", 64): 0x0503,  # FLAG_POWERPC_LIB64
    ("ppc64", 64): 0x0503,
    ("s390x", 64): 0x0403,  # FLAG_S390_LIB64
    ("riscv64", 64): 0x1003,  # FLAG_RISCV_FLOAT_ABI_DOUBLE
}


@record
class CacheEntry:
    """One cache line: `name` (the soname ldconfig saw) => `path`, with its flags and hwcap."""

    name: str
    path: str
    flags: int
    hwcap: int = 0


@record
class LdCache:
    """A parsed cache. fmt: "new", "old", "old+new" or "" when unreadable."""

    path: str
    entries: tuple[CacheEntry, ...] = ()
    fmt: str = ""
    error: str | None = None

    def lookup(
        self, name: str, flags: int | None
    ) -> tuple[CacheEntry | None, tuple[CacheEntry, ...]]:
        """The entry the loader would use for `name`, and every other entry with that name.

        flags None accepts any libc6 entry. Entries carrying an hwcap are only taken when no
        plain one matches (CUDA libraries never live in hwcap subdirectories).
        """
        matching = [e for e in self.entries if e.name == name]
        usable = [e for e in matching if flags_match(e.flags, flags)]
        chosen = next((e for e in usable if e.hwcap == 0), usable[0] if usable else None)
        return chosen, tuple(e for e in matching if e is not chosen)


def default_flags(machine: str, bits: int = 64) -> int | None:
    """The cache flags glibc on `machine` (platform.machine()) accepts, None when unknown."""
    return _DEFAULT_ID.get((machine.lower(), bits))


def flags_match(entry_flags: int, wanted: int | None) -> bool:
    if wanted is None:
        return (entry_flags & FLAG_TYPE_MASK) == FLAG_ELF_LIBC6
    # _dl_cache_check_flags: a plain libc6 entry or exactly the architecture's id.
    if entry_flags == wanted:
        return True
    return entry_flags == FLAG_ELF_LIBC6 and (wanted & FLAG_REQUIRED_MASK) == 0


def read_cache(path: str) -> LdCache:
    """Parse the cache file at `path` (a real path on this disk)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_CACHE_BYTES + 1)
    except OSError as exc:
        return LdCache(path=path, error=f"cannot read: {exc.strerror or exc}")
    if len(data) > _MAX_CACHE_BYTES:
        return LdCache(path=path, error="implausibly large cache file")
    return parse_cache(data, path)


def parse_cache(data: bytes, path: str = "") -> LdCache:
    """Parse cache bytes; never raises."""
    try:
        if data.startswith(_NEW_PREFIX):
            if not data.startswith(NEW_MAGIC):
                return LdCache(path=path, error="unsupported cache version")
            entries = _parse_new(data, 0)
            return LdCache(path=path, entries=entries, fmt="new")
        if data.startswith(OLD_MAGIC):
            old, end = _parse_old(data)
            new_start = (end + 7) & ~7
            if data[new_start : new_start + len(NEW_MAGIC)] == NEW_MAGIC:
                try:
                    return LdCache(path=path, entries=_parse_new(data, new_start), fmt="old+new")
                except (struct.error, ValueError):
                    pass  # the loader falls back to the old table as well
            return LdCache(path=path, entries=old, fmt="old")
        return LdCache(path=path, error="not an ld.so cache (unknown magic)")
    except (struct.error, ValueError, IndexError) as exc:
        return LdCache(path=path, error=f"malformed cache: {exc}")


def _string(data: bytes, offset: int) -> str:
    if offset < 0 or offset >= len(data):
        raise ValueError(f"string offset {offset} outside the file")
    end = data.find(b"\0", offset)
    if end < 0:
        raise ValueError("unterminated string")
    return data[offset:end].decode("utf-8", "surrogateescape")


def _parse_old(data: bytes) -> tuple[tuple[CacheEntry, ...], int]:
    (nlibs,) = struct.unpack_from("<I", data, 12)
    end = _OLD_HEADER + nlibs * _OLD_ENTRY
    if end > len(data):
        raise ValueError(f"{nlibs} entries do not fit in {len(data)} bytes")
    strings = end
    entries = []
    for index in range(nlibs):
        flags, key, value = struct.unpack_from("<iII", data, _OLD_HEADER + index * _OLD_ENTRY)
        entries.append(
            CacheEntry(_string(data, strings + key), _string(data, strings + value), flags)
        )
    return tuple(entries), end


def _parse_new(data: bytes, start: int) -> tuple[CacheEntry, ...]:
    if len(data) < start + _NEW_HEADER:
        raise ValueError("truncated header")
    byte_order = data[start + 28]
    endian = ">" if byte_order == 3 else "<"  # 0 unset, 1 invalid, 2 little, 3 big
    nlibs, _len_strings = struct.unpack_from(endian + "II", data, start + 20)
    if start + _NEW_HEADER + nlibs * _NEW_ENTRY > len(data):
        raise ValueError(f"{nlibs} entries do not fit in {len(data)} bytes")
    view = data[start:]
    entries = []
    for index in range(nlibs):
        flags, key, value, _osv, hwcap = struct.unpack_from(
            endian + "iIIIQ", view, _NEW_HEADER + index * _NEW_ENTRY
        )
        entries.append(CacheEntry(_string(view, key), _string(view, value), flags, hwcap))
    return tuple(entries)
