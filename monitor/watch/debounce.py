"""Many changes in a burst become one batch, a few seconds after the burst goes quiet.

An installer that writes 50,000 files makes thousands of Changes; the daemon wants one check
after it is done. add() only records the change under a lock (a dict update: a storm costs
microseconds per event); one worker thread waits on a Condition until the batch is due. No
timer per event.

Changes with the same kind and subject coalesce: the first `before`, the last `after` and
`at`. One that went somewhere and came back (driver 535 -> 550 -> 535, a directory that
appeared and vanished) is dropped; MANUAL and PERIODIC changes are requests, never dropped.
A Change with an empty subject is `activity`: it keeps a pending batch from firing (an install
still writing) but is not part of it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from monitor.model import Change, ChangeKind

log = logging.getLogger(__name__)

_REQUESTS = frozenset({ChangeKind.MANUAL, ChangeKind.PERIODIC})


def activity(kind: ChangeKind) -> Change:
    """A Change that only says "still busy": holds a pending batch open, never reported."""
    return Change(kind, "")


def coalesce(changes: Iterable[Change]) -> list[Change]:
    """The changes merged by (kind, subject) in first-seen order, round trips and activity
    dropped; what one batch of the Debouncer holds."""
    slots: dict[tuple[ChangeKind, str], list] = {}
    for change in changes:
        if change.subject:
            _record(slots, change)
    return _settle(slots.values())


def _record(slots: dict[tuple[ChangeKind, str], list], change: Change) -> bool:
    """Merge `change` into its slot [first, last, count]; True when the slot is new."""
    key = (change.kind, change.subject)
    slot = slots.get(key)
    if slot is None:
        slots[key] = [change, change, 1]
        return True
    slot[1] = change
    slot[2] += 1
    return False


def _settle(slots: Iterable[list]) -> list[Change]:
    batch = []
    for first, last, count in slots:
        if count == 1:
            batch.append(first)
        elif first.before != last.after or first.kind in _REQUESTS:
            batch.append(Change(first.kind, first.subject, first.before, last.after, last.at))
    return batch


class Debouncer:
    """Calls on_batch(changes) once quiet_s after the last change, or max_wait_s after the
    first one of a storm that never ends.

    on_batch runs on the debouncer's own thread; changes that arrive meanwhile form the next
    batch, so a slow check is never run twice at once. An empty batch (everything cancelled
    out) is not delivered.
    """

    def __init__(
        self,
        on_batch: Callable[[list[Change]], None],
        quiet_s: float = 5.0,
        max_wait_s: float = 60.0,
    ) -> None:
        if quiet_s < 0 or max_wait_s < quiet_s:
            raise ValueError(f"need 0 <= quiet_s <= max_wait_s, got {quiet_s}, {max_wait_s}")
        self.quiet_s = quiet_s
        self.max_wait_s = max_wait_s
        self._on_batch = on_batch
        self._cond = threading.Condition()
        self._slots: dict[tuple[ChangeKind, str], list] = {}
        self._first = 0.0
        self._last = 0.0
        self._flush = False
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="debouncer", daemon=True)
        self._thread.start()

    def add(self, change: Change) -> None:
        """Record a change (any thread). Cheap: called once per file event in a storm."""
        now = time.monotonic()
        with self._cond:
            self._last = now
            if change.subject and _record(self._slots, change) and len(self._slots) == 1:
                self._first = now
                self._cond.notify()

    def flush_now(self) -> None:
        """Deliver what is pending without waiting for the quiet period ("Check now")."""
        with self._cond:
            self._flush = True
            self._cond.notify()

    def stop(self) -> list[Change]:
        """Stop and join the worker; returns what was pending, undelivered. Idempotent."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()
        with self._cond:
            slots, self._slots = self._slots, {}
        return _settle(slots.values())

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            if batch:
                try:
                    self._on_batch(batch)
                except Exception:
                    log.exception("handling a batch of %d changes failed", len(batch))

    def _next_batch(self) -> list[Change] | None:
        """Wait until a batch is due and take it; None when stopping."""
        with self._cond:
            while not self._stopping:
                if not self._slots:
                    self._flush = False
                    self._cond.wait()
                    continue
                now = time.monotonic()
                due = min(self._last + self.quiet_s, self._first + self.max_wait_s)
                if self._flush or now >= due:
                    self._flush = False
                    slots, self._slots = self._slots, {}
                    return _settle(slots.values())
                self._cond.wait(due - now)
            return None
