"""The environment trigger: changes of effective values only, from real files edited under a
tmp root while the watcher polls, and from Windows registry values fed in."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from monitor.facts.paths import Root
from monitor.model import Change, ChangeKind
from monitor.watch.environment import (
    EMPTY,
    EnvironmentWatcher,
    differing_entries,
    environment_changes,
    linux_environment_watcher,
    stat_signature,
)
from monitor.watch.login_env import (
    DEFAULT_PATH,
    LoginEnvironment,
    RegistryValues,
    login_environment,
    windows_login_environment,
)

AT = "2024-03-01T12:00:00+00:00"
HOME = "/home/ana"
ENV = ChangeKind.ENVIRONMENT
CUDA_BASHRC = (
    "export CUDA_HOME=/usr/local/cuda-12.4\n"
    "export PATH=$CUDA_HOME/bin${PATH:+:${PATH}}\n"
    "export LD_LIBRARY_PATH=$CUDA_HOME/lib64${LD_LIBRARY_PATH:+:${LD_LIBRARY_PATH}}\n"
)


def facts(changes: list[Change]) -> list[tuple[ChangeKind, str, str, str]]:
    return [(c.kind, c.subject, c.before, c.after) for c in changes]


# --------------------------------------------------------------------------- the pure diff


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ("/a:/b", "/new:/a:/b", ("", "/new")),
        ("/a:/b:/c", "/a:/c", ("/b", "")),
        ("/a:/cuda-11.8/bin:/c", "/a:/cuda-12.4/bin:/c", ("/cuda-11.8/bin", "/cuda-12.4/bin")),
        ("/a:/b:/c:/d", "/a:/c:/b:/d", ("/b:/c", "/c:/b")),
        ("/a:/b", "/a:/b:", ("", "(empty entry)")),
        ("/a:/b:/a", "/a:/b", ("/a", "")),
    ],
)
def test_differing_entries(before: str, after: str, expected: tuple[str, str]) -> None:
    assert differing_entries(before, after, ":") == expected


def test_changes_by_variable() -> None:
    before = {"PATH": "/usr/bin:/bin", "CUDA_HOME": "/usr/local/cuda-11.8", "TF_GONE": "1"}
    after = {
        "PATH": "/usr/local/cuda-12.4/bin:/usr/bin:/bin",
        "CUDA_HOME": "/usr/local/cuda-12.4",
        "CUDA_VISIBLE_DEVICES": "",
    }

    assert environment_changes(before, after, AT) == [
        Change(ENV, "CUDA_HOME", "/usr/local/cuda-11.8", "/usr/local/cuda-12.4", AT),
        Change(ENV, "CUDA_VISIBLE_DEVICES", "", EMPTY, AT),
        Change(ENV, "PATH", "", "/usr/local/cuda-12.4/bin", AT),
        Change(ENV, "TF_GONE", "1", "", AT),
    ]


def test_search_path_set_from_nothing_shows_the_whole_value() -> None:
    changes = environment_changes({}, {"LD_LIBRARY_PATH": "/a:/b"}, AT)
    assert facts(changes) == [(ENV, "LD_LIBRARY_PATH", "", "/a:/b")]


def test_windows_path_entries_use_semicolons() -> None:
    before = {"PATH": "C:\\Windows;C:\\CUDA\\v11.8\\bin"}
    after = {"PATH": "C:\\Windows;C:\\CUDA\\v12.4\\bin"}

    assert facts(environment_changes(before, after, AT, ";")) == [
        (ENV, "PATH", "C:\\CUDA\\v11.8\\bin", "C:\\CUDA\\v12.4\\bin")
    ]


def test_same_values_are_no_change() -> None:
    assert environment_changes({"PATH": "/a"}, {"PATH": "/a"}, AT) == []


# --------------------------------------------------------------------------- the watcher on files


class Collector:
    def __init__(self) -> None:
        self.changes: list[Change] = []
        self._cond = threading.Condition()

    def __call__(self, change: Change) -> None:
        with self._cond:
            self.changes.append(change)
            self._cond.notify_all()

    def wait_for(self, count: int, timeout_s: float = 30.0) -> list[Change]:
        with self._cond:
            self._cond.wait_for(lambda: len(self.changes) >= count, timeout_s)
            return list(self.changes)


class Machine:
    def __init__(self, tmp_path: Path) -> None:
        self.base = tmp_path / "root"
        (self.base / HOME.lstrip("/")).mkdir(parents=True)
        self.root = Root(str(self.base))

    def path(self, system_path: str) -> Path:
        return self.base / system_path.lstrip("/")

    def write(self, system_path: str, text: str) -> None:
        """As editors save: a new file renamed over the old one."""
        path = self.path(system_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".new")
        tmp.write_text(text)
        os.replace(tmp, path)


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    return Machine(tmp_path)


def settle(watcher: EnvironmentWatcher, polls: int = 3) -> None:
    assert watcher.wait_polls(watcher.polls + polls, 30.0)


def running(machine: Machine) -> tuple[EnvironmentWatcher, Collector]:
    watcher = linux_environment_watcher(machine.root, HOME, interval_s=0.02)
    collect = Collector()
    watcher.start(collect)
    assert watcher.wait_polls(2, 30.0), "the baseline"
    return watcher, collect


def test_editing_bashrc_emits_the_changed_values(machine: Machine) -> None:
    machine.write(f"{HOME}/.bashrc", "# empty\n")
    watcher, collect = running(machine)
    try:
        machine.write(f"{HOME}/.bashrc", CUDA_BASHRC)
        collect.wait_for(3)
        settle(watcher)
    finally:
        watcher.stop()

    assert facts(collect.changes) == [
        (ENV, "CUDA_HOME", "", "/usr/local/cuda-12.4"),
        (ENV, "LD_LIBRARY_PATH", "", "/usr/local/cuda-12.4/lib64"),
        (ENV, "PATH", "", "/usr/local/cuda-12.4/bin"),
    ]
    assert all(c.at.endswith("+00:00") for c in collect.changes)


def test_touching_or_reformatting_emits_nothing(machine: Machine) -> None:
    machine.write(f"{HOME}/.bashrc", CUDA_BASHRC)
    reads = 0
    real_read = login_environment

    def counting_read() -> LoginEnvironment:
        nonlocal reads
        reads += 1
        return real_read(machine.root, HOME)

    watcher = EnvironmentWatcher(
        counting_read,
        interval_s=0.02,
        signature=lambda sources: stat_signature(machine.root, sources),
    )
    collect = Collector()
    watcher.start(collect)
    try:
        assert watcher.wait_polls(2, 30.0)
        settle(watcher, polls=5)
        idle_reads = reads
        os.utime(machine.path(f"{HOME}/.bashrc"), (1, 1))
        machine.write(f"{HOME}/.bashrc", "# the same, reformatted\n\n" + CUDA_BASHRC + "\n")
        deadline = time.monotonic() + 30
        while reads == idle_reads and time.monotonic() < deadline:
            settle(watcher, polls=1)
        settle(watcher)
    finally:
        watcher.stop()

    assert idle_reads == 2, "unchanged files are only stat'ed (the second read: new sources)"
    assert reads > idle_reads, "the edit was noticed"
    assert collect.changes == []


def test_a_new_file_in_profile_d_and_a_new_login_file(machine: Machine) -> None:
    machine.write(f"{HOME}/.profile", "export TF_CPP_MIN_LOG_LEVEL=1\n")
    watcher, collect = running(machine)
    try:
        machine.write("/etc/profile.d/cuda.sh", "export CUDA_HOME=/usr/local/cuda\n")
        collect.wait_for(1)
        machine.write(f"{HOME}/.bash_profile", "export TF_CPP_MIN_LOG_LEVEL=3\n")
        collect.wait_for(2)
        settle(watcher)
    finally:
        watcher.stop()

    assert facts(collect.changes) == [
        (ENV, "CUDA_HOME", "", "/usr/local/cuda"),
        (ENV, "TF_CPP_MIN_LOG_LEVEL", "1", "3"),
    ]


def test_creating_a_tested_directory_changes_path(machine: Machine) -> None:
    machine.write(f"{HOME}/.profile", 'if [ -d "$HOME/bin" ]; then PATH="$HOME/bin:$PATH"; fi\n')
    watcher, collect = running(machine)
    try:
        machine.path(f"{HOME}/bin").mkdir()
        collect.wait_for(1)
        settle(watcher)
    finally:
        watcher.stop()

    assert facts(collect.changes) == [(ENV, "PATH", "", f"{HOME}/bin")]
    assert watcher.current is not None
    assert watcher.current.values["PATH"] == f"{HOME}/bin:{DEFAULT_PATH}"


def test_a_change_to_a_sourced_file_is_seen(machine: Machine) -> None:
    machine.write(f"{HOME}/.bashrc", ". ~/.cuda-env\n")
    machine.write(f"{HOME}/.cuda-env", "export CUDA_HOME=/usr/local/cuda-11.8\n")
    watcher, collect = running(machine)
    try:
        machine.write(f"{HOME}/.cuda-env", "export CUDA_HOME=/usr/local/cuda-12.4\n")
        collect.wait_for(1)
        settle(watcher)
    finally:
        watcher.stop()

    assert facts(collect.changes) == [
        (ENV, "CUDA_HOME", "/usr/local/cuda-11.8", "/usr/local/cuda-12.4")
    ]


def test_stop_wakes_the_watcher_at_once(machine: Machine) -> None:
    watcher = linux_environment_watcher(machine.root, HOME, interval_s=3600.0)
    watcher.stop()  # before start: nothing to do
    watcher.start(Collector())
    with pytest.raises(RuntimeError):
        watcher.start(Collector())
    assert watcher.wait_polls(1, 30.0)
    started = time.monotonic()
    watcher.stop()
    watcher.stop()

    assert time.monotonic() - started < 5.0


def test_a_failing_read_or_emit_does_not_end_the_watcher(
    caplog: pytest.LogCaptureFixture,
) -> None:
    answers: list[object] = [
        LoginEnvironment({"PATH": "/a"}),
        OSError("a surprise"),
        LoginEnvironment({"PATH": "/a:/b"}, errors=(("/etc/environment", "cannot read"),)),
    ]

    def read() -> LoginEnvironment:
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, LoginEnvironment)
        return answer

    seen: list[Change] = []

    def emit(change: Change) -> None:
        seen.append(change)
        raise ValueError("a broken receiver")

    watcher = EnvironmentWatcher(read, interval_s=0.01)
    with caplog.at_level(logging.WARNING, logger="monitor.watch.environment"):
        watcher.start(emit)
        try:
            assert watcher.wait_polls(8, 30.0)
        finally:
            watcher.stop()

    assert facts(seen) == [(ENV, "PATH", "", "/b")]
    warnings = [r.getMessage() for r in caplog.records if "cannot read" in r.getMessage()]
    assert warnings == ["login environment: /etc/environment: cannot read"], "logged once"


# --------------------------------------------------------------------------- Windows, fed values


class FakeRegistry:
    """The two keys as values a test edits, and a waiter that a "registry change" wakes."""

    def __init__(self, system: RegistryValues, user: RegistryValues) -> None:
        self.system = dict(system)
        self.user = dict(user)
        self.event = threading.Event()

    def read(self) -> LoginEnvironment:
        return LoginEnvironment(
            windows_login_environment(self.system, self.user, {"SystemRoot": "C:\\Windows"})
        )

    def waiter(self) -> FakeRegistry:
        return self

    def wait(self, timeout_s: float) -> None:
        self.event.wait(timeout_s)
        self.event.clear()

    def wake(self) -> None:
        self.event.set()

    def close(self) -> None:
        self.event.set()

    def set_user(self, name: str, value: str, expandable: bool = True) -> None:
        self.user[name] = (value, expandable)
        self.event.set()  # what RegNotifyChangeKeyValue does


def windows_watcher(registry: FakeRegistry) -> EnvironmentWatcher:
    waiter: Callable[[], FakeRegistry] = registry.waiter
    return EnvironmentWatcher(registry.read, interval_s=3600.0, separator=";", waiter=waiter)


def test_windows_user_path_edit_wakes_the_watcher() -> None:
    registry = FakeRegistry(
        system={"Path": ("%SystemRoot%\\system32", True)},
        user={"Path": ("C:\\CUDA\\v11.8\\bin", False)},
    )
    watcher = windows_watcher(registry)
    collect = Collector()
    watcher.start(collect)
    try:
        assert watcher.wait_polls(1, 30.0)
        registry.set_user("Path", "C:\\CUDA\\v12.4\\bin")
        collect.wait_for(1)
        registry.set_user("TEMP", "%USERPROFILE%\\AppData\\Local\\Temp")  # not watched
        assert watcher.wait_polls(3, 30.0)
    finally:
        watcher.stop()

    assert facts(collect.changes) == [(ENV, "PATH", "C:\\CUDA\\v11.8\\bin", "C:\\CUDA\\v12.4\\bin")]
    assert watcher.current is not None
    assert watcher.current.values["PATH"] == "C:\\Windows\\system32;C:\\CUDA\\v12.4\\bin"


def test_registry_module_imports_on_linux() -> None:
    from monitor.watch import registry_windows

    assert registry_windows.SYSTEM_KEY.endswith("Session Manager\\Environment")
