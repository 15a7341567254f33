"""NVML samples while the load test child runs: is the GPU busy, and is the child on it?

No thread of its own: the runner's loop calls `take` when `due`. NVML itself is reached
through monitor/facts/driver.py (`nvml_held`, `sample_gpus`), the only module that may
import pynvml. NVML is optional: without it (no driver, no bindings) `error` says why and
the summary's values are None ("could not tell"), never False.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable

from monitor.model import GpuSample
from monitor.record import record, replace

MAX_KEPT = 60


@record
class SampleSummary:
    """What the samples say about one load test (the child's PIDs given)."""

    samples: tuple[GpuSample, ...] = ()
    error: str | None = None
    gpu_uuid: str = ""
    max_utilization_gpu: int | None = None
    max_memory_used_mib: int | None = None
    child_seen_on_gpu: bool | None = None
    # (pid, name, used MiB) of the other processes seen on the GPUs, as classify wants them.
    other_processes: tuple[tuple[int, str, int], ...] = ()
    peak: GpuSample | None = None


class GpuSampler:
    """with GpuSampler(lib) as s: ... s.take(t) when s.due(t) ...; s.summary(pids)."""

    def __init__(
        self,
        library_path: str | None = None,
        interval: float = 0.5,
        sample: Callable[[], tuple[GpuSample, ...]] | None = None,
    ) -> None:
        self.library_path = library_path
        self.interval = interval
        self._sample = sample
        self._samples: list[GpuSample] = []
        self._next = 0.0
        self._stack = contextlib.ExitStack()
        self.error: str | None = None
        self.enabled = True

    def __enter__(self) -> GpuSampler:
        if self._sample is None:
            from monitor.facts import driver

            self.error = self._stack.enter_context(driver.nvml_held(self.library_path))
            library_path = self.library_path
            self._sample = lambda: driver.sample_gpus(library_path)
        # Without NVML there is nothing to sample: do not retry the load every half second.
        self.enabled = self.error is None
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()

    def due(self, t: float) -> bool:
        return self.enabled and t >= self._next

    def next_due(self) -> float | None:
        return self._next if self.enabled else None

    def take(self, t: float) -> None:
        """Sample every GPU now; `t` is seconds since the load test started."""
        self._next = t + self.interval
        if not self.enabled or self._sample is None:
            return
        try:
            got = self._sample()
        except Exception as exc:  # a sampling bug must not stop the load test
            got = (GpuSample(index=-1, error=f"{type(exc).__name__}: {exc}"),)
        for sample in got:
            self._samples.append(replace(sample, t_s=round(t, 3)))
            if sample.index < 0:
                self.error = sample.error
                self.enabled = False

    def summary(self, child_pids: Iterable[int], gpu_uuid: str = "") -> SampleSummary:
        return summarize(self._samples, child_pids, self.error, gpu_uuid)


def summarize(
    samples: Iterable[GpuSample],
    child_pids: Iterable[int],
    error: str | None = None,
    gpu_uuid: str = "",
) -> SampleSummary:
    """Fold samples into a summary. gpu_uuid: the GPU the child is known to use ("" unknown:
    the one whose process list showed the child, else the only GPU, else all GPUs count)."""
    pids = {int(p) for p in child_pids if p}
    good = [s for s in samples if s.index >= 0]
    if not good:
        return SampleSummary(samples=tuple(samples), error=error)
    seen_on = [s for s in good if pids & {pid for pid, _ in s.processes}]
    uuids = {s.uuid for s in good}
    if not gpu_uuid:
        if seen_on:
            gpu_uuid = seen_on[0].uuid
        elif len(uuids) == 1:
            gpu_uuid = next(iter(uuids))
    mine = [s for s in good if s.uuid == gpu_uuid] if gpu_uuid else good
    utilisations = [s.utilization_gpu for s in mine if s.utilization_gpu is not None]
    memories = [s.memory_used_mib for s in mine if s.memory_used_mib is not None]
    peak = max(mine, key=lambda s: s.utilization_gpu or 0, default=None)
    used: dict[int, int] = {}
    for sample in good:
        for pid, mib in sample.processes:
            if pid not in pids:
                used[pid] = max(used.get(pid, 0), mib or 0)
    return SampleSummary(
        samples=thin(tuple(samples)),
        error=error,
        gpu_uuid=gpu_uuid,
        max_utilization_gpu=max(utilisations) if utilisations else None,
        max_memory_used_mib=max(memories) if memories else None,
        child_seen_on_gpu=bool(seen_on),
        other_processes=tuple((pid, process_name(pid), mib) for pid, mib in sorted(used.items())),
        peak=peak,
    )


def thin(samples: tuple[GpuSample, ...], keep: int = MAX_KEPT) -> tuple[GpuSample, ...]:
    """At most about `keep` samples, evenly spread over time for each GPU (each GPU's first and
    last kept), in time order, for storage."""
    if len(samples) <= keep:
        return samples
    by_gpu: dict[int, list[GpuSample]] = {}
    for sample in samples:
        by_gpu.setdefault(sample.index, []).append(sample)
    per_gpu = max(2, keep // len(by_gpu))
    kept: list[GpuSample] = []
    for series in by_gpu.values():
        if len(series) <= per_gpu:
            kept.extend(series)
            continue
        step = (len(series) - 1) / (per_gpu - 1)
        kept.extend(series[round(i * step)] for i in range(per_gpu))
    return tuple(sorted(kept, key=lambda s: (s.t_s, s.index)))


def process_name(pid: int) -> str:
    """The name of a process, "" when it is gone or not visible (NVML gives host PIDs: inside
    a container the same number may be no process, or another one)."""
    try:
        import psutil

        return str(psutil.Process(pid).name())
    except Exception:
        return ""
