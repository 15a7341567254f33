"""Triggers: they notice that the stack may have changed and emit a `Change`.

Each trigger follows the `Trigger` contract; the daemon debounces what they emit
(watch/debounce.py) and runs one check per batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from monitor.model import Change


class Trigger(Protocol):
    """start() begins watching; emit may be called from any thread. stop() joins every
    thread the trigger started and may be called twice."""

    def start(self, emit: Callable[[Change], None]) -> None: ...

    def stop(self) -> None: ...
