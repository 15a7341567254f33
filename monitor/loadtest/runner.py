"""Run the GPU load test (child.py) with a watched interpreter: start it, read it, kill it.

The child runs in its own session / process group, so a timeout kills everything it started
(SIGTERM, then SIGKILL after a grace period), and it is always reaped. Its stdout is read as it
comes (JSON lines: see child.py; anything else is noise and ignored), its stderr is kept
(bounded: the head and the tail; see child_output.py), and NVML is sampled every
`sample_interval` seconds meanwhile. On POSIX one loop in the calling thread does all of it
(selectors: no threads); on Windows two reader threads are started and joined before returning.

What the child did is judged in judge.py (the LoadTestResult and its findings).
"""

from __future__ import annotations

import contextlib
import importlib.resources
import os
import queue
import re
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from monitor.loadtest.child_output import (
    STDERR_HEAD,
    STDERR_TAIL,
    BoundedStderr,
    ChildRun,
    JsonLines,
)
from monitor.loadtest.exits import IS_WINDOWS
from monitor.loadtest.exits import result_signal as _signal_name  # noqa: F401 # for tests
from monitor.loadtest.gpu_sampler import GpuSampler
from monitor.loadtest.judge import judge
from monitor.model import Inventory, LoadTestResult, utc_now

TERM_GRACE = 3.0
DRAIN_GRACE = 1.0

_PCI_BUS = re.compile(r"pci bus id: ([0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7])")


def child_script() -> contextlib.AbstractContextManager[Any]:
    """A context manager giving the path of child.py on disk."""
    return importlib.resources.as_file(
        importlib.resources.files("monitor.loadtest").joinpath("child.py")
    )


# --------------------------------------------------------------------------- running the child


def _command(python: str, child: str, matmul_size: int, seconds: float) -> list[str]:
    # -B: write no .pyc into the watched environment (as the inventory probe does).
    return [python, "-B", child, "--matmul-size", str(matmul_size), "--seconds", str(seconds)]


def _child_env(env: Mapping[str, str] | None) -> dict[str, str]:
    child_env = dict(os.environ if env is None else env)
    # TF's INFO lines are evidence (e.g. "Created device ... pci bus id: ..."); a user's
    # TF_CPP_MIN_LOG_LEVEL=3 would also hide its errors from us.
    child_env["TF_CPP_MIN_LOG_LEVEL"] = "0"
    child_env["PYTHONUNBUFFERED"] = "1"
    return child_env


def _spawn(command: Sequence[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    kwargs: dict[str, Any] = {}
    if IS_WINDOWS:
        kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
    else:
        kwargs["start_new_session"] = True
    return subprocess.Popen(
        list(command),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env),
        close_fds=True,
        **kwargs,
    )


def _exited_unreaped(proc: subprocess.Popen[bytes]) -> bool:
    """True once the child has exited, WITHOUT reaping it: while it is a zombie its PID (its
    process group's id) cannot be reused, so killing what is left of its group is safe."""
    waitid = getattr(os, "waitid", None)
    if waitid is None or proc.returncode is not None:
        return proc.poll() is not None
    try:
        info = waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return proc.poll() is not None
    return info is not None and info.si_pid == proc.pid


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _run_posix(
    proc: subprocess.Popen[bytes],
    run: ChildRun,
    timeout: float,
    sampler: GpuSampler,
    started: float,
    term_grace: float,
) -> None:
    assert proc.stdout is not None and proc.stderr is not None
    lines = JsonLines(run)
    err = BoundedStderr(STDERR_HEAD, STDERR_TAIL)
    pgid = proc.pid  # start_new_session: the child leads its own group
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ, lines.feed)
    selector.register(proc.stderr, selectors.EVENT_READ, err.feed)
    deadline = started + timeout
    kill_at: float | None = None
    killed_at: float | None = None
    exited_at: float | None = None
    try:
        while True:
            now = time.monotonic()
            if exited_at is None and _exited_unreaped(proc):
                exited_at = now
                _killpg(pgid, signal.SIGKILL)  # whatever it left behind in its group
            if exited_at is None:
                if kill_at is None and now >= deadline:
                    run.timed_out = True
                    _killpg(pgid, signal.SIGTERM)
                    kill_at = now + term_grace
                elif kill_at is not None and killed_at is None and now >= kill_at:
                    _killpg(pgid, signal.SIGKILL)
                    killed_at = now
                elif killed_at is not None and now >= killed_at + 10.0:
                    run.unkillable = True  # stuck in the kernel (a hung driver): give up
                    break
                if sampler.due(now - started):
                    sampler.take(now - started)
            if not selector.get_map() and exited_at is not None:
                break
            if exited_at is not None and now >= exited_at + DRAIN_GRACE:
                break  # a process outside its group still holds the pipes: stop reading
            wake: list[float] = []
            if exited_at is not None:
                wake.append(exited_at + DRAIN_GRACE)
            else:
                if kill_at is None:
                    wake.append(deadline)
                elif killed_at is None:
                    wake.append(kill_at)
                due = sampler.next_due()
                if due is not None:
                    wake.append(started + due)
            # Exit is noticed by polling: look at least four times a second.
            wait = max(0.01, min([*wake, now + 0.25]) - now)
            if not selector.get_map():  # it closed its pipes but has not exited yet
                time.sleep(wait)
                continue
            for key, _ in selector.select(wait):
                data = os.read(key.fd, 65536)
                if data:
                    key.data(data)
                else:
                    selector.unregister(key.fileobj)
    finally:
        selector.close()
        lines.close()
        run.stderr = err.text()
        for stream in (proc.stdout, proc.stderr):
            with contextlib.suppress(OSError):
                stream.close()
        if exited_at is None and not run.unkillable:
            _killpg(pgid, signal.SIGKILL)
        if not run.unkillable:
            proc.wait()
            run.returncode = proc.returncode


def _run_windows(
    proc: subprocess.Popen[bytes],
    run: ChildRun,
    timeout: float,
    sampler: GpuSampler,
    started: float,
    term_grace: float,
) -> None:
    assert proc.stdout is not None and proc.stderr is not None
    chunks: queue.Queue[tuple[Callable[[bytes], None], bytes]] = queue.Queue()
    lines = JsonLines(run)
    err = BoundedStderr(STDERR_HEAD, STDERR_TAIL)

    def pump(stream: Any, sink: Callable[[bytes], None]) -> None:
        with contextlib.suppress(OSError, ValueError):
            for data in iter(lambda: stream.read1(65536), b""):
                chunks.put((sink, data))

    readers = [
        threading.Thread(target=pump, args=(proc.stdout, lines.feed), daemon=True),
        threading.Thread(target=pump, args=(proc.stderr, err.feed), daemon=True),
    ]
    for reader in readers:
        reader.start()
    deadline = started + timeout
    kill_at: float | None = None
    try:
        while proc.poll() is None:
            now = time.monotonic()
            if kill_at is None and now >= deadline:
                run.timed_out = True
                _kill_tree_windows(proc, force=False)
                kill_at = now + term_grace
            elif kill_at is not None and now >= kill_at:
                _kill_tree_windows(proc, force=True)
            if sampler.due(now - started):
                sampler.take(now - started)
            with contextlib.suppress(queue.Empty):
                sink, data = chunks.get(timeout=0.1)
                sink(data)
        for reader in readers:
            reader.join(DRAIN_GRACE)
    finally:
        if proc.poll() is None:
            _kill_tree_windows(proc, force=True)
        proc.wait()
        for stream in (proc.stdout, proc.stderr):
            with contextlib.suppress(OSError):
                stream.close()
        for reader in readers:
            reader.join(DRAIN_GRACE)
        while True:
            try:
                sink, data = chunks.get_nowait()
            except queue.Empty:
                break
            sink(data)
        lines.close()
        run.stderr = err.text()
        run.returncode = proc.returncode


def _kill_tree_windows(proc: subprocess.Popen[bytes], force: bool) -> None:
    args = ["taskkill", "/T", "/PID", str(proc.pid)] + (["/F"] if force else [])
    try:
        subprocess.run(args, capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        proc.kill()


def _execute(
    command: Sequence[str],
    env: Mapping[str, str],
    timeout: float,
    sampler: GpuSampler,
    term_grace: float,
) -> ChildRun:
    run = ChildRun()
    started = time.monotonic()
    try:
        proc = _spawn(command, env)
    except OSError as exc:
        run.start_error = f"{type(exc).__name__}: {exc}"
        return run
    run.pid = proc.pid
    try:
        if IS_WINDOWS:
            _run_windows(proc, run, timeout, sampler, started, term_grace)
        else:
            _run_posix(proc, run, timeout, sampler, started, term_grace)
    finally:
        run.duration_s = time.monotonic() - started
    return run


# --------------------------------------------------------------------------- the run and its GPU


def run_load_test(
    python: str,
    inventory: Inventory | None = None,
    timeout: float = 120.0,
    env: Mapping[str, str] | None = None,
    nvml_library: str | None = None,
    previous: LoadTestResult | None = None,
    *,
    matmul_size: int = 4096,
    seconds: float = 1.0,
    sample_interval: float = 0.5,
    term_grace: float = TERM_GRACE,
    sampler: GpuSampler | None = None,
) -> LoadTestResult:
    """Run the load test with `python` (the watched interpreter) and judge it. Never raises
    for anything the child does; `timeout` bounds the whole run (plus `term_grace`)."""
    started_at = utc_now()
    sampler = sampler or GpuSampler(nvml_library, interval=sample_interval)
    with child_script() as child, sampler:
        run = _execute(
            _command(python, str(child), matmul_size, seconds),
            _child_env(env),
            timeout,
            sampler,
            term_grace,
        )
        child_pids = [p for p in (run.pid, _reported_pid(run.events)) if p]
        pci_bus = _pci_bus_id(run.stderr)
        summary = sampler.summary(child_pids, _uuid_for_bus(inventory, pci_bus))
    return judge(python, run, summary, inventory, previous, started_at=started_at, timeout=timeout)


def _reported_pid(events: Iterable[dict[str, Any]]) -> int | None:
    for event in events:
        if event.get("event") == "child" and isinstance(event.get("pid"), int):
            return int(event["pid"])
    return None


def _pci_bus_id(stderr: str) -> str:
    match = _PCI_BUS.search(stderr)
    return match.group(1) if match else ""


def _same_bus(a: str, b: str) -> bool:
    """NVML writes "00000000:01:00.0", TF "0000:01:00.0": compare without the domain's zeros."""

    def norm(bus: str) -> str:
        domain, _, rest = bus.lower().partition(":")
        return f"{int(domain or '0', 16)}:{rest}"

    try:
        return bool(a and b) and norm(a) == norm(b)
    except ValueError:
        return False


def _uuid_for_bus(inventory: Inventory | None, bus: str) -> str:
    if inventory is None or not bus:
        return ""
    for gpu in inventory.driver.gpus:
        if _same_bus(gpu.pci_bus_id, bus) and gpu.uuid:
            return gpu.uuid
    return ""
