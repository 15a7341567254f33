"""The history store on real SQLite files: round trips, transitions, pruning, migrations, and
every way the file can fail (full disk, read-only folder, lock, garbage, directory, kill -9)."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from history_writer import CUDNN_FACT, broken_report, diff_of, healthy_report

from monitor import history as history_module
from monitor.history import History, HistoryError, default_path
from monitor.model import Change, ChangeKind, Report, Verdict
from monitor.record import replace

TESTS = Path(__file__).parent
START = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.timezone.utc)


def at(minutes: float) -> str:
    return (START + dt.timedelta(minutes=minutes)).isoformat()


def pip_change(minutes: float, before: str, after: str) -> Change:
    return Change(ChangeKind.PACKAGES, "nvidia-cudnn-cu12", before, after, at(minutes))


def record_all(
    history: History, verdicts: str, start: float = 0, previous: Report | None = None
) -> list[Report]:
    """One report a minute: "h" healthy, "b" broken; each with the change behind it."""
    reports = []
    for offset, kind in enumerate(verdicts):
        minutes = start + offset
        if kind == "h":
            report, change = healthy_report(at(minutes)), pip_change(minutes, "", "9.10.2.21")
        else:
            report, change = broken_report(at(minutes)), pip_change(minutes, "9.10.2.21", "")
        history.record(report, diff_of(previous, report, (CUDNN_FACT,)), (change,))
        reports.append(report)
        previous = report
    return reports


def stored_times(path: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return [row[0] for row in db.execute("SELECT checked_at FROM reports ORDER BY id")]


def count(path: Path, table: str) -> int:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


@pytest.fixture
def path(tmp_path) -> Path:
    return tmp_path / "state" / "history.sqlite3"


# --------------------------------------------------------------------------- storing


def test_a_report_comes_back_whole_with_its_load_tests(path):
    report = broken_report(at(0))
    report = replace(report, load_tests=healthy_report(at(0)).load_tests)
    with History(path) as history:
        assert history.last_report() is None
        history.record(report, diff_of(None, report), [pip_change(0, "9.10.2.21", "")])
        assert history.last_report() == report
    with History(path) as reopened:
        again = reopened.last_report()
    assert again == report
    assert again.verdict is Verdict.BROKEN
    assert again.load_tests[0].gpu_samples[0].processes == ((42, 2100),)
    assert (count(path, "changes"), count(path, "load_tests")) == (1, 1)


def test_the_file_is_a_versioned_wal_database_in_the_state_dir(path):
    assert default_path() == Path(
        os.environ["XDG_STATE_HOME"], "tf-stack-monitor", "history.sqlite3"
    )
    with History(path) as history:
        record_all(history, "hb")
        with contextlib.closing(sqlite3.connect(path)) as db:
            assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            assert db.execute("PRAGMA user_version").fetchone() == (1,)
            rows = db.execute("SELECT verdict, errors, warnings, infos FROM reports").fetchall()
    assert rows == [("healthy", 0, 0, 1), ("broken", 1, 0, 1)]


def test_transitions_carry_the_changes_and_findings_behind_them(path):
    with History(path) as history:
        record_all(history, "hhbbbhh")
        entries = history.timeline()
    assert [(e.at, e.verdict) for e in entries] == [
        (at(0), Verdict.HEALTHY),
        (at(2), Verdict.BROKEN),
        (at(5), Verdict.HEALTHY),
    ]
    first, broke, fixed = entries
    assert first.summary.startswith("first check")
    assert broke.changes == (pip_change(2, "9.10.2.21", ""),)
    assert broke.appeared == ("library-not-found",)
    assert broke.summary == (
        "removed nvidia-cudnn-cu12 9.10.2.21; new error: libcudnn.so.9 and 7 more cuDNN files"
        " not found"
    )
    assert fixed.cleared == ("library-not-found",)
    assert fixed.appeared == ()


def test_every_report_and_the_latest_few(path):
    with History(path) as history:
        record_all(history, "hhbbbhh")
        assert len(history.timeline(limit=100, transitions_only=False)) == 7
        assert [e.at for e in history.timeline(limit=2)] == [at(2), at(5)]
        assert [e.at for e in history.timeline(limit=3, transitions_only=False)] == [
            at(4),
            at(5),
            at(6),
        ]
        changes = history.recent_changes(limit=2)
    assert changes == [pip_change(5, "", "9.10.2.21"), pip_change(6, "", "9.10.2.21")]


# --------------------------------------------------------------------------- pruning


def test_prune_drops_reports_older_than_the_age_limit_with_their_rows(path):
    with History(path, max_age_days=1) as history:
        record_all(history, "hbh", start=0)
        record_all(history, "bh", start=3 * 24 * 60)
        now = START + dt.timedelta(days=3, hours=1)
        assert history.prune(now=now) == 3
        assert [e.at for e in history.timeline(transitions_only=False)] == [
            at(3 * 24 * 60),
            at(3 * 24 * 60 + 1),
        ]
        assert history.prune(now=now + dt.timedelta(days=30)) == 1, "the latest report stays"
    assert stored_times(path) == [at(3 * 24 * 60 + 1)]
    assert (count(path, "changes"), count(path, "load_tests")) == (1, 1)


def test_writing_keeps_the_row_count_bounded(path):
    with History(path, max_rows=5) as history:
        record_all(history, "hb" * 10)
        assert len(history.timeline(limit=100, transitions_only=False)) == 5
    assert stored_times(path) == [at(m) for m in range(15, 20)]


def test_the_first_write_after_opening_prunes_by_age(path):
    now = dt.datetime.now(dt.timezone.utc)
    old = healthy_report((now - dt.timedelta(days=91)).isoformat())
    new = healthy_report(now.isoformat())
    with History(path) as history:
        history.record(old, diff_of(None, old))
    assert stored_times(path) == [old.checked_at], "the latest report stays"
    with History(path) as history:
        history.record(new, diff_of(old, new))
    assert stored_times(path) == [new.checked_at]


# --------------------------------------------------------------------------- migrations


def test_an_empty_file_and_a_v0_database_are_migrated(tmp_path):
    empty = tmp_path / "empty.sqlite3"
    empty.touch()
    v0 = tmp_path / "v0.sqlite3"
    with contextlib.closing(sqlite3.connect(v0)) as db:
        db.execute("PRAGMA user_version = 0")
    for path in (empty, v0):
        with History(path) as history:
            record_all(history, "h")
        with contextlib.closing(sqlite3.connect(path)) as db:
            assert db.execute("PRAGMA user_version").fetchone() == (1,)
        assert stored_times(path) == [at(0)]
    with contextlib.closing(sqlite3.connect(empty)) as db:  # a new file gives space back
        assert db.execute("PRAGMA auto_vacuum").fetchone() == (2,)  # incremental


def test_a_new_schema_is_one_more_function(path, monkeypatch):
    with History(path) as history:
        record_all(history, "hb")

    def v2(db):
        db.execute("ALTER TABLE reports ADD COLUMN note TEXT NOT NULL DEFAULT ''")

    monkeypatch.setattr(history_module, "MIGRATIONS", [*history_module.MIGRATIONS, v2])
    with History(path) as history:
        assert history.last_report().verdict is Verdict.BROKEN
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (2,)
        assert db.execute("SELECT note FROM reports").fetchall() == [("",), ("",)]


def test_a_failed_migration_changes_nothing(path, monkeypatch):
    with History(path) as history:
        record_all(history, "h")

    def v2(db):
        db.execute("CREATE TABLE half (x)")
        raise sqlite3.OperationalError("the migration failed half way")

    monkeypatch.setattr(history_module, "MIGRATIONS", [*history_module.MIGRATIONS, v2])
    with History(path) as history, pytest.raises(HistoryError, match="failed half way"):
        history.timeline()
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (1,)
        assert db.execute("SELECT name FROM sqlite_master WHERE name = 'half'").fetchall() == []


def test_a_database_from_a_newer_version_is_refused_and_left_alone(path, caplog):
    with History(path) as history:
        record_all(history, "hb")
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA user_version = 7")
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with History(path) as history:
        with pytest.raises(HistoryError) as error:
            history.timeline()
        assert str(error.value) == (
            f"cannot read history at {path}: it was written by a newer tf-stack-monitor"
            " (history schema 7; this version knows up to 1): upgrade tf-stack-monitor, or move"
            " the file away to start a new history"
        )
        record_all(history, "h", start=10)  # the daemon goes on
        assert history.pending == 1
        assert "newer tf-stack-monitor" in history.problem
        assert history.last_report().checked_at == at(10)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert "1 report kept in memory" in caplog.text
    assert "lost 1 report that could not be written (it was written by a newer" in caplog.text


# --------------------------------------------------------------------------- failures


def test_a_file_that_is_not_a_database_is_moved_aside(path, caplog):
    path.parent.mkdir(parents=True)
    garbage = b"this is not SQLite\n" * 500
    path.write_bytes(garbage)
    with caplog.at_level(logging.WARNING, logger="monitor.history"), History(path) as history:
        record_all(history, "b")
        assert history.problem is None
    (aside,) = path.parent.glob("history.sqlite3.corrupt-*")
    assert aside.read_bytes() == garbage
    assert stored_times(path) == [at(0)]
    assert f"moved it to {aside} and started a new one" in caplog.text
    assert "file is not a database" in caplog.text


def test_a_damaged_database_is_moved_aside_when_written(path, caplog):
    with History(path) as history:
        record_all(history, "hb" * 20)
    size = path.stat().st_size
    with path.open("r+b") as file:  # wipe the pages after the first: tables point to garbage
        file.seek(4096)
        file.write(b"\xff" * (size - 4096))
    with History(path) as history:
        record_all(history, "h", start=100)
        assert history.pending == 0
        assert [e.at for e in history.timeline()] == [at(100)]
    assert len(list(path.parent.glob("history.sqlite3.corrupt-*"))) == 1
    assert "malformed" in caplog.text


def test_a_directory_in_place_of_the_file(path):
    path.mkdir(parents=True)
    with History(path) as history:
        record_all(history, "hb")
        assert history.pending == 2
        assert history.problem == (
            f"cannot write history to {path}: it is a directory, not a file; 2 reports kept in"
            " memory until it can be written"
        )
        with pytest.raises(HistoryError, match="it is a directory, not a file"):
            history.timeline()
        path.rmdir()
        record_all(history, "h", start=2)
        assert (history.pending, history.problem) == (0, None)
    assert stored_times(path) == [at(0), at(1), at(2)]


def test_a_locked_database_keeps_reports_in_memory_up_to_a_bound(path, caplog):
    with History(path) as history:
        record_all(history, "h")
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")
        history = History(path, busy_timeout_s=0.05, max_pending=3)
        record_all(history, "bhbh", start=1)
        assert history.pending == 3
        assert history.problem == (
            f"cannot write history to {path}: another program holds a lock on it; 3 reports"
            " kept in memory until it can be written (1 older one dropped)"
        )
        assert history.last_report().checked_at == at(4)
        assert not history.flush()
        other.execute("COMMIT")
    assert history.flush()
    assert (history.pending, history.problem) == (0, None)
    history.close()
    assert stored_times(path) == [at(0), at(2), at(3), at(4)]
    assert "another program holds a lock" in caplog.text


# --------------------------------------------------------------------------- real mounts


def _mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


@pytest.fixture
def mount_point(tmp_path):
    """A directory to mount on, unmounted after the test; skips where we may not mount."""
    point = tmp_path / "mnt"
    point.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    probe = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode:
        reason = (probe.stderr.strip().splitlines() or ["?"])[0]
        pytest.skip(f"cannot mount a file system here (needs root): {reason}")
    subprocess.run(["umount", str(point)], check=True)
    yield point
    for _ in range(5):  # every mount stacked on it (os.path.ismount misses bind mounts)
        if subprocess.run(["umount", str(point)], capture_output=True, check=False).returncode:
            break


def _fill(file: Path) -> None:
    """Write until the file system says ENOSPC."""
    fd = os.open(file, os.O_WRONLY | os.O_CREAT)
    block = b"\0" * 65536
    try:
        while block:
            try:
                os.write(fd, block)
            except OSError:
                block = block[: len(block) // 16]
    finally:
        os.close(fd)


def test_a_full_disk_keeps_reports_in_memory_until_there_is_room(mount_point):
    _mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point))
    path = mount_point / "history.sqlite3"
    filler = mount_point / "filler"
    with History(path) as history:
        written = record_all(history, "h")
        _fill(filler)
        minutes = 1
        while history.pending < 3 and minutes < 100:
            written += record_all(history, "bh"[minutes % 2], start=minutes)
            minutes += 1
        assert history.pending == 3
        assert history.problem == (
            f"cannot write history to {path}: the disk is full; 3 reports kept in memory until"
            " it can be written"
        )
        filler.unlink()
        written += record_all(history, "h", start=minutes)
        assert (history.pending, history.problem) == (0, None)
        stored = [e.at for e in history.timeline(limit=1000, transitions_only=False)]
    assert stored == [r.checked_at for r in written]


def test_a_read_only_folder_keeps_reports_in_memory_until_it_is_writable(tmp_path, mount_point):
    real = tmp_path / "state" / "history.sqlite3"
    with History(real) as history:
        record_all(history, "h")
    _mount("--bind", str(real.parent), str(mount_point))
    _mount("-o", "remount,bind,ro", str(mount_point))
    with History(mount_point / "history.sqlite3") as history:
        record_all(history, "b", start=1)
        assert history.pending == 1
        assert "the file or its folder is read-only; 1 report kept" in history.problem
        _mount("-o", "remount,bind,rw", str(mount_point))
        record_all(history, "h", start=2)
        assert (history.pending, history.problem) == (0, None)
    assert stored_times(real) == [at(0), at(1), at(2)]


# --------------------------------------------------------------------------- concurrency


def test_readers_see_whole_reports_while_the_daemon_writes(path):
    writer = History(path)
    reader = History(path)  # another connection, as `tf-stack-monitor history` has
    record_all(writer, "h")
    done = threading.Event()
    errors: list[BaseException] = []
    seen: list[int] = []

    def write():
        try:
            record_all(writer, "bh" * 20, start=1)
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    def read(history: History, counts: list[int] | None):
        try:
            while not done.is_set():
                entries = history.timeline(limit=1000, transitions_only=False)
                assert history.last_report() is not None
                if counts is not None:
                    counts.append(len(entries))
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=write),
        threading.Thread(target=read, args=(reader, seen)),
        threading.Thread(target=read, args=(writer, None)),  # the tray, same object
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    writer.close()
    reader.close()
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert seen and seen == sorted(seen)
    assert len(stored_times(path)) == 41


def test_kill_9_while_writing_loses_no_committed_report(tmp_path):
    """A writer killed at random moments: every report it said was committed is there."""
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    path = tmp_path / "history.sqlite3"
    printed: list[str] = []
    for round_ in range(5):
        out, err = tmp_path / f"out{round_}", tmp_path / f"err{round_}"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            child = subprocess.Popen(
                [sys.executable, str(TESTS / "history_writer.py"), str(path)],
                stdout=stdout,
                stderr=stderr,
            )
        deadline = time.monotonic() + 30
        while out.stat().st_size == 0 and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert child.poll() is None, err.read_text()
        time.sleep(rng.uniform(0, 0.5))  # then kill it mid-loop: mid-transaction, mid-print...
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        printed += out.read_text().split("\n")[:-1]  # the last line may be cut short
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    stored = stored_times(path)
    missing = sorted(set(printed) - set(stored))
    assert not missing, f"seed {seed}: {len(missing)} committed reports lost"
    assert len(stored) - len(printed) <= 5, "at most one unprinted commit per kill"
    with History(path) as history:
        assert history.last_report().checked_at == stored[-1]
