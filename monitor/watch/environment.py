"""The environment trigger: PATH, LD_LIBRARY_PATH, CUDA_*... as the user's next login sees them.

Linux: every `interval_s` (5 s) the files the last computation read (or looked for) are
stat'ed; when any of them changed, appeared or vanished, the effective values are computed
again (monitor/watch/login_env.py) and a Change is emitted for each value that differs. So
touching or reformatting a file emits nothing, and no OS watch is used: about 30 stat calls a
poll. Windows: the two registry keys, re-read when RegNotifyChangeKeyValue says one changed,
and every `interval_s` (60 s) in any case.

A PATH-like value's Change names only the entries that differ (common leading and trailing
entries trimmed), so the timeline reads "PATH /usr/local/cuda-11.8/bin -> /usr/local/cuda-12.4/
bin" or "added PATH /opt/x/bin"; the subject stays the variable's name, so changes to it
coalesce in the debouncer.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Hashable, Mapping
from typing import Protocol

from monitor.facts import syspath
from monitor.facts.paths import Root
from monitor.model import Change, ChangeKind, utc_now
from monitor.watch import PollCount
from monitor.watch.login_env import LoginEnvironment, login_environment

log = logging.getLogger(__name__)

SYSTEM_ROOT = Root("/")
LINUX_INTERVAL_S = 5.0
WINDOWS_INTERVAL_S = 60.0  # a backstop: registry notifications wake the watcher at once
SEARCH_PATHS = frozenset({"PATH", "LD_LIBRARY_PATH"})
EMPTY = "(empty)"  # a variable set to "" (CUDA_VISIBLE_DEVICES="" hides every GPU)


class Waiter(Protocol):
    """Sleeps between polls; wake() ends a wait at once (stop). Windows: also registry events."""

    def wait(self, timeout_s: float) -> None: ...

    def wake(self) -> None: ...

    def close(self) -> None: ...


class TimerWaiter:
    """Just the timeout (and wake)."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def wait(self, timeout_s: float) -> None:
        self._event.wait(timeout_s)

    def wake(self) -> None:
        self._event.set()

    def close(self) -> None:
        pass


Signature = Callable[[tuple[str, ...]], Hashable]
_NEVER = object()  # no signature taken yet


class EnvironmentWatcher:
    """Polls `read` (cheaply, through `signature` when given) and emits ENVIRONMENT Changes.

    read: the effective login environment now. signature(sources): something that changes
    when one of those sources does (None: read every poll). separator: of PATH entries.
    """

    def __init__(
        self,
        read: Callable[[], LoginEnvironment],
        *,
        interval_s: float = LINUX_INTERVAL_S,
        signature: Signature | None = None,
        separator: str = ":",
        waiter: Callable[[], Waiter] = TimerWaiter,
    ) -> None:
        self.interval_s = interval_s
        self._read = read
        self._signature = signature
        self._separator = separator
        self._make_waiter = waiter
        self._thread: threading.Thread | None = None
        self._waiter: Waiter | None = None
        self._stopping = False
        self._polls = PollCount()
        self.current: LoginEnvironment | None = None

    def start(self, emit: Callable[[Change], None]) -> None:
        if self._thread is not None:
            raise RuntimeError("the environment watcher is already running")
        self._stopping = False
        self._waiter = _make_waiter(self._make_waiter)
        self._thread = threading.Thread(
            target=self._run, args=(emit, self._waiter), name="watch-environment", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        thread, waiter = self._thread, self._waiter
        if thread is None or waiter is None:
            return
        self._stopping = True
        waiter.wake()
        thread.join()
        waiter.close()
        self._thread = self._waiter = None

    @property
    def polls(self) -> int:
        """Polls completed since the watcher was made."""
        return self._polls.value

    def wait_polls(self, count: int, timeout_s: float) -> bool:
        """Wait until `count` polls have completed (tests, `status`)."""
        return self._polls.wait_for(count, timeout_s)

    def _run(self, emit: Callable[[Change], None], waiter: Waiter) -> None:
        sources: tuple[str, ...] = ()
        last_signature: Hashable = _NEVER
        while not self._stopping:
            signature = self._signature(sources) if self._signature else None
            if signature is None or signature != last_signature:
                reading = self._read_safely()
                if reading is None:
                    last_signature = signature  # the same files would fail the same way
                else:
                    self._take(reading, emit)
                    # A new set of sources: compare from the next poll on, so an edit
                    # between this read and that first stat is still seen.
                    last_signature = signature if reading.sources == sources else _NEVER
                    sources = reading.sources
            self._polls.add()
            if not self._stopping:
                waiter.wait(self.interval_s)

    def _read_safely(self) -> LoginEnvironment | None:
        try:
            return self._read()
        except Exception:  # a bug or a surprise of the OS: log it, keep watching
            log.exception("reading the login environment failed")
            return None

    def _take(self, reading: LoginEnvironment, emit: Callable[[Change], None]) -> None:
        previous, self.current = self.current, reading
        if previous is None or reading.errors != previous.errors:
            for path, error in reading.errors:
                log.warning("login environment: %s: %s", path, error)
        if previous is None:
            return
        at = utc_now()
        for change in environment_changes(previous.values, reading.values, at, self._separator):
            try:
                emit(change)
            except Exception:
                log.exception("emitting %s failed", change)


def _make_waiter(factory: Callable[[], Waiter]) -> Waiter:
    try:
        return factory()
    except Exception:  # e.g. the registry cannot be watched: poll on the timer alone
        log.exception("cannot wait for changes; polling on a timer only")
        return TimerWaiter()


# --------------------------------------------------------------------------- the changes


def environment_changes(
    before: Mapping[str, str], after: Mapping[str, str], at: str, separator: str = ":"
) -> list[Change]:
    """One Change per watched variable whose effective value differs, by name.

    before/after: the whole value, EMPTY for a value set to "", "" where unset; for PATH and
    LD_LIBRARY_PATH only the entries that differ.
    """
    changes = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if name in SEARCH_PATHS and old and new:
            old_part, new_part = differing_entries(old, new, separator)
        else:
            old_part, new_part = _shown(old), _shown(new)
        changes.append(Change(ChangeKind.ENVIRONMENT, name, old_part, new_part, at))
    return changes


def differing_entries(before: str, after: str, separator: str) -> tuple[str, str]:
    """The entries of two search paths between their common head and tail, each side joined
    ("" where nothing is there: a pure addition or removal)."""
    old, new = before.split(separator), after.split(separator)
    head = 0
    while head < min(len(old), len(new)) and old[head] == new[head]:
        head += 1
    tail = 0
    while tail < min(len(old), len(new)) - head and old[-1 - tail] == new[-1 - tail]:
        tail += 1
    old_part = old[head : len(old) - tail]
    new_part = new[head : len(new) - tail]
    return _joined(old_part, separator), _joined(new_part, separator)


def _joined(entries: list[str], separator: str) -> str:
    if not entries:
        return ""
    return separator.join(entry or "(empty entry)" for entry in entries)


def _shown(value: str | None) -> str:
    if value is None:
        return ""
    return value or EMPTY


# --------------------------------------------------------------------------- per OS


def stat_signature(root: Root, sources: tuple[str, ...]) -> tuple[Hashable, ...]:
    """(inode, size, mtime, ctime) of each source, None where it is missing: any edit, new or
    deleted file, or a file added to a listed directory changes it."""
    signature: list[Hashable] = []
    for path in sources:
        try:
            info = os.stat(syspath.real_path(root, path, "linux"))
        except (OSError, ValueError):
            signature.append(None)
            continue
        signature.append((info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns))
    return tuple(signature)


def linux_environment_watcher(
    root: Root = SYSTEM_ROOT, home: str | None = None, interval_s: float = LINUX_INTERVAL_S
) -> EnvironmentWatcher:
    """The login files of `home` (default: this user's) under `root`."""
    home = home or os.path.expanduser("~")
    return EnvironmentWatcher(
        lambda: login_environment(root, home),
        interval_s=interval_s,
        signature=lambda sources: stat_signature(root, sources),
    )


def windows_environment_watcher(interval_s: float = WINDOWS_INTERVAL_S) -> EnvironmentWatcher:
    """HKLM and HKCU Environment, woken by registry change notifications."""
    from monitor.watch import registry_windows

    return EnvironmentWatcher(
        registry_windows.read_logon_environment,
        interval_s=interval_s,
        separator=";",
        waiter=registry_windows.RegistryChangeWaiter,
    )


def environment_watcher() -> EnvironmentWatcher:
    """This machine's environment trigger (macOS uses the POSIX files)."""
    if sys.platform.startswith("win"):
        return windows_environment_watcher()
    return linux_environment_watcher()
