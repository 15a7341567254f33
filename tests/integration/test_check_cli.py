"""End to end: `python -m monitor check --json --python <TF venv>` as a user runs it.

The real tensorflow 2.21.0 wheel, healthy and broken on purpose (a deleted TF library, an
uninstalled nvidia wheel, a wrong libcudart on LD_LIBRARY_PATH); each failure must be named
by its finding id. This machine has no GPU and no NVIDIA driver, so even the healthy venv is
"broken" (driver-not-found).
"""

from __future__ import annotations

import ctypes.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tfvenv
from stubs import build_library

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
FINDING_KEYS = {"id", "severity", "link", "title", "detail", "evidence", "fix", "subject"}
HAS_NVML = ctypes.util.find_library("nvidia-ml") is not None


def run_check(python: Path, **env_changes: str) -> tuple[int, dict]:
    """Run the CLI in a child process; returns (exit status, parsed JSON)."""
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    env.update(env_changes)
    proc = subprocess.run(
        [sys.executable, "-m", "monitor", "check", "--json", "--python", str(python)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )
    assert proc.returncode in (0, 1, 2), f"check failed ({proc.returncode}): {proc.stderr}"
    report = json.loads(proc.stdout)
    assert report["exit_code"] == proc.returncode
    return proc.returncode, report


def findings(report: dict, finding_id: str) -> list[dict]:
    return [f for f in report["findings"] if f["id"] == finding_id]


def mentions(finding: dict, text: str) -> bool:
    return text in json.dumps(finding)


def test_healthy_tf_venv_without_a_gpu(tf_python):
    code, report = run_check(tf_python)

    assert report["schema"] == 1
    assert {"schema", "verdict", "exit_code", "findings", "inventory"} <= set(report)
    for finding in report["findings"]:
        assert set(finding) >= FINDING_KEYS, finding
    ids = {f["id"] for f in report["findings"]}
    assert "tf-files-missing" not in ids
    # the wheel provides libcudart.so.12 through TF's RUNPATH: not among the missing libraries
    assert not any(mentions(f, "libcudart.so.12") for f in findings(report, "library-not-found"))
    pythons = report["inventory"]["pythons"]
    assert [p["executable"] for p in pythons] == [str(tf_python)]
    assert pythons[0]["tensorflow"]["version"] == "2.21.0"
    if HAS_NVML:
        pytest.skip("this machine has an NVIDIA driver: the no-GPU verdict does not apply")
    assert (code, report["verdict"]) == (2, "broken")
    assert "driver-not-found" in ids


def test_deleted_framework_library(venv_copy):
    copy = venv_copy()
    framework = tfvenv.site_packages(copy) / "tensorflow/libtensorflow_framework.so.2"
    framework.unlink()
    code, report = run_check(tfvenv.venv_python(copy))
    assert code == 2
    missing = findings(report, "tf-files-missing")
    assert missing and mentions(missing[0], "libtensorflow_framework.so.2")
    assert missing[0]["severity"] == "error"


def test_uninstalled_cuda_runtime_wheel(venv_copy):
    copy = venv_copy()
    python = tfvenv.venv_python(copy)
    subprocess.run(
        [str(python), "-m", "pip", "uninstall", "--yes", "--quiet", "nvidia-cuda-runtime-cu12"],
        check=True,
    )
    code, report = run_check(python)
    assert code == 2
    # Missing wheels are grouped into one finding (subject tensorflow[and-cuda]) that names
    # every missing file and the wheel that provides it.
    not_found = [
        f
        for f in findings(report, "library-not-found")
        if mentions(f, "libcudart.so.12") and mentions(f, "nvidia-cuda-runtime-cu12")
    ]
    assert not_found, [f["id"] + ": " + f["subject"] for f in report["findings"]]
    assert "tf-files-missing" not in {f["id"] for f in report["findings"]}


def test_wrong_libcudart_on_ld_library_path(tf_python, tmp_path):
    # named like CUDA 12's runtime, but it is an 11.x one: the loader would pick it first
    stub = build_library(
        tmp_path / "cuda-11/lib64",
        "libcudart.so.12",
        {"cudaRuntimeGetVersion": "*v = 11080; return 0;"},
        soname="libcudart.so.11.0",
    )
    code, report = run_check(tf_python, LD_LIBRARY_PATH=str(stub.parent))
    assert code == 2
    wrong = findings(report, "library-wrong-version")
    assert wrong, [f["id"] for f in report["findings"]]
    assert any(mentions(f, str(stub)) for f in wrong)
