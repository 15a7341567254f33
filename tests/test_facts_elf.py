"""The ELF reader against real gcc-built objects and broken files."""

import os

from stubs import build_library

from monitor.facts.elf import expand_origin, is_elf, read_dynamic


def test_reads_soname_needed_and_runpath(tmp_path):
    lib = build_library(
        tmp_path,
        "libcudart.so.12",
        {"cudaRuntimeGetVersion": "*v=12050;return 0;"},
        runpath="$ORIGIN/../nvidia/cudnn/lib",
    )
    info = read_dynamic(str(lib))
    assert info.error is None
    assert (info.bits, info.soname) == (64, "libcudart.so.12")
    assert info.runpath == ("$ORIGIN/../nvidia/cudnn/lib",)
    assert expand_origin(info.runpath, str(lib)) == (
        os.path.normpath(str(tmp_path / "../nvidia/cudnn/lib")),
    )


def test_reads_needed_of_the_real_cudart_wheel():
    import nvidia.cuda_runtime

    lib = os.path.join(nvidia.cuda_runtime.__path__[0], "lib", "libcudart.so.12")
    info = read_dynamic(lib)
    assert info.soname == "libcudart.so.12"
    assert "libc.so.6" in info.needed


def test_broken_files_give_errors_not_exceptions(tmp_path):
    text = tmp_path / "libfoo.so"
    text.write_text("INPUT(-lfoo)\n")  # a linker script, as /usr/lib/x86_64-linux-gnu/libc.so
    truncated = tmp_path / "libtrunc.so"
    lib = build_library(tmp_path, "libok.so.1")
    truncated.write_bytes(lib.read_bytes()[:40])
    assert read_dynamic(str(text)).error == "not an ELF file"
    assert "malformed" in read_dynamic(str(truncated)).error
    assert "cannot read" in read_dynamic(str(tmp_path / "missing.so")).error
    assert "cannot read" in read_dynamic(str(tmp_path)).error
    assert is_elf(str(lib)) and not is_elf(str(text))


def test_a_32_bit_header_is_reported_as_such(tmp_path):
    lib = build_library(tmp_path, "libok.so.1")
    data = bytearray(lib.read_bytes()[:64])
    data[4] = 1  # EI_CLASS = ELFCLASS32
    patched = tmp_path / "lib32.so"
    patched.write_bytes(bytes(data))
    info = read_dynamic(str(patched))
    assert info.bits == 32 or info.error
