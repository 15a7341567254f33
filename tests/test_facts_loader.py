"""The library-resolution probe against real files: gcc-built stubs in a fake root.

Each scenario is a machine seen in the wild; the probe must name the file glibc (or Windows)
would load, why, every other copy, and each file's version.
"""

from __future__ import annotations

import os
import platform
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from stubs import build_library, symlink

from monitor.compat import LibraryName
from monitor.facts import loader_versions
from monitor.facts.loader import (
    _LinuxProbe,
    cuda_version_of,
    cudnn_version_of,
    name_version,
    probe_libraries,
)
from monitor.facts.paths import Root
from monitor.model import CudaToolkit, PythonEnv, TensorflowBuild
from monitor.record import fields, replace

SITE = "/home/ada/venvs/tf/lib/python3.11/site-packages"
PY = "/home/ada/venvs/tf/bin/python"
RUNPATH_DIRS = (
    "nccl",
    "cuda_cupti",
    "cublas",
    "cudnn",
    "cufft",
    "cusparse",
    "cuda_runtime",
    "cusolver",
)
MULTIARCH = "/usr/lib/x86_64-linux-gnu"

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Linux")


def tf221(**changes) -> PythonEnv:
    tf = TensorflowBuild(
        package_dir=f"{SITE}/tensorflow",
        distribution="tensorflow",
        version="2.21.0",
        is_cuda_build=True,
        cuda_version="12.5.1",
        cudnn_version="9",
        runpath=tuple(f"{SITE}/nvidia/{c}/lib" for c in RUNPATH_DIRS),
    )
    python = PythonEnv(
        executable=PY,
        version="3.11.7",
        bits=64,
        platform="linux",
        prefix="/home/ada/venvs/tf",
        site_packages=(SITE,),
        tensorflow=tf,
    )
    tf_changes = {k: v for k, v in changes.items() if k in fields(TensorflowBuild)}
    py_changes = {k: v for k, v in changes.items() if k not in tf_changes}
    return replace(python, tensorflow=replace(tf, **tf_changes), **py_changes)


def at(root: Path, system_dir: str) -> Path:
    return root / system_dir.lstrip("/")


def pip_lib(root: Path, component: str, file_name: str, functions=None, soname=None) -> Path:
    return build_library(
        at(root, f"{SITE}/nvidia/{component}/lib"), file_name, functions, soname=soname
    )


def probe(root: Path, env=None, pythons=None, **kwargs):
    kwargs.setdefault("machine", "x86_64")
    found = probe_libraries(
        Root(str(root)), env or {}, "linux", [tf221()] if pythons is None else pythons, **kwargs
    )
    return {r.wanted: r for r in found}


CUDART = {"cudaRuntimeGetVersion": "*v = 12090; return 0;"}
CUDNN9 = {"cudnnGetVersion": "return 90300;"}


# --------------------------------------------------------------------------- Linux scenarios


@linux_only
def test_pip_wheels_via_runpath(tmp_path):
    """tensorflow[and-cuda] 2.21: everything from site-packages/nvidia through TF's RUNPATH."""
    pip_lib(tmp_path, "cuda_runtime", "libcudart.so.12", CUDART)
    pip_lib(tmp_path, "cublas", "libcublas.so.12")
    pip_lib(tmp_path, "cublas", "libcublasLt.so.12")
    pip_lib(tmp_path, "cufft", "libcufft.so.11", {"cufftGetVersion": "*v = 11203; return 0;"})
    pip_lib(tmp_path, "cusparse", "libcusparse.so.12")
    pip_lib(
        tmp_path, "cusolver", "libcusolver.so.11", {"cusolverGetVersion": "*v = 11705; return 0;"}
    )
    pip_lib(tmp_path, "cuda_cupti", "libcupti.so.12")
    pip_lib(tmp_path, "nccl", "libnccl.so.2", {"ncclGetVersion": "*v = 22703; return 0;"})
    pip_lib(tmp_path, "cudnn", "libcudnn.so.9", CUDNN9)
    for sub in (
        "graph",
        "ops",
        "cnn",
        "adv",
        "engines_precompiled",
        "engines_runtime_compiled",
        "heuristic",
    ):
        pip_lib(tmp_path, "cudnn", f"libcudnn_{sub}.so.9")
    # not on TF's RUNPATH: found as dependencies of cusparse/cusolver
    pip_lib(tmp_path, "nvjitlink", "libnvJitLink.so.12")
    pip_lib(tmp_path, "curand", "libcurand.so.10", {"curandGetVersion": "*v = 10310; return 0;"})
    # the driver, as the NVIDIA packages install it
    build_library(at(tmp_path, MULTIARCH), "libcuda.so.570.133.07", soname="libcuda.so.1")
    symlink(at(tmp_path, MULTIARCH), "libcuda.so.1", "libcuda.so.570.133.07")
    build_library(at(tmp_path, MULTIARCH), "libnvidia-ml.so.570.133.07", soname="libnvidia-ml.so.1")
    symlink(at(tmp_path, MULTIARCH), "libnvidia-ml.so.1", "libnvidia-ml.so.570.133.07")

    found = probe(tmp_path)

    assert all(r.resolved is not None and r.resolved.error is None for r in found.values()), [
        w for w, r in found.items() if r.resolved is None or r.resolved.error
    ]
    assert all(r.python == PY for r in found.values())
    for wanted in (
        "libcudart.so.12",
        "libcublas.so.12",
        "libcudnn.so.9",
        "libnccl.so.2",
        "libcudnn_ops.so.9",
        "libcusolver.so.11",
    ):
        assert found[wanted].resolved.via == "RUNPATH", wanted
    assert found["libnvJitLink.so.12"].resolved.via == "pip"
    assert found["libnvJitLink.so.12"].resolved.path == (
        f"{SITE}/nvidia/nvjitlink/lib/libnvJitLink.so.12"
    )
    assert found["libcurand.so.10"].resolved.via == "pip"
    assert not found["libcurand.so.10"].required
    cudart = found["libcudart.so.12"].resolved
    assert cudart.path == f"{SITE}/nvidia/cuda_runtime/lib/libcudart.so.12"
    assert (cudart.soname, cudart.version, cudart.version_source) == (
        "libcudart.so.12",
        "12.9",
        "version function",
    )
    assert found["libcudnn.so.9"].resolved.version == "9.3.0"
    assert found["libcufft.so.11"].resolved.version == "11.2.3"
    assert found["libcusolver.so.11"].resolved.version == "11.7.5"
    assert found["libcurand.so.10"].resolved.version == "10.3.10"
    assert found["libnccl.so.2"].resolved.version == "2.27.3"
    # no version function in the stub, and the wanted name tells nothing: no version
    assert found["libcublas.so.12"].resolved.version is None
    driver = found["libcuda.so.1"].resolved
    assert (driver.path, driver.via) == (f"{MULTIARCH}/libcuda.so.1", "default")
    assert (driver.version, driver.version_source) == ("570.133.07", "file name")
    assert driver.real_path == f"{MULTIARCH}/libcuda.so.570.133.07"
    assert found["libnvidia-ml.so.1"].resolved.version == "570.133.07"
    searched = found["libcudart.so.12"].searched
    # the search stops where the loader stops
    assert searched[0] == f"RUNPATH: {SITE}/nvidia/nccl/lib"
    assert searched[-1] == f"RUNPATH: {SITE}/nvidia/cuda_runtime/lib"
    assert found["libcuda.so.1"].searched[-3:] == (
        "ld.so.cache: /etc/ld.so.cache",
        "default: /lib/x86_64-linux-gnu",
        f"default: {MULTIARCH}",
    )


@linux_only
def test_ld_library_path_shadows_pip(tmp_path):
    """A system CUDA 12.2 in LD_LIBRARY_PATH wins over the pip wheel TF's RUNPATH points at."""
    toolkit = "/usr/local/cuda-12.2"
    lib = at(tmp_path, f"{toolkit}/targets/x86_64-linux/lib")
    build_library(lib, "libcublas.so.12.2.5.6", soname="libcublas.so.12")
    symlink(lib, "libcublas.so.12", "libcublas.so.12.2.5.6")
    # NVIDIA's layout: lib64 is an absolute link into targets/ (must stay inside the root)
    symlink(at(tmp_path, toolkit), "lib64", f"{toolkit}/targets/x86_64-linux/lib")
    symlink(at(tmp_path, "/usr/local"), "cuda", toolkit)
    pip_lib(tmp_path, "cublas", "libcublas.so.12")

    env = {"LD_LIBRARY_PATH": "/usr/local/cuda/lib64"}
    found = probe(tmp_path, env)["libcublas.so.12"]

    assert found.resolved.via == "LD_LIBRARY_PATH"
    assert found.resolved.path == "/usr/local/cuda/lib64/libcublas.so.12"
    assert found.resolved.real_path == f"{toolkit}/targets/x86_64-linux/lib/libcublas.so.12.2.5.6"
    assert (found.resolved.version, found.resolved.version_source) == ("12.2.5.6", "file name")
    pip = [c for c in found.candidates if c.path == f"{SITE}/nvidia/cublas/lib/libcublas.so.12"]
    assert len(pip) == 1 and pip[0].via == "RUNPATH" and pip[0].error is None
    # the same file through /usr/local/cuda-12.2/lib64 is not a second copy
    assert not any(
        c.path.startswith(toolkit) and c.path.endswith("libcublas.so.12") for c in found.candidates
    )
    assert found.searched[0] == "LD_LIBRARY_PATH: /usr/local/cuda/lib64"


@linux_only
def test_cudnn8_symlinked_as_cudnn9(tmp_path):
    """libcudnn.so.9 is a link to a cuDNN 8.9.6 file (soname libcudnn.so.8): the classic
    'wrong major' a hand-made symlink creates."""
    lib = at(tmp_path, "/opt/cudnn/lib")
    build_library(
        lib, "libcudnn.so.8.9.6", {"cudnnGetVersion": "return 8906;"}, soname="libcudnn.so.8"
    )
    symlink(lib, "libcudnn.so.8", "libcudnn.so.8.9.6")
    symlink(lib, "libcudnn.so.9", "libcudnn.so.8.9.6")
    env = {"LD_LIBRARY_PATH": "/opt/cudnn/lib"}

    found = probe(tmp_path, env)["libcudnn.so.9"]
    assert found.resolved.path == "/opt/cudnn/lib/libcudnn.so.9"
    assert found.resolved.soname == "libcudnn.so.8"
    assert (found.resolved.version, found.resolved.version_source) == ("8.9.6", "version function")
    assert found.resolved.real_path == "/opt/cudnn/lib/libcudnn.so.8.9.6"
    # libcudnn.so.8 in the same dir is the same file: not listed as a second copy
    assert all(c.path != "/opt/cudnn/lib/libcudnn.so.8" for c in found.candidates)

    without = probe(tmp_path, env, version_functions=False)["libcudnn.so.9"]
    assert (without.resolved.version, without.resolved.version_source) == ("8.9.6", "file name")


@linux_only
def test_a_copy_renamed_to_the_wanted_name_shows_its_soname_version(tmp_path):
    lib = at(tmp_path, "/opt/cudnn/lib")
    build_library(lib, "libcudnn.so.9", soname="libcudnn.so.8")  # cp libcudnn.so.8 libcudnn.so.9
    found = probe(tmp_path, {"LD_LIBRARY_PATH": "/opt/cudnn/lib"}, version_functions=False)[
        "libcudnn.so.9"
    ]
    assert (found.resolved.soname, found.resolved.version, found.resolved.version_source) == (
        "libcudnn.so.8",
        "8",
        "soname",
    )


@linux_only
def test_other_majors_are_candidates(tmp_path):
    pip_lib(tmp_path, "cudnn", "libcudnn.so.9", CUDNN9)
    system = at(tmp_path, MULTIARCH)
    build_library(system, "libcudnn.so.8.9.7", soname="libcudnn.so.8")
    symlink(system, "libcudnn.so.8", "libcudnn.so.8.9.7")
    symlink(system, "libcudnn.so", "libcudnn.so.8")  # the -dev link is no library to load
    found = probe(tmp_path)["libcudnn.so.9"]
    assert found.resolved.via == "RUNPATH"
    others = [c for c in found.candidates if c.path.startswith(MULTIARCH)]
    assert [(c.path, c.via, c.soname, c.version) for c in others] == [
        (f"{MULTIARCH}/libcudnn.so.8", "default", "libcudnn.so.8", "8.9.7")
    ]


@linux_only
def test_library_missing(tmp_path):
    found = probe(tmp_path, {"LD_LIBRARY_PATH": "/opt/nothing"})
    cudart = found["libcudart.so.12"]
    assert cudart.resolved is None and cudart.candidates == ()
    assert cudart.required
    assert cudart.searched[0] == "LD_LIBRARY_PATH: /opt/nothing"
    assert cudart.searched[1] == f"RUNPATH: {SITE}/nvidia/nccl/lib"
    assert cudart.searched[-3:] == (
        "ld.so.cache: /etc/ld.so.cache",
        "default: /lib",
        "default: /usr/lib",
    )


@linux_only
def test_wrong_elf_class_skipped(tmp_path):
    """A 32-bit libcudart first in LD_LIBRARY_PATH is skipped; the search goes on."""
    good = pip_lib(tmp_path, "cuda_runtime", "libcudart.so.12", CUDART)
    data = bytearray(good.read_bytes())
    data[4] = 1  # EI_CLASS = ELFCLASS32, as a 32-bit build of the same library
    stub32 = at(tmp_path, "/opt/cuda32/lib") / "libcudart.so.12"
    stub32.parent.mkdir(parents=True)
    stub32.write_bytes(bytes(data))

    found = probe(tmp_path, {"LD_LIBRARY_PATH": "/opt/cuda32/lib"})["libcudart.so.12"]
    assert found.resolved.via == "RUNPATH" and found.resolved.error is None
    assert found.resolved.version == "12.9"
    skipped = [c for c in found.candidates if c.path == "/opt/cuda32/lib/libcudart.so.12"]
    assert skipped and skipped[0].error == "wrong ELF class: 32-bit"
    assert skipped[0].via == "LD_LIBRARY_PATH"


@linux_only
def test_wrong_machine_skipped(tmp_path):
    good = pip_lib(tmp_path, "cuda_runtime", "libcudart.so.12", CUDART)
    data = bytearray(good.read_bytes())
    data[18:20] = struct.pack("<H", 183)  # e_machine = AArch64
    arm = at(tmp_path, "/opt/arm/lib") / "libcudart.so.12"
    arm.parent.mkdir(parents=True)
    arm.write_bytes(bytes(data))
    found = probe(tmp_path, {"LD_LIBRARY_PATH": "/opt/arm/lib"}, version_functions=False)
    cudart = found["libcudart.so.12"]
    assert cudart.resolved.via == "RUNPATH"
    assert cudart.candidates[0].error == "wrong machine: AArch64"


@linux_only
def test_garbage_file_found_first(tmp_path):
    """A non-ELF file found first ends the search: the dlopen fails ('invalid ELF header')."""
    pip_lib(tmp_path, "cuda_runtime", "libcudart.so.12", CUDART)
    bad = at(tmp_path, "/opt/broken/lib")
    bad.mkdir(parents=True)
    (bad / "libcudart.so.12").write_text("<html>404 Not Found</html>\n")

    found = probe(tmp_path, {"LD_LIBRARY_PATH": "/opt/broken/lib"})["libcudart.so.12"]
    assert found.resolved.path == "/opt/broken/lib/libcudart.so.12"
    assert found.resolved.via == "LD_LIBRARY_PATH"
    assert found.resolved.error.startswith("not an ELF file")
    assert found.resolved.version is None  # a broken file is never loaded for its version
    assert [c.via for c in found.candidates if c.path.startswith(SITE)] == ["RUNPATH"]


@linux_only
def test_truncated_library_found_first(tmp_path):
    good = pip_lib(tmp_path, "cuda_runtime", "libcudart.so.12", CUDART)
    bad = at(tmp_path, "/opt/broken/lib")
    bad.mkdir(parents=True)
    (bad / "libcudart.so.12").write_bytes(good.read_bytes()[:6000])
    found = probe(tmp_path, {"LD_LIBRARY_PATH": "/opt/broken/lib"})["libcudart.so.12"]
    assert found.resolved.path == "/opt/broken/lib/libcudart.so.12"
    assert "truncated" in found.resolved.error or "too short" in found.resolved.error


def _ldconfig(root: Path) -> None:
    """Build root/etc/ld.so.cache with the real ldconfig (chrooted), or skip the test."""
    ldconfig = shutil.which("ldconfig") or "/sbin/ldconfig"
    if not os.path.exists(ldconfig):
        pytest.skip("no ldconfig")
    attempts = [[ldconfig, "-r", str(root)]]
    if shutil.which("unshare"):
        attempts.append(["unshare", "-r", ldconfig, "-r", str(root)])
    for command in attempts:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode == 0 and (root / "etc/ld.so.cache").exists():
            return
    pytest.skip("ldconfig -r needs root (or user namespaces)")


@linux_only
def test_ld_so_cache_entry(tmp_path):
    lib = at(tmp_path, "/opt/cuda/lib")
    build_library(lib, "libcudart.so.12.9.79", CUDART, soname="libcudart.so.12")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/ld.so.conf").write_text("include /etc/ld.so.conf.d/*.conf\n")
    (tmp_path / "etc/ld.so.conf.d").mkdir()
    (tmp_path / "etc/ld.so.conf.d/cuda.conf").write_text("/opt/cuda/lib\n")
    _ldconfig(tmp_path)  # also creates the libcudart.so.12 soname link

    found = probe(tmp_path, pythons=[tf221(runpath=())])["libcudart.so.12"]
    assert found.resolved.via == "ld.so.cache"
    assert found.resolved.path == "/opt/cuda/lib/libcudart.so.12"
    assert found.resolved.real_path == "/opt/cuda/lib/libcudart.so.12.9.79"
    assert (found.resolved.version, found.resolved.version_source) == ("12.9", "version function")

    # the file goes away but the cache is not rebuilt: a stale entry, nothing loads
    for name in ("libcudart.so.12", "libcudart.so.12.9.79"):
        (lib / name).unlink()
    stale = probe(tmp_path, pythons=[tf221(runpath=())])["libcudart.so.12"]
    assert stale.resolved is None
    assert [c.error for c in stale.candidates if c.via == "ld.so.cache"] == [
        "stale ld.so.cache entry: the file is gone"
    ]


@linux_only
def test_dir_in_ld_so_conf_but_not_in_the_cache(tmp_path):
    """ldconfig was not run after installing: the file is a candidate, not resolved."""
    lib = at(tmp_path, "/opt/cuda/lib")
    build_library(lib, "libcudart.so.12", CUDART)
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/ld.so.conf").write_text("# comment\n/opt/cuda/lib\n")
    found = probe(tmp_path, pythons=[tf221(runpath=())])["libcudart.so.12"]
    assert found.resolved is None
    assert [(c.path, c.via) for c in found.candidates] == [
        ("/opt/cuda/lib/libcudart.so.12", "ld.so.conf")
    ]


@linux_only
def test_symlink_loop(tmp_path):
    """A loop in an LD_LIBRARY_PATH dir ends that list (glibc open_path returns), not the
    search: the next LD_LIBRARY_PATH dir is skipped and TF's RUNPATH copy loads."""
    pip_lib(tmp_path, "cuda_runtime", "libcudart.so.12", CUDART)
    loop = at(tmp_path, "/opt/loop/lib")
    loop.mkdir(parents=True)
    symlink(loop, "libcudart.so.12", "libcudart.so.12")
    good = at(tmp_path, "/opt/later/lib")
    build_library(good, "libcudart.so.12", {"cudaRuntimeGetVersion": "*v = 12020; return 0;"})
    env = {"LD_LIBRARY_PATH": "/opt/loop/lib:/opt/later/lib"}

    found = probe(tmp_path, env)["libcudart.so.12"]
    assert found.resolved.via == "RUNPATH"
    looped = [c for c in found.candidates if c.path == "/opt/loop/lib/libcudart.so.12"]
    assert looped and "symlink loop" in looped[0].error
    later = [c for c in found.candidates if c.path == "/opt/later/lib/libcudart.so.12"]
    assert later and later[0].error is None and later[0].via == "LD_LIBRARY_PATH"


@linux_only
def test_symlink_loop_on_the_host_root(tmp_path):
    """The same through Root('/') (the kernel follows the links)."""
    loop = tmp_path / "loop"
    loop.mkdir()
    symlink(loop, "libcudart.so.12", "libcudart.so.12")
    result = probe_libraries(
        Root("/"), {"LD_LIBRARY_PATH": str(loop)}, "linux", [], machine="x86_64"
    )
    assert {r.wanted for r in result} == {"libcuda.so.1", "libnvidia-ml.so.1"}


@linux_only
def test_dangling_link_is_evidence(tmp_path):
    lib = at(tmp_path, "/opt/cudnn/lib")
    lib.mkdir(parents=True)
    symlink(lib, "libcudnn.so.9", "libcudnn.so.9.3.0")  # the file itself was deleted
    found = probe(tmp_path, {"LD_LIBRARY_PATH": "/opt/cudnn/lib"})["libcudnn.so.9"]
    assert found.resolved is None
    assert found.candidates[0].error == "dangling symlink -> libcudnn.so.9.3.0"


@linux_only
def test_missing_soname_link_is_evidence(tmp_path):
    lib = at(tmp_path, "/opt/cudnn/lib")
    build_library(lib, "libcudnn.so.9.3.0", CUDNN9, soname="libcudnn.so.9")
    found = probe(tmp_path, {"LD_LIBRARY_PATH": "/opt/cudnn/lib"})["libcudnn.so.9"]
    assert found.resolved is None
    (only,) = found.candidates
    assert only.path == "/opt/cudnn/lib/libcudnn.so.9.3.0"
    assert "no libcudnn.so.9 link" in only.error


@linux_only
def test_rpath_caller_searches_before_ld_library_path(tmp_path):
    """An old-style TF (DT_RPATH, no DT_RUNPATH) searches its RPATH before LD_LIBRARY_PATH."""
    pip_lib(tmp_path, "cuda_runtime", "libcudart.so.12", CUDART)
    system = at(tmp_path, "/opt/cuda/lib")
    build_library(system, "libcudart.so.12", {"cudaRuntimeGetVersion": "*v = 12020; return 0;"})
    tf_dir = at(tmp_path, f"{SITE}/tensorflow")
    tf_dir.mkdir(parents=True)
    source = tmp_path / "fw.c"
    source.write_text("int tf_marker(void) { return 1; }\n")
    subprocess.run(
        [
            "gcc",
            "-shared",
            "-fPIC",
            "-Wl,-soname,libtensorflow_framework.so.2",
            "-Wl,-rpath,$ORIGIN/../nvidia/cuda_runtime/lib",
            "-Wl,--disable-new-dtags",
            "-o",
            str(tf_dir / "libtensorflow_framework.so.2"),
            str(source),
        ],
        check=True,
    )

    found = probe(tmp_path, {"LD_LIBRARY_PATH": "/opt/cuda/lib"})["libcudart.so.12"]
    assert found.resolved.via == "RPATH"
    assert found.resolved.version == "12.9"
    assert found.searched[0].startswith("RPATH: ")


@linux_only
def test_nvjitlink_through_cusparse_runpath(tmp_path):
    """libnvJitLink is a dependency of libcusparse, found through cusparse's own RUNPATH."""
    build_library(
        at(tmp_path, f"{SITE}/nvidia/cusparse/lib"),
        "libcusparse.so.12",
        runpath="$ORIGIN/../../nvjitlink/lib",
    )
    pip_lib(
        tmp_path, "nvjitlink", "libnvJitLink.so.12", {"nvJitLinkVersion": "return 7;"}
    )  # a stub with the wrong signature: rc 7
    system = at(tmp_path, "/opt/other")
    build_library(system, "libnvJitLink.so.12")
    (tmp_path / "etc").mkdir()
    found = probe(tmp_path, pythons=[tf221()])["libnvJitLink.so.12"]
    assert found.resolved.via == "pip"
    assert found.resolved.path == f"{SITE}/nvidia/nvjitlink/lib/libnvJitLink.so.12"
    assert f"pip: {SITE}/nvidia/nvjitlink/lib" in found.searched
    assert "nvJitLinkVersion returned status 7" in found.note


@linux_only
def test_no_cuda_build_resolves_the_driver_only(tmp_path):
    build_library(at(tmp_path, "/usr/lib/wsl/lib"), "libcuda.so.1")
    cpu = tf221(is_cuda_build=False)
    found = probe_libraries(
        Root(str(tmp_path)),
        {"LD_LIBRARY_PATH": "/usr/lib/wsl/lib"},
        "linux",
        [cpu],
        machine="x86_64",
    )
    assert [(r.role, r.wanted, r.python) for r in found] == [
        ("cuda_driver", "libcuda.so.1", ""),
        ("nvml", "libnvidia-ml.so.1", ""),
    ]
    assert found[0].resolved.path == "/usr/lib/wsl/lib/libcuda.so.1"
    assert found[0].resolved.via == "LD_LIBRARY_PATH"
    assert found[1].resolved is None and not found[1].required


@linux_only
def test_fedora_default_dirs_and_conda_candidates(tmp_path):
    (tmp_path / "usr/lib64").mkdir(parents=True)
    build_library(tmp_path / "usr/lib64", "libcuda.so.1")
    build_library(at(tmp_path, "/opt/conda/envs/tf/lib"), "libcudart.so.12")
    env = {"CONDA_PREFIX": "/opt/conda/envs/tf"}
    found = probe(tmp_path, env, version_functions=False)
    assert found["libcuda.so.1"].resolved.path == "/usr/lib64/libcuda.so.1"
    assert found["libcuda.so.1"].searched[-2:] == ("default: /lib64", "default: /usr/lib64")
    assert [(c.path, c.via) for c in found["libcudart.so.12"].candidates] == [
        ("/opt/conda/envs/tf/lib/libcudart.so.12", "conda")
    ]


@linux_only
def test_toolkit_candidates(tmp_path):
    build_library(at(tmp_path, "/opt/nvidia/cuda-11.8/lib64"), "libcudart.so.11.0")
    build_library(at(tmp_path, "/usr/local/cuda-12.4/lib64"), "libcudart.so.12")
    found = probe(
        tmp_path, toolkits=[CudaToolkit(root="/opt/nvidia/cuda-11.8")], version_functions=False
    )["libcudart.so.12"]
    assert found.resolved is None
    assert [(c.path, c.via) for c in found.candidates] == [
        ("/opt/nvidia/cuda-11.8/lib64/libcudart.so.11.0", "toolkit"),
        ("/usr/local/cuda-12.4/lib64/libcudart.so.12", "toolkit"),
    ]


@linux_only
def test_malformed_inputs_never_raise(tmp_path):
    pip_lib(tmp_path, "cuda_runtime", "libcudart.so.12", CUDART)
    crowded = at(tmp_path, "/opt/crowded")
    crowded.mkdir(parents=True)
    for index in range(3000):
        (crowded / f"libjunk{index}.so.1").write_bytes(b"")
    (crowded / "libcudnn.so.9").mkdir()  # a directory where a library should be
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/ld.so.cache").write_bytes(b"glibc-ld.so.cache1.1" + b"\xff" * 40)
    (tmp_path / "etc/ld.so.conf").write_text("include /etc/ld.so.conf\n/opt/x:/opt/y\n")
    (tmp_path / "opt/a-file").write_text("not a dir")
    env = {"LD_LIBRARY_PATH": "::relative/lib:/opt/a-file:/opt/crowded;/nonexistent:\0:"}
    odd = tf221(
        runpath=("", "relative", "$ORIGIN/../x", "/opt/a-file"), package_dir="not/absolute", bits=0
    )
    found = probe(tmp_path, env, pythons=[odd, tf221(site_packages=("", "relative"))])
    alone = probe_libraries(Root(str(tmp_path)), env, "linux", [odd], machine="x86_64")
    cudart = next(r for r in alone if r.wanted == "libcudart.so.12")
    assert cudart.resolved is None
    assert "relative to the current directory" in cudart.note
    assert "'relative/lib'" in cudart.note
    assert "/etc/ld.so.cache ignored" in cudart.note
    cudnn = found["libcudnn.so.9"]
    assert cudnn.resolved.path == "/opt/crowded/libcudnn.so.9"
    assert cudnn.resolved.error == "is a directory, not a library"


def test_unknown_os_and_no_pythons(tmp_path):
    assert probe_libraries(Root(str(tmp_path)), {}, "darwin", []) == ()


# --------------------------------------------------------------------------- the real wheel


@linux_only
def test_the_real_cudart_wheel_reports_12_9():
    import nvidia.cuda_runtime

    lib_dir = os.path.join(nvidia.cuda_runtime.__path__[0], "lib")
    site = os.path.dirname(os.path.dirname(nvidia.cuda_runtime.__path__[0]))
    tf = TensorflowBuild(
        package_dir=os.path.join(site, "tensorflow"),
        is_cuda_build=True,
        cuda_version="12.5.1",
        cudnn_version="9",
        runpath=(lib_dir,),
    )
    python = PythonEnv(executable=sys.executable, site_packages=(site,), tensorflow=tf)
    found = {r.wanted: r for r in probe_libraries(Root("/"), {}, "linux", [python])}
    cudart = found["libcudart.so.12"].resolved
    assert cudart.path == os.path.join(lib_dir, "libcudart.so.12")
    assert cudart.via == "RUNPATH"
    assert cudart.soname == "libcudart.so.12"
    assert (cudart.version, cudart.version_source) == ("12.9", "version function")


# --------------------------------------------------------------------------- version child


@linux_only
def test_a_crashing_version_function_costs_only_itself(tmp_path):
    good = build_library(tmp_path, "libcudart.so.12", CUDART)
    bad = build_library(
        tmp_path / "b", "libcufft.so.11", {"cufftGetVersion": "*(volatile int *)0 = 1; return 0;"}
    )
    results = loader_versions.call_version_functions(
        [(str(bad), "cufft", "libcufft.so.11"), (str(good), "cudart", "libcudart.so.12")], {}
    )
    assert results[str(good)].version == "12.9"
    assert "crashed" in results[str(bad)].error


@linux_only
def test_a_hanging_version_function_times_out(tmp_path):
    good = build_library(tmp_path, "libcudart.so.12", CUDART)
    hang = build_library(
        tmp_path / "h", "libcudnn.so.9", {"cudnnGetVersion": "for (;;) {} return 0;"}
    )
    results = loader_versions.call_version_functions(
        [(str(good), "cudart", "libcudart.so.12"), (str(hang), "cudnn", "libcudnn.so.9")],
        {},
        timeout=1.5,
    )
    assert results[str(good)].version == "12.9"
    assert "timed out" in results[str(hang)].error


@linux_only
def test_what_a_library_prints_does_not_spoil_the_answers(tmp_path):
    noisy = build_library(
        tmp_path,
        "libcudart.so.12",
        {
            "cudaRuntimeGetVersion": "extern long write(int, const void *, unsigned long); "
            'write(1, "noise", 5); *v = 12090; return 0;'
        },
    )
    results = loader_versions.call_version_functions(
        [(str(noisy), "cudart", "libcudart.so.12")], {}
    )
    assert results[str(noisy)].version == "12.9"


@linux_only
def test_a_child_started_early_answers_jobs_given_later(tmp_path):
    good = build_library(tmp_path, "libcudart.so.12", CUDART)
    child = loader_versions.VersionChild({})
    results = loader_versions.call_version_functions(
        [(str(good), "cudart", "libcudart.so.12")], {}, child=child
    )
    assert results[str(good)].version == "12.9"
    child.close()  # already used: nothing left to end
    again = loader_versions.call_version_functions(
        [(str(good), "cudart", "libcudart.so.12")], {}, child=child
    )
    assert again[str(good)].error == "the version probe was already used"


def test_an_unused_early_child_is_ended_and_reaped():
    child = loader_versions.VersionChild({})
    proc = child._proc
    child.close()
    assert proc is not None and proc.returncode == 0


def test_no_child_without_version_functions(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("started a child")

    monkeypatch.setattr(subprocess, "Popen", fail)
    assert (
        loader_versions.call_version_functions(
            [
                ("/x/libcudnn_ops.so.9", "cudnn", "libcudnn_ops.so.9"),
                ("/x/libcupti.so.12", "cupti", "libcupti.so.12"),
            ],
            {},
        )
        == {}
    )


@pytest.mark.parametrize(
    ("role", "kind", "values", "expected"),
    [
        ("cudart", "int_out", [12090], "12.9"),
        ("cudart", "int_out", [11020], "11.2"),
        ("cudnn", "size_t", [90300], "9.3.0"),
        ("cudnn", "size_t", [91002], "9.10.2"),
        ("cudnn", "size_t", [8906], "8.9.6"),
        ("cudnn", "size_t", [7605], "7.6.5"),
        ("cufft", "int_out", [11203], "11.2.3"),
        ("cusolver", "int_out", [11705], "11.7.5"),
        ("nccl", "int_out", [22703], "2.27.3"),
        ("nccl", "int_out", [2708], "2.7.8"),
        ("cublas", "property", [12, 9, 1], "12.9.1"),
        ("nvjitlink", "two_out", [12, 9], "12.9"),
        ("cudart", "int_out", [0], None),
        ("cudnn", "size_t", [], None),
    ],
)
def test_decode(role, kind, values, expected):
    assert loader_versions.decode(role, kind, values) == expected


# --------------------------------------------------------------------------- helpers


def test_build_versions():
    windows = TensorflowBuild(package_dir="C:\\tf", cuda_version="64_112", cudnn_version="64_8")
    assert (cuda_version_of(windows), cudnn_version_of(windows)) == ("11.2", "8")
    old = TensorflowBuild(
        package_dir="/tf",
        build_info=(("cuda_version_number", "10.1"), ("cudnn_version_number", "7")),
    )
    assert (cuda_version_of(old), cudnn_version_of(old)) == ("10.1", "7")
    assert cuda_version_of(TensorflowBuild(package_dir="/tf", cuda_version="12.5.1")) == "12.5.1"
    assert cuda_version_of(None) is None
    assert cudnn_version_of(TensorflowBuild(package_dir="/tf", cudnn_version="garbage")) is None


def test_name_version():
    assert name_version("libcudart.so.12.9.79", "libcudart.so.12") == "12.9.79"
    assert name_version("libcudnn.so.8", "libcudnn.so.9") == "8"
    assert name_version("libcudart.so.12", "libcudart.so.12") is None
    assert name_version("libother.so.3", "libcudart.so.12") is None
    assert name_version("libcuda.so.570.133.07", "libcuda.so.1") == "570.133.07"


# --------------------------------------------------------------------------- Windows

WIN_PY = "C:\\Users\\ada\\venvs\\tf\\Scripts\\python.exe"
WIN_BASE = "C:\\Users\\ada\\AppData\\Local\\Programs\\Python\\Python310"
WIN_SITE = "C:\\Users\\ada\\venvs\\tf\\Lib\\site-packages"
WIN_CUDA = "C:\\Program Files\\NVIDIA GPU Computing Toolkit\\CUDA\\v11.2"


def win(root: Path, system_path: str) -> Path:
    return Path(Root(str(root)).path(system_path))


def pe(path: Path, machine: int = 0x8664) -> Path:
    """A minimal PE image header: enough for the loader checks."""
    data = bytearray(512)
    data[:2] = b"MZ"
    struct.pack_into("<I", data, 0x3C, 0x80)
    data[0x80:0x84] = b"PE\0\0"
    struct.pack_into("<H", data, 0x84, machine)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(data))
    return path


def tf210(version="3.10.11", bits=64) -> PythonEnv:
    tf = TensorflowBuild(
        package_dir=f"{WIN_SITE}\\tensorflow",
        version="2.10.1",
        is_cuda_build=True,
        cuda_version="64_112",
        cudnn_version="64_8",
    )
    return PythonEnv(
        executable=WIN_PY,
        version=version,
        bits=bits,
        platform="win32",
        prefix="C:\\Users\\ada\\venvs\\tf",
        site_packages=(WIN_SITE,),
        tensorflow=tf,
    )


def windows_machine(root: Path) -> dict[str, str]:
    """Windows with the driver in System32, a venv on a python.org install, CUDA 11.2."""
    win(root, "C:\\Users\\ada\\venvs\\tf\\pyvenv.cfg").parent.mkdir(parents=True)
    win(root, "C:\\Users\\ada\\venvs\\tf\\pyvenv.cfg").write_text(
        f"home = {WIN_BASE}\ninclude-system-site-packages = false\nversion = 3.10.11\n"
    )
    pe(win(root, f"{WIN_BASE}\\python.exe"))
    pe(win(root, f"{WIN_BASE}\\vcruntime140.dll"))
    pe(win(root, f"{WIN_BASE}\\vcruntime140_1.dll"))
    pe(win(root, "C:\\Windows\\System32\\nvcuda.dll"))
    pe(win(root, "C:\\Windows\\System32\\nvml.dll"))
    pe(win(root, f"{WIN_SITE}\\tensorflow\\python\\_pywrap_tensorflow_internal.pyd"))
    for dll in (
        "cudart64_110.dll",
        "cublas64_11.dll",
        "cublasLt64_11.dll",
        "cufft64_10.dll",
        "curand64_10.dll",
        "cusolver64_11.dll",
        "cusparse64_11.dll",
        "cudnn64_8.dll",
    ):
        pe(win(root, f"{WIN_CUDA}\\bin\\{dll}"))
    return {
        "Path": f"{WIN_CUDA}\\bin;{WIN_CUDA}\\libnvvp;C:\\Windows\\system32;C:\\Windows",
        "SystemRoot": "C:\\Windows",
        "CUDA_PATH": WIN_CUDA,
    }


def probe_windows(root: Path, env, pythons=None):
    found = probe_libraries(
        Root(str(root)), env, "windows", [tf210()] if pythons is None else pythons
    )
    return {r.wanted: r for r in found}


def test_cuda_bin_on_path(tmp_path):
    env = windows_machine(tmp_path)
    found = probe_windows(tmp_path, env)
    cudart = found["cudart64_110.dll"]
    assert cudart.resolved.path == f"{WIN_CUDA}\\bin\\cudart64_110.dll"
    assert cudart.resolved.via == "PATH" and cudart.resolved.error is None
    assert cudart.python == WIN_PY
    assert cudart.searched[:3] == (
        f"application dir: {WIN_BASE}",
        "application dir: C:\\Users\\ada\\venvs\\tf\\Scripts",
        "System32: C:\\Windows\\System32",
    )
    nvcuda = found["nvcuda.dll"].resolved
    assert (nvcuda.path, nvcuda.via) == ("C:\\Windows\\System32\\nvcuda.dll", "System32")
    # cuDNN 8 sub-libraries were not installed
    assert found["cudnn_cnn_infer64_8.dll"].resolved is None


def test_vc_runtime_in_system32(tmp_path):
    env = windows_machine(tmp_path)
    for dll in ("msvcp140.dll", "msvcp140_1.dll", "vcruntime140.dll", "vcruntime140_1.dll"):
        pe(win(tmp_path, f"C:\\Windows\\System32\\{dll}"))
    found = probe_windows(tmp_path, env)
    msvcp = found["msvcp140_1.dll"]
    assert msvcp.resolved.path == "C:\\Windows\\System32\\msvcp140_1.dll"
    assert msvcp.resolved.via == "System32" and msvcp.on_path_only is None
    assert msvcp.searched[0] == f"DLL load dir: {WIN_SITE}\\tensorflow\\python"
    # python.exe's own copy comes first (the app dir of a venv is the base interpreter's)
    vcr = found["vcruntime140.dll"].resolved
    assert (vcr.path, vcr.via) == (f"{WIN_BASE}\\vcruntime140.dll", "application dir")
    assert [c.path for c in found["vcruntime140.dll"].candidates] == [
        "C:\\Windows\\System32\\vcruntime140.dll"
    ]


def test_vc_runtime_only_on_path(tmp_path):
    env = windows_machine(tmp_path)
    pe(win(tmp_path, "C:\\Windows\\System32\\msvcp140.dll"))
    pe(win(tmp_path, "C:\\Tools\\bin\\msvcp140_1.dll"))
    env["Path"] += ";C:\\Tools\\bin"
    found = probe_windows(tmp_path, env)
    runtime = found["msvcp140_1.dll"]
    assert runtime.resolved is None
    assert runtime.on_path_only.path == "C:\\Tools\\bin\\msvcp140_1.dll"
    assert runtime.on_path_only.via == "PATH"
    assert "only on PATH" in runtime.note
    # Python 3.7 still searched PATH: it loads
    old = probe_windows(tmp_path, env, [tf210(version="3.7.9")])["msvcp140_1.dll"]
    assert old.resolved.via == "PATH" and old.on_path_only is None


def test_windows_case_insensitive_and_broken_dlls(tmp_path):
    env = windows_machine(tmp_path)
    pe(win(tmp_path, "C:\\Tools\\CUDNN64_8.DLL"), machine=0x14C)  # a 32-bit copy first
    (win(tmp_path, "C:\\Garbage")).mkdir()
    (win(tmp_path, "C:\\Garbage\\cufft64_10.dll")).write_text("not a dll")
    env["Path"] = "C:\\Tools;C:\\Garbage;%CUDA_PATH%\\bin;relative;;" + env["Path"]
    found = probe_windows(tmp_path, env)
    cudnn = found["cudnn64_8.dll"].resolved
    assert cudnn.path == "C:\\Tools\\CUDNN64_8.DLL"
    assert cudnn.error.startswith("wrong machine: x86 (32-bit) DLL")
    assert found["cufft64_10.dll"].resolved.error.startswith("not a PE image")
    assert "unexpanded variable" in found["cufft64_10.dll"].note
    assert [c.via for c in found["cudnn64_8.dll"].candidates] == ["PATH"]


def test_windows_other_majors_and_cuda_path_candidates(tmp_path):
    env = windows_machine(tmp_path)
    pe(win(tmp_path, "C:\\Program Files\\NVIDIA\\CUDNN\\v9.1\\bin\\cudnn64_9.dll"))
    other = "C:\\Program Files\\NVIDIA GPU Computing Toolkit\\CUDA\\v12.2"
    pe(win(tmp_path, f"{other}\\bin\\cudart64_12.dll"))
    env["CUDA_PATH_V12_2"] = other
    env["Path"] += ";C:\\Program Files\\NVIDIA\\CUDNN\\v9.1\\bin"
    found = probe_windows(tmp_path, env)
    assert [(c.path, c.via) for c in found["cudnn64_8.dll"].candidates] == [
        ("C:\\Program Files\\NVIDIA\\CUDNN\\v9.1\\bin\\cudnn64_9.dll", "PATH")
    ]
    assert [(c.path, c.via) for c in found["cudart64_110.dll"].candidates] == [
        (f"{other}\\bin\\cudart64_12.dll", "CUDA_PATH")
    ]


def test_windows_without_cuda_build(tmp_path):
    env = windows_machine(tmp_path)
    cpu = PythonEnv(
        executable=WIN_PY,
        version="3.11.9",
        tensorflow=TensorflowBuild(
            package_dir=f"{WIN_SITE}\\tensorflow", version="2.21.0", is_cuda_build=False
        ),
    )
    found = probe_libraries(Root(str(tmp_path)), env, "windows", [cpu])
    roles = [(r.role, r.python) for r in found]
    assert roles.count(("msvc_runtime", WIN_PY)) == 4
    assert ("cuda_driver", "") in roles and ("nvml", "") in roles
    driver = next(r for r in found if r.role == "cuda_driver")
    assert driver.resolved.via == "System32"


# --------------------------------------------------------------------------- the real loader


def _real_dlopen(name: str, ld_library_path: str) -> str | None:
    """The file glibc really loads for `name` (None when the dlopen fails or crashes)."""
    code = (
        "import ctypes, sys\n"
        f"try:\n    ctypes.CDLL({name!r})\nexcept OSError:\n    sys.exit(0)\n"
        "for line in open('/proc/self/maps'):\n"
        f"    if {name!r} in line:\n        print(line.split()[-1]); break\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code],
        capture_output=True,
        text=True,
        env={"LD_LIBRARY_PATH": ld_library_path},
        timeout=30,
    )
    return result.stdout.strip() or None


def _first(kind: str, directory: Path, good: bytes, name: str) -> None:
    target = directory / name
    if kind == "32-bit":
        data = bytearray(good)
        data[4] = 1
        target.write_bytes(bytes(data))
    elif kind == "aarch64":
        data = bytearray(good)
        data[18:20] = struct.pack("<H", 183)
        target.write_bytes(bytes(data))
    elif kind == "garbage":
        target.write_bytes(b"garbage " * 100)
    elif kind == "short garbage":
        target.write_text("hello")
    elif kind == "empty":
        target.write_bytes(b"")
    elif kind == "loop":
        symlink(directory, name, name)
    elif kind == "dangling":
        symlink(directory, name, "gone.so")
    elif kind == "directory":
        target.mkdir()
    elif kind == "truncated":
        target.write_bytes(good[:6000])
    elif kind == "good":
        target.write_bytes(good)


@linux_only
@pytest.mark.parametrize(
    "kind",
    [
        "32-bit",
        "aarch64",
        "garbage",
        "short garbage",
        "empty",
        "loop",
        "dangling",
        "directory",
        "truncated",
        "good",
        "not a directory",
    ],
)
def test_agrees_with_the_real_loader(tmp_path, kind):
    """Differential: the probe's answer for LD_LIBRARY_PATH=A:B against glibc's own dlopen."""
    if platform.machine() != "x86_64":
        pytest.skip("the stubs are patched as x86-64 files")
    name = "libtfsmdiff.so.1"
    good = build_library(tmp_path / "B", name, soname=name)
    first = tmp_path / "A"
    if kind == "not a directory":
        first.write_text("a file where a directory should be")
    else:
        first.mkdir()
        _first(kind, first, good.read_bytes(), name)
    ld_library_path = f"{first}:{tmp_path / 'B'}"

    real = _real_dlopen(name, ld_library_path)
    probe = _LinuxProbe(Root("/"), {"LD_LIBRARY_PATH": ld_library_path}, "x86_64", ())
    wanted = LibraryName("test", "linux", "cudart", name, True, "", "")
    mine = probe.resolve_one(None, wanted, {})

    if real is None:
        assert mine.resolved is None or mine.resolved.error, mine
    else:
        assert mine.resolved is not None and mine.resolved.error is None, mine
        assert os.path.realpath(mine.resolved.path) == os.path.realpath(real)


@linux_only
@pytest.mark.parametrize("tag", ["RUNPATH", "RPATH"])
def test_caller_path_order_agrees_with_the_real_loader(tmp_path, tag):
    """A TF-like caller .so dlopens a library by name: its RUNPATH comes after
    LD_LIBRARY_PATH, its RPATH (without RUNPATH) before."""
    name = "libtfsmdiff.so.1"
    build_library(tmp_path / "runpath", name)
    build_library(tmp_path / "env", name)
    package = tmp_path / "tensorflow"
    package.mkdir()
    source = tmp_path / "caller.c"
    source.write_text(
        "extern void *dlopen(const char *, int);\n"
        f'int tf_load(void) {{ return dlopen("{name}", 2) != 0; }}\n'
    )
    dtags = "--enable-new-dtags" if tag == "RUNPATH" else "--disable-new-dtags"
    caller = package / "libtensorflow_framework.so.2"
    subprocess.run(
        [
            "gcc",
            "-shared",
            "-fPIC",
            "-Wl,-rpath,$ORIGIN/../runpath",
            f"-Wl,{dtags}",
            "-o",
            str(caller),
            str(source),
        ],
        check=True,
    )
    env = {"LD_LIBRARY_PATH": str(tmp_path / "env")}
    code = (
        "import ctypes\n"
        f"ctypes.CDLL({str(caller)!r}).tf_load()\n"
        "for line in open('/proc/self/maps'):\n"
        f"    if {name!r} in line:\n        print(line.split()[-1]); break\n"
    )
    real = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=True,
    ).stdout.strip()

    # runpath left empty: the probe reads the caller's own entries and expands $ORIGIN
    tf = TensorflowBuild(package_dir=str(package), is_cuda_build=True)
    python = PythonEnv(executable=sys.executable, tensorflow=tf)
    probe = _LinuxProbe(Root("/"), env, platform.machine(), ())
    mine = probe.resolve_one(python, LibraryName("t", "linux", "cudart", name, True, "", ""), {})
    assert mine.resolved.path == real
    assert mine.resolved.via == ("LD_LIBRARY_PATH" if tag == "RUNPATH" else "RPATH")
