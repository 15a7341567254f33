"""Real ELF stub libraries for tests: gcc-built shared objects with a chosen soname.

They are real files the loader probe (and, for a child-process version call, the real
dynamic loader) can open: `build_library(dir, "libcudart.so.12", {"cudaRuntimeGetVersion":
"*v = 12050; return 0;"})` writes dir/libcudart.so.12 exporting `int f(int *v)`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

_CACHE = Path(os.environ.get("TFSM_STUB_CACHE", "/tmp/tfsm-stub-cache"))


def build_library(
    directory: Path | str,
    file_name: str,
    functions: dict[str, str] | None = None,
    soname: str | None = None,
    runpath: str | None = None,
) -> Path:
    """Compile a shared object `directory/file_name`; each function is `int name(int *v)`.

    Compiled objects are cached by their source so a test suite builds each variant once.
    """
    functions = functions or {}
    soname = soname or file_name
    source = "\n".join(f"int {name}(int *v) {{ {body} }}" for name, body in functions.items())
    source = source or "int tfsm_stub_marker(void) { return 0; }"
    flags = ["-shared", "-fPIC", f"-Wl,-soname,{soname}"]
    if runpath:
        flags += [f"-Wl,-rpath,{runpath}", "-Wl,--enable-new-dtags"]
    key = hashlib.sha256((source + "\0" + " ".join(flags)).encode()).hexdigest()[:16]
    cached = _CACHE / f"{key}.so"
    if not cached.exists():
        _CACHE.mkdir(parents=True, exist_ok=True)
        src = _CACHE / f"{key}.c"
        src.write_text(source + "\n")
        tmp = _CACHE / f"{key}.{os.getpid()}.tmp"
        subprocess.run(["gcc", *flags, "-o", str(tmp), str(src)], check=True)
        os.replace(tmp, cached)
    target = Path(directory) / file_name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cached, target)
    return target


def symlink(directory: Path | str, link_name: str, target: str) -> Path:
    """Create directory/link_name -> target (as the CUDA installers' soname chains do)."""
    link = Path(directory) / link_name
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target)
    return link
