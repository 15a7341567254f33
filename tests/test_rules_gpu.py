"""GPU rules on Linux and Windows facts: present, readable, runnable by the TF build."""

from __future__ import annotations

import pytest

from monitor.model import Distribution, Finding, GpuInfo, Inventory, Severity
from monitor.record import replace
from monitor.rules import gpu
from monitor.rules.gpu import parse_arch, reach
from tests.scenarios import linux_tf221_pip, windows_tf210, with_python, with_tensorflow


def run(inventory: Inventory) -> list[Finding]:
    return [finding for rule in gpu.RULES for finding in rule(inventory)]


def by_id(findings: list[Finding], finding_id: str) -> list[Finding]:
    return [f for f in findings if f.id == finding_id]


def only(findings: list[Finding], finding_id: str) -> Finding:
    found = by_id(findings, finding_id)
    assert len(found) == 1, [f.id for f in findings]
    return found[0]


def with_gpus(inventory: Inventory, *gpus: GpuInfo) -> Inventory:
    return replace(inventory, driver=replace(inventory.driver, gpus=gpus))


def fix_text(finding: Finding) -> str:
    return "\n".join(finding.fix)


RTX_5090 = GpuInfo(
    index=0, name="NVIDIA GeForce RTX 5090", compute_capability="12.0", memory_total_mib=32607
)
TESLA_K40 = GpuInfo(index=0, name="Tesla K40c", compute_capability="3.5", memory_total_mib=11441)


# --------------------------------------------------------------------------- healthy


@pytest.mark.parametrize("make", [linux_tf221_pip, windows_tf210])
def test_healthy_machines_have_no_gpu_error_or_warning(make):
    findings = run(make())
    assert [f for f in findings if f.severity in (Severity.ERROR, Severity.WARNING)] == []


# --------------------------------------------------------------------------- arch matching


@pytest.mark.parametrize(
    ("cc", "entries", "expected"),
    [
        ((8, 9), ("sm_60", "sm_70", "sm_80", "sm_89", "compute_90"), "native"),
        ((8, 6), ("sm_60", "sm_70", "sm_80", "sm_89", "compute_90"), "native"),  # sm_80 SASS
        ((7, 5), ("sm_60", "sm_70", "sm_80", "sm_89", "compute_90"), "native"),  # sm_70 SASS
        ((12, 0), ("sm_60", "sm_70", "sm_80", "sm_89", "compute_90"), "ptx"),
        ((10, 0), ("sm_60", "sm_70", "sm_80", "sm_89", "compute_90"), "ptx"),
        ((9, 0), ("sm_35", "sm_50", "sm_60", "sm_70", "sm_75", "compute_80"), "ptx"),
        ((3, 5), ("sm_60", "sm_70", "sm_80", "sm_89", "compute_90"), "none"),
        ((5, 2), ("sm_60", "sm_70", "sm_80", "sm_89", "compute_90"), "none"),
        ((8, 0), ("sm_90a",), "none"),
        ((9, 0), ("sm_90a",), "native"),
        ((8, 0), ("sm_75",), "none"),  # SASS never crosses a major version
    ],
)
def test_reach(cc, entries, expected):
    assert reach(cc, entries) == expected


def test_parse_arch():
    assert parse_arch("sm_120").cc == (12, 0)
    assert parse_arch("compute_90").kind == "compute"
    assert parse_arch("sm_90a").specific
    assert parse_arch("") is None and parse_arch("garbage") is None and parse_arch("sm_") is None


# --------------------------------------------------------------------------- PTX JIT only


def blackwell_on_tf221() -> Inventory:
    """An RTX 5090 (CC 12.0) with TF 2.21, whose newest code is compute_90 PTX."""
    return with_gpus(linux_tf221_pip(), RTX_5090)


def test_blackwell_on_tf221_is_ptx_jit_only():
    findings = run(blackwell_on_tf221())
    finding = only(findings, "gpu-ptx-jit-only")
    assert finding.severity is Severity.WARNING
    assert "Blackwell" in finding.title and "12.0" in finding.title
    assert "compute_90" in finding.detail
    assert "export CUDA_CACHE_MAXSIZE=4294967296" in finding.fix
    assert dict(finding.evidence)["architecture"] == "Blackwell, CC 12.0"
    assert finding.subject.endswith("GPU 0")
    assert by_id(findings, "gpu-arch-unsupported") == []


def test_blackwell_with_old_pip_ptxas_gets_an_nvcc_upgrade():
    inventory = blackwell_on_tf221()
    python = inventory.pythons[0]
    inventory = with_python(
        inventory,
        distributions=(*python.distributions, Distribution("nvidia-cuda-nvcc-cu12", "12.5.82")),
    )
    finding = only(run(inventory), "gpu-ptx-jit-only")
    assert "'nvidia-cuda-nvcc-cu12>=12.8,<13'" in fix_text(finding)


def test_hopper_on_windows_tf210_is_ptx_jit_only():
    h100 = GpuInfo(index=1, name="NVIDIA H100 PCIe", compute_capability="9.0")
    finding = only(run(with_gpus(windows_tf210(), h100)), "gpu-ptx-jit-only")
    assert "compute_80" in finding.detail
    assert "setx CUDA_CACHE_MAXSIZE 4294967296" in fix_text(finding)
    assert "export" not in fix_text(finding)
    assert finding.subject.endswith("GPU 1")


@pytest.mark.parametrize("make", [linux_tf221_pip, windows_tf210])
def test_native_gpu_is_not_ptx_only(make):
    assert by_id(run(make()), "gpu-ptx-jit-only") == []


# --------------------------------------------------------------------------- unsupported


def kepler_on_tf221() -> Inventory:
    """A Tesla K40 (CC 3.5) with TF 2.21, whose oldest code is sm_60."""
    return with_gpus(linux_tf221_pip(), TESLA_K40)


def test_kepler_on_tf221_is_unsupported():
    finding = only(run(kepler_on_tf221()), "gpu-arch-unsupported")
    assert finding.severity is Severity.ERROR
    assert "Kepler" in finding.title
    assert "older than every architecture" in finding.detail
    assert "tensorflow[and-cuda]==2.14.*" in fix_text(finding)
    assert "R470" in fix_text(finding)


def test_gpu_too_old_on_windows_has_no_wheel_to_offer():
    gtx680 = GpuInfo(index=0, name="NVIDIA GeForce GTX 680", compute_capability="3.0")
    finding = only(run(with_gpus(windows_tf210(), gtx680)), "gpu-arch-unsupported")
    assert "No TensorFlow 2.x wheel has code for CC 3.0" in fix_text(finding)


def test_maxwell_on_tf221_points_to_tf216_for_its_python():
    gtx970 = GpuInfo(index=0, name="NVIDIA GeForce GTX 970", compute_capability="5.2")
    finding = only(run(with_gpus(linux_tf221_pip(), gtx970)), "gpu-arch-unsupported")
    assert "tensorflow[and-cuda]==2.16.*" in fix_text(finding)


@pytest.mark.parametrize("make", [linux_tf221_pip, windows_tf210])
def test_supported_gpu_is_not_unsupported(make):
    assert by_id(run(make()), "gpu-arch-unsupported") == []


def test_cpu_build_is_not_judged_for_architecture():
    inventory = with_tensorflow(kepler_on_tf221(), is_cuda_build=False)
    assert run(inventory) == []


def test_unknown_build_architectures_are_not_judged():
    inventory = with_tensorflow(kepler_on_tf221(), compute_capabilities=(), build_info=())
    assert run(inventory) == []


# --------------------------------------------------------------------------- no GPU / query failed


@pytest.mark.parametrize("make", [linux_tf221_pip, windows_tf210])
def test_no_gpu(make):
    finding = only(run(with_gpus(make())), "no-gpu")
    assert finding.severity is Severity.ERROR
    if make is windows_tf210:
        assert "Device Manager" in fix_text(finding)
    else:
        assert "lspci" in fix_text(finding)


def test_no_gpu_needs_a_working_driver():
    inventory = with_gpus(linux_tf221_pip())
    inventory = replace(
        inventory,
        driver=replace(
            inventory.driver,
            nvml_loaded=False,
            error="Driver Not Loaded",
            error_code="NVML_ERROR_DRIVER_NOT_LOADED",
        ),
    )
    assert run(inventory) == []


@pytest.mark.parametrize("make", [linux_tf221_pip, windows_tf210])
def test_gpu_query_failed(make):
    lost = GpuInfo(index=1, name="", error="GPU is lost")
    odd = GpuInfo(index=2, name="NVIDIA A2", error="Unknown Error")
    inventory = make()
    inventory = with_gpus(inventory, *inventory.driver.gpus, lost, odd)
    findings = by_id(run(inventory), "gpu-query-failed")
    assert [(f.subject, f.severity) for f in findings] == [
        ("GPU 1", Severity.ERROR),
        ("GPU 2", Severity.WARNING),
    ]
    assert "reboot" in "\n".join(findings[0].fix)


def test_partly_readable_gpu_is_still_judged_by_its_compute_capability():
    k40 = replace(
        TESLA_K40,
        error="nvmlDeviceGetMemoryInfo: Not Supported",
        error_code="NVML_ERROR_NOT_SUPPORTED",
        memory_total_mib=None,
    )
    findings = run(with_gpus(linux_tf221_pip(), k40))
    assert only(findings, "gpu-query-failed").severity is Severity.WARNING
    assert only(findings, "gpu-arch-unsupported").severity is Severity.ERROR


def test_lost_gpu_by_error_code():
    lost = GpuInfo(index=3, error="nvmlDeviceGetName: Unknown", error_code="NVML_ERROR_GPU_IS_LOST")
    finding = only(run(with_gpus(linux_tf221_pip(), lost)), "gpu-query-failed")
    assert finding.severity is Severity.ERROR


@pytest.mark.parametrize("make", [linux_tf221_pip, windows_tf210])
def test_readable_gpus_do_not_fail(make):
    assert by_id(run(make()), "gpu-query-failed") == []


# --------------------------------------------------------------------------- malformed facts


@pytest.mark.parametrize("make", [linux_tf221_pip, windows_tf210])
@pytest.mark.parametrize("cc", ["", "garbage", None, "12", "x.y"])
def test_malformed_compute_capability_never_raises(make, cc):
    findings = run(with_gpus(make(), GpuInfo(index=0, name="?", compute_capability=cc)))
    assert by_id(findings, "gpu-arch-unsupported") == []


@pytest.mark.parametrize("make", [linux_tf221_pip, windows_tf210])
def test_malformed_build_architectures_never_raise(make):
    inventory = with_tensorflow(
        make(), version="2.x", compute_capabilities=("", "sm_", "garbage", "compute_9")
    )
    assert run(inventory) == []
