"""`tf-stack-monitor run`: build the daemon from the config and run it until told to stop.

Wiring only: the single-instance lock, history, triggers, metrics, notifications, the tray
and the control channel around `daemon.Monitor`. Each optional part that cannot start
(no display, port taken, no notification server) is logged and left out, never fatal.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from monitor import control
from monitor.config import Config, Paths
from monitor.daemon import Monitor, Schedule, default_triggers, headline
from monitor.facts.paths import Root
from monitor.model import Change, MonitorState, Report, ReportDiff
from monitor.single_instance import InstanceLock

log = logging.getLogger("monitor.service")

EXIT_ALREADY_RUNNING = 1
EXIT_FAILED = 3
KEY_FILE = "control.key"
REPORT_FILE = "report.html"


def key_file(paths: Paths) -> Path:
    return paths.state_dir / KEY_FILE


# --------------------------------------------------------------------------- publishers


class MetricsPublisher:
    """Keeps the Prometheus metrics (HTTP and/or textfile) in step with the monitor."""

    def __init__(self, config: Config) -> None:
        from monitor.metrics import MetricsServer, StackMetrics

        self.metrics = StackMetrics()
        self.textfile = config.metrics.textfile
        self.server: Any = None
        if config.metrics.port is not None:
            self.server = MetricsServer(self.metrics, config.metrics.port, config.metrics.address)

    def start(self) -> str:
        if self.server is None:
            return "off"
        from monitor.metrics import MetricsError

        try:
            self.server.start()
        except MetricsError as exc:
            self.server = None
            log.error("metrics: %s; going on without the HTTP endpoint", exc)
            return f"not served: {exc}"
        log.info("metrics: serving %s", self.server.url)
        return self.server.url

    def published(self, report: Report, diff: ReportDiff, changes: Sequence[Change]) -> None:
        self._write(report, MonitorState(report.verdict.value))

    def state_changed(self, monitor: Monitor) -> None:
        self._write(None, monitor.status.state)

    def _write(self, report: Report | None, state: MonitorState) -> None:
        self.metrics.update(report, state)
        if self.textfile:
            from monitor.metrics import MetricsError, write_textfile

            try:
                write_textfile(self.textfile, self.metrics)
            except MetricsError as exc:
                log.error("metrics textfile: %s", exc)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


class NotifyPublisher:
    """Turns each diff into at most one notification (rate limit and quiet hours apply)."""

    def __init__(self, notifier: Any) -> None:
        self.notifier = notifier

    def published(self, report: Report, diff: ReportDiff, changes: Sequence[Change]) -> None:
        what = self.notifier.update(diff, changes)
        log.debug("notification: %s", what)

    def due_in(self) -> float | None:
        return self.notifier.due_in()

    def tick(self) -> None:
        self.notifier.flush()


class TrayPublisher:
    """Keeps the tray icon, tooltip and menu in step with the monitor."""

    def __init__(self, tray: Any) -> None:
        self.tray = tray

    def published(self, report: Report, diff: ReportDiff, changes: Sequence[Change]) -> None:
        """The icon follows state_changed; nothing more to do per report."""

    def state_changed(self, monitor: Monitor) -> None:
        from datetime import datetime, timezone

        from monitor.tray import tooltip_text

        report = monitor.last_report
        line = headline(report) if report is not None else "Checking\u2026"
        if monitor.status.state is MonitorState.ERROR:
            line = f"Monitor error: {monitor.status.problem}"
        last = _parse_time(monitor.status.last_check_at)
        tooltip = tooltip_text(line, last, datetime.now(timezone.utc))
        self.tray.update(monitor.status.state, tooltip, line, monitor.status.busy)


def _parse_time(text: str) -> Any:
    from datetime import datetime

    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


# --------------------------------------------------------------------------- the report page


def show_report(monitor: Monitor, history: Any, paths: Paths) -> str:
    """Write the HTML report of the last check (with the history timeline) and open it."""
    from monitor.report_html import open_in_browser, render_html, write_report

    report = monitor.last_report
    if report is None:
        return "no check has finished yet"
    timeline = history.timeline(limit=30) if history is not None else ()
    path = write_report(paths.state_dir / REPORT_FILE, render_html(report, timeline))
    what = open_in_browser(path)
    log.info("report: %s", what)
    return what


# --------------------------------------------------------------------------- control channel


def control_handler(
    monitor: Monitor, on_stop: Callable[[], None]
) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """Answers the CLI: status, check-now, pause, resume, stop."""

    def handle(message: Mapping[str, Any]) -> dict[str, Any]:
        command = message.get("command")
        if command == "status":
            return {"ok": True, **monitor.describe()}
        if command == "check-now":
            done = monitor.check_now(gpu_test=bool(message.get("gpu_test")))
            timeout = float(message.get("wait", 0) or 0)
            if timeout > 0 and not done.wait(timeout):
                return {"ok": False, "error": f"the check did not finish within {timeout:g} s"}
            return {"ok": True, "queued": timeout <= 0, **monitor.describe()}
        if command == "pause":
            monitor.pause()
            return {"ok": True, **monitor.describe()}
        if command == "resume":
            monitor.resume()
            return {"ok": True, **monitor.describe()}
        if command == "stop":
            on_stop()
            return {"ok": True, "stopping": True}
        return {"ok": False, "error": f"unknown command {command!r}"}

    return handle


# --------------------------------------------------------------------------- run


def run_monitor(config: Config, paths: Paths, *, headless: bool = False, root: str = "/") -> int:
    """The `run` command: returns the exit status."""
    lock = InstanceLock(paths.lock_file)
    if not lock.acquire():
        pid = lock.holder()
        who = f" (PID {pid})" if pid else ""
        print(
            f"tf-stack-monitor is already running{who}. Use `tf-stack-monitor status`, "
            "`check-now` or `stop` to talk to it.",
            file=sys.stderr,
        )
        return EXIT_ALREADY_RUNNING
    try:
        return _run_locked(config, paths, headless, root)
    except Exception:
        log.exception("the monitor failed")
        return EXIT_FAILED
    finally:
        lock.release()


def _run_locked(config: Config, paths: Paths, headless: bool, root: str) -> int:
    from monitor.check import run_check, with_load_tests
    from monitor.history import History

    for warning in config.warnings:
        log.warning("config: %s", warning)
    pythons = list(config.watch.pythons) or None
    nvml = config.nvml.library
    history = History(
        paths.history_db, max_age_days=config.history.keep_days, max_rows=config.history.max_rows
    )
    last = _last_report(history)
    triggers, retarget, watches = default_triggers(
        last, Root(root), config.watch.driver_poll_seconds, nvml
    )
    metrics = MetricsPublisher(config)
    extra: dict[str, Any] = {"metrics": metrics.start(), "log_file": str(paths.log_file)}

    monitor = Monitor(
        check=lambda: run_check(root=root, pythons=pythons, nvml_library=nvml),
        load_test=lambda report: with_load_tests(
            report,
            timeout=config.load_test.timeout_seconds,
            nvml_library=nvml,
            pythons=pythons,
        ),
        schedule=Schedule(
            debounce_quiet_s=config.watch.debounce_quiet_seconds,
            debounce_max_wait_s=config.watch.debounce_max_wait_seconds,
            full_check_s=config.watch.full_check_hours * 3600,
            load_test_on_change=config.load_test.on_stack_change,
            load_test_every_s=config.load_test.every_hours * 3600,
        ),
        triggers=triggers,
        publishers=[metrics],
        history=history,
        last_report=last,
        retarget=retarget,
        extra_status=lambda: {**extra, "tray": tray_status(), "watches": watches()},
    )
    tray = None if headless or config.tray.enabled is False else _tray(monitor, history, paths)
    notifier = _notifier(config, headless, lambda: show_report(monitor, history, paths), tray)
    if notifier is not None:
        monitor.add_publisher(NotifyPublisher(notifier))
    if tray is not None:
        monitor.add_publisher(TrayPublisher(tray))

    def tray_status() -> str:
        """Read afresh: the icon can still fail when it starts."""
        if tray is not None:
            return tray.status_line
        return "tray: headless (--headless)" if headless else "tray: off in the config"

    log.info("%s", tray_status())

    def stop() -> None:
        monitor.stop()
        if tray is not None:
            tray.stop()

    server = control.ControlServer(
        paths.control_socket,
        control.load_key(key_file(paths), create=True),
        control_handler(monitor, stop),
    )
    server.start()
    previous = _handle_signals(stop)
    log.info("monitor started (PID %s); control socket %s", os.getpid(), server.address)
    try:
        if tray is not None and sys.platform == "darwin":  # AppKit wants the main thread
            worker = threading.Thread(target=monitor.serve, name="monitor", daemon=True)
            worker.start()
            tray.run()
            monitor.stop()
            worker.join()
        else:
            if tray is not None:
                tray.run_detached()
            monitor.serve()
    finally:
        _restore_signals(previous)
        server.stop()
        if tray is not None:
            tray.stop()
        metrics.stop()
        if notifier is not None:
            notifier.stop()
        history.close()
        log.info("monitor stopped")
    return 0


def _last_report(history: Any) -> Report | None:
    try:
        return history.last_report()
    except Exception as exc:
        log.error("cannot read the last report from history: %s", exc)
        return None


def _notifier(config: Config, headless: bool, open_report: Callable[[], object], tray: Any) -> Any:
    """Desktop notifications, or the log only when headless (a server has no desktop).
    Windows shows them as balloons from the tray icon."""
    if not config.notifications.enabled:
        log.info("notifications: off in the config")
        return None
    from monitor.notify import Notifier, default_backends

    backends = (
        []
        if headless
        else default_backends(
            app_icon=_icon_file(),
            on_click=lambda _note: open_report(),
            tray_notify=tray.notify if tray is not None else None,
        )
    )
    return Notifier(
        backends=backends,
        interval=config.notifications.min_interval_minutes * 60,
        quiet_hours=config.notifications.quiet_hours,
    )


def _icon_file() -> str:
    from monitor.tray import icon_path

    try:
        return str(icon_path(MonitorState.BROKEN, 64))
    except Exception:
        return ""


def _tray(monitor: Monitor, history: Any, paths: Paths) -> Any:
    from monitor import autostart
    from monitor.report_html import open_in_browser
    from monitor.tray import Tray, TrayActions

    def toggle_pause() -> None:
        if monitor.status.paused:
            monitor.resume()
        else:
            monitor.pause()

    def set_autostart(enabled: bool) -> None:
        result = autostart.enable() if enabled else autostart.disable()
        for problem in result.problems:
            log.warning("autostart: %s", problem)

    def in_background(action: Callable[[], object]) -> Callable[[], None]:
        """Menu callbacks must return at once: writing the report can take a moment."""
        return lambda: threading.Thread(target=action, name="tray-action", daemon=True).start()

    actions = TrayActions(
        check_now=lambda: monitor.check_now(),
        run_gpu_test=lambda: monitor.check_now(gpu_test=True),
        show_report=in_background(lambda: show_report(monitor, history, paths)),
        what_changed=in_background(lambda: show_report(monitor, history, paths)),
        toggle_pause=toggle_pause,
        autostart_enabled=lambda: autostart.status().enabled,
        set_autostart=set_autostart,
        open_log_folder=lambda: log.info("log folder: %s", open_in_browser(paths.log_dir)),
        quit=monitor.stop,
    )
    try:
        return Tray(actions)
    except Exception as exc:
        log.error("tray: cannot start (%s); running headless", exc)
        return None


def _handle_signals(stop: Callable[[], None]) -> dict[int, Any]:
    """SIGTERM (systemd, launchd) and SIGINT (Ctrl-C) stop the monitor cleanly."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}
    for number in (signal.SIGTERM, signal.SIGINT):
        previous[number] = signal.signal(number, lambda *_: stop())
    return previous


def _restore_signals(previous: dict[int, Any]) -> None:
    for number, handler in previous.items():
        with contextlib.suppress(ValueError, TypeError):
            signal.signal(number, handler)
