"""The file-system trigger: watchdog on the directories where installs land.

Every directory is watched on its own (one OS watch each, see targets.py). A new toolkit root
appearing (mkdir /usr/local/cuda-12.9), or a change inside a known one (a reinstall, an
uninstall), may be the start of an install: that tree gets a temporary recursive "settling"
watch, so the installer's 50,000 file events keep the batch open until it is done, instead of a
check running half way. Settling watches end at the next `retarget` once their tree has been
idle for SETTLE_IDLE_S (the daemon retargets after each check; the new inventory names the new
root, which then gets its ordinary watches).

watchdog's default event set includes file opens and close-without-write: reading a tree to
watch it then floods the inotify queue. Only creations, deletions, moves and finished writes
are asked for.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch

from monitor.facts.host import current_os
from monitor.model import Change, ChangeKind
from monitor.watch.targets import TargetIndex, WatchTarget

log = logging.getLogger(__name__)

_TREE_EVENTS = [
    FileCreatedEvent,
    DirCreatedEvent,
    FileDeletedEvent,
    DirDeletedEvent,
    FileMovedEvent,
    DirMovedEvent,
]
# A finished write: inotify's close-after-write is one event per file; elsewhere "modified".
_WRITTEN = FileClosedEvent if sys.platform.startswith("linux") else FileModifiedEvent
STEADY_EVENTS = [*_TREE_EVENTS, _WRITTEN]
SETTLING_EVENTS = _TREE_EVENTS  # only "still busy" matters there: one event per file
MAX_SETTLING = 16
SETTLE_IDLE_S = 2.0
_SETTLE_KINDS = (ChangeKind.TOOLKIT, ChangeKind.CUDNN)


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def event_paths(event: FileSystemEvent) -> list[tuple[str, str]]:
    """(real path, what) for an event: "created", "deleted" or "modified". A move is its
    source deleted and its destination created (a directory) or rewritten (a file: an
    installer's atomic replace)."""
    src = os.fsdecode(event.src_path)
    kind = event.event_type
    if kind == "moved":
        dest = os.fsdecode(event.dest_path)
        pairs = [(src, "deleted")] if src else []
        return pairs + ([(dest, "created" if event.is_directory else "modified")] if dest else [])
    if kind in ("created", "deleted"):
        return [(src, kind)]
    if event.is_directory:
        return []
    return [(src, "modified")]


class _Handler(FileSystemEventHandler):
    def __init__(self, callback: Callable[[FileSystemEvent], None]) -> None:
        self._callback = callback

    def dispatch(self, event: FileSystemEvent) -> None:
        try:
            self._callback(event)
        except Exception:  # an exception here would end the observer thread
            log.exception("handling %s failed", event)


@dataclass
class _Steady:
    watch: ObservedWatch
    identity: tuple[int, int]


@dataclass
class _Settling:
    watch: ObservedWatch
    identity: tuple[int, int]
    tag: object
    last: float


class DirectoryWatcher:
    """Directories watched one by one, plus a few temporary recursive settling watches on
    trees being installed, each kind on its own observer.

    Two observers because inotify keeps one event mask per directory and instance: a settling
    watch (no finished-write events: they would double the cost of a storm) over a watched
    directory would otherwise take its finished-write events away. Settling events only say
    "still busy" (`on_settling(tag)`) and never touch an observer, so the lock order is:
    `_change_lock` (start, stop, retargeting), the steady observer's lock, the settling
    observer's, then `_lock` (the dicts; never held while calling an observer).
    """

    def __init__(
        self,
        on_event: Callable[[FileSystemEvent], None],
        on_settling: Callable[[object], None],
    ) -> None:
        self._handler = _Handler(on_event)
        self._settling_handler = _Handler(self._on_settling_event)
        self._on_settling = on_settling
        self._observer: BaseObserver | None = None
        self._settler: BaseObserver | None = None
        self._wanted: list[str] = []
        self._steady: dict[str, _Steady] = {}
        self._settling: dict[str, _Settling] = {}
        self._lock = threading.Lock()
        self._change_lock = threading.Lock()

    @property
    def watch_count(self) -> int:
        """Directories watched one by one: the OS watches in use when nothing is settling."""
        return len(self._steady)

    @property
    def settling_count(self) -> int:
        return len(self._settling)

    @property
    def watched(self) -> list[str]:
        return list(self._steady)

    def start(self) -> None:
        with self._change_lock:
            if self._observer is not None:
                return
            _quiet_watchdog_race()
            # Started before any schedule: a directory that cannot be watched must not stop it.
            self._settler = Observer()
            self._settler.start()
            self._observer = Observer()
            self._observer.start()
            self._apply(self._observer)

    def stop(self) -> None:
        """Stop both observers and join their threads. Idempotent."""
        with self._change_lock:
            observers = (self._observer, self._settler)
            self._observer = self._settler = None
            for observer in observers:  # the steady one first: it is what starts settling
                if observer is not None:
                    observer.stop()
                    observer.join()
            with self._lock:
                self._steady.clear()
                self._settling.clear()

    def watch(self, directories: Iterable[str]) -> None:
        """Watch exactly these directories (real paths). Missing or unreadable ones are
        logged and skipped; a directory replaced since it was watched is watched again.
        Settling trees idle for SETTLE_IDLE_S end here."""
        with self._change_lock:
            self._wanted = list(dict.fromkeys(directories))
            if self._observer is not None:
                self._apply(self._observer)

    def settle(self, path: str, tag: object) -> bool:
        """Watch the tree at `path` recursively until it is idle; its events call
        on_settling(tag)."""
        settler = self._settler
        if settler is None:
            return False
        identity = _identity(path)
        with self._lock:
            old = self._settling.get(path)
            if old is not None and old.identity == identity:
                return True
            if old is not None:  # removed and made again (a reinstall): watch the new one
                del self._settling[path]
            elif len(self._settling) >= MAX_SETTLING:
                return False
        if old is not None:
            _unschedule(settler, old.watch)
        # The tree may be going away (an uninstall): failing to watch it is no news.
        scheduled = _schedule(
            settler, self._settling_handler, path, recursive=True, level=logging.DEBUG
        )
        if scheduled is None:
            return False
        with self._lock:
            self._settling[path] = _Settling(*scheduled, tag, time.monotonic())
        return True

    def forget(self, path: str) -> None:
        """`path` was deleted or moved away: drop its watch (retarget watches it again)."""
        observer = self._observer
        with self._lock:
            gone = self._steady.pop(path, None)
        if gone is not None and observer is not None:
            _unschedule(observer, gone.watch)

    def _on_settling_event(self, event: FileSystemEvent) -> None:
        for path, _ in event_paths(event):
            tag = self._settling_tag(path)
            if tag is not None:
                self._on_settling(tag)
                return

    def _settling_tag(self, path: str) -> object | None:
        """The tag of the settling tree holding `path` (its idle clock restarts), or None."""
        while True:
            found = self._settling.get(path)
            if found is not None:
                found.last = time.monotonic()
                return found.tag
            parent = os.path.dirname(path)
            if parent == path:
                return None
            path = parent

    def _apply(self, observer: BaseObserver) -> None:
        now = time.monotonic()
        wanted = set(self._wanted)
        with self._lock:
            stale = [
                path
                for path, steady in self._steady.items()
                if path not in wanted or _identity(path) != steady.identity
            ]
            idle = [path for path, s in self._settling.items() if now - s.last >= SETTLE_IDLE_S]
            dropped = [self._steady.pop(path).watch for path in stale]
            done = [self._settling.pop(path).watch for path in idle]
        for watch in dropped:
            _unschedule(observer, watch)
        if self._settler is not None:
            for watch in done:
                _unschedule(self._settler, watch)
        for path in self._wanted:
            if path in self._steady:
                continue
            scheduled = _schedule(observer, self._handler, path, recursive=False)
            if scheduled is not None:
                with self._lock:
                    self._steady[path] = _Steady(*scheduled)


def _quiet_watchdog_race() -> None:
    """watchdog warns when a directory created during its recursive walk is added twice (a
    race it resolves itself): an install storm makes hundreds of these warnings."""
    warnings.filterwarnings("ignore", r"Callback with id .* already exists", RuntimeWarning)


def _identity(path: str) -> tuple[int, int] | None:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino


def _schedule(
    observer: BaseObserver,
    handler: FileSystemEventHandler,
    path: str,
    *,
    recursive: bool,
    level: int = logging.WARNING,
) -> tuple[ObservedWatch, tuple[int, int]] | None:
    try:
        found = os.stat(path)
        if not stat.S_ISDIR(found.st_mode):
            raise NotADirectoryError(f"{path}: not a directory")
        watch = observer.schedule(
            handler,
            path,
            recursive=recursive,
            event_filter=SETTLING_EVENTS if recursive else STEADY_EVENTS,
        )
    except OSError as exc:  # vanished, unreadable, or out of inotify watches (ENOSPC)
        log.log(level, "cannot watch %s: %s", path, exc.strerror or exc)
        return None
    return watch, (found.st_dev, found.st_ino)


def _unschedule(observer: BaseObserver, watch: ObservedWatch) -> None:
    with contextlib.suppress(KeyError):  # already gone with the observer
        observer.unschedule(watch)


class FileTrigger:
    """Toolkit, cuDNN and loader directories -> Changes (TOOLKIT, CUDNN, LOADER).

    Give it `watch_targets(inventory, root, os_name)` and, after every check, the targets of
    the new inventory through `retarget`.
    """

    def __init__(self, targets: Sequence[WatchTarget] = (), *, os_name: str | None = None) -> None:
        self._os_name = os_name or current_os()
        self._index = TargetIndex(targets, self._os_name)
        self._watcher = DirectoryWatcher(self._on_event, self._on_settling)
        self._emit: Callable[[Change], None] | None = None

    @property
    def watch_count(self) -> int:
        """OS watches in use (one per directory; settling trees come on top while busy)."""
        return self._watcher.watch_count

    @property
    def settling_count(self) -> int:
        return self._watcher.settling_count

    @property
    def watched(self) -> list[str]:
        return self._watcher.watched

    def start(self, emit: Callable[[Change], None]) -> None:
        self._emit = emit
        self._watcher.watch(self._index.directories)
        self._watcher.start()

    def stop(self) -> None:
        self._watcher.stop()

    def retarget(self, targets: Sequence[WatchTarget]) -> None:
        index = TargetIndex(targets, self._os_name)
        self._index = index
        self._watcher.watch(index.directories)

    def _on_event(self, event: FileSystemEvent) -> None:
        emit = self._emit
        if emit is None:
            return
        at = utc_now()
        fresh_dir = event.is_directory and event.event_type == "created"
        for path, what in event_paths(event):
            found = self._index.match(path, what=what, at=at)
            if what == "deleted":
                self._watcher.forget(path)
            if found is None:
                continue
            change, tree = found
            if fresh_dir and not change.before and change.kind in _SETTLE_KINDS:
                self._watcher.settle(path, change)
            elif tree:  # a reinstall or an uninstall may be starting
                self._watcher.settle(tree, change)
            emit(change)

    def _on_settling(self, tag: object) -> None:
        """An event in a tree being installed: the Change that started it, again."""
        emit = self._emit
        if emit is not None and isinstance(tag, Change):
            emit(tag)
