"""The watched-interpreter probe: real interpreters, fake site-packages trees, broken installs.

Each test makes a real venv (`python -m venv --without-pip`, ~40 ms) and writes dist-info
directories, build_info.py files (copied from the real wheels' formats, see the compat README)
and gcc-built ELF stubs into its site-packages; the real probe then starts the venv's python.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from stubs import build_library

from monitor.facts.interpreter import default_interpreters, start_query
from monitor.facts.paths import Root
from monitor.facts.tensorflow import (
    build_fields,
    probe_python,
    probe_tensorflow,
    read_build_info,
    read_metadata_headers,
    scan_distributions,
)

# build_info.py as found in the wheels (comment headers left out).
BUILD_INFO_221_LINUX = '''"""Auto-generated module providing information about the build."""
import collections

build_info = collections.OrderedDict([('cpu_compiler', 'clang'), ('cuda_compute_capabilities', ['sm_60', 'sm_70', 'sm_80', 'sm_89', 'compute_90']), ('cuda_version', '12.5.1'), ('cudnn_version', '9'), ('is_cuda_build', True), ('is_rocm_build', False), ('is_tensorrt_build', False)])
'''  # noqa: E501
BUILD_INFO_221_WINDOWS = """import collections

build_info = collections.OrderedDict([('is_cuda_build', False), ('is_rocm_build', False), ('is_tensorrt_build', False), ('msvcp_dll_names', 'msvcp140.dll,msvcp140_1.dll')])
"""  # noqa: E501
BUILD_INFO_2101_WINDOWS = """import collections

build_info = collections.OrderedDict([('cpu_compiler', 'C:/Program Files (x86)/Microsoft Visual Studio/2019/Community/VC/Tools/MSVC/14.29.30133/bin/HostX64/x64/cl.exe'), ('cuda_compute_capabilities', ['sm_35', 'sm_50', 'sm_60', 'sm_70', 'sm_75', 'compute_80']), ('cuda_version', '64_112'), ('cudart_dll_name', 'cudart64_112.dll'), ('cudnn_dll_name', 'cudnn64_8.dll'), ('cudnn_version', '64_8'), ('is_cuda_build', True), ('is_rocm_build', False), ('is_tensorrt_build', False), ('msvcp_dll_names', 'msvcp140.dll,msvcp140_1.dll'), ('nvcuda_dll_name', 'nvcuda.dll')])
"""  # noqa: E501
BUILD_INFO_23 = """build_info = {'cuda_version': '10.1', 'cudnn_version': '7', 'cuda_compute_capabilities': ['sm_35', 'sm_37', 'sm_52', 'sm_60', 'sm_61', 'compute_70'], 'cpu_compiler': '/usr/bin/gcc-5', 'is_rocm_build': False, 'is_cuda_build': True}
"""  # noqa: E501
BUILD_INFO_21 = """is_rocm_build = False
is_cuda_build = True
cuda_version_number = '10.1'
cudnn_version_number = '7'
"""
BUILD_INFO_200_CPU = """is_rocm_build = False
is_cuda_build = False
"""

FRAMEWORK_RUNPATH = ":".join(
    f"$ORIGIN/{up}nvidia/{lib}/lib" for lib in ("cudnn", "cuda_runtime") for up in ("../../", "../")
)


# --------------------------------------------------------------------------- fake installs


def make_venv(path: Path) -> Path:
    """A real venv (no pip); returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    return path / "bin" / "python"


def site_of(venv: Path) -> Path:
    return next((venv / "lib").glob("python3*/site-packages"))


def _record_line(site: Path, rel: str) -> str:
    data = (site / rel).read_bytes() if (site / rel).is_file() else b""
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{rel},sha256={digest},{len(data)}"


def install(
    site: Path,
    name: str,
    version: str,
    files: dict[str, str | bytes] | None = None,
    requires: tuple[str, ...] = (),
    record_only: tuple[str, ...] = (),
) -> Path:
    """Write a distribution as pip would: its files, METADATA and a RECORD listing them.

    record_only: paths listed in RECORD without being written (files deleted after install).
    """
    files = files or {}
    for rel, content in files.items():
        target = site / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    dist_info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir(parents=True)
    metadata = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    metadata += [f"Requires-Dist: {req}" for req in requires]
    (dist_info / "METADATA").write_text("\n".join(metadata) + "\n\nA long description.\n")
    rels = [*files, *record_only, f"{dist_info.name}/METADATA"]
    lines = [_record_line(site, rel) for rel in rels] + [f"{dist_info.name}/RECORD,,"]
    (dist_info / "RECORD").write_text("\n".join(lines) + "\n")
    return dist_info


def install_tf(
    site: Path,
    version: str = "2.21.0",
    build_info: str = BUILD_INFO_221_LINUX,
    name: str = "tensorflow",
    requires: tuple[str, ...] = (),
    **kwargs,
) -> Path:
    framework = build_library(
        site / "tensorflow", "libtensorflow_framework.so.2", runpath=FRAMEWORK_RUNPATH
    )
    pywrap = build_library(
        site / "tensorflow/python",
        "_pywrap_tensorflow_internal.so",
        runpath="$ORIGIN/../../nvidia/cusolver/lib:$ORIGIN/../../nvidia/cudnn/lib",
    )
    files: dict[str, str | bytes] = {
        "tensorflow/__init__.py": "raise SystemExit('tensorflow must never be imported')\n",
        "tensorflow/python/platform/build_info.py": build_info,
        "tensorflow/libtensorflow_framework.so.2": framework.read_bytes(),
        "tensorflow/python/_pywrap_tensorflow_internal.so": pywrap.read_bytes(),
    }
    return install(site, name, version, files, requires=requires, **kwargs)


@pytest.fixture
def venv(tmp_path):
    """(python, site-packages) of a fresh empty venv."""
    python = make_venv(tmp_path / "venv")
    return python, site_of(tmp_path / "venv")


# --------------------------------------------------------------------------- a healthy TF 2.21


def test_reads_a_tf221_pip_install(venv):
    python, site = venv
    install_tf(site, requires=('nvidia-cudnn-cu12<10.0,>=9.3.0.75; extra == "and-cuda"',))
    install(site, "nvidia-cudnn-cu12", "9.10.2.21", {"nvidia/cudnn/lib/libcudnn.so.9": b"x"})
    install(site, "keras", "3.12.0")
    install(site, "requests", "2.32.0")  # not watched: left out

    env = probe_python(str(python))

    assert env.error is None
    assert env.version == ".".join(map(str, sys.version_info[:3]))
    assert (env.bits, env.platform) == (64, "linux")
    assert env.prefix == str(python.parent.parent)
    assert str(site) in env.site_packages and str(site) in env.sys_path
    assert [(d.name, d.version) for d in env.distributions] == [
        ("keras", "3.12.0"),
        ("nvidia-cudnn-cu12", "9.10.2.21"),
        ("tensorflow", "2.21.0"),
    ]
    assert {d.location for d in env.distributions} == {str(site)}
    tf = env.tensorflow
    assert tf.error is None
    assert (tf.package_dir, tf.distribution, tf.version) == (
        str(site / "tensorflow"),
        "tensorflow",
        "2.21.0",
    )
    assert (tf.is_cuda_build, tf.cuda_version, tf.cudnn_version) == (True, "12.5.1", "9")
    assert tf.compute_capabilities == ("sm_60", "sm_70", "sm_80", "sm_89", "compute_90")
    assert tf.build_info == (
        ("cpu_compiler", "clang"),
        ("cuda_compute_capabilities", "sm_60,sm_70,sm_80,sm_89,compute_90"),
        ("cuda_version", "12.5.1"),
        ("cudnn_version", "9"),
        ("is_cuda_build", "True"),
        ("is_rocm_build", "False"),
        ("is_tensorrt_build", "False"),
    )
    lib = site.parent  # $ORIGIN/../../ from site-packages/tensorflow
    assert tf.runpath == (  # framework first, in its order; the pywrap adds only cusolver
        str(lib / "nvidia/cudnn/lib"),
        str(site / "nvidia/cudnn/lib"),
        str(lib / "nvidia/cuda_runtime/lib"),
        str(site / "nvidia/cuda_runtime/lib"),
        str(site / "nvidia/cusolver/lib"),
    )
    assert tf.missing_files == ()
    assert tf.requires == ('nvidia-cudnn-cu12<10.0,>=9.3.0.75; extra == "and-cuda"',)


def test_never_imports_tensorflow(venv, tmp_path):
    python, site = venv
    marker = tmp_path / "imported"
    install_tf(site)
    (site / "tensorflow/__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    env = probe_python(str(python))
    assert env.tensorflow.version == "2.21.0"
    assert not marker.exists()


def test_no_tensorflow_is_none_not_an_error(venv):
    python, site = venv
    install(site, "nvidia-cuda-runtime-cu12", "12.9.79")
    env = probe_python(str(python))
    assert env.error is None and env.tensorflow is None
    assert [d.name for d in env.distributions] == ["nvidia-cuda-runtime-cu12"]


def test_the_monitors_own_interpreter():
    env = probe_python(sys.executable)
    assert env.error is None
    assert env.version == ".".join(map(str, sys.version_info[:3]))
    assert env.prefix == sys.prefix
    assert set(env.site_packages) >= {p for p in sys.path if p.endswith("site-packages")}
    names = {d.name: d.version for d in env.distributions}
    assert names.get("nvidia-cuda-runtime-cu12") == "12.9.79"  # a test dependency


# --------------------------------------------------------------------------- build_info formats


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            BUILD_INFO_221_LINUX,
            (True, "12.5.1", "9", ("sm_60", "sm_70", "sm_80", "sm_89", "compute_90")),
        ),
        (BUILD_INFO_221_WINDOWS, (False, None, None, ())),
        (
            BUILD_INFO_2101_WINDOWS,
            (True, "64_112", "64_8", ("sm_35", "sm_50", "sm_60", "sm_70", "sm_75", "compute_80")),
        ),
        (
            BUILD_INFO_23,
            (True, "10.1", "7", ("sm_35", "sm_37", "sm_52", "sm_60", "sm_61", "compute_70")),
        ),
        (BUILD_INFO_21, (True, "10.1", "7", ())),
        (BUILD_INFO_200_CPU, (False, None, None, ())),
    ],
    ids=["2.21-linux", "2.21-windows", "2.10.1-windows", "2.3-dict", "2.1-variables", "2.0-cpu"],
)
def test_every_build_info_format(tmp_path, source, expected):
    path = tmp_path / "build_info.py"
    path.write_text(source)
    info, error = read_build_info(str(path))
    assert error is None
    fields = build_fields(info)
    assert (
        fields["is_cuda_build"],
        fields["cuda_version"],
        fields["cudnn_version"],
        fields["compute_capabilities"],
    ) == expected


def test_windows_build_info_values_are_kept_as_strings(tmp_path):
    path = tmp_path / "build_info.py"
    path.write_text(BUILD_INFO_2101_WINDOWS)
    info, _ = read_build_info(str(path))
    assert info["cudart_dll_name"] == "cudart64_112.dll"
    assert info["msvcp_dll_names"] == "msvcp140.dll,msvcp140_1.dll"
    assert list(info)[:3] == ["cpu_compiler", "cuda_compute_capabilities", "cuda_version"]


@pytest.mark.parametrize(
    "source",
    [
        BUILD_INFO_221_LINUX[: len(BUILD_INFO_221_LINUX) // 2],  # truncated mid-literal
        "build_info = collections.OrderedDict(some_call())\n",  # not a literal
        "\x00\x01garbage\xff",
        "",
        "# only a comment\nimport collections\n",
    ],
    ids=["truncated", "not-literal", "binary", "empty", "no-data"],
)
def test_broken_build_info_is_an_error_not_a_traceback(venv, source):
    python, site = venv
    install_tf(site, build_info=source)
    tf = probe_python(str(python)).tensorflow
    assert tf.error and "build_info.py" in tf.error
    assert (tf.version, tf.is_cuda_build, tf.build_info) == ("2.21.0", None, ())
    assert tf.runpath  # the rest was still read


def test_a_deleted_build_info_is_reported(venv):
    python, site = venv
    install_tf(site)
    (site / "tensorflow/python/platform/build_info.py").unlink()
    tf = probe_python(str(python)).tensorflow
    assert "build_info.py is missing" in tf.error


# --------------------------------------------------------------------------- old and odd layouts


def test_tf21_keeps_its_code_in_tensorflow_core(venv):
    python, site = venv
    framework = build_library(
        site / "tensorflow_core",
        "libtensorflow_framework.so.2",
        runpath="$ORIGIN/../nvidia/cudnn/lib",
    )
    install(
        site,
        "tensorflow-gpu",
        "2.1.0",
        {
            "tensorflow/__init__.py": "",
            "tensorflow_core/__init__.py": "",
            "tensorflow_core/python/platform/build_info.py": BUILD_INFO_21,
            "tensorflow_core/libtensorflow_framework.so.2": framework.read_bytes(),
        },
        record_only=("tensorflow_core/python/_pywrap_tensorflow_internal.so",),
    )
    tf = probe_python(str(python)).tensorflow
    assert (tf.package_dir, tf.distribution, tf.version) == (
        str(site / "tensorflow_core"),
        "tensorflow-gpu",
        "2.1.0",
    )
    assert (tf.is_cuda_build, tf.cuda_version, tf.cudnn_version) == (True, "10.1", "7")
    assert dict(tf.build_info)["cuda_version_number"] == "10.1"
    assert tf.runpath == (str(site / "nvidia/cudnn/lib"),)
    assert tf.missing_files == (
        str(site / "tensorflow_core/python/_pywrap_tensorflow_internal.so"),
    )


def test_windows_stub_tensorflow_is_owned_by_tensorflow_intel(tmp_path):
    site = tmp_path / "site"
    install(site, "tensorflow", "2.15.0", requires=("tensorflow-intel==2.15.0",))
    install(
        site,
        "tensorflow-intel",
        "2.15.0",
        {
            "tensorflow/__init__.py": "",
            "tensorflow/python/platform/build_info.py": BUILD_INFO_221_WINDOWS,
            "tensorflow/python/_pywrap_tensorflow_internal.pyd": b"MZ",
        },
        record_only=("tensorflow/python/_pywrap_tf2.pyd",),
    )
    found = scan_distributions([str(site)])
    tf = probe_tensorflow([str(site)], found, platform="win32")
    assert (tf.distribution, tf.version, tf.is_cuda_build) == ("tensorflow-intel", "2.15.0", False)
    assert tf.missing_files == (str(site / "tensorflow/python/_pywrap_tf2.pyd"),)
    assert tf.runpath == ()


def test_tensorflow_without_metadata_uses_version_h(tmp_path):
    site = tmp_path / "site"
    (site / "tensorflow/python/platform").mkdir(parents=True)
    (site / "tensorflow/__init__.py").write_text("")
    (site / "tensorflow/python/platform/build_info.py").write_text(BUILD_INFO_23)
    header = site / "tensorflow/include/tensorflow/core/public/version.h"
    header.parent.mkdir(parents=True)
    header.write_text(
        "#define TF_MAJOR_VERSION 2\n#define TF_MINOR_VERSION 3\n"
        '#define TF_PATCH_VERSION 0\n#define TF_VERSION_SUFFIX ""\n'
    )
    tf = probe_tensorflow([str(site)], [], platform="linux")
    assert (tf.distribution, tf.version, tf.cuda_version) == ("", "2.3.0", "10.1")
    # no RECORD: the files every Linux TF has must still be there
    assert tf.missing_files == (
        str(site / "tensorflow/libtensorflow_framework.so.2"),
        str(site / "tensorflow/python/_pywrap_tensorflow_internal.so"),
    )


def test_installed_but_package_dir_deleted(venv):
    python, site = venv
    install_tf(site)
    for path in sorted((site / "tensorflow").rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    (site / "tensorflow").rmdir()
    tf = probe_python(str(python)).tensorflow
    assert tf.version == "2.21.0"
    assert "package directory" in tf.error and "missing" in tf.error
    assert str(site / "tensorflow/libtensorflow_framework.so.2") in tf.missing_files


# --------------------------------------------------------------------------- broken files


def test_a_deleted_native_file_is_missing(venv):
    python, site = venv
    install_tf(
        site, record_only=("tensorflow/libtensorflow_cc.so.2", "tensorflow/python/_pywrap_tf2.so")
    )
    (site / "tensorflow/libtensorflow_framework.so.2").unlink()
    tf = probe_python(str(python)).tensorflow
    assert tf.missing_files == (
        str(site / "tensorflow/libtensorflow_framework.so.2"),
        str(site / "tensorflow/libtensorflow_cc.so.2"),
        str(site / "tensorflow/python/_pywrap_tf2.so"),
    )
    # the remaining pywrap still gives its RUNPATH
    assert tf.runpath == (str(site / "nvidia/cusolver/lib"), str(site / "nvidia/cudnn/lib"))


def test_a_dangling_symlink_counts_as_missing(venv):
    python, site = venv
    install_tf(site)
    framework = site / "tensorflow/libtensorflow_framework.so.2"
    framework.unlink()
    framework.symlink_to("/nonexistent/libtensorflow_framework.so.2")
    assert probe_python(str(python)).tensorflow.missing_files == (str(framework),)


def test_a_stale_dist_info_is_listed_but_the_newest_owns_the_package(venv):
    python, site = venv
    stale = install_tf(site, version="2.20.0")
    os.utime(stale, (1_000_000_000, 1_000_000_000))  # an interrupted upgrade left it behind
    fresh = site / "tensorflow-2.21.0.dist-info"
    fresh.mkdir()
    for name in ("METADATA", "RECORD"):
        text = (stale / name).read_text().replace("2.20.0", "2.21.0")
        (fresh / name).write_text(text)
    env = probe_python(str(python))
    assert [d.version for d in env.distributions] == ["2.20.0", "2.21.0"]
    assert env.tensorflow.version == "2.21.0"


def test_garbage_metadata_falls_back_to_the_directory_name(venv):
    python, site = venv
    dist_info = install_tf(site)
    (dist_info / "METADATA").write_bytes(b"\x00\xff\xfe garbage \x89PNG\r\n\x1a\n" * 50)
    bad = site / "nvidia_cublas_cu12-12.9.1.4.dist-info"
    bad.mkdir()  # no METADATA at all
    env = probe_python(str(python))
    assert env.error is None
    assert {(d.name, d.version) for d in env.distributions} == {
        ("tensorflow", "2.21.0"),
        ("nvidia-cublas-cu12", "12.9.1.4"),
    }
    assert env.tensorflow.version == "2.21.0" and env.tensorflow.requires == ()


def test_egg_info_file_and_directory(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "tensorflow_gpu-2.0.0-py3.7.egg-info").write_text(
        "Metadata-Version: 1.1\nName: tensorflow-gpu\nVersion: 2.0.0\n"
    )
    (site / "Keras-2.3.1-py3.7.egg-info").mkdir()
    found = scan_distributions([str(site)])
    assert [(d.name, d.version) for d in found] == [("keras", "2.3.1"), ("tensorflow-gpu", "2.0.0")]


def test_metadata_headers_stop_at_the_body_and_join_continuations(tmp_path):
    meta = tmp_path / "x-1.dist-info"
    meta.mkdir()
    (meta / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: x\nVersion: 1\nRequires-Dist: a\nLicense: long\n"
        "        text\nRequires-Dist: b; extra == 'c'\n\nRequires-Dist: not-a-header\n"
    )
    headers = read_metadata_headers(str(meta))
    assert headers["requires-dist"] == ["a", "b; extra == 'c'"]
    assert headers["license"] == ["long text"]


# --------------------------------------------------------------------------- which TF is seen


def test_pythonpath_shadows_site_packages(venv, tmp_path):
    python, site = venv
    install_tf(site)
    shadow = tmp_path / "shadow"
    install_tf(shadow, version="2.20.0")
    env = probe_python(str(python), env={**os.environ, "PYTHONPATH": str(shadow)})
    assert env.sys_path[0] == str(shadow)
    assert env.tensorflow.version == "2.20.0"
    assert env.tensorflow.package_dir == str(shadow / "tensorflow")
    assert [(d.version, d.location) for d in env.distributions] == [
        ("2.20.0", str(shadow)),
        ("2.21.0", str(site)),
    ]


def test_output_of_a_sitecustomize_does_not_spoil_the_answer(venv):
    python, site = venv
    (site / "sitecustomize.py").write_text("print('hello from sitecustomize')\nprint('{}')\n")
    (site / "noisy.pth").write_text("import sys; sys.stdout.write('pth noise\\n')\n")
    env = probe_python(str(python))
    assert env.error is None and env.version


def test_paths_are_stored_as_the_system_sees_them_under_a_root(tmp_path):
    root = tmp_path / "root"
    venv_dir = root / "home/ada/venv"
    make_venv(venv_dir)
    site = site_of(venv_dir)
    install_tf(site, record_only=("tensorflow/libtensorflow_cc.so.2",))
    env = probe_python("/home/ada/venv/bin/python", Root(str(root)))
    system_site = "/" + str(site.relative_to(root))
    assert env.error is None
    assert env.executable == "/home/ada/venv/bin/python"
    assert env.prefix == "/home/ada/venv"
    assert system_site in env.site_packages
    assert env.distributions[0].location == system_site
    assert env.tensorflow.package_dir == f"{system_site}/tensorflow"
    assert env.tensorflow.missing_files == (f"{system_site}/tensorflow/libtensorflow_cc.so.2",)
    assert f"{system_site}/nvidia/cudnn/lib" in env.tensorflow.runpath


# --------------------------------------------------------------------------- broken interpreters


def _script(path: Path, body: str, mode: int = 0o755) -> Path:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(mode)
    return path


def test_a_hanging_interpreter_is_killed_at_the_timeout(tmp_path):
    hung = _script(tmp_path / "python", "sleep 30 & wait")
    started = time.monotonic()
    env = probe_python(str(hung), timeout=0.5)
    assert time.monotonic() - started < 5
    assert env.error == f"{hung} did not answer within 0.5 s (killed)"
    assert env.version == "" and env.tensorflow is None


def test_a_question_asked_early_is_answered_later(tmp_path, venv):
    python, _ = venv
    query = start_query(str(python))
    time.sleep(0.3)  # the caller imports and probes meanwhile; the answer waits in the pipe
    env = probe_python(str(python), query=query)
    assert env.error is None and env.version.startswith("3.")


def test_an_early_question_to_a_missing_interpreter(tmp_path):
    query = start_query(str(tmp_path / "nope" / "python"))
    env = probe_python(str(tmp_path / "nope" / "python"), query=query)
    assert env.error == f"{tmp_path / 'nope' / 'python'}: no such interpreter"


def test_a_crashing_interpreter(tmp_path):
    crash = _script(tmp_path / "python", "echo 'Fatal Python error: init' >&2; kill -SEGV $$")
    env = probe_python(str(crash))
    assert env.error == f"{crash} was killed by SIGSEGV: Fatal Python error: init"


def test_an_interpreter_that_exits_139(tmp_path):
    crash = _script(tmp_path / "python", "exit 139")
    assert probe_python(str(crash)).error == f"{crash} exited with status 139"


@pytest.mark.parametrize(
    "output", ["hello", "@@tf-stack-monitor@@{not json", "@@tf-stack-monitor@@[1]"]
)
def test_an_interpreter_that_prints_no_json(tmp_path, output):
    odd = _script(tmp_path / "python", f"echo '{output}'")
    env = probe_python(str(odd))
    assert env.error.startswith(f"{odd} printed no answer")


def test_an_interpreter_whose_answer_has_the_wrong_shape(tmp_path):
    odd = _script(tmp_path / "python", """echo '@@tf-stack-monitor@@{"path": 3}'""")
    assert "unexpected answer" in probe_python(str(odd)).error


def test_a_file_that_is_not_executable(tmp_path):
    plain = _script(tmp_path / "python", "exit 0", mode=0o644)
    assert probe_python(str(plain)).error == f"{plain}: not executable (permission denied)"


def test_an_interpreter_that_does_not_exist(tmp_path):
    gone = tmp_path / "nope/python"
    assert probe_python(str(gone)).error == f"{gone}: no such interpreter"


def test_errors_name_the_interpreter_as_the_system_sees_it(tmp_path):
    env = probe_python("/opt/conda/bin/python", Root(str(tmp_path)))
    assert env.error == "/opt/conda/bin/python: no such interpreter"


def test_a_file_that_is_not_a_program(tmp_path):
    junk = tmp_path / "python"
    junk.write_bytes(b"\x00\x01\x02 not a program")
    junk.chmod(junk.stat().st_mode | stat.S_IXUSR)
    assert "cannot be started" in probe_python(str(junk)).error


# --------------------------------------------------------------------------- default interpreters


def test_default_interpreters_from_path(tmp_path, venv):
    python, _ = venv
    base = tmp_path / "base"
    base.mkdir()
    (base / "python").symlink_to(os.path.realpath(python))  # the interpreter the venv links to
    env = {"PATH": f"{tmp_path / 'empty'}:{python.parent}:{base}"}
    assert default_interpreters(env, sys.executable, own_path=[]) == (
        str(python.parent / "python3"),
    )  # python3 and python of one venv are one interpreter
    env = {"PATH": f"{base}:{python.parent}"}
    # same real file, but the venv is another environment than the base python it links to
    assert default_interpreters(env, sys.executable, own_path=[]) == (
        str(python.parent / "python3"),
        str(base / "python"),
    )


def test_default_interpreters_add_the_monitors_own_only_with_tensorflow(tmp_path):
    site = tmp_path / "site"
    (site / "tensorflow").mkdir(parents=True)
    (site / "tensorflow/__init__.py").write_text("")
    own = "/opt/monitor/bin/python"
    assert default_interpreters({"PATH": ""}, own, own_path=[str(tmp_path)]) == ()
    assert default_interpreters({"PATH": ""}, own, own_path=[str(site)]) == (own,)


def test_default_interpreters_dedupe_the_monitors_own(venv):
    python, site = venv
    (site / "tensorflow").mkdir()
    (site / "tensorflow/__init__.py").write_text("")
    found = default_interpreters({"PATH": str(python.parent)}, str(python), own_path=[str(site)])
    assert found == (str(python.parent / "python3"),)
