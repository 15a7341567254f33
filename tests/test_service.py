"""`tf-stack-monitor run` as users run it: a real process, talked to through the real CLI.

The machine is this one (no GPU), the NVML is the fake library, HOME is the test's own."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from fake_nvml import FakeNvml, fake_nvml_fixture  # noqa: F401 (fixture)


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args], capture_output=True, text=True, timeout=timeout
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def config_file(tmp_path, fake_nvml: FakeNvml) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[watch]
pythons = [{json.dumps(sys.executable)}]
driver_poll_seconds = 1
debounce_quiet_seconds = 0.5
debounce_max_wait_seconds = 5

[load_test]
on_stack_change = false

[nvml]
library = {json.dumps(str(fake_nvml.library))}
"""
    )
    return path


class Daemon:
    def __init__(self, config: Path, *extra: str) -> None:
        self.config = str(config)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "--headless", "--config", self.config, *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def status(self) -> dict | None:
        done = _cli("status", "--json", "--config", self.config)
        return json.loads(done.stdout) if done.returncode == 0 else None

    def wait_checks(self, count: int, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.proc.stderr.read()
            status = self.status()
            if status and status["checks"] >= count and not status["busy"]:
                return status
            time.sleep(0.2)
        raise AssertionError(f"no {count} checks within {timeout} s: {self.status()}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=10)


@pytest.fixture
def daemon(config_file):
    running = Daemon(config_file)
    yield running
    running.close()


def test_run_status_check_now_pause_history_stop(daemon, config_file, fake_nvml):
    status = daemon.wait_checks(1)
    assert status["pid"] == daemon.proc.pid
    assert status["verdict"] in ("healthy", "warnings", "broken")
    assert status["tray"] == "tray: headless (--headless)"
    assert status["watches"]["packages"] >= 1

    second = _cli("run", "--headless", "--config", str(config_file))
    assert second.returncode == 1
    assert f"already running (PID {daemon.proc.pid})" in second.stderr

    done = _cli("check-now", "--config", str(config_file))
    assert done.returncode == 0, done.stderr
    assert "tf-stack-monitor is running" in done.stdout and "2 since start" in done.stdout

    assert _cli("pause", "--config", str(config_file)).stdout.strip() == "tf-stack-monitor: paused"
    assert daemon.status()["state"] == "paused"
    fake_nvml.set(driver_version="580.65.06", cuda_driver_version=13000)  # seen, not checked
    time.sleep(1.5)
    assert daemon.status()["checks"] == 2
    assert _cli("resume", "--config", str(config_file)).returncode == 0
    status = daemon.wait_checks(3)
    assert status["state"] != "paused"

    history = json.loads(_cli("history", "--json", "--all", "--config", str(config_file)).stdout)
    assert len(history["entries"]) == 3
    assert any("580.65.06" in entry["summary"] for entry in history["entries"])

    stopped = _cli("stop", "--config", str(config_file))
    assert stopped.stdout.strip() == "tf-stack-monitor: stopping"
    assert daemon.proc.wait(timeout=20) == 0
    gone = _cli("status", "--config", str(config_file))
    assert gone.returncode == 1 and "no monitor is running" in gone.stderr


def test_sigterm_stops_it_cleanly_and_the_next_start_works(config_file):
    first = Daemon(config_file)
    try:
        first.wait_checks(1)
        first.proc.send_signal(signal.SIGTERM)
        assert first.proc.wait(timeout=20) == 0
    finally:
        first.close()
    second = Daemon(config_file)
    try:
        assert second.wait_checks(1)["checks"] == 1
    finally:
        second.close()


def test_a_killed_monitor_leaves_nothing_that_stops_the_next_one(config_file):
    first = Daemon(config_file)
    try:
        first.wait_checks(1)
        os.kill(first.proc.pid, signal.SIGKILL)
        first.proc.wait(timeout=10)
    finally:
        first.close()
    second = Daemon(config_file)
    try:
        assert second.wait_checks(1)["pid"] == second.proc.pid
    finally:
        second.close()


def test_metrics_are_served_while_it_runs(config_file):
    port = _free_port()
    running = Daemon(config_file, "--metrics-port", str(port))
    try:
        status = running.wait_checks(1)
        assert status["metrics"] == f"http://127.0.0.1:{port}/metrics"
        with urllib.request.urlopen(status["metrics"], timeout=10) as response:
            text = response.read().decode()
        assert "tfsm_stack_healthy" in text and "tfsm_last_check_timestamp_seconds" in text
    finally:
        running.close()


def test_a_bad_config_is_refused_with_the_reason(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[watch]\ndebounce_quiet_seconds = 'fast'\n")
    done = _cli("run", "--headless", "--config", str(bad))
    assert done.returncode == 2
    assert "debounce_quiet_seconds" in done.stderr and "fast" in done.stderr
