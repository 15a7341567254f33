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
from xdesktop import desktop_fixture  # noqa: F401 (fixture)


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


needs_gtk = pytest.mark.skipif(
    "gtk" not in __import__("monitor.tray", fromlist=["gi_backends"]).gi_backends(),
    reason="needs PyGObject and GTK 3 (the `desktop` extra and gir1.2-gtk-3.0)",
)
ICON_COLOURS = {"broken": (209, 36, 47), "warnings": (247, 183, 0), "healthy": (46, 164, 78)}


@needs_gtk
def test_the_tray_shows_the_verdict_and_a_click_writes_the_report(config_file, desktop, tmp_path):
    """`run` on a desktop: the icon of the verdict in the real tray; a click is Show report."""
    from xdesktop import count_colour, wait_until

    env = {**desktop.env, "BROWSER": "true"}  # a browser that opens nothing, successfully
    daemon = subprocess.Popen(
        [sys.executable, "-m", "monitor", "run", "--config", str(config_file)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline:
            done = subprocess.run(
                [sys.executable, "-m", "monitor", "status", "--json", "--config", str(config_file)],
                env=env,
                capture_output=True,
                text=True,
            )
            status = json.loads(done.stdout) if done.returncode == 0 else None
            if status and status["checks"] >= 1 and status["tray"].startswith("tray: gtk"):
                break
            time.sleep(0.2)
        assert status and status["tray"].startswith("tray: gtk"), status
        colour = ICON_COLOURS[status["verdict"]]
        wait_until(
            lambda: count_colour(desktop.screenshot("tray"), desktop.tray(), colour) > 100,
            f"the {status['verdict']} icon in the tray",
        )
        report = Path(os.environ["XDG_STATE_HOME"]) / "tf-stack-monitor" / "report.html"
        assert not report.exists()
        desktop.click(*desktop.tray().centre)
        wait_until(report.exists, "the report written by a click on the icon")
        assert "<svg" in report.read_text()
    finally:
        subprocess.run(
            [sys.executable, "-m", "monitor", "stop", "--config", str(config_file)],
            env=env,
            capture_output=True,
        )
        try:
            assert daemon.wait(timeout=20) == 0, daemon.stderr.read()
        finally:
            if daemon.poll() is None:
                daemon.kill()
            daemon.communicate()
