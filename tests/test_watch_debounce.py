"""The debouncer: a burst of changes becomes one batch after it goes quiet."""

from __future__ import annotations

import threading
import time

import pytest

from monitor.model import Change, ChangeKind
from monitor.watch.debounce import Debouncer, activity, coalesce

TK = ChangeKind.TOOLKIT


class Batches:
    """on_batch for tests: records batches with the time they came."""

    def __init__(self) -> None:
        self.got: list[tuple[float, list[Change]]] = []
        self._cond = threading.Condition()

    def __call__(self, batch: list[Change]) -> None:
        with self._cond:
            self.got.append((time.monotonic(), batch))
            self._cond.notify_all()

    def wait(self, count: int = 1, timeout: float = 10.0) -> list[list[Change]]:
        with self._cond:
            self._cond.wait_for(lambda: len(self.got) >= count, timeout)
            return [batch for _, batch in self.got]


@pytest.fixture
def batches():
    return Batches()


def test_a_burst_gives_one_batch_a_quiet_period_after_its_last_change(batches):
    debouncer = Debouncer(batches, quiet_s=0.3, max_wait_s=30)
    try:
        for index in range(5):
            time.sleep(0.1)
            debouncer.add(Change(TK, f"/usr/local/cuda-12.{index}", "", "created"))
        last = time.monotonic()
        assert len(batches.wait()[0]) == 5
        assert batches.got[0][0] - last >= 0.3
        time.sleep(0.5)
        assert len(batches.got) == 1
    finally:
        debouncer.stop()


def test_same_subject_keeps_first_before_and_last_after():
    changes = [
        Change(ChangeKind.DRIVER, "NVIDIA driver", "535.104", "550.54", "t1"),
        Change(TK, "/usr/local/cuda-12.4", "present", "modified", "t2"),
        Change(ChangeKind.DRIVER, "NVIDIA driver", "550.54", "560.28", "t3"),
    ]
    assert coalesce(changes) == [
        Change(ChangeKind.DRIVER, "NVIDIA driver", "535.104", "560.28", "t3"),
        Change(TK, "/usr/local/cuda-12.4", "present", "modified", "t2"),
    ]


def test_round_trips_are_dropped_but_requests_are_not():
    changes = [
        Change(ChangeKind.DRIVER, "NVIDIA driver", "535", "550"),
        Change(ChangeKind.DRIVER, "NVIDIA driver", "550", "535"),
        Change(TK, "/usr/local/cuda-13.0.tmp", "", "created"),
        Change(TK, "/usr/local/cuda-13.0.tmp", "present", ""),
        Change(ChangeKind.MANUAL, "Check now"),
        Change(ChangeKind.MANUAL, "Check now"),
        Change(TK, "/usr/local/cuda-12.4", "present", ""),  # reinstalled: kept
        Change(TK, "/usr/local/cuda-12.4", "", "created"),
    ]
    assert coalesce(changes) == [
        Change(ChangeKind.MANUAL, "Check now"),
        Change(TK, "/usr/local/cuda-12.4", "present", "created"),
    ]


def test_a_batch_that_cancels_out_is_not_delivered(batches):
    debouncer = Debouncer(batches, quiet_s=0.1, max_wait_s=30)
    try:
        debouncer.add(Change(ChangeKind.ENVIRONMENT, "PATH", "/a", "/b"))
        debouncer.add(Change(ChangeKind.ENVIRONMENT, "PATH", "/b", "/a"))
        time.sleep(0.5)
        assert batches.got == []
        debouncer.add(Change(ChangeKind.ENVIRONMENT, "PATH", "/a", "/c"))
        assert batches.wait() == [[Change(ChangeKind.ENVIRONMENT, "PATH", "/a", "/c")]]
    finally:
        debouncer.stop()


def test_an_endless_storm_still_fires_after_max_wait(batches):
    debouncer = Debouncer(batches, quiet_s=0.3, max_wait_s=0.8)
    try:
        start = time.monotonic()
        while not batches.got and time.monotonic() - start < 5:
            debouncer.add(Change(TK, "/usr/local/cuda-12.9", "", "created"))
            time.sleep(0.02)
        assert batches.got, "no batch during a storm that never went quiet"
        assert 0.8 <= batches.got[0][0] - start < 2.5
    finally:
        debouncer.stop()


def test_activity_holds_a_pending_batch_open_without_joining_it(batches):
    debouncer = Debouncer(batches, quiet_s=0.3, max_wait_s=30)
    try:
        debouncer.add(activity(ChangeKind.PACKAGES))  # nothing pending: nothing to hold
        time.sleep(0.4)
        assert batches.got == []
        debouncer.add(Change(ChangeKind.PACKAGES, "tensorflow in /venv", "2.15.0", ""))
        start = time.monotonic()
        while time.monotonic() - start < 1.0:
            debouncer.add(activity(ChangeKind.PACKAGES))
            time.sleep(0.05)
        assert batches.got == []
        debouncer.add(Change(ChangeKind.PACKAGES, "tensorflow in /venv", "", "2.16.1"))
        assert batches.wait() == [
            [Change(ChangeKind.PACKAGES, "tensorflow in /venv", "2.15.0", "2.16.1")]
        ]
    finally:
        debouncer.stop()


def test_flush_now_delivers_at_once(batches):
    debouncer = Debouncer(batches, quiet_s=30, max_wait_s=60)
    try:
        debouncer.flush_now()  # nothing pending: nothing delivered, nothing remembered
        debouncer.add(Change(ChangeKind.MANUAL, "Check now"))
        start = time.monotonic()
        debouncer.flush_now()
        assert batches.wait() == [[Change(ChangeKind.MANUAL, "Check now")]]
        assert time.monotonic() - start < 5
    finally:
        debouncer.stop()


def test_changes_during_a_slow_batch_form_the_next_one(batches):
    started = threading.Event()
    release = threading.Event()

    def slow_check(batch: list[Change]) -> None:
        batches(batch)
        started.set()
        release.wait(10)

    debouncer = Debouncer(slow_check, quiet_s=0.1, max_wait_s=30)
    try:
        debouncer.add(Change(TK, "/usr/local/cuda-12.4", "present", "modified"))
        assert started.wait(5)
        debouncer.add(Change(TK, "/usr/local/cuda-12.9", "", "created"))
        time.sleep(0.3)
        assert len(batches.got) == 1  # one check at a time
        release.set()
        assert batches.wait(2)[1] == [Change(TK, "/usr/local/cuda-12.9", "", "created")]
    finally:
        release.set()
        debouncer.stop()


def test_a_failing_handler_does_not_stop_the_debouncer(batches, caplog):
    calls = []

    def flaky(batch: list[Change]) -> None:
        calls.append(batch)
        if len(calls) == 1:
            raise RuntimeError("the check blew up")
        batches(batch)

    debouncer = Debouncer(flaky, quiet_s=0.05, max_wait_s=30)
    try:
        debouncer.add(Change(TK, "a", "", "created"))
        start = time.monotonic()
        while not calls and time.monotonic() - start < 5:
            time.sleep(0.01)
        debouncer.add(Change(TK, "b", "", "created"))
        assert batches.wait() == [[Change(TK, "b", "", "created")]]
        assert "the check blew up" in caplog.text
    finally:
        debouncer.stop()


def test_stop_returns_what_was_pending_and_can_be_repeated(batches):
    debouncer = Debouncer(batches, quiet_s=30, max_wait_s=60)
    debouncer.add(Change(TK, "/usr/local/cuda-12.9", "", "created"))
    assert debouncer.stop() == [Change(TK, "/usr/local/cuda-12.9", "", "created")]
    assert debouncer.stop() == []
    assert batches.got == []


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="quiet_s"):
        Debouncer(lambda batch: None, quiet_s=10, max_wait_s=5)


def test_a_storm_costs_microseconds_per_change(batches):
    """50,000 file events of one install must not burn a core: measure what add() absorbs."""
    debouncer = Debouncer(batches, quiet_s=0.2, max_wait_s=30)
    try:
        storm = [Change(TK, "/usr/local/cuda-12.9", "", "created")] * 200_000
        storm += [
            Change(TK, f"/usr/lib/x86_64-linux-gnu/libcudnn{n}", "", "created") for n in range(50)
        ]
        cpu, wall = time.process_time(), time.perf_counter()
        for change in storm:
            debouncer.add(change)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        rate = len(storm) / wall
        print(f"debouncer: {rate:,.0f} changes/s, {cpu / len(storm) * 1e6:.2f} µs CPU each")
        assert rate > 50_000
        (batch,) = batches.wait()
        assert len(batch) == 51
    finally:
        debouncer.stop()
