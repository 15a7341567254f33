"""Realistic reports for the history tests, and the writer the kill -9 test kills.

Run as a script (`python history_writer.py DB`), it records reports in a loop, alternating
healthy and broken, and prints each one's checked_at to stdout once it is committed.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Sequence

import scenarios

from monitor.check import judge
from monitor.history import History
from monitor.model import (
    Change,
    ChangeKind,
    FactChange,
    GpuSample,
    Link,
    LoadTestResult,
    LoadTestStep,
    Report,
    ReportDiff,
)
from monitor.record import replace

GPU_DEVICE = "/job:localhost/replica:0/task:0/device:GPU:0"


def load_test(started_at: str) -> LoadTestResult:
    """TF 2.21 computing on the RTX 4090 of `scenarios.linux_tf221_pip`."""
    return LoadTestResult(
        python=scenarios.LINUX_PY,
        ok=True,
        outcome="gpu",
        started_at=started_at,
        duration_s=14.25,
        last_step="train",
        steps=(
            LoadTestStep("import", True, 3.125),
            LoadTestStep("gpus", True, 0.5, data=(("physical", "1"),)),
            LoadTestStep("matmul", True, 0.75, data=(("device", GPU_DEVICE),)),
            LoadTestStep("train", True, 2.5),
        ),
        tf_version="2.21.0",
        built_with_cuda=True,
        physical_gpus=1,
        logical_gpus=1,
        device=GPU_DEVICE,
        gpu_uuid="GPU-5d1e2b9c-0000-4000-8000-000000000001",
        matmul_size=4096,
        gflops=61234.5,
        import_seconds=3.125,
        peak_memory_mib=2210.0,
        loaded_libraries=(f"{scenarios.LINUX_SITE}/nvidia/cudnn/lib/libcudnn.so.9",),
        max_utilization_gpu=97,
        child_seen_on_gpu=True,
        gpu_samples=(
            GpuSample(
                0, t_s=1.5, utilization_gpu=97, memory_used_mib=2210, processes=((42, 2100),)
            ),
        ),
        exit_code=0,
    )


def healthy_report(at: str) -> Report:
    """The healthy workstation, with a passing GPU load test."""
    report = judge(scenarios.linux_tf221_pip())
    return replace(report, checked_at=at, load_tests=(load_test(at),))


def broken_report(at: str) -> Report:
    """The same workstation after the cuDNN wheel was uninstalled: libcudnn.so.9 not found."""
    inventory = scenarios.linux_tf221_pip()
    libraries = tuple(
        replace(lib, resolved=None) if lib.role == "cudnn" else lib for lib in inventory.libraries
    )
    return replace(judge(replace(inventory, libraries=libraries)), checked_at=at)


def diff_of(
    previous: Report | None, report: Report, facts: Sequence[FactChange] = ()
) -> ReportDiff:
    """What the daemon's diff would say: findings keyed on (id, subject)."""
    before = {(f.id, f.subject) for f in previous.findings} if previous else set()
    after = {(f.id, f.subject) for f in report.findings}
    return ReportDiff(
        before_verdict=previous.verdict if previous else None,
        after_verdict=report.verdict,
        facts=tuple(facts),
        appeared=tuple(f for f in report.findings if (f.id, f.subject) not in before),
        cleared=tuple(f for f in previous.findings if (f.id, f.subject) not in after)
        if previous
        else (),
    )


CUDNN_FACT = FactChange(Link.CUDNN, "nvidia-cudnn-cu12", "9.10.2.21", "")


def main(path: str) -> None:
    reports = (healthy_report(""), broken_report(""))
    previous: Report | None = None
    with History(path) as history:
        for number in range(1_000_000):
            at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")
            report = replace(reports[number % 2], checked_at=at)
            change = Change(ChangeKind.PACKAGES, "nvidia-cudnn-cu12", "9.10.2.21", "", at)
            history.record(report, diff_of(previous, report, (CUDNN_FACT,)), (change,))
            if history.pending:
                sys.exit(f"not written: {history.problem}")
            print(at, flush=True)
            previous = report


if __name__ == "__main__":
    main(sys.argv[1])
