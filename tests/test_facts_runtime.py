"""VC++ runtime probe on a fake C: drive, with minimal PE files carrying a version resource."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from monitor.facts.paths import Root
from monitor.facts.runtime import pe_file_version, probe_runtime
from monitor.model import RuntimeDll

PYTHON_DIR = "C:\\Users\\ada\\AppData\\Local\\Programs\\Python\\Python310"
DISTLIB_LAUNCHER = Path(__import__("pip").__file__).parent / "_vendor/distlib/t64.exe"


def make_pe(
    version: tuple[int, int, int, int] = (14, 38, 33135, 0),
    pe32plus: bool = True,
    with_resource: bool = True,
    section_rva: int = 0x1000,
) -> bytes:
    """A PE image with one .rsrc section holding RT_VERSION/1/0x409 -> VS_VERSIONINFO.

    The resource directory is at RVA 0x1000; `section_rva` elsewhere makes it point nowhere.
    """
    most, least = version[0] << 16 | version[1], version[2] << 16 | version[3]
    fixed = struct.pack(
        "<13I", 0xFEEF04BD, 0x10000, most, least, most, least, 0x3F, 0, 0x40004, 2, 0, 0, 0
    )
    key = "VS_VERSION_INFO\0".encode("utf-16-le")
    padding = b"\0" * (-(6 + len(key)) % 4)
    info = struct.pack("<HHH", 6 + len(key) + len(padding) + len(fixed), len(fixed), 0)
    info += key + padding + fixed

    def directory(entry_id: int, target: int) -> bytes:
        return struct.pack("<IIHHHHII", 0, 0, 0, 0, 0, 1, entry_id, target)

    rva = 0x1000
    resources = (
        directory(16, 0x80000000 | 0x18)
        + directory(1, 0x80000000 | 0x30)
        + directory(0x409, 0x48)
        + struct.pack("<IIII", rva + 0x58, len(info), 0, 0)
        + info
    )
    optional = bytearray(240 if pe32plus else 224)
    struct.pack_into("<H", optional, 0, 0x20B if pe32plus else 0x10B)
    count_at = 108 if pe32plus else 92
    struct.pack_into("<I", optional, count_at, 16)
    if with_resource:
        struct.pack_into("<II", optional, count_at + 4 + 2 * 8, rva, len(resources))
    coff = struct.pack("<HHIIIHH", 0x8664 if pe32plus else 0x14C, 1, 0, 0, 0, len(optional), 0x2022)
    section = struct.pack(
        "<8sIIIIIIHHI",
        b".rsrc",
        len(resources),
        section_rva,
        len(resources),
        0x200,
        0,
        0,
        0,
        0,
        0x40000040,
    )
    dos = bytearray(0x40)
    dos[:2] = b"MZ"
    struct.pack_into("<I", dos, 0x3C, 0x40)
    headers = bytes(dos) + b"PE\0\0" + coff + bytes(optional) + section
    return headers.ljust(0x200, b"\0") + resources


def put(root: Path, system_path: str, content: bytes) -> None:
    path = Path(Root(str(root)).path(system_path))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


def test_runtime_present_in_system32_and_python_dir(tmp_path):
    """VC++ 2015-2022 redist in System32; vcruntime140_1.dll only beside python.exe."""
    for name in ("msvcp140.dll", "msvcp140_1.dll", "vcruntime140.dll"):
        put(tmp_path, f"C:\\Windows\\System32\\{name}", make_pe())
    put(tmp_path, f"{PYTHON_DIR}\\vcruntime140.dll", make_pe((14, 32, 31332, 0)))
    put(tmp_path, f"{PYTHON_DIR}\\vcruntime140_1.dll", make_pe((14, 32, 31332, 0)))
    env = {"SystemRoot": "C:\\Windows"}

    found = probe_runtime(Root(str(tmp_path)), env, "windows", (PYTHON_DIR,))

    assert found == (
        RuntimeDll("msvcp140.dll", "C:\\Windows\\System32\\msvcp140.dll", "14.38.33135.0"),
        RuntimeDll("msvcp140_1.dll", "C:\\Windows\\System32\\msvcp140_1.dll", "14.38.33135.0"),
        RuntimeDll("vcruntime140.dll", "C:\\Windows\\System32\\vcruntime140.dll", "14.38.33135.0"),
        RuntimeDll("vcruntime140_1.dll", f"{PYTHON_DIR}\\vcruntime140_1.dll", "14.32.31332.0"),
    )


def test_runtime_missing(tmp_path):
    """A fresh Windows without the redistributable: msvcp140_1.dll is nowhere."""
    (tmp_path / "C/Windows/System32").mkdir(parents=True)
    put(tmp_path, f"{PYTHON_DIR}\\vcruntime140.dll", make_pe())

    found = probe_runtime(Root(str(tmp_path)), {}, "windows", (PYTHON_DIR,))

    assert found == (
        RuntimeDll("msvcp140.dll"),
        RuntimeDll("msvcp140_1.dll"),
        RuntimeDll("vcruntime140.dll", f"{PYTHON_DIR}\\vcruntime140.dll", "14.38.33135.0"),
        RuntimeDll("vcruntime140_1.dll"),
    )


def test_system_root_elsewhere_and_case_insensitive(tmp_path):
    put(tmp_path, "D:\\WINNT\\SYSTEM32\\MSVCP140.DLL", make_pe((14, 0, 24215, 1), pe32plus=False))

    found = probe_runtime(Root(str(tmp_path)), {"SYSTEMROOT": "D:\\WinNT"}, "windows")

    assert found[0] == RuntimeDll(
        "msvcp140.dll", "D:\\WINNT\\SYSTEM32\\MSVCP140.DLL", "14.0.24215.1"
    )


@pytest.mark.parametrize(
    ("content", "error"),
    [
        pytest.param(b"", "not a PE file (no MZ header)", id="empty"),
        pytest.param(b"\x7fELF\x02\x01\x01" + b"\0" * 64, "not a PE file (no MZ header)", id="elf"),
        pytest.param(
            b"MZ" + b"\0" * 0x3A + b"\xff\xff\0\0",
            "not a PE file (no PE signature)",
            id="e_lfanew-out-of-file",
        ),
        pytest.param(make_pe()[:0x170], "truncated PE file", id="cut-in-section-table"),
        pytest.param(make_pe()[:0x180], "truncated PE file", id="cut-before-resources"),
        pytest.param(
            make_pe(section_rva=0x2000),
            "malformed PE file: RVA 0x1000 is in no section",
            id="rva-outside",
        ),
        pytest.param(make_pe(with_resource=False), "no resources", id="no-resources"),
        pytest.param(
            make_pe()[:0x260], "no VS_FIXEDFILEINFO in the version resource", id="cut-in-resource"
        ),
    ],
)
def test_garbage_dll(tmp_path, content, error):
    put(tmp_path, "C:\\Windows\\System32\\msvcp140.dll", content)

    found = probe_runtime(Root(str(tmp_path)), {}, "windows")

    assert found[0] == RuntimeDll(
        "msvcp140.dll", "C:\\Windows\\System32\\msvcp140.dll", None, error
    )


@pytest.mark.skipif(not DISTLIB_LAUNCHER.exists(), reason="pip without distlib launchers")
def test_real_pe_file():
    """A real Windows executable (pip's distlib launcher, PE32+, built with MSVC)."""
    assert pe_file_version(str(DISTLIB_LAUNCHER)) == ("1.1.0.14", None)


def test_not_windows(tmp_path):
    put(tmp_path, "C:\\Windows\\System32\\msvcp140.dll", make_pe())
    assert probe_runtime(Root(str(tmp_path)), {}, "linux") == ()
    assert probe_runtime(Root(str(tmp_path)), {}, "darwin") == ()
