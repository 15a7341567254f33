"""Desktop notifications: when to show one (rate limit, quiet hours) and through what.

The daemon hands every diff to `Notifier.update`; `messages.notification_for` decides whether
it is worth telling. What cannot be shown now (rate limit, quiet hours) is held, and later
diffs merge into it, so one summary goes out when the hold ends: it tells what changed since
the last notification the user saw. Nothing that is still true is lost (a "broken" is shown
at the latest when the hold ends); a breakage that healed during the hold is only logged.
Everything goes to the log (logger "monitor.notify") whatever the desktop does with it.

Backends per OS: the freedesktop D-Bus interface on Linux (notify_dbus), osascript on
macOS, the tray icon's balloon on Windows (pystray's Icon.notify); the log everywhere.
"""

from __future__ import annotations

import logging
import platform
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from monitor.config import QuietHours
from monitor.messages import BODY_MAX, TITLE_MAX, Notification, merge_diffs, notification_for
from monitor.model import Change, ReportDiff

log = logging.getLogger("monitor.notify")

DEFAULT_INTERVAL = 60.0
DEFAULT_BURST = 3


class NotifyError(Exception):
    """A backend could not show a notification; the message says why, for the log."""


class Backend(Protocol):
    """Shows notifications on one kind of desktop. show() raises NotifyError."""

    name: str

    def show(self, notification: Notification) -> None: ...

    def stop(self) -> None: ...


# --------------------------------------------------------------------------- the policy


@dataclass
class _Held:
    """A notable diff that could not be shown yet, with every later diff merged into it."""

    diff: ReportDiff
    changes: tuple[Change, ...]
    checks: int = 1

    def merge(self, diff: ReportDiff, changes: Sequence[Change]) -> None:
        self.diff = merge_diffs(self.diff, diff)
        self.changes = (*self.changes, *changes)
        self.checks += 1


@dataclass
class Notifier:
    """Decides when to notify and sends through the first backend that works.

    Rate limit: a token bucket: `burst` notifications at once, then one per `interval`
    seconds. `clock` returns epoch seconds (quiet hours use its local time of day).
    Thread-safe: the daemon calls update/flush, the tray may call send.
    """

    backends: Sequence[Backend] = ()
    interval: float = DEFAULT_INTERVAL
    burst: int = DEFAULT_BURST
    quiet_hours: QuietHours | None = None
    clock: Callable[[], float] = time.time
    _tokens: float = field(init=False)
    _refilled: float = field(init=False)
    _held: _Held | None = field(init=False, default=None)
    _failures: dict[str, str] = field(init=False, default_factory=dict)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._tokens = float(self.burst)
        self._refilled = self.clock()

    def update(self, diff: ReportDiff, changes: Sequence[Change] = ()) -> str:
        """After every check: notify if the diff is worth it; returns what was done."""
        with self._lock:
            now = self.clock()
            notification = notification_for(diff, changes)
            if self._held is not None:
                self._held.merge(diff, changes)
                if notification is not None:
                    _log_text(notification, "merged into the held notification")
                return self._flush(now) or f"merged into the held notification ({self._hold(now)})"
            if notification is None:
                return "nothing to tell"
            reason = self._hold(now)
            if reason:
                self._held = _Held(diff, tuple(changes))
                _log_text(notification, f"held: {reason}")
                return f"held: {reason}"
            return self._deliver(notification, now)

    def flush(self) -> str | None:
        """Send the held summary if its hold is over; None when nothing was due."""
        with self._lock:
            return self._flush(self.clock())

    def due_in(self) -> float | None:
        """Seconds until flush() has something to send; None when nothing is held."""
        with self._lock:
            if self._held is None:
                return None
            return self._wait(self.clock())

    def send(self, notification: Notification) -> str:
        """Show now, past the rate limit and quiet hours: for what the user just asked for."""
        with self._lock:
            return self._deliver(notification, None)

    def stop(self) -> None:
        for backend in self.backends:
            backend.stop()

    # ----------------------------------------------------------------------- internals

    def _flush(self, now: float) -> str | None:
        held = self._held
        if held is None or self._hold(now):
            return None
        self._held = None
        notification = notification_for(held.diff, held.changes)
        if notification is None:
            log.info(
                "nothing left to tell after %d held checks: the stack is back where the last"
                " notification left it",
                held.checks,
            )
            return "dropped: nothing left to tell"
        outcome = self._deliver(notification, now)
        return f"{outcome} (summary of {held.checks} checks)" if held.checks > 1 else outcome

    def _hold(self, now: float) -> str:
        """Why a notification cannot be shown now ("" when it can)."""
        if self.quiet_hours is not None and self._quiet_until(now):
            return f"quiet hours until {self.quiet_hours.end:%H:%M}"
        wait = self._wait(now)
        return f"rate limit, next in {wait:.0f} s" if wait > 0 else ""

    def _wait(self, now: float) -> float:
        elapsed = max(0.0, now - self._refilled)  # the wall clock may be set back
        self._tokens = min(self.burst, self._tokens + elapsed / self.interval)
        self._refilled = now
        missing = 1 - self._tokens
        wait = missing * self.interval if missing > 1e-9 else 0.0  # float dust is no wait
        return max(wait, self._quiet_until(now) - now)

    def _quiet_until(self, now: float) -> float:
        """When the quiet hours that `now` is in end (epoch seconds), else 0."""
        moment = datetime.fromtimestamp(now)
        if self.quiet_hours is None or not self.quiet_hours.contains(moment.time()):
            return 0.0
        end = datetime.combine(moment.date(), self.quiet_hours.end)
        return (end if end > moment else end + timedelta(days=1)).timestamp()

    def _deliver(self, notification: Notification, now: float | None) -> str:
        if now is not None:
            self._tokens -= 1
        for backend in self.backends:
            try:
                backend.show(notification)
            except NotifyError as error:
                self._failed(backend.name, str(error))
                continue
            except Exception as error:  # a backend bug must not stop the daemon
                log.exception("notification backend %s failed", backend.name)
                self._failed(backend.name, f"{type(error).__name__}: {error}")
                continue
            if self._failures.pop(backend.name, None):
                log.info("desktop notifications through %s work again", backend.name)
            outcome = f"sent via {backend.name}"
            _log_text(notification, outcome)
            return outcome
        reasons = "; ".join(f"{name}: {why}" for name, why in self._failures.items())
        outcome = f"logged only ({reasons})" if reasons else "logged only (no desktop backend)"
        _log_text(notification, outcome)
        return outcome

    def _failed(self, name: str, reason: str) -> None:
        level = logging.DEBUG if self._failures.get(name) == reason else logging.WARNING
        self._failures[name] = reason
        log.log(level, "desktop notifications through %s failed: %s", name, reason)


def _log_text(notification: Notification, outcome: str) -> None:
    level = logging.WARNING if notification.urgency == "critical" else logging.INFO
    log.log(level, "notification (%s): %s", outcome, notification.one_line())


# --------------------------------------------------------------------------- backends


def osascript_argv(notification: Notification) -> list[str]:
    """The command that shows it on macOS. The texts travel as arguments of the script's run
    handler, never inside its source, so no quote or backslash in them needs escaping."""
    script = "display notification (item 2 of argv) with title (item 1 of argv)"
    texts = [_not_an_option(notification.title), _not_an_option(notification.body)]
    return ["osascript", "-e", "on run argv", "-e", script, "-e", "end run", *texts]


def _not_an_option(text: str) -> str:
    """osascript reads a leading "-" as one of its options."""
    return f" {text}" if text.startswith("-") else text


class OsascriptNotifier:
    """macOS: Notification Center through osascript (a click opens Script Editor, not ours)."""

    name = "osascript"

    def show(self, notification: Notification) -> None:
        try:
            done = subprocess.run(
                osascript_argv(notification), capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise NotifyError(f"osascript could not be run: {error}") from error
        if done.returncode != 0:
            raise NotifyError(f"osascript exited {done.returncode}: {done.stderr.strip()[-300:]}")

    def stop(self) -> None:
        """Nothing runs between notifications."""


class TrayNotifier:
    """Windows: the tray icon's balloon, through a callable like pystray's Icon.notify."""

    name = "tray"

    def __init__(self, notify: Callable[[str, str], None]) -> None:
        self._notify = notify

    def show(self, notification: Notification) -> None:
        # The balloon's fields are fixed WCHAR arrays (64 and 256): longer text raises.
        message, title = notification.body[:BODY_MAX], notification.title[:TITLE_MAX]
        try:
            self._notify(message, title)
        except Exception as error:
            raise NotifyError(f"the tray icon could not show it: {error}") from error

    def stop(self) -> None:
        """The tray owns the icon."""


def default_backends(
    system: str | None = None,
    *,
    app_icon: str = "",
    on_click: Callable[[Notification], None] | None = None,
    tray_notify: Callable[[str, str], None] | None = None,
) -> list[Backend]:
    """The backend for this OS (none on an unknown one: then notifications are logged only).

    on_click (Linux only: the other backends cannot report clicks) gets the notification
    that was clicked; app_icon is an icon file path for the D-Bus server.
    """
    system = system or platform.system()
    if system == "Linux":
        try:
            from monitor.notify_dbus import DbusNotifier
        except ImportError as error:
            log.warning("desktop notifications need jeepney (%s); logging only", error)
            return []
        return [DbusNotifier(app_icon=app_icon, on_click=on_click)]
    if system == "Darwin":
        return [OsascriptNotifier()]
    if system == "Windows" and tray_notify is not None:
        return [TrayNotifier(tray_notify)]
    return []
