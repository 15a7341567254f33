"""How much faster `check` is than asking TensorFlow itself.

Runs, as whole processes and alternating so machine noise hits both alike:
  A: tf-stack-monitor check --json --python <TF venv python>  (the installed console script,
     as users run it; `python -m monitor` where it is not installed)
  B: <TF venv python> -c "import tensorflow as tf; print(tf.sysconfig.get_build_info())"
N times each (default 7) after one untimed warm-up of each, and prints medians, minimums and
the ratio. Targets (DESIGN.md): check under 0.5 s, and at least 20x faster than B.

The TF venv is the integration tests' cached one (tests/integration/tfvenv.py), built on first
use (about 30 s of pip install). Exit status: 0 targets met, 1 a target missed, 2 a command
failed.

    python benchmarks/bench_check.py [-n 7] [--python /path/to/tf/venv/bin/python]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))

import tfvenv  # noqa: E402

CHECK_BUDGET_S = 0.5
MIN_SPEEDUP = 20.0
TF_SNIPPET = "import tensorflow as tf; print(tf.sysconfig.get_build_info())"


def timed(command: list[str], ok_codes: tuple[int, ...]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(command, cwd=REPO, stdin=subprocess.DEVNULL, capture_output=True)
    elapsed = time.perf_counter() - started
    if proc.returncode not in ok_codes:
        tail = proc.stderr.decode("utf-8", "replace").strip()[-2000:]
        raise RuntimeError(f"{' '.join(command[:4])}... exited {proc.returncode}:\n{tail}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--runs", type=int, default=7, help="timed runs of each (7)")
    parser.add_argument("--python", help="the TF interpreter (default: the cached test venv)")
    args = parser.parse_args(argv)

    tf_python = args.python or str(tfvenv.venv_python(tfvenv.ensure_venv(log=print)))
    script = Path(sys.executable).with_name("tf-stack-monitor")
    program = [str(script)] if script.exists() else [sys.executable, "-m", "monitor"]
    check_cmd = [*program, "check", "--json", "--python", tf_python]
    tf_cmd = [tf_python, "-c", TF_SNIPPET]
    print(f"check:      {' '.join(check_cmd)}")
    print(f"tensorflow: {tf_python} -c {TF_SNIPPET!r}")
    print(f"runs: {args.runs} each, alternating, after one warm-up; cpus: {os.cpu_count()}")

    check_times: list[float] = []
    tf_times: list[float] = []
    try:
        timed(check_cmd, (0, 1, 2))
        timed(tf_cmd, (0,))
        for _ in range(args.runs):
            check_times.append(timed(check_cmd, (0, 1, 2)))  # 0-2: a verdict; 3: it failed
            tf_times.append(timed(tf_cmd, (0,)))
    except RuntimeError as exc:
        print(f"FAILED: {exc}")
        return 2

    check_median, tf_median = statistics.median(check_times), statistics.median(tf_times)
    ratio = tf_median / check_median
    print()
    print(f"{'':12}{'median':>10}{'min':>10}{'max':>10}")
    for name, times in (("check", check_times), ("import tf", tf_times)):
        print(f"{name:12}{statistics.median(times):>9.3f}s{min(times):>9.3f}s{max(times):>9.3f}s")
    print(f"ratio (median import tf / median check): {ratio:.1f}x")
    print()
    fast_enough = check_median < CHECK_BUDGET_S
    speedup_ok = ratio >= MIN_SPEEDUP
    print(
        f"target: check < {CHECK_BUDGET_S} s: {check_median:.3f} s "
        f"{'PASS' if fast_enough else 'FAIL'}"
    )
    print(
        f"target: >= {MIN_SPEEDUP:.0f}x faster than importing TensorFlow: {ratio:.1f}x "
        f"{'PASS' if speedup_ok else 'FAIL'}"
    )
    return 0 if fast_enough and speedup_ok else 1


if __name__ == "__main__":
    sys.exit(main())
