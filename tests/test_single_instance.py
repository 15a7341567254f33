"""One monitor per user: real flock locks, across real processes, kill -9 included."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from monitor.single_instance import InstanceLock

HOLD = """
import sys, time
from monitor.single_instance import InstanceLock
lock = InstanceLock(__import__("pathlib").Path(sys.argv[1]))
print("held" if lock.acquire() else "refused", flush=True)
time.sleep(60)
"""


def test_a_second_lock_is_refused_and_names_the_holder(tmp_path):
    first, second = InstanceLock(tmp_path / "d.lock"), InstanceLock(tmp_path / "d.lock")
    assert first.acquire()
    try:
        assert not second.acquire()
        assert second.holder() == os.getpid()
    finally:
        first.release()
    assert second.acquire()
    second.release()


def test_a_killed_holder_frees_the_lock(tmp_path):
    path = tmp_path / "d.lock"
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "held"
        lock = InstanceLock(path)
        assert not lock.acquire()
        assert lock.holder() == child.pid
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        deadline = time.monotonic() + 5
        while not lock.acquire():
            assert time.monotonic() < deadline, "the dead holder's lock was never freed"
            time.sleep(0.05)
        lock.release()
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
