"""The Prometheus exporter: real HTTP scrapes, the textfile, ports that cannot be had."""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
import sys
import textwrap
import threading
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.check import judge
from monitor.metrics import (
    MetricsError,
    MetricsServer,
    StackMetrics,
    merge_load_tests,
    write_textfile,
)
from monitor.model import LoadTestResult, MonitorState, Report
from monitor.record import replace
from tests.scenarios import LINUX_PY, linux_tf221_pip

GPU_UUID = "GPU-5d1e2b9c-0000-4000-8000-000000000001"
CHECKED_AT = "2026-11-23T12:00:00+00:00"


def healthy_report() -> Report:
    good_run = LoadTestResult(
        python=LINUX_PY,
        ok=True,
        outcome="gpu",
        started_at="2026-11-23T11:59:30+00:00",
        duration_s=14.5,
        gpu_uuid=GPU_UUID,
        gflops=81234.5,
    )
    report = judge(linux_tf221_pip())
    return replace(report, checked_at=CHECKED_AT, duration_s=0.25, load_tests=(good_run,))


def driver_too_old_for_cuda12() -> Report:
    """The driver was downgraded to 470 (CUDA 11.4) under a TF built for CUDA 12."""
    inventory = linux_tf221_pip()
    driver = replace(
        inventory.driver,
        driver_version="470.57.02",
        cuda_driver_version="11.4",
        kernel_module_version="470.57.02",
    )
    failed_run = LoadTestResult(
        python=LINUX_PY, ok=False, outcome="cpu-only", duration_s=9.0, started_at=CHECKED_AT
    )
    report = judge(replace(inventory, driver=driver))
    return replace(report, checked_at=CHECKED_AT, load_tests=(failed_run,))


def parse(text: str) -> dict[str, list]:
    """family name -> its samples."""
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def value(samples: list, **labels: str) -> float:
    matching = [s.value for s in samples if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(matching) == 1, (labels, samples)
    return matching[0]


def scrape(server: MetricsServer) -> tuple[str, str]:
    with urllib.request.urlopen(server.url, timeout=10) as response:
        return response.headers["Content-Type"], response.read().decode("utf-8")


@pytest.fixture
def metrics() -> StackMetrics:
    return StackMetrics()


@pytest.fixture
def server(metrics):
    with MetricsServer(metrics, port=0) as running:
        yield running


def test_before_the_first_check_only_the_monitor_and_its_state(server, metrics):
    content_type, text = scrape(server)

    assert content_type.startswith("text/plain")
    families = parse(text)
    assert set(families) == {"tfsm_monitor_info", "tfsm_stack_state"}
    states = {s.labels["state"]: s.value for s in families["tfsm_stack_state"]}
    assert states == {
        "healthy": 0,
        "warnings": 0,
        "broken": 0,
        "checking": 1,
        "paused": 0,
        "error": 0,
    }


def test_scrape_of_a_healthy_stack(server, metrics):
    metrics.update(healthy_report(), MonitorState.HEALTHY)

    families = parse(scrape(server)[1])

    assert value(families["tfsm_stack_healthy"]) == 1
    assert value(families["tfsm_stack_state"], state="healthy") == 1
    assert value(families["tfsm_stack_state"], state="checking") == 0
    assert value(families["tfsm_findings"], severity="error") == 0
    assert value(families["tfsm_findings"], severity="info") == 1
    assert value(families["tfsm_finding"], id="driver-minor-compat-only", severity="info") == 1
    (info,) = families["tfsm_stack_info"]
    assert info.value == 1
    assert info.labels == {
        "python": LINUX_PY,
        "python_version": "3.11.7",
        "tensorflow": "2.21.0",
        "driver": "570.133.07",
        "cuda_driver": "12.8",
        "cuda_toolkit": "",
        "cuda_runtime": "12.9.79",
        "cudnn": "9.10.2.21",
    }
    assert value(families["tfsm_gpus"]) == 1
    gpu = families["tfsm_gpu_info"][0].labels
    assert gpu == {
        "index": "0",
        "name": "NVIDIA GeForce RTX 4090",
        "uuid": GPU_UUID,
        "compute_capability": "8.9",
    }
    epoch = dt.datetime(2026, 11, 23, 12, tzinfo=dt.timezone.utc).timestamp()
    assert value(families["tfsm_last_check_timestamp_seconds"]) == epoch
    assert value(families["tfsm_check_duration_seconds"]) == 0.25
    assert value(families["tfsm_load_test_gflops"], python=LINUX_PY, gpu=GPU_UUID) == 81234.5
    assert value(families["tfsm_load_test_duration_seconds"], python=LINUX_PY) == 14.5
    assert value(families["tfsm_load_test_ok"], python=LINUX_PY) == 1
    assert value(families["tfsm_load_test_timestamp_seconds"], python=LINUX_PY) == epoch - 30


def test_scrape_of_a_broken_stack(server, metrics):
    metrics.update(driver_too_old_for_cuda12(), MonitorState.BROKEN)

    families = parse(scrape(server)[1])

    assert value(families["tfsm_stack_healthy"]) == 0
    assert value(families["tfsm_stack_state"], state="broken") == 1
    assert value(families["tfsm_findings"], severity="error") == 1
    assert value(families["tfsm_finding"], id="driver-too-old", subject=LINUX_PY) == 1
    assert families["tfsm_stack_info"][0].labels["driver"] == "470.57.02"
    assert families["tfsm_stack_info"][0].labels["cuda_driver"] == "11.4"
    assert value(families["tfsm_load_test_ok"], python=LINUX_PY) == 0
    assert families["tfsm_load_test_gflops"] == []  # no GPU matmul ran


def test_state_changes_keep_the_last_report(metrics):
    metrics.update(driver_too_old_for_cuda12(), MonitorState.BROKEN)
    metrics.set_state(MonitorState.CHECKING)

    families = parse(metrics.exposition())

    assert value(families["tfsm_stack_state"], state="checking") == 1
    assert value(families["tfsm_stack_state"], state="broken") == 0
    assert value(families["tfsm_stack_healthy"]) == 0


def test_no_interpreter_watched_still_gives_the_driver_versions(metrics):
    report = replace(healthy_report(), inventory=replace(linux_tf221_pip(), pythons=()))
    metrics.update(report, MonitorState.HEALTHY)

    (info,) = parse(metrics.exposition())["tfsm_stack_info"]

    assert info.labels["python"] == ""
    assert info.labels["tensorflow"] == ""
    assert info.labels["driver"] == "570.133.07"


def test_an_unreadable_check_time_leaves_the_timestamp_out(metrics):
    metrics.update(replace(healthy_report(), checked_at="soon"), MonitorState.HEALTHY)

    families = parse(metrics.exposition())

    assert "tfsm_last_check_timestamp_seconds" not in families
    assert value(families["tfsm_stack_healthy"]) == 1


def test_load_tests_outlive_checks_that_did_not_run_one(metrics):
    with_test = healthy_report()
    metrics.update(with_test, MonitorState.HEALTHY)
    metrics.update(replace(with_test, load_tests=()), MonitorState.HEALTHY)

    families = parse(metrics.exposition())
    assert value(families["tfsm_load_test_gflops"], python=LINUX_PY) == 81234.5

    unwatched = replace(with_test, load_tests=(), inventory=replace(linux_tf221_pip(), pythons=()))
    assert merge_load_tests(metrics.snapshot.load_tests, unwatched) == ()


def test_a_scrape_never_mixes_two_reports(metrics):
    """The daemon updates while scrapes run: healthy and state must agree in every scrape."""
    reports = [
        (healthy_report(), MonitorState.HEALTHY),
        (driver_too_old_for_cuda12(), MonitorState.BROKEN),
    ]
    done = threading.Event()

    def flip() -> None:
        i = 0
        while not done.is_set():
            metrics.update(*reports[i % 2])
            i += 1

    flipper = threading.Thread(target=flip)
    flipper.start()
    try:
        seen = set()
        for _ in range(200):
            families = parse(metrics.exposition())
            healthy = value(families["tfsm_stack_healthy"])
            errors = value(families["tfsm_findings"], severity="error")
            broken = value(families["tfsm_stack_state"], state="broken")
            driver = families["tfsm_stack_info"][0].labels["driver"]
            seen.add((healthy, errors, broken, driver))
    finally:
        done.set()
        flipper.join()
    assert seen <= {(1, 0, 0, "570.133.07"), (0, 1, 1, "470.57.02")}


def test_textfile_holds_what_a_scrape_gets(tmp_path, metrics):
    metrics.update(healthy_report(), MonitorState.HEALTHY)
    target = tmp_path / "tf-stack-monitor.prom"
    target.write_text("old\n")

    write_textfile(target, metrics)

    text = target.read_text()
    assert text == metrics.exposition()
    assert value(parse(text)["tfsm_stack_healthy"]) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["tf-stack-monitor.prom"]


def test_textfile_in_a_missing_directory_is_a_clear_error(tmp_path, metrics):
    target = tmp_path / "no-such-dir" / "tfsm.prom"

    with pytest.raises(MetricsError, match=r"directory .*no-such-dir does not exist"):
        write_textfile(target, metrics)


def test_textfile_over_a_directory_is_a_clear_error_and_leaves_no_temp_file(tmp_path, metrics):
    (tmp_path / "tfsm.prom").mkdir()

    with pytest.raises(MetricsError, match=r"cannot write the metrics textfile .*tfsm\.prom: "):
        write_textfile(tmp_path / "tfsm.prom", metrics)
    assert [p.name for p in tmp_path.iterdir()] == ["tfsm.prom"]


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE stands in for a full disk")
def test_textfile_on_a_full_disk_keeps_the_old_file(tmp_path):
    """A file size limit makes the write fail like a full disk, in a child process."""
    target = tmp_path / "tfsm.prom"
    script = textwrap.dedent(
        f"""
        import resource, signal
        from pathlib import Path
        from monitor.metrics import MetricsError, StackMetrics, write_textfile
        Path({str(target)!r}).write_text("old\\n")
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200, 200))
        try:
            write_textfile({str(target)!r}, StackMetrics())
        except MetricsError as exc:
            print(exc)
        """
    )
    root = Path(__file__).resolve().parents[1]
    child = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=60
    )

    assert child.returncode == 0, child.stderr
    assert "cannot write the metrics textfile" in child.stdout
    assert "File too large" in child.stdout
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["tfsm.prom"]


def test_port_in_use_is_a_clear_error(metrics):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        with pytest.raises(MetricsError, match=rf"127\.0\.0\.1:{port}: the port is already in use"):
            MetricsServer(metrics, port=port).start()


def test_an_address_this_machine_does_not_have_is_a_clear_error(metrics):
    with pytest.raises(MetricsError, match=r"192\.0\.2\.1:0: this machine has no such address"):
        MetricsServer(metrics, port=0, address="192.0.2.1").start()


def test_stop_frees_the_port_and_is_idempotent(metrics):
    server = MetricsServer(metrics, port=0)
    server.start()
    port = server.port
    assert scrape(server)[1]

    server.stop()
    server.stop()

    with socket.socket() as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)
