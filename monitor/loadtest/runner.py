"""Run the GPU load test (child.py) with a watched interpreter, and judge what it did.

The child runs in its own session / process group, so a timeout kills everything it started
(SIGTERM, then SIGKILL after a grace period), and it is always reaped. Its stdout is read as it
comes (JSON lines: see child.py; anything else is noise and ignored), its stderr is kept
(bounded: the head and the tail), and NVML is sampled every `sample_interval` seconds
meanwhile. On POSIX one loop in the calling thread does all of it (selectors: no threads); on
Windows two reader threads are started and joined before returning.

The result's findings are monitor.loadtest.classify's (what stopped TensorFlow) plus this
module's own: loadtest-cpu-fallback (TF used no GPU, and why), loadtest-loaded-differs (the
library the child loaded is not the one the inventory predicted), loadtest-throughput-drop
(GFLOP/s fell by more than 30% since a good run on the same GPU), and loadtest-failed when
the run failed and nothing else names why.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import importlib.resources
import json
import os
import queue
import re
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from monitor.loadtest.exits import NTSTATUS_NAMES
from monitor.loadtest.gpu_sampler import GpuSampler, SampleSummary
from monitor.model import (
    Finding,
    GpuSample,
    Inventory,
    LibraryResolution,
    Link,
    LoadTestResult,
    LoadTestStep,
    Severity,
)

STDERR_HEAD = 32 * 1024
STDERR_TAIL = 200 * 1024
MAX_LINE = 4 * 1024 * 1024  # a stdout "line" longer than this is noise, not a step
TERM_GRACE = 3.0
DRAIN_GRACE = 1.0
THROUGHPUT_DROP = 0.30
IS_WINDOWS = sys.platform == "win32"

GPU_STEPS = ("matmul", "train", "memory")

# Lines of TF's stderr that say why it set up no GPU.
_NO_GPU_HINT = re.compile(
    r"cuInit|Cannot dlopen|Could not load dynamic library|Could not find cuda drivers|"
    r"Ignoring visible gpu device|minimum required Cuda capability|CUDA driver version is|"
    r"cudaGetDevice|libcuda reported version|kernel driver does not appear|"
    r"no NVIDIA GPU device|cuda_diagnostics",
    re.IGNORECASE,
)
# cuInit's result as TensorFlow logs it ("failed call to cuInit: ... UNKNOWN ERROR (303)").
_CUINIT = re.compile(r"failed call to cuInit:.*?\((\d+)\)", re.IGNORECASE)
_CUINIT_MEANING = {
    "100": "CUDA_ERROR_NO_DEVICE: the driver reports no CUDA-capable GPU",
    "101": "CUDA_ERROR_INVALID_DEVICE: CUDA_VISIBLE_DEVICES names no existing GPU",
    "35": "CUDA_ERROR_INSUFFICIENT_DRIVER: the NVIDIA driver is older than this CUDA needs",
    "303": (
        "CUDA_ERROR_SHARED_OBJECT_INIT_FAILED: TensorFlow's CUDA stub could not load the "
        "driver's libcuda.so.1 (no NVIDIA driver installed, or not visible here)"
    ),
    "804": "CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE: the CUDA forward-compat package "
    "does not support this GPU",
    "999": "CUDA_ERROR_UNKNOWN: often a driver / kernel module mismatch or a GPU fault",
}
# tsl's cudart_stub logs this when it cannot dlopen libcudart (not the driver's libcuda).
_CUDART_MISSING = re.compile(r"cudart_stub\.cc.*Could not find cuda drivers", re.IGNORECASE)
_PCI_BUS = re.compile(r"pci bus id: ([0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7])")


def child_script() -> contextlib.AbstractContextManager[Any]:
    """A context manager giving the path of child.py on disk."""
    return importlib.resources.as_file(
        importlib.resources.files("monitor.loadtest").joinpath("child.py")
    )


# --------------------------------------------------------------------------- running the child


@dataclass
class _Run:
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


class _Stderr:
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


class _Lines:
    """Splits stdout bytes into lines and keeps the JSON objects among them."""

    def __init__(self, run: _Run) -> None:
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
    run: _Run,
    timeout: float,
    sampler: GpuSampler,
    started: float,
    term_grace: float,
) -> None:
    assert proc.stdout is not None and proc.stderr is not None
    lines = _Lines(run)
    err = _Stderr()
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
    run: _Run,
    timeout: float,
    sampler: GpuSampler,
    started: float,
    term_grace: float,
) -> None:
    assert proc.stdout is not None and proc.stderr is not None
    chunks: queue.Queue[tuple[Callable[[bytes], None], bytes]] = queue.Queue()
    lines = _Lines(run)
    err = _Stderr()

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
) -> _Run:
    run = _Run()
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


# --------------------------------------------------------------------------- the result


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
    started_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
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


def _step_records(events: Iterable[dict[str, Any]]) -> tuple[dict[str, dict[str, Any]], str | None]:
    """(results by step name, the last step started)."""
    results: dict[str, dict[str, Any]] = {}
    last_started: str | None = None
    for event in events:
        if event.get("event") == "start" and isinstance(event.get("step"), str):
            last_started = event["step"]
        elif "event" not in event and isinstance(event.get("step"), str):
            results[event["step"]] = event
            if last_started is None:
                last_started = event["step"]
    return results, last_started


def _to_step(record: dict[str, Any]) -> LoadTestStep:
    skip = {"step", "ok", "seconds", "detail"}
    data = tuple(
        (str(key), _short(value))
        for key, value in sorted(record.items())
        if key not in skip and not isinstance(value, (list, dict))
    )
    return LoadTestStep(
        name=str(record.get("step", "")),
        ok=bool(record.get("ok")),
        seconds=_float(record.get("seconds")) or 0.0,
        detail=str(record.get("detail") or ""),
        data=data,
    )


def _short(value: Any, limit: int = 500) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _signal_name(returncode: int | None) -> str | None:
    if returncode is None:
        return None
    if returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            return f"signal {-returncode}"
    if IS_WINDOWS or returncode >= 0xC0000000:
        if returncode in NTSTATUS_NAMES:
            return NTSTATUS_NAMES[returncode]
        if returncode >= 0xC0000000:
            return f"NTSTATUS {returncode:#010x}"
    return None


def _outcome(run: _Run, results: dict[str, dict[str, Any]], done: dict[str, Any] | None) -> str:
    if run.start_error is not None:
        return "failed"
    if run.timed_out:
        return "timeout"
    if run.unkillable:
        return "crashed"
    code = run.returncode
    if code is not None and (code < 0 or code >= 0xC0000000):
        return "crashed"
    if code != 0 or done is None:
        return "failed"
    gpus = results.get("gpus", {})
    if gpus.get("logical"):
        gpu_steps = [results[name] for name in GPU_STEPS if name in results]
        if "matmul" in results and all(r.get("ok") for r in gpu_steps):
            return "gpu"
        return "failed"
    if results.get("cpu_matmul", {}).get("ok") and results.get("train", {}).get("ok", True):
        return "cpu-only"
    return "failed"


def judge(
    python: str,
    run: _Run,
    summary: SampleSummary,
    inventory: Inventory | None = None,
    previous: LoadTestResult | None = None,
    started_at: str = "",
    timeout: float = 0.0,
) -> LoadTestResult:
    """Build the LoadTestResult (findings included) from what the child did."""
    results, last_step = _step_records(run.events)
    done = next((e for e in run.events if e.get("event") == "done"), None)
    outcome = _outcome(run, results, done)
    build = results.get("build_info", {})
    gpus = results.get("gpus", {})
    matmul = results.get("matmul", {})
    cpu_matmul = results.get("cpu_matmul", {})
    devices = gpus.get("devices") if isinstance(gpus.get("devices"), list) else []
    used_gpu = outcome == "gpu" or bool(gpus.get("logical"))
    device = ""
    if used_gpu and devices and isinstance(devices[0], dict):
        device = str(devices[0].get("device_name") or devices[0].get("name") or "GPU")
    elif cpu_matmul:
        device = "CPU"
    libraries = results.get("libraries", {}).get("libraries")
    build_info = build.get("build_info") if isinstance(build.get("build_info"), dict) else {}
    result = LoadTestResult(
        python=python,
        ok=outcome == "gpu",
        outcome=outcome,
        started_at=started_at,
        duration_s=round(run.duration_s, 3),
        last_step=last_step,
        steps=tuple(_to_step(r) for r in results.values()),
        tf_version=str(build.get("tf_version") or results.get("import", {}).get("version") or ""),
        built_with_cuda=build.get("built_with_cuda") if "built_with_cuda" in build else None,
        build_info=tuple(sorted((str(k), str(v)) for k, v in build_info.items())),
        physical_gpus=_int(gpus.get("physical")),
        logical_gpus=_int(gpus.get("logical")),
        device=device,
        device_placement=str((matmul or cpu_matmul).get("placement") or ""),
        gpu_uuid=summary.gpu_uuid if used_gpu else "",
        matmul_size=_int(matmul.get("n") or cpu_matmul.get("n")) or 0,
        gflops=_rounded(matmul.get("gflops")) if matmul.get("on_device") else None,
        cpu_gflops=_rounded(cpu_matmul.get("gflops")),
        import_seconds=_rounded(results.get("import", {}).get("seconds"), 3),
        peak_memory_mib=_rounded(results.get("memory", {}).get("peak_mib")),
        loaded_libraries=tuple(str(p) for p in libraries) if isinstance(libraries, list) else (),
        max_utilization_gpu=summary.max_utilization_gpu,
        max_memory_used_mib=summary.max_memory_used_mib,
        child_seen_on_gpu=summary.child_seen_on_gpu,
        nvml_error=summary.error,
        gpu_samples=summary.samples,
        exit_code=run.returncode,
        signal=_signal_name(run.returncode),
        timed_out=run.timed_out,
        stderr_tail=run.stderr[-STDERR_TAIL:],
    )
    findings = list(_classified(result, run, inventory, summary))
    own = [
        *_cpu_fallback(result, results, run, inventory, summary),
        *_loaded_differs(result, inventory),
        *_throughput_drop(result, previous, summary),
    ]
    known = {f.id for f in findings}
    findings.extend(f for f in own if f.id not in known)
    findings = _fold_cpu_fallback(findings, result)
    if outcome in ("failed", "timeout", "crashed") and not any(
        f.severity is Severity.ERROR for f in findings
    ):
        findings.append(_failed(result, results, run, timeout))
    return _replace(result, findings=tuple(findings), detail=_detail(result, results, run))


def _fold_cpu_fallback(findings: list[Finding], result: LoadTestResult) -> list[Finding]:
    """One finding for "no GPU, and why" on a machine without one: where the classifier named
    the cause (an error from TF's own output), the CPU-fallback warning would only repeat it;
    its news, that TF itself works on the CPU, goes into the cause's detail instead. (With a
    GPU on the machine the fallback is an error of its own: NVML's GPUs are its evidence.)"""
    fallback = next(
        (f for f in findings if f.id == "loadtest-cpu-fallback" and f.severity is Severity.WARNING),
        None,
    )
    cause = next(
        (f for f in findings if f.severity is Severity.ERROR and f.id.startswith("loadtest-")),
        None,
    )
    if fallback is None or cause is None or cause is fallback:
        return findings
    works = ""
    if result.cpu_gflops is not None:
        works = (
            f" TensorFlow itself works: it fell back to the CPU, where the matmul checked out "
            f"at {result.cpu_gflops:.1f} GFLOP/s."
        )
    merged = dataclasses.replace(cause, detail=cause.detail + works)
    return [merged if f is cause else f for f in findings if f is not fallback]


def _replace(result: LoadTestResult, **changes: Any) -> LoadTestResult:
    return dataclasses.replace(result, **changes)


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _rounded(value: Any, digits: int = 1) -> float | None:
    number = _float(value)
    return round(number, digits) if number is not None else None


def _os_name(inventory: Inventory | None) -> str:
    if inventory is not None and inventory.host.os:
        return inventory.host.os
    if IS_WINDOWS:
        return "windows"
    return "darwin" if sys.platform == "darwin" else "linux"


def _classified(
    result: LoadTestResult, run: _Run, inventory: Inventory | None, summary: SampleSummary
) -> tuple[Finding, ...]:
    """monitor.loadtest.classify's findings; its failure is a warning, not a crash."""
    stderr = run.stderr
    if run.start_error is not None:
        stderr = f"{run.start_error}\n{stderr}"
    try:
        from monitor.loadtest.classify import classify
    except ImportError as exc:
        return (
            _finding(
                "loadtest-classify-failed",
                Severity.WARNING,
                Link.TENSORFLOW,
                result,
                "The load test's failure classifier is missing",
                f"{type(exc).__name__}: {exc}",
            ),
        )
    try:
        return tuple(
            classify(
                run.returncode,
                run.timed_out,
                stderr,
                result.last_step,
                inventory,
                result.python,
                _os_name(inventory),
                gpu_processes=summary.other_processes,
                built_for_cuda=dict(result.build_info).get("cuda_version") or None,
            )
        )
    except Exception as exc:  # a classifier bug must not hide the load test's result
        return (
            _finding(
                "loadtest-classify-failed",
                Severity.WARNING,
                Link.TENSORFLOW,
                result,
                "Internal error in the load test's failure classifier",
                f"{type(exc).__name__}: {exc}",
                fix=(
                    "Report this at the tf-stack-monitor issue tracker with a snapshot "
                    "(tf-stack-monitor check --save-snapshot FILE --redact).",
                ),
            ),
        )


def _finding(
    id: str,
    severity: Severity,
    link: Link,
    result: LoadTestResult,
    title: str,
    detail: str = "",
    evidence: Iterable[tuple[str, str]] = (),
    fix: Iterable[str] = (),
) -> Finding:
    return Finding(
        id=id,
        severity=severity,
        link=link,
        title=title,
        detail=detail,
        evidence=(("python", result.python), *evidence),
        fix=tuple(fix),
        subject=result.python,
    )


def _gpus_on_machine(inventory: Inventory | None, summary: SampleSummary) -> list[str]:
    names = [f"{s.name or 'GPU'} ({s.uuid})" for s in summary.samples if s.index >= 0]
    if inventory is not None:
        names += [f"{g.name or 'GPU'} ({g.uuid})" for g in inventory.driver.gpus]
    return sorted(set(names))


def _no_gpu_hints(stderr: str, limit: int = 4) -> list[str]:
    hints: list[str] = []
    for line in stderr.splitlines():
        if _NO_GPU_HINT.search(line):
            line = line.strip()
            if line not in hints:
                hints.append(line[:400])
        if len(hints) >= limit:
            break
    return hints


def _cpu_fallback(
    result: LoadTestResult,
    results: dict[str, dict[str, Any]],
    run: _Run,
    inventory: Inventory | None,
    summary: SampleSummary,
) -> list[Finding]:
    """TensorFlow ran but computed on no GPU: say so, and why, truthfully."""
    gpus = results.get("gpus")
    if gpus is None or result.outcome == "gpu":
        return []
    matmul = results.get("matmul")
    if gpus.get("logical") and matmul is not None and matmul.get("on_device"):
        return []  # the GPU was used (a wrong result is another finding's business)
    if gpus.get("logical") and matmul is None:
        return []  # it never got to the matmul: timeout / crash findings say why
    on_machine = _gpus_on_machine(inventory, summary)
    visible = gpus.get("cuda_visible_devices")
    hidden = isinstance(visible, str) and visible.strip() in ("", "-1", "none", "NoDevFiles")
    reason = str(gpus.get("reason") or "")
    if not gpus.get("ok", True):
        reason = f"setting up the GPUs raised {gpus.get('detail') or 'an error'}"
    if gpus.get("logical") and matmul is not None:
        reason = (
            f"a GPU is set up, but the matmul asked for /GPU:0 ran on "
            f"{matmul.get('placement') or 'another device'}"
        )
    hints = _no_gpu_hints(run.stderr)
    if not hidden and not gpus.get("logical") and result.built_with_cuda is not False:
        reason = _stderr_reason(run.stderr, result) or reason
    severity = Severity.ERROR if on_machine and not hidden else Severity.WARNING
    cpu = results.get("cpu_matmul", {})
    works = ""
    if cpu.get("ok"):
        works = (
            f" TensorFlow itself works: the CPU matmul checked out at "
            f"{_float(cpu.get('gflops')) or 0:.1f} GFLOP/s."
        )
    if on_machine:
        machine = f" NVML sees {len(on_machine)} GPU(s) on this machine: {', '.join(on_machine)}."
    elif summary.error is not None:
        machine = f" NVML is not usable here ({summary.error})."
    else:
        machine = " NVML sees no GPU on this machine."
    detail = f"{reason[:1].upper()}{reason[1:]}.{machine}{works}"
    if hints:
        detail += " TensorFlow said: " + " | ".join(hints)
    fix = _fallback_fix(result, gpus, hidden, on_machine, inventory)
    evidence = [
        ("reason", reason),
        ("tensorflow", result.tf_version),
        ("built_with_cuda", str(result.built_with_cuda)),
        ("physical_gpus", str(gpus.get("physical"))),
        ("logical_gpus", str(gpus.get("logical"))),
        ("cuda_visible_devices", "(unset)" if visible is None else repr(visible)),
        ("nvml_gpus", ", ".join(on_machine) or "none"),
    ]
    evidence += [(f"stderr_{i + 1}", line) for i, line in enumerate(hints)]
    return [
        _finding(
            "loadtest-cpu-fallback",
            severity,
            Link.TENSORFLOW,
            result,
            f"TensorFlow computes on the CPU only in {result.python}",
            detail,
            evidence,
            fix,
        )
    ]


def _stderr_reason(stderr: str, result: LoadTestResult) -> str:
    """Why TF set up no GPU, from its own log lines, in plain words ("" when it did not say)."""
    reasons = []
    if _CUDART_MISSING.search(stderr):
        major = dict(result.build_info).get("cuda_version", "").split(".")[0]
        name = f"libcudart.so.{major}" if major.isdigit() else "libcudart.so"
        reasons.append(
            f'TensorFlow could not load the CUDA runtime {name} (its log says "Could not find '
            'cuda drivers", which is what it says when libcudart is missing)'
        )
    cuinit = _CUINIT.search(stderr)
    if cuinit:
        meaning = _CUINIT_MEANING.get(cuinit.group(1), f"CUDA error {cuinit.group(1)}")
        reasons.append(f"TensorFlow could not initialise CUDA: cuInit failed with {meaning}")
    return "; ".join(reasons)


def _fallback_fix(
    result: LoadTestResult,
    gpus: dict[str, Any],
    hidden: bool,
    on_machine: list[str],
    inventory: Inventory | None,
) -> list[str]:
    os_name = _os_name(inventory)
    if hidden:
        return [
            "CUDA_VISIBLE_DEVICES hides every GPU from this process: unset it "
            "(`unset CUDA_VISIBLE_DEVICES`) or list the GPUs to use (CUDA_VISIBLE_DEVICES=0).",
        ]
    if result.built_with_cuda is False:
        if os_name == "windows":
            return [
                "TensorFlow >= 2.11 has no GPU support on native Windows: run it in WSL2 "
                "(`pip install tensorflow[and-cuda]` there), or use TensorFlow 2.10 with "
                "CUDA 11.2 and cuDNN 8.1 on Windows.",
            ]
        if os_name == "darwin":
            return ["TensorFlow has no CUDA support on macOS (tensorflow-metal is another path)."]
        return [
            f"Install a CUDA build: `{result.python} -m pip install 'tensorflow[and-cuda]'` "
            "(tensorflow-cpu and some distro / conda builds have no GPU support).",
        ]
    if not on_machine:
        return [
            "Make sure an NVIDIA GPU and its driver are present: `nvidia-smi` must list the "
            "GPU. Then run `tf-stack-monitor check`: its other findings name the broken link.",
        ]
    if gpus.get("physical"):
        return [
            "TensorFlow sees the GPU but did not set it up: read the stderr lines above "
            "(compute capability too old for this build, or a CUDA library that failed to "
            "load); `tf-stack-monitor check` names the library.",
        ]
    return [
        "The driver sees the GPU but TensorFlow does not: a CUDA library (libcuda / cudart / "
        "cuDNN / cuBLAS) failed to load or does not match. `tf-stack-monitor check` names it; "
        f"`{result.python} -m pip install 'tensorflow[and-cuda]'` brings matching CUDA wheels.",
    ]


def _same_file(a: str, b: str) -> bool:
    try:
        sa, sb = os.stat(a), os.stat(b)
        return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)
    except OSError:
        return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))


def _loaded_for(resolution: LibraryResolution, loaded: Iterable[str]) -> str | None:
    wanted = resolution.wanted
    if not wanted:
        return None
    for path in loaded:
        base = os.path.basename(path)
        if IS_WINDOWS or wanted.lower().endswith(".dll"):
            if base.lower() == wanted.lower():
                return path
        elif base == wanted or base.startswith(wanted + "."):
            return path
    return None


def _loaded_differs(result: LoadTestResult, inventory: Inventory | None) -> list[Finding]:
    """A library the child really loaded is not the file the inventory said would load."""
    if inventory is None or not result.loaded_libraries:
        return []
    findings = []
    for resolution in inventory.libraries:
        if resolution.python not in ("", result.python):
            continue
        loaded = _loaded_for(resolution, result.loaded_libraries)
        if loaded is None:
            continue
        predicted = resolution.resolved.path if resolution.resolved else None
        if predicted is not None and _same_file(predicted, loaded):
            continue
        title = (
            f"{resolution.wanted} loaded from {loaded}, not from {predicted}"
            if predicted
            else f"{resolution.wanted} loaded from {loaded}, where none was expected"
        )
        detail = (
            f"The load test's TensorFlow loaded {loaded} for {resolution.role}, but the "
            f"inventory predicted "
            + (
                f"{predicted} (via {resolution.resolved.via})"
                if resolution.resolved and predicted
                else "that no file would be found"
            )
            + ". What is installed is not what runs: an LD_LIBRARY_PATH / PATH entry, a "
            "preloaded library or a second copy wins at run time."
        )
        evidence = [
            ("role", resolution.role),
            ("wanted", resolution.wanted),
            ("predicted", predicted or "(none)"),
            ("loaded", loaded),
        ]
        evidence += [(f"candidate_{i + 1}", c.path) for i, c in enumerate(resolution.candidates)]
        finding = _finding(
            "loadtest-loaded-differs",
            Severity.WARNING,
            Link.LIBRARIES,
            result,
            title,
            detail,
            evidence,
            fix=(
                "Make the intended copy the one that loads: remove the other copy from "
                "the search path (LD_LIBRARY_PATH / PATH) or uninstall it, then run the "
                "load test again.",
            ),
        )
        subject = f"{result.python} {resolution.wanted}"
        findings.append(dataclasses.replace(finding, subject=subject))
    return findings


def _throughput_drop(
    result: LoadTestResult, previous: LoadTestResult | None, summary: SampleSummary
) -> list[Finding]:
    if (
        previous is None
        or not previous.ok
        or not result.ok
        or not previous.gflops
        or result.gflops is None
        or not result.gpu_uuid
        or previous.gpu_uuid != result.gpu_uuid
        or (previous.matmul_size and previous.matmul_size != result.matmul_size)
    ):
        return []
    if result.gflops >= previous.gflops * (1 - THROUGHPUT_DROP):
        return []
    drop = 1 - result.gflops / previous.gflops
    peak: GpuSample | None = summary.peak
    evidence = [
        ("gpu", f"{result.device} ({result.gpu_uuid})"),
        ("gflops_now", f"{result.gflops:.1f}"),
        ("gflops_before", f"{previous.gflops:.1f}"),
        ("before_at", previous.started_at),
    ]
    clocks = ""
    if peak is not None:
        if peak.sm_clock_mhz is not None:
            evidence.append(("sm_clock_mhz", str(peak.sm_clock_mhz)))
        if peak.max_sm_clock_mhz is not None:
            evidence.append(("max_sm_clock_mhz", str(peak.max_sm_clock_mhz)))
        evidence.append(("throttle_reasons", ", ".join(peak.throttle_reasons) or "none"))
        if peak.sm_clock_mhz and peak.max_sm_clock_mhz:
            clocks = f" The SM clock was {peak.sm_clock_mhz} of {peak.max_sm_clock_mhz} MHz"
            clocks += (
                f", held back by: {', '.join(peak.throttle_reasons)}."
                if peak.throttle_reasons
                else "."
            )
    if summary.other_processes:
        others = ", ".join(
            f"{pid} {name or '?'} ({mib} MiB)" for pid, name, mib in summary.other_processes
        )
        evidence.append(("other_gpu_processes", others))
    return [
        _finding(
            "loadtest-throughput-drop",
            Severity.WARNING,
            Link.GPU,
            result,
            f"GPU matmul throughput fell {drop:.0%} since the last good run",
            f"{result.gflops:.0f} GFLOP/s now against {previous.gflops:.0f} GFLOP/s on "
            f"{previous.started_at or 'the previous run'}, same GPU.{clocks}"
            + (" Other processes were using the GPU." if summary.other_processes else ""),
            evidence,
            fix=(
                "Check cooling and power (`nvidia-smi -q -d PERFORMANCE,TEMPERATURE,POWER`), "
                "and what else runs on the GPU (`nvidia-smi`).",
            ),
        )
    ]


def _failed(
    result: LoadTestResult, results: dict[str, dict[str, Any]], run: _Run, timeout: float
) -> Finding:
    """The fallback when the run failed and no other finding says why (an error always does)."""
    step = result.last_step or "start"
    record = results.get(step, {})
    tail = [line for line in run.stderr.strip().splitlines() if line.strip()][-3:]
    if run.start_error is not None:
        title = f"The load test could not start {result.python}"
        detail = run.start_error
    elif result.outcome == "timeout":
        title = f"The load test timed out after {timeout:.0f} s in step {step}"
        detail = f"{result.python} was killed while running step {step!r}."
    elif result.outcome == "crashed":
        title = f"The load test crashed ({result.signal or 'killed'}) in step {step}"
        detail = f"{result.python} died of {result.signal or 'a signal'} in step {step!r}."
    else:
        failed = next((r for r in results.values() if not r.get("ok")), None)
        where = str(failed.get("step")) if failed else step
        title = f"The load test failed in step {where}"
        detail = str((failed or record).get("detail") or f"exit code {result.exit_code}")
    if tail:
        detail += " Last stderr lines: " + " | ".join(t.strip()[:300] for t in tail)
    return _finding(
        "loadtest-failed",
        Severity.ERROR,
        Link.TENSORFLOW,
        result,
        title,
        detail,
        (
            ("last_step", step),
            ("exit_code", str(result.exit_code)),
            ("signal", result.signal or ""),
        ),
        fix=(
            "Run the load test by hand to see everything it prints: "
            f"`{result.python} -B <monitor>/loadtest/child.py`.",
        ),
    )


def _detail(result: LoadTestResult, results: dict[str, dict[str, Any]], run: _Run) -> str:
    step = result.last_step or "start"
    if result.outcome == "gpu":
        return (
            f"TensorFlow {result.tf_version} computed on {result.device}: "
            f"{result.gflops or 0:.0f} GFLOP/s matmul, checked against the CPU"
        )
    if result.outcome == "cpu-only":
        reason = results.get("gpus", {}).get("reason") or "no GPU used"
        return (
            f"TensorFlow {result.tf_version} works on the CPU only ({reason}); CPU matmul "
            f"{result.cpu_gflops or 0:.1f} GFLOP/s"
        )
    if result.outcome == "timeout":
        return f"timed out in step {step}"
    if result.outcome == "crashed":
        return f"crashed ({result.signal or 'killed'}) in step {step}"
    if run.start_error is not None:
        return f"could not start: {run.start_error}"
    failed = next((r for r in results.values() if not r.get("ok")), None)
    if failed is not None:
        return f"failed in step {failed.get('step')}: {failed.get('detail') or ''}".strip()
    return f"exited with {result.exit_code} after step {step}"
