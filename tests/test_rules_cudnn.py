"""cuDNN rules on Linux and Windows facts: the loaded cuDNN against the TF build, known-bad ones."""

from __future__ import annotations

import pytest

from monitor.model import Finding, GpuInfo, Inventory, Severity
from monitor.record import replace
from monitor.rules import cudnn
from tests.scenarios import LINUX_PY, linux_tf221_pip, windows_tf210, with_tensorflow


def run(inventory: Inventory) -> list[Finding]:
    return [finding for rule in cudnn.RULES for finding in rule(inventory)]


def by_id(findings: list[Finding], finding_id: str) -> list[Finding]:
    return [f for f in findings if f.id == finding_id]


def only(findings: list[Finding], finding_id: str) -> Finding:
    found = by_id(findings, finding_id)
    assert len(found) == 1, [f.id for f in findings]
    return found[0]


def with_main_cudnn(inventory: Inventory, **changes) -> Inventory:
    """The main cuDNN library (libcudnn.so.N / cudnn64_N.dll) resolved differently."""
    libraries = tuple(
        replace(lib, resolved=replace(lib.resolved, **changes))
        if lib.role == "cudnn"
        and lib.resolved is not None
        and lib.wanted.lower().startswith(("libcudnn.so", "cudnn64_"))
        else lib
        for lib in inventory.libraries
    )
    return replace(inventory, libraries=libraries)


def with_gpus(inventory: Inventory, *gpus: GpuInfo) -> Inventory:
    return replace(inventory, driver=replace(inventory.driver, gpus=gpus))


def fix_text(finding: Finding) -> str:
    return "\n".join(finding.fix)


GTX_1080 = GpuInfo(index=0, name="NVIDIA GeForce GTX 1080", compute_capability="6.1")


# --------------------------------------------------------------------------- healthy


@pytest.mark.parametrize("make", [linux_tf221_pip, windows_tf210])
def test_healthy_machines_have_no_cudnn_error_or_warning(make):
    findings = run(make())
    assert [f for f in findings if f.severity in (Severity.ERROR, Severity.WARNING)] == []


def test_sub_libraries_are_not_judged_as_the_main_library():
    inventory = windows_tf210()
    libraries = tuple(
        replace(lib, resolved=replace(lib.resolved, version="7.6.5"))
        if lib.role == "cudnn" and lib.wanted != "cudnn64_8.dll"
        else lib
        for lib in inventory.libraries
    )
    assert run(replace(inventory, libraries=libraries)) == []


# --------------------------------------------------------------------------- mismatch


def tf218_with_toolkit_cudnn_on_ld_library_path(version: str) -> Inventory:
    """TF 2.18 (compiled with cuDNN 9.3) picking /usr/local/cuda/lib64/libcudnn.so.9 first."""
    inventory = with_tensorflow(linux_tf221_pip(), version="2.18.0")
    return with_main_cudnn(
        inventory,
        path="/usr/local/cuda/lib64/libcudnn.so.9",
        via="LD_LIBRARY_PATH",
        version=version,
        version_source="version function",
    )


def cudnn91_on_ld_library_path_for_tf218() -> Inventory:
    """An old cuDNN 9.1 of a toolkit install wins over the pip wheel's 9.x."""
    return tf218_with_toolkit_cudnn_on_ld_library_path("9.1.0")


def test_cudnn91_on_ld_library_path_for_tf218():
    finding = only(run(cudnn91_on_ld_library_path_for_tf218()), "cudnn-version-mismatch")
    assert finding.severity is Severity.ERROR
    assert finding.subject == LINUX_PY
    assert "9.1.0" in finding.title and "libcudnn.so.9" in finding.title
    assert "9.3 or newer" in finding.title
    assert "older than cuDNN 9.3" in finding.detail
    assert "Loaded runtime CuDNN library: 9.1.0 but source was compiled with: 9.3" in (
        finding.detail
    )
    evidence = dict(finding.evidence)
    assert evidence["file"] == "/usr/local/cuda/lib64/libcudnn.so.9"
    assert evidence["compiled cuDNN major (build_info)"] == "9"
    assert evidence["tested cuDNN (tensorflow_builds.csv)"] == "9.3"
    text = fix_text(finding)
    assert "LD_LIBRARY_PATH" in text
    assert "'nvidia-cudnn-cu12>=9.3,<10'" in text


def cudnn8_named_libcudnn_so_9_for_tf218() -> Inventory:
    """A hand-made libcudnn.so.9 that is really cuDNN 8.9.7."""
    return tf218_with_toolkit_cudnn_on_ld_library_path("8.9.7")


@pytest.mark.parametrize(
    "inventory",
    [
        pytest.param(cudnn8_named_libcudnn_so_9_for_tf218(), id="linux-cudnn8-named-9"),
        pytest.param(with_main_cudnn(windows_tf210(), version="7.6.5"), id="windows-cudnn7"),
    ],
)
def test_major_mismatch_is_left_to_library_wrong_version(inventory):
    """TF asks for the file of its own major: another major is a file lying about its name."""
    assert by_id(run(inventory), "cudnn-version-mismatch") == []


def cudnn_minor_too_old() -> Inventory:
    """TF 2.21 (compiled with cuDNN 9.3) loading cuDNN 9.1 from the pip wheel."""
    return with_main_cudnn(linux_tf221_pip(), version="9.1.0.70")


def test_cudnn_minor_too_old():
    finding = only(run(cudnn_minor_too_old()), "cudnn-version-mismatch")
    assert "older than cuDNN 9.3" in finding.detail
    assert "9.1.0.70" in finding.title
    assert "'nvidia-cudnn-cu12>=9.3,<10'" in fix_text(finding)


def test_pre_turing_gpu_caps_the_suggested_cudnn():
    inventory = with_gpus(cudnn_minor_too_old(), GTX_1080)
    finding = only(run(inventory), "cudnn-version-mismatch")
    assert "'nvidia-cudnn-cu12>=9.3,<9.11'" in fix_text(finding)


def test_tf216_pins_its_cudnn_minor():
    inventory = with_tensorflow(
        linux_tf221_pip(), version="2.16.1", cuda_version="12.3", cudnn_version="8"
    )
    inventory = with_main_cudnn(inventory, version="8.6.0")
    libraries = tuple(
        replace(lib, wanted="libcudnn.so.8") if lib.wanted == "libcudnn.so.9" else lib
        for lib in inventory.libraries
    )
    finding = only(run(replace(inventory, libraries=libraries)), "cudnn-version-mismatch")
    assert "'nvidia-cudnn-cu12==8.9.*'" in fix_text(finding)


def test_windows_cudnn_minor_too_old():
    inventory = with_main_cudnn(windows_tf210(), version="8.0.5")
    finding = only(run(inventory), "cudnn-version-mismatch")
    assert "cudnn64_8.dll" in finding.title and "8.1" in finding.title
    text = fix_text(finding)
    assert "PATH" in text and "cudnn=8.1" in text
    assert "pip" not in text


@pytest.mark.parametrize("version", ["9.3.0.75", "9.10.2.21", "9.28.0.42"])
def test_equal_or_newer_minor_is_fine(version):
    assert (
        by_id(run(with_main_cudnn(linux_tf221_pip(), version=version)), "cudnn-version-mismatch")
        == []
    )


def test_major_only_version_is_not_judged_on_its_minor():
    inventory = with_main_cudnn(linux_tf221_pip(), version="9", version_source="soname")
    assert run(inventory) == []


@pytest.mark.parametrize("version", [None, "", "garbage"])
@pytest.mark.parametrize("make", [linux_tf221_pip, windows_tf210])
def test_unknown_cudnn_version_never_raises(make, version):
    assert run(with_main_cudnn(make(), version=version)) == []


@pytest.mark.parametrize("make", [linux_tf221_pip, windows_tf210])
def test_malformed_tensorflow_facts_never_raise(make):
    inventory = with_tensorflow(
        make(), version="2.x", cudnn_version="garbage", cuda_version=None, build_info=()
    )
    assert run(with_main_cudnn(inventory, version="8.0.1")) is not None


def test_missing_cudnn_is_left_to_the_library_rules():
    inventory = linux_tf221_pip()
    libraries = tuple(
        replace(lib, resolved=None) if lib.role == "cudnn" else lib for lib in inventory.libraries
    )
    assert run(replace(inventory, libraries=libraries)) == []


# --------------------------------------------------------------------------- known bad


def test_cudnn_911_on_pascal_is_known_bad():
    inventory = with_gpus(with_main_cudnn(linux_tf221_pip(), version="9.14.0.64"), GTX_1080)
    finding = only(run(inventory), "cudnn-known-bad")
    assert finding.severity is Severity.ERROR
    assert "pre-Turing" in dict(finding.evidence)["source"]
    assert "GTX 1080" in dict(finding.evidence)["GPUs"]
    assert "'nvidia-cudnn-cu12>=9.3,<9.11'" in fix_text(finding)


def test_cudnn_911_on_ada_is_fine():
    inventory = with_main_cudnn(linux_tf221_pip(), version="9.14.0.64")
    assert run(inventory) == []


def test_cudnn_95_with_tf221_autotuner_bug():
    inventory = with_main_cudnn(linux_tf221_pip(), version="9.5.1.17")
    finding = only(run(inventory), "cudnn-known-bad")
    assert finding.severity is Severity.WARNING
    assert "Autotuner" in finding.detail
    assert "'nvidia-cudnn-cu12>=9.24.0.43,<10'" in fix_text(finding)


def test_cudnn_95_with_tf221_on_pascal_stays_below_911():
    inventory = with_gpus(with_main_cudnn(linux_tf221_pip(), version="9.5.1.17"), GTX_1080)
    finding = only(run(inventory), "cudnn-known-bad")
    assert "'nvidia-cudnn-cu12>=9.10,<9.11'" in fix_text(finding)
    assert "predates Turing" in fix_text(finding)


def test_cudnn_95_with_tf218_is_not_the_221_bug():
    inventory = with_main_cudnn(
        with_tensorflow(linux_tf221_pip(), version="2.18.0"), version="9.5.1.17"
    )
    assert run(inventory) == []


def test_windows_tf210_cudnn81_is_not_known_bad():
    assert by_id(run(windows_tf210()), "cudnn-known-bad") == []
