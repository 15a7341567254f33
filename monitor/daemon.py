"""The resident monitor: changes -> debounce -> check -> diff -> history -> publish.

One worker (`serve`) takes requests from a queue, so checks never overlap: batches of changes
from the triggers (already debounced), "check now" from the tray or the control channel, the
periodic full check, stop. Everything it publishes to (history, metrics, notifications, the
tray) may fail on its own without stopping the loop; TensorFlow is only ever loaded by the
load test's child process.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from monitor.diff import diff_reports
from monitor.facts.host import current_os
from monitor.facts.paths import Root
from monitor.model import (
    Change,
    ChangeKind,
    LoadTestResult,
    MonitorState,
    Report,
    ReportDiff,
    Severity,
    Verdict,
    utc_now,
)
from monitor.record import replace
from monitor.text import plural
from monitor.watch import Trigger
from monitor.watch.debounce import Debouncer

log = logging.getLogger("monitor.daemon")

CheckFunction = Callable[[Sequence[str] | None], Report]
LoadTestFunction = Callable[[Report], Report]


class Publisher(Protocol):
    """Something that hears about every new report (metrics, tray, notifications)."""

    def published(self, report: Report, diff: ReportDiff, changes: Sequence[Change]) -> None: ...


@dataclass(frozen=True)
class Schedule:
    """The daemon's timing, from the config's [watch] and [load_test] sections."""

    debounce_quiet_s: float = 5.0
    debounce_max_wait_s: float = 60.0
    full_check_s: float = 6 * 3600.0
    load_test_on_change: bool = True
    load_test_every_s: float = 0.0  # 0: only after stack changes and on request


@dataclass(frozen=True)
class _Check:
    changes: tuple[Change, ...] = ()
    gpu_test: bool = False
    done: threading.Event | None = None


_STOP = object()


@dataclass
class Status:
    """What `tf-stack-monitor status` shows; mutated by the worker only."""

    state: MonitorState = MonitorState.CHECKING
    busy: bool = False
    paused: bool = False
    started_at: str = ""
    last_check_at: str = ""
    last_check_s: float = 0.0
    checks: int = 0
    problem: str = ""  # why the monitor itself is unwell (state ERROR), "" when it is not
    notes: dict[str, str] = field(default_factory=dict)  # "tray": ..., "history": ...


class Monitor:
    """The loop. Give it what checks, what to watch and whom to tell; `serve()` runs it.

    last_report: the latest report from history, so a restart diffs against it (and does not
    tell "broken" again for a stack that was already broken).
    """

    def __init__(
        self,
        check: Callable[[], Report],
        load_test: Callable[[Report], Report],
        *,
        schedule: Schedule = Schedule(),
        triggers: Sequence[Trigger] = (),
        publishers: Sequence[Publisher] = (),
        history: Any = None,
        last_report: Report | None = None,
        retarget: Callable[[Report], None] | None = None,
        extra_status: Callable[[], dict[str, Any]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._check = check
        self._load_test = load_test
        self.schedule = schedule
        self._triggers = list(triggers)
        self._publishers = list(publishers)
        self._history = history
        self._retarget = retarget
        self._extra_status = extra_status
        self._clock = clock
        self._requests: queue.Queue[Any] = queue.Queue()
        self._lock = threading.Lock()
        self._paused_changes: list[Change] = []
        self._last_load_test = 0.0
        self._debouncer: Debouncer | None = None
        self.status = Status(started_at=utc_now())
        self.last_report = last_report  # what the first check is diffed against
        self.last_diff: ReportDiff | None = None

    def add_publisher(self, publisher: Publisher) -> None:
        """Before serve(): parts made after the monitor (the tray needs it for its menu)."""
        self._publishers.append(publisher)

    # ------------------------------------------------------------------ requests (any thread)

    def emit(self, change: Change) -> None:
        """A trigger saw something: it waits in the debouncer until things go quiet."""
        with self._lock:
            if self.status.paused:
                self._paused_changes.append(change)
                return
        if self._debouncer is not None:
            self._debouncer.add(change)

    def check_now(self, gpu_test: bool = False) -> threading.Event:
        """Queue a check (and the load test); the event is set when it is done."""
        done = threading.Event()
        change = Change(ChangeKind.MANUAL, "GPU test" if gpu_test else "check now", at=utc_now())
        self._requests.put(_Check((change,), gpu_test, done))
        return done

    def pause(self) -> None:
        with self._lock:
            self.status.paused = True
        self._set_state(MonitorState.PAUSED)

    def resume(self) -> None:
        with self._lock:
            self.status.paused = False
            missed, self._paused_changes = self._paused_changes, []
        if missed:  # what happened meanwhile gets its check now
            self._requests.put(_Check(tuple(missed), self._wants_load_test(missed)))
        else:
            self._set_state(self._verdict_state())

    def stop(self) -> None:
        self._requests.put(_STOP)

    # ------------------------------------------------------------------ the worker

    def serve(self, first_check: bool = True) -> None:
        """Run until stop(): start the triggers, check once, then answer requests."""
        self._debouncer = Debouncer(
            self._on_batch, self.schedule.debounce_quiet_s, self.schedule.debounce_max_wait_s
        )
        started = []
        try:
            for trigger in self._triggers:
                try:
                    trigger.start(self.emit)
                    started.append(trigger)
                except Exception as exc:  # one broken trigger must not stop the others
                    log.error("cannot start %s: %s", type(trigger).__name__, exc)
            if first_check:
                start = Change(ChangeKind.PERIODIC, "monitor started", at=utc_now())
                self._requests.put(_Check((start,), self.schedule.load_test_on_change))
            self._loop()
        finally:
            for trigger in started:
                try:
                    trigger.stop()
                except Exception as exc:
                    log.error("cannot stop %s: %s", type(trigger).__name__, exc)
            self._debouncer.stop()
            self._debouncer = None

    def _on_batch(self, changes: list[Change]) -> None:
        self._requests.put(_Check(tuple(changes), self._wants_load_test(changes)))

    def _wants_load_test(self, changes: Sequence[Change]) -> bool:
        return self.schedule.load_test_on_change and any(c.kind.touches_stack for c in changes)

    def _next_full(self) -> float:
        every = self.schedule.full_check_s
        return self._clock() + every if every > 0 else math.inf  # 0: never

    def _loop(self) -> None:
        next_full = self._next_full()
        while True:
            wait = max(0.0, next_full - self._clock())
            ticks = [d for d in (_due_in(p) for p in self._publishers) if d is not None]
            timeout = min([wait, *ticks])
            try:
                request = self._requests.get(timeout=None if timeout == math.inf else timeout)
            except queue.Empty:
                if self._clock() < next_full:  # a publisher's moment (a held notification)
                    self._tick_publishers()
                    continue
                request = _Check(
                    (Change(ChangeKind.PERIODIC, "periodic full check", at=utc_now()),),
                    self._load_test_due(),
                )
            if request is _STOP:
                return
            if self.status.paused and not any(c.kind is ChangeKind.MANUAL for c in request.changes):
                with self._lock:
                    self._paused_changes.extend(request.changes)
            else:
                self.run_check(request.changes, request.gpu_test)
                next_full = self._next_full()
            if request.done is not None:
                request.done.set()

    def _tick_publishers(self) -> None:
        for publisher in self._publishers:
            tick = getattr(publisher, "tick", None)
            if tick is not None:
                _guard(f"tick {type(publisher).__name__}", tick)

    def _load_test_due(self) -> bool:
        every = self.schedule.load_test_every_s
        return every > 0 and self._clock() - self._last_load_test >= every

    def run_check(self, changes: Sequence[Change], gpu_test: bool) -> Report | None:
        """One pass of the loop: check, diff, store, publish. Never raises."""
        self.status.busy = True
        self._set_state(MonitorState.CHECKING)
        started = time.perf_counter()
        try:
            report = self._check()
            if gpu_test:
                report = self._load_test(report)
                self._last_load_test = self._clock()
        except Exception as exc:  # the check itself failed: say so, keep running
            log.exception("the check failed")
            self.status.busy = False
            self.status.problem = f"the check failed: {type(exc).__name__}: {exc}"
            self._set_state(MonitorState.ERROR)
            return None
        report = self._keep_load_tests(report)
        diff = diff_reports(self.last_report, report)
        self.last_report, self.last_diff = report, diff
        self.status.checks += 1
        self.status.last_check_at = report.checked_at or utc_now()
        self.status.last_check_s = time.perf_counter() - started
        self.status.problem = ""
        self._store(report, diff, changes)
        self._log_result(report, diff, changes)
        if self._retarget is not None:
            _guard("retarget the watches", lambda: self._retarget(report))
        self.status.busy = False
        for publisher in self._publishers:
            _guard(
                f"publish to {type(publisher).__name__}",
                lambda p=publisher: p.published(report, diff, changes),
            )
        self._set_state(self._verdict_state())
        return report

    def _keep_load_tests(self, report: Report) -> Report:
        """A check without a load test keeps the last results, marked by their own time."""
        if report.load_tests or self.last_report is None:
            return report
        kept: tuple[LoadTestResult, ...] = self.last_report.load_tests
        return replace(report, load_tests=kept) if kept else report

    def _store(self, report: Report, diff: ReportDiff, changes: Sequence[Change]) -> None:
        if self._history is None:
            return
        try:
            self._history.record(report, diff, changes)
        except Exception as exc:  # full disk, read-only dir...: keep running, say so
            log.error("%s", exc)
        problem = getattr(self._history, "problem", None)
        if problem:
            self.status.notes["history"] = problem
        else:
            self.status.notes.pop("history", None)

    def _log_result(self, report: Report, diff: ReportDiff, changes: Sequence[Change]) -> None:
        errors = sum(1 for f in report.findings if f.severity is Severity.ERROR)
        warnings = sum(1 for f in report.findings if f.severity is Severity.WARNING)
        why = ", ".join(f"{c.kind.value}: {c.subject}" for c in changes[:3]) or "no change"
        log.info(
            "check after %s: %s (%s, %s) in %.2f s",
            why,
            report.verdict.value,
            plural(errors, "error"),
            plural(warnings, "warning"),
            self.status.last_check_s,
        )
        for fact in diff.facts:
            log.info("changed: %s: %s -> %s", fact.subject, fact.before or "-", fact.after or "-")
        for finding in diff.appeared:
            log.warning("new %s: %s [%s]", finding.severity.value, finding.title, finding.id)
        for finding in diff.cleared:
            log.info("cleared: %s [%s]", finding.title, finding.id)

    # ------------------------------------------------------------------ state

    def _verdict_state(self) -> MonitorState:
        if self.status.paused:
            return MonitorState.PAUSED
        if self.status.problem:
            return MonitorState.ERROR
        if self.last_report is None:
            return MonitorState.CHECKING
        return MonitorState(self.last_report.verdict.value)

    def _set_state(self, state: MonitorState) -> None:
        if self.status.paused and state is not MonitorState.CHECKING:
            state = MonitorState.PAUSED
        self.status.state = state
        for publisher in self._publishers:
            changed = getattr(publisher, "state_changed", None)
            if changed is not None:
                _guard(f"tell {type(publisher).__name__}", lambda c=changed: c(self))

    def describe(self) -> dict[str, Any]:
        """The status as JSON-ready data (the control channel's `status`)."""
        report = self.last_report
        counts = {s.value: 0 for s in Severity}
        for finding in report.findings if report else ():
            counts[finding.severity.value] += 1
        return {
            "pid": os.getpid(),
            "state": self.status.state.value,
            "verdict": report.verdict.value if report else None,
            "headline": headline(report) if report else "no check yet",
            "busy": self.status.busy,
            "paused": self.status.paused,
            "started_at": self.status.started_at,
            "last_check_at": self.status.last_check_at,
            "last_check_seconds": round(self.status.last_check_s, 3),
            "checks": self.status.checks,
            "findings": counts,
            "problem": self.status.problem,
            "notes": dict(self.status.notes),
            **(self._extra_status() if self._extra_status else {}),
        }


def headline(report: Report) -> str:
    """One line for people: the verdict and the first error or warning."""
    worst = next(
        (f for s in (Severity.ERROR, Severity.WARNING) for f in report.findings if f.severity is s),
        None,
    )
    word = {Verdict.HEALTHY: "Healthy", Verdict.WARNINGS: "Warnings", Verdict.BROKEN: "Broken"}
    text = word[report.verdict]
    return f"{text}: {worst.title}" if worst else f"{text}: TensorFlow can use the GPU stack"


def _due_in(publisher: Publisher) -> float | None:
    """Seconds until the publisher wants a tick() (optional `due_in` method), else None."""
    due_in = getattr(publisher, "due_in", None)
    try:
        return None if due_in is None else due_in()
    except Exception:
        log.exception("cannot ask %s when it is due", type(publisher).__name__)
        return None


def _guard(what: str, action: Callable[[], object]) -> None:
    try:
        action()
    except Exception:
        log.exception("cannot %s", what)


# --------------------------------------------------------------------------- wiring helpers


def default_triggers(
    report: Report | None, root: Root, driver_poll_s: float, nvml_library: str | None
) -> tuple[list[Trigger], Callable[[Report], None], Callable[[], dict[str, int]]]:
    """The triggers for this machine, a retarget hook for new inventories, and a watch count.

    The file and package watches follow the inventory: a toolkit installed later is watched
    from the next check on.
    """
    from monitor.watch.driver import DriverWatcher
    from monitor.watch.environment import environment_watcher, linux_environment_watcher
    from monitor.watch.files import FileTrigger
    from monitor.watch.packages import PackageTrigger
    from monitor.watch.targets import watch_targets

    os_name = current_os()
    inventory = report.inventory if report is not None else None
    targets = watch_targets(inventory, root, os_name) if inventory is not None else ()
    files = FileTrigger(targets, os_name=os_name)
    packages = PackageTrigger(inventory.pythons if inventory is not None else (), root=root)
    driver = DriverWatcher(interval_s=driver_poll_s, root=root, library_path=nvml_library)
    environment = linux_environment_watcher(root) if os_name == "linux" else environment_watcher()
    triggers: list[Trigger] = [driver, files, packages, environment]

    def retarget(new: Report) -> None:
        files.retarget(watch_targets(new.inventory, root, os_name))
        packages.retarget(new.inventory.pythons)

    def watches() -> dict[str, int]:
        return {"files": files.watch_count, "packages": packages.watch_count}

    return triggers, retarget, watches
