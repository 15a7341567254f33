"""The file trigger on real watchdog observers over fake machines in tmp dirs."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from monitor.facts.paths import Root
from monitor.model import Change, ChangeKind, CudaToolkit, HostInfo, Inventory
from monitor.record import replace
from monitor.watch import files
from monitor.watch.debounce import Debouncer
from monitor.watch.files import FileTrigger
from monitor.watch.targets import watch_targets
from tests.test_watch_targets import CUDA, CUDA_LIB, linux_workstation, make

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify")
STORM_WRITER = Path(__file__).with_name("storm_writer.py")


class Emits:
    """emit for tests: thread-safe, with waiting."""

    def __init__(self) -> None:
        self.changes: list[Change] = []
        self._cond = threading.Condition()

    def __call__(self, change: Change) -> None:
        with self._cond:
            self.changes.append(change)
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[Change], bool], timeout: float = 10.0) -> Change:
        with self._cond:
            found: list[Change] = []
            self._cond.wait_for(
                lambda: found.extend(c for c in self.changes if predicate(c)) or found, timeout
            )
        assert found, f"no such change within {timeout} s; got {self.changes}"
        return found[0]

    def about(self, subject: str) -> list[Change]:
        with self._cond:
            return [c for c in self.changes if c.subject == subject]


def inotify_watches() -> int:
    """The inotify watches this process holds, as the kernel counts them."""
    total = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") != "anon_inode:inotify":
                continue
            with open(f"/proc/self/fdinfo/{fd}") as info:
                total += sum(line.startswith("inotify wd:") for line in info)
        except OSError:
            continue
    return total


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


@pytest.fixture
def machine(tmp_path: Path):
    """A Linux workstation under tmp, its targets, and a started trigger."""
    inventory = linux_workstation(tmp_path)
    root = Root(str(tmp_path))
    emits = Emits()
    trigger = FileTrigger(watch_targets(inventory, root, "linux"), os_name="linux")
    trigger.start(emits)
    yield tmp_path, inventory, trigger, emits
    trigger.stop()


def test_one_os_watch_per_directory(tmp_path):
    inventory = linux_workstation(tmp_path)
    targets = watch_targets(inventory, Root(str(tmp_path)), "linux")
    before = inotify_watches()
    trigger = FileTrigger(targets, os_name="linux")
    trigger.start(Emits())
    try:
        assert trigger.watch_count == len({t.real for t in targets}) == 12
        assert inotify_watches() - before == trigger.watch_count
    finally:
        trigger.stop()
    assert inotify_watches() == before


def test_a_new_toolkit_root_is_reported_and_its_install_keeps_it_busy(machine, monkeypatch):
    tmp_path, inventory, trigger, emits = machine
    new_root = tmp_path / "usr/local/cuda-12.9"
    new_root.mkdir()
    appeared = emits.wait_for(lambda c: c.subject == "/usr/local/cuda-12.9")
    assert (appeared.kind, appeared.before, appeared.after) == (ChangeKind.TOOLKIT, "", "created")
    assert wait_until(lambda: trigger.settling_count == 1)
    # Files deep in the new tree, where no ordinary watch looks, still say "busy".
    deep = new_root / "targets/x86_64-linux/include/thrust"
    deep.mkdir(parents=True)
    count = len(emits.about("/usr/local/cuda-12.9"))
    (deep / "version.h").write_text("#define THRUST_VERSION 200800\n")
    assert wait_until(lambda: len(emits.about("/usr/local/cuda-12.9")) > count)
    # The daemon's next check finds the toolkit; retargeting gives it ordinary watches and
    # ends the settling watch once the tree is idle.
    monkeypatch.setattr(files, "SETTLE_IDLE_S", 0.0)
    (new_root / "bin").mkdir()
    toolkits = (*inventory.toolkits, CudaToolkit("/usr/local/cuda-12.9", "12.9.1"))
    newer = replace(inventory, toolkits=toolkits)
    watches = trigger.watch_count
    trigger.retarget(watch_targets(newer, Root(str(tmp_path)), "linux"))
    assert trigger.settling_count == 0
    assert trigger.watch_count == watches + 2  # the root and its bin
    assert "/usr/local/cuda-12.9/bin" in {Root(str(tmp_path)).system(p) for p in trigger.watched}


def test_an_atomic_replace_of_the_loader_cache(machine):
    tmp_path, _, _, emits = machine
    staged = tmp_path / "etc/ld.so.cache~"
    staged.write_text("new cache")
    os.rename(staged, tmp_path / "etc/ld.so.cache")
    change = emits.wait_for(lambda c: c.subject == "/etc/ld.so.cache")
    assert (change.kind, change.before, change.after) == (ChangeKind.LOADER, "present", "modified")
    assert not [c for c in emits.changes if "~" in c.subject]


def test_cudnn_copied_over_itself_in_place_is_seen_even_while_the_toolkit_settles(machine):
    """cp libcudnn* into an existing toolkit rewrites files in place: only the finished write
    tells. The settling watch on the same tree must not take those events away."""
    tmp_path, _, trigger, emits = machine
    lib = tmp_path / CUDA_LIB.lstrip("/")
    (lib / "libcufft.so.11").write_bytes(b"elf")  # starts the toolkit's settling watch
    emits.wait_for(lambda c: c.subject == CUDA)
    assert wait_until(lambda: trigger.settling_count == 1)
    (lib / "libcudnn.so.9").write_bytes(b"old")
    emits.wait_for(lambda c: c.subject == f"{CUDA_LIB}/libcudnn.so.9")
    count = len(emits.about(f"{CUDA_LIB}/libcudnn.so.9"))
    with open(lib / "libcudnn.so.9", "r+b") as handle:  # no create, no move: a write
        handle.write(b"new")
    changes = emits.about(f"{CUDA_LIB}/libcudnn.so.9")
    assert wait_until(lambda: len(emits.about(f"{CUDA_LIB}/libcudnn.so.9")) > count), changes
    last = emits.about(f"{CUDA_LIB}/libcudnn.so.9")[-1]
    assert (last.kind, last.before, last.after) == (ChangeKind.CUDNN, "present", "modified")


def test_a_removed_toolkit_is_reported_and_a_new_one_in_its_place_watched_again(machine):
    tmp_path, inventory, trigger, emits = machine
    watches = trigger.watch_count
    shutil.rmtree(tmp_path / CUDA.lstrip("/"))
    emits.wait_for(lambda c: c.subject == CUDA and c.after == "")
    assert wait_until(lambda: trigger.watch_count == watches - 4)
    # Reinstalled at the same path: the old watches were on the deleted directories.
    for sub in ("bin", "include", "targets/x86_64-linux/lib"):
        make(tmp_path, f"{CUDA}/{sub}")
    os.symlink("targets/x86_64-linux/lib", tmp_path / CUDA.lstrip("/") / "lib64")
    trigger.retarget(watch_targets(inventory, Root(str(tmp_path)), "linux"))
    assert trigger.watch_count == watches
    (tmp_path / CUDA.lstrip("/") / "bin/nvcc").write_text("#!/bin/sh\n")
    emits.wait_for(lambda c: c.subject == CUDA and c.after == "modified")


def test_a_directory_that_cannot_be_watched_is_skipped(tmp_path, caplog):
    inventory = linux_workstation(tmp_path)
    targets = watch_targets(inventory, Root(str(tmp_path)), "linux")
    conf_d = tmp_path / "etc/ld.so.conf.d"
    shutil.rmtree(conf_d)
    conf_d.write_text("a file where a directory was")
    trigger = FileTrigger(targets, os_name="linux")
    with caplog.at_level(logging.WARNING, logger="monitor.watch.files"):
        trigger.start(Emits())
    try:
        assert trigger.watch_count == len({t.real for t in targets}) - 1
        assert "cannot watch" in caplog.text and "ld.so.conf.d" in caplog.text
    finally:
        trigger.stop()


def test_a_failing_emit_does_not_stop_the_observer(machine, caplog):
    tmp_path, _, trigger, emits = machine
    calls = []

    def flaky(change: Change) -> None:
        calls.append(change)
        if len(calls) == 1:
            raise RuntimeError("emit failed")
        emits(change)

    trigger._emit = flaky  # the trigger's own emit, swapped for this rare case
    (tmp_path / "usr/local/cuda-13.0").mkdir()
    assert wait_until(lambda: calls)
    (tmp_path / "usr/local/cuda-13.1").mkdir()
    emits.wait_for(lambda c: c.subject == "/usr/local/cuda-13.1")
    assert "emit failed" in caplog.text


def test_stop_joins_everything_and_can_be_repeated(tmp_path):
    inventory = linux_workstation(tmp_path)
    threads = threading.active_count()
    trigger = FileTrigger(watch_targets(inventory, Root(str(tmp_path)), "linux"), os_name="linux")
    trigger.stop()  # before start: nothing to do
    trigger.start(Emits())
    assert threading.active_count() > threads
    trigger.stop()
    trigger.stop()
    assert threading.active_count() == threads
    assert trigger.watch_count == 0


@pytest.mark.parametrize(
    "files_count",
    [5_000, pytest.param(50_000, marks=pytest.mark.slow)],
)
def test_an_install_storm_gives_exactly_one_check(tmp_path, files_count):
    """An installer unpacks a toolkit of N files under /usr/local: one batch, after it ends."""
    make(tmp_path, "/usr/local")
    root = Root(str(tmp_path))
    targets = watch_targets(Inventory(host=HostInfo(os="linux")), root, "linux")
    quiet = 1.0
    checks: list[tuple[float, list[Change]]] = []
    debouncer = Debouncer(lambda b: checks.append((time.monotonic(), b)), quiet, 120.0)
    events = []

    def emit(change: Change) -> None:
        events.append(None)
        debouncer.add(change)

    trigger = FileTrigger(targets, os_name="linux")
    trigger.start(emit)
    try:
        cpu, start = time.process_time(), time.monotonic()
        dest = tmp_path / "usr/local/cuda-12.9"
        writer = subprocess.run(
            [sys.executable, str(STORM_WRITER), str(dest), str(files_count)],
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        )
        written = time.monotonic()
        assert wait_until(lambda: checks, timeout=60)
        time.sleep(quiet * 2)  # nothing else may follow
        cpu = time.process_time() - cpu
    finally:
        trigger.stop()
        debouncer.stop()
    assert len(checks) == 1
    at, batch = checks[0]
    assert batch == [Change(ChangeKind.TOOLKIT, "/usr/local/cuda-12.9", "", "created", batch[0].at)]
    assert at > written, "the check ran while the installer was still writing"
    report = json.loads(writer.stdout)
    print(
        f"\nstorm: {files_count} files in {report['dirs']} dirs, writer {written - start:.1f} s, "
        f"batch {at - written:.2f} s after it (quiet {quiet} s), {len(events)} events, "
        f"{cpu:.2f} s CPU in the monitor ({cpu / len(events) * 1e6:.0f} µs/event)"
    )
    assert len(events) >= files_count // 2  # the settling watch saw the storm
    assert at - written < quiet + 2.0


def test_a_reinstall_over_a_toolkit_gives_one_check_soon_after_it_ends(tmp_path):
    """rm -rf the toolkit, unpack it again: one check, within quiet + 2 s of the last file."""
    make(tmp_path, "/usr/local")
    dest = tmp_path / "usr/local/cuda-12.4"
    write = [sys.executable, str(STORM_WRITER), str(dest), "2000", "50"]
    subprocess.run(write, check=True, capture_output=True)
    root = Root(str(tmp_path))
    inventory = Inventory(host=HostInfo(os="linux"), toolkits=(CudaToolkit(CUDA, "12.4.1"),))
    quiet = 1.0
    checks: list[tuple[float, list[Change]]] = []
    debouncer = Debouncer(lambda b: checks.append((time.monotonic(), b)), quiet, 120.0)
    trigger = FileTrigger(watch_targets(inventory, root, "linux"), os_name="linux")
    trigger.start(debouncer.add)
    try:
        script = (
            f"import shutil, subprocess, sys; shutil.rmtree({str(dest)!r}); "
            f"subprocess.run([sys.executable, {str(STORM_WRITER)!r}, {str(dest)!r}, '2000', '50'])"
        )
        subprocess.run([sys.executable, "-c", script], check=True, timeout=120, capture_output=True)
        done = time.monotonic()
        assert wait_until(lambda: checks, timeout=30)
        time.sleep(quiet * 2)
    finally:
        trigger.stop()
        debouncer.stop()
    assert len(checks) == 1
    at, batch = checks[0]
    assert [(c.kind, c.subject, c.before, c.after) for c in batch] == [
        (ChangeKind.TOOLKIT, CUDA, "present", "created")
    ]
    assert done < at < done + quiet + 2.0
    print(f"\nreinstall: check {at - done:.2f} s after the last file (quiet {quiet} s)")
