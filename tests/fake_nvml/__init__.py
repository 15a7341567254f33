"""A fake NVML for tests: fake_nvml.c built into a real `libnvidia-ml.so.1` the real pynvml loads.

The library re-reads its config file on every call, so `fake.set(...)`
while a process has it loaded is a driver update, a lost GPU, a new process on the GPU.
The config format is described at the top of fake_nvml.c; `FakeNvml.set` writes it.

    fake = FakeNvml(tmp_path)     # tmp_path/lib/libnvidia-ml.so.1 and lib/fake_nvml.conf
    fake.set(driver_version="550.54.14", gpus=[FakeGpu(name="NVIDIA GeForce RTX 3090")])
    probe_driver(library_path=str(fake.library))          # in this process
    subprocess.run([...], env=fake.env())                  # a child finds it by name

In one process, load it by absolute path (`library_path`): once any libnvidia-ml.so.1 is
loaded, a later load by name returns that one (probe_driver() without a path then reads NVML
in a fresh child process). A child with `fake.env()` (LD_LIBRARY_PATH and FAKE_NVML_CONFIG
set) finds it by name, as the CLI would. Other tests get the `fake_nvml` fixture by
importing `fake_nvml_fixture` (conftest: `from fake_nvml import fake_nvml_fixture`).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SOURCE = Path(__file__).with_name("fake_nvml.c")
LIBRARY_NAME = "libnvidia-ml.so.1"
CONFIG_ENV = "FAKE_NVML_CONFIG"
_CACHE = Path(os.environ.get("TFSM_STUB_CACHE", "/tmp/tfsm-stub-cache"))
_FLAGS = ("-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", f"-Wl,-soname,{LIBRARY_NAME}")
_LIBS = ("-ldl",)  # dladdr: in libc since glibc 2.34, in libdl before


def build_fake_nvml(directory: Path | str, file_version: str | None = None) -> Path:
    """Compile fake_nvml.c (cached by source hash) into directory/libnvidia-ml.so.1.

    file_version "550.54.14": lay it out as the driver installer does, the real file
    libnvidia-ml.so.550.54.14 and libnvidia-ml.so.1 a symlink to it. Every file is written
    beside and renamed into place (a new inode), so a process that has an older copy mapped
    is never handed a file changing under it.
    """
    source = SOURCE.read_bytes()
    key = hashlib.sha256(source + b"\0" + " ".join(_FLAGS + _LIBS).encode()).hexdigest()[:16]
    cached = _CACHE / f"fake-nvml-{key}.so"
    if not cached.exists():
        _CACHE.mkdir(parents=True, exist_ok=True)
        tmp = _CACHE / f"fake-nvml-{key}.{os.getpid()}.tmp"
        subprocess.run(["gcc", *_FLAGS, "-o", str(tmp), str(SOURCE), *_LIBS], check=True)
        os.replace(tmp, cached)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / LIBRARY_NAME
    real = directory / f"libnvidia-ml.so.{file_version}" if file_version else target
    tmp_real = directory / f".{real.name}.{os.getpid()}.tmp"
    shutil.copyfile(cached, tmp_real)
    os.replace(tmp_real, real)
    if file_version:
        tmp_link = directory / f".{LIBRARY_NAME}.{os.getpid()}.link"
        tmp_link.unlink(missing_ok=True)
        tmp_link.symlink_to(real.name)
        os.replace(tmp_link, target)
    return target


_DEFAULT_CLOCKS = {"graphics": 1695, "sm": 1695, "mem": 9751, "video": 1515}
_DEFAULT_MAX_CLOCKS = {"graphics": 2100, "sm": 2100, "mem": 9751, "video": 1950}


@dataclass(frozen=True)
class FakeGpu:
    """One fake GPU. uuid and pci_bus_id default to values derived from the GPU's index.

    error: an NVML return code every query of this GPU gets (15 = NVML_ERROR_GPU_IS_LOST),
    its handle included. errors: {"nvmlDeviceGetUtilizationRates": 3, ...} per function.
    processes: (pid, used MiB) of the compute processes on it.
    """

    name: str = "NVIDIA GeForce RTX 3090"
    uuid: str | None = None
    cc: str = "8.6"
    memory_total_mib: int = 24576
    memory_used_mib: int = 0
    pci_bus_id: str | None = None
    pci_device_id: int = 0x220410DE
    utilization_gpu: int = 0
    utilization_memory: int = 0
    processes: tuple[tuple[int, int], ...] = ()
    clocks: Mapping[str, int] = field(default_factory=lambda: dict(_DEFAULT_CLOCKS))
    max_clocks: Mapping[str, int] = field(default_factory=lambda: dict(_DEFAULT_MAX_CLOCKS))
    throttle_reasons: int = 0
    error: int | None = None
    errors: Mapping[str, int] = field(default_factory=dict)

    def lines(self, index: int) -> list[str]:
        uuid = self.uuid or f"GPU-fa4e0000-0000-4000-8000-{index:012d}"
        bus_id = self.pci_bus_id or f"00000000:{index + 1:02X}:00.0"
        p = f"gpu.{index}."
        out = [
            f"{p}name={self.name}",
            f"{p}uuid={uuid}",
            f"{p}cc={self.cc}",
            f"{p}memory_total_mib={self.memory_total_mib}",
            f"{p}memory_used_mib={self.memory_used_mib}",
            f"{p}pci_bus_id={bus_id}",
            f"{p}pci_device_id={self.pci_device_id:#x}",
            f"{p}utilization.gpu={self.utilization_gpu}",
            f"{p}utilization.memory={self.utilization_memory}",
            f"{p}processes=" + ",".join(f"{pid}:{mib}" for pid, mib in self.processes),
            f"{p}throttle_reasons={self.throttle_reasons:#x}",
        ]
        out += [f"{p}clock.{kind}={mhz}" for kind, mhz in self.clocks.items()]
        out += [f"{p}max_clock.{kind}={mhz}" for kind, mhz in self.max_clocks.items()]
        if self.error is not None:
            out.append(f"{p}error={self.error}")
        out += [f"{p}error.{function}={code}" for function, code in self.errors.items()]
        return out


class FakeNvml:
    """A built fake library in directory/lib and its config, lib/fake_nvml.conf (the file the
    library reads when $FAKE_NVML_CONFIG is unset). file_version: see build_fake_nvml."""

    def __init__(self, directory: Path | str, file_version: str | None = None) -> None:
        self.directory = Path(directory)
        self.library = build_fake_nvml(self.directory / "lib", file_version)
        self.lib_dir = self.library.parent
        self.config = self.lib_dir / "fake_nvml.conf"
        self.file_version = file_version

    def replace_library(self, file_version: str) -> None:
        """A driver package upgrade on disk: the old versioned file is deleted, a new one
        written and libnvidia-ml.so.1 pointed at it. Processes keep what they mapped."""
        if self.file_version:
            (self.lib_dir / f"libnvidia-ml.so.{self.file_version}").unlink(missing_ok=True)
        build_fake_nvml(self.lib_dir, file_version)
        self.file_version = file_version

    def set(
        self,
        driver_version: str = "550.54.14",
        cuda_driver_version: int | None = 12040,
        nvml_version: str | None = None,
        gpus: Iterable[FakeGpu] = (FakeGpu(),),
        init_error: int | None = None,
        errors: Mapping[str, int] | None = None,
    ) -> None:
        """Describe the machine. nvml_version defaults to "12.<driver_version>" (as NVML does
        for CUDA 12 drivers); errors: {"nvmlSystemGetCudaDriverVersion_v2": 13, ...}."""
        gpus = list(gpus)
        lines = [
            f"driver_version={driver_version}",
            f"nvml_version={nvml_version or '12.' + driver_version}",
            f"device_count={len(gpus)}",
        ]
        if cuda_driver_version is not None:
            lines.append(f"cuda_driver_version={cuda_driver_version}")
        if init_error is not None:
            lines.append(f"init_error={init_error}")
        lines += [f"error.{function}={code}" for function, code in (errors or {}).items()]
        for index, gpu in enumerate(gpus):
            lines += gpu.lines(index)
        self.write_raw("\n".join(lines) + "\n")

    def write_raw(self, text: str) -> None:
        """Replace the config file atomically, so a running fake never reads half a file."""
        self.config.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.config.with_name(f".{self.config.name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, self.config)

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """An environment for a child that should find this fake by name."""
        env = dict(os.environ if base is None else base)
        env[CONFIG_ENV] = str(self.config)
        env["LD_LIBRARY_PATH"] = str(self.lib_dir)
        return env

    def init_count(self) -> int:
        """nvmlInit calls not yet balanced by nvmlShutdown, in this process."""
        return int(ctypes.CDLL(str(self.library)).fakeNvmlInitCount())


@pytest.fixture(name="fake_nvml")
def fake_nvml_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeNvml:
    """A healthy one-GPU machine: driver 550.54.14 (CUDA 12.4), one RTX 3090.

    Pass `library_path=str(fake_nvml.library)` in-process, or `env=fake_nvml.env()` to a child.
    $FAKE_NVML_CONFIG is removed from this process so the library reads the config beside it.
    """
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    fake = FakeNvml(tmp_path / "fake_nvml")
    fake.set()
    return fake
