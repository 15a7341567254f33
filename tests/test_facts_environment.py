"""Environment probe: the steering variables and every PATH / LD_LIBRARY_PATH entry."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from monitor.facts.environment import probe_environment
from monitor.facts.paths import Root
from monitor.model import PathEntry

WIN_CUDA = "C:\\Program Files\\NVIDIA GPU Computing Toolkit\\CUDA\\v11.2"

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")


def mkdir(root: Path, system_path: str, mode: int | None = None) -> Path:
    path = Path(Root(str(root)).path(system_path))
    path.mkdir(parents=True, exist_ok=True)
    if mode is not None:
        path.chmod(mode)
    return path


def machine(root: Path) -> Root:
    """A Debian workstation with CUDA 11.8 and 12.4 (/usr/local/cuda -> cuda-12.4)."""
    for directory in (
        "/usr/bin",
        "/bin",
        "/usr/local/bin",
        "/usr/local/cuda-11.8/bin",
        "/usr/local/cuda-12.4/bin",
        "/usr/local/cuda-12.4/lib64",
        "/usr/lib/x86_64-linux-gnu",
        "/home/ada/.local/bin",
    ):
        mkdir(root, directory, 0o755)
    (root / "usr/local/cuda").symlink_to("/usr/local/cuda-12.4")
    return Root(str(root))


def test_variables_sorted_and_only_those_set(tmp_path):
    env = {
        "PATH": "/usr/bin",
        "HOME": "/home/ada",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "CUDA_VISIBLE_DEVICES": "",
        "XLA_FLAGS": "--xla_gpu_cuda_data_dir=/usr/local/cuda",
        "LD_PRELOAD": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
        "CUDA_PATH_V12_4": "/usr/local/cuda-12.4",
        "TF_ENABLE_ONEDNN_OPTS": "0",
        "SHELL": "/bin/bash",
    }

    info = probe_environment(Root(str(tmp_path)), env, "linux")

    assert [name for name, _ in info.variables] == [
        "CUDA_PATH_V12_4",
        "CUDA_VISIBLE_DEVICES",
        "LD_PRELOAD",
        "PATH",
        "TF_CPP_MIN_LOG_LEVEL",
        "TF_ENABLE_ONEDNN_OPTS",
        "XLA_FLAGS",
    ]
    assert info.get("CUDA_VISIBLE_DEVICES") == ""
    assert info.ld_library_path == ()


def test_path_with_missing_entry(tmp_path):
    root = machine(tmp_path)
    env = {"PATH": "/usr/local/cuda-11.8/bin:/opt/removed/bin:/usr/bin"}

    info = probe_environment(root, env, "linux")

    assert info.path == (
        PathEntry("/usr/local/cuda-11.8/bin", is_system=True, cuda_version="11.8"),
        PathEntry("/opt/removed/bin", exists=False, is_dir=False),
        PathEntry("/usr/bin", is_system=True),
    )


def test_path_entry_that_is_a_file(tmp_path):
    root = machine(tmp_path)
    (tmp_path / "usr/bin/python3").write_text("")

    (entry,) = probe_environment(root, {"PATH": "/usr/bin/python3"}, "linux").path

    assert (entry.exists, entry.is_dir) == (True, False)


def test_path_duplicates(tmp_path):
    """Shells that re-source ~/.bashrc append the same directories again: order is kept."""
    root = machine(tmp_path)
    env = {"PATH": "/home/ada/.local/bin:/usr/bin:/bin:/home/ada/.local/bin:/usr/bin"}

    info = probe_environment(root, env, "linux")

    assert [e.path for e in info.path] == [
        "/home/ada/.local/bin",
        "/usr/bin",
        "/bin",
        "/home/ada/.local/bin",
        "/usr/bin",
    ]
    assert info.path[0] == info.path[3] == PathEntry("/home/ada/.local/bin")


def test_world_writable_dir_before_usr_bin(tmp_path):
    """A world-writable directory ahead of /usr/bin lets anyone shadow nvcc or python."""
    root = machine(tmp_path)
    mkdir(tmp_path, "/tmp/tools", 0o777)
    mkdir(tmp_path, "/srv/shared/bin", 0o1777)

    info = probe_environment(root, {"PATH": "/tmp/tools:/srv/shared/bin:/usr/bin"}, "linux")

    assert [(e.path, e.writable_by_others) for e in info.path] == [
        ("/tmp/tools", True),
        ("/srv/shared/bin", True),
        ("/usr/bin", False),
    ]


@needs_root
def test_dir_writable_by_other_users(tmp_path):
    """Group-writable by a non-root group, or owned by another user: others can write too."""
    root = machine(tmp_path)
    group_dir = mkdir(tmp_path, "/opt/team/bin", 0o775)
    os.chown(group_dir, 0, 4242)
    other_dir = mkdir(tmp_path, "/home/bob/bin", 0o755)
    os.chown(other_dir, 4243, 4243)
    root_group_dir = mkdir(tmp_path, "/opt/admin/bin", 0o775)
    os.chown(root_group_dir, 0, 0)
    env = {"PATH": "/opt/team/bin:/home/bob/bin:/opt/admin/bin"}

    info = probe_environment(root, env, "linux")

    assert [e.writable_by_others for e in info.path] == [True, True, False]


def test_ld_library_path_empty_entry(tmp_path):
    """A leading, doubled or trailing ':' makes the loader search the current directory."""
    root = machine(tmp_path)
    env = {"LD_LIBRARY_PATH": ":/usr/local/cuda/lib64::/usr/local/cuda-12.4/lib64:"}

    info = probe_environment(root, env, "linux")

    empty = PathEntry(
        "", exists=False, is_dir=False, note="empty entry: searches the current directory"
    )
    assert info.ld_library_path == (
        empty,
        PathEntry("/usr/local/cuda/lib64", is_system=True, cuda_version="12.4"),
        empty,
        PathEntry("/usr/local/cuda-12.4/lib64", is_system=True, cuda_version="12.4"),
        empty,
    )


def test_relative_entry(tmp_path):
    root = machine(tmp_path)

    (entry,) = probe_environment(root, {"PATH": "node_modules/.bin"}, "linux").path

    assert entry == PathEntry(
        "node_modules/.bin",
        exists=False,
        is_dir=False,
        note="relative entry: depends on the current directory",
    )


def test_unversioned_cuda_dir_reads_version_json(tmp_path):
    """Arch's /opt/cuda is not named after its version: its version.json tells."""
    root = machine(tmp_path)
    mkdir(tmp_path, "/opt/cuda/bin")
    version = {"cuda": {"name": "CUDA SDK", "version": "12.6.2"}}
    (tmp_path / "opt/cuda/version.json").write_text(json.dumps(version))
    mkdir(tmp_path, "/opt/cuda/extras/CUPTI/lib64")
    env = {"PATH": "/opt/cuda/bin", "LD_LIBRARY_PATH": "/opt/cuda/extras/CUPTI/lib64"}

    info = probe_environment(root, env, "linux")

    assert info.path[0].cuda_version == "12.6"
    assert info.ld_library_path[0].cuda_version == "12.6"


def test_symlink_loop_entry(tmp_path):
    root = machine(tmp_path)
    (tmp_path / "opt").mkdir()
    (tmp_path / "opt/loop").symlink_to("/opt/loop")

    (entry,) = probe_environment(root, {"PATH": "/opt/loop/bin"}, "linux").path

    assert (entry.exists, entry.is_dir) == (False, False)
    assert entry.note.startswith("symlink loop")


def test_windows_path_semicolons(tmp_path):
    """Windows: ';' separates, names are case-insensitive, quotes are allowed, no ACLs read."""
    mkdir(tmp_path, f"{WIN_CUDA}\\bin", 0o777)
    mkdir(tmp_path, f"{WIN_CUDA}\\libnvvp")
    mkdir(tmp_path, "C:\\Windows\\System32")
    mkdir(tmp_path, "C:\\Program Files\\Git\\cmd")
    path_value = ";".join(
        (
            f"{WIN_CUDA}\\bin",
            f"{WIN_CUDA}\\libnvvp",
            "C:\\WINDOWS\\system32",
            "C:\\Windows",
            "",
            '"C:\\Program Files\\Git\\cmd"',
            "C:\\Users\\ada\\AppData\\Local\\Missing",
            "\\\\fileserver\\tools",
        )
    )
    env = {
        "Path": path_value,
        "CUDA_PATH": WIN_CUDA,
        "Cuda_Path_V11_2": WIN_CUDA,
        "SystemRoot": "C:\\Windows",
    }

    info = probe_environment(Root(str(tmp_path)), env, "windows")

    assert info.variables == (
        ("CUDA_PATH", WIN_CUDA),
        ("CUDA_PATH_V11_2", WIN_CUDA),
        ("PATH", path_value),
    )
    assert info.path == (
        PathEntry(f"{WIN_CUDA}\\bin", cuda_version="11.2"),
        PathEntry(f"{WIN_CUDA}\\libnvvp", cuda_version="11.2"),
        PathEntry("C:\\WINDOWS\\system32", is_system=True),
        PathEntry("C:\\Windows", is_system=True),
        PathEntry(
            "", exists=False, is_dir=False, note="empty entry: searches the current directory"
        ),
        PathEntry('"C:\\Program Files\\Git\\cmd"'),
        PathEntry("C:\\Users\\ada\\AppData\\Local\\Missing", exists=False, is_dir=False),
        PathEntry(
            "\\\\fileserver\\tools", exists=False, is_dir=False, note="network path: not checked"
        ),
    )


def test_empty_variables_give_no_entries(tmp_path):
    info = probe_environment(Root(str(tmp_path)), {"PATH": "", "LD_LIBRARY_PATH": ""}, "linux")

    assert info.variables == (("LD_LIBRARY_PATH", ""), ("PATH", ""))
    assert info.path == info.ld_library_path == ()
