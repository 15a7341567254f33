"""Prometheus metrics of the latest check: served over HTTP and/or written for node_exporter.

The only module that imports prometheus_client. A custom collector renders one immutable
snapshot (report, monitor state, last load tests) per scrape, so a scrape never mixes two
checks. A private registry keeps the process's default metrics (and anyone else's) out.
"""

from __future__ import annotations

import datetime as dt
import errno
import logging
import os
import socket
import socketserver
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client import CollectorRegistry, generate_latest, make_wsgi_app, write_to_textfile
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor import __version__
from monitor.model import (
    Inventory,
    LoadTestResult,
    MonitorState,
    PythonEnv,
    Report,
    Severity,
    Verdict,
)

log = logging.getLogger(__name__)

PREFIX = "tfsm"
_CUDNN_MAIN = ("libcudnn", "cudnn64_7", "cudnn64_8", "cudnn64_9")


class MetricsError(Exception):
    """The exporter could not serve or write the metrics; the text says why and what to do."""


# --------------------------------------------------------------------------- the metrics


@dataclass(frozen=True)
class Snapshot:
    """What one scrape shows. load_tests: the last result per watched interpreter, which
    may come from an earlier report (the load test runs less often than the check)."""

    state: MonitorState
    report: Report | None = None
    load_tests: tuple[LoadTestResult, ...] = ()


def merge_load_tests(
    previous: Iterable[LoadTestResult], report: Report
) -> tuple[LoadTestResult, ...]:
    """The report's load tests, plus earlier ones of interpreters it still watches."""
    watched = {py.executable for py in report.inventory.pythons}
    latest = {result.python: result for result in previous if result.python in watched}
    latest.update((result.python, result) for result in report.load_tests)
    return tuple(latest.values())


def families(snapshot: Snapshot) -> list[Metric]:
    """Every metric family of one snapshot. Before the first check: only the monitor's own."""
    monitor = InfoMetricFamily(
        f"{PREFIX}_monitor",
        "The tf-stack-monitor exporting these metrics.",
        {"version": __version__},
    )
    state = GaugeMetricFamily(
        f"{PREFIX}_stack_state",
        "1 for what the monitor shows now: the last verdict (healthy, warnings, broken) or "
        "what it is doing (checking, paused, error: the monitor itself failed); 0 otherwise.",
        labels=["state"],
    )
    for value in MonitorState:
        state.add_metric([value.value], 1.0 if value == snapshot.state else 0.0)
    result: list[Metric] = [monitor, state]
    if snapshot.report is not None:
        result += _report_families(snapshot.report)
        result += _load_test_families(snapshot.load_tests)
    return result


def _report_families(report: Report) -> list[Metric]:
    healthy = GaugeMetricFamily(
        f"{PREFIX}_stack_healthy",
        "1 when the last check found no errors (TensorFlow can use the GPU; warnings allowed), "
        "0 when the stack is broken.",
        value=0.0 if report.verdict == Verdict.BROKEN else 1.0,
    )
    counts = GaugeMetricFamily(
        f"{PREFIX}_findings",
        "Findings of the last check by severity (error breaks the stack, warning puts it at "
        "risk, info is advice).",
        labels=["severity"],
    )
    for severity in Severity:
        counts.add_metric(
            [severity.value], float(sum(1 for f in report.findings if f.severity == severity))
        )
    finding = GaugeMetricFamily(
        f"{PREFIX}_finding",
        "1 for each finding of the last check; id is stable (see `tf-stack-monitor check`), "
        "subject names the library or interpreter when a rule fires several times.",
        labels=["id", "severity", "subject"],
    )
    for labels in sorted({(f.id, f.severity.value, f.subject) for f in report.findings}):
        finding.add_metric(list(labels), 1.0)
    duration = GaugeMetricFamily(
        f"{PREFIX}_check_duration_seconds",
        "How long the last check took (probes and rules; the load test not included).",
        value=report.duration_s,
    )
    result: list[Metric] = [healthy, counts, finding, duration]
    checked = _timestamp(report.checked_at)
    if checked is not None:
        result.append(
            GaugeMetricFamily(
                f"{PREFIX}_last_check_timestamp_seconds",
                "When the last check finished, in seconds since the Unix epoch.",
                value=checked,
            )
        )
    return result + _inventory_families(report.inventory)


def _inventory_families(inventory: Inventory) -> list[Metric]:
    info = InfoMetricFamily(
        f"{PREFIX}_stack",
        "The versions in the stack, one series per watched interpreter: driver, the newest "
        "CUDA it supports, the active CUDA toolkit, the CUDA runtime and cuDNN that "
        'interpreter\'s TensorFlow loads, TensorFlow and Python ("" where absent).',
        labels=["python"],
    )
    for python in inventory.pythons or (None,):
        labels = _stack_labels(inventory, python)
        info.add_metric([labels.pop("python")], labels)
    gpus = GaugeMetricFamily(
        f"{PREFIX}_gpus",
        "GPUs the NVIDIA driver reports (0 also when the driver cannot be reached).",
        value=float(len(inventory.driver.gpus)),
    )
    gpu_info = InfoMetricFamily(
        f"{PREFIX}_gpu",
        "Each GPU the driver reports: index, name, UUID and compute capability.",
        labels=["index"],
    )
    for gpu in inventory.driver.gpus:
        gpu_info.add_metric(
            [str(gpu.index)],
            {
                "name": gpu.name,
                "uuid": gpu.uuid,
                "compute_capability": gpu.compute_capability or "",
            },
        )
    return [info, gpus, gpu_info]


def _stack_labels(inventory: Inventory, python: PythonEnv | None) -> dict[str, str]:
    executable = python.executable if python else ""
    tensorflow = python.tensorflow if python else None
    active = next((t for t in inventory.toolkits if t.active), None)
    labels = {
        "python": executable,
        "python_version": python.version if python else "",
        "tensorflow": tensorflow.version if tensorflow else "",
        "driver": inventory.driver.driver_version or "",
        "cuda_driver": inventory.driver.cuda_driver_version or "",
        "cuda_toolkit": (active.version or "") if active else "",
        "cuda_runtime": _loaded_version(inventory, "cudart", executable),
        "cudnn": _loaded_version(inventory, "cudnn", executable) or _cudnn_on_disk(inventory),
    }
    return labels


def _loaded_version(inventory: Inventory, role: str, python: str) -> str:
    """The version of the file the loader picks for this interpreter ("" when unknown)."""
    for resolution in inventory.libraries:
        if resolution.role != role or resolution.python not in (python, ""):
            continue
        if role == "cudnn" and resolution.wanted.split(".")[0] not in _CUDNN_MAIN:
            continue
        if resolution.resolved and resolution.resolved.version:
            return resolution.resolved.version
    return ""


def _cudnn_on_disk(inventory: Inventory) -> str:
    return next((c.version for c in inventory.cudnn if c.version), "")


def _load_test_families(results: tuple[LoadTestResult, ...]) -> list[Metric]:
    ok = GaugeMetricFamily(
        f"{PREFIX}_load_test_ok",
        "1 when the last GPU load test of this interpreter ran TensorFlow on the GPU and got "
        "the right answer, 0 when it failed, timed out, crashed or ran on the CPU only.",
        labels=["python"],
    )
    gflops = GaugeMetricFamily(
        f"{PREFIX}_load_test_gflops",
        "Matrix multiply throughput of the last GPU load test in GFLOP/s; gpu is the GPU's "
        'UUID ("" when it could not be told). Absent when no GPU matmul ran.',
        labels=["python", "gpu"],
    )
    duration = GaugeMetricFamily(
        f"{PREFIX}_load_test_duration_seconds",
        "How long the last GPU load test of this interpreter took, TensorFlow import included.",
        labels=["python"],
    )
    started = GaugeMetricFamily(
        f"{PREFIX}_load_test_timestamp_seconds",
        "When the last GPU load test of this interpreter started, in seconds since the epoch.",
        labels=["python"],
    )
    for result in sorted(results, key=lambda r: r.python):
        ok.add_metric([result.python], 1.0 if result.ok else 0.0)
        duration.add_metric([result.python], result.duration_s)
        if result.gflops is not None:
            gflops.add_metric([result.python, result.gpu_uuid], result.gflops)
        when = _timestamp(result.started_at)
        if when is not None:
            started.add_metric([result.python], when)
    return [ok, gflops, duration, started]


def _timestamp(iso: str) -> float | None:
    """ISO 8601 (as the checks write it, UTC) to Unix seconds; None when unreadable."""
    try:
        moment = dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.timestamp()


class _StackCollector(Collector):
    def __init__(self, source: StackMetrics) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        yield from families(self._source.snapshot)


class StackMetrics:
    """The latest report and monitor state as Prometheus metrics; safe to update from the
    daemon's thread while the HTTP server's threads scrape."""

    def __init__(self, state: MonitorState = MonitorState.CHECKING) -> None:
        self._lock = threading.Lock()
        self._snapshot = Snapshot(state=state)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_StackCollector(self))

    @property
    def snapshot(self) -> Snapshot:
        with self._lock:
            return self._snapshot

    def update(self, report: Report | None, state: MonitorState) -> None:
        """A new report (None: keep the last one) and what the monitor shows now."""
        with self._lock:
            if report is None:
                self._snapshot = Snapshot(state, self._snapshot.report, self._snapshot.load_tests)
            else:
                load_tests = merge_load_tests(self._snapshot.load_tests, report)
                self._snapshot = Snapshot(state, report, load_tests)

    def set_state(self, state: MonitorState) -> None:
        """The monitor started or finished a check, was paused or failed; same report."""
        self.update(None, state)

    def exposition(self) -> str:
        """The metrics in Prometheus' text format, as a scrape or the textfile gets them."""
        return generate_latest(self.registry).decode("utf-8")


# --------------------------------------------------------------------------- the textfile


def write_textfile(path: str | Path, metrics: StackMetrics) -> None:
    """Write the metrics for node_exporter's textfile collector, atomically.

    prometheus_client writes a temporary file beside it and renames it over the old one (and
    removes it again on failure), so node_exporter never reads half a file.
    """
    path = Path(path)
    try:
        write_to_textfile(str(path), metrics.registry)
    except FileNotFoundError:
        raise MetricsError(
            f"cannot write the metrics textfile {path}: the directory {path.parent} does not "
            "exist (create it, or fix [metrics] textfile / --textfile)"
        ) from None
    except OSError as exc:
        raise MetricsError(
            f"cannot write the metrics textfile {path}: {exc.strerror or exc}"
        ) from None


# --------------------------------------------------------------------------- the HTTP server


class _QuietHandler(WSGIRequestHandler):
    """No access log on stderr; a client that sends nothing is dropped after `timeout`."""

    timeout = 10

    def log_message(self, format: str, *args: object) -> None:
        log.debug("metrics request from %s: " + format, self.client_address[0], *args)


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    # Request threads are joined on close, so stop() leaves no thread behind.
    daemon_threads = False
    block_on_close = True
    # SO_REUSEADDR lets a second server steal a port on Windows; elsewhere it only skips
    # TIME_WAIT after a restart.
    allow_reuse_address = os.name != "nt"


class MetricsServer:
    """Serves /metrics over HTTP on address:port (port 0: any free port, see `port`)."""

    def __init__(self, metrics: StackMetrics, port: int, address: str = "127.0.0.1") -> None:
        self._metrics = metrics
        self._requested = (address, port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port it listens on (the real one when asked for port 0)."""
        return self._server.server_address[1] if self._server else self._requested[1]

    @property
    def url(self) -> str:
        address, _ = self._requested
        host = f"[{address}]" if ":" in address else address
        return f"http://{host}:{self.port}/metrics"

    def start(self) -> None:
        """Listen and serve in a thread; MetricsError when the port cannot be had."""
        if self._server is not None:
            return
        address, port = self._requested
        where = f"{address}:{port}"
        try:
            family = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM)[0][0]
            server_class = type("_FamilyServer", (_Server,), {"address_family": family})
            server = server_class((address, port), _QuietHandler)
        except socket.gaierror as exc:
            raise MetricsError(
                f"cannot serve metrics on {where}: unknown address ({exc})"
            ) from None
        except OSError as exc:
            raise MetricsError(f"cannot serve metrics on {where}: {_bind_problem(exc)}") from None
        server.set_app(make_wsgi_app(self._metrics.registry))
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="metrics-http", daemon=True
        )
        self._thread.start()
        log.info("serving metrics on %s", self.url)

    def stop(self) -> None:
        """Stop serving, close the socket, and join every thread it started."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.shutdown()
        server.server_close()
        thread.join()
        self._server = self._thread = None

    def __enter__(self) -> MetricsServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _bind_problem(exc: OSError) -> str:
    if exc.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", -1)):
        return (
            "the port is already in use (another tf-stack-monitor, or another exporter?); "
            "choose another with --metrics-port or [metrics] port"
        )
    if exc.errno in (errno.EADDRNOTAVAIL, getattr(errno, "WSAEADDRNOTAVAIL", -1)):
        return "this machine has no such address; check [metrics] address"
    if exc.errno == errno.EACCES:
        return "permission denied (ports below 1024 need privileges)"
    return exc.strerror or str(exc)
