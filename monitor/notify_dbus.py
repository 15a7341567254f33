"""Linux desktop notifications: the freedesktop org.freedesktop.Notifications D-Bus interface,
spoken with jeepney (pure Python: no libnotify, no GLib main loop in the daemon).

One connection both sends and listens: some servers (dunst) send ActionInvoked only to the
connection that created the notification, others (GNOME Shell) broadcast it, hence the match
rule. A listener thread reads the connection (replies and signals); clicks are handed to a
second thread, so an `on_click` that is slow, or that sends a notification itself, never
blocks the reader that its own reply has to come through.
"""

from __future__ import annotations

import contextlib
import html
import logging
import os
import queue
import re
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from jeepney import (
    DBusAddress,
    DBusErrorResponse,
    HeaderFields,
    MatchRule,
    Message,
    MessageType,
    message_bus,
    new_method_call,
)
from jeepney.io.blocking import open_dbus_connection
from jeepney.wrappers import unwrap_msg

from monitor.messages import Notification
from monitor.notify import NotifyError

log = logging.getLogger("monitor.notify")

APP_NAME = "tf-stack-monitor"
BUS_NAME = "org.freedesktop.Notifications"
OBJECT_PATH = "/org/freedesktop/Notifications"
SERVER = DBusAddress(OBJECT_PATH, bus_name=BUS_NAME, interface=BUS_NAME)
SERVICE_UNKNOWN = "org.freedesktop.DBus.Error.ServiceUnknown"
ACTIONS = ("default", "Show report")
_URGENCY = {"low": 0, "normal": 1, "critical": 2}
_ADDRESS_SAFE = re.compile(r"[^-0-9A-Za-z_/.\\*]")


def session_bus_address(environ: dict[str, str] | None = None) -> str:
    """DBUS_SESSION_BUS_ADDRESS, else the systemd user bus in $XDG_RUNTIME_DIR (a daemon
    started outside the desktop session, e.g. from cron, often lacks the variable)."""
    environ = dict(os.environ) if environ is None else environ
    address = environ.get("DBUS_SESSION_BUS_ADDRESS", "")
    if address:
        return address
    runtime = environ.get("XDG_RUNTIME_DIR", "")
    socket_path = os.path.join(runtime, "bus") if runtime else ""
    if socket_path and os.path.exists(socket_path):
        return "unix:path=" + _ADDRESS_SAFE.sub(lambda m: f"%{ord(m[0]):02x}", socket_path)
    raise NotifyError(
        "no D-Bus session bus: DBUS_SESSION_BUS_ADDRESS is not set and there is no "
        "$XDG_RUNTIME_DIR/bus (is the monitor running outside the desktop session?)"
    )


class _Lost(Exception):
    """The connection died (the bus went away, or it was closed): connect again."""


class _Connection:
    """One bus connection and the thread that reads it."""

    def __init__(self, address: str, on_signal: Callable[[str, tuple[Any, ...]], None]) -> None:
        try:
            self._conn = open_dbus_connection(bus=address, auth_timeout=5.0)
        except Exception as error:  # OSError, AuthenticationError, a malformed address...
            raise NotifyError(
                f"cannot connect to the D-Bus session bus at {address}: "
                f"{type(error).__name__}: {error}"
            ) from error
        self._on_signal = on_signal
        self._replies: dict[int, Future[Message]] = {}
        self._lock = threading.Lock()
        self._lost = ""
        self._closing = False
        self._thread = threading.Thread(target=self._listen, name="notify-dbus", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return not self._lost

    def call(self, message: Message, timeout: float) -> tuple[Any, ...]:
        """Send a method call and wait for its reply; DBusErrorResponse for an error reply."""
        reply: Future[Message] = Future()
        with self._lock:
            if self._lost:
                raise _Lost(self._lost)
            serial = next(self._conn.outgoing_serial)
            self._replies[serial] = reply
        try:
            self._conn.send(message, serial=serial)
            return unwrap_msg(reply.result(timeout))
        except OSError as error:
            raise _Lost(str(error)) from error
        except FutureTimeout:
            destination = message.header.fields.get(HeaderFields.destination, "the bus")
            raise NotifyError(f"no answer from {destination} within {timeout:g} s") from None
        finally:
            with self._lock:
                self._replies.pop(serial, None)

    def close(self) -> None:
        """Wake the reader by shutting the socket (no polling while idle), then join it."""
        self._closing = True
        with contextlib.suppress(OSError):  # already gone
            self._conn.sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)
        self._conn.close()

    def _listen(self) -> None:
        reason = "closed"
        try:
            while True:
                self._dispatch(self._conn.receive())
        except Exception as error:  # the socket reset or closed, or the stream is corrupt
            if not self._closing:
                reason = f"the session bus connection was lost ({type(error).__name__}: {error})"
                log.warning("desktop notifications: %s", reason)
        finally:
            with self._lock:
                self._lost = reason
                waiting, self._replies = self._replies, {}
            for reply in waiting.values():
                reply.set_exception(_Lost(reason))

    def _dispatch(self, message: Message) -> None:
        fields = message.header.fields
        kind = message.header.message_type
        if kind in (MessageType.method_return, MessageType.error):
            with self._lock:
                reply = self._replies.pop(fields.get(HeaderFields.reply_serial, -1), None)
            if reply is not None:
                reply.set_result(message)
        elif kind is MessageType.signal and fields.get(HeaderFields.interface) == BUS_NAME:
            self._on_signal(fields.get(HeaderFields.member, ""), message.body)


class DbusNotifier:
    """Shows notifications through org.freedesktop.Notifications; reports clicks.

    Connects on the first show() and again after the bus went away. Notifications with the
    same key replace each other (replaces_id). on_click gets the Notification that was
    clicked, in the "notify-clicks" thread. stop() closes the connection and joins both
    threads; show() after stop() connects again.
    """

    name = "dbus"

    def __init__(
        self,
        *,
        app_icon: str = "",
        on_click: Callable[[Notification], None] | None = None,
        timeout: float = 5.0,
    ) -> None:
        self._app_icon = app_icon
        self._on_click = on_click
        self._timeout = timeout
        self._lock = threading.Lock()  # one show() or stop() at a time
        self._state = threading.Lock()  # ids; also taken by the listener thread
        self._ids: dict[str, int] = {}  # key -> id of the notification on screen
        self._shown: dict[int, Notification] = {}
        self._connection: _Connection | None = None
        self._markup = False
        self._server = ""
        self._clicks: queue.Queue[Notification | None] = queue.Queue()
        self._click_thread: threading.Thread | None = None

    def show(self, notification: Notification) -> None:
        """Raises NotifyError with a message for the log when it cannot be shown."""
        with self._lock:
            try:
                self._show(self._connect(), notification)
            except _Lost:
                self._disconnect()  # the bus went away since the last one: once more
                try:
                    self._show(self._connect(), notification)
                except _Lost as lost:
                    raise NotifyError(str(lost)) from lost

    def stop(self) -> None:
        with self._lock:
            self._disconnect()
            if self._click_thread is not None:
                self._clicks.put(None)
                self._click_thread.join(timeout=5)
                self._click_thread = None

    # ----------------------------------------------------------------------- sending

    def _show(self, connection: _Connection, notification: Notification) -> None:
        if not self._server:
            self._meet_server(connection)
        with self._state:
            replaces = self._ids.get(notification.key, 0)
        body = html.escape(notification.body, quote=False) if self._markup else notification.body
        message = new_method_call(
            SERVER,
            "Notify",
            "susssasa{sv}i",
            (
                APP_NAME,
                replaces,
                self._app_icon,
                notification.title,
                body,
                list(ACTIONS) if self._on_click else [],
                {"urgency": ("y", _URGENCY[notification.urgency])},
                -1,  # the server's default expiry; servers keep critical ones on screen
            ),
        )
        (new_id,) = self._call(connection, message)
        with self._state:
            if replaces and replaces != new_id:
                self._shown.pop(replaces, None)
            self._ids[notification.key] = new_id
            self._shown[new_id] = notification

    def _meet_server(self, connection: _Connection) -> None:
        """Learn whether the body is markup (then "<" and "&" must be escaped)."""
        (capabilities,) = self._call(connection, new_method_call(SERVER, "GetCapabilities"))
        name, vendor, version, _spec = self._call(
            connection, new_method_call(SERVER, "GetServerInformation")
        )
        self._markup = "body-markup" in capabilities
        self._server = f"{name} {version} ({vendor})"
        log.info("desktop notifications through %s", self._server)

    def _call(self, connection: _Connection, message: Message) -> tuple[Any, ...]:
        try:
            return connection.call(message, self._timeout)
        except DBusErrorResponse as error:
            if error.name == SERVICE_UNKNOWN:
                raise NotifyError(
                    f"no notification server on the session bus (nothing provides {BUS_NAME}; "
                    "is a desktop or a notification daemon such as dunst running?)"
                ) from None
            raise NotifyError(f"the notification server answered {error.name}: {error}") from None

    # ----------------------------------------------------------------------- connection

    def _connect(self) -> _Connection:
        if self._connection is not None and self._connection.alive:
            return self._connection
        self._disconnect()
        connection = _Connection(session_bus_address(), self._on_signal)
        try:
            rule = MatchRule(type="signal", interface=BUS_NAME, path=OBJECT_PATH)
            connection.call(message_bus.AddMatch(rule), self._timeout)
        except (_Lost, NotifyError, DBusErrorResponse) as error:
            connection.close()
            raise NotifyError(f"the session bus refused to subscribe to clicks: {error}") from None
        if self._on_click is not None and self._click_thread is None:
            self._click_thread = threading.Thread(
                target=self._deliver_clicks,
                args=(self._on_click,),
                name="notify-clicks",
                daemon=True,
            )
            self._click_thread.start()
        self._connection = connection
        return connection

    def _disconnect(self) -> None:
        """Close the connection; ids from it mean nothing to the next server."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        self._server, self._markup = "", False
        with self._state:
            self._ids.clear()
            self._shown.clear()

    # ----------------------------------------------------------------------- clicks

    def _on_signal(self, member: str, body: tuple[Any, ...]) -> None:
        """In the listener thread: note closed notifications, queue clicks on ours."""
        if member == "ActionInvoked" and len(body) == 2:
            with self._state:
                clicked = self._shown.get(body[0])
            if clicked is not None and self._on_click is not None:
                self._clicks.put(clicked)
        elif member == "NotificationClosed" and body:
            with self._state:
                closed = self._shown.pop(body[0], None)
                if closed is not None and self._ids.get(closed.key) == body[0]:
                    del self._ids[closed.key]

    def _deliver_clicks(self, on_click: Callable[[Notification], None]) -> None:
        while (clicked := self._clicks.get()) is not None:
            try:
                on_click(clicked)
            except Exception:
                log.exception("the notification click handler failed")
