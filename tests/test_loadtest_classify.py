"""The load-test failure classifier, against real error texts from public issues.

tests/fixtures/loadtest_errors/*.txt: a header (source URL, OS, expected ids, optionally the
exit status the text implies) above `# ---`, then the text verbatim. See that folder's README.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import scenarios

from monitor import compat
from monitor.loadtest import classify as cl
from monitor.loadtest.classify import classify, describe_exit, signal_name, tail_lines
from monitor.model import (
    Distribution,
    DriverInfo,
    GpuInfo,
    HostInfo,
    LibraryFile,
    LibraryResolution,
    Link,
    RuntimeDll,
    Severity,
)
from monitor.record import replace
from monitor.rules import fixes

CORPUS = Path(__file__).parent / "fixtures" / "loadtest_errors"
IDS = set(cl.ORDER)


@dataclass(frozen=True)
class Sample:
    name: str
    source: str
    os: str
    expect: tuple[str, ...]
    exit_code: int
    text: str


def load(path: Path) -> Sample:
    header, sep, text = path.read_text(encoding="utf-8").partition("# ---\n")
    assert sep, f"{path.name}: no '# ---' line"
    meta: dict[str, str] = {}
    for line in header.splitlines():
        match = re.fullmatch(r"# (\w+):(.*)", line)
        assert match, f"{path.name}: bad header line {line!r}"
        meta[match.group(1)] = match.group(2).strip()
    return Sample(
        name=path.name,
        source=meta["source"],
        os=meta["os"],
        expect=tuple(x for x in meta["expect"].split(",") if x),
        exit_code=int(meta.get("exit", "1")),
        text=text,
    )


SAMPLES = [load(p) for p in sorted(CORPUS.glob("*.txt"))]


def sample(name: str) -> Sample:
    return next(s for s in SAMPLES if s.name == name)


def run(s: Sample, inventory=None, python="python", step=None, **kwargs):
    return classify(s.exit_code, False, s.text, step, inventory, python, s.os, **kwargs)


def ids(findings) -> list[str]:
    return list(dict.fromkeys(f.id for f in findings))


# --------------------------------------------------------------------------- the corpus


@pytest.mark.parametrize("s", SAMPLES, ids=[s.name for s in SAMPLES])
def test_corpus_text_gives_its_expected_findings(s: Sample):
    assert s.source.startswith("https://github.com/"), "every text needs its real source"
    assert s.os in ("linux", "windows")
    assert set(s.expect) <= IDS
    assert 1 <= len(s.text.splitlines()) <= 60
    findings = run(s)
    assert ids(findings) == list(s.expect)  # the ids, most specific first
    for f in findings:
        assert f.title and f.fix, f
        assert f.severity in (Severity.ERROR, Severity.INFO)


def test_corpus_covers_every_log_driven_id_on_both_systems():
    assert len(SAMPLES) >= 20
    assert {s.os for s in SAMPLES} == {"linux", "windows"}
    assert sum(s.os == "windows" for s in SAMPLES) >= 8
    covered = {i for s in SAMPLES for i in s.expect}
    assert covered == IDS - {cl.TIMEOUT, cl.UNKNOWN}
    assert any(not s.expect for s in SAMPLES), "benign noise must give nothing"


def test_every_rule_reports_a_known_id():
    assert {rule.id for rule in cl.RULES} <= IDS
    assert len(cl.ORDER) == len(IDS) == 14


# --------------------------------------------------------------------------- library names


def test_library_names_are_extracted():
    linux = run(sample("linux_cusolver_and_cudnn8_missing.txt"))
    assert [f.subject for f in linux if f.id == cl.LIBRARY] == [
        "libcusolver.so.11",
        "libcudnn.so.8",
    ]
    windows = run(sample("windows_cudart64_110_not_found.txt"))
    assert windows[0].subject == "cudart64_110.dll"
    assert windows[0].title == "TensorFlow could not load cudart64_110.dll"
    aborted = run(sample("linux_cublaslt12_abort.txt"))
    assert aborted[0].subject == "libcublasLt.so.12"
    assert ids(aborted) == [cl.LIBRARY], "the abort after the failed load is not a second cause"
    assert ("exit status", "SIGABRT (signal 6)") in aborted[0].evidence


def test_a_missing_dependency_is_named_beside_the_library_that_needs_it():
    (finding, _) = run(sample("linux_cusolver_needs_nvjitlink.txt"))
    assert finding.subject == "libcusolver.so.11"
    assert "libnvJitLink.so.12" in finding.title


def test_repeated_lines_give_one_finding_per_library():
    findings = run(sample("windows_cuda101_dlls_not_found.txt"))
    assert [f.subject for f in findings] == ["cudart64_101.dll", "cublas64_10.dll"]


def test_the_log_line_is_the_evidence():
    finding = run(sample("windows_cudart64_110_not_found.txt"))[0]
    log = dict(finding.evidence)["log line"]
    assert "Could not load dynamic library 'cudart64_110.dll'" in log


# --------------------------------------------------------------------------- inventory context


def _with_library(inventory, role: str, **changes):
    libraries = tuple(
        replace(res, **changes) if res.role == role else res for res in inventory.libraries
    )
    return replace(inventory, libraries=libraries)


def test_inventory_says_what_the_loader_finds_instead():
    inventory = _with_library(
        scenarios.linux_tf221_pip(),
        "cudnn",
        wanted="libcudnn.so.8",
        resolved=None,
        candidates=(
            LibraryFile("/opt/cudnn-7.6/lib64/libcudnn.so.7", via="ld.so.cache", version="7.6.5"),
        ),
    )
    findings = run(sample("linux_cusolver_and_cudnn8_missing.txt"), inventory, scenarios.LINUX_PY)
    cudnn = next(f for f in findings if f.subject == "libcudnn.so.8")
    assert "finds no libcudnn.so.8" in cudnn.detail
    assert "/opt/cudnn-7.6/lib64/libcudnn.so.7 (version 7.6.5, via ld.so.cache)" in cudnn.detail
    # TF 2.21 on Linux gets cuDNN from pip: the wheel for its CUDA major, and the extra.
    assert f"{scenarios.LINUX_PY} -m pip install nvidia-cudnn-cu12" in cudnn.fix
    assert any("install 'tensorflow[and-cuda]==2.21.0'" in step for step in cudnn.fix)


def test_a_wrong_copy_first_on_ld_library_path_is_named_for_removal():
    inventory = _with_library(
        scenarios.linux_tf221_pip(),
        "cudnn",
        resolved=LibraryFile(
            "/usr/local/cuda-11.8/lib64/libcudnn.so.9", via="LD_LIBRARY_PATH", version="9.0.0"
        ),
    )
    finding = run(sample("linux_cudnn_version_mismatch_xla.txt"), inventory, scenarios.LINUX_PY)[0]
    assert finding.title == "cuDNN 8.7.0 is loaded, but TensorFlow was built with cuDNN 8.9.4"
    assert "/usr/local/cuda-11.8/lib64/libcudnn.so.9 (version 9.0.0, via LD_LIBRARY_PATH)" in (
        finding.detail
    )
    assert finding.fix[0].startswith("Remove /usr/local/cuda-11.8/lib64 from LD_LIBRARY_PATH")
    assert finding.link is Link.CUDNN


def test_old_integer_cudnn_versions_are_read_as_dotted_ones():
    finding = run(sample("linux_cudnn_version_mismatch_tf1.txt"))[0]
    assert finding.title == "cuDNN 7.2.1 is loaded, but TensorFlow was built with cuDNN 7.0.4"


def test_windows_resolution_and_build_versions_appear():
    inventory = scenarios.windows_tf210()
    finding = run(sample("windows_cudart64_110_not_found.txt"), inventory, scenarios.WIN_PY)[0]
    assert "The loader would pick C:\\Program Files\\NVIDIA GPU Computing Toolkit" in finding.detail
    assert "Install CUDA 11.2 and cuDNN 8.1" in finding.fix[0]


def test_vc_runtime_missing_on_windows():
    missing = run(sample("windows_msvcp140_missing.txt"))[0]
    assert missing.subject == "msvcp140.dll or msvcp140_1.dll"
    assert missing.link is Link.RUNTIME
    assert cl.VC_REDIST in missing.fix

    inventory = scenarios.windows_tf210()
    inventory = replace(
        inventory,
        runtime=tuple(
            RuntimeDll(dll.name) if dll.name == "msvcp140_1.dll" else dll
            for dll in inventory.runtime
        ),
    )
    finding = run(sample("windows_dll_load_failed_pywrap.txt"), inventory, scenarios.WIN_PY)[0]
    assert finding.subject == "_pywrap_tensorflow_internal"
    assert "finds no msvcp140_1.dll" in finding.detail
    assert finding.link is Link.RUNTIME
    assert finding.fix[0] == cl.VC_REDIST


def test_driver_too_old_names_installed_and_needed_versions():
    inventory = scenarios.linux_tf221_pip()
    inventory = replace(
        inventory,
        driver=replace(inventory.driver, driver_version="470.82.01", cuda_driver_version="11.4"),
    )
    finding = run(
        sample("linux_driver_insufficient_for_runtime.txt"), inventory, scenarios.LINUX_PY
    )[0]
    floor = compat.toolkit_min_driver("12.5.1", "linux")
    assert floor is not None
    assert "Installed driver: 470.82.01 (supports CUDA up to 11.4)." in finding.detail
    assert f"needs driver {floor.min_driver} or newer" in finding.detail
    assert finding.fix[:-1] == fixes.driver_install_steps(inventory.host, floor.min_driver)
    assert finding.link is Link.DRIVER


def test_kernel_module_and_library_mismatch_asks_for_a_reboot():
    finding = run(sample("linux_kernel_module_mismatch.txt"))[0]
    assert "kernel module is 352.63.0, but the driver libraries are 361.93.2" in finding.detail
    assert finding.fix[0] == fixes.reboot_steps(HostInfo(os="linux"))[0]


def test_cuda_visible_devices_hiding_every_gpu_is_named():
    base = scenarios.linux_tf221_pip()

    def with_visible(value):
        env = replace(
            base.environment,
            variables=(*base.environment.variables, ("CUDA_VISIBLE_DEVICES", value)),
        )
        return run(sample("linux_no_device_cuinit.txt"), replace(base, environment=env))[0]

    for value in ("-1", "", "3", "none"):
        finding = with_visible(value)
        assert finding.title == f"CUDA_VISIBLE_DEVICES={value!r} hides every GPU"
        assert "NVIDIA GeForce RTX 4090" in finding.detail
    assert "hides" not in with_visible("0").title


def test_no_kernel_driver_points_at_installing_it():
    finding = run(sample("linux_no_kernel_driver.txt"))[0]
    assert finding.title == "No GPU: the NVIDIA kernel driver is not running"
    assert any("nvidia-smi" in step for step in finding.fix)


def test_out_of_memory_names_the_other_gpu_processes():
    finding = run(
        sample("linux_cuda_out_of_memory.txt"),
        scenarios.linux_tf221_pip(),
        gpu_processes=[(77, "Xorg", 312), (4242, "python", 10240)],
    )[0]
    assert "could not allocate 1.52G (1631518720 bytes)" in finding.detail
    assert "NVIDIA GeForce RTX 4090 has 24,564 MiB in all" in finding.detail
    listed = "python (pid 4242, 10,240 MiB); Xorg (pid 77, 312 MiB)"
    assert listed in finding.detail
    assert listed in finding.fix[0]


def test_mixed_tensorflow_installs_are_uninstalled_together():
    inventory = scenarios.with_python(
        scenarios.linux_tf221_pip(),
        distributions=(
            *scenarios.linux_tf221_pip().pythons[0].distributions,
            Distribution("tf_nightly", "2.22.0.dev20261101", scenarios.LINUX_SITE),
        ),
    )
    text = sample("windows_no_module_tensorflow_python.txt").text
    (finding,) = classify(1, False, text, "import", inventory, scenarios.LINUX_PY, "linux")
    assert "Installed: tensorflow 2.21.0, tf-nightly 2.22.0.dev20261101." in finding.detail
    assert finding.fix == (
        f"{scenarios.LINUX_PY} -m pip uninstall -y tensorflow tf-nightly",
        f"{scenarios.LINUX_PY} -m pip install --no-cache-dir 'tensorflow[and-cuda]==2.21.0'",
    )


def test_undefined_symbol_in_tensorflows_own_module_is_a_broken_install():
    finding = run(sample("linux_undefined_symbol_pywrap.txt"))[0]
    assert finding.id == cl.IMPORT
    assert "_pywrap_tensorflow_internal.so" in finding.title


# --------------------------------------------------------------------------- exit status


@pytest.mark.parametrize(
    ("code", "os_name", "name"),
    [
        (-11, "linux", "SIGSEGV"),
        (-6, "linux", "SIGABRT"),
        (-4, "linux", "SIGILL"),
        (-9, "linux", "SIGKILL"),
        (139, "linux", "SIGSEGV"),
        (134, "linux", "SIGABRT"),
        (132, "linux", "SIGILL"),
        (3221225477, "windows", "STATUS_ACCESS_VIOLATION"),
        (-1073741819, "windows", "STATUS_ACCESS_VIOLATION"),
        (3221225501, "windows", "STATUS_ILLEGAL_INSTRUCTION"),
        (139, "windows", None),
        (0, "linux", None),
        (1, "linux", None),
        (None, "linux", None),
    ],
)
def test_signal_names(code, os_name, name):
    assert signal_name(code, os_name) == name


def test_exit_descriptions():
    assert describe_exit(-11) == "SIGSEGV (signal 11)"
    assert describe_exit(139) == "exit status 139 (SIGSEGV)"
    assert describe_exit(3221225477, "windows") == "STATUS_ACCESS_VIOLATION (0xC0000005)"
    assert describe_exit(1) == "exit status 1"
    assert describe_exit(None) == "no exit status"


@pytest.mark.parametrize(
    ("code", "os_name", "expected", "words"),
    [
        (-11, "linux", cl.CRASHED, "SIGSEGV"),
        (-6, "linux", cl.CRASHED, "SIGABRT"),
        (139, "linux", cl.CRASHED, "SIGSEGV"),
        (3221225477, "windows", cl.CRASHED, "STATUS_ACCESS_VIOLATION"),
        (-4, "linux", cl.ILLEGAL, "SIGILL"),
        (132, "linux", cl.ILLEGAL, "SIGILL"),
        (3221225501, "windows", cl.ILLEGAL, "STATUS_ILLEGAL_INSTRUCTION"),
    ],
)
def test_a_death_by_signal_names_the_signal_and_the_step(code, os_name, expected, words):
    (finding,) = classify(code, False, "", "matmul", None, "python", os_name)
    assert finding.id == expected
    assert words in finding.detail
    assert ("last step", "matmul") in finding.evidence
    if expected == cl.CRASHED:
        assert "in step 'matmul' (a matrix multiplication on the GPU)" in finding.title


def test_a_kill_by_the_os_points_at_the_oom_killer():
    (finding,) = classify(-9, False, "", "train", None, "python", "linux")
    assert "out-of-memory killer" in finding.detail
    assert "journalctl" in finding.fix[0]


# --------------------------------------------------------------------------- timeout


def test_timeout_names_the_step_and_is_not_also_a_crash():
    (finding,) = classify(-9, True, "", "matmul", None, "python", "linux")
    assert finding.id == cl.TIMEOUT
    assert finding.title == (
        "The GPU load test hung in step 'matmul' (a matrix multiplication on the GPU)"
    )
    assert ("exit status", "timed out") in finding.evidence
    assert finding.link is Link.GPU


def test_timeout_on_a_gpu_newer_than_the_build_explains_ptx_compilation():
    inventory = scenarios.linux_tf221_pip()
    gpu = GpuInfo(index=0, name="NVIDIA GeForce RTX 5090", compute_capability="12.0")
    inventory = replace(inventory, driver=replace(inventory.driver, gpus=(gpu,)))
    (finding,) = classify(None, True, "", "matmul", inventory, scenarios.LINUX_PY, "linux")
    assert "compiles them from PTX on first use" in finding.detail
    (plain,) = classify(
        None, True, "", "matmul", scenarios.linux_tf221_pip(), scenarios.LINUX_PY, "linux"
    )
    assert "PTX" not in plain.detail  # sm_89 kernels ship for the RTX 4090


def test_timeout_during_import():
    (finding,) = classify(None, True, "", "import", None, "/usr/bin/python3", "linux")
    assert finding.link is Link.TENSORFLOW
    assert '/usr/bin/python3 -c "import tensorflow"' in finding.fix[0]


# --------------------------------------------------------------------------- unknown and clean


def test_unknown_failure_keeps_the_last_lines_verbatim():
    lines = [f"line {i:02d}\twith  spacing " for i in range(30)]
    stderr = "\n".join(lines) + "\nValueError: odd   thing\n\n"
    (finding,) = classify(1, False, stderr, "train", None, "python", "linux")
    assert finding.id == cl.UNKNOWN
    kept = "\n".join([*lines[11:], "ValueError: odd   thing"])
    assert finding.detail.endswith("\n" + kept)
    assert "line 10" not in finding.detail
    assert "exit status 1" in finding.title


def test_a_huge_line_is_cut_and_the_real_error_after_it_still_found():
    junk = "a.so." * 400_000  # 2 MB of what the library patterns would backtrack on
    stderr = (
        f"{junk}\nImportError: libcudnn.so.8: cannot open shared object file: "
        "No such file or directory\n"
    )
    findings = classify(1, False, stderr, "import", None, "python", "linux")
    assert [f.id for f in findings][:1] == [cl.LIBRARY]
    assert "libcudnn.so.8" in findings[0].title


def test_unknown_failure_without_output():
    (finding,) = classify(2, False, "", None, None, "python", "linux")
    assert "wrote nothing" in finding.detail
    assert "before it reported any step" in finding.detail


def test_clean_exit_gives_nothing():
    assert classify(0, False, "", "libraries", None, "python", "linux") == ()
    healthy = (
        "I0000 00:00:1763900000.000000   12345 gpu_device.cc:2019] Created device "
        "/job:localhost/replica:0/task:0/device:GPU:0 with 22456 MB memory:  -> device: 0, "
        "name: NVIDIA GeForce RTX 4090, pci bus id: 0000:01:00.0, compute capability: 8.9\n"
    )
    assert classify(0, False, healthy, "libraries", None, "python", "linux") == ()


def test_nothing_unknown_when_a_cause_matched():
    findings = run(sample("linux_cannot_dlopen_only.txt"))
    assert cl.UNKNOWN not in ids(findings)


# --------------------------------------------------------------------------- severities


def test_gpu_libs_skipped_is_info_beside_the_named_library_and_error_alone():
    beside = run(sample("linux_cusolver_needs_nvjitlink.txt"))
    assert [f.severity for f in beside] == [Severity.ERROR, Severity.INFO]
    (alone,) = run(sample("linux_cannot_dlopen_only.txt"))
    assert alone.severity is Severity.ERROR


def test_gpu_libs_skipped_lists_what_the_loader_check_misses():
    inventory = _with_library(scenarios.linux_tf221_pip(), "cudnn", resolved=None)
    (finding,) = run(sample("linux_cannot_dlopen_only.txt"), inventory, scenarios.LINUX_PY)
    assert "finds none of: libcudnn.so.9" in finding.detail
    assert f"{scenarios.LINUX_PY} -m pip install nvidia-cudnn-cu12" in finding.fix


# --------------------------------------------------------------------------- today's TensorFlow

# Captured from tensorflow 2.21.0 (this project's integration-test venv) on a machine without an
# NVIDIA driver, with TF_CPP_VMODULE=dso_loader=1 so the failed load is logged.
TF221_NO_DRIVER = """\
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1795448590.353250   11670 port.cc:153] oneDNN custom operations are on. You may see slightly different numerical results due to floating-point round-off errors from different computation orders. To turn them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.
I0000 00:00:1795448590.487155   11670 dso_loader.cc:144] Could not load dynamic library 'libcuda.so.1'; dlerror: libcuda.so.1: cannot open shared object file: No such file or directory
E0000 00:00:1795448590.487227   11670 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)
"""  # noqa: E501


def test_tf221_without_a_driver():
    inventory = scenarios.linux_tf221_pip()
    inventory = replace(inventory, driver=DriverInfo(error="NVML Shared Library Not Found"))
    (finding,) = classify(0, False, TF221_NO_DRIVER, "gpus", inventory, scenarios.LINUX_PY, "linux")
    assert finding.id == cl.LIBRARY and finding.subject == "libcuda.so.1"
    assert finding.link is Link.DRIVER
    assert finding.fix == fixes.driver_install_steps(inventory.host)
    # Without the VLOG line only the cuInit failure is left: no usable GPU.
    without = "\n".join(line for line in TF221_NO_DRIVER.splitlines() if "dso_loader" not in line)
    (finding,) = classify(0, False, without, "gpus", inventory, scenarios.LINUX_PY, "linux")
    assert finding.id == cl.NO_DEVICE
    assert finding.title == "No GPU: the NVIDIA kernel driver is not running"
    assert "NVML Shared Library Not Found" in finding.detail


def test_resolution_matching_ignores_case_for_windows_dlls():
    inventory = scenarios.windows_tf210()
    resolution = LibraryResolution(
        role="cudart", wanted="CUDART64_110.DLL", python=scenarios.WIN_PY
    )
    inventory = replace(inventory, libraries=(resolution,))
    finding = run(sample("windows_cudart64_110_not_found.txt"), inventory, scenarios.WIN_PY)[0]
    assert "finds no cudart64_110.dll" in finding.detail


# --------------------------------------------------------------------------- helpers


def test_tail_lines():
    assert tail_lines("a\n  b \n\tc\n\n\n", 2) == "  b \n\tc"
    assert tail_lines("", 20) == ""
    assert tail_lines("x\r\ny\r\n") == "x\ny"


def test_ptxas_fix_points_xla_at_the_nvcc_wheel_or_installs_it():
    text = sample("linux_libdevice_directory_missing.txt").text
    inventory = scenarios.linux_tf221_pip()
    (without,) = classify(1, False, text, "train", inventory, scenarios.LINUX_PY, "linux")
    assert without.fix == (f"{scenarios.LINUX_PY} -m pip install nvidia-cuda-nvcc-cu12",)
    assert "It looked in: ./cuda_sdk_lib, /usr/local/cuda-11.2, /usr/local/cuda, .." in (
        without.detail
    )
    nvcc = Distribution("nvidia-cuda-nvcc-cu12", "12.9.86", scenarios.LINUX_SITE)
    inventory = scenarios.with_python(
        inventory, distributions=(*inventory.pythons[0].distributions, nvcc)
    )
    (with_wheel,) = classify(1, False, text, "train", inventory, scenarios.LINUX_PY, "linux")
    assert with_wheel.fix == (
        f"export XLA_FLAGS=--xla_gpu_cuda_data_dir={scenarios.LINUX_SITE}/nvidia/cuda_nvcc",
    )


def test_windows_ptx_notice_of_a_working_setup_is_not_a_finding():
    # From https://github.com/tensorflow/tensorflow/issues/52123: printed by working Windows
    # GPU setups of TF 2.x (XLA relies on the driver there).
    notice = (
        "2021-09-24 16:22:49.534717: W tensorflow/stream_executor/gpu/redzone_allocator.cc:312] "
        "Internal: Invoking GPU asm compilation is supported on Cuda non-Windows platforms only\n"
        "Relying on driver to perform ptx compilation. This message will be only logged once.\n"
    )
    assert classify(0, False, notice, "matmul", None, "python", "windows") == ()


def test_a_runaway_log_is_read_at_its_start_and_its_end():
    noise = "I tensorflow/core/common_runtime/gpu/gpu_device.cc:971] 0:   N\n" * 30_000
    start = sample("linux_cannot_dlopen_only.txt").text
    end = sample("linux_cuda_out_of_memory.txt").text
    findings = classify(1, False, start + noise + end, "matmul", None, "python", "linux")
    assert ids(findings) == [cl.OOM, cl.LIBS_SKIPPED]
