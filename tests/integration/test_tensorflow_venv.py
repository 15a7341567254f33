"""probe_python against the real tensorflow 2.21.0 wheel, healthy and broken on purpose."""

from __future__ import annotations

import subprocess
import time

import pytest
import tfvenv

from monitor.facts.tensorflow import probe_python

pytestmark = pytest.mark.integration

CUDNN_REQUIREMENT = 'nvidia-cudnn-cu12<10.0,>=9.3.0.75; extra == "and-cuda"'


def test_probe_reads_the_real_tf221_wheel(tf_venv, tf_python, record_property):
    probe_python(str(tf_python))  # warm the page cache
    started = time.perf_counter()
    env = probe_python(str(tf_python))
    elapsed = time.perf_counter() - started
    record_property("probe_seconds", round(elapsed, 4))
    print(f"probe_python on the real TF venv: {elapsed * 1000:.1f} ms")

    site = str(tfvenv.site_packages(tf_venv))
    assert env.error is None
    assert env.prefix == str(tf_venv)
    assert site in env.site_packages
    versions = {d.name: d.version for d in env.distributions}
    assert versions["tensorflow"] == "2.21.0"
    assert versions["nvidia-cuda-runtime-cu12"] == "12.9.79"
    assert "keras" in versions

    tf = env.tensorflow
    assert tf.error is None
    assert (tf.package_dir, tf.distribution, tf.version) == (
        f"{site}/tensorflow",
        "tensorflow",
        "2.21.0",
    )
    assert (tf.is_cuda_build, tf.cuda_version, tf.cudnn_version) == (True, "12.5.1", "9")
    assert tf.compute_capabilities == ("sm_60", "sm_70", "sm_80", "sm_89", "compute_90")
    assert ("cpu_compiler", "clang") in tf.build_info
    for component in (
        "cudnn",
        "cuda_runtime",
        "cublas",
        "cufft",
        "cusparse",
        "nccl",
        "cuda_cupti",
        "cusolver",
    ):
        assert f"{site}/nvidia/{component}/lib" in tf.runpath
    assert len(set(tf.runpath)) == len(tf.runpath)
    assert tf.missing_files == ()
    assert CUDNN_REQUIREMENT in tf.requires
    assert elapsed < 0.5


def test_a_copy_uses_its_own_site_packages_and_spares_the_cache(tf_venv, venv_copy):
    copy = venv_copy()
    env = probe_python(str(tfvenv.venv_python(copy)))
    copy_site = str(tfvenv.site_packages(copy))
    assert env.prefix == str(copy)
    assert env.site_packages == (copy_site,)
    assert env.tensorflow.package_dir == f"{copy_site}/tensorflow"
    (tfvenv.site_packages(copy) / "tensorflow/libtensorflow_cc.so.2").unlink()
    assert (tfvenv.site_packages(tf_venv) / "tensorflow/libtensorflow_cc.so.2").is_file()


def test_a_deleted_framework_library_is_missing(tf_venv, venv_copy):
    copy = venv_copy()
    framework = tfvenv.site_packages(copy) / "tensorflow/libtensorflow_framework.so.2"
    framework.unlink()
    tf = probe_python(str(tfvenv.venv_python(copy))).tensorflow
    assert tf.missing_files == (str(framework),)
    assert tf.version == "2.21.0" and tf.error is None
    # what is left still gives its RUNPATH: libtensorflow_cc.so.2 adds only cusolver
    site = tfvenv.site_packages(copy)
    assert f"{site}/nvidia/cusolver/lib" in tf.runpath
    assert f"{site}/nvidia/cudnn/lib" not in tf.runpath
    assert (tfvenv.site_packages(tf_venv) / "tensorflow/libtensorflow_framework.so.2").is_file()


def test_an_uninstalled_nvidia_wheel_disappears(tf_venv, venv_copy):
    copy = venv_copy()
    python = tfvenv.venv_python(copy)
    subprocess.run(
        [str(python), "-m", "pip", "uninstall", "--yes", "--quiet", "nvidia-cuda-runtime-cu12"],
        check=True,
    )
    env = probe_python(str(python))
    names = {d.name for d in env.distributions}
    assert "nvidia-cuda-runtime-cu12" not in names
    assert {"tensorflow", "keras"} <= names
    assert not (tfvenv.site_packages(copy) / "nvidia/cuda_runtime/lib/libcudart.so.12").exists()
    assert env.tensorflow.missing_files == ()
    cached = tfvenv.site_packages(tf_venv)
    assert (cached / "nvidia/cuda_runtime/lib/libcudart.so.12").is_file()
    assert list(cached.glob("nvidia_cuda_runtime_cu12-*.dist-info"))
