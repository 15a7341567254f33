"""The driver trigger: the pure diff, and the watcher polling the real pynvml over the fake
libnvidia-ml.so.1 (tests/fake_nvml) while the test changes the fake's answers."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pynvml
import pytest
from fake_nvml import FakeGpu, FakeNvml, fake_nvml_fixture  # noqa: F401  (fixture fake_nvml)

from monitor.facts.paths import Root
from monitor.model import Change, ChangeKind, DriverInfo, GpuInfo
from monitor.watch.driver import (
    CUDA_SUBJECT,
    SUBJECT,
    DriverWatcher,
    driver_changes,
    driver_state,
    reboot_pending,
)

AT = "2024-03-01T12:00:00+00:00"
NO_ROOT = Root("/nonexistent-root")
DRIVER = ChangeKind.DRIVER
NVRM_535 = (
    "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023\n"
)

RTX_3090 = FakeGpu(name="NVIDIA GeForce RTX 3090", uuid="GPU-3a1f0c1e-7b52-4c55-9d6e-1b8c2f7d3e01")
A100 = FakeGpu(
    name="NVIDIA A100-PCIE-40GB",
    uuid="GPU-0c9d3b7a-44e1-4f0a-8b2d-5e6f7a8b9c02",
    pci_bus_id="00000000:41:00.0",
)

GPU_3090 = GpuInfo(index=0, name=RTX_3090.name, uuid=RTX_3090.uuid or "")
GPU_A100 = GpuInfo(index=1, name=A100.name, uuid=A100.uuid or "")


def answered(version: str, cuda: str, *gpus: GpuInfo) -> DriverInfo:
    return DriverInfo(nvml_loaded=True, driver_version=version, cuda_driver_version=cuda, gpus=gpus)


def failed(error: str, code: str, **facts: str) -> DriverInfo:
    return DriverInfo(error=error, error_code=code, **facts)  # type: ignore[arg-type]


DRIVER_535 = answered("535.104.05", "12.2", GPU_3090)
NOT_LOADED = failed("Driver Not Loaded", "NVML_ERROR_DRIVER_NOT_LOADED")


def facts(changes: list[Change]) -> list[tuple[ChangeKind, str, str, str]]:
    return [(c.kind, c.subject, c.before, c.after) for c in changes]


# --------------------------------------------------------------------------- the pure diff


def test_same_driver_is_no_change() -> None:
    assert driver_changes(DRIVER_535, answered("535.104.05", "12.2", GPU_3090), AT) == []


def test_driver_update_names_version_and_cuda() -> None:
    after = answered("550.54.14", "12.4", GPU_3090)

    changes = driver_changes(DRIVER_535, after, AT)

    assert changes == [
        Change(DRIVER, SUBJECT, "535.104.05", "550.54.14", AT),
        Change(DRIVER, CUDA_SUBJECT, "12.2", "12.4", AT),
    ]


def test_gpus_added_and_removed_by_uuid_with_names() -> None:
    before = answered("550.54.14", "12.4", GPU_3090)
    # Re-enumerated: the A100 took index 0; the 3090 is gone.
    after = answered("550.54.14", "12.4", GpuInfo(index=0, name=A100.name, uuid=GPU_A100.uuid))

    assert facts(driver_changes(before, after, AT)) == [
        (DRIVER, GPU_3090.uuid, "NVIDIA GeForce RTX 3090", ""),
        (DRIVER, GPU_A100.uuid, "", "NVIDIA A100-PCIE-40GB"),
    ]


def test_a_gpu_that_cannot_be_read_is_named_by_index() -> None:
    lost = GpuInfo(index=1, error="nvmlDeviceGetHandleByIndex: GPU is lost")
    before = answered("550.54.14", "12.4", GPU_3090, GPU_A100)
    after = answered("550.54.14", "12.4", GPU_3090, lost)

    assert facts(driver_changes(before, after, AT)) == [
        (DRIVER, GPU_A100.uuid, "NVIDIA A100-PCIE-40GB", ""),
        (DRIVER, "GPU 1", "", "unreadable (nvmlDeviceGetHandleByIndex: GPU is lost)"),
    ]


def test_nvml_lost_and_back() -> None:
    lost = driver_changes(DRIVER_535, NOT_LOADED, AT)
    back = driver_changes(NOT_LOADED, DRIVER_535, AT, last_answered=DRIVER_535)

    assert facts(lost) == [(DRIVER, SUBJECT, "535.104.05", "NVML unavailable: Driver Not Loaded")]
    assert facts(back) == [(DRIVER, SUBJECT, "NVML unavailable: Driver Not Loaded", "535.104.05")]


def test_driver_back_compares_gpus_with_the_last_answer() -> None:
    after = answered("550.54.14", "12.4", GPU_3090, GPU_A100)

    changes = driver_changes(NOT_LOADED, after, AT, last_answered=DRIVER_535)

    assert facts(changes) == [
        (DRIVER, SUBJECT, "NVML unavailable: Driver Not Loaded", "550.54.14"),
        (DRIVER, CUDA_SUBJECT, "12.2", "12.4"),
        (DRIVER, GPU_A100.uuid, "", "NVIDIA A100-PCIE-40GB"),
    ]


def test_another_failure_reason_is_a_change() -> None:
    uninstalled = failed("NVML Shared Library Not Found", "NVML_ERROR_LIBRARY_NOT_FOUND")

    assert facts(driver_changes(NOT_LOADED, uninstalled, AT)) == [
        (
            DRIVER,
            SUBJECT,
            "NVML unavailable: Driver Not Loaded",
            "NVML unavailable: NVML Shared Library Not Found",
        )
    ]


def test_update_without_reboot_is_reboot_pending() -> None:
    pending = failed(
        "RM has detected an NVML/RM version mismatch.",
        "NVML_ERROR_LIB_RM_VERSION_MISMATCH",
        kernel_module_version="535.104.05",
        nvml_library_version="550.54.14",
    )

    assert reboot_pending(pending) == ("535.104.05", "550.54.14")
    assert facts(driver_changes(DRIVER_535, pending, AT)) == [
        (DRIVER, SUBJECT, "535.104.05", "550.54.14 installed, reboot pending")
    ]


def test_versions_that_differ_without_the_error_code_are_reboot_pending() -> None:
    # NVML failed some other way, but the library on disk is newer than the running module.
    info = failed(
        "Unknown Error",
        "NVML_ERROR_UNKNOWN",
        kernel_module_version="535.104.05",
        nvml_library_version="550.54.14",
    )
    assert driver_state(info) == "550.54.14 installed, reboot pending"
    assert reboot_pending(NOT_LOADED) is None
    assert reboot_pending(DRIVER_535) is None


def test_reboot_pending_without_a_library_version() -> None:
    info = failed(
        "RM has detected an NVML/RM version mismatch.", "NVML_ERROR_LIB_RM_VERSION_MISMATCH"
    )
    assert driver_state(info) == "a new driver installed, reboot pending"


# --------------------------------------------------------------------------- the watcher


class Collector:
    """emit for the watcher: records Changes from its thread; waits for a count."""

    def __init__(self) -> None:
        self.changes: list[Change] = []
        self._cond = threading.Condition()

    def __call__(self, change: Change) -> None:
        with self._cond:
            self.changes.append(change)
            self._cond.notify_all()

    def wait_for(self, count: int, timeout_s: float = 30.0) -> list[Change]:
        with self._cond:
            self._cond.wait_for(lambda: len(self.changes) >= count, timeout_s)
            return list(self.changes)


def watcher_for(fake: FakeNvml, root: Root = NO_ROOT, **options: float) -> DriverWatcher:
    options.setdefault("interval_s", 0.02)
    return DriverWatcher(root=root, library_path=str(fake.library), **options)


def settle(watcher: DriverWatcher, polls: int = 3) -> None:
    """Let a few more polls pass, so an extra Change would have arrived."""
    assert watcher.wait_polls(watcher.polls + polls, 30.0)


def test_driver_update_while_the_watcher_runs(fake_nvml: FakeNvml) -> None:
    fake_nvml.set(driver_version="550.54.14", cuda_driver_version=12040, gpus=[RTX_3090])
    collect = Collector()
    watcher = watcher_for(fake_nvml)
    watcher.start(collect)
    try:
        assert watcher.wait_polls(1, 30.0), "the baseline poll"
        fake_nvml.set(driver_version="560.35.03", cuda_driver_version=12060, gpus=[RTX_3090])
        collect.wait_for(2)
        settle(watcher)
    finally:
        watcher.stop()

    assert facts(collect.changes) == [
        (DRIVER, SUBJECT, "550.54.14", "560.35.03"),
        (DRIVER, CUDA_SUBJECT, "12.4", "12.6"),
    ]
    assert all(c.at.endswith("+00:00") for c in collect.changes)
    assert fake_nvml.init_count() == 0, "NVML is not held open between polls"


def test_gpu_added_while_the_watcher_runs(fake_nvml: FakeNvml) -> None:
    fake_nvml.set(gpus=[RTX_3090])
    collect = Collector()
    watcher = watcher_for(fake_nvml)
    watcher.start(collect)
    try:
        assert watcher.wait_polls(1, 30.0)
        fake_nvml.set(gpus=[RTX_3090, A100])
        collect.wait_for(1)
        settle(watcher)
    finally:
        watcher.stop()

    assert facts(collect.changes) == [(DRIVER, A100.uuid, "", "NVIDIA A100-PCIE-40GB")]


def test_nvml_gone_and_back_while_the_watcher_runs(fake_nvml: FakeNvml) -> None:
    fake_nvml.set(driver_version="550.54.14", gpus=[RTX_3090])
    collect = Collector()
    watcher = watcher_for(fake_nvml)
    watcher.start(collect)
    try:
        assert watcher.wait_polls(1, 30.0)
        fake_nvml.set(init_error=pynvml.NVML_ERROR_DRIVER_NOT_LOADED, gpus=[RTX_3090])
        collect.wait_for(1)
        fake_nvml.set(driver_version="550.54.14", gpus=[RTX_3090, A100])
        collect.wait_for(3)
        settle(watcher)
    finally:
        watcher.stop()

    assert facts(collect.changes) == [
        (DRIVER, SUBJECT, "550.54.14", "NVML unavailable: Driver Not Loaded"),
        (DRIVER, SUBJECT, "NVML unavailable: Driver Not Loaded", "550.54.14"),
        (DRIVER, A100.uuid, "", "NVIDIA A100-PCIE-40GB"),
    ]


def test_update_without_reboot_seen_by_the_running_watcher(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The daemon has NVML 535 loaded and the 535 kernel module runs. apt installs 550: the
    # library file is replaced; a fresh process gets "NVML/RM version mismatch".
    monkeypatch.delenv("FAKE_NVML_CONFIG", raising=False)
    root = tmp_path / "root"
    (root / "proc/driver/nvidia").mkdir(parents=True)
    (root / "proc/driver/nvidia/version").write_text(NVRM_535)
    fake = FakeNvml(tmp_path / "nvml", file_version="535.104.05")
    fake.set(driver_version="535.104.05", cuda_driver_version=12020, gpus=[RTX_3090])
    collect = Collector()
    watcher = watcher_for(fake, Root(str(root)), child_interval_s=0.02)
    watcher.start(collect)
    try:
        assert watcher.wait_polls(1, 30.0)
        fake.replace_library("550.54.14")
        fake.set(init_error=pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH, gpus=[RTX_3090])
        collect.wait_for(1, timeout_s=60.0)
        settle(watcher, polls=2)
    finally:
        watcher.stop()

    assert facts(collect.changes) == [
        (DRIVER, SUBJECT, "535.104.05", "550.54.14 installed, reboot pending")
    ]
    assert watcher.current is not None and watcher.current.nvml_library_replaced


def test_polls_slow_down_while_each_poll_needs_a_fresh_process() -> None:
    watcher = DriverWatcher(interval_s=30.0, child_interval_s=120.0)
    assert watcher._interval_after(DriverInfo(nvml_library_replaced=True)) == 120.0
    assert watcher._interval_after(DRIVER_535) == 30.0
    assert watcher._interval_after(None) == 30.0


def test_stop_wakes_the_watcher_at_once(fake_nvml: FakeNvml) -> None:
    watcher = watcher_for(fake_nvml, interval_s=3600.0)
    watcher.start(Collector())
    assert watcher.wait_polls(1, 30.0)
    started = time.monotonic()
    watcher.stop()
    watcher.stop()  # idempotent

    assert time.monotonic() - started < 5.0
    assert watcher.current is not None and watcher.current.driver_version == "550.54.14"


def test_stop_before_start_and_restart(fake_nvml: FakeNvml) -> None:
    watcher = watcher_for(fake_nvml)
    watcher.stop()
    watcher.start(Collector())
    with pytest.raises(RuntimeError):
        watcher.start(Collector())
    watcher.stop()
    watcher.start(Collector())
    assert watcher.wait_polls(2, 30.0)
    watcher.stop()


def test_a_failing_emit_or_probe_does_not_end_the_watcher() -> None:
    answers = iter(
        [DRIVER_535, RuntimeError("a surprise"), NOT_LOADED, DRIVER_535] + [DRIVER_535] * 10_000
    )

    def probe(root: Root, library_path: str | None) -> DriverInfo:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    seen: list[Change] = []

    def emit(change: Change) -> None:
        seen.append(change)
        raise ValueError("a broken receiver")

    watcher = DriverWatcher(interval_s=0.01, probe=probe)
    watcher.start(emit)
    try:
        assert watcher.wait_polls(6, 30.0)
    finally:
        watcher.stop()

    assert [c.after for c in seen] == ["NVML unavailable: Driver Not Loaded", "535.104.05"]
