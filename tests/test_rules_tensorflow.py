"""TensorFlow and Python rules on Linux and Windows facts."""

from __future__ import annotations

import pytest

from monitor.model import (
    Distribution,
    Finding,
    Inventory,
    PythonEnv,
    Severity,
    TensorflowBuild,
)
from monitor.record import replace
from monitor.rules import cudnn, driver, gpu, tensorflow
from monitor.rules.tensorflow import install_requirement, tf_facts, tf_release
from tests.scenarios import (
    LINUX_PY,
    LINUX_SITE,
    WIN_PY,
    WIN_SITE,
    linux_tf221_pip,
    windows_tf210,
    with_python,
    with_tensorflow,
)


def run(inventory: Inventory) -> list[Finding]:
    return [finding for rule in tensorflow.RULES for finding in rule(inventory)]


def by_id(findings: list[Finding], finding_id: str) -> list[Finding]:
    return [f for f in findings if f.id == finding_id]


def only(findings: list[Finding], finding_id: str) -> Finding:
    found = by_id(findings, finding_id)
    assert len(found) == 1, [f.id for f in findings]
    return found[0]


def fix_text(finding: Finding) -> str:
    return "\n".join(finding.fix)


def with_dists(inventory: Inventory, *extra: Distribution, drop: tuple[str, ...] = ()) -> Inventory:
    python = inventory.pythons[0]
    kept = tuple(d for d in python.distributions if d.name not in drop)
    return with_python(inventory, distributions=(*kept, *extra))


def set_tf_version(inventory: Inventory, version: str, **build) -> Inventory:
    """The TF build and the `tensorflow` distribution both at `version`."""
    python = inventory.pythons[0]
    dists = tuple(
        replace(d, version=version) if d.name == "tensorflow" else d for d in python.distributions
    )
    inventory = with_python(inventory, distributions=dists)
    return with_tensorflow(inventory, version=version, **build)


def darwin(inventory: Inventory) -> Inventory:
    return replace(inventory, host=replace(inventory.host, os="darwin", machine="arm64"))


# --------------------------------------------------------------------------- healthy


@pytest.mark.parametrize("make", [linux_tf221_pip, windows_tf210])
def test_healthy_machines_have_no_tensorflow_error_or_warning(make):
    findings = run(make())
    assert [f for f in findings if f.severity in (Severity.ERROR, Severity.WARNING)] == []


@pytest.mark.parametrize("make", [linux_tf221_pip, windows_tf210])
def test_healthy_machines_have_no_error_or_warning_from_any_of_these_rules(make):
    rules = [*driver.RULES, *gpu.RULES, *cudnn.RULES, *tensorflow.RULES]
    findings = [f for rule in rules for f in rule(make())]
    assert [f.id for f in findings if f.severity in (Severity.ERROR, Severity.WARNING)] == []


# --------------------------------------------------------------------------- lookups


def test_tf_release_is_strict():
    assert tf_release("2.16.1") == (2, 16)
    assert tf_release("2.22.0.dev20251101") == (2, 22)
    assert tf_release("2.x") is None and tf_release("") is None and tf_release(None) is None


def test_tf_facts_falls_back_to_the_newest_release():
    assert tf_facts("2.21.0", "linux").how == "exact"
    nearest = tf_facts("2.23.0", "linux")
    assert nearest.how == "nearest" and nearest.facts.tf_version == "2.21"
    assert tf_facts("1.15.5", "linux").facts is None
    assert tf_facts("2.x", "linux").facts is None


def test_install_requirement_per_host():
    linux, windows = linux_tf221_pip().host, windows_tf210().host
    assert install_requirement("2.21.0", linux) == "tensorflow[and-cuda]==2.21.0"
    assert install_requirement("2.12", linux) == "tensorflow==2.12.*"
    assert install_requirement("2.10.1", windows) == "tensorflow==2.10.1"
    assert install_requirement(None, linux) == "tensorflow[and-cuda]"


# --------------------------------------------------------------------------- not installed / probe


@pytest.mark.parametrize(
    ("make", "example"),
    [
        (linux_tf221_pip, "/path/to/venv/bin/python"),
        (windows_tf210, "C:\\path\\to\\venv\\Scripts\\python.exe"),
    ],
)
def test_tf_not_installed(make, example):
    inventory = make()
    python = inventory.pythons[0]
    inventory = with_python(
        inventory,
        tensorflow=None,
        distributions=tuple(d for d in python.distributions if not d.name.startswith("tensorflow")),
    )
    finding = only(run(inventory), "tf-not-installed")
    assert finding.severity is Severity.WARNING
    assert f"--python {example}" in fix_text(finding)
    assert python.executable in dict(finding.evidence)["watched interpreters"]


def test_tf_not_installed_with_no_interpreter_at_all():
    finding = only(run(replace(linux_tf221_pip(), pythons=())), "tf-not-installed")
    assert dict(finding.evidence)["watched interpreters"] == "none"


@pytest.mark.parametrize("make", [linux_tf221_pip, windows_tf210])
def test_tf_installed_is_not_reported_missing(make):
    assert by_id(run(make()), "tf-not-installed") == []


@pytest.mark.parametrize("make", [linux_tf221_pip, windows_tf210])
def test_python_probe_failed(make):
    inventory = make()
    broken = PythonEnv(
        executable=inventory.pythons[0].executable, error="did not answer within 10 s (killed)"
    )
    findings = run(replace(inventory, pythons=(broken,)))
    finding = only(findings, "python-probe-failed")
    assert finding.severity is Severity.WARNING
    assert "did not answer" in finding.detail
    assert by_id(findings, "tf-not-installed") == []  # unknown, not absent


@pytest.mark.parametrize("make", [linux_tf221_pip, windows_tf210])
def test_probe_that_worked_is_not_reported(make):
    assert by_id(run(make()), "python-probe-failed") == []


# --------------------------------------------------------------------------- several distributions


def tensorflow_and_tensorflow_cpu() -> Inventory:
    return with_dists(linux_tf221_pip(), Distribution("tensorflow-cpu", "2.21.0", LINUX_SITE))


def test_tensorflow_and_tensorflow_cpu():
    finding = only(run(tensorflow_and_tensorflow_cpu()), "tf-multiple-distributions")
    assert finding.severity is Severity.ERROR
    assert "tensorflow, tensorflow-cpu" in finding.title
    assert dict(finding.evidence)["distributions"] == "tensorflow 2.21.0, tensorflow-cpu 2.21.0"
    assert finding.fix == (
        f"{LINUX_PY} -m pip uninstall -y tensorflow tensorflow-cpu",
        f"{LINUX_PY} -m pip install 'tensorflow[and-cuda]==2.21.0'",
    )


def test_tensorflow_and_tf_nightly_windows():
    inventory = with_dists(windows_tf210(), Distribution("tf_nightly", "2.11.0.dev20220901"))
    finding = only(run(inventory), "tf-multiple-distributions")
    assert "tf-nightly" in finding.title
    assert finding.fix[1] == f"{WIN_PY} -m pip install tensorflow==2.10.1"


def test_windows_stub_and_tensorflow_intel_is_the_normal_install():
    inventory = set_tf_version(
        windows_tf210(), "2.15.0", is_cuda_build=False, distribution="tensorflow-intel"
    )
    inventory = with_dists(inventory, Distribution("tensorflow-intel", "2.15.0", WIN_SITE))
    assert by_id(run(inventory), "tf-multiple-distributions") == []


@pytest.mark.parametrize("make", [linux_tf221_pip, windows_tf210])
def test_one_distribution_is_fine(make):
    assert by_id(run(make()), "tf-multiple-distributions") == []


# --------------------------------------------------------------------------- tensorflow-gpu


def tensorflow_gpu_stub_212() -> Inventory:
    return with_dists(linux_tf221_pip(), Distribution("tensorflow-gpu", "2.12.0", LINUX_SITE))


def test_tensorflow_gpu_stub_212():
    finding = only(run(tensorflow_gpu_stub_212()), "tf-gpu-package")
    assert finding.severity is Severity.ERROR
    assert "stub" in finding.title
    assert f"{LINUX_PY} -m pip uninstall -y tensorflow-gpu" in finding.fix


def test_legacy_tensorflow_gpu_windows():
    inventory = with_dists(
        windows_tf210(), Distribution("tensorflow-gpu", "2.10.0", WIN_SITE), drop=("tensorflow",)
    )
    findings = run(inventory)
    finding = only(findings, "tf-gpu-package")
    assert finding.severity is Severity.WARNING
    assert f"{WIN_PY} -m pip install tensorflow==2.10.1" in finding.fix


def test_tensorflow_gpu_20_is_the_right_package_for_tf20():
    inventory = with_dists(
        linux_tf221_pip(), Distribution("tensorflow-gpu", "2.0.4"), drop=("tensorflow",)
    )
    assert by_id(run(inventory), "tf-gpu-package") == []


@pytest.mark.parametrize("make", [linux_tf221_pip, windows_tf210])
def test_no_tensorflow_gpu_no_finding(make):
    assert by_id(run(make()), "tf-gpu-package") == []


# --------------------------------------------------------------------------- CPU-only build


def test_tensorflow_cpu_on_linux():
    inventory = with_dists(
        linux_tf221_pip(), Distribution("tensorflow-cpu", "2.21.0"), drop=("tensorflow",)
    )
    inventory = with_tensorflow(inventory, is_cuda_build=False, distribution="tensorflow-cpu")
    finding = only(run(inventory), "tf-cpu-only-build")
    assert finding.severity is Severity.ERROR
    assert finding.fix == (
        f"{LINUX_PY} -m pip uninstall -y tensorflow-cpu",
        f"{LINUX_PY} -m pip install 'tensorflow[and-cuda]==2.21.0'",
    )


def test_cpu_build_of_tensorflow_on_linux_is_reinstalled():
    inventory = with_tensorflow(linux_tf221_pip(), is_cuda_build=False)
    finding = only(run(inventory), "tf-cpu-only-build")
    assert "--force-reinstall" in fix_text(finding)


def test_tensorflow_cpu_on_windows_tf210():
    inventory = with_dists(
        windows_tf210(), Distribution("tensorflow-cpu", "2.10.1", WIN_SITE), drop=("tensorflow",)
    )
    inventory = with_tensorflow(inventory, is_cuda_build=False, distribution="tensorflow-cpu")
    finding = only(run(inventory), "tf-cpu-only-build")
    assert f"{WIN_PY} -m pip install tensorflow==2.10.1" in finding.fix
    assert "CUDA 11.2 and cuDNN 8.1" in finding.detail


def test_arm64_linux_pip_tensorflow_is_a_cpu_build():
    inventory = with_tensorflow(linux_tf221_pip(), is_cuda_build=False)
    inventory = replace(inventory, host=replace(inventory.host, machine="aarch64"))
    finding = only(run(inventory), "tf-cpu-only-build")
    assert finding.severity is Severity.WARNING


@pytest.mark.parametrize("make", [linux_tf221_pip, windows_tf210])
def test_cuda_build_is_not_cpu_only(make):
    assert by_id(run(make()), "tf-cpu-only-build") == []


# --------------------------------------------------------------------------- native Windows


def windows_tf215_native() -> Inventory:
    """TF 2.15 on native Windows: the tensorflow stub plus tensorflow-intel, a CPU build."""
    inventory = set_tf_version(
        windows_tf210(),
        "2.15.0",
        is_cuda_build=False,
        cuda_version=None,
        cudnn_version=None,
        distribution="tensorflow-intel",
        compute_capabilities=(),
        build_info=(("is_cuda_build", "False"),),
    )
    return with_dists(inventory, Distribution("tensorflow-intel", "2.15.0", WIN_SITE))


def test_windows_tf215_native():
    findings = run(windows_tf215_native())
    finding = only(findings, "tf-windows-native-no-gpu")
    assert finding.severity is Severity.ERROR
    assert "2.10" in finding.detail
    text = fix_text(finding)
    assert "wsl --install -d Ubuntu" in text
    assert "'tensorflow[and-cuda]'" in text
    assert f'{WIN_PY} -m pip install "tensorflow<2.11"' in text
    assert "cudnn=8.1.0" in text
    assert by_id(findings, "tf-cpu-only-build") == []
    assert by_id(findings, "tf-multiple-distributions") == []


def test_windows_tf221_on_python_312_gets_a_python_310_venv():
    inventory = set_tf_version(windows_tf210(), "2.21.0", is_cuda_build=False)
    inventory = with_python(inventory, version="3.12.4")
    text = fix_text(only(run(inventory), "tf-windows-native-no-gpu"))
    assert "py -3.10 -m venv" in text
    assert 'C:\\venvs\\tf210\\Scripts\\python.exe -m pip install "tensorflow<2.11"' in text


def test_linux_tf215_is_not_windows_native():
    inventory = set_tf_version(linux_tf221_pip(), "2.15.0")
    assert by_id(run(inventory), "tf-windows-native-no-gpu") == []


def test_windows_tf210_is_the_last_native_gpu_release():
    assert by_id(run(windows_tf210()), "tf-windows-native-no-gpu") == []


def test_macos_is_info_only():
    findings = run(darwin(linux_tf221_pip()))
    finding = only(findings, "tf-macos-no-cuda")
    assert finding.severity is Severity.INFO
    assert "tensorflow-metal" in fix_text(finding)
    assert by_id(findings, "tf-cpu-only-build") == []


@pytest.mark.parametrize("make", [linux_tf221_pip, windows_tf210])
def test_not_macos_no_macos_finding(make):
    assert by_id(run(make()), "tf-macos-no-cuda") == []


# --------------------------------------------------------------------------- broken installs


@pytest.mark.parametrize("make", [linux_tf221_pip, windows_tf210])
def test_tf_files_missing(make):
    inventory = make()
    package = inventory.pythons[0].tensorflow.package_dir
    missing = tuple(f"{package}/lib{n}.so" for n in range(7))
    finding = only(run(with_tensorflow(inventory, missing_files=missing)), "tf-files-missing")
    assert finding.severity is Severity.ERROR
    assert "(and 2 more)" in dict(finding.evidence)["missing"]
    assert "--force-reinstall --no-deps" in fix_text(finding)
    assert "tensorflow==" in fix_text(finding)


@pytest.mark.parametrize("make", [linux_tf221_pip, windows_tf210])
def test_no_missing_files_no_finding(make):
    assert by_id(run(make()), "tf-files-missing") == []


@pytest.mark.parametrize("make", [linux_tf221_pip, windows_tf210])
def test_tf_build_info_unreadable(make):
    inventory = with_tensorflow(
        make(),
        error="cannot parse build_info.py: invalid syntax",
        build_info=(),
        cuda_version=None,
        is_cuda_build=None,
    )
    finding = only(run(inventory), "tf-build-info-unreadable")
    assert finding.severity is Severity.WARNING
    assert "invalid syntax" in finding.detail


@pytest.mark.parametrize("make", [linux_tf221_pip, windows_tf210])
def test_readable_build_info_no_finding(make):
    assert by_id(run(make()), "tf-build-info-unreadable") == []


# --------------------------------------------------------------------------- versions


def test_newer_tf_version_uses_the_nearest_release():
    inventory = set_tf_version(linux_tf221_pip(), "2.22.0")
    finding = only(run(inventory), "tf-version-unknown")
    assert finding.severity is Severity.INFO
    assert "2.21" in finding.detail


@pytest.mark.parametrize("make", [linux_tf221_pip, windows_tf210])
@pytest.mark.parametrize("version", ["2.x", "1.15.5", ""])
def test_unknown_tf_version_is_a_warning(make, version):
    inventory = set_tf_version(make(), version)
    findings = run(inventory)
    finding = only(findings, "tf-version-unknown")
    assert finding.severity is Severity.WARNING
    assert by_id(findings, "python-version-unsupported") == []


@pytest.mark.parametrize("make", [linux_tf221_pip, windows_tf210])
def test_known_tf_version_no_finding(make):
    assert by_id(run(make()), "tf-version-unknown") == []


def python_313_on_tf215() -> Inventory:
    inventory = set_tf_version(linux_tf221_pip(), "2.15.0", cuda_version="12.2")
    return with_python(inventory, version="3.13.1")


def test_python_313_on_tf215():
    finding = only(run(python_313_on_tf215()), "python-version-unsupported")
    assert finding.severity is Severity.ERROR
    assert "3.9-3.11" in finding.title
    text = fix_text(finding)
    assert "python3.11 -m venv" in text
    assert "'tensorflow[and-cuda]==2.21.*'" in text  # the newest release with cp313 wheels


def test_python_311_on_windows_tf210():
    inventory = with_python(windows_tf210(), version="3.11.9")
    finding = only(run(inventory), "python-version-unsupported")
    assert "3.7-3.10" in finding.title
    text = fix_text(finding)
    assert "py -3.10 -m venv" in text
    assert "upgrade" not in text.lower()  # no newer native-Windows GPU release exists


def test_python_below_the_range():
    inventory = with_python(linux_tf221_pip(), version="3.9.18")  # TF 2.21 dropped 3.9
    assert only(run(inventory), "python-version-unsupported").severity is Severity.ERROR


@pytest.mark.parametrize("make", [linux_tf221_pip, windows_tf210])
@pytest.mark.parametrize("version", ["", "garbage", "3"])
def test_unreadable_python_version_never_raises(make, version):
    assert by_id(run(with_python(make(), version=version)), "python-version-unsupported") == []


@pytest.mark.parametrize("make", [linux_tf221_pip, windows_tf210])
def test_python_32bit(make):
    finding = only(run(with_python(make(), bits=32)), "python-32bit")
    assert finding.severity is Severity.ERROR
    if make is windows_tf210:
        assert "64-bit" in fix_text(finding) and "py -3.10-64" in fix_text(finding)


@pytest.mark.parametrize("make", [linux_tf221_pip, windows_tf210])
def test_python_64bit_is_fine(make):
    assert by_id(run(make()), "python-32bit") == []


# --------------------------------------------------------------------------- malformed facts


@pytest.mark.parametrize("make", [linux_tf221_pip, windows_tf210])
def test_malformed_facts_never_raise_in_any_of_these_rules(make):
    rules = [*driver.RULES, *gpu.RULES, *cudnn.RULES, *tensorflow.RULES]
    bad_tf = TensorflowBuild(
        package_dir="",
        version="2.x",
        cuda_version="garbage",
        cudnn_version="",
        compute_capabilities=("", "sm_x"),
        build_info=(("cuda_version", ""),),
    )
    weird = PythonEnv(
        executable="",
        version="x.y",
        bits=0,
        distributions=(Distribution("TensorFlow_GPU", "garbage"), Distribution("tensorflow", "")),
        tensorflow=bad_tf,
    )
    inventory = replace(make(), pythons=(weird, *make().pythons))
    inventory = replace(
        inventory,
        driver=replace(inventory.driver, driver_version="garbage", cuda_driver_version=None),
    )
    for rule in rules:
        for finding in rule(inventory):
            assert isinstance(finding, Finding)
