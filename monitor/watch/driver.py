"""The driver trigger: NVML polled every `interval_s` (30 s) for what a driver change changes.

Watched: the driver version, the newest CUDA the driver supports, the set of GPUs (by UUID),
and whether NVML answers at all (driver uninstalled, module not loaded, reinstalled).

Each poll is monitor.facts.driver.probe_driver in this process: nvmlInit, a few queries,
nvmlShutdown. NVML is never kept open between polls: an open NVML holds /dev/nvidia*, and a
driver update could then not unload the kernel module. When a driver update replaced the
library this process has loaded, probe_driver reads NVML in a fresh child instead (this
process's copy is stale); that costs a Python start (~65 ms of CPU), so polls then come every
`child_interval_s` (120 s).

Reboot pending: after a driver update without a reboot, the new user-space library meets the
old kernel module and NVML answers "RM has detected an NVML/RM version mismatch". That is
reported as its own state of the driver: "NVIDIA driver 535.104.05 -> 550.54.14 installed,
reboot pending" (the kernel module's version from /proc/driver/nvidia/version, the
library's from its file name).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from monitor.facts.driver import SYSTEM_ROOT, probe_driver
from monitor.facts.paths import Root
from monitor.model import Change, ChangeKind, DriverInfo, GpuInfo, utc_now
from monitor.watch import PollCount

log = logging.getLogger(__name__)

INTERVAL_S = 30.0
CHILD_INTERVAL_S = 120.0
SUBJECT = "NVIDIA driver"
CUDA_SUBJECT = "driver CUDA version"
RM_MISMATCH = "NVML_ERROR_LIB_RM_VERSION_MISMATCH"

Probe = Callable[[Root, str | None], DriverInfo]


# --------------------------------------------------------------------------- pure


def reboot_pending(info: DriverInfo) -> tuple[str, str] | None:
    """(running kernel module version, installed library version) when a new driver waits for
    a reboot; "" for a side whose version is unknown. None otherwise."""
    if info.nvml_loaded:
        return None
    running, installed = info.kernel_module_version, info.nvml_library_version
    if info.error_code == RM_MISMATCH or (running and installed and running != installed):
        return running or "", installed or ""
    return None


def driver_state(info: DriverInfo) -> str:
    """One line for the driver as a whole: its version, reboot pending, or why NVML fails."""
    if info.nvml_loaded:
        return info.driver_version or "version unknown"
    pending = reboot_pending(info)
    if pending is not None:
        return f"{pending[1] or 'a new driver'} installed, reboot pending"
    return f"NVML unavailable: {info.error or info.error_code or 'unknown error'}"


def driver_changes(
    before: DriverInfo, after: DriverInfo, at: str, last_answered: DriverInfo | None = None
) -> list[Change]:
    """What changed between two probes: the driver's state line, then (when NVML answered
    both times) the CUDA version it supports and the GPUs that came or went.

    last_answered: the last probe where NVML answered, to compare against when `before` is
    one where it did not (the driver comes back: were the GPUs still the same?).
    """
    changes = []
    old_state, new_state = driver_state(before), driver_state(after)
    if old_state != new_state:
        changes.append(Change(ChangeKind.DRIVER, SUBJECT, old_state, new_state, at))
    reference = before if before.nvml_loaded else last_answered
    if after.nvml_loaded and reference is not None and reference.nvml_loaded:
        changes += _answered_changes(reference, after, at)
    return changes


def _answered_changes(before: DriverInfo, after: DriverInfo, at: str) -> list[Change]:
    changes = []
    if before.cuda_driver_version != after.cuda_driver_version:
        changes.append(
            Change(
                ChangeKind.DRIVER,
                CUDA_SUBJECT,
                before.cuda_driver_version or "",
                after.cuda_driver_version or "",
                at,
            )
        )
    old = {_gpu_key(gpu): gpu for gpu in before.gpus}
    new = {_gpu_key(gpu): gpu for gpu in after.gpus}
    for key, gpu in old.items():
        if key not in new:
            changes.append(Change(ChangeKind.DRIVER, key, _gpu_text(gpu), "", at))
    for key, gpu in new.items():
        if key not in old:
            changes.append(Change(ChangeKind.DRIVER, key, "", _gpu_text(gpu), at))
    return changes


def _gpu_key(gpu: GpuInfo) -> str:
    """The GPU's UUID ("GPU-3a1f..."), the one name that survives re-enumeration."""
    return gpu.uuid or f"GPU {gpu.index}"


def _gpu_text(gpu: GpuInfo) -> str:
    if gpu.name:
        return gpu.name
    return f"unreadable ({gpu.error})" if gpu.error else "unnamed GPU"


# --------------------------------------------------------------------------- the trigger


class DriverWatcher:
    """Polls the driver on its own thread; emits DRIVER Changes (any thread may receive them).

    The first poll is the baseline: nothing is emitted for it. `current` is the last probe.
    """

    def __init__(
        self,
        interval_s: float = INTERVAL_S,
        root: Root = SYSTEM_ROOT,
        library_path: str | None = None,
        probe: Probe = probe_driver,
        child_interval_s: float = CHILD_INTERVAL_S,
    ) -> None:
        self.interval_s = interval_s
        self.child_interval_s = child_interval_s
        self.current: DriverInfo | None = None
        self._root = root
        self._library_path = library_path
        self._probe = probe
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._polls = PollCount()

    def start(self, emit: Callable[[Change], None]) -> None:
        if self._thread is not None:
            raise RuntimeError("the driver watcher is already running")
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(emit, self._stop), name="watch-driver", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        thread = self._thread
        if thread is None:
            return
        self._stop.set()
        thread.join()
        self._thread = None

    @property
    def polls(self) -> int:
        """Polls completed since the watcher was made."""
        return self._polls.value

    def wait_polls(self, count: int, timeout_s: float) -> bool:
        """Wait until `count` polls have completed (tests, `status`)."""
        return self._polls.wait_for(count, timeout_s)

    def _run(self, emit: Callable[[Change], None], stop: threading.Event) -> None:
        answered: DriverInfo | None = None
        while not stop.is_set():
            info = self._probe_safely()
            if info is not None:
                previous, self.current = self.current, info
                if previous is not None:
                    for change in driver_changes(previous, info, utc_now(), answered):
                        _emit(emit, change)
                if info.nvml_loaded:
                    answered = info
            self._polls.add()
            stop.wait(self._interval_after(info))

    def _probe_safely(self) -> DriverInfo | None:
        try:
            return self._probe(self._root, self._library_path)
        except Exception:  # probe_driver never raises; a substitute might
            log.exception("the driver probe failed")
            return None

    def _interval_after(self, info: DriverInfo | None) -> float:
        if info is not None and info.nvml_library_replaced:
            return max(self.interval_s, self.child_interval_s)
        return self.interval_s


def _emit(emit: Callable[[Change], None], change: Change) -> None:
    try:
        emit(change)
    except Exception:
        log.exception("emitting %s failed", change)
