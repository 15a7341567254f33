"""Which directories the file trigger watches, and what an event in them means."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from monitor.facts.paths import Root
from monitor.model import (
    ChangeKind,
    CudaToolkit,
    CudnnInstall,
    EnvironmentInfo,
    HostInfo,
    Inventory,
    LibraryFile,
    LibraryResolution,
    PythonEnv,
)
from monitor.watch.targets import TargetIndex, classify, is_noise, watch_targets

SITE = "/home/ada/venvs/tf/lib/python3.11/site-packages"
CUDA = "/usr/local/cuda-12.4"
CUDA_LIB = f"{CUDA}/targets/x86_64-linux/lib"


def make(root: Path, system_path: str, text: str | None = None) -> Path:
    """A directory (text None) or a file at `system_path` under `root`."""
    path = root / system_path.lstrip("/")
    if text is None:
        path.mkdir(parents=True, exist_ok=True)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return path


def linux_workstation(root: Path) -> Inventory:
    """CUDA 12.4 from NVIDIA's packages (/usr/local/cuda -> cuda-12.4, lib64 -> targets/...),
    cuDNN 9 from the distribution's packages, a venv with the cuDNN wheel, no /opt."""
    for place in (f"{CUDA}/bin", f"{CUDA}/include", CUDA_LIB, "/etc/ld.so.conf.d"):
        make(root, place)
    make(root, f"{CUDA}/version.json", '{"cuda": {"version": "12.4.1"}}')
    os.symlink("targets/x86_64-linux/lib", root / CUDA.lstrip("/") / "lib64")
    os.symlink("cuda-12.4", root / "usr/local/cuda")
    make(root, "/etc/ld.so.cache", "cache")
    make(root, "/etc/ld.so.conf.d/cuda.conf", f"{CUDA}/lib64\n")
    make(root, "/usr/include/x86_64-linux-gnu/cudnn_version_v9.h", "#define CUDNN_MAJOR 9\n")
    make(root, "/usr/lib/x86_64-linux-gnu/libcudnn.so.9", "elf")
    make(root, f"{SITE}/nvidia/cudnn/lib/libcudnn.so.9", "elf")
    return Inventory(
        host=HostInfo(os="linux", machine="x86_64", root=str(root)),
        toolkits=(CudaToolkit(CUDA, "12.4.1", "version.json", "/usr/local/cuda -> cuda-12.4"),),
        cudnn=(
            CudnnInstall("/usr/include/x86_64-linux-gnu/cudnn_version_v9.h", "9.1.0", "header"),
            CudnnInstall("/usr/lib/x86_64-linux-gnu/libcudnn.so.9", "9.1.0", "library"),
            CudnnInstall(f"{SITE}/nvidia/cudnn", "9.1.0", "pip"),
        ),
        pythons=(PythonEnv("/home/ada/venvs/tf/bin/python", site_packages=(SITE,)),),
        libraries=(
            LibraryResolution("cudart", "libcudart.so.12", resolved=_lib(f"{CUDA_LIB}/x.so")),
            LibraryResolution("cudnn", "libcudnn.so.9", resolved=_lib(f"{SITE}/nvidia/x.so")),
            LibraryResolution("nvml", "libnvidia-ml.so.1", resolved=_lib("/usr/lib/x/nvml.so")),
        ),
    )


def _lib(path: str) -> LibraryFile:
    return LibraryFile(path, via="RUNPATH")


@pytest.fixture
def linux(tmp_path: Path) -> tuple[Path, Inventory]:
    return tmp_path, linux_workstation(tmp_path)


def test_linux_workstation_watches_a_few_directories_where_installs_land(linux):
    root, inventory = linux
    targets = watch_targets(inventory, Root(str(root)), "linux")
    directories = {t.path for t in targets}
    assert directories == {
        "/",  # for /opt, which does not exist yet
        "/usr/local",
        CUDA,
        f"{CUDA}/bin",
        f"{CUDA}/include",
        CUDA_LIB,  # lib64, the symlink followed
        "/usr/include",
        "/usr/include/x86_64-linux-gnu",
        "/usr/lib/x86_64-linux-gnu",
        f"{SITE}/nvidia/cudnn/lib",
        "/etc",
        "/etc/ld.so.conf.d",
    }
    assert all(t.real == os.path.normpath(Root(str(root)).path(t.path)) for t in targets)
    assert all(os.path.isdir(t.real) for t in targets)
    keys = [(t.real, t.kind, t.subject) for t in targets]
    assert len(keys) == len(set(keys))


def test_a_missing_parent_is_watched_for_from_the_nearest_existing_directory(linux):
    root, inventory = linux
    targets = watch_targets(inventory, Root(str(root)), "linux")
    (slash,) = [t for t in targets if t.path == "/"]
    assert (slash.kind, slash.patterns) == (ChangeKind.TOOLKIT, ("opt",))
    assert "does not exist yet" in slash.why
    # A place only worth watching when it exists is not replaced by its parent.
    assert not [t for t in targets if t.path in ("/usr/lib64", "/etc/alternatives")]


def test_library_directories_inside_site_packages_are_left_to_the_package_trigger(linux):
    root, inventory = linux
    targets = watch_targets(inventory, Root(str(root)), "linux")
    assert not [t for t in targets if t.path.startswith(f"{SITE}/nvidia/x")]
    cudart = [t for t in targets if "libcudart.so.12" in t.patterns]
    assert [(t.path, t.kind) for t in cudart] == [(CUDA_LIB, ChangeKind.TOOLKIT)]


def test_a_toolkit_tree_settles_as_a_whole_but_a_conda_environment_does_not(tmp_path):
    make(tmp_path, "/opt/conda/envs/tf/bin")
    inventory = Inventory(
        host=HostInfo(os="linux"),
        toolkits=(CudaToolkit("/opt/conda/envs/tf", "12.4", origin="conda"),),
    )
    targets = watch_targets(inventory, Root(str(tmp_path)), "linux")
    env = [t for t in targets if t.subject == "/opt/conda/envs/tf"]
    assert {t.path for t in env} == {"/opt/conda/envs/tf", "/opt/conda/envs/tf/bin"}
    assert all(t.tree == "" for t in env)
    (parent,) = [t for t in targets if t.path == "/opt/conda/envs"]
    assert parent.patterns == ("tf",)


@pytest.mark.parametrize(
    ("system_path", "what", "expected"),
    [
        ("/usr/local/cuda-12.9", "created", ("toolkit", "/usr/local/cuda-12.9", "", "created")),
        (CUDA, "deleted", ("toolkit", CUDA, "present", "")),
        ("/usr/local/cuda", "modified", ("toolkit", "/usr/local/cuda", "present", "modified")),
        ("/usr/local/bin", "created", None),
        ("/usr/local/cuda-12.9.tmp", "created", None),
        ("/opt", "created", ("toolkit", "/opt", "", "created")),
        (f"{CUDA}/version.json", "modified", ("toolkit", CUDA, "present", "modified")),
        (f"{CUDA}/.version.json.swp", "created", None),
        (f"{CUDA}/bin/__pycache__", "created", None),
        (f"{CUDA_LIB}/libcuda.so.1", "deleted", ("toolkit", CUDA, "present", "modified")),
        (  # the library the loader picks: its own subject
            f"{CUDA_LIB}/libcudart.so.12",
            "deleted",
            ("toolkit", f"{CUDA_LIB}/libcudart.so.12", "present", ""),
        ),
        (
            f"{CUDA_LIB}/libcudnn.so.9",
            "created",
            ("cudnn", f"{CUDA_LIB}/libcudnn.so.9", "", "created"),
        ),
        ("/etc/ld.so.cache", "modified", ("loader", "/etc/ld.so.cache", "present", "modified")),
        ("/etc/ld.so.cache~", "created", None),
        ("/etc/resolv.conf", "modified", None),
        (
            "/etc/ld.so.conf.d/cuda.conf",
            "deleted",
            ("loader", "/etc/ld.so.conf.d/cuda.conf", "present", ""),
        ),
        (
            "/usr/lib/x86_64-linux-gnu/libcudnn_ops.so.9",
            "created",
            ("cudnn", "/usr/lib/x86_64-linux-gnu/libcudnn_ops.so.9", "", "created"),
        ),
        ("/usr/lib/x86_64-linux-gnu/libssl.so.3", "created", None),
        (f"{CUDA}/bin", "deleted", ("toolkit", CUDA, "present", "modified")),  # itself
        ("/usr/local/cuda-12.4/nvvm/lib64/libnvvm.so", "modified", None),  # not watched
    ],
)
def test_classify(linux, system_path, what, expected):
    root, inventory = linux
    targets = watch_targets(inventory, Root(str(root)), "linux")
    real = os.path.normpath(Root(str(root)).path(system_path))
    change = classify(real, targets, what=what, at="2025-01-01T00:00:00+00:00")
    got = change and (change.kind.value, change.subject, change.before, change.after)
    assert got == expected
    if change:
        assert change.at == "2025-01-01T00:00:00+00:00"


def test_the_match_names_the_tree_to_settle(linux):
    root, inventory = linux
    index = TargetIndex(watch_targets(inventory, Root(str(root)), "linux"))
    real_cuda = os.path.normpath(Root(str(root)).path(CUDA))
    change, tree = index.match(f"{real_cuda}/bin/nvcc", what="modified")
    assert (change.subject, tree) == (CUDA, real_cuda)
    change, tree = index.match(
        f"{real_cuda}/targets/x86_64-linux/lib/libcudnn.so.9", what="created"
    )
    assert (change.kind, tree) == (ChangeKind.CUDNN, real_cuda)
    change, tree = index.match(os.path.join(str(root), "usr/local/cuda-12.9"), what="created")
    assert (change.subject, tree) == ("/usr/local/cuda-12.9", "")


def test_windows_layout_and_case_insensitive_names(tmp_path):
    base = "C:\\Program Files\\NVIDIA GPU Computing Toolkit\\CUDA"
    for sub in ("bin", "lib/x64", "include"):
        make(tmp_path, f"/C/Program Files/NVIDIA GPU Computing Toolkit/CUDA/v12.4/{sub}")
    inventory = Inventory(
        host=HostInfo(os="windows"),
        toolkits=(CudaToolkit(f"{base}\\v12.4", "12.4", origin="CUDA_PATH"),),
        environment=EnvironmentInfo(variables=(("ProgramFiles", "C:\\Program Files"),)),
    )
    targets = watch_targets(inventory, Root(str(tmp_path)), "windows")
    by_path = {t.path: t for t in targets}
    assert set(by_path) == {
        base,
        f"{base}\\v12.4",
        f"{base}\\v12.4\\bin",
        f"{base}\\v12.4\\lib\\x64",
        f"{base}\\v12.4\\include",
        "C:\\Program Files",  # for NVIDIA\CUDNN, which does not exist yet
    }
    assert by_path["C:\\Program Files"].patterns == ("NVIDIA",)
    parent = os.path.join(str(tmp_path), "C", "Program Files", "NVIDIA GPU Computing Toolkit")
    change = classify(
        os.path.join(parent, "CUDA", "V12.9"), targets, what="created", os_name="windows"
    )
    assert change is not None
    assert (change.kind, change.subject) == (ChangeKind.TOOLKIT, f"{base}\\V12.9")
    dll = os.path.join(parent, "CUDA", "v12.4", "bin", "CUDNN64_9.DLL")
    change = classify(dll, targets, what="created", os_name="windows")
    assert change is not None and change.kind is ChangeKind.CUDNN


@pytest.mark.parametrize(
    ("name", "noise"),
    [
        (".nvcc.swp", True),
        ("version.json~", True),
        ("libcudart.so.12.dpkg-new", True),
        ("cuda.conf.rpmnew", True),
        ("4913", True),
        (".#cuda.conf", True),
        ("#cuda.conf#", True),
        ("__pycache__", True),
        ("module.cpython-311.pyc", True),
        ("libcudnn.so.9;6571a3b2", True),
        ("libcudnn.so.9", False),
        ("cuda-12.9", False),
        ("ld.so.cache", False),
    ],
)
def test_noise(name, noise):
    assert is_noise(name) is noise


def test_nothing_to_watch_when_nothing_exists(tmp_path):
    targets = watch_targets(Inventory(host=HostInfo(os="linux")), Root(str(tmp_path)), "linux")
    # Only the root itself exists: it is watched for /usr, /opt and /etc to appear.
    assert {t.path for t in targets} == {"/"}
    assert set(next(iter(targets)).patterns) >= {"usr", "opt"}
