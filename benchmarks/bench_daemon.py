"""What the resident monitor costs while idle, and how fast it reacts to a CUDA reinstall.

Starts `tf-stack-monitor run --headless` as users run it (a whole process, its own HOME) over
a fake machine laid out under a temp dir (`--root`): /usr/local/cuda-12.4 with a few thousand
files, /opt, /etc/ld.so.conf.d, a watched interpreter. Then:

  1. idle: lets it sit for --idle seconds (default 60) after its first check and reads, with
     psutil, the CPU seconds it used, its peak RSS (VmHWM), its threads, and its inotify
     watches (from /proc/<pid>/fdinfo);
  2. reinstall: removes the toolkit and writes it back with a new version (like an
     installer: thousands of files), notes the moment of the last write, and polls
     `status` until the monitor has a new verdict. Latency = that moment minus the last write.

Targets (issue #4): idle CPU < 0.5% of one core, RSS < 60 MB, < 100 OS watches, latency <
debounce + 2 s. Exit status 0 when all are met, 1 otherwise.

    python benchmarks/bench_daemon.py [--idle 60] [--files 5000] [--debounce 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

IDLE_CPU_MAX = 0.005  # of one core
RSS_MAX_MB = 60.0
WATCHES_MAX = 100
LATENCY_SLACK_S = 2.0


def lay_out_machine(root: Path, files: int, version: str) -> Path:
    """A machine with one CUDA toolkit (`files` files in bin/, lib64/, include/)."""
    for directory in ("opt", "etc/ld.so.conf.d", "usr/lib/x86_64-linux-gnu"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    (root / "etc/ld.so.conf.d/cuda.conf").write_text("/usr/local/cuda/lib64\n")
    return install_toolkit(root, files, version)


def install_toolkit(root: Path, files: int, version: str) -> Path:
    toolkit = root / "usr/local/cuda-12.4"
    for index in range(files):
        sub = ("bin", "lib64", "include", "nvvm/lib64")[index % 4]
        path = toolkit / sub / f"file{index:05d}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 256)
    (toolkit / "version.json").write_text(json.dumps({"cuda": {"version": version}}))
    link = root / "usr/local/cuda"
    if not link.is_symlink():
        link.symlink_to("cuda-12.4")
    return toolkit


def inotify_watches(pid: int) -> int:
    count = 0
    for fd in Path(f"/proc/{pid}/fdinfo").iterdir():
        try:
            count += sum(1 for line in fd.read_text().splitlines() if line.startswith("inotify"))
        except OSError:
            continue
    return count


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def status(cli: list[str]) -> dict | None:
    done = subprocess.run([*cli, "status", "--json"], capture_output=True, text=True)
    return json.loads(done.stdout) if done.returncode == 0 else None


def wait_checks(cli: list[str], count: int, timeout: float, poll: float = 0.05) -> float:
    """Poll until the monitor has made `count` checks; returns the moment it saw so."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = status(cli)
        if state and state["checks"] >= count and not state["busy"]:
            return time.monotonic()
        time.sleep(poll)
    raise SystemExit(f"FAILED: no check #{count} within {timeout} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle", type=float, default=60.0, help="idle seconds to measure (60)")
    parser.add_argument("--files", type=int, default=5000, help="files in the toolkit (5000)")
    parser.add_argument("--debounce", type=float, default=5.0, help="quiet seconds (5)")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="tfsm-bench-"))
    try:
        return run(work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(work: Path, args: argparse.Namespace) -> int:
    root, home = work / "machine", work / "home"
    home.mkdir()
    lay_out_machine(root, args.files, "12.4.1")
    config = work / "config.toml"
    config.write_text(
        f"[watch]\npythons = [{json.dumps(sys.executable)}]\n"
        f"debounce_quiet_seconds = {args.debounce}\n"
        f"debounce_max_wait_seconds = {max(60.0, args.debounce * 4)}\n"
        "[load_test]\non_stack_change = false\n"
    )
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_STATE_HOME": str(home / ".local/state"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_RUNTIME_DIR": str(home / "run"),
        "TFSM_CONFIG": str(config),
    }
    os.environ.update({k: v for k, v in env.items() if k != "PATH"})
    (home / "run").mkdir(mode=0o700)
    cli = [sys.executable, "-m", "monitor"]
    daemon = subprocess.Popen(
        [*cli, "run", "--headless", "--root", str(root)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_checks(cli, 1, timeout=60)
        proc = psutil.Process(daemon.pid)
        before = proc.cpu_times()
        started = time.monotonic()
        time.sleep(args.idle)
        after = proc.cpu_times()
        elapsed = time.monotonic() - started
        cpu_s = (after.user + after.system) - (before.user + before.system)
        idle_share = cpu_s / elapsed
        watches = inotify_watches(daemon.pid)
        threads = proc.num_threads()
        rss = peak_rss_mb(daemon.pid)
        reported = status(cli)["watches"]

        checks = status(cli)["checks"]
        shutil.rmtree(root / "usr/local/cuda-12.4")
        install_toolkit(root, args.files, "12.4.2")
        last_write = time.monotonic()
        seen = wait_checks(cli, checks + 1, timeout=args.debounce + 120)
        latency = seen - last_write
        final = status(cli)
        rss_after = peak_rss_mb(daemon.pid)
    finally:
        subprocess.run([*cli, "stop"], env=env, capture_output=True)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
        daemon.communicate()

    budget = args.debounce + LATENCY_SLACK_S
    rows = [
        (
            "idle CPU",
            f"{cpu_s:.3f} s in {elapsed:.0f} s = {100 * idle_share:.3f}% of a core",
            idle_share < IDLE_CPU_MAX,
            f"< {100 * IDLE_CPU_MAX:.1f}%",
        ),
        ("peak RSS (idle)", f"{rss:.1f} MB", rss < RSS_MAX_MB, f"< {RSS_MAX_MB:.0f} MB"),
        (
            "peak RSS (after the reinstall)",
            f"{rss_after:.1f} MB",
            rss_after < RSS_MAX_MB,
            f"< {RSS_MAX_MB:.0f} MB",
        ),
        (
            "inotify watches",
            f"{watches} (monitor says {reported})",
            watches < WATCHES_MAX,
            f"< {WATCHES_MAX}",
        ),
        ("threads", str(threads), True, "(reported)"),
        (
            "reinstall -> new verdict",
            f"{latency:.2f} s ({args.files} files, debounce {args.debounce:g} s)",
            latency < budget,
            f"< {budget:g} s",
        ),
    ]
    print(f"tf-stack-monitor daemon, headless, {args.idle:g} s idle; cpus: {os.cpu_count()}")
    for name, value, ok, target in rows:
        print(f"  {name:32} {value:48} {target:10} {'PASS' if ok else 'FAIL'}")
    print(f"  verdict after the reinstall: {final['verdict']} ({final['headline']})")
    return 0 if all(ok for _, _, ok, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
