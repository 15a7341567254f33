"""The package trigger: real pip installs into a real venv, watched through site-packages."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest

from monitor.model import Change, ChangeKind, Distribution, PythonEnv, TensorflowBuild
from monitor.watch.debounce import Debouncer
from monitor.watch.packages import (
    PackageTrigger,
    diff_distributions,
    parse_meta_name,
    read_distributions,
    relevant_names,
)

PK = ChangeKind.PACKAGES
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify")


def make_wheel(out: Path, name: str, version: str) -> Path:
    """A pure-Python wheel pip installs for real: a package, METADATA, WHEEL, RECORD."""
    dist = f"{name}-{version}.dist-info"
    files = {f"{name}/__init__.py": b"", f"{name}/core.py": f"VERSION = {version!r}\n".encode()}
    files[f"{dist}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n".encode()
    )
    files[f"{dist}/WHEEL"] = b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    files[f"{dist}/RECORD"] = ("\n".join([*record, f"{dist}/RECORD,,"]) + "\n").encode()
    wheel = out / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return wheel


class Venv:
    """A venv without pip of its own; the test interpreter's pip installs into it."""

    def __init__(self, path: Path) -> None:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
        self.prefix = path
        self.python = path / "bin/python"
        version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
        self.site = path / "lib" / version / "site-packages"

    def pip(self, *args: str) -> None:
        command = [sys.executable, "-m", "pip", "--python", str(self.python), "-q", *args]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def install(self, wheel: Path, *extra: str) -> None:
        self.pip(
            "install", "--no-index", "--no-deps", "--disable-pip-version-check", *extra, str(wheel)
        )

    def env(self) -> PythonEnv:
        return PythonEnv(str(self.python), prefix=str(self.prefix), site_packages=(str(self.site),))


class Batches:
    def __init__(self) -> None:
        self.got: list[list[Change]] = []
        self._cond = threading.Condition()

    def __call__(self, batch: list[Change]) -> None:
        with self._cond:
            self.got.append(batch)
            self._cond.notify_all()

    def wait(self, count: int, timeout: float = 20.0) -> list[list[Change]]:
        with self._cond:
            self._cond.wait_for(lambda: len(self.got) >= count, timeout)
            return list(self.got)


@pytest.fixture
def watched(tmp_path):
    """A venv with tensorflow 2.15.0 (a stand-in wheel), watched, its changes debounced."""
    venv = Venv(tmp_path / "venv")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    venv.install(make_wheel(wheels, "tensorflow", "2.15.0"))
    batches = Batches()
    debouncer = Debouncer(batches, quiet_s=0.5, max_wait_s=30)
    trigger = PackageTrigger([venv.env()])
    trigger.start(debouncer.add)
    yield venv, wheels, trigger, batches
    trigger.stop()
    debouncer.stop()


def test_a_pip_upgrade_is_one_change_from_the_old_version_to_the_new(watched):
    venv, wheels, trigger, batches = watched
    assert trigger.watch_count == 1
    venv.install(make_wheel(wheels, "tensorflow", "2.16.1"))
    assert batches.wait(1) == [
        [Change(PK, f"tensorflow in {venv.prefix}", "2.15.0", "2.16.1", batches.got[0][0].at)]
    ]


def test_a_forced_reinstall_of_the_same_version_is_still_a_change(watched):
    venv, wheels, _, batches = watched
    venv.install(make_wheel(wheels, "tensorflow", "2.15.0"), "--force-reinstall")
    (batch,) = batches.wait(1)
    assert [(c.subject, c.before, c.after) for c in batch] == [
        (f"tensorflow in {venv.prefix}", "2.15.0", "2.15.0 (reinstalled)")
    ]


def test_an_uninstall_and_an_unrelated_install(watched):
    venv, wheels, _, batches = watched
    venv.install(make_wheel(wheels, "leftpad", "1.0"))  # not something TF's stack cares about
    time.sleep(1.5)
    assert batches.got == []
    venv.pip("uninstall", "-y", "tensorflow")
    (batch,) = batches.wait(1)
    assert [(c.kind, c.subject, c.before, c.after) for c in batch] == [
        (PK, f"tensorflow in {venv.prefix}", "2.15.0", "")
    ]


def test_a_slow_install_gives_one_change_after_its_last_file(watched):
    """pip moves the old version aside, writes the new files for a long while, then the
    dist-info: the writing in the new package directory keeps the batch open."""
    venv, _, _, batches = watched
    site = venv.site
    os.rename(site / "tensorflow-2.15.0.dist-info", site / "~ensorflow-2.15.0.dist-info")
    os.rename(site / "tensorflow", site / "~ensorflow")
    package = site / "tensorflow"
    package.mkdir()
    time.sleep(0.2)  # the settling watch is in place before the deep writes
    deep = package / "python/framework"
    deep.mkdir(parents=True)
    for index in range(15):  # 1.5 s of writes, three times the quiet period
        (deep / f"op{index}.py").write_text("x = 1\n")
        time.sleep(0.1)
    assert batches.got == [], "a check ran half way through the install"
    dist = site / "tensorflow-2.16.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Name: tensorflow\nVersion: 2.16.1\n")
    (batch,) = batches.wait(1)
    assert [(c.before, c.after) for c in batch] == [("2.15.0", "2.16.1")]


def test_interpreters_sharing_a_directory_watch_it_once(tmp_path):
    site = tmp_path / "site-packages"
    (site / "tensorflow-2.16.1.dist-info").mkdir(parents=True)
    one = PythonEnv("/usr/bin/python3", prefix="/usr", site_packages=(str(site),))
    two = PythonEnv("/usr/bin/python3.11", prefix="/usr", site_packages=(str(site),))
    broken = PythonEnv("/opt/gone/bin/python", error="not found")
    trigger = PackageTrigger([one, two, broken])
    trigger.start(lambda change: None)
    try:
        assert trigger.watch_count == 1
        trigger.retarget([one])
        assert trigger.watched == [str(site)]
        trigger.retarget([])
        assert trigger.watch_count == 0
    finally:
        trigger.stop()


def test_distributions_outside_site_packages_are_watched_too(tmp_path):
    target = tmp_path / "pip-target"
    (target / "nvidia_cudnn_cu12-9.1.0.70.dist-info").mkdir(parents=True)
    python = PythonEnv(
        "/usr/bin/python3",
        site_packages=(str(tmp_path / "missing"),),
        distributions=(Distribution("nvidia-cudnn-cu12", "9.1.0.70", str(target)),),
    )
    trigger = PackageTrigger([python])
    changes: list[Change] = []
    trigger.start(changes.append)
    try:
        assert trigger.watched == [str(target)]
        os.rename(
            target / "nvidia_cudnn_cu12-9.1.0.70.dist-info",
            target / "nvidia_cudnn_cu12-9.3.0.75.dist-info",
        )
        deadline = time.monotonic() + 10
        while not [c for c in changes if c.subject] and time.monotonic() < deadline:
            time.sleep(0.02)
        real = [c for c in changes if c.subject]
        assert [(c.subject, c.before, c.after) for c in real] == [
            ("nvidia-cudnn-cu12 in /usr/bin/python3", "9.1.0.70", "9.3.0.75")
        ]
    finally:
        trigger.stop()


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("tensorflow-2.16.1.dist-info", ("tensorflow", "2.16.1")),
        ("nvidia_cudnn_cu12-9.1.0.70.dist-info", ("nvidia-cudnn-cu12", "9.1.0.70")),
        ("Tensorflow_GPU-2.10.0-py3.9.egg-info", ("tensorflow-gpu", "2.10.0")),
        ("tf_keras.egg-info", ("tf-keras", "")),
        ("~ensorflow-2.15.0.dist-info", None),  # pip's stash of the old version
        ("tensorflow", None),
        ("six.py", None),
    ],
)
def test_parse_meta_name(entry, expected):
    assert parse_meta_name(entry) == expected


def test_read_distributions(tmp_path):
    (tmp_path / "tensorflow-2.15.0.dist-info").mkdir()
    (tmp_path / "tensorflow-2.16.1.dist-info").mkdir()  # a stale copy beside the real one
    egg = tmp_path / "tf_keras.egg-info"
    egg.mkdir()
    (egg / "PKG-INFO").write_text("Metadata-Version: 1.0\nName: tf-keras\nVersion: 2.16.0\n")
    (tmp_path / "numpy-1.26.4-py3.11.egg-info").write_text("Version: 1.26.4\n")
    (tmp_path / "~umpy-1.26.0.dist-info").mkdir()
    assert read_distributions(str(tmp_path)) == {
        "numpy": "1.26.4",
        "tensorflow": "2.15.0, 2.16.1",
        "tf-keras": "2.16.0",
    }
    assert read_distributions(str(tmp_path / "missing")) == {}


def test_diff_distributions():
    before = {"tensorflow": "2.15.0", "nvidia-cudnn-cu12": "8.9.7.29", "keras": "3.3.3"}
    after = {"tensorflow": "2.16.1", "keras": "3.3.3", "nvidia-cublas-cu12": "12.3.4.1"}
    assert diff_distributions(before, after, where="/venvs/tf", at="t") == [
        Change(PK, "nvidia-cublas-cu12 in /venvs/tf", "", "12.3.4.1", "t"),
        Change(PK, "nvidia-cudnn-cu12 in /venvs/tf", "8.9.7.29", "", "t"),
        Change(PK, "tensorflow in /venvs/tf", "2.15.0", "2.16.1", "t"),
    ]
    back = diff_distributions({}, {"keras": "3.3.3"}, where="x", last_removed={"keras": "3.3.3"})
    assert [c.after for c in back] == ["3.3.3 (reinstalled)"]
    assert diff_distributions(before, before, where="x") == []


def test_relevant_names_follow_what_tensorflow_requires():
    build = TensorflowBuild(
        "/x/tensorflow",
        requires=(
            "numpy<2.0.0,>=1.26.0; python_version >= '3.12'",
            "protobuf!=4.21.0,>=3.20.3",
            "ml_dtypes~=0.3.1",
            "nvidia-cudnn-cu12==8.9.7.29; extra == 'and-cuda'",
        ),
    )
    names = relevant_names(PythonEnv("/x/python", tensorflow=build))
    assert names == {"numpy", "protobuf", "ml-dtypes", "nvidia-cudnn-cu12"}
    assert relevant_names(PythonEnv("/x/python")) == frozenset()
