"""Driver rules on Linux and Windows facts: present, loaded, rebooted, new enough, not known-bad."""

from __future__ import annotations

import pytest

from monitor.model import (
    DriverInfo,
    Finding,
    Inventory,
    LibraryFile,
    Severity,
)
from monitor.record import replace
from monitor.rules import driver
from monitor.rules.driver import condition_holds, driver_state, known_bad_entries, known_bad_matches
from tests import scenarios
from tests.scenarios import linux_tf221_pip, windows_tf210, with_tensorflow


def run(inventory: Inventory) -> list[Finding]:
    return [finding for rule in driver.RULES for finding in rule(inventory)]


def by_id(findings: list[Finding], finding_id: str) -> list[Finding]:
    return [f for f in findings if f.id == finding_id]


def only(findings: list[Finding], finding_id: str) -> Finding:
    found = by_id(findings, finding_id)
    assert len(found) == 1, [f.id for f in findings]
    return found[0]


def with_driver(inventory: Inventory, **changes) -> Inventory:
    return replace(inventory, driver=replace(inventory.driver, **changes))


def with_cudart(inventory: Inventory, version: str | None) -> Inventory:
    libraries = tuple(
        replace(lib, resolved=replace(lib.resolved, version=version))
        if lib.role == "cudart" and lib.resolved is not None
        else lib
        for lib in inventory.libraries
    )
    return replace(inventory, libraries=libraries)


def wsl(inventory: Inventory) -> Inventory:
    return replace(
        inventory, host=replace(inventory.host, is_wsl=True, os_release="Ubuntu 24.04.1 LTS")
    )


def linux_tf(version: str, cuda: str, cudnn: str) -> Inventory:
    inventory = with_tensorflow(
        linux_tf221_pip(),
        version=version,
        cuda_version=cuda,
        cudnn_version=cudnn,
        build_info=(("cuda_version", cuda), ("cudnn_version", cudnn), ("is_cuda_build", "True")),
    )
    return with_cudart(inventory, f"{cuda}.0" if cuda.count(".") == 1 else cuda)


def fix_text(finding: Finding) -> str:
    return "\n".join(finding.fix)


# --------------------------------------------------------------------------- healthy


@pytest.mark.parametrize("make", [linux_tf221_pip, windows_tf210])
def test_healthy_machines_have_no_driver_error_or_warning(make):
    findings = run(make())
    assert [f for f in findings if f.severity in (Severity.ERROR, Severity.WARNING)] == []


# --------------------------------------------------------------------------- not found / loaded


def test_driver_not_found_linux():
    inventory = with_driver(
        linux_tf221_pip(),
        nvml_loaded=False,
        driver_version=None,
        cuda_driver_version=None,
        kernel_module_version=None,
        gpus=(),
        error="NVML Shared Library Not Found",
        error_code="NVML_ERROR_LIBRARY_NOT_FOUND",
    )
    finding = only(run(inventory), "driver-not-found")
    assert finding.severity is Severity.ERROR
    assert "lspci" in fix_text(finding)
    assert "sudo apt install nvidia-driver" in fix_text(finding)  # Debian 12 host
    assert ("NVML error code", "NVML_ERROR_LIBRARY_NOT_FOUND") in finding.evidence
    assert by_id(run(inventory), "nvml-error") == []


def test_driver_not_found_ubuntu_uses_ubuntu_drivers():
    inventory = with_driver(
        linux_tf221_pip(),
        nvml_loaded=False,
        driver_version=None,
        gpus=(),
        error="NVML Shared Library Not Found",
        error_code="NVML_ERROR_LIBRARY_NOT_FOUND",
    )
    inventory = replace(inventory, host=replace(inventory.host, os_release="Ubuntu 22.04.4 LTS"))
    assert "sudo ubuntu-drivers install" in fix_text(only(run(inventory), "driver-not-found"))


def test_driver_not_found_wsl_points_at_the_windows_driver():
    inventory = wsl(
        with_driver(
            linux_tf221_pip(),
            nvml_loaded=False,
            driver_version=None,
            gpus=(),
            error="NVML Shared Library Not Found",
            error_code="NVML_ERROR_LIBRARY_NOT_FOUND",
        )
    )
    finding = only(run(inventory), "driver-not-found")
    assert "/usr/lib/wsl/lib" in finding.detail
    assert "Windows" in fix_text(finding)
    assert "Do not install a Linux NVIDIA driver inside WSL" in fix_text(finding)


def test_driver_not_found_windows():
    inventory = with_driver(
        windows_tf210(),
        nvml_loaded=False,
        driver_version=None,
        gpus=(),
        error="NVML Shared Library Not Found",
        error_code="NVML_ERROR_LIBRARY_NOT_FOUND",
    )
    finding = only(run(inventory), "driver-not-found")
    assert "nvml.dll" in finding.detail
    assert "NVIDIA app" in fix_text(finding)
    assert "sudo" not in fix_text(finding)


@pytest.mark.parametrize("make", [linux_tf221_pip, windows_tf210])
def test_driver_found_does_not_fire_not_found(make):
    assert by_id(run(make()), "driver-not-found") == []


def test_driver_not_loaded_linux():
    inventory = with_driver(
        linux_tf221_pip(),
        nvml_loaded=False,
        driver_version=None,
        gpus=(),
        error="Driver Not Loaded",
        error_code="NVML_ERROR_DRIVER_NOT_LOADED",
    )
    findings = run(inventory)
    finding = only(findings, "driver-not-loaded")
    assert finding.severity is Severity.ERROR
    assert "sudo modprobe nvidia" in fix_text(finding)
    assert "mokutil" in fix_text(finding)
    assert by_id(findings, "driver-not-found") == by_id(findings, "nvml-error") == []


def test_driver_not_loaded_windows():
    inventory = with_driver(
        windows_tf210(),
        nvml_loaded=False,
        driver_version=None,
        gpus=(),
        error="Driver Not Loaded",
        error_code="NVML_ERROR_DRIVER_NOT_LOADED",
    )
    finding = only(run(inventory), "driver-not-loaded")
    assert "Device Manager" in fix_text(finding)
    assert "modprobe" not in fix_text(finding)


@pytest.mark.parametrize("make", [linux_tf221_pip, windows_tf210])
def test_loaded_driver_does_not_fire_not_loaded(make):
    assert by_id(run(make()), "driver-not-loaded") == []


# --------------------------------------------------------------------------- NVML errors


def test_nvml_no_permission_linux_names_the_device_nodes():
    inventory = with_driver(
        linux_tf221_pip(),
        nvml_loaded=False,
        gpus=(),
        error="Insufficient Permissions",
        error_code="NVML_ERROR_NO_PERMISSION",
    )
    finding = only(run(inventory), "nvml-error")
    assert "Insufficient Permissions" in finding.title
    assert "/dev/nvidia" in fix_text(finding)
    assert ("NVML error", "Insufficient Permissions") in finding.evidence


def test_nvml_unknown_error_windows():
    inventory = with_driver(
        windows_tf210(),
        nvml_loaded=False,
        gpus=(),
        error="Unknown Error",
        error_code="NVML_ERROR_UNKNOWN",
    )
    finding = only(run(inventory), "nvml-error")
    assert "Unknown Error" in finding.title
    assert "nvidia-smi" in fix_text(finding)
    assert "dmesg" not in fix_text(finding)


@pytest.mark.parametrize("make", [linux_tf221_pip, windows_tf210])
def test_missing_bindings_are_the_monitors_problem(make):
    inventory = with_driver(
        make(),
        nvml_loaded=False,
        driver_version=None,
        gpus=(),
        error="No module named 'pynvml'",
        error_code="PYNVML_IMPORT_ERROR",
    )
    findings = run(inventory)
    finding = only(findings, "nvml-error")
    assert finding.severity is Severity.WARNING
    assert "nvidia-ml-py" in fix_text(finding)
    assert by_id(findings, "driver-not-found") == []


@pytest.mark.parametrize("make", [linux_tf221_pip, windows_tf210])
def test_no_nvml_error_when_nvml_works(make):
    assert by_id(run(make()), "nvml-error") == []


# --------------------------------------------------------------------------- reboot pending


def reboot_pending_after_update() -> Inventory:
    """apt upgraded 550.120 -> 570.133.07; the 550 kernel module still runs."""
    return with_driver(
        linux_tf221_pip(),
        nvml_loaded=False,
        driver_version=None,
        cuda_driver_version=None,
        gpus=(),
        kernel_module_version="550.120",
        error="Driver/library version mismatch",
        error_code="NVML_ERROR_LIB_RM_VERSION_MISMATCH",
    )


def test_reboot_pending_after_update():
    findings = run(reboot_pending_after_update())
    finding = only(findings, "driver-reboot-pending")
    assert finding.severity is Severity.ERROR
    assert "reboot" in finding.title.lower()
    assert "sudo reboot" in finding.fix
    assert "reinstall" not in fix_text(finding).lower()
    assert "apt install" not in fix_text(finding)
    assert ("kernel module version", "550.120") in finding.evidence
    # one explanation, not three
    assert by_id(findings, "nvml-error") == by_id(findings, "driver-not-found") == []


def test_reboot_pending_names_the_new_user_space_version_from_the_library_file():
    inventory = with_driver(reboot_pending_after_update(), nvml_library_version="570.133.07")
    finding = only(run(inventory), "driver-reboot-pending")
    assert "550.120" in finding.detail and "570.133.07" in finding.detail
    assert ("NVML library file version", "570.133.07") in finding.evidence


def test_reboot_pending_when_kernel_module_differs_from_user_space():
    inventory = with_driver(linux_tf221_pip(), kernel_module_version="565.57.01")
    finding = only(run(inventory), "driver-reboot-pending")
    assert "565.57.01" in finding.detail and "570.133.07" in finding.detail


def test_reboot_pending_windows_says_restart_windows():
    inventory = with_driver(
        windows_tf210(),
        nvml_loaded=False,
        driver_version=None,
        gpus=(),
        error="Driver/library version mismatch",
        error_code="NVML_ERROR_LIB_RM_VERSION_MISMATCH",
    )
    finding = only(run(inventory), "driver-reboot-pending")
    assert finding.fix == ("Restart Windows to finish the driver update.",)


@pytest.mark.parametrize("make", [linux_tf221_pip, windows_tf210])
def test_no_reboot_pending_when_versions_agree(make):
    assert by_id(run(make()), "driver-reboot-pending") == []


# --------------------------------------------------------------------------- too old


def driver_too_old_for_cuda12() -> Inventory:
    """TF 2.15 (CUDA 12.2) on a machine still running the R470 driver (CUDA 11.4)."""
    inventory = linux_tf("2.15.0", "12.2", "8")
    return with_driver(
        inventory,
        driver_version="470.256.02",
        cuda_driver_version="11.4",
        kernel_module_version="470.256.02",
    )


def test_driver_too_old_for_cuda12():
    findings = run(driver_too_old_for_cuda12())
    finding = only(findings, "driver-too-old")
    assert finding.severity is Severity.ERROR
    assert finding.subject == scenarios.LINUX_PY
    assert "470.256.02" in finding.title and "12.2" in finding.title
    # names both minimums and why each applies
    assert "535.54.03" in finding.detail and "525.60.13" in finding.detail
    assert "minor version compatibility" in finding.detail
    evidence = dict(finding.evidence)
    assert evidence["minimum driver for CUDA 12.2.0 (linux)"] == "535.54.03"
    assert evidence["minor-version-compatibility floor CUDA 12.x (linux)"] == "525.60.13"
    # the way out when the driver cannot move: TF 2.14 is CUDA 11.8, runnable on R470
    assert "tensorflow[and-cuda]==2.14.*" in fix_text(finding)
    assert by_id(findings, "driver-minor-compat-only") == []


def test_driver_too_old_windows():
    inventory = with_driver(windows_tf210(), driver_version="451.82", cuda_driver_version="11.0")
    finding = only(run(inventory), "driver-too-old")
    assert "452.39" in finding.detail and "460.82" in finding.detail  # Windows columns
    assert "NVIDIA app" in fix_text(finding)
    assert "sudo" not in fix_text(finding)


def test_windows_cuda_version_64_112_is_read_as_11_2():
    finding = only(run(with_driver(windows_tf210(), driver_version="451.82")), "driver-too-old")
    assert dict(finding.evidence)["build CUDA"] == "11.2 (build_info.py)"


def test_driver_reporting_an_older_cuda_major_is_too_old_even_without_a_version():
    inventory = with_driver(
        linux_tf("2.18.0", "12.5.1", "9"), driver_version="garbage", cuda_driver_version="11.4"
    )
    assert only(run(inventory), "driver-too-old").severity is Severity.ERROR


def test_cuda10_build_has_no_minor_compat():
    inventory = with_driver(linux_tf("2.3.0", "10.1", "7"), driver_version="410.48")
    finding = only(run(inventory), "driver-too-old")
    assert "418.39" in finding.detail
    assert "no minor version compatibility" in finding.detail


# --------------------------------------------------------------------------- minor compat


def driver_in_minor_compat_window() -> Inventory:
    """TF 2.16 built with CUDA 12.3 (needs 545.23.06) on driver 525.85.12 (CUDA 12.0)."""
    inventory = with_cudart(linux_tf("2.16.1", "12.3", "8"), "12.3.101")
    return with_driver(
        inventory,
        driver_version="525.85.12",
        cuda_driver_version="12.0",
        kernel_module_version="525.85.12",
    )


def test_driver_in_minor_compat_window():
    findings = run(driver_in_minor_compat_window())
    finding = only(findings, "driver-minor-compat-only")
    assert finding.severity is Severity.WARNING
    assert "545.23.06" in finding.detail and "525.60.13" in finding.detail
    assert "PTX" in finding.detail
    assert by_id(findings, "driver-too-old") == []


def test_minor_compat_window_windows():
    inventory = with_driver(windows_tf210(), driver_version="456.71", cuda_driver_version="11.1")
    finding = only(run(inventory), "driver-minor-compat-only")
    assert finding.severity is Severity.WARNING
    assert "460.82" in finding.detail


def test_wsl_compares_with_the_windows_driver_numbers():
    # 528.49 is a Windows driver for CUDA 12.0; WSL reports it as is.
    inventory = wsl(
        with_driver(
            linux_tf("2.16.1", "12.3", "8"),
            driver_version="528.49",
            cuda_driver_version="12.0",
            kernel_module_version=None,
        )
    )
    finding = only(run(inventory), "driver-minor-compat-only")
    assert "545.84" in finding.detail  # CUDA 12.3 GA, Windows column
    assert "Windows" in fix_text(finding)


def pip_cudart_newer_than_driver() -> Inventory:
    """TF 2.21 (CUDA 12.5.1) with the cudart 12.9 pip picked, on driver 560 (CUDA 12.6)."""
    return with_driver(
        linux_tf221_pip(),
        driver_version="560.35.03",
        cuda_driver_version="12.6",
        kernel_module_version="560.35.03",
    )


def test_pip_cudart_newer_than_driver_is_info_only():
    finding = only(run(pip_cudart_newer_than_driver()), "driver-minor-compat-only")
    assert finding.severity is Severity.INFO
    assert "12.9.79" in finding.title
    evidence = dict(finding.evidence)
    assert evidence["minimum driver for CUDA 12.9.0 (linux)"] == "575.51.03"
    assert evidence["minimum driver for CUDA 12.5.1 (linux)"] == "555.42.06"
    assert evidence["cudart resolved"].startswith("12.9.79 (")


def test_pip_cudart_newer_and_driver_below_the_build_is_a_warning():
    inventory = with_driver(
        linux_tf221_pip(),
        driver_version="550.54.14",
        cuda_driver_version="12.4",
        kernel_module_version="550.54.14",
    )
    finding = only(run(inventory), "driver-minor-compat-only")
    assert finding.severity is Severity.WARNING
    assert "555.42.06" in finding.detail
    assert "575.51.03" in fix_text(finding)  # update far enough for the runtime pip chose


def test_new_driver_satisfies_everything():
    inventory = with_driver(
        linux_tf221_pip(),
        driver_version="580.95.05",
        cuda_driver_version="13.0",
        kernel_module_version="580.95.05",
    )
    assert run(inventory) == []


# --------------------------------------------------------------------------- known bad


def test_known_bad_535_nvml_range():
    inventory = with_driver(
        linux_tf221_pip(),
        driver_version="535.54.03",
        cuda_driver_version="12.2",
        kernel_module_version="535.54.03",
    )
    finding = only(run(inventory), "driver-known-bad")
    assert finding.severity is Severity.INFO
    assert "gpustat" in dict(finding.evidence)["source"]
    assert "535.104.05" in fix_text(finding)


def test_known_bad_range_excludes_its_end_and_windows_numbering():
    fixed = with_driver(
        linux_tf221_pip(), driver_version="535.86.05", kernel_module_version="535.86.05"
    )
    assert by_id(run(fixed), "driver-known-bad") == []
    windows = with_driver(windows_tf210(), driver_version="535.54")  # not a Linux 535 build
    assert by_id(run(windows), "driver-known-bad") == []


def test_known_bad_rows_are_sourced_and_well_formed():
    entries = known_bad_entries()
    assert entries
    for entry in entries:
        assert entry.source and entry.reason and entry.fix
        assert entry.component in ("driver", "cudnn")
        assert entry.platform in ("all", "linux", "windows")
        assert (
            known_bad_matches(
                entry.component, entry.min_version, entry.platform, gpu_ccs=[(6, 1)], tf=(2, 21)
            )
            or entry.condition
        )


def test_conditions():
    assert condition_holds("gpu_cc<7.5", [(6, 1)])
    assert not condition_holds("gpu_cc<7.5", [(8, 9)])
    assert not condition_holds("gpu_cc<7.5", [])
    assert condition_holds("tf=2.21", tf=(2, 21))
    assert not condition_holds("tf=2.21", tf=None)
    assert not condition_holds("nonsense", [(6, 1)])


# --------------------------------------------------------------------------- malformed facts


@pytest.mark.parametrize("make", [linux_tf221_pip, windows_tf210])
@pytest.mark.parametrize(
    "changes",
    [
        {"driver_version": "garbage"},
        {"driver_version": "", "cuda_driver_version": None},
        {"driver_version": None, "cuda_driver_version": "garbage"},
        {"kernel_module_version": "garbage"},
        {"error_code": "", "error": ""},
        {"nvml_loaded": False, "error": None, "error_code": None},
    ],
)
def test_malformed_driver_facts_never_raise(make, changes):
    findings = run(with_driver(make(), **changes))
    assert all(isinstance(f, Finding) for f in findings)
    assert by_id(findings, "driver-too-old") == []


@pytest.mark.parametrize("make", [linux_tf221_pip, windows_tf210])
def test_malformed_tensorflow_facts_never_raise(make):
    broken = with_tensorflow(
        make(),
        version="2.x",
        cuda_version=None,
        cudnn_version=None,
        build_info=(),
        compute_capabilities=("",),
    )
    broken = with_cudart(with_driver(broken, driver_version="470.42.01"), "garbage")
    for finding in run(broken):
        assert finding.id != "driver-too-old"  # nothing says which CUDA the build needs


def test_garbage_library_versions_are_ignored():
    inventory = with_driver(
        linux_tf221_pip(), driver_version="560.35.03", kernel_module_version="560.35.03"
    )
    libraries = tuple(
        replace(lib, resolved=LibraryFile(path="/x/libcudart.so.12", version="garbage"))
        if lib.role == "cudart"
        else lib
        for lib in inventory.libraries
    )
    assert run(replace(inventory, libraries=libraries)) == []


def test_empty_driver_info_on_macos_is_not_judged():
    inventory = replace(
        linux_tf221_pip(), host=replace(linux_tf221_pip().host, os="darwin"), driver=DriverInfo()
    )
    assert run(inventory) == []


def test_driver_state():
    assert driver_state(DriverInfo(nvml_loaded=True)) == "ok"
    assert driver_state(DriverInfo()) == "not-found"
    assert driver_state(DriverInfo(error="Driver/library version mismatch")) == "mismatch"
    assert driver_state(DriverInfo(error_code="NVML_ERROR_DRIVER_NOT_LOADED")) == "not-loaded"
    assert driver_state(DriverInfo(error_code="NVML_ERROR_GPU_IS_LOST")) == "error"
