"""The GPU load test with the real tensorflow 2.21.0 wheel, healthy and broken on purpose.

The cached venv holds TF 2.21 and nvidia-cuda-runtime-cu12 only (no cuDNN / cuBLAS wheels),
so TensorFlow sets up no GPU here even on a machine that has one: the truthful outcome is
"cpu-only", with TensorFlow itself proven to work by the CPU matmul and the Keras step.
Broken variants are made on hard-link copies of the venv (files deleted or `pip uninstall`,
never written) or through the child's environment (LD_LIBRARY_PATH).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest
import tfvenv
from stubs import build_library

from monitor.loadtest.runner import run_load_test
from monitor.model import Finding, LoadTestResult, Severity

pytestmark = pytest.mark.integration

TIMEOUT = 300.0  # generous: a cold page cache makes `import tensorflow` slow on CI


def text_of(finding: Finding) -> str:
    return " ".join([finding.title, finding.detail, *(v for _, v in finding.evidence)])


def errors(result: LoadTestResult) -> list[Finding]:
    return [f for f in result.findings if f.severity is Severity.ERROR]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "LD_PRELOAD")}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    env.update(extra)
    return env


def assert_import_failed(result: LoadTestResult) -> list[Finding]:
    assert result.outcome == "failed" and not result.ok
    assert result.last_step == "import"
    assert result.exit_code == 1
    assert [(s.name, s.ok) for s in result.steps] == [("import", False)]
    found = errors(result)
    assert found and all(f.id.startswith("loadtest-") for f in found)
    return found


def test_cpu_only_run_of_the_real_tensorflow(tf_python, record_property):
    started = time.perf_counter()
    result = run_load_test(str(tf_python), timeout=TIMEOUT, env=clean_env())
    total = time.perf_counter() - started
    record_property("load_test_seconds", round(total, 2))
    record_property("import_seconds", result.import_seconds)
    record_property("cpu_gflops", result.cpu_gflops)
    print(
        f"load test, real TF 2.21, CPU only: {total:.1f} s in all, import "
        f"{result.import_seconds:.2f} s, CPU matmul {result.cpu_gflops} GFLOP/s"
    )

    assert result.outcome == "cpu-only", (result.detail, result.stderr_tail[-2000:])
    assert not result.ok and result.exit_code == 0 and result.signal is None
    assert result.tf_version == "2.21.0"
    assert result.built_with_cuda is True
    assert ("cuda_version", "12.5.1") in result.build_info
    assert (result.physical_gpus, result.logical_gpus) == (0, 0)
    assert result.import_seconds and result.import_seconds > 0
    assert result.cpu_gflops and result.cpu_gflops > 0
    assert result.gflops is None and result.device == "CPU"
    steps = {s.name: s for s in result.steps}
    assert steps["cpu_matmul"].ok and "matches the CPU" in steps["cpu_matmul"].detail
    assert steps["train"].ok  # Keras Conv2D + Dense fit step, on the CPU
    assert "matmul" not in steps and "memory" not in steps
    site = tfvenv.site_packages(tf_python.parent.parent)
    assert f"{site}/tensorflow/libtensorflow_framework.so.2" in result.loaded_libraries
    assert f"{site}/nvidia/cuda_runtime/lib/libcudart.so.12" in result.loaded_libraries
    # The truthful "no GPU": one finding with TensorFlow's own reason, and that TF itself works.
    no_gpu = _no_gpu_finding(result)
    assert "cuInit" in no_gpu.detail or "no GPU" in no_gpu.detail.replace("No GPU", "no GPU")
    assert "TensorFlow itself works" in no_gpu.detail


def _no_gpu_finding(result):
    """The one finding that says TF found no GPU and why: the cause the classifier named
    (with the CPU fallback folded in), or the fallback finding itself."""
    (finding,) = [
        f
        for f in result.findings
        if f.id == "loadtest-cpu-fallback" or "TensorFlow itself works" in f.detail
    ]
    return finding


def test_loaded_library_matches_the_inventory(tf_python, tmp_path):
    """The cudart the child loads is the one the loader probe predicted; an LD_LIBRARY_PATH
    copy set only for the run (not when the inventory was taken) is reported."""
    from monitor.facts.collect import collect_inventory

    env = clean_env()
    inventory = collect_inventory(env=env, pythons=[str(tf_python)])
    result = run_load_test(str(tf_python), inventory=inventory, timeout=TIMEOUT, env=env)
    assert result.outcome == "cpu-only"
    assert "loadtest-loaded-differs" not in {f.id for f in result.findings}

    site = tfvenv.site_packages(tf_python.parent.parent)
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    copy = shadow / "libcudart.so.12"
    shutil.copyfile(site / "nvidia/cuda_runtime/lib/libcudart.so.12", copy)
    shadowed = run_load_test(
        str(tf_python),
        inventory=inventory,
        timeout=TIMEOUT,
        env=clean_env(LD_LIBRARY_PATH=str(shadow)),
    )
    assert str(copy) in shadowed.loaded_libraries
    (differs,) = [f for f in shadowed.findings if f.id == "loadtest-loaded-differs"]
    evidence = dict(differs.evidence)
    assert evidence["loaded"] == str(copy)
    assert evidence["predicted"] == f"{site}/nvidia/cuda_runtime/lib/libcudart.so.12"


def test_deleted_framework_library_breaks_the_import(venv_copy):
    copy = venv_copy()
    framework = tfvenv.site_packages(copy) / "tensorflow/libtensorflow_framework.so.2"
    framework.unlink()
    result = run_load_test(str(tfvenv.venv_python(copy)), timeout=TIMEOUT, env=clean_env())
    found = assert_import_failed(result)
    assert {f.id for f in found} & {"loadtest-tf-import-broken", "loadtest-library-load-failed"}
    assert any("libtensorflow_framework.so.2" in text_of(f) for f in found)
    assert "cannot open shared object file" in result.stderr_tail


def test_deleted_pywrap_internal_is_not_needed_by_tf_221(venv_copy):
    """TF 2.21 splits its Python bindings: without _pywrap_tensorflow_internal.so it still
    imports and computes. The load test says so, whatever the file inventory thinks."""
    copy = venv_copy()
    (tfvenv.site_packages(copy) / "tensorflow/python/_pywrap_tensorflow_internal.so").unlink()
    result = run_load_test(str(tfvenv.venv_python(copy)), timeout=TIMEOUT, env=clean_env())
    assert result.outcome == "cpu-only", result.detail
    assert not any(p.endswith("_pywrap_tensorflow_internal.so") for p in result.loaded_libraries)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "file too short"), (b"\x00garbage, not ELF\n" * 64, "invalid ELF header")],
    ids=["empty", "garbage"],
)
def test_broken_framework_on_ld_library_path_is_named(tf_python, tmp_path, content, message):
    """LD_LIBRARY_PATH is searched before TF's RUNPATH: a bad libtensorflow_framework.so.2
    there breaks `import tensorflow`, and the finding names that file."""
    stub = tmp_path / "libtensorflow_framework.so.2"
    stub.write_bytes(content)
    result = run_load_test(
        str(tf_python), timeout=TIMEOUT, env=clean_env(LD_LIBRARY_PATH=str(tmp_path))
    )
    found = assert_import_failed(result)
    assert any(str(stub) in text_of(f) for f in found), [text_of(f) for f in found]
    assert f"{stub}: {message}" in result.stderr_tail


def test_elf_stub_framework_on_ld_library_path_breaks_the_import(tf_python, tmp_path):
    """A real ELF stub with the right soname but none of TF's symbols: the loader takes it,
    then the first symbol TF needs is missing (the error names TF's library, not the stub)."""
    build_library(tmp_path, "libtensorflow_framework.so.2", {"tfStubVersion": "*v = 2; return 0;"})
    result = run_load_test(
        str(tf_python), timeout=TIMEOUT, env=clean_env(LD_LIBRARY_PATH=str(tmp_path))
    )
    found = assert_import_failed(result)
    assert "undefined symbol" in result.stderr_tail
    assert any("undefined symbol" in text_of(f) for f in found)


def test_removed_cuda_runtime_wheel(venv_copy):
    """Without nvidia-cuda-runtime-cu12, TF 2.21 imports and computes on the CPU; its log
    blames "cuda drivers", the finding says it is libcudart that is missing."""
    copy = venv_copy()
    python = tfvenv.venv_python(copy)
    subprocess.run(
        [str(python), "-m", "pip", "uninstall", "--yes", "--quiet", "nvidia-cuda-runtime-cu12"],
        check=True,
    )
    result = run_load_test(str(python), timeout=TIMEOUT, env=clean_env())
    assert result.outcome == "cpu-only", result.detail
    assert result.cpu_gflops and result.cpu_gflops > 0
    assert not any("libcudart" in p for p in result.loaded_libraries)
    assert "Could not find cuda drivers" in result.stderr_tail
    assert "libcudart.so.12" in _no_gpu_finding(result).detail
