"""The daemon's loop with real parts: the real check over a fake machine, the real fake NVML
library polled by the real driver trigger, real watchdog observers, real SQLite history."""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field

import pytest
from fake_nvml import FakeNvml, fake_nvml_fixture  # noqa: F401 (fixture)

from monitor.check import run_check
from monitor.daemon import Monitor, Schedule, default_triggers, headline
from monitor.facts.paths import Root
from monitor.history import History
from monitor.model import Change, ChangeKind, Link, MonitorState, Report, ReportDiff, Verdict
from monitor.watch.driver import DriverWatcher

QUICK = Schedule(debounce_quiet_s=0.3, debounce_max_wait_s=5.0, load_test_on_change=True)


@dataclass
class Recorder:
    """A publisher that keeps what it was told (the tray, metrics and notifier do the same)."""

    reports: list[tuple[Report, ReportDiff, tuple[Change, ...]]] = field(default_factory=list)
    states: list[MonitorState] = field(default_factory=list)
    published_event: threading.Event = field(default_factory=threading.Event)

    def published(self, report, diff, changes) -> None:
        self.reports.append((report, diff, tuple(changes)))
        self.published_event.set()

    def state_changed(self, monitor) -> None:
        self.states.append(monitor.status.state)

    def wait_for(self, count: int, timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.reports) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return len(self.reports) >= count


class Running:
    """Serve a Monitor on a thread for the test's duration."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self.thread = threading.Thread(target=monitor.serve, name="test-monitor")

    def __enter__(self) -> Monitor:
        self.thread.start()
        return self.monitor

    def __exit__(self, *exc) -> None:
        self.monitor.stop()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()


def _checker(tmp_path, fake: FakeNvml):
    root = tmp_path / "machine"
    root.mkdir(exist_ok=True)
    return lambda: run_check(
        root=str(root), env={"PATH": ""}, pythons=[sys.executable], nvml_library=str(fake.library)
    )


def _no_load_test(report: Report) -> Report:
    raise AssertionError("no load test was asked for")


def test_a_driver_update_while_running_gives_one_check_naming_both_versions(
    tmp_path, fake_nvml: FakeNvml
):
    recorder = Recorder()
    load_tests: list[Report] = []
    watcher = DriverWatcher(interval_s=0.2, library_path=str(fake_nvml.library))
    monitor = Monitor(
        _checker(tmp_path, fake_nvml),
        lambda report: load_tests.append(report) or report,
        schedule=QUICK,
        triggers=[watcher],
        publishers=[recorder],
    )
    with Running(monitor):
        assert recorder.wait_for(1)  # the first check, at start
        assert watcher.wait_polls(2, timeout_s=10)
        fake_nvml.set(driver_version="580.65.06", cuda_driver_version=13000)
        assert recorder.wait_for(2)
        time.sleep(1.0)  # more polls: the same driver must not give more checks
    assert len(recorder.reports) == 2
    _, diff, changes = recorder.reports[1]
    assert {c.kind for c in changes} == {ChangeKind.DRIVER}  # version and CUDA version
    driver = [f for f in diff.facts if f.subject == "NVIDIA driver"]
    assert driver and (driver[0].before, driver[0].after) == ("550.54.14", "580.65.06")
    assert len(load_tests) == 2  # at start and after the driver change (touches the stack)


def test_history_keeps_every_check_and_the_next_start_diffs_against_it(
    tmp_path, fake_nvml: FakeNvml
):
    db = tmp_path / "history.sqlite3"
    with History(db) as history:
        monitor = Monitor(
            _checker(tmp_path, fake_nvml),
            _no_load_test,
            history=history,
            schedule=Schedule(load_test_on_change=False),
        )
        monitor.run_check([Change(ChangeKind.MANUAL, "check now")], gpu_test=False)
        first = monitor.last_report
    fake_nvml.set(driver_version="580.65.06", cuda_driver_version=13000)
    with History(db) as history:
        again = Monitor(
            _checker(tmp_path, fake_nvml),
            _no_load_test,
            history=history,
            last_report=history.last_report(),
            schedule=Schedule(load_test_on_change=False),
        )
        assert again.last_report is not None
        assert again.last_report.checked_at == first.checked_at
        again.run_check([Change(ChangeKind.PERIODIC, "monitor started")], gpu_test=False)
        assert any(f.link is Link.DRIVER and f.after == "580.65.06" for f in again.last_diff.facts)
        assert len(history.timeline(transitions_only=False)) == 2


def test_a_failing_check_is_the_monitor_error_state_and_the_loop_goes_on(tmp_path):
    calls = []

    def flaky() -> Report:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("disk went away")
        return run_check(root=str(tmp_path), env={"PATH": ""}, pythons=[sys.executable])

    recorder = Recorder()
    monitor = Monitor(
        flaky, _no_load_test, publishers=[recorder], schedule=Schedule(load_test_on_change=False)
    )
    assert monitor.run_check((), gpu_test=False) is None
    assert monitor.status.state is MonitorState.ERROR
    assert "disk went away" in monitor.status.problem
    assert monitor.run_check((), gpu_test=False) is not None
    assert monitor.status.problem == ""
    assert monitor.status.state.value == monitor.last_report.verdict.value
    assert MonitorState.ERROR in recorder.states and recorder.states[-1] is not MonitorState.ERROR


def test_a_publisher_that_raises_does_not_stop_the_others(tmp_path):
    class Broken:
        def published(self, report, diff, changes):
            raise RuntimeError("metrics exploded")

    recorder = Recorder()
    monitor = Monitor(
        lambda: run_check(root=str(tmp_path), env={"PATH": ""}, pythons=[sys.executable]),
        _no_load_test,
        publishers=[Broken(), recorder],
    )
    monitor.run_check((), gpu_test=False)
    assert len(recorder.reports) == 1


def test_pause_holds_changes_and_resume_checks_them(tmp_path):
    recorder = Recorder()
    monitor = Monitor(
        lambda: run_check(root=str(tmp_path), env={"PATH": ""}, pythons=[sys.executable]),
        _no_load_test,
        schedule=Schedule(debounce_quiet_s=0.1, debounce_max_wait_s=1.0, load_test_on_change=False),
        publishers=[recorder],
    )
    with Running(monitor):
        assert recorder.wait_for(1)
        monitor.pause()
        assert monitor.status.state is MonitorState.PAUSED
        monitor.emit(Change(ChangeKind.ENVIRONMENT, "PATH", "/a", "/a:/b"))
        time.sleep(0.6)
        assert len(recorder.reports) == 1  # nothing checked while paused
        monitor.resume()
        assert recorder.wait_for(2)
    assert [c.subject for c in recorder.reports[1][2]] == ["PATH"]
    assert monitor.status.state is not MonitorState.PAUSED


def test_check_now_runs_the_load_test_when_asked(tmp_path):
    ran = []
    monitor = Monitor(
        lambda: run_check(root=str(tmp_path), env={"PATH": ""}, pythons=[sys.executable]),
        lambda report: ran.append(1) or report,
        schedule=Schedule(load_test_on_change=False),
    )
    with Running(monitor):
        assert monitor.check_now(gpu_test=True).wait(20)
        assert monitor.check_now().wait(20)
    assert len(ran) == 1


def test_the_periodic_full_check_catches_what_no_trigger_saw(tmp_path):
    recorder = Recorder()
    monitor = Monitor(
        lambda: run_check(root=str(tmp_path), env={"PATH": ""}, pythons=[sys.executable]),
        _no_load_test,
        schedule=Schedule(full_check_s=0.5, load_test_on_change=False),
        publishers=[recorder],
    )
    with Running(monitor):
        assert recorder.wait_for(3, timeout=20)
    assert recorder.reports[2][2][0].subject == "periodic full check"


def test_status_describes_the_last_check(tmp_path):
    monitor = Monitor(
        lambda: run_check(root=str(tmp_path), env={"PATH": ""}, pythons=[sys.executable]),
        _no_load_test,
        extra_status=lambda: {"watches": {"files": 3}},
    )
    assert monitor.describe()["headline"] == "no check yet"
    report = monitor.run_check((), gpu_test=False)
    status = monitor.describe()
    assert status["verdict"] == report.verdict.value and status["checks"] == 1
    assert status["headline"] == headline(report)
    assert status["watches"] == {"files": 3}
    assert sum(status["findings"].values()) == len(report.findings)


def test_headline_names_the_worst_finding(tmp_path):
    report = run_check(root=str(tmp_path), env={"PATH": ""}, pythons=[sys.executable])
    if report.verdict is Verdict.HEALTHY:
        pytest.skip("an empty machine is never healthy")
    first_error = next(f for f in report.findings if f.severity.value == "error")
    assert headline(report) == f"Broken: {first_error.title}"


def test_default_triggers_watch_a_new_toolkit_and_count_their_watches(tmp_path, fake_nvml):
    root = tmp_path / "machine"
    (root / "usr/local").mkdir(parents=True)
    (root / "etc/ld.so.conf.d").mkdir(parents=True)
    recorder = Recorder()
    check = lambda: run_check(  # noqa: E731
        root=str(root),
        env={"PATH": ""},
        pythons=[sys.executable],
        nvml_library=str(fake_nvml.library),
    )
    triggers, retarget, watches = default_triggers(
        check(), Root(str(root)), 30.0, str(fake_nvml.library)
    )
    monitor = Monitor(
        check,
        _no_load_test,
        schedule=Schedule(debounce_quiet_s=0.3, debounce_max_wait_s=5.0, load_test_on_change=False),
        triggers=triggers,
        publishers=[recorder],
        retarget=retarget,
    )
    with Running(monitor):
        assert recorder.wait_for(1)
        assert watches()["files"] >= 1
        toolkit = root / "usr/local/cuda-12.4"
        (toolkit / "bin").mkdir(parents=True)
        (toolkit / "version.json").write_text('{"cuda": {"version": "12.4.1"}}')
        assert recorder.wait_for(2)
    _, diff, changes = recorder.reports[1]
    assert any(c.kind is ChangeKind.TOOLKIT for c in changes)
    assert any(f.link is Link.CUDA and "cuda-12.4" in f.subject for f in diff.facts)


def test_a_driver_update_while_running_gives_exactly_one_desktop_notification(
    tmp_path, fake_nvml: FakeNvml, monkeypatch
):
    from dbus_session import notification_session

    from monitor.notify import Notifier, default_backends
    from monitor.service import NotifyPublisher

    with notification_session(tmp_path / "bus", monkeypatch) as server:
        notifier = Notifier(backends=default_backends("Linux"))
        recorder = Recorder()
        watcher = DriverWatcher(interval_s=0.2, library_path=str(fake_nvml.library))
        monitor = Monitor(
            _checker(tmp_path, fake_nvml),
            _no_load_test,
            schedule=Schedule(
                debounce_quiet_s=0.3, debounce_max_wait_s=5.0, load_test_on_change=False
            ),
            triggers=[watcher],
            publishers=[NotifyPublisher(notifier), recorder],
        )
        try:
            with Running(monitor):
                assert recorder.wait_for(1)
                first = len(server.notifications)  # the first check may tell "broken"
                assert watcher.wait_polls(2, timeout_s=10)
                fake_nvml.set(driver_version="580.65.06", cuda_driver_version=13000)
                assert recorder.wait_for(2)
                time.sleep(1.0)
        finally:
            notifier.stop()
        told = server.notifications[first:]
    assert len(told) == 1
    text = f"{told[0].summary}\n{told[0].body}"
    assert "550.54.14" in text and "580.65.06" in text


@pytest.mark.parametrize("files", [5_000, pytest.param(50_000, marks=pytest.mark.slow)])
def test_an_install_storm_gives_exactly_one_check(tmp_path, fake_nvml, files):
    """An installer writes a whole toolkit under /usr/local while the daemon runs: one check
    follows, after the install went quiet, and its diff names the new toolkit."""
    import json
    import subprocess
    from pathlib import Path

    root = tmp_path / "machine"
    (root / "usr/local").mkdir(parents=True)
    (root / "etc/ld.so.conf.d").mkdir(parents=True)
    recorder = Recorder()

    def check() -> Report:
        return run_check(
            root=str(root),
            env={"PATH": ""},
            pythons=[sys.executable],
            nvml_library=str(fake_nvml.library),
        )

    triggers, retarget, _ = default_triggers(check(), Root(str(root)), 30.0, str(fake_nvml.library))
    monitor = Monitor(
        check,
        _no_load_test,
        schedule=Schedule(
            debounce_quiet_s=1.0, debounce_max_wait_s=120.0, load_test_on_change=False
        ),
        triggers=triggers,
        publishers=[recorder],
        retarget=retarget,
    )
    writer = Path(__file__).with_name("storm_writer.py")
    with Running(monitor):
        assert recorder.wait_for(1)
        done = subprocess.run(
            [sys.executable, str(writer), str(root / "usr/local/cuda-12.9"), str(files), "200"],
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        )
        assert json.loads(done.stdout)["files"] == files
        assert recorder.wait_for(2, timeout=60)
        time.sleep(3.0)  # well past the quiet period: no second check may follow
    assert len(recorder.reports) == 2
    _, diff, changes = recorder.reports[1]
    assert any(c.kind is ChangeKind.TOOLKIT for c in changes)
    assert any(f.link is Link.CUDA and "cuda-12.9" in f.subject for f in diff.facts)
