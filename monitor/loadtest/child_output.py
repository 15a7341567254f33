"""What came back from the child process (ChildRun), and the bounded readers that collect it
from its pipes: JSON step lines from stdout, the head and the tail of stderr. No process
handling: runner.py feeds them bytes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

STDERR_HEAD = 32 * 1024
STDERR_TAIL = 200 * 1024
MAX_LINE = 4 * 1024 * 1024  # a stdout "line" longer than this is noise, not a step


@dataclass
class ChildRun:
    """What came back from the child process."""

    events: list[dict[str, Any]] = field(default_factory=list)
    noise_lines: int = 0
    stderr: str = ""
    returncode: int | None = None
    timed_out: bool = False
    start_error: str | None = None
    unkillable: bool = False
    pid: int | None = None
    duration_s: float = 0.0


class BoundedStderr:
    """The head and the tail of a byte stream, with what was left out in between counted."""

    def __init__(self, head: int = STDERR_HEAD, tail: int = STDERR_TAIL) -> None:
        self._head = bytearray()
        self._tail = bytearray()
        self._head_max = head
        self._tail_max = tail
        self._dropped = 0

    def feed(self, data: bytes) -> None:
        room = self._head_max - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        if not data:
            return
        self._tail += data
        excess = len(self._tail) - self._tail_max
        if excess > 0:
            del self._tail[:excess]
            self._dropped += excess

    def text(self) -> str:
        head = self._head.decode("utf-8", "replace")
        tail = self._tail.decode("utf-8", "replace")
        if self._dropped:
            return f"{head}\n[... {self._dropped} bytes of stderr left out ...]\n{tail}"
        return head + tail


class JsonLines:
    """Splits stdout bytes into lines and keeps the JSON objects among them."""

    def __init__(self, run: ChildRun) -> None:
        self._run = run
        self._buffer = bytearray()
        self._skipping = False

    def feed(self, data: bytes) -> None:
        self._buffer += data
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                break
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            if self._skipping:  # the rest of an over-long line
                self._skipping = False
                self._run.noise_lines += 1
                continue
            self._line(line)
        if len(self._buffer) > MAX_LINE:
            self._buffer.clear()
            self._skipping = True

    def close(self) -> None:
        if self._buffer and not self._skipping:
            self._line(bytes(self._buffer))
        self._buffer.clear()

    def _line(self, line: bytes) -> None:
        text = line.strip()
        if not text:
            return
        try:
            obj = json.loads(text.decode("utf-8", "replace"))
        except ValueError:
            obj = None
        if isinstance(obj, dict) and ("step" in obj or "event" in obj):
            self._run.events.append(obj)
        else:
            self._run.noise_lines += 1


def json_float(value: Any) -> float | None:
    """A number the child reported, as a float; None for anything else (bools too)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)
