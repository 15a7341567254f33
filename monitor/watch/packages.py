"""The package trigger: distributions appearing, vanishing or changing version in the
site-packages of each watched interpreter.

Each site-packages directory is watched on its own (one OS watch): pip creates and removes
*.dist-info directories there, so a listing after each such event, diffed against the last
one, says "tensorflow 2.15.0 -> 2.16.1". pip first moves the old version aside (to
"~ensorflow-2.15.0.dist-info"), then writes the new files, then the new dist-info: the two
halves are separate Changes ("2.15.0" -> "", "" -> "2.16.1") that the debouncer coalesces.
While the new files are written (tens of seconds for TensorFlow), the package directory being
filled gets a settling watch whose events are `activity`, so no check runs half way.

Only the distributions the rules reason about count (the TensorFlow family, keras, nvidia-*,
torch, jax) plus what the interpreter's TensorFlow requires (numpy, protobuf...): installing
an unrelated package holds a pending batch open but is not a change.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from watchdog.events import FileSystemEvent

from monitor.facts.paths import Root
from monitor.facts.tensorflow import is_watched, normalize_name
from monitor.model import Change, ChangeKind, PythonEnv
from monitor.watch.debounce import activity
from monitor.watch.files import DirectoryWatcher, event_paths, utc_now
from monitor.watch.targets import is_noise

log = logging.getLogger(__name__)

_META = (".dist-info", ".egg-info")
_REQUIREMENT_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_PKG_INFO_LIMIT = 64 * 1024
REINSTALLED = " (reinstalled)"
_ACTIVITY = activity(ChangeKind.PACKAGES)


def parse_meta_name(entry: str) -> tuple[str, str] | None:
    """(normalised name, version) of a metadata directory name; version "" when the name has
    none ("foo.egg-info"); None for anything else, pip's "~name" stashes included.

    "tensorflow-2.16.1.dist-info" -> ("tensorflow", "2.16.1");
    "Foo_Bar-1.0-py3.11.egg-info" -> ("foo-bar", "1.0").
    """
    if entry.startswith("~") or not entry.endswith(_META):
        return None
    stem = entry.rsplit(".", 1)[0]
    name, _, rest = stem.partition("-")
    if not name:
        return None
    return normalize_name(name), rest.split("-")[0]


def read_distributions(directory: str) -> dict[str, str]:
    """name -> version of every distribution installed in `directory`; {} when unreadable.
    Two copies of one name (a stale dist-info) read "2.15.0, 2.16.1"."""
    try:
        entries = sorted(os.listdir(directory))
    except OSError:
        return {}
    found: dict[str, str] = {}
    for entry in entries:
        parsed = parse_meta_name(entry)
        if parsed is None:
            continue
        name, version = parsed
        version = version or _pkg_info_version(os.path.join(directory, entry))
        found[name] = f"{found[name]}, {version}" if name in found else version
    return found


def diff_distributions(
    before: Mapping[str, str],
    after: Mapping[str, str],
    *,
    where: str,
    at: str = "",
    last_removed: Mapping[str, str] | None = None,
) -> list[Change]:
    """One PACKAGES Change per distribution that differs, by name; subject "name in where".

    last_removed: name -> the version that last vanished; coming back at that same version
    is marked "(reinstalled)", so a forced reinstall is not mistaken for no change.
    """
    changes = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name, ""), after.get(name, "")
        if old == new:
            continue
        if not old and last_removed and last_removed.get(name) == new:
            new += REINSTALLED
        changes.append(Change(ChangeKind.PACKAGES, f"{name} in {where}", old, new, at))
    return changes


def relevant_names(python: PythonEnv) -> frozenset[str]:
    """What this interpreter's TensorFlow requires (normalised), on top of `is_watched`."""
    requires = python.tensorflow.requires if python.tensorflow else ()
    names = (_REQUIREMENT_NAME.match(line) for line in requires)
    return frozenset(normalize_name(match.group(1)) for match in names if match)


@dataclass
class _Env:
    """One watched interpreter: its directories (real paths) and what they held last."""

    where: str
    dirs: tuple[str, ...]
    extra: frozenset[str]
    versions: dict[str, str] | None = None  # None until first listed
    removed: dict[str, str] = field(default_factory=dict)

    def read(self) -> dict[str, str]:
        merged: dict[str, str] = {}
        for directory in self.dirs:
            for name, version in read_distributions(directory).items():
                if is_watched(name) or name in self.extra:
                    merged[name] = f"{merged[name]}, {version}" if name in merged else version
        return merged


class PackageTrigger:
    """site-packages of the watched interpreters -> PACKAGES Changes.

    Give it the inventory's pythons and, after every check, the new ones through `retarget`.
    """

    def __init__(self, pythons: Sequence[PythonEnv] = (), *, root: Root | None = None) -> None:
        self._root = root or Root()
        self._watcher = DirectoryWatcher(self._on_event, self._on_settling)
        self._lock = threading.Lock()
        self._envs: dict[str, _Env] = {}
        self._by_dir: dict[str, list[_Env]] = {}
        self._emit: Callable[[Change], None] | None = None
        self._pythons = tuple(pythons)

    @property
    def watch_count(self) -> int:
        return self._watcher.watch_count

    @property
    def watched(self) -> list[str]:
        return self._watcher.watched

    def start(self, emit: Callable[[Change], None]) -> None:
        self._emit = emit
        self._watcher.start()
        self.retarget(self._pythons)

    def stop(self) -> None:
        self._watcher.stop()

    def retarget(self, pythons: Sequence[PythonEnv]) -> None:
        """Watch these interpreters; one already watched keeps its last listing (nothing that
        happened in between is lost), a new one is listed after its watches are in place."""
        self._pythons = tuple(pythons)
        wanted = {}
        for python in pythons:
            dirs = self._directories(python)
            if python.error is None and dirs:
                wanted[python.executable] = (python, dirs)
        with self._lock:
            envs = {}
            for key, (python, dirs) in wanted.items():
                old = self._envs.get(key)
                extra = relevant_names(python)
                if old is not None and old.dirs == dirs and old.extra == extra:
                    envs[key] = old
                else:
                    envs[key] = _Env(python.prefix or python.executable, dirs, extra)
            by_dir: dict[str, list[_Env]] = {}
            for env in envs.values():
                for directory in env.dirs:
                    by_dir.setdefault(directory, []).append(env)
            self._envs, self._by_dir = envs, by_dir  # read without the lock by the observer
        self._watcher.watch(list(self._by_dir))
        with self._lock:
            for env in self._envs.values():
                if env.versions is None:
                    env.versions = env.read()

    def _directories(self, python: PythonEnv) -> tuple[str, ...]:
        """site-packages and every other directory a watched distribution lives in, those
        that exist (a user site made later is watched from the check after it appears)."""
        places = [*python.site_packages, *(d.location for d in python.distributions)]
        dirs = (os.path.normpath(self._root.path(place)) for place in places if place)
        return tuple(dict.fromkeys(d for d in dirs if os.path.isdir(d)))

    def _on_event(self, event: FileSystemEvent) -> None:
        emit = self._emit
        if emit is None:
            return
        fresh_dir = event.is_directory and event.event_type == "created"
        for path, what in event_paths(event):
            parent, name = os.path.split(path)
            envs = self._by_dir.get(parent)
            if envs is not None and name.endswith(_META):
                self._rescan(envs, emit)
            elif what == "deleted" and path in self._by_dir:
                self._watcher.forget(path)
                self._rescan(self._by_dir[path], emit)
            elif envs is not None:
                if fresh_dir and not name.startswith("~") and not is_noise(name):
                    self._watcher.settle(path, parent)
                emit(_ACTIVITY)

    def _on_settling(self, _tag: object) -> None:
        """A file written into a package being installed: hold the batch open."""
        emit = self._emit
        if emit is not None:
            emit(_ACTIVITY)

    def _rescan(self, envs: list[_Env], emit: Callable[[Change], None]) -> None:
        at = utc_now()
        changes = []
        with self._lock:
            for env in envs:
                now = env.read()
                if env.versions is None:  # retarget has not listed it yet: this is the start
                    env.versions = now
                    continue
                changes += diff_distributions(
                    env.versions, now, where=env.where, at=at, last_removed=env.removed
                )
                for name, version in env.versions.items():
                    if name not in now:
                        env.removed[name] = version
                for name in now:
                    env.removed.pop(name, None)
                env.versions = now
        for change in changes or [_ACTIVITY]:
            emit(change)


def _pkg_info_version(meta: str) -> str:
    """The Version header of an egg-info's PKG-INFO (or of a single-file egg-info)."""
    path = os.path.join(meta, "PKG-INFO") if os.path.isdir(meta) else meta
    try:
        with open(path, "rb") as handle:
            head = handle.read(_PKG_INFO_LIMIT).decode("utf-8", "replace")
    except OSError:
        return ""
    match = re.search(r"^Version:\s*(\S+)", head, re.M)
    return match.group(1) if match else ""
