"""Triggers: they notice that the stack may have changed and emit a `Change`.

Each trigger follows the `Trigger` contract; the daemon debounces what they emit
(watch/debounce.py) and runs one check per batch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from monitor.model import Change


class Trigger(Protocol):
    """start() begins watching; emit may be called from any thread. stop() joins every
    thread the trigger started and may be called twice."""

    def start(self, emit: Callable[[Change], None]) -> None: ...

    def stop(self) -> None: ...


class PollCount:
    """How many polls a polling trigger has completed; tests and `status` wait on it."""

    def __init__(self) -> None:
        self._count = 0
        self._changed = threading.Condition()

    @property
    def value(self) -> int:
        with self._changed:
            return self._count

    def add(self) -> None:
        with self._changed:
            self._count += 1
            self._changed.notify_all()

    def wait_for(self, count: int, timeout_s: float) -> bool:
        """Wait until `count` polls have completed; False after `timeout_s`."""
        with self._changed:
            return self._changed.wait_for(lambda: self._count >= count, timeout_s)
