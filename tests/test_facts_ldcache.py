"""The ld.so.cache reader: both glibc formats, written by hand and by the real ldconfig."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess

import pytest

from monitor.facts import ldcache

X86_64 = 0x0303
I386 = 0x0003


def _strings(entries, base: int) -> tuple[bytes, dict[str, int]]:
    table, offsets = b"", {}
    for name, path, *_ in entries:
        for text in (name, path):
            if text not in offsets:
                offsets[text] = base + len(table)
                table += text.encode() + b"\0"
    return table, offsets


def new_format(entries, endian: str = "<") -> bytes:
    """glibc-ld.so.cache1.1: offsets count from the start of this header."""
    header_size, entry_size = 48, 24
    strings_at = header_size + entry_size * len(entries)
    table, offsets = _strings(entries, strings_at)
    order = 3 if endian == ">" else 2
    out = ldcache.NEW_MAGIC + struct.pack(endian + "IIB3xI12x", len(entries), len(table), order, 0)
    for name, path, flags, *hwcap in entries:
        out += struct.pack(
            endian + "iIIIQ", flags, offsets[name], offsets[path], 0, hwcap[0] if hwcap else 0
        )
    return out + table


def old_format(entries) -> bytes:
    """ld.so-1.7.0: offsets count from the end of the entry table."""
    table, offsets = _strings(entries, 0)
    out = ldcache.OLD_MAGIC + b"\0" + struct.pack("<I", len(entries))
    for name, path, flags in entries:
        out += struct.pack("<iII", flags, offsets[name], offsets[path])
    return out + table


def compat_format(old_entries, new_entries) -> bytes:
    old_end = 16 + 12 * len(old_entries)
    new_start = (old_end + 7) & ~7
    strings_at = new_start + 48 + 24 * len(new_entries)
    table, offsets = _strings(old_entries + new_entries, strings_at)
    out = ldcache.OLD_MAGIC + b"\0" + struct.pack("<I", len(old_entries))
    for name, path, flags in old_entries:  # relative to the end of the old entries
        out += struct.pack("<iII", flags, offsets[name] - old_end, offsets[path] - old_end)
    out += b"\0" * (new_start - old_end)
    out += ldcache.NEW_MAGIC + struct.pack("<IIB3xI12x", len(new_entries), len(table), 2, 0)
    for name, path, flags in new_entries:  # relative to the new header
        out += struct.pack(
            "<iIIIQ", flags, offsets[name] - new_start, offsets[path] - new_start, 0, 0
        )
    return out + table


def test_new_format():
    cache = ldcache.parse_cache(
        new_format(
            [
                ("libcudart.so.12", "/usr/local/cuda-12.4/lib64/libcudart.so.12", X86_64),
                ("libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6", X86_64),
            ]
        )
    )
    assert cache.error is None and cache.fmt == "new"
    entry, others = cache.lookup("libcudart.so.12", X86_64)
    assert entry.path == "/usr/local/cuda-12.4/lib64/libcudart.so.12" and others == ()
    assert cache.lookup("libcudnn.so.9", X86_64) == (None, ())


def test_big_endian_new_format():
    cache = ldcache.parse_cache(new_format([("libz.so.1", "/lib/libz.so.1", 0x0503)], ">"))
    assert cache.entries[0].path == "/lib/libz.so.1"


def test_32_bit_entries_are_not_used_by_a_64_bit_process():
    cache = ldcache.parse_cache(
        new_format(
            [
                ("libcuda.so.1", "/usr/lib/i386-linux-gnu/libcuda.so.1", I386),
                ("libcuda.so.1", "/usr/lib/x86_64-linux-gnu/libcuda.so.1", X86_64),
            ]
        )
    )
    entry, others = cache.lookup("libcuda.so.1", ldcache.default_flags("x86_64", 64))
    assert entry.path == "/usr/lib/x86_64-linux-gnu/libcuda.so.1"
    assert [o.path for o in others] == ["/usr/lib/i386-linux-gnu/libcuda.so.1"]
    entry32, _ = cache.lookup("libcuda.so.1", ldcache.default_flags("x86_64", 32))
    assert entry32.path == "/usr/lib/i386-linux-gnu/libcuda.so.1"
    only32 = ldcache.parse_cache(new_format([("libcuda.so.1", "/x/libcuda.so.1", I386)]))
    assert only32.lookup("libcuda.so.1", X86_64)[0] is None


def test_hwcap_entries_lose_to_plain_ones():
    cache = ldcache.parse_cache(
        new_format(
            [
                ("libm.so.6", "/lib/x86_64/libm.so.6", X86_64, 1 << 62),
                ("libm.so.6", "/lib/libm.so.6", X86_64),
            ]
        )
    )
    assert cache.lookup("libm.so.6", X86_64)[0].path == "/lib/libm.so.6"


def test_old_format_and_the_compat_layout():
    entries = [("libcudnn.so.8", "/usr/lib/x86_64-linux-gnu/libcudnn.so.8", X86_64)]
    old = ldcache.parse_cache(old_format(entries))
    assert old.fmt == "old" and old.entries[0].path.endswith("libcudnn.so.8")
    # glibc < 2.32 "compat": old header and entries, then (8-byte aligned) the new header and
    # entries, then one string table; the loader reads the new part
    both = ldcache.parse_cache(
        compat_format(
            [("libcudnn.so.8", "/opt/old/libcudnn.so.8", X86_64)],
            [("libcudnn.so.8", "/opt/new/libcudnn.so.8", X86_64)],
        )
    )
    assert both.fmt == "old+new" and both.entries[0].path == "/opt/new/libcudnn.so.8"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage" * 10,
        ldcache.NEW_MAGIC,
        ldcache.NEW_MAGIC + struct.pack("<II", 10**6, 0) + b"\0" * 40,
        b"glibc-ld.so.cache9.9" + b"\0" * 40,
        ldcache.OLD_MAGIC + b"\0" + struct.pack("<I", 5),
        new_format([("a", "/a", X86_64)])[:-3],  # string table cut short
    ],
)
def test_garbage_gives_an_error_not_an_exception(data):
    cache = ldcache.parse_cache(data)
    assert cache.error and cache.entries == ()


def test_bad_string_offsets(tmp_path):
    data = bytearray(new_format([("libx.so.1", "/x/libx.so.1", X86_64)]))
    struct.pack_into("<I", data, 48 + 8, 10**6)  # the value offset points outside the file
    assert "outside" in ldcache.parse_cache(bytes(data)).error


def test_missing_file(tmp_path):
    cache = ldcache.read_cache(str(tmp_path / "nope"))
    assert cache.error.startswith("cannot read") and cache.entries == ()


def test_flags_of_machines():
    assert ldcache.default_flags("x86_64") == 0x0303
    assert ldcache.default_flags("aarch64") == 0x0A03
    assert ldcache.default_flags("mips") is None
    assert ldcache.flags_match(0x0303, None) and not ldcache.flags_match(0x0001, None)


def test_agrees_with_ldconfig_p_on_this_machine():
    """The host's real cache, read by us and printed by `ldconfig -p`."""
    ldconfig = shutil.which("ldconfig") or "/sbin/ldconfig"
    try:
        printed = subprocess.run(
            [ldconfig, "-p"], capture_output=True, text=True, check=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        pytest.skip("no ldconfig")
    cache = ldcache.read_cache("/etc/ld.so.cache")
    if cache.error:
        pytest.skip(f"no readable /etc/ld.so.cache: {cache.error}")
    theirs = set(re.findall(r"^\s+(\S+) \(.*\) => (\S+)$", printed, re.MULTILINE))
    ours = {(e.name, e.path) for e in cache.entries}
    assert theirs and ours == theirs
