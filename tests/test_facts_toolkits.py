"""CUDA toolkit probe over fake machines laid out in tmp dirs (the Root seam)."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import stat
import tempfile
import time
from pathlib import Path

import pytest

from monitor.facts import toolkits
from monitor.facts.paths import Root
from monitor.facts.toolkits import probe_toolkits
from monitor.model import CudaToolkit

NVCC_12_2 = """nvcc: NVIDIA (R) Cuda compiler driver
Copyright (c) 2005-2023 NVIDIA Corporation
Built on Tue_Aug_15_22:02:13_PDT_2023
Cuda compilation tools, release 12.2, V12.2.140
Build cuda_12.2.r12.2/compiler.33191640_0
"""
WIN_CUDA = "C:\\Program Files\\NVIDIA GPU Computing Toolkit\\CUDA"


def put(root: Path, system_path: str, content: str | bytes = "", mode: int | None = None) -> Path:
    """Write a file of the fake machine (a Windows path lands under root/C/...)."""
    path = Path(Root(str(root)).path(system_path))
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    if mode is not None:
        path.chmod(mode)
    return path


def link(root: Path, system_path: str, target: str) -> None:
    path = Path(Root(str(root)).path(system_path))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)


def version_json(version: str) -> str:
    return json.dumps(
        {
            "cuda": {"name": "CUDA SDK", "version": version},
            "cuda_cudart": {"name": "CUDA Runtime (cudart)", "version": version},
        }
    )


def nvcc_script(root: Path, system_path: str, body: str) -> Path:
    return put(root, system_path, f"#!/bin/sh\n{body}\n", mode=0o755)


def fake_nvcc(root: Path, toolkit: str, marker: Path | None = None) -> None:
    """An nvcc that must not be run when a version file answers: it leaves `marker` if run."""
    body = f"touch {marker}; exit 1" if marker else "exit 1"
    nvcc_script(root, f"{toolkit}/bin/nvcc", body)


def by_root(found: tuple[CudaToolkit, ...]) -> dict[str, CudaToolkit]:
    return {toolkit.root: toolkit for toolkit in found}


def test_cuda_12_4_with_symlink(tmp_path):
    """NVIDIA's deb: /usr/local/cuda -> /etc/alternatives/cuda -> /usr/local/cuda-12.4."""
    put(tmp_path, "/usr/local/cuda-12.4/version.json", version_json("12.4.1"))
    marker = tmp_path / "nvcc-ran"
    fake_nvcc(tmp_path, "/usr/local/cuda-12.4", marker)
    link(tmp_path, "/etc/alternatives/cuda", "/usr/local/cuda-12.4")
    link(tmp_path, "/usr/local/cuda", "/etc/alternatives/cuda")
    env = {"PATH": "/usr/local/cuda/bin:/usr/bin:/bin", "HOME": "/home/ada"}

    found = probe_toolkits(Root(str(tmp_path)), env, "linux")

    assert found == (
        CudaToolkit(
            root="/usr/local/cuda-12.4",
            version="12.4.1",
            version_source="version.json",
            origin="/usr/local/cuda -> cuda-12.4; /usr/local/cuda-12.4; nvcc on PATH",
            active=True,
        ),
    )
    assert not marker.exists(), "nvcc must not run when version.json answers"


def test_two_toolkits_path_order(tmp_path):
    """11.8 and 12.2 side by side; 12.2's bin comes first on PATH, so it wins over CUDA_HOME."""
    for version, full in (("11.8", "11.8.89"), ("12.2", "12.2.140")):
        put(tmp_path, f"/usr/local/cuda-{version}/version.json", version_json(full))
        fake_nvcc(tmp_path, f"/usr/local/cuda-{version}")
    env = {
        "PATH": "/usr/local/cuda-12.2/bin:/usr/local/cuda-11.8/bin:/usr/bin",
        "CUDA_HOME": "/usr/local/cuda-11.8",
    }

    found = probe_toolkits(Root(str(tmp_path)), env, "linux")

    assert [(t.root, t.version, t.active) for t in found] == [
        ("/usr/local/cuda-11.8", "11.8.89", False),
        ("/usr/local/cuda-12.2", "12.2.140", True),
    ]
    assert found[0].origin == "/usr/local/cuda-11.8; CUDA_HOME"
    assert found[1].origin == "/usr/local/cuda-12.2; nvcc on PATH"


def test_cuda_home_only(tmp_path):
    """A toolkit in a non-standard place, known only through CUDA_HOME (no nvcc on PATH)."""
    put(tmp_path, "/opt/nvidia/cuda-11.2/version.txt", "CUDA Version 11.2.152\n")
    env = {"CUDA_HOME": "/opt/nvidia/cuda-11.2/", "PATH": "/usr/bin:/bin"}

    found = probe_toolkits(Root(str(tmp_path)), env, "linux")

    assert found == (
        CudaToolkit(
            root="/opt/nvidia/cuda-11.2",
            version="11.2.152",
            version_source="version.txt",
            origin="CUDA_HOME",
            active=True,
        ),
    )


def test_cuda_home_points_nowhere_falls_back_to_cuda_path(tmp_path):
    put(tmp_path, "/opt/cuda-12.1/version.json", version_json("12.1.1"))
    env = {"CUDA_HOME": "/opt/removed-cuda", "CUDA_PATH": "/opt/cuda-12.1"}

    found = by_root(probe_toolkits(Root(str(tmp_path)), env, "linux"))

    missing = found["/opt/removed-cuda"]
    assert missing.error == "CUDA_HOME=/opt/removed-cuda: does not exist"
    assert missing.version is None and not missing.active
    assert found["/opt/cuda-12.1"].active
    assert found["/opt/cuda-12.1"].origin == "CUDA_PATH"


def test_conda_cuda(tmp_path):
    """conda's cudatoolkit 11.8: no nvcc, no version.json; the conda-meta record tells."""
    prefix = "/home/ada/miniconda3/envs/tf"
    record = {"name": "cudatoolkit", "version": "11.8.0", "build": "h6a678d5_0"}
    put(tmp_path, f"{prefix}/conda-meta/cudatoolkit-11.8.0-h6a678d5_0.json", json.dumps(record))
    put(tmp_path, f"{prefix}/conda-meta/python-3.10.13-h955ad1f_0.json", "{}")
    put(tmp_path, f"{prefix}/lib/libcudart.so.11.8.89", b"\x7fELF")
    env = {"CONDA_PREFIX": prefix, "PATH": f"{prefix}/bin:/usr/bin"}

    found = probe_toolkits(Root(str(tmp_path)), env, "linux")

    assert found == (
        CudaToolkit(root=prefix, version="11.8.0", version_source="conda-meta", origin="conda"),
    )


def test_conda_cuda_12_nvcc_on_path(tmp_path):
    """conda's cuda-nvcc 12.4: the cuda-version record answers before nvcc would be run."""
    prefix = "/opt/conda/envs/cu124"
    record = {"name": "cuda-version", "version": "12.4", "build": "h3060b56_3"}
    put(tmp_path, f"{prefix}/conda-meta/cuda-version-12.4-h3060b56_3.json", json.dumps(record))
    marker = tmp_path / "nvcc-ran"
    fake_nvcc(tmp_path, prefix, marker)
    env = {"CONDA_PREFIX": prefix, "PATH": f"{prefix}/bin:/usr/bin"}

    found = probe_toolkits(Root(str(tmp_path)), env, "linux")

    assert found == (
        CudaToolkit(
            root=prefix,
            version="12.4",
            version_source="conda-meta",
            origin="nvcc on PATH; conda",
            active=True,
        ),
    )
    assert not marker.exists()


def test_conda_env_without_cuda_is_not_a_toolkit(tmp_path):
    prefix = "/home/ada/miniconda3/envs/plain"
    put(tmp_path, f"{prefix}/conda-meta/python-3.11.7-h955ad1f_0.json", "{}")
    put(tmp_path, f"{prefix}/bin/python", "", mode=0o755)

    assert probe_toolkits(Root(str(tmp_path)), {"CONDA_PREFIX": prefix}, "linux") == ()


def test_windows_cuda_path_v11_2_and_v12_1(tmp_path):
    """The Windows installer sets CUDA_PATH to the last installed and one CUDA_PATH_V* each."""
    put(tmp_path, f"{WIN_CUDA}\\v11.2\\version.txt", "CUDA Version 11.2.152\r\n")
    put(tmp_path, f"{WIN_CUDA}\\v12.1\\version.json", version_json("12.1.105"))
    env = {
        "CUDA_PATH": f"{WIN_CUDA}\\v12.1",
        "CUDA_PATH_V11_2": f"{WIN_CUDA}\\v11.2",
        "CUDA_PATH_V12_1": f"{WIN_CUDA}\\v12.1\\",
        "Path": "C:\\Windows\\system32;C:\\Windows",
    }

    found = probe_toolkits(Root(str(tmp_path)), env, "windows")

    assert found == (
        CudaToolkit(
            root=f"{WIN_CUDA}\\v12.1",
            version="12.1.105",
            version_source="version.json",
            origin="CUDA_PATH; CUDA_PATH_V12_1; Program Files",
            active=True,
        ),
        CudaToolkit(
            root=f"{WIN_CUDA}\\v11.2",
            version="11.2.152",
            version_source="version.txt",
            origin="CUDA_PATH_V11_2; Program Files",
        ),
    )


def test_windows_nvcc_on_path_is_active_and_program_files_env_is_used(tmp_path):
    program_files = "D:\\Apps"
    base = f"{program_files}\\NVIDIA GPU Computing Toolkit\\CUDA"
    put(tmp_path, f"{base}\\v11.8\\version.json", version_json("11.8.89"))
    put(tmp_path, f"{base}\\v12.4\\version.json", version_json("12.4.131"))
    put(tmp_path, f"{base}\\v11.8\\bin\\nvcc.exe", b"MZ")
    env = {
        "PROGRAMFILES": program_files,
        "CUDA_PATH": f"{base}\\v12.4",
        "PATH": f"{base}\\v11.8\\bin;C:\\Windows\\system32",
    }

    found = by_root(probe_toolkits(Root(str(tmp_path)), env, "windows"))

    assert found[f"{base}\\v11.8"].active
    assert found[f"{base}\\v11.8"].origin == "Program Files; nvcc on PATH"
    assert not found[f"{base}\\v12.4"].active


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param(b'{"cuda": {"name": "CUDA SDK", "version": "12.4', id="truncated"),
        pytest.param(b'{"cuda": "12.4.1"}', id="cuda-not-an-object"),
        pytest.param(b'{"cuda": {"version": 12.4}}', id="version-a-number"),
        pytest.param(b'["12.4.1"]', id="a-list"),
        pytest.param(b"\x7fELF\x02\x01\x01\x00\x00\x00binary", id="binary"),
        pytest.param('{"cuda": {"version": "\u00e9\u00e9"}}'.encode(), id="not-a-version"),
    ],
)
def test_garbage_version_json(tmp_path, garbage):
    """A broken version.json is reported, and version.txt still gives the version."""
    put(tmp_path, "/usr/local/cuda-12.4/version.json", garbage)
    put(tmp_path, "/usr/local/cuda-12.4/version.txt", "CUDA Version 12.4.131\n")

    (found,) = probe_toolkits(Root(str(tmp_path)), {}, "linux")

    assert (found.version, found.version_source) == ("12.4.131", "version.txt")
    assert found.error and found.error.startswith("version.json: ")


def test_garbage_version_json_and_nothing_else(tmp_path):
    put(tmp_path, "/usr/local/cuda-12.4/version.json", "{not json")

    (found,) = probe_toolkits(Root(str(tmp_path)), {}, "linux")

    assert found.version is None and found.version_source == ""
    assert found.error.startswith("version.json: not valid JSON")


def test_version_txt_only(tmp_path):
    """CUDA <= 11.0 wrote only version.txt."""
    put(tmp_path, "/usr/local/cuda-10.1/version.txt", "CUDA Version 10.1.243\n")

    found = probe_toolkits(Root(str(tmp_path)), {}, "linux")

    assert found == (
        CudaToolkit(
            root="/usr/local/cuda-10.1",
            version="10.1.243",
            version_source="version.txt",
            origin="/usr/local/cuda-10.1",
        ),
    )


def test_nvcc_only(tmp_path):
    """No version file (pip's nvidia-cuda-nvcc layout): `nvcc --version` is asked."""
    nvcc_script(tmp_path, "/usr/local/cuda-12.2/bin/nvcc", f"cat <<'EOF'\n{NVCC_12_2}EOF")

    found = probe_toolkits(Root(str(tmp_path)), {}, "linux")

    assert found == (
        CudaToolkit(
            root="/usr/local/cuda-12.2",
            version="12.2.140",
            version_source="nvcc",
            origin="/usr/local/cuda-12.2",
        ),
    )


def test_nvcc_wrapper_script_on_path(tmp_path):
    """/usr/local/bin/nvcc is `exec /usr/local/cuda-13.0/bin/nvcc "$@"`: the toolkit is 13.0."""
    nvcc_script(tmp_path, "/usr/local/cuda-13.0/bin/nvcc", "echo 'release 13.0, V13.0.88'")
    nvcc_script(tmp_path, "/usr/local/bin/nvcc", 'exec /usr/local/cuda-13.0/bin/nvcc "$@"')
    env = {"PATH": "/usr/local/bin:/usr/bin"}

    found = probe_toolkits(Root(str(tmp_path)), env, "linux")

    assert [(t.root, t.version, t.origin, t.active) for t in found] == [
        ("/usr/local/cuda-13.0", "13.0.88", "/usr/local/cuda-13.0; nvcc on PATH", True)
    ]


def test_nvcc_that_hangs_is_cut_off(tmp_path, monkeypatch):
    monkeypatch.setattr(toolkits, "NVCC_TIMEOUT_S", 0.5)
    nvcc_script(tmp_path, "/usr/local/cuda-12.2/bin/nvcc", "sleep 30")

    started = time.monotonic()
    (found,) = probe_toolkits(Root(str(tmp_path)), {}, "linux")

    assert time.monotonic() - started < 5
    assert found.version is None
    assert found.error == "nvcc --version did not answer within 0.5 s"


def test_nvcc_that_prints_garbage(tmp_path):
    nvcc_script(tmp_path, "/usr/local/cuda-12.2/bin/nvcc", "echo 'Segmentation fault'; exit 139")

    (found,) = probe_toolkits(Root(str(tmp_path)), {}, "linux")

    assert found.version is None
    assert found.error == "nvcc --version (exit 139) gave no release: Segmentation fault"


def test_leftover_toolkit_dir_without_version(tmp_path):
    """What `apt remove` leaves behind: a directory with a few files and no version."""
    put(tmp_path, "/usr/local/cuda-11.8/extras/CUPTI/lib64/.keep")

    (found,) = probe_toolkits(Root(str(tmp_path)), {}, "linux")

    assert found.version is None
    assert "no version.json, version.txt or bin/nvcc" in found.error


def test_symlink_loop_as_usr_local_cuda(tmp_path):
    link(tmp_path, "/usr/local/cuda", "/etc/alternatives/cuda")
    link(tmp_path, "/etc/alternatives/cuda", "/usr/local/cuda")
    env = {"CUDA_HOME": "/usr/local/cuda", "PATH": "/usr/local/cuda/bin:/usr/bin"}

    found = probe_toolkits(Root(str(tmp_path)), env, "linux")

    assert [(t.root, t.active, t.version) for t in found] == [("/usr/local/cuda", False, None)]
    assert found[0].origin == "/usr/local/cuda; CUDA_HOME"
    assert found[0].error.startswith("/usr/local/cuda: symlink loop")


def test_dangling_usr_local_cuda(tmp_path):
    """The toolkit was removed but the alternatives link stayed."""
    link(tmp_path, "/usr/local/cuda", "/usr/local/cuda-12.4")

    (found,) = probe_toolkits(Root(str(tmp_path)), {}, "linux")

    assert found.root == "/usr/local/cuda"
    assert found.error == ("/usr/local/cuda: points to /usr/local/cuda-12.4, which does not exist")


def _probe_as_nobody(root: str, env: dict[str, str]) -> tuple[CudaToolkit, ...]:
    """Run the probe where permissions bite. We run as root in CI, and root reads everything:
    a forked child drops to uid/gid 65534 first (or, when not root, probe directly)."""
    if os.geteuid() != 0:
        return probe_toolkits(Root(root), env, "linux")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's coverage is not collected
        status = 1
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            with os.fdopen(write_end, "wb") as out:
                pickle.dump(probe_toolkits(Root(root), env, "linux"), out)
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as source:
        data = source.read()
    _, status = os.waitpid(pid, 0)
    assert status == 0, "the unprivileged probe failed"
    return pickle.loads(data)


@pytest.fixture
def shared_tmp():
    """A tmp dir an unprivileged uid can walk into (pytest's own tmp is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="tfsm-toolkits-"))
    path.chmod(0o755)
    yield path
    for directory, _, _ in os.walk(path):
        os.chmod(directory, 0o755)
    shutil.rmtree(path)


def test_unreadable_toolkit_dir(shared_tmp):
    """/usr/local/cuda-12.4 is mode 000 (a bad umask or a half-done chmod): not silently fine."""
    put(shared_tmp, "/usr/local/cuda-12.4/version.json", version_json("12.4.1"))
    fake_nvcc(shared_tmp, "/usr/local/cuda-12.4")
    for directory in ("usr", "usr/local"):
        (shared_tmp / directory).chmod(0o755)
    (shared_tmp / "usr/local/cuda-12.4").chmod(0)

    (found,) = _probe_as_nobody(str(shared_tmp), {"PATH": "/usr/local/cuda-12.4/bin"})

    assert found.root == "/usr/local/cuda-12.4"
    assert found.version is None and not found.active
    assert found.error == (
        "version.json: cannot read: Permission denied; version.txt: cannot read: Permission denied"
    )
    assert stat.S_IMODE((shared_tmp / "usr/local/cuda-12.4").stat().st_mode) == 0


def test_nothing_installed(tmp_path):
    (tmp_path / "usr/local").mkdir(parents=True)
    assert probe_toolkits(Root(str(tmp_path)), {"PATH": "/usr/bin:/bin"}, "linux") == ()
