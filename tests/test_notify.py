"""When notifications go out (rate limit, quiet hours), and the macOS and Windows backends."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime
from datetime import time as clock_time

import pytest

from monitor.config import QuietHours
from monitor.messages import Notification
from monitor.model import FactChange, Link, ReportDiff, Verdict
from monitor.notify import (
    Notifier,
    NotifyError,
    OsascriptNotifier,
    TrayNotifier,
    default_backends,
    osascript_argv,
)
from tests.test_messages import (
    CUDNN8_NOT_FOUND,
    driver_update_all_fine,
    driver_update_breaks_cudnn,
)

NOON = datetime(2025, 6, 11, 12, 0).timestamp()  # local time, far from any DST switch
BROKE = ReportDiff(Verdict.HEALTHY, Verdict.BROKEN, appeared=(CUDNN8_NOT_FOUND,))
HEALED = ReportDiff(Verdict.BROKEN, Verdict.HEALTHY, cleared=(CUDNN8_NOT_FOUND,))
NOTHING = ReportDiff(Verdict.HEALTHY, Verdict.HEALTHY)
STILL_BROKEN = ReportDiff(Verdict.BROKEN, Verdict.BROKEN)
NIGHT = QuietHours(clock_time(22), clock_time(7))


class Clock:
    def __init__(self, now: float = NOON) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Recorder:
    """A backend that keeps what it was asked to show."""

    def __init__(self, name: str = "recorder", error: Exception | None = None) -> None:
        self.name = name
        self.error = error
        self.shown: list[Notification] = []
        self.stopped = False

    def show(self, notification: Notification) -> None:
        if self.error is not None:
            raise self.error
        self.shown.append(notification)

    def stop(self) -> None:
        self.stopped = True


def at(hour: int, minute: int = 0) -> float:
    return datetime(2025, 6, 11, hour, minute).timestamp()


# --------------------------------------------------------------------------- the policy


def test_a_driver_update_is_sent_once():
    recorder = Recorder()
    notifier = Notifier([recorder], clock=Clock())

    outcome = notifier.update(driver_update_all_fine())

    assert outcome == "sent via recorder"
    assert [n.title for n in recorder.shown] == ["NVIDIA driver updated to 550.54.14"]
    assert notifier.due_in() is None


def test_a_diff_not_worth_telling_sends_nothing():
    recorder = Recorder()
    notifier = Notifier([recorder], clock=Clock())

    assert notifier.update(NOTHING) == "nothing to tell"
    assert recorder.shown == []


def test_a_storm_during_an_install_gives_the_burst_then_one_summary():
    clock, recorder = Clock(), Recorder()
    notifier = Notifier([recorder], interval=60, burst=3, clock=clock)

    outcomes = []
    for i in range(20):  # the install flips the stack between broken and healthy every second
        outcomes.append(notifier.update(BROKE if i % 2 == 0 else HEALED))
        clock.advance(1)

    assert outcomes[:3] == ["sent via recorder"] * 3
    assert outcomes[3] == "held: rate limit, next in 57 s"
    assert outcomes[4].startswith("merged into the held notification (rate limit")
    assert len(recorder.shown) == 3
    assert notifier.flush() is None  # not due yet
    clock.advance(notifier.due_in() or 0)
    assert notifier.flush() == "sent via recorder (summary of 17 checks)"
    # The user last saw "broken"; the stack ended healthy: that is what the summary says.
    titles = [n.title for n in recorder.shown]
    assert titles == [
        "TensorFlow GPU stack broken",
        "TensorFlow GPU stack is healthy again",
        "TensorFlow GPU stack broken",
        "TensorFlow GPU stack is healthy again",
    ]
    assert notifier.due_in() is None


def test_a_breakage_still_there_after_the_hold_is_never_lost():
    clock, recorder = Clock(), Recorder()
    notifier = Notifier([recorder], interval=60, burst=1, clock=clock)
    notifier.update(driver_update_all_fine())

    assert notifier.update(BROKE).startswith("held: rate limit")
    clock.advance(30)
    assert notifier.update(STILL_BROKEN).startswith("merged")
    clock.advance(30)
    outcome = notifier.update(STILL_BROKEN)  # the next check after the hold sends it

    assert outcome == "sent via recorder (summary of 3 checks)"
    assert recorder.shown[-1].title == "TensorFlow GPU stack broken"
    assert recorder.shown[-1].urgency == "critical"


def test_a_breakage_that_healed_during_the_hold_is_only_logged(caplog):
    clock, recorder = Clock(), Recorder()
    notifier = Notifier([recorder], interval=60, burst=1, clock=clock)
    notifier.update(driver_update_all_fine())
    caplog.set_level(logging.INFO, logger="monitor.notify")

    notifier.update(BROKE)
    notifier.update(HEALED)
    clock.advance(60)

    assert notifier.flush() == "dropped: nothing left to tell"
    assert len(recorder.shown) == 1
    held = [r.getMessage() for r in caplog.records if "held: rate limit" in r.getMessage()]
    assert held == [
        "notification (held: rate limit, next in 60 s): TensorFlow GPU stack broken: "
        "libcudnn.so.8 is not found by the loader. | "
        "Fix: /home/ada/venvs/tf/bin/python -m pip install nvidia-cudnn-cu11==8.6.0.163"
    ]
    assert any("nothing left to tell after 2 held checks" in r.getMessage() for r in caplog.records)


def test_tokens_come_back_one_per_interval():
    clock, recorder = Clock(), Recorder()
    notifier = Notifier([recorder], interval=60, burst=2, clock=clock)
    for _ in range(2):
        notifier.update(BROKE)
        notifier.update(HEALED)  # the second pair is held
    clock.advance(60)
    notifier.flush()  # nothing left: the pair cancelled out

    assert notifier.update(BROKE) == "sent via recorder"  # a token came back


def test_quiet_hours_hold_until_morning_and_then_tell_what_happened_overnight():
    clock, recorder = Clock(at(23, 30)), Recorder()
    notifier = Notifier([recorder], quiet_hours=NIGHT, clock=clock)

    assert notifier.update(driver_update_breaks_cudnn()) == "held: quiet hours until 07:00"
    clock.advance(3600)
    second = ReportDiff(
        Verdict.BROKEN,
        Verdict.BROKEN,
        (FactChange(Link.DRIVER, "NVIDIA driver", "550.54.14", "550.67"),),
    )
    assert notifier.update(second).startswith("merged")
    assert recorder.shown == []
    assert notifier.due_in() == pytest.approx(6.5 * 3600)

    clock.advance(6.5 * 3600)  # 07:00 the next morning
    assert notifier.flush() == "sent via recorder (summary of 2 checks)"
    [n] = recorder.shown
    assert n.title == "TensorFlow GPU stack broken"
    assert "After the NVIDIA driver update 535.104.05 → 550.67: libcudnn.so.8" in n.body


def test_no_quiet_hours_in_the_afternoon():
    notifier = Notifier([Recorder()], quiet_hours=NIGHT, clock=Clock())

    assert notifier.update(driver_update_all_fine()) == "sent via recorder"


def test_quiet_hours_within_a_day_end_the_same_day():
    lunch = QuietHours(clock_time(11, 30), clock_time(13))
    notifier = Notifier([Recorder()], quiet_hours=lunch, clock=Clock())

    assert notifier.update(BROKE) == "held: quiet hours until 13:00"
    assert notifier.due_in() == 3600


def test_send_is_for_what_the_user_asked_for_and_ignores_quiet_hours():
    recorder = Recorder()
    notifier = Notifier(
        [recorder],
        burst=1,
        quiet_hours=QuietHours(clock_time(0), clock_time(23, 59)),
        clock=Clock(),
    )

    outcome = notifier.send(Notification("GPU test passed", "12,345 GFLOPS on the RTX 4090"))

    assert outcome == "sent via recorder"
    assert notifier.update(driver_update_all_fine()).startswith("held: quiet hours")


# --------------------------------------------------------------------------- failing backends


def test_the_next_backend_is_tried_and_a_failure_is_logged_once(caplog):
    broken = Recorder("dbus", NotifyError("no notification server on the session bus"))
    fallback = Recorder("fallback")
    notifier = Notifier([broken, fallback], clock=Clock())
    caplog.set_level(logging.DEBUG, logger="monitor.notify")

    assert notifier.send(Notification("one", "1")) == "sent via fallback"
    assert notifier.send(Notification("two", "2")) == "sent via fallback"

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "desktop notifications through dbus failed: no notification server on the session bus"
    ]
    broken.error = None
    assert notifier.send(Notification("three", "3")) == "sent via dbus"
    assert "desktop notifications through dbus work again" in caplog.messages


def test_when_every_backend_fails_the_log_has_it():
    failing = Recorder("dbus", NotifyError("no D-Bus session bus"))
    notifier = Notifier([failing], clock=Clock())

    assert notifier.update(BROKE) == "logged only (dbus: no D-Bus session bus)"
    assert Notifier([], clock=Clock()).update(BROKE) == "logged only (no desktop backend)"


def test_a_backend_bug_does_not_reach_the_daemon(caplog):
    buggy = Recorder("buggy", RuntimeError("boom"))
    notifier = Notifier([buggy], clock=Clock())

    assert notifier.update(BROKE) == "logged only (buggy: RuntimeError: boom)"
    assert "notification backend buggy failed" in caplog.messages


def test_stop_stops_every_backend():
    backends = [Recorder("a"), Recorder("b")]

    Notifier(backends, clock=Clock()).stop()

    assert all(b.stopped for b in backends)


# --------------------------------------------------------------------------- macOS


def test_osascript_gets_the_texts_as_arguments_so_nothing_needs_escaping():
    n = Notification('Say "hi" \\ to $HOME', "line one\nit's `here` & there")

    argv = osascript_argv(n)

    assert argv == [
        "osascript",
        "-e",
        "on run argv",
        "-e",
        "display notification (item 2 of argv) with title (item 1 of argv)",
        "-e",
        "end run",
        'Say "hi" \\ to $HOME',
        "line one\nit's `here` & there",
    ]


def test_osascript_never_gets_a_text_that_looks_like_an_option():
    argv = osascript_argv(Notification("-e", "-l JavaScript"))

    assert argv[-2:] == [" -e", " -l JavaScript"]


@pytest.fixture
def fake_osascript(tmp_path, monkeypatch):
    """An `osascript` on PATH that writes its arguments to a JSON file."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "osascript"
    record = tmp_path / "argv.json"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"open({str(record)!r}, 'w').write(json.dumps(sys.argv[1:]))\n"
        "if os.environ.get('FAKE_OSASCRIPT_FAIL'):\n"
        "    sys.stderr.write('execution error: Not authorised (-1743)\\n'); sys.exit(1)\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    return record


def test_the_macos_backend_runs_osascript_with_the_texts(fake_osascript):
    n = Notification("TensorFlow GPU stack broken", 'After "it": libcudnn.so.8 missing')

    OsascriptNotifier().show(n)

    assert json.loads(fake_osascript.read_text()) == osascript_argv(n)[1:]


def test_a_failing_osascript_is_a_clear_error(fake_osascript, monkeypatch):
    monkeypatch.setenv("FAKE_OSASCRIPT_FAIL", "1")

    with pytest.raises(NotifyError, match=r"osascript exited 1: .*Not authorised"):
        OsascriptNotifier().show(Notification("t", "b"))


def test_no_osascript_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(NotifyError, match="osascript could not be run"):
        OsascriptNotifier().show(Notification("t", "b"))


# --------------------------------------------------------------------------- Windows


def test_the_tray_balloon_gets_message_and_title_within_its_fields():
    calls = []
    tray = TrayNotifier(lambda message, title: calls.append((message, title)))

    tray.show(Notification("T" * 80, "B" * 300))

    assert calls == [("B" * 250, "T" * 63)]


def test_a_tray_that_cannot_notify_is_a_clear_error():
    def notify(message: str, title: str) -> None:
        raise NotImplementedError("the xorg backend has no notifications")

    with pytest.raises(NotifyError, match="tray icon could not show it: the xorg backend"):
        TrayNotifier(notify).show(Notification("t", "b"))


# --------------------------------------------------------------------------- choice


def test_each_os_gets_its_backend():
    linux = default_backends("Linux", app_icon="/usr/share/icons/tf.png")
    windows = default_backends("Windows", tray_notify=lambda message, title: None)

    assert [b.name for b in linux] == ["dbus"]
    assert [b.name for b in default_backends("Darwin")] == ["osascript"]
    assert [b.name for b in windows] == ["tray"]
    assert default_backends("Windows") == []  # no tray icon yet: the log only
    assert default_backends("FreeBSD") == []
    linux[0].stop()  # never connected: nothing to stop, and no error


def test_a_wall_clock_set_back_mutes_for_one_interval_not_for_the_jump():
    clock, recorder = Clock(), Recorder()
    notifier = Notifier([recorder], interval=60, burst=1, clock=clock)
    notifier.update(BROKE)

    clock.advance(-3600)  # NTP or the user corrected the time
    assert notifier.update(HEALED) == "held: rate limit, next in 60 s"
    clock.advance(60)

    assert notifier.flush() == "sent via recorder"
