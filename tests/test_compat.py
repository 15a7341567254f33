"""The fact tables load and answer the questions the rules ask."""

import csv
import io

import pytest

from monitor import compat


@pytest.mark.parametrize(
    "name", ["tensorflow_builds.csv", "cuda_driver.csv", "libraries.csv", "gpu_arch.csv"]
)
def test_every_row_cites_a_source(name):
    rows = list(csv.DictReader(io.StringIO(compat.data_text(name))))
    assert rows
    assert all(row["source"].strip() for row in rows)


def test_tf_build_matches_on_major_minor():
    build = compat.tf_build("2.21.0", "linux")
    assert (build.cuda, build.cudnn, build.python_min, build.python_max) == (
        "12.5",
        "9.3",
        "3.10",
        "3.13",
    )
    assert compat.tf_build("2.15.0.post1", "linux").cuda == "12.2"
    assert compat.tf_build("2.11.0", "windows").gpu_supported is False
    assert compat.tf_build("2.10.1", "windows").gpu_supported is True
    assert compat.tf_build("3.0", "linux") is None
    assert compat.tf_build("garbage", "linux") is None


def test_toolkit_min_driver_picks_the_release_row():
    assert compat.toolkit_min_driver("12.5.1", "linux").min_driver == "555.42.06"
    assert compat.toolkit_min_driver("12.3", "linux").min_driver == "545.23.06"
    assert compat.toolkit_min_driver("11.2", "windows").min_driver == "460.82"
    assert compat.toolkit_min_driver("99.1", "linux") is None


def test_minor_compat_floor():
    assert compat.minor_compat_min_driver("12.5.1", "linux").min_driver == "525.60.13"
    assert compat.minor_compat_min_driver("11.2", "windows").min_driver == "452.39"
    assert compat.minor_compat_min_driver("10.1", "linux") is None


def test_required_libraries_for_tf_2_21_linux():
    names = {n.file_name: n for n in compat.required_libraries("12.5.1", "9", "linux")}
    assert names["libcudart.so.12"].required
    assert names["libcudnn.so.9"].required
    assert names["libcuda.so.1"].required
    assert not names["libcupti.so.12"].required
    assert not names["libcurand.so.10"].required  # TF 2.21 does not dlopen cuRAND
    assert not any(n.endswith(".dll") for n in names)


def test_required_libraries_for_tf_2_10_windows_include_vc_runtime():
    names = {n.file_name for n in compat.required_libraries("64_112", "64_8", "windows")}
    assert {"cudart64_110.dll", "cudnn64_8.dll", "nvcuda.dll", "msvcp140_1.dll"} <= names


def test_gpu_arch():
    assert compat.gpu_arch("8.6").architecture == "Ampere"
    assert compat.gpu_arch("12.0").architecture == "Blackwell"
    assert compat.gpu_arch("") is None


def test_build_version_reads_windows_dll_suffixes():
    assert compat.build_version("64_112") == "11.2"
    assert compat.build_version("64_8") == "8"
    assert compat.build_version("64_100") == "10.0"
    assert compat.build_version("12.5.1") == "12.5.1"
    assert compat.build_version("64_x") is None
    assert compat.build_version("") is None
