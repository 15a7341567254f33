"""A private D-Bus session bus and a recording org.freedesktop.Notifications server.

For any test that needs a desktop's notification server (notifications, the tray's gtk
backend, which calls CloseNotification on stop). Use it as

    @pytest.fixture
    def server(tmp_path, monkeypatch):
        with notification_session(tmp_path, monkeypatch) as server:
            yield server

The bus is `dbus-daemon` with a config of its own (no service activation, so nothing of the
machine's starts on it); the server is jeepney in a thread. Both are stopped and joined when
the block ends.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import subprocess
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from jeepney import (
    DBusAddress,
    HeaderFields,
    Message,
    MessageType,
    message_bus,
    new_error,
    new_method_return,
    new_signal,
)
from jeepney.io.blocking import open_dbus_connection

BUS_NAME = "org.freedesktop.Notifications"
OBJECT_PATH = "/org/freedesktop/Notifications"
CAPABILITIES = ("actions", "body", "body-markup")

_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir={directory}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


@contextlib.contextmanager
def session_bus(directory: Path) -> Iterator[str]:
    """A dbus-daemon of our own; yields its address. Its log is directory/dbus-daemon.log."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "session.conf"
    config.write_text(_CONFIG.format(directory=directory))
    with (directory / "dbus-daemon.log").open("w") as errors:
        daemon = subprocess.Popen(
            ["dbus-daemon", "--nofork", "--print-address=1", f"--config-file={config}"],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
    try:
        yield _first_line(daemon, timeout=15)
    finally:
        daemon.terminate()
        daemon.wait(timeout=15)
        daemon.stdout.close()  # type: ignore[union-attr]


def _first_line(daemon: subprocess.Popen[str], timeout: float) -> str:
    with selectors.DefaultSelector() as selector:
        selector.register(daemon.stdout, selectors.EVENT_READ)  # type: ignore[arg-type]
        if not selector.select(timeout):
            raise RuntimeError(f"dbus-daemon printed no address within {timeout} s")
    address = daemon.stdout.readline().strip()  # type: ignore[union-attr]
    if not address:
        raise RuntimeError(f"dbus-daemon exited {daemon.wait(timeout)} without an address")
    return address


@dataclass(frozen=True)
class Recorded:
    """One Notify call as the server received it (hints without their D-Bus signatures)."""

    id: int
    app_name: str
    replaces_id: int
    app_icon: str
    summary: str
    body: str
    actions: tuple[str, ...]
    hints: dict[str, Any]
    expire_timeout: int
    sender: str


class RecordingServer:
    """Owns org.freedesktop.Notifications and records what it is asked to show."""

    def __init__(self, address: str, capabilities: Sequence[str] = CAPABILITIES) -> None:
        self.capabilities = list(capabilities)
        self.closed: list[int] = []
        self._records: list[Recorded] = []
        self._changed = threading.Condition()
        self._next_id = 1
        self._send_lock = threading.Lock()
        self._conn = open_dbus_connection(bus=address)
        (owned,) = self._conn.send_and_get_reply(
            message_bus.RequestName(BUS_NAME, 4),
            timeout=10,  # 4: do not queue
        ).body
        if owned != 1:
            self._conn.close()
            raise RuntimeError(f"{BUS_NAME} is already owned on {address}")
        self._thread = threading.Thread(target=self._serve, name="notification-server")
        self._thread.start()

    @property
    def notifications(self) -> list[Recorded]:
        with self._changed:
            return list(self._records)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Recorded]:
        """The notifications once there are at least `count` (fails the test after timeout)."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._records) >= count, timeout):
                pytest.fail(f"{count} notifications expected, {len(self._records)} came")
            return list(self._records)

    def click(self, notification_id: int, *, broadcast: bool = False) -> None:
        """What the server does when the user clicks: ActionInvoked "default". dunst sends
        it to the notification's sender only, GNOME Shell to everyone."""
        self._emit("ActionInvoked", "us", (notification_id, "default"), broadcast=broadcast)

    def dismiss(self, notification_id: int) -> None:
        """The user closed it (reason 2)."""
        self._emit("NotificationClosed", "uu", (notification_id, 2), broadcast=True)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=10)
        self._conn.close()

    # ----------------------------------------------------------------------- serving

    def _serve(self) -> None:
        with contextlib.suppress(OSError):  # the socket was shut down: the test is over
            while True:
                message = self._conn.receive()
                if message.header.message_type is MessageType.method_call:
                    self._send(self._answer(message))

    def _answer(self, call: Message) -> Message:
        member = call.header.fields.get(HeaderFields.member)
        if member == "Notify":
            return new_method_return(call, "u", (self._record(call),))
        if member == "GetCapabilities":
            return new_method_return(call, "as", (self.capabilities,))
        if member == "GetServerInformation":
            return new_method_return(call, "ssss", ("recorder", "tests", "1.0", "1.2"))
        if member == "CloseNotification":
            self.closed.append(call.body[0])
            self._emit("NotificationClosed", "uu", (call.body[0], 3), broadcast=True)
            return new_method_return(call)
        return new_error(call, "org.freedesktop.DBus.Error.UnknownMethod", "s", (str(member),))

    def _record(self, call: Message) -> int:
        app_name, replaces, icon, summary, body, actions, hints, expire = call.body
        with self._changed:
            known = {r.id for r in self._records}
            if replaces in known:
                notification_id = replaces
            else:
                notification_id, self._next_id = self._next_id, self._next_id + 1
            self._records.append(
                Recorded(
                    id=notification_id,
                    app_name=app_name,
                    replaces_id=replaces,
                    app_icon=icon,
                    summary=summary,
                    body=body,
                    actions=tuple(actions),
                    hints={name: value for name, (_sig, value) in hints.items()},
                    expire_timeout=expire,
                    sender=call.header.fields[HeaderFields.sender],
                )
            )
            self._changed.notify_all()
        return notification_id

    def _emit(self, member: str, signature: str, body: tuple, *, broadcast: bool) -> None:
        emitter = DBusAddress(OBJECT_PATH, interface=BUS_NAME)
        signal = new_signal(emitter, member, signature, body)
        if not broadcast:
            sender = next(r.sender for r in self.notifications if r.id == body[0])
            signal.header.fields[HeaderFields.destination] = sender
        self._send(signal)

    def _send(self, message: Message) -> None:
        with self._send_lock:
            self._conn.send(message)


@contextlib.contextmanager
def notification_session(
    directory: Path,
    monkeypatch: pytest.MonkeyPatch,
    capabilities: Sequence[str] = CAPABILITIES,
) -> Iterator[RecordingServer]:
    """A private bus with a recording server on it, made the session bus of this test."""
    with session_bus(directory / "bus") as address:
        use_session_bus(monkeypatch, address)
        server = RecordingServer(address, capabilities)
        try:
            yield server
        finally:
            server.close()


def use_session_bus(monkeypatch: pytest.MonkeyPatch, address: str) -> None:
    """Point this test's session bus at `address`; keep GLib and AT-SPI off the real desktop."""
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", address)
    monkeypatch.setenv("NO_AT_BRIDGE", "1")
    monkeypatch.setenv("GSETTINGS_BACKEND", "memory")
