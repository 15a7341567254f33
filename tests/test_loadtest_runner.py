"""The load test runner against fake "pythons": small scripts that act like child.py.

The runner starts `[python, -B, child.py, ...]`; a fake is an executable script passed as
`python`, so it gets child.py's path as an argument and ignores it. No TensorFlow here (the
real child is exercised in tests/integration/test_loadtest_tf.py); NVML is the fake library
of tests/fake_nvml, which a fake child rewrites to put its own PID on the GPU.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import sys
import textwrap
import time
import types
from pathlib import Path

import pytest
from fake_nvml import FakeGpu, FakeNvml, fake_nvml_fixture  # noqa: F401  (fixture fake_nvml)

from monitor.loadtest import runner
from monitor.loadtest.gpu_sampler import GpuSampler, summarize, thin
from monitor.loadtest.runner import run_load_test
from monitor.model import (
    DriverInfo,
    GpuInfo,
    GpuSample,
    HostInfo,
    Inventory,
    LibraryFile,
    LibraryResolution,
    LoadTestResult,
    Report,
    Severity,
    from_jsonable,
    to_jsonable,
)
from monitor.record import replace

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="fake pythons are POSIX scripts")

CHILD = Path(runner.__file__).with_name("child.py")
UUID = "GPU-3a1f0c1e-7b52-4c55-9d6e-1b8c2f7d3e01"

# The lines a real CPU-only run prints (shortened), as child.py writes them.
CPU_RUN = [
    {"event": "start", "step": "import"},
    {"step": "import", "ok": True, "seconds": 2.5, "version": "2.21.0", "detail": "TF"},
    {"event": "start", "step": "build_info"},
    {
        "step": "build_info",
        "ok": True,
        "seconds": 0.001,
        "tf_version": "2.21.0",
        "built_with_cuda": True,
        "build_info": {"cuda_version": "12.5.1", "cudnn_version": "9"},
    },
    {"event": "start", "step": "gpus"},
    {
        "step": "gpus",
        "ok": True,
        "seconds": 0.002,
        "physical": 0,
        "logical": 0,
        "devices": [],
        "cuda_visible_devices": None,
        "reason": "TensorFlow found no GPU",
    },
    {"event": "start", "step": "cpu_matmul"},
    {
        "step": "cpu_matmul",
        "ok": True,
        "seconds": 1.1,
        "n": 1024,
        "gflops": 123.4,
        "on_device": True,
        "placement": "/job:localhost/replica:0/task:0/device:CPU:0",
    },
    {"event": "start", "step": "train"},
    {"step": "train", "ok": True, "seconds": 0.3, "loss": 2.3},
    {"event": "start", "step": "libraries"},
    {"step": "libraries", "ok": True, "seconds": 0.01, "libraries": ["/x/libtensorflow_cc.so.2"]},
    {"event": "done", "gpu_used": False, "ok": True},
]


def gpu_run(libraries: list[str], gflops: float = 25000.0, matmul_wait: float = 1.2) -> str:
    """Python source for a GPU run; during the matmul the fake NVML shows this PID busy."""
    events_before = [
        {"event": "start", "step": "import"},
        {"step": "import", "ok": True, "seconds": 3.0, "version": "2.21.0"},
        {"event": "start", "step": "build_info"},
        {"step": "build_info", "ok": True, "seconds": 0.0, "built_with_cuda": True},
        {"event": "start", "step": "gpus"},
        {
            "step": "gpus",
            "ok": True,
            "seconds": 0.5,
            "physical": 1,
            "logical": 1,
            "devices": [{"name": "/physical_device:GPU:0", "device_name": "NVIDIA RTX 3090"}],
        },
        {"event": "start", "step": "matmul"},
    ]
    events_after = [
        {
            "step": "matmul",
            "ok": True,
            "seconds": 1.2,
            "n": 4096,
            "gflops": gflops,
            "on_device": True,
            "matches": True,
            "placement": "/job:localhost/replica:0/task:0/device:GPU:0",
        },
        {"event": "start", "step": "train"},
        {"step": "train", "ok": True, "seconds": 0.4},
        {"event": "start", "step": "memory"},
        {"step": "memory", "ok": True, "seconds": 0.0, "peak_mib": 320.0},
        {"event": "start", "step": "libraries"},
        {"step": "libraries", "ok": True, "seconds": 0.0, "libraries": libraries},
        {"event": "done", "gpu_used": True, "ok": True},
    ]
    return f"""
        import json, os, time
        def emit(o):
            print(json.dumps(o), flush=True)
        emit({{"event": "child", "pid": os.getpid()}})
        for e in {events_before!r}:
            emit(e)
        import sys
        sys.stderr.write("I0000 gpu_device.cc] Created device /job:localhost/replica:0/task:0/"
                         "device:GPU:0 with 22000 MB memory: -> device: 0, name: NVIDIA RTX "
                         "3090, pci bus id: 0000:01:00.0, compute capability: 8.6\\n")
        config = os.environ["FAKE_NVML_CONFIG"]
        text = open(config).read()
        text += "gpu.0.processes=%d:300\\n" % os.getpid()
        text += "gpu.0.utilization.gpu=97\\ngpu.0.memory_used_mib=800\\n"
        with open(config + ".tmp", "w") as f:
            f.write(text)
        os.replace(config + ".tmp", config)
        time.sleep({matmul_wait})
        for e in {events_after!r}:
            emit(e)
    """


def fake_python(tmp_path: Path, body: str, name: str = "python") -> str:
    """An executable script standing in for the watched interpreter."""
    path = tmp_path / name
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return str(path)


def printing(events: list[dict], extra: str = "") -> str:
    return f"""
        import json, os, sys
        print(json.dumps({{"event": "child", "pid": os.getpid()}}), flush=True)
        for event in {events!r}:
            print(json.dumps(event), flush=True)
        {extra}
    """


class NoNvml(GpuSampler):
    """A sampler for a machine without NVML (no driver)."""

    def __init__(self) -> None:
        super().__init__(sample=lambda: (GpuSample(index=-1, error="NVML not found"),))


def gone(pid: int) -> bool:
    """Not running: no such process, or a zombie some other parent has yet to reap."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def wait_gone(pid: int, seconds: float = 5.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if gone(pid):
            return True
        time.sleep(0.05)
    return gone(pid)


def our_children() -> list[int]:
    """This process's child processes (zombies included), from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent == os.getpid():
            found.append(int(entry))
    return found


def linux_inventory(**kwargs) -> Inventory:
    return Inventory(host=HostInfo(os="linux"), **kwargs)


# --------------------------------------------------------------------------- the child script


def test_child_is_standalone():
    """child.py runs in the watched env: stdlib + TensorFlow only, never `monitor`."""
    tree = ast.parse(CHILD.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert "monitor" not in imported
    assert imported <= set(sys.stdlib_module_names) | {"tensorflow", "numpy"}
    # Python 3.5 syntax: the oldest TF 2.x interpreters run it.
    newer = (ast.JoinedStr, ast.NamedExpr, ast.AnnAssign)
    assert not [type(n).__name__ for n in ast.walk(tree) if isinstance(n, newer)]


def test_real_child_without_tensorflow_says_import_failed():
    """The real child.py, run by an interpreter with no TensorFlow: it reports, not crashes."""
    result = run_load_test(sys.executable, timeout=60, sampler=NoNvml())
    assert result.outcome == "failed"
    assert result.last_step == "import"
    assert result.exit_code == 1
    step = result.steps[0]
    assert (step.name, step.ok) == ("import", False)
    assert "No module named 'tensorflow'" in step.detail
    assert "ModuleNotFoundError" in result.stderr_tail
    assert any(f.severity is Severity.ERROR for f in result.findings)


# --------------------------------------------------------------------------- outcomes


def test_cpu_only_run(tmp_path):
    python = fake_python(tmp_path, printing(CPU_RUN))
    result = run_load_test(python, timeout=30, sampler=NoNvml())
    assert result.outcome == "cpu-only"
    assert not result.ok
    assert result.exit_code == 0 and result.signal is None
    assert result.cpu_gflops == 123.4 and result.gflops is None
    assert result.import_seconds == 2.5
    assert result.device == "CPU"
    assert result.tf_version == "2.21.0" and result.built_with_cuda is True
    assert [s.name for s in result.steps] == [
        "import",
        "build_info",
        "gpus",
        "cpu_matmul",
        "train",
        "libraries",
    ]
    assert result.loaded_libraries == ("/x/libtensorflow_cc.so.2",)
    assert result.child_seen_on_gpu is None and result.nvml_error == "NVML not found"
    fallback = [f for f in result.findings if f.id == "loadtest-cpu-fallback"]
    assert len(fallback) == 1
    # No GPU anywhere: a warning, and it says TensorFlow itself works.
    assert fallback[0].severity is Severity.WARNING
    assert "123.4 GFLOP/s" in fallback[0].detail
    assert fallback[0].subject == python


def test_no_gpu_and_its_named_cause_are_one_finding(tmp_path):
    stderr = (
        "import sys; sys.stderr.write('E cuda_driver.cc:466] failed call to cuInit: "
        "CUDA_ERROR_NO_DEVICE\\nI cuda_diagnostics.cc:86] kernel driver does not appear to be "
        "running on this host (vm): /proc/driver/nvidia/version does not exist\\n')"
    )
    python = fake_python(tmp_path, printing(CPU_RUN, stderr))
    result = run_load_test(python, timeout=30, sampler=NoNvml())
    ids = [f.id for f in result.findings]
    assert "loadtest-cpu-fallback" not in ids
    (cause,) = [f for f in result.findings if f.id == "loadtest-no-device"]
    assert cause.severity is Severity.ERROR
    assert cause.detail.endswith("the matmul checked out at 123.4 GFLOP/s.")


def test_cpu_only_with_a_gpu_on_the_machine_is_an_error(tmp_path, fake_nvml):
    fake_nvml.set(gpus=[FakeGpu(uuid=UUID)])
    stderr = (
        "import sys; sys.stderr.write('E0000 cuda_platform.cc:52] failed call to cuInit: "
        "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)\\n')"
    )
    python = fake_python(tmp_path, printing(CPU_RUN, stderr))
    result = run_load_test(
        python, timeout=30, nvml_library=str(fake_nvml.library), env=fake_nvml.env()
    )
    assert result.outcome == "cpu-only"
    assert result.nvml_error is None
    assert result.child_seen_on_gpu is False
    (fallback,) = [f for f in result.findings if f.id == "loadtest-cpu-fallback"]
    assert fallback.severity is Severity.ERROR
    assert "libcuda.so.1" in fallback.detail and "(303)" in fallback.detail
    assert UUID in dict(fallback.evidence)["nvml_gpus"]
    assert fake_nvml.init_count() == 0  # NVML shut down as often as it was initialised


def test_a_failing_gpu_setup_still_falls_back_to_the_cpu(tmp_path):
    events = [dict(e) for e in CPU_RUN]
    events[5] = {
        "step": "gpus",
        "ok": False,
        "seconds": 0.1,
        "detail": "RuntimeError: cudaGetDevice() failed. Status: CUDA driver version is "
        "insufficient for CUDA runtime version",
    }
    python = fake_python(tmp_path, printing(events))
    result = run_load_test(python, timeout=30, sampler=NoNvml())
    assert result.outcome == "cpu-only"
    (fallback,) = [f for f in result.findings if f.id == "loadtest-cpu-fallback"]
    assert "cudaGetDevice() failed" in fallback.detail


def test_hidden_gpus_are_a_warning_naming_cuda_visible_devices(tmp_path, fake_nvml):
    events = [dict(e) for e in CPU_RUN]
    events[5] = {**events[5], "cuda_visible_devices": "-1", "reason": "hidden"}
    python = fake_python(tmp_path, printing(events))
    result = run_load_test(
        python, timeout=30, nvml_library=str(fake_nvml.library), env=fake_nvml.env()
    )
    (fallback,) = [f for f in result.findings if f.id == "loadtest-cpu-fallback"]
    assert fallback.severity is Severity.WARNING
    assert "CUDA_VISIBLE_DEVICES" in fallback.fix[0]


def test_gpu_run_with_nvml_samples(tmp_path, fake_nvml):
    fake_nvml.set(gpus=[FakeGpu(uuid=UUID, pci_bus_id="00000000:01:00.0")])
    python = fake_python(tmp_path, gpu_run(["/x/libcudart.so.12"]))
    result = run_load_test(
        python,
        timeout=30,
        nvml_library=str(fake_nvml.library),
        env=fake_nvml.env(),
        sample_interval=0.1,
    )
    assert result.outcome == "gpu" and result.ok, (result.detail, result.stderr_tail)
    assert result.gflops == 25000.0 and result.cpu_gflops is None
    assert result.peak_memory_mib == 320.0
    assert result.device == "NVIDIA RTX 3090"
    assert result.device_placement.endswith("GPU:0")
    assert result.child_seen_on_gpu is True
    assert result.max_utilization_gpu == 97
    assert result.max_memory_used_mib == 800
    assert result.gpu_uuid == UUID
    assert len(result.gpu_samples) >= 3
    problems = {f.id for f in result.findings if f.severity is not Severity.INFO}
    assert problems <= {"loadtest-classify-failed"}  # (until classify.py exists)
    assert fake_nvml.init_count() == 0


def test_throughput_drop_against_a_good_previous_run(tmp_path, fake_nvml):
    fake_nvml.set(
        gpus=[
            FakeGpu(
                uuid=UUID,
                clocks={"graphics": 900, "sm": 900, "mem": 9751, "video": 900},
                throttle_reasons=0x40 | 0x1,
            )
        ]
    )
    python = fake_python(tmp_path, gpu_run([], gflops=10000.0, matmul_wait=0.5))
    previous = LoadTestResult(
        python=python,
        ok=True,
        outcome="gpu",
        gflops=25000.0,
        gpu_uuid=UUID,
        matmul_size=4096,
        started_at="2026-01-01T00:00:00+00:00",
    )
    result = run_load_test(
        python,
        timeout=30,
        nvml_library=str(fake_nvml.library),
        env=fake_nvml.env(),
        previous=previous,
        sample_interval=0.1,
    )
    assert result.ok
    (drop,) = [f for f in result.findings if f.id == "loadtest-throughput-drop"]
    assert drop.severity is Severity.WARNING
    assert "60%" in drop.title
    evidence = dict(drop.evidence)
    assert evidence["sm_clock_mhz"] == "900" and evidence["max_sm_clock_mhz"] == "2100"
    assert evidence["throttle_reasons"] == "hw_thermal_slowdown"
    # Another GPU, or a bad previous run: nothing to compare.
    for other in (
        replace(previous, gpu_uuid="GPU-other"),
        replace(previous, ok=False),
    ):
        again = run_load_test(
            python,
            timeout=30,
            nvml_library=str(fake_nvml.library),
            env=fake_nvml.env(),
            previous=other,
        )
        assert "loadtest-throughput-drop" not in {f.id for f in again.findings}


def test_loaded_library_differs_from_the_prediction(tmp_path, fake_nvml):
    predicted = tmp_path / "pip" / "libcudart.so.12"
    elsewhere = tmp_path / "usr" / "libcudart.so.12"
    same_cudnn = tmp_path / "pip" / "libcudnn.so.9.3.0"
    for path in (predicted, elsewhere, same_cudnn):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\x7fELF")
    link = tmp_path / "pip" / "libcudnn.so.9"
    link.symlink_to(same_cudnn.name)
    python = fake_python(tmp_path, gpu_run([str(elsewhere), str(same_cudnn)], matmul_wait=0.1))
    inventory = linux_inventory(
        libraries=(
            LibraryResolution(
                role="cudart",
                wanted="libcudart.so.12",
                python=python,
                resolved=LibraryFile(path=str(predicted), via="RUNPATH"),
            ),
            LibraryResolution(
                role="cudnn",
                wanted="libcudnn.so.9",
                python=python,
                resolved=LibraryFile(path=str(link), via="RUNPATH"),
            ),
            LibraryResolution(  # another interpreter's: not this run's business
                role="cudart",
                wanted="libcudart.so.12",
                python="/other/python",
                resolved=LibraryFile(path="/nowhere/libcudart.so.12"),
            ),
        )
    )
    result = run_load_test(
        python,
        inventory=inventory,
        timeout=30,
        nvml_library=str(fake_nvml.library),
        env=fake_nvml.env(),
    )
    (differs,) = [f for f in result.findings if f.id == "loadtest-loaded-differs"]
    evidence = dict(differs.evidence)
    assert evidence["predicted"] == str(predicted)
    assert evidence["loaded"] == str(elsewhere)
    assert differs.severity is Severity.WARNING


def test_hang_is_killed_with_its_whole_process_group(tmp_path):
    marker = tmp_path / "grandchild.pid"
    python = fake_python(
        tmp_path,
        f"""
        import json, os, signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # only SIGKILL will do
        print(json.dumps({{"event": "child", "pid": os.getpid()}}), flush=True)
        print(json.dumps({{"event": "start", "step": "import"}}), flush=True)
        print(json.dumps({{"step": "import", "ok": True, "seconds": 1.0}}), flush=True)
        grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        open({str(marker)!r}, "w").write(str(grandchild.pid))
        print(json.dumps({{"event": "start", "step": "matmul"}}), flush=True)
        time.sleep(600)
        """,
    )
    started = time.monotonic()
    result = run_load_test(python, timeout=1.5, term_grace=0.5, sampler=NoNvml())
    elapsed = time.monotonic() - started
    assert elapsed < 10
    assert result.outcome == "timeout" and result.timed_out
    assert result.last_step == "matmul"
    assert result.signal == "SIGKILL"
    assert our_children() == []  # the child is reaped: not even a zombie is left
    grandchild = int(marker.read_text())
    assert wait_gone(grandchild), "the grandchild outlived the timeout"
    (failed,) = [f for f in result.findings if f.severity is Severity.ERROR][:1]
    assert failed.id.startswith("loadtest-")


def test_no_zombie_is_left(tmp_path):
    python = fake_python(tmp_path, printing(CPU_RUN))
    result = run_load_test(python, timeout=30, sampler=NoNvml())
    assert result.outcome == "cpu-only"
    assert our_children() == []  # reaped: no child process left, not even a zombie


def test_segfault_mid_way_is_a_crash_naming_the_step(tmp_path):
    python = fake_python(
        tmp_path,
        printing(
            [*CPU_RUN[:5], {"event": "start", "step": "gpus"}],
            "import signal; os.kill(os.getpid(), signal.SIGSEGV)",
        ),
    )
    result = run_load_test(python, timeout=30, sampler=NoNvml())
    assert result.outcome == "crashed" and not result.ok
    assert result.exit_code == -signal.SIGSEGV
    assert result.signal == "SIGSEGV"
    assert result.last_step == "gpus"
    assert [s.name for s in result.steps] == ["import", "build_info"]
    assert any(f.severity is Severity.ERROR for f in result.findings)


def test_garbage_lines_are_ignored(tmp_path):
    lines = [json.dumps(e) for e in CPU_RUN]
    python = fake_python(
        tmp_path,
        f"""
        import sys, time
        out = sys.stdout
        out.write("Welcome to sitecustomize!\\n")
        out.write("[1, 2, 3]\\n42\\nnull\\n{{not json\\n\\n")
        out.write('{{"unrelated": "object"}}\\n')
        out.write("\\x00\\xff binary-ish\\n")
        out.write("x" * 300000 + "\\n")
        out.flush()
        for line in {lines!r}:
            half = len(line) // 2
            out.write(line[:half]); out.flush(); time.sleep(0.01)  # split across reads
            out.write(line[half:] + "\\n"); out.flush()
            out.write("noise between the lines\\n")
        """,
    )
    result = run_load_test(python, timeout=30, sampler=NoNvml())
    assert result.outcome == "cpu-only"
    assert len(result.steps) == 6
    assert result.cpu_gflops == 123.4


def test_nonzero_exit_passes_stderr_and_last_step_to_classify(tmp_path, monkeypatch):
    seen = {}

    def classify(
        exit_code,
        timed_out,
        stderr,
        last_step,
        inventory,
        python,
        os_name,
        gpu_processes=(),
        built_for_cuda=None,
    ):
        seen.update(locals())
        return ()

    module = types.ModuleType("monitor.loadtest.classify")
    module.classify = classify
    monkeypatch.setitem(sys.modules, "monitor.loadtest.classify", module)
    python = fake_python(tmp_path, TF_IMPORT_ERROR)
    inventory = linux_inventory()
    result = run_load_test(python, inventory=inventory, timeout=30, sampler=NoNvml())
    assert result.outcome == "failed"
    assert seen["exit_code"] == 1 and seen["timed_out"] is False
    assert "libcudnn.so.9: cannot open shared object file" in seen["stderr"]
    assert seen["last_step"] == "import"
    assert seen["inventory"] is inventory
    assert (seen["python"], seen["os_name"]) == (python, "linux")
    # classify said nothing: the runner still names the failure.
    (failed,) = [f for f in result.findings if f.id == "loadtest-failed"]
    assert "import" in failed.title and "libcudnn.so.9" in failed.detail


TF_IMPORT_ERROR = """
import json, os, sys
print(json.dumps({"event": "child", "pid": os.getpid()}), flush=True)
print(json.dumps({"event": "start", "step": "import"}), flush=True)
sys.stderr.write('''Traceback (most recent call last):
  File "/venv/lib/python3.11/site-packages/tensorflow/python/pywrap_tensorflow.py", line 73
from tensorflow.python._pywrap_tensorflow_internal import *
ImportError: libcudnn.so.9: cannot open shared object file: No such file or directory

Failed to load the native TensorFlow runtime.
''')
print(json.dumps({"step": "import", "ok": False, "seconds": 0.4,
                  "detail": "ImportError: libcudnn.so.9: cannot open shared object file"}))
print(json.dumps({"event": "done", "gpu_used": False, "ok": False}), flush=True)
sys.exit(1)
"""


def test_nonzero_exit_gets_a_classify_finding(tmp_path):
    pytest.importorskip("monitor.loadtest.classify")
    python = fake_python(tmp_path, TF_IMPORT_ERROR)
    result = run_load_test(python, inventory=linux_inventory(), timeout=30, sampler=NoNvml())
    assert result.outcome == "failed"
    ids = {f.id for f in result.findings if f.severity is Severity.ERROR}
    assert ids and all(i.startswith("loadtest-") for i in ids)
    assert "loadtest-classify-failed" not in {f.id for f in result.findings}


def test_a_classifier_bug_is_a_warning_not_a_crash(tmp_path, monkeypatch):
    module = types.ModuleType("monitor.loadtest.classify")

    def classify(*args, **kwargs):
        raise KeyError("boom")

    module.classify = classify
    monkeypatch.setitem(sys.modules, "monitor.loadtest.classify", module)
    python = fake_python(tmp_path, printing(CPU_RUN))
    result = run_load_test(python, timeout=30, sampler=NoNvml())
    assert result.outcome == "cpu-only"
    (bug,) = [f for f in result.findings if f.id == "loadtest-classify-failed"]
    assert bug.severity is Severity.WARNING and "KeyError" in bug.detail


def test_missing_interpreter(tmp_path):
    result = run_load_test(str(tmp_path / "no-such-python"), timeout=5, sampler=NoNvml())
    assert result.outcome == "failed"
    assert result.exit_code is None and result.last_step is None
    assert any(f.severity is Severity.ERROR for f in result.findings)
    assert "could not start" in result.detail


def test_stderr_is_bounded(tmp_path):
    python = fake_python(
        tmp_path,
        printing(CPU_RUN, "sys.stderr.write('FIRST\\n' + 'e' * 3_000_000 + '\\nLAST\\n')"),
    )
    result = run_load_test(python, timeout=30, sampler=NoNvml())
    assert result.outcome == "cpu-only"
    assert len(result.stderr_tail) <= runner.STDERR_TAIL
    assert result.stderr_tail.rstrip().endswith("LAST")


def test_exit_with_a_grandchild_holding_the_pipes_does_not_hang(tmp_path):
    marker = tmp_path / "grandchild.pid"
    python = fake_python(
        tmp_path,
        printing(
            CPU_RUN,
            f"""import subprocess, time
        g = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        open({str(marker)!r}, "w").write(str(g.pid))""",
        ),
    )
    started = time.monotonic()
    result = run_load_test(python, timeout=60, sampler=NoNvml())
    assert time.monotonic() - started < 10
    assert result.outcome == "cpu-only"
    assert wait_gone(int(marker.read_text()))


# --------------------------------------------------------------------------- pieces


def test_result_round_trips_through_json(tmp_path):
    python = fake_python(tmp_path, printing(CPU_RUN))
    result = run_load_test(python, timeout=30, sampler=NoNvml())
    report = Report(inventory=linux_inventory(), load_tests=(result,))
    again = from_jsonable(Report, json.loads(json.dumps(to_jsonable(report))))
    assert again == report


def test_summary_and_thinning():
    samples = [
        GpuSample(
            index=i,
            uuid=f"GPU-{i}",
            t_s=t / 2,
            utilization_gpu=10 * i + t,
            memory_used_mib=100 + t,
            processes=((42, 300),) if i == 1 and t > 3 else ((7, 10 + t),),
        )
        for t in range(100)
        for i in range(2)
    ]
    summary = summarize(samples, [42])
    assert summary.gpu_uuid == "GPU-1"
    assert summary.child_seen_on_gpu is True
    assert summary.max_utilization_gpu == 10 + 99
    assert [(pid, mib) for pid, _, mib in summary.other_processes] == [(7, 109)]
    assert len(summary.samples) <= 60
    assert {s.index for s in summary.samples} == {0, 1}
    assert thin(tuple(samples[:10])) == tuple(samples[:10])
    assert summarize([], [1]).child_seen_on_gpu is None


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (0, None),
        (1, None),
        (-11, "SIGSEGV"),
        (-9, "SIGKILL"),
        (0xC0000005, "STATUS_ACCESS_VIOLATION"),
    ],
)
def test_signal_names(code, name):
    assert runner._signal_name(code) == name


def test_pci_bus_ids_compare_without_domain_zeros():
    assert runner._same_bus("00000000:01:00.0", "0000:01:00.0")
    assert not runner._same_bus("00000000:02:00.0", "0000:01:00.0")
    inventory = linux_inventory(
        driver=DriverInfo(gpus=(GpuInfo(index=0, uuid=UUID, pci_bus_id="00000000:41:00.0"),))
    )
    assert runner._uuid_for_bus(inventory, "0000:41:00.0") == UUID
