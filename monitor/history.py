"""The monitor's memory: every report, the changes that led to it and its load tests, in SQLite.

The daemon writes from one thread while the tray and `tf-stack-monitor history` read, in this
process or another: WAL mode lets readers and the writer proceed together, and a kill -9 at
any moment leaves every committed report in place (one transaction per report).
synchronous=FULL also makes each commit survive a power cut or a kernel panic, which is when
a history matters (a new driver that hangs the machine); it costs one fsync per report,
minutes apart.

Contract: writing never raises. A report that cannot be written (full disk, read-only folder,
locked, damaged or newer database, a directory in the way) waits in a bounded in-memory
queue; `problem` says in plain words what is wrong and `pending` how many reports wait; every
later `record` (or `flush`) writes them first, in order. Reading raises HistoryError with the
same kind of message. A file that is not a database is moved aside (history.sqlite3.corrupt-
<time>) and a new one started, with a warning in the log: nothing is deleted.

Reports are stored as zlib-compressed JSON (to_jsonable; about a tenth of the plain size),
beside a few plain columns for queries: checked_at, verdict, counts, the one-line summary and
the diff as JSON. Only this module imports sqlite3.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import logging
import os
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import platformdirs

from monitor.model import (
    Change,
    ChangeKind,
    LoadTestResult,
    Report,
    ReportDiff,
    Severity,
    TimelineEntry,
    Verdict,
    from_jsonable,
    to_jsonable,
)
from monitor.record import record, replace
from monitor.timeline import summarize

log = logging.getLogger("monitor.history")

APP_NAME = "tf-stack-monitor"
FILE_NAME = "history.sqlite3"
MAX_AGE_DAYS = 90.0
MAX_ROWS = 10_000
MAX_PENDING = 200
# Prune after this many writes at most (and on the first write after opening): deleting old
# rows is cheap, but there is no need to do it for every report.
PRUNE_EVERY = 50

T = TypeVar("T")


class HistoryError(Exception):
    """The history cannot be read: the message says where and why, for people."""


class _Refused(Exception):
    """We will not use this file (a newer schema, a directory): the message is the reason."""


def default_path() -> Path:
    """Where the daemon keeps its history: the platformdirs state dir of tf-stack-monitor."""
    return Path(platformdirs.user_state_dir(APP_NAME, appauthor=False)) / FILE_NAME


# --------------------------------------------------------------------------- schema


def _v1(db: sqlite3.Connection) -> None:
    """Reports, the changes that triggered each, and their load tests."""
    db.execute(
        """CREATE TABLE reports (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            checked_at TEXT NOT NULL,
            checked_epoch REAL NOT NULL,
            verdict TEXT NOT NULL,
            errors INTEGER NOT NULL,
            warnings INTEGER NOT NULL,
            infos INTEGER NOT NULL,
            tool_version TEXT NOT NULL,
            summary TEXT NOT NULL,
            diff TEXT NOT NULL,
            report BLOB NOT NULL)"""
    )
    db.execute("CREATE INDEX reports_by_time ON reports (checked_epoch)")
    db.execute(
        """CREATE TABLE changes (
            id INTEGER PRIMARY KEY,
            report_id INTEGER NOT NULL REFERENCES reports (id) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            subject TEXT NOT NULL,
            before TEXT NOT NULL,
            after TEXT NOT NULL,
            at TEXT NOT NULL)"""
    )
    db.execute("CREATE INDEX changes_by_report ON changes (report_id)")
    db.execute(
        """CREATE TABLE load_tests (
            id INTEGER PRIMARY KEY,
            report_id INTEGER NOT NULL REFERENCES reports (id) ON DELETE CASCADE,
            python TEXT NOT NULL,
            outcome TEXT NOT NULL,
            started_at TEXT NOT NULL,
            gflops REAL,
            result BLOB NOT NULL)"""
    )
    db.execute("CREATE INDEX load_tests_by_report ON load_tests (report_id)")


# MIGRATIONS[n] takes a database from schema n to n + 1, inside a transaction. A new schema
# is one more function here; PRAGMA user_version holds the number.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v1]


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    latest = len(MIGRATIONS)
    if _user_version(db) == latest:
        return
    while True:
        db.execute("BEGIN IMMEDIATE")  # another process may be migrating: re-read under lock
        try:
            version = _user_version(db)
            if version > latest:
                raise _Refused(
                    f"it was written by a newer tf-stack-monitor (history schema {version}; this"
                    f" version knows up to {latest}): upgrade tf-stack-monitor, or move the file"
                    " away to start a new history"
                )
            if version == latest:
                db.execute("COMMIT")
                return
            MIGRATIONS[version](db)
            db.execute(f"PRAGMA user_version = {version + 1}")
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise
        log.info("history %s: schema %d -> %d", path, version, version + 1)


def _user_version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def _rollback(db: sqlite3.Connection) -> None:
    if db.in_transaction:
        try:
            db.execute("ROLLBACK")
        except sqlite3.Error as exc:  # SQLite rolls back on its own after some errors
            log.debug("rollback: %s", exc)


# --------------------------------------------------------------------------- rows


@record
class _Row:
    """A report ready to insert: serialised when recorded, so a waiting one costs little."""

    checked_at: str
    checked_epoch: float
    verdict: str
    counts: tuple[int, int, int]
    tool_version: str
    summary: str
    diff: str
    report: bytes
    changes: tuple[tuple[str, str, str, str, str], ...]
    load_tests: tuple[tuple[str, str, str, float | None, bytes], ...]


def _row(report: Report, diff: ReportDiff, changes: Sequence[Change]) -> _Row:
    counts = [sum(1 for f in report.findings if f.severity is s) for s in Severity]
    return _Row(
        checked_at=report.checked_at,
        checked_epoch=_epoch(report.checked_at),
        verdict=report.verdict.value,
        counts=(counts[0], counts[1], counts[2]),
        tool_version=report.tool_version,
        summary=summarize(diff, changes),
        diff=json.dumps(to_jsonable(diff), separators=(",", ":")),
        report=_pack(replace(report, load_tests=())),
        changes=tuple((c.kind.value, c.subject, c.before, c.after, c.at) for c in changes),
        load_tests=tuple(
            (t.python, t.outcome, t.started_at, t.gflops, _pack(t)) for t in report.load_tests
        ),
    )


def _epoch(stamp: str) -> float:
    """Seconds since 1970 of an ISO time (naive: UTC); now when there is none."""
    try:
        parsed = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return time.time()
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.timestamp()


def _pack(value: Any) -> bytes:
    return zlib.compress(json.dumps(to_jsonable(value), separators=(",", ":")).encode())


def _unpack(cls: type[T], blob: bytes) -> T:
    return from_jsonable(cls, json.loads(zlib.decompress(blob)))


def _insert(db: sqlite3.Connection, row: _Row) -> None:
    db.execute("BEGIN IMMEDIATE")
    try:
        cursor = db.execute(
            "INSERT INTO reports (checked_at, checked_epoch, verdict, errors, warnings, infos,"
            " tool_version, summary, diff, report) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                row.checked_at,
                row.checked_epoch,
                row.verdict,
                *row.counts,
                row.tool_version,
                row.summary,
                row.diff,
                row.report,
            ),
        )
        report_id = cursor.lastrowid
        db.executemany(
            "INSERT INTO changes (report_id, kind, subject, before, after, at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(report_id, *change) for change in row.changes],
        )
        db.executemany(
            "INSERT INTO load_tests (report_id, python, outcome, started_at, gflops, result)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(report_id, *test) for test in row.load_tests],
        )
        db.execute("COMMIT")
    except BaseException:
        _rollback(db)
        raise


# --------------------------------------------------------------------------- failures


def _damaged(exc: BaseException) -> bool:
    """Not a database at all, or a damaged one: move it aside rather than give up."""
    text = str(exc)
    return isinstance(exc, sqlite3.DatabaseError) and (
        "file is not a database" in text or "database disk image is malformed" in text
    )


def _describe(exc: BaseException, path: Path) -> str:
    """What went wrong, in words a user can act on."""
    text = str(exc)
    if isinstance(exc, _Refused):
        return text
    if "database or disk is full" in text:
        return "the disk is full"
    if "readonly database" in text or not _writable(path):
        return "the file or its folder is read-only"
    if "database is locked" in text:
        return "another program holds a lock on it"
    if "disk I/O error" in text:
        return "the disk reported an I/O error"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror} ({exc.filename or path})"
    return text


def _reports(count: int) -> str:
    return "1 report" if count == 1 else f"{count} reports"


def _writable(path: Path) -> bool:
    target = path if path.exists() else path.parent
    return not target.exists() or os.access(target, os.W_OK)


# --------------------------------------------------------------------------- the store


class History:
    """The history file: record reports, list transitions. Thread-safe; a context manager.

    max_age_days / max_rows: older reports, and the oldest beyond that many, are pruned (the
    latest report is always kept). max_pending: reports kept in memory while the file cannot
    be written; beyond that the oldest waiting ones are dropped, and `problem` says how many.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_age_days: float = MAX_AGE_DAYS,
        max_rows: int = MAX_ROWS,
        max_pending: int = MAX_PENDING,
        busy_timeout_s: float = 5.0,
    ) -> None:
        self.path = Path(path)
        self.max_age_days = max_age_days
        self.max_rows = max_rows
        self.busy_timeout_s = busy_timeout_s
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        self._pending: collections.deque[_Row] = collections.deque(maxlen=max_pending)
        self._dropped = 0
        self._reason: str | None = None
        self._writes_since_prune: int | None = None  # None: not pruned since opening

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ----------------------------------------------------------------------- state

    @property
    def pending(self) -> int:
        """Reports waiting in memory to be written."""
        with self._lock:
            return len(self._pending)

    @property
    def problem(self) -> str | None:
        """Why the history cannot be written right now, for the log and `status`; None if fine.

        E.g. "cannot write history to /x/history.sqlite3: the disk is full; 3 reports kept in
        memory until it can be written".
        """
        with self._lock:
            if self._reason is None:
                return None
            text = f"cannot write history to {self.path}: {self._reason}"
            if self._pending:
                text += f"; {_reports(len(self._pending))} kept in memory until it can be written"
            if self._dropped:
                text += (
                    f" ({self._dropped} older {'one' if self._dropped == 1 else 'ones'} dropped)"
                )
            return text

    # ----------------------------------------------------------------------- writing

    def record(self, report: Report, diff: ReportDiff, changes: Sequence[Change] = ()) -> None:
        """Store a report with the diff against the previous one and the changes behind it.

        Never raises for a file that cannot be written: see `problem` and `pending`.
        """
        row = _row(report, diff, changes)
        with self._lock:
            if len(self._pending) == self._pending.maxlen:
                self._dropped += 1
            self._pending.append(row)
            self._flush()

    def flush(self) -> bool:
        """Try again to write the reports waiting in memory; True when none is left."""
        with self._lock:
            return self._flush()

    def prune(self, now: dt.datetime | None = None) -> int:
        """Delete reports older than max_age_days and beyond max_rows; how many went."""
        epoch = (now or dt.datetime.now(dt.timezone.utc)).timestamp()
        with self._lock:
            try:
                return self._prune(self._open(), epoch)
            except (sqlite3.Error, OSError, _Refused) as exc:
                self._close_db()
                self._fail(exc)
                return 0

    def close(self) -> None:
        """Write what waits if possible (else say what is lost), and close the file."""
        with self._lock:
            if self._pending and not self._flush():
                log.error(
                    "history %s: lost %s that could not be written (%s)",
                    self.path,
                    _reports(len(self._pending)),
                    self._reason,
                )
            self._close_db()

    def _flush(self) -> bool:
        try:
            self._write_pending()
        except (sqlite3.Error, OSError, _Refused) as exc:
            self._close_db()
            if not _damaged(exc):
                self._fail(exc)
                return False
            try:
                self._quarantine(exc)
                self._write_pending()
            except (sqlite3.Error, OSError, _Refused) as again:
                self._close_db()
                self._fail(again)
                return False
        self._recovered()
        return True

    def _write_pending(self) -> None:
        db = self._open()
        while self._pending:
            _insert(db, self._pending[0])
            self._pending.popleft()
            if self._writes_since_prune is not None:
                self._writes_since_prune += 1
        if self._prune_due():
            self._prune(db, time.time())

    def _prune_due(self) -> bool:
        every = min(PRUNE_EVERY, max(1, self.max_rows // 10))
        return self._writes_since_prune is None or self._writes_since_prune >= every

    def _prune(self, db: sqlite3.Connection, now: float) -> int:
        db.execute("BEGIN IMMEDIATE")
        try:
            cursor = db.execute(
                "DELETE FROM reports WHERE id < (SELECT max(id) FROM reports) AND ("
                " checked_epoch < ? OR"
                " id <= (SELECT id FROM reports ORDER BY id DESC LIMIT 1 OFFSET ?))",
                (now - self.max_age_days * 86400, self.max_rows),
            )
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise
        self._writes_since_prune = 0
        if cursor.rowcount:
            db.execute("PRAGMA incremental_vacuum").fetchall()
            log.info("history %s: pruned %d old reports", self.path, cursor.rowcount)
        return cursor.rowcount

    def _fail(self, exc: BaseException) -> None:
        reason = _describe(exc, self.path)
        if reason != self._reason:
            self._reason = reason
            log.warning("%s", self.problem)

    def _recovered(self) -> None:
        if self._reason is not None:
            log.info(
                "history %s can be written again; the reports kept in memory are in", self.path
            )
        self._reason = None
        self._dropped = 0

    # ----------------------------------------------------------------------- reading

    def last_report(self) -> Report | None:
        """The latest report, including one still waiting in memory; None before the first."""
        with self._lock:
            if self._pending:
                return _report_of(self._pending[-1])
        return self._read(_last_report)

    def timeline(self, limit: int = 50, transitions_only: bool = True) -> list[TimelineEntry]:
        """The latest `limit` entries, oldest first.

        transitions_only: the first report kept and each report whose verdict differs from
        the one before it; else every report. Each entry carries the changes recorded with
        its report and the ids of the findings that appeared and cleared.
        """
        return self._read(lambda db: _timeline(db, limit, transitions_only))

    def recent_changes(self, limit: int = 50) -> list[Change]:
        """The latest `limit` changes the triggers noticed, oldest first."""
        return self._read(lambda db: _recent_changes(db, limit))

    def _read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            try:
                return query(self._open())
            except (sqlite3.Error, OSError, _Refused, ValueError, TypeError, zlib.error) as exc:
                self._close_db()
                reason = _describe(exc, self.path)
                raise HistoryError(f"cannot read history at {self.path}: {reason}") from exc

    # ----------------------------------------------------------------------- the file

    def _open(self) -> sqlite3.Connection:
        if self._db is None:
            try:
                self._db = self._connect()
            except sqlite3.DatabaseError as exc:
                if not _damaged(exc):
                    raise
                self._quarantine(exc)
                self._db = self._connect()
            self._writes_since_prune = None
        return self._db

    def _connect(self) -> sqlite3.Connection:
        if self.path.is_dir():
            raise _Refused("it is a directory, not a file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(
            self.path,
            timeout=self.busy_timeout_s,
            isolation_level=None,  # transactions are explicit: one per report
            check_same_thread=False,  # shared by the daemon's threads, under self._lock
        )
        try:
            db.execute("PRAGMA foreign_keys = ON")
            if _user_version(db) == 0:  # must precede WAL and the first table to take effect
                db.execute("PRAGMA auto_vacuum = INCREMENTAL")
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                log.warning("history %s: WAL is not available here (journal %s)", self.path, mode)
            db.execute("PRAGMA synchronous = FULL")
            _migrate(db, self.path)
        except BaseException:
            db.close()
            raise
        return db

    def _quarantine(self, exc: BaseException) -> None:
        """Move a damaged file (and its -wal/-shm) aside, keeping it for recovery."""
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        number = 1
        while aside.exists():
            number += 1
            aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{number}")
        self.path.rename(aside)
        for suffix in ("-wal", "-shm"):
            companion = Path(f"{self.path}{suffix}")
            if companion.exists():
                companion.rename(f"{aside}{suffix}")
        log.warning(
            "history %s could not be used (%s); moved it to %s and started a new one",
            self.path,
            exc,
            aside,
        )

    def _close_db(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            try:
                db.close()
            except sqlite3.Error as exc:
                log.debug("closing %s: %s", self.path, exc)


# --------------------------------------------------------------------------- queries


def _last_report(db: sqlite3.Connection) -> Report | None:
    row = db.execute("SELECT id, report FROM reports ORDER BY id DESC LIMIT 1").fetchone()
    if row is None:
        return None
    tests = db.execute(
        "SELECT result FROM load_tests WHERE report_id = ? ORDER BY id", (row[0],)
    ).fetchall()
    report = _unpack(Report, row[1])
    return replace(report, load_tests=tuple(_unpack(LoadTestResult, t[0]) for t in tests))


def _report_of(row: _Row) -> Report:
    report = _unpack(Report, row.report)
    return replace(report, load_tests=tuple(_unpack(LoadTestResult, t[4]) for t in row.load_tests))


_TRANSITIONS = """
    WITH marked AS (
        SELECT id, verdict, lag(verdict) OVER (ORDER BY id) AS previous FROM reports)
    SELECT r.id, r.checked_at, r.verdict, r.summary, r.diff
    FROM marked JOIN reports AS r USING (id)
    WHERE marked.previous IS NULL OR marked.previous != marked.verdict
    ORDER BY r.id DESC LIMIT ?"""

_EVERY_REPORT = """
    SELECT id, checked_at, verdict, summary, diff FROM reports ORDER BY id DESC LIMIT ?"""


def _timeline(db: sqlite3.Connection, limit: int, transitions_only: bool) -> list[TimelineEntry]:
    rows = db.execute(_TRANSITIONS if transitions_only else _EVERY_REPORT, (limit,)).fetchall()
    rows.reverse()
    changes = _changes_of(db, [row[0] for row in rows])
    entries = []
    for report_id, checked_at, verdict, summary, diff_json in rows:
        diff = from_jsonable(ReportDiff, json.loads(diff_json))
        entries.append(
            TimelineEntry(
                at=checked_at,
                verdict=Verdict(verdict),
                summary=summary,
                changes=tuple(changes.get(report_id, ())),
                appeared=_ids(diff.appeared),
                cleared=_ids(diff.cleared),
            )
        )
    return entries


def _ids(findings: Iterable[Any]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(f.id for f in findings))


def _changes_of(db: sqlite3.Connection, report_ids: list[int]) -> dict[int, list[Change]]:
    found: dict[int, list[Change]] = {}
    for start in range(0, len(report_ids), 500):  # under SQLite's limit on parameters
        chunk = report_ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for report_id, *fields in db.execute(
            "SELECT report_id, kind, subject, before, after, at FROM changes"
            f" WHERE report_id IN ({marks}) ORDER BY id",
            chunk,
        ):
            found.setdefault(report_id, []).append(_change(*fields))
    return found


def _recent_changes(db: sqlite3.Connection, limit: int) -> list[Change]:
    rows = db.execute(
        "SELECT kind, subject, before, after, at FROM changes ORDER BY id DESC LIMIT ?", (limit,)
    ).fetchall()
    return [_change(*row) for row in reversed(rows)]


def _change(kind: str, subject: str, before: str, after: str, at: str) -> Change:
    return Change(kind=ChangeKind(kind), subject=subject, before=before, after=after, at=at)
