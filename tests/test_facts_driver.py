"""The driver probe through the real pynvml and the fake libnvidia-ml.so.1 (tests/fake_nvml).

In-process tests pass `library_path` (each test has its own copy of the fake, so switching
libraries inside one process is exercised on every test); child-process tests find the fake
by name through LD_LIBRARY_PATH, as the CLI would on a real machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pynvml
import pytest
from fake_nvml import FakeGpu, FakeNvml, fake_nvml_fixture  # noqa: F401  (fixture fake_nvml)
from stubs import build_library

from monitor.facts.driver import format_cuda_version, parse_kernel_module, probe_driver
from monitor.facts.paths import Root
from monitor.model import DriverInfo, from_jsonable, to_jsonable

REPO = Path(__file__).resolve().parents[1]
NO_ROOT = Root("/nonexistent-root")  # no /proc/driver/nvidia/version

NVRM_550 = (
    "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  Thu Feb 22 01:44:30 UTC 2024\n"
    "GCC version:  gcc version 12.2.0 (Debian 12.2.0-14) \n"
)
NVRM_535 = (
    "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023\n"
    "GCC version:  gcc version 12.2.0 (Debian 12.2.0-14) \n"
)
NVRM_OPEN_560 = (
    "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  560.35.03  Release Build  "
    "(dvs-builder@U16-I3-B03-4-3)  Fri Aug 16 21:42:42 UTC 2024\n"
    "GCC version:  gcc version 12.2.0 (Debian 12.2.0-14) \n"
)

RTX_3090 = FakeGpu(
    name="NVIDIA GeForce RTX 3090",
    cc="8.6",
    memory_total_mib=24576,
    uuid="GPU-3a1f0c1e-7b52-4c55-9d6e-1b8c2f7d3e01",
    pci_bus_id="00000000:01:00.0",
)
A100 = FakeGpu(
    name="NVIDIA A100-PCIE-40GB",
    cc="8.0",
    memory_total_mib=40960,
    uuid="GPU-0c9d3b7a-44e1-4f0a-8b2d-5e6f7a8b9c02",
    pci_bus_id="00000000:41:00.0",
)


def machine(tmp_path: Path, proc_version: str | bytes | None) -> Root:
    """A fake root whose /proc/driver/nvidia/version holds `proc_version` (None: no file)."""
    root = tmp_path / "root"
    version_file = root / "proc/driver/nvidia/version"
    version_file.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(proc_version, str):
        version_file.write_text(proc_version)
    elif isinstance(proc_version, bytes):
        version_file.write_bytes(proc_version)
    return Root(str(root))


def probe(fake: FakeNvml, root: Root = NO_ROOT) -> DriverInfo:
    return probe_driver(root, library_path=str(fake.library))


def probe_in_child(env: dict[str, str]) -> DriverInfo:
    script = (
        "import json; from monitor.facts.driver import probe_driver; "
        "from monitor.facts.paths import Root; from monitor.model import to_jsonable; "
        "print(json.dumps(to_jsonable(probe_driver(Root('/nonexistent-root')))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return from_jsonable(DriverInfo, json.loads(done.stdout))


def _machine_has_nvml(env: dict[str, str]) -> bool:
    """Whether a fresh process finds a libnvidia-ml.so.1 by name (a real driver is installed)."""
    code = "import ctypes; ctypes.CDLL('libnvidia-ml.so.1')"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=60)
    return done.returncode == 0


# --------------------------------------------------------------------------- healthy


def test_healthy_two_gpus(fake_nvml: FakeNvml, tmp_path: Path) -> None:
    fake_nvml.set(driver_version="550.54.14", cuda_driver_version=12040, gpus=[RTX_3090, A100])

    info = probe(fake_nvml, machine(tmp_path, NVRM_550))

    assert info.nvml_loaded and info.error is None and info.error_code is None
    assert info.driver_version == "550.54.14"
    assert info.cuda_driver_version == "12.4"
    assert info.nvml_version == "12.550.54.14"
    assert info.kernel_module_version == "550.54.14"
    assert info.kernel_module_open is False
    assert info.nvml_library == str(fake_nvml.library)
    assert info.nvml_library_replaced is False
    assert info.query_errors == ()
    first, second = info.gpus
    assert (first.index, first.name, first.compute_capability, first.memory_total_mib) == (
        0,
        "NVIDIA GeForce RTX 3090",
        "8.6",
        24576,
    )
    assert first.uuid == RTX_3090.uuid and first.pci_bus_id == "00000000:01:00.0"
    assert (second.index, second.name, second.compute_capability, second.memory_total_mib) == (
        1,
        "NVIDIA A100-PCIE-40GB",
        "8.0",
        40960,
    )
    assert second.pci_bus_id == "00000000:41:00.0" and second.error is None
    assert fake_nvml.init_count() == 0, "nvmlShutdown must balance nvmlInit"


def test_result_survives_json(fake_nvml: FakeNvml, tmp_path: Path) -> None:
    fake_nvml.set(gpus=[RTX_3090, FakeGpu(error=pynvml.NVML_ERROR_GPU_IS_LOST)])
    info = probe(fake_nvml, machine(tmp_path, "garbage"))
    assert from_jsonable(DriverInfo, json.loads(json.dumps(to_jsonable(info)))) == info


# --------------------------------------------------------------------------- nvmlInit fails


@pytest.mark.parametrize(
    ("scenario", "code", "name", "text"),
    [
        (
            "driver_not_loaded",
            pynvml.NVML_ERROR_DRIVER_NOT_LOADED,
            "NVML_ERROR_DRIVER_NOT_LOADED",
            "Driver Not Loaded",
        ),
        (
            "no_permission_on_dev_nvidiactl",
            pynvml.NVML_ERROR_NO_PERMISSION,
            "NVML_ERROR_NO_PERMISSION",
            "Insufficient Permissions",
        ),
        ("unknown_error", pynvml.NVML_ERROR_UNKNOWN, "NVML_ERROR_UNKNOWN", "Unknown Error"),
    ],
)
def test_init_failure_is_data(
    fake_nvml: FakeNvml, scenario: str, code: int, name: str, text: str
) -> None:
    fake_nvml.set(init_error=code, gpus=[RTX_3090])

    info = probe(fake_nvml)

    assert not info.nvml_loaded, scenario
    assert (info.error_code, info.error) == (name, text)
    assert info.driver_version is None and info.gpus == ()
    assert info.nvml_library == str(fake_nvml.library), "the library did load"
    assert fake_nvml.init_count() == 0


def test_rm_version_mismatch_after_upgrade_without_reboot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # apt upgraded the user-space driver to 550.54.14; the running kernel module is still 535.
    monkeypatch.delenv("FAKE_NVML_CONFIG", raising=False)
    fake = FakeNvml(tmp_path / "nvml", file_version="550.54.14")
    fake.set(init_error=pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH, gpus=[RTX_3090])

    info = probe(fake, machine(tmp_path, NVRM_535))

    assert not info.nvml_loaded
    assert info.error_code == "NVML_ERROR_LIB_RM_VERSION_MISMATCH"
    assert info.error == "RM has detected an NVML/RM version mismatch."
    assert info.kernel_module_version == "535.104.05"
    assert info.nvml_library_version == "550.54.14", "the user-space side, read from the file"


# --------------------------------------------------------------------------- GPUs failing


def test_one_gpu_lost_keeps_the_others(fake_nvml: FakeNvml) -> None:
    fake_nvml.set(gpus=[RTX_3090, FakeGpu(error=pynvml.NVML_ERROR_GPU_IS_LOST), A100])

    info = probe(fake_nvml)

    assert info.nvml_loaded and info.error is None
    assert [g.index for g in info.gpus] == [0, 1, 2]
    assert info.gpus[0].name == "NVIDIA GeForce RTX 3090" and info.gpus[0].error is None
    assert info.gpus[2].name == "NVIDIA A100-PCIE-40GB" and info.gpus[2].error is None
    lost = info.gpus[1]
    assert lost.error_code == "NVML_ERROR_GPU_IS_LOST"
    assert lost.error == "nvmlDeviceGetHandleByIndex: GPU is lost"
    assert (lost.name, lost.compute_capability, lost.memory_total_mib) == ("", None, None)


def test_one_unsupported_query_keeps_the_rest_of_that_gpu(fake_nvml: FakeNvml) -> None:
    odd = FakeGpu(
        errors={
            "nvmlDeviceGetCudaComputeCapability": pynvml.NVML_ERROR_NOT_SUPPORTED,
            "nvmlDeviceGetPciInfo_v3": pynvml.NVML_ERROR_GPU_IS_LOST,
        }
    )
    fake_nvml.set(gpus=[odd])

    (gpu,) = probe(fake_nvml).gpus

    assert gpu.name == "NVIDIA GeForce RTX 3090" and gpu.memory_total_mib == 24576
    assert gpu.compute_capability is None and gpu.pci_bus_id == ""
    assert gpu.error == (
        "nvmlDeviceGetCudaComputeCapability: Not Supported; nvmlDeviceGetPciInfo: GPU is lost"
    )
    assert gpu.error_code == "NVML_ERROR_NOT_SUPPORTED"


def test_system_query_failure_is_recorded_not_raised(fake_nvml: FakeNvml) -> None:
    fake_nvml.set(errors={"nvmlDeviceGetCount_v2": pynvml.NVML_ERROR_UNKNOWN})

    info = probe(fake_nvml)

    assert info.nvml_loaded and info.error is None
    assert info.driver_version == "550.54.14" and info.gpus == ()
    assert info.query_errors == (("nvmlDeviceGetCount", "NVML_ERROR_UNKNOWN: Unknown Error"),)
    assert fake_nvml.init_count() == 0


def test_old_driver_without_cuda_version_v2(fake_nvml: FakeNvml) -> None:
    missing = {"nvmlSystemGetCudaDriverVersion_v2": pynvml.NVML_ERROR_FUNCTION_NOT_FOUND}
    fake_nvml.set(driver_version="418.226.00", cuda_driver_version=10010, errors=missing)
    info = probe(fake_nvml)
    assert (info.driver_version, info.cuda_driver_version) == ("418.226.00", "10.1")
    assert info.query_errors == ()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (12040, "12.4"),
        (11080, "11.8"),
        (12090, "12.9"),
        (13000, "13.0"),
        (10010, "10.1"),
        (0, None),
        (-1, None),
    ],
)
def test_format_cuda_version(value: int, expected: str | None) -> None:
    assert format_cuda_version(value) == expected


# --------------------------------------------------------------------------- no library


def test_library_path_that_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "libnvidia-ml.so.1"
    info = probe_driver(Root(str(tmp_path)), library_path=str(missing))
    assert not info.nvml_loaded
    assert info.error_code == "NVML_ERROR_LIBRARY_NOT_FOUND"
    assert info.error is not None and str(missing) in info.error
    assert info.nvml_library is None


def test_library_path_that_is_not_nvml(tmp_path: Path) -> None:
    # A file with the right name that exports none of NVML (a broken or foreign install).
    impostor = build_library(tmp_path / "lib", "libnvidia-ml.so.1")
    info = probe_driver(Root(str(tmp_path)), library_path=str(impostor))
    assert not info.nvml_loaded
    assert (info.error_code, info.error) == ("NVML_ERROR_FUNCTION_NOT_FOUND", "Function Not Found")
    assert info.nvml_library == str(impostor)


def test_child_without_any_nvml_on_the_machine(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("LD_LIBRARY_PATH", "LD_PRELOAD", "FAKE_NVML_CONFIG")
    }
    env["LD_LIBRARY_PATH"] = ""
    if _machine_has_nvml(env):
        pytest.skip("this machine has a real libnvidia-ml.so.1")

    info = probe_in_child(env)

    assert not info.nvml_loaded
    assert (info.error_code, info.error) == (
        "NVML_ERROR_LIBRARY_NOT_FOUND",
        "NVML Shared Library Not Found",
    )
    assert info.nvml_library is None and info.gpus == ()


def test_child_finds_the_fake_by_name_through_ld_library_path(fake_nvml: FakeNvml) -> None:
    fake_nvml.set(driver_version="570.133.07", cuda_driver_version=12080, gpus=[A100])

    info = probe_in_child(fake_nvml.env())

    assert info.nvml_loaded and info.driver_version == "570.133.07"
    assert info.cuda_driver_version == "12.8"
    assert info.nvml_library == str(fake_nvml.library)
    assert [g.name for g in info.gpus] == ["NVIDIA A100-PCIE-40GB"]


def test_pynvml_not_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # `import pynvml` raises ImportError
    info = probe_driver(NO_ROOT)
    assert not info.nvml_loaded
    assert info.error_code == "PYNVML_IMPORT_ERROR"
    assert info.error is not None
    assert "pip install nvidia-ml-py" in info.error and "deprecated" in info.error


# --------------------------------------------------------------------------- changes over time


def test_driver_update_between_two_probes_is_seen(fake_nvml: FakeNvml) -> None:
    fake_nvml.set(driver_version="550.54.14", cuda_driver_version=12040, gpus=[RTX_3090])
    before = probe(fake_nvml)
    fake_nvml.set(driver_version="560.35.03", cuda_driver_version=12060, gpus=[RTX_3090])
    after = probe(fake_nvml)

    assert (before.driver_version, before.cuda_driver_version) == ("550.54.14", "12.4")
    assert (after.driver_version, after.cuda_driver_version) == ("560.35.03", "12.6")
    assert fake_nvml.init_count() == 0


def test_upgrade_without_reboot_seen_by_a_long_running_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The daemon loaded NVML 550. apt then replaces the library with 560 while the 550 kernel
    # module stays loaded: this process's old copy still works, every new process fails.
    monkeypatch.delenv("FAKE_NVML_CONFIG", raising=False)
    fake = FakeNvml(tmp_path / "nvml", file_version="550.54.14")
    fake.set(driver_version="550.54.14")
    before = probe(fake)
    fake.replace_library("560.35.03")  # deletes the file this process has mapped
    fake.set(driver_version="560.35.03", init_error=pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH)
    after = probe(fake)

    assert before.nvml_loaded and before.nvml_library_version == "550.54.14"
    assert before.nvml_library_replaced is False
    assert after.nvml_library_replaced is True, "the facts come from a fresh process"
    assert after.nvml_library_version == "560.35.03"
    assert after.error_code == "NVML_ERROR_LIB_RM_VERSION_MISMATCH"
    assert after.nvml_library == str(fake.library)


def test_default_library_after_an_explicit_one_asks_a_fresh_process(
    fake_nvml: FakeNvml, tmp_path: Path
) -> None:
    # Once the fake is loaded here, a load of libnvidia-ml.so.1 by name would return it
    # (the loader matches its soname): the machine's own answer must come from a child.
    assert probe(fake_nvml).nvml_loaded
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "LD_PRELOAD")}
    if _machine_has_nvml(env):
        pytest.skip("this machine has a real libnvidia-ml.so.1")

    info = probe_driver(NO_ROOT)

    assert (info.nvml_loaded, info.error_code) == (False, "NVML_ERROR_LIBRARY_NOT_FOUND")


def test_two_libraries_in_one_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FAKE_NVML_CONFIG", raising=False)
    old = FakeNvml(tmp_path / "old")
    old.set(driver_version="535.104.05", cuda_driver_version=12020)
    new = FakeNvml(tmp_path / "new")
    new.set(driver_version="560.35.03", cuda_driver_version=12060)

    seen = [probe(fake).driver_version for fake in (old, new, old)]

    assert seen == ["535.104.05", "560.35.03", "535.104.05"]
    assert probe(new).nvml_library == str(new.library)


def test_concurrent_probes_are_serialised(fake_nvml: FakeNvml) -> None:
    fake_nvml.set(gpus=[RTX_3090, A100])
    results: list[DriverInfo] = []

    def worker() -> None:
        results.extend(probe(fake_nvml) for _ in range(20))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == 80
    assert all(r.nvml_loaded and len(r.gpus) == 2 and r.error is None for r in results)
    assert fake_nvml.init_count() == 0


def test_fake_without_config_fails_loudly(fake_nvml: FakeNvml) -> None:
    fake_nvml.config.unlink()
    info = probe(fake_nvml)
    assert (info.nvml_loaded, info.error_code) == (False, "NVML_ERROR_UNKNOWN")


# --------------------------------------------------------------------------- /proc version file


@pytest.mark.parametrize(
    ("text", "version", "is_open"),
    [
        (NVRM_550, "550.54.14", False),
        (NVRM_OPEN_560, "560.35.03", True),
        (
            "NVRM version: NVIDIA UNIX aarch64 Kernel Module  535.104.05  Sat Aug 19 01:13:59 UTC "
            "2023\n",
            "535.104.05",
            False,
        ),
        (
            "NVRM version: NVIDIA UNIX x86_64 Kernel Module  390.157  "
            "Wed Oct 12 09:19:07 UTC 2022\n",
            "390.157",
            False,
        ),
    ],
)
def test_kernel_module_line_variants(text: str, version: str, is_open: bool) -> None:
    assert parse_kernel_module(text) == (version, is_open, None)


def test_open_kernel_module_on_a_healthy_machine(fake_nvml: FakeNvml, tmp_path: Path) -> None:
    fake_nvml.set(driver_version="560.35.03", cuda_driver_version=12060)
    info = probe(fake_nvml, machine(tmp_path, NVRM_OPEN_560))
    assert (info.kernel_module_version, info.kernel_module_open) == ("560.35.03", True)


@pytest.mark.parametrize(
    "content",
    [b"\x00\xff\xfe garbage\n", b"", b"NVRM version: NVIDIA UNIX x86_64 Kernel Module  banana\n"],
)
def test_garbage_proc_version_is_an_error_not_a_crash(
    fake_nvml: FakeNvml, tmp_path: Path, content: bytes
) -> None:
    info = probe(fake_nvml, machine(tmp_path, content))
    assert info.nvml_loaded and info.driver_version == "550.54.14"
    assert (info.kernel_module_version, info.kernel_module_open) == (None, None)
    ((what, error),) = info.query_errors
    assert what == "kernel_module_version" and "no NVRM version line" in error


def test_unreadable_proc_version(fake_nvml: FakeNvml, tmp_path: Path) -> None:
    root = machine(tmp_path, None)
    Path(root.path("/proc/driver/nvidia/version")).mkdir()  # read() fails: a directory
    info = probe(fake_nvml, root)
    assert info.kernel_module_version is None
    assert [what for what, _ in info.query_errors] == ["kernel_module_version"]


def test_no_proc_version_file_is_no_error(fake_nvml: FakeNvml, tmp_path: Path) -> None:
    info = probe(fake_nvml, machine(tmp_path, None))
    assert info.kernel_module_version is None and info.query_errors == ()
