"""Linux notifications end to end: a private dbus-daemon and a recording notification server."""

from __future__ import annotations

import os
import threading
from datetime import datetime

import pytest

from monitor.messages import Notification
from monitor.model import ReportDiff, Verdict
from monitor.notify import Notifier, NotifyError
from monitor.notify_dbus import DbusNotifier, session_bus_address
from tests.dbus_session import (
    RecordingServer,
    notification_session,
    session_bus,
    use_session_bus,
)
from tests.test_messages import CUDNN8_NOT_FOUND, driver_update_all_fine
from tests.test_notify import NIGHT, Clock


@pytest.fixture
def server(tmp_path, monkeypatch):
    with notification_session(tmp_path, monkeypatch) as server:
        yield server


@pytest.fixture
def clicks():
    """on_click's calls, and an event set at each."""
    seen: list[Notification] = []
    event = threading.Event()

    def on_click(notification: Notification) -> None:
        seen.append(notification)
        event.set()

    return seen, event, on_click


@pytest.fixture
def dbus(clicks):
    notifier = DbusNotifier(app_icon="/usr/share/icons/tf-stack-monitor.png", on_click=clicks[2])
    yield notifier
    notifier.stop()


def test_a_driver_update_gives_exactly_one_notification_naming_both_versions(server, dbus):
    notifier = Notifier([dbus], clock=Clock())

    assert notifier.update(driver_update_all_fine()) == "sent via dbus"

    [shown] = server.notifications
    assert shown.summary == "NVIDIA driver updated to 550.54.14"
    assert "535.104.05" in shown.body and "550.54.14" in shown.body
    assert shown.app_name == "tf-stack-monitor"
    assert shown.app_icon == "/usr/share/icons/tf-stack-monitor.png"
    assert shown.actions == ("default", "Show report")
    assert shown.hints == {"urgency": 1}
    assert shown.expire_timeout == -1
    assert shown.replaces_id == 0


def test_a_broken_stack_is_critical_and_replaces_the_last_notification(server, dbus):
    dbus.show(Notification("NVIDIA driver updated to 550.54.14", "535.104.05 → 550.54.14"))
    dbus.show(Notification("TensorFlow GPU stack broken", "libcudnn.so.8", "critical"))
    dbus.show(Notification("GPU test passed", "on the GPU", key="gpu-test"))

    first, broken, other = server.notifications
    assert broken.replaces_id == first.id and broken.id == first.id
    assert broken.hints == {"urgency": 2}
    assert other.replaces_id == 0 and other.id != first.id


def test_markup_servers_get_an_escaped_body_and_others_the_text(tmp_path, monkeypatch):
    body = "pip install 'tensorflow[and-cuda]' 2>&1 | grep <x>"
    with notification_session(tmp_path / "markup", monkeypatch) as markup:
        notifier = DbusNotifier()
        try:
            notifier.show(Notification("t", body))
        finally:
            notifier.stop()
    with notification_session(tmp_path / "plain", monkeypatch, ("body",)) as plain:
        notifier = DbusNotifier()
        try:
            notifier.show(Notification("t", body))
        finally:
            notifier.stop()

    assert (
        markup.notifications[0].body
        == "pip install 'tensorflow[and-cuda]' 2&gt;&amp;1 | grep &lt;x&gt;"
    )
    assert plain.notifications[0].body == body
    assert plain.notifications[0].actions == ()  # no on_click: nothing to offer


@pytest.mark.parametrize(
    "broadcast", [False, True], ids=["sent to us (dunst)", "broadcast (GNOME)"]
)
def test_a_click_calls_on_click_with_the_notification(server, dbus, clicks, broadcast):
    seen, event, _ = clicks
    broken = Notification("TensorFlow GPU stack broken", "libcudnn.so.8", "critical", ("x",))
    dbus.show(broken)

    server.click(server.notifications[0].id, broadcast=broadcast)

    assert event.wait(10)
    assert seen == [broken]


def test_a_click_on_a_closed_or_foreign_notification_is_ignored(server, dbus, clicks):
    seen, event, _ = clicks
    dbus.show(Notification("one", "1"))
    [mine] = server.notifications
    server.dismiss(mine.id)
    dbus.show(Notification("two", "2", key="other"))  # its reply comes after the Closed signal
    [_, second] = server.notifications

    server.click(mine.id, broadcast=True)
    server.click(second.id + 100, broadcast=True)
    server.click(second.id, broadcast=True)

    assert event.wait(10)
    assert [n.title for n in seen] == ["two"]
    dbus.show(Notification("one again", "1"))
    assert server.notifications[-1].replaces_id == 0  # the dismissed one is not "replaced"


def test_a_slow_click_handler_does_not_block_notifications(server):
    release = threading.Event()
    started = threading.Event()

    def on_click(notification: Notification) -> None:
        started.set()
        release.wait(10)

    notifier = DbusNotifier(on_click=on_click, timeout=2)
    try:
        notifier.show(Notification("one", "1"))
        server.click(server.notifications[0].id)
        assert started.wait(10)
        notifier.show(Notification("two", "2"))  # while the handler still runs
        assert [n.summary for n in server.notifications] == ["one", "two"]
    finally:
        release.set()
        notifier.stop()


def test_no_notification_server_is_a_clear_message(tmp_path, monkeypatch):
    with session_bus(tmp_path) as address:
        use_session_bus(monkeypatch, address)
        dbus = DbusNotifier()
        notifier = Notifier([dbus], clock=Clock())
        try:
            outcome = notifier.update(driver_update_all_fine())
        finally:
            notifier.stop()

    assert outcome.startswith("logged only (dbus: no notification server on the session bus")
    assert "org.freedesktop.Notifications" in outcome


def test_no_session_bus_is_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    dbus = DbusNotifier()

    with pytest.raises(NotifyError, match="no D-Bus session bus: DBUS_SESSION_BUS_ADDRESS is not"):
        dbus.show(Notification("t", "b"))
    dbus.stop()


def test_the_user_bus_in_xdg_runtime_dir_is_found_without_the_variable(tmp_path):
    runtime = tmp_path / "run user,1000"
    runtime.mkdir()
    (runtime / "bus").touch()

    address = session_bus_address({"XDG_RUNTIME_DIR": str(runtime)})

    assert address == f"unix:path={tmp_path}/run%20user%2c1000/bus"
    assert session_bus_address({"DBUS_SESSION_BUS_ADDRESS": "unix:path=/x"}) == "unix:path=/x"


def test_reconnects_after_the_bus_went_away(tmp_path, monkeypatch, dbus):
    with notification_session(tmp_path / "first", monkeypatch) as first:
        dbus.show(Notification("one", "1"))
        assert len(first.notifications) == 1

    with pytest.raises(NotifyError, match="cannot connect to the D-Bus session bus"):
        dbus.show(Notification("lost", "no bus at all"))

    with notification_session(tmp_path / "second", monkeypatch) as second:
        dbus.show(Notification("two", "2"))
        [shown] = second.notifications
        assert shown.summary == "two"
        assert shown.replaces_id == 0  # ids of the old server mean nothing here


def test_a_storm_of_20_diffs_shows_at_most_the_burst_and_one_summary(server, dbus):
    clock = Clock()
    notifier = Notifier([dbus], interval=60, burst=3, clock=clock)
    broke = ReportDiff(Verdict.HEALTHY, Verdict.BROKEN, appeared=(CUDNN8_NOT_FOUND,))
    healed = ReportDiff(Verdict.BROKEN, Verdict.HEALTHY, cleared=(CUDNN8_NOT_FOUND,))

    for i in range(20):
        notifier.update(broke if i % 2 == 0 else healed)
        clock.advance(0.5)
    assert len(server.notifications) == 3
    clock.advance(notifier.due_in() or 0)
    notifier.flush()

    shown = server.notifications
    assert len(shown) == 4
    assert shown[-1].summary == "TensorFlow GPU stack is healthy again"
    assert {n.id for n in shown} == {shown[0].id}  # each replaced the one before


def test_quiet_hours_show_nothing_until_they_end(server, dbus):
    clock = Clock(datetime(2025, 6, 11, 23, 0).timestamp())
    notifier = Notifier([dbus], quiet_hours=NIGHT, clock=clock)

    assert notifier.update(driver_update_all_fine()) == "held: quiet hours until 07:00"
    assert server.notifications == []
    clock.advance(8 * 3600)
    assert notifier.flush() == "sent via dbus"

    [shown] = server.notifications
    assert "535.104.05 → 550.54.14" in shown.body


def test_stop_joins_its_threads_and_show_connects_again(server, clicks):
    notifier = DbusNotifier(on_click=clicks[2])
    before = threading.active_count()
    notifier.show(Notification("one", "1"))
    assert threading.active_count() == before + 2  # the reader and the click thread

    notifier.stop()
    assert threading.active_count() == before
    notifier.show(Notification("two", "2"))
    notifier.stop()

    assert [n.summary for n in server.notifications] == ["one", "two"]


def test_the_recording_server_refuses_a_second_owner(server, monkeypatch):
    with pytest.raises(RuntimeError, match="already owned"):
        RecordingServer(os.environ["DBUS_SESSION_BUS_ADDRESS"])
