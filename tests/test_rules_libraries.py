"""Rules about the library files TF loads, on Linux and Windows facts.

Each scenario is a real-world breakage built from the healthy scenarios with
record.replace; the rules must name it once, with the fix for that OS.
"""

from __future__ import annotations

import pytest

from monitor import compat
from monitor.model import (
    Distribution,
    DriverInfo,
    EnvironmentInfo,
    Finding,
    Inventory,
    LibraryFile,
    LibraryResolution,
    PathEntry,
    PythonEnv,
    Severity,
)
from monitor.record import replace
from monitor.rules import evaluate, libraries
from monitor.rules.libraries import (
    library_not_found,
    library_shadowed,
    library_unloadable,
    library_wrong_version,
    nvidia_wheels_mixed,
    parse_requirement,
    satisfies,
    wanted_major,
)
from tests.scenarios import (
    LINUX_PY,
    LINUX_SITE,
    WIN_CUDA,
    WIN_PY,
    linux_tf221_pip,
    windows_tf210,
    with_python,
    with_tensorflow,
)

MY_IDS = {
    "library-not-found",
    "library-wrong-version",
    "library-shadowed",
    "library-unloadable",
    "nvidia-wheels-mixed",
}

AND_CUDA_221 = (
    *(
        f'{spec}; extra == "and-cuda"'
        for spec in (
            "nvidia-cublas-cu12<13.0,>=12.5.3.2",
            "nvidia-cuda-cupti-cu12<13.0,>=12.5.82",
            "nvidia-cuda-runtime-cu12<13.0,>=12.5.82",
            "nvidia-cudnn-cu12<10.0,>=9.3.0.75",
            "nvidia-nccl-cu12<3.0,>=2.27.7",
        )
    ),
    "numpy>=1.26.0",
)


# --------------------------------------------------------------------------- helpers


def run(rule, inventory: Inventory) -> list[Finding]:
    return list(rule(inventory))


def all_mine(inventory: Inventory) -> list[Finding]:
    return [f for rule in libraries.RULES for f in rule(inventory)]


def change_libraries(inventory: Inventory, roles=(), wanted=(), **changes) -> Inventory:
    """The inventory with the resolutions of `roles` / `wanted` file names changed."""
    libs = tuple(
        replace(res, **changes) if res.role in roles or res.wanted in wanted else res
        for res in inventory.libraries
    )
    return replace(inventory, libraries=libs)


def library(inventory: Inventory, wanted: str) -> LibraryResolution:
    return next(res for res in inventory.libraries if res.wanted == wanted)


def without_distributions(inventory: Inventory, *names: str) -> Inventory:
    python = inventory.pythons[0]
    kept = tuple(d for d in python.distributions if d.name not in names)
    return with_python(inventory, distributions=kept)


def with_distributions(inventory: Inventory, *dists: Distribution) -> Inventory:
    python = inventory.pythons[0]
    names = {d.name for d in dists}
    kept = tuple(d for d in python.distributions if d.name not in names)
    return with_python(inventory, distributions=(*kept, *dists))


def with_ld_library_path(inventory: Inventory, *dirs: str, cuda: str | None = None) -> Inventory:
    env = inventory.environment
    return replace(
        inventory,
        environment=replace(
            env,
            variables=(*env.variables, ("LD_LIBRARY_PATH", ":".join(dirs))),
            ld_library_path=tuple(PathEntry(d, cuda_version=cuda) for d in dirs),
        ),
    )


def only(findings: list[Finding], finding_id: str) -> Finding:
    matching = [f for f in findings if f.id == finding_id]
    assert len(matching) == 1, findings
    return matching[0]


def fix_text(finding: Finding) -> str:
    """The fix steps as one text, shell quotes dropped (quoting style is fixes.py's choice)."""
    return "\n".join(finding.fix).replace('"', "").replace("'", "")


def evidence_text(finding: Finding) -> str:
    return "\n".join(f"{k}: {v}" for k, v in finding.evidence)


# --------------------------------------------------------------------------- named scenarios


def removed_cudart_wheel() -> Inventory:
    """`pip uninstall nvidia-cuda-runtime-cu12` in a TF 2.21 venv: libcudart.so.12 is gone."""
    inv = with_tensorflow(linux_tf221_pip(), requires=AND_CUDA_221)
    inv = without_distributions(inv, "nvidia-cuda-runtime-cu12")
    return change_libraries(inv, roles=("cudart",), resolved=None)


def cudnn_wheel_removed_optional_cupti_missing() -> Inventory:
    """The cuDNN wheel removed (all 8 cuDNN 9 files gone); CUPTI's file deleted by hand."""
    inv = without_distributions(linux_tf221_pip(), "nvidia-cudnn-cu12")
    return change_libraries(inv, roles=("cudnn", "cupti"), resolved=None)


SYSTEM_CUDA = "/usr/local/cuda-12.2/lib64"


def system_cuda_on_ld_library_path_shadows_pip() -> Inventory:
    """A system CUDA 12.2 in LD_LIBRARY_PATH wins over the pip cuBLAS 12.9 (searched first)."""
    inv = with_ld_library_path(linux_tf221_pip(), SYSTEM_CUDA, cuda="12.2")
    libs = []
    for res in inv.libraries:
        if res.role in ("cublas", "cublasLt"):
            pip_copy = res.resolved
            system = LibraryFile(
                path=f"{SYSTEM_CUDA}/{res.wanted}",
                via="LD_LIBRARY_PATH",
                soname=res.wanted,
                version="12.2.5.6",
                version_source="file name",
            )
            res = replace(res, resolved=system, candidates=(pip_copy,))
        libs.append(res)
    return replace(inv, libraries=tuple(libs))


def cudart12_symlink_to_cudart11() -> Inventory:
    """Someone ran `ln -s libcudart.so.11.0 libcudart.so.12` in a dir on LD_LIBRARY_PATH."""
    inv = with_ld_library_path(linux_tf221_pip(), "/opt/hacks/lib")
    pip_copy = library(inv, "libcudart.so.12").resolved
    bad = LibraryFile(
        path="/opt/hacks/lib/libcudart.so.12",
        via="LD_LIBRARY_PATH",
        soname="libcudart.so.11.0",
        version="11.8.89",
        version_source="version function",
    )
    return change_libraries(inv, roles=("cudart",), resolved=bad, candidates=(pip_copy,))


def truncated_library_first() -> Inventory:
    """An interrupted copy of libcudart.so.12 (4 KiB) in the first LD_LIBRARY_PATH dir."""
    inv = with_ld_library_path(linux_tf221_pip(), "/home/ada/lib")
    pip_copy = library(inv, "libcudart.so.12").resolved
    broken = LibraryFile(
        path="/home/ada/lib/libcudart.so.12",
        via="LD_LIBRARY_PATH",
        error="malformed ELF file: file too short",
    )
    return change_libraries(inv, roles=("cudart",), resolved=broken, candidates=(pip_copy,))


def tf_and_torch_mixed_cudnn() -> Inventory:
    """TF 2.18 and torch 2.5.1 in one venv: torch pinned nvidia-cudnn-cu12 9.1.0.70."""
    inv = with_tensorflow(linux_tf221_pip(), version="2.18.0")
    return with_distributions(
        inv,
        Distribution("tensorflow", "2.18.0", LINUX_SITE),
        Distribution("torch", "2.5.1", LINUX_SITE),
        Distribution("nvidia-cudnn-cu12", "9.1.0.70", LINUX_SITE),
    )


def cu11_and_cu12_wheels() -> Inventory:
    """A TF 2.14 leftover: nvidia-cublas-cu11 next to TF 2.21's nvidia-cublas-cu12."""
    return with_distributions(
        linux_tf221_pip(),
        Distribution("nvidia-cublas-cu11", "11.11.3.6", LINUX_SITE),
        Distribution("nvidia-cudnn-cu11", "8.7.0.84", LINUX_SITE),
    )


def windows_cudart_missing_from_path() -> Inventory:
    """CUDA 11.2 is installed, but its bin directory fell off PATH."""
    inv = windows_tf210()
    env = inv.environment
    path = tuple(e for e in env.path if not e.path.endswith("\\bin"))
    variables = tuple(
        (k, ";".join(e.path for e in path) if k == "PATH" else v) for k, v in env.variables
    )
    inv = replace(inv, environment=replace(env, path=path, variables=variables))
    found = LibraryFile(path=f"{WIN_CUDA}\\bin\\cudart64_110.dll", via="CUDA_PATH")
    return change_libraries(inv, wanted=("cudart64_110.dll",), resolved=None, candidates=(found,))


def linux_tf211_toolkit() -> Inventory:
    """TF 2.11 on Linux: no pip CUDA wheels, CUDA 11.2 + cuDNN 8.1 from a toolkit."""
    inv = with_tensorflow(
        linux_tf221_pip(), version="2.11.0", cuda_version="11.2", cudnn_version="8", requires=()
    )
    inv = with_python(
        inv,
        distributions=(
            Distribution("tensorflow", "2.11.0", LINUX_SITE),
            Distribution("keras", "2.11.0", LINUX_SITE),
        ),
    )
    libs = []
    for name in compat.required_libraries("11.2", "8.1", "linux"):
        file = LibraryFile(
            path=f"/usr/local/cuda-11.2/lib64/{name.file_name}",
            via="ld.so.cache",
            soname=name.file_name,
        )
        libs.append(
            LibraryResolution(
                role=name.role,
                wanted=name.file_name,
                python=LINUX_PY,
                required=name.required,
                resolved=file,
            )
        )
    return replace(inv, libraries=tuple(libs))


# --------------------------------------------------------------------------- healthy


@pytest.mark.parametrize("scenario", [linux_tf221_pip, windows_tf210, linux_tf211_toolkit])
def test_healthy_scenarios_have_no_library_findings(scenario):
    inventory = scenario()
    assert all_mine(inventory) == []
    findings = evaluate(inventory)
    assert not [f for f in findings if f.id in MY_IDS and f.severity is not Severity.INFO]
    assert not [f for f in findings if f.id == "rule-failed"]


# --------------------------------------------------------------------------- library-not-found


def test_removed_cudart_wheel_is_one_error_with_the_pip_fix():
    finding = only(run(library_not_found, removed_cudart_wheel()), "library-not-found")
    assert finding.severity is Severity.ERROR
    assert finding.subject == "libcudart.so.12"
    assert "libcudart.so.12" in finding.title
    fix = fix_text(finding)
    assert f"{LINUX_PY} -m pip install nvidia-cuda-runtime-cu12<13.0,>=12.5.82" in fix
    assert f"{LINUX_PY} -m pip install tensorflow[and-cuda]==2.21.0" in fix


def tensorflow_without_and_cuda() -> Inventory:
    """`pip install tensorflow nvidia-cuda-runtime-cu12`: every other CUDA wheel is missing."""
    inv = with_tensorflow(linux_tf221_pip(), requires=AND_CUDA_221)
    python = inv.pythons[0]
    kept = tuple(
        d
        for d in python.distributions
        if not d.name.startswith("nvidia-") or d.name == "nvidia-cuda-runtime-cu12"
    )
    inv = with_python(inv, distributions=kept)
    roles = [r.role for r in inv.libraries if r.role not in ("cudart", "cuda_driver", "nvml")]
    return change_libraries(inv, roles=roles, resolved=None)


def test_tensorflow_without_and_cuda_is_one_finding_with_one_command():
    findings = run(library_not_found, tensorflow_without_and_cuda())
    finding = only(findings, "library-not-found")
    assert finding.severity is Severity.ERROR
    assert finding.subject == "tensorflow[and-cuda]"
    assert "nvidia-cublas-cu12" in evidence_text(finding)
    assert "nvidia-cuda-runtime-cu12" not in evidence_text(finding)
    fix = fix_text(finding)
    assert f"{LINUX_PY} -m pip install tensorflow[and-cuda]==2.21.0" in fix
    assert "nvidia-cudnn-cu12<10.0,>=9.3.0.75" in fix


def test_missing_wheel_without_metadata_still_names_the_wheel():
    inv = without_distributions(linux_tf221_pip(), "nvidia-cuda-runtime-cu12")
    inv = change_libraries(inv, roles=("cudart",), resolved=None)
    finding = only(run(library_not_found, inv), "library-not-found")
    assert f"{LINUX_PY} -m pip install nvidia-cuda-runtime-cu12" in fix_text(finding)


def test_cudnn_wheel_removed_is_one_error_and_cupti_a_warning():
    findings = run(library_not_found, cudnn_wheel_removed_optional_cupti_missing())
    assert len(findings) == 2
    cudnn = next(f for f in findings if f.subject == "libcudnn.so.9")
    cupti = next(f for f in findings if f.subject == "libcupti.so.12")
    assert cudnn.severity is Severity.ERROR
    assert "7 more" in cudnn.title
    assert "libcudnn_graph.so.9" in evidence_text(cudnn)
    assert "nvidia-cudnn-cu12>=9.3,<10" in fix_text(cudnn)
    assert cupti.severity is Severity.WARNING
    assert "profiler" in cupti.detail
    # the cupti wheel is still installed: its files are gone, reinstall it
    assert "--force-reinstall --no-deps nvidia-cuda-cupti-cu12==12.9.79" in fix_text(cupti)


def test_tf216_missing_file_with_wheel_installed_mentions_the_symlink_workaround():
    inv = with_tensorflow(linux_tf221_pip(), version="2.16.1", cuda_version="12.3")
    inv = change_libraries(inv, roles=("cudart",), resolved=None)
    finding = only(run(library_not_found, inv), "library-not-found")
    assert "ln -svf ../nvidia/*/lib/*.so* ." in fix_text(finding)


def test_pip_file_present_but_not_on_runpath_gets_the_216_workaround():
    in_wheel = LibraryFile(
        path=f"{LINUX_SITE}/nvidia/cuda_runtime/lib/libcudart.so.12", via="pip", version="12.3.101"
    )
    inv = with_tensorflow(linux_tf221_pip(), version="2.16.1", cuda_version="12.3")
    inv = change_libraries(inv, roles=("cudart",), resolved=None, candidates=(in_wheel,))
    finding = only(run(library_not_found, inv), "library-not-found")
    fix = fix_text(finding)
    assert f"cd {LINUX_SITE}/tensorflow && ln -svf ../nvidia/*/lib/*.so* ." in fix
    assert f"export LD_LIBRARY_PATH={LINUX_SITE}/nvidia/cuda_runtime/lib" in fix
    assert "pip install" not in fix


def test_driver_library_outside_the_loader_path_gets_an_ld_so_conf_entry():
    wsl = LibraryFile(path="/usr/lib/wsl/lib/libcuda.so.1", via="driver", soname="libcuda.so.1")
    inv = change_libraries(
        linux_tf221_pip(), roles=("cuda_driver",), resolved=None, candidates=(wsl,)
    )
    finding = only(run(library_not_found, inv), "library-not-found")
    assert "echo /usr/lib/wsl/lib | sudo tee /etc/ld.so.conf.d/" in fix_text(finding)


def test_stale_ld_so_cache_says_run_ldconfig():
    listed = LibraryFile(path="/opt/cuda-11.2/lib64/libcudart.so.11.0", via="ld.so.conf")
    inv = change_libraries(
        linux_tf211_toolkit(), wanted=("libcudart.so.11.0",), resolved=None, candidates=(listed,)
    )
    finding = only(run(library_not_found, inv), "library-not-found")
    assert "sudo ldconfig" in fix_text(finding)


def test_file_without_its_soname_link_says_create_it():
    unlinked = LibraryFile(
        path="/usr/local/cuda-11.2/lib64/libcudart.so.11.2.152",
        via="toolkit",
        error="no libcudart.so.11.0 link next to it (run ldconfig or create the link): the "
        "loader cannot find it by that name",
    )
    inv = change_libraries(
        linux_tf211_toolkit(), wanted=("libcudart.so.11.0",), resolved=None, candidates=(unlinked,)
    )
    finding = only(run(library_not_found, inv), "library-not-found")
    assert "ln -s libcudart.so.11.2.152 /usr/local/cuda-11.2/lib64/libcudart.so.11.0" in fix_text(
        finding
    )


def test_old_linux_tf_gets_the_toolkit_fix():
    inv = change_libraries(linux_tf211_toolkit(), wanted=("libcudart.so.11.0",), resolved=None)
    finding = only(run(library_not_found, inv), "library-not-found")
    fix = fix_text(finding)
    assert "CUDA 11.2" in fix and "cuDNN 8.1" in fix
    assert "export LD_LIBRARY_PATH=/usr/local/cuda-11.2/lib64" in fix
    assert "pip install" not in fix


def test_old_linux_tf_file_elsewhere_says_which_directory_to_add():
    elsewhere = LibraryFile(path="/opt/cuda-11.2/lib64/libcudart.so.11.0", via="default")
    inv = change_libraries(
        linux_tf211_toolkit(),
        wanted=("libcudart.so.11.0",),
        resolved=None,
        candidates=(elsewhere,),
    )
    finding = only(run(library_not_found, inv), "library-not-found")
    assert "export LD_LIBRARY_PATH=/opt/cuda-11.2/lib64" in fix_text(finding)


def test_windows_cudart_missing_from_path_says_add_its_bin_to_path():
    finding = only(run(library_not_found, windows_cudart_missing_from_path()), "library-not-found")
    assert finding.severity is Severity.ERROR
    assert finding.subject == "cudart64_110.dll"
    fix = fix_text(finding)
    assert f"{WIN_CUDA}\\bin" in fix
    assert "SetEnvironmentVariable" in fix
    assert "pip" not in fix


def test_windows_cudnn_missing_without_copy_says_install_cudnn_81():
    inv = change_libraries(windows_tf210(), roles=("cudnn",), resolved=None)
    finding = only(run(library_not_found, inv), "library-not-found")
    assert finding.subject == "cudnn64_8.dll"
    assert "cuDNN 8.1" in fix_text(finding)
    assert WIN_CUDA in fix_text(finding)


def test_optional_library_missing_on_windows_is_a_warning():
    inv = change_libraries(windows_tf210(), roles=("cupti",), resolved=None)
    finding = only(run(library_not_found, inv), "library-not-found")
    assert finding.severity is Severity.WARNING
    assert "CUPTI" in fix_text(finding)


def test_missing_driver_library_gets_the_driver_fix():
    inv = change_libraries(linux_tf221_pip(), roles=("cuda_driver",), resolved=None)
    finding = only(run(library_not_found, inv), "library-not-found")
    assert finding.severity is Severity.ERROR
    assert "nvidia-driver" in fix_text(finding)
    wsl = replace(inv, host=replace(inv.host, is_wsl=True))
    assert "/usr/lib/wsl/lib" in fix_text(only(run(library_not_found, wsl), "library-not-found"))
    win = change_libraries(windows_tf210(), roles=("cuda_driver",), resolved=None)
    assert "NVIDIA" in fix_text(only(run(library_not_found, win), "library-not-found"))


def test_no_driver_at_all_is_left_to_the_driver_rules():
    inv = change_libraries(linux_tf221_pip(), roles=("cuda_driver", "nvml"), resolved=None)
    inv = replace(
        inv,
        driver=DriverInfo(
            nvml_loaded=False,
            error="NVML Shared Library Not Found",
            error_code="NVML_ERROR_LIBRARY_NOT_FOUND",
        ),
    )
    assert run(library_not_found, inv) == []


def test_cpu_only_build_needs_no_cuda_libraries():
    inv = with_tensorflow(removed_cudart_wheel(), is_cuda_build=False)
    assert run(library_not_found, inv) == []


def test_windows_vc_runtime_is_left_to_the_windows_rules():
    inv = change_libraries(windows_tf210(), roles=("msvc_runtime",), resolved=None)
    assert run(library_not_found, inv) == []


def test_on_path_only_is_not_reported_as_not_found():
    copy = LibraryFile(path="C:\\tools\\cudart64_110.dll", via="PATH")
    inv = change_libraries(
        windows_tf210(), wanted=("cudart64_110.dll",), resolved=None, on_path_only=copy
    )
    assert run(library_not_found, inv) == []


def test_two_interpreters_get_distinct_subjects():
    inv = removed_cudart_wheel()
    other_py = "/home/ada/venvs/tf2/bin/python"
    second = replace(inv.pythons[0], executable=other_py)
    extra = tuple(replace(r, python=other_py) for r in inv.libraries if r.role == "cudart")
    inv = replace(inv, pythons=(*inv.pythons, second), libraries=(*inv.libraries, *extra))
    findings = run(library_not_found, inv)
    assert len(findings) == 2
    assert len({f.subject for f in findings}) == 2
    assert any(other_py in fix_text(f) for f in findings)


# --------------------------------------------------------------------------- wrong version


def test_cudart12_symlink_to_cudart11_is_wrong_version_not_shadowed():
    inv = cudart12_symlink_to_cudart11()
    findings = all_mine(inv)
    finding = only(findings, "library-wrong-version")
    assert not [f for f in findings if f.id == "library-shadowed"]
    assert finding.severity is Severity.ERROR
    assert finding.subject == "libcudart.so.12"
    assert "libcudart.so.11.0" in finding.title
    assert "LD_LIBRARY_PATH" in finding.detail
    assert "/opt/hacks/lib/libcudart.so.12" in evidence_text(finding)
    assert f"{LINUX_SITE}/nvidia/cuda_runtime/lib/libcudart.so.12" in evidence_text(finding)
    fix = fix_text(finding)
    assert "rm /opt/hacks/lib/libcudart.so.12" in fix
    assert "unset LD_LIBRARY_PATH" in fix


def cudnn8_file_named_libcudnn_so_9() -> Inventory:
    """The cuDNN wheel's libcudnn.so.9 overwritten by a cuDNN 8.9.7 file."""
    bad = LibraryFile(
        path=f"{LINUX_SITE}/nvidia/cudnn/lib/libcudnn.so.9",
        via="RUNPATH",
        soname="libcudnn.so.8",
        version="8.9.7",
        version_source="version function",
    )
    return change_libraries(linux_tf221_pip(), wanted=("libcudnn.so.9",), resolved=bad)


def cudnn7_file_named_cudnn64_8() -> Inventory:
    """A cuDNN 7.6.5 DLL renamed to cudnn64_8.dll in the CUDA toolkit's bin directory."""
    bad = LibraryFile(
        path=f"{WIN_CUDA}\\bin\\cudnn64_8.dll",
        via="PATH",
        version="7.6.5",
        version_source="version function",
    )
    return change_libraries(windows_tf210(), wanted=("cudnn64_8.dll",), resolved=bad)


def test_cudnn9_name_on_a_cudnn8_file_is_wrong_version():
    finding = only(
        run(library_wrong_version, cudnn8_file_named_libcudnn_so_9()), "library-wrong-version"
    )
    assert "libcudnn.so.8" in finding.title
    assert "--force-reinstall --no-deps nvidia-cudnn-cu12==9.10.2.21" in fix_text(finding)


def test_version_alone_can_tell_the_wrong_major():
    finding = only(
        run(library_wrong_version, cudnn7_file_named_cudnn64_8()), "library-wrong-version"
    )
    assert finding.subject == "cudnn64_8.dll"
    assert "del" in fix_text(finding)


@pytest.mark.parametrize("make", [cudnn8_file_named_libcudnn_so_9, cudnn7_file_named_cudnn64_8])
def test_cudnn_of_another_major_is_one_finding_across_rule_modules(make):
    """cudnn.cudnn-version-mismatch leaves a different major to library-wrong-version."""
    findings = evaluate(make())
    only(findings, "library-wrong-version")
    assert [f for f in findings if f.id == "cudnn-version-mismatch"] == []


@pytest.mark.parametrize(
    ("wanted", "file"),
    [
        # CUPTI files carry year versions: never compared
        (
            "libcupti.so.12",
            LibraryFile(path="/x/libcupti.so.12", soname="libcupti.so.12", version="2023.1.1"),
        ),
        # driver libraries: version is the driver's
        (
            "libcuda.so.1",
            LibraryFile(path="/x/libcuda.so.1", soname="libcuda.so.1", version="570.133.07"),
        ),
        # same major, newer minor
        (
            "libcudnn.so.9",
            LibraryFile(path="/x/libcudnn.so.9", soname="libcudnn.so.9", version="9.10.2"),
        ),
        # nothing known
        ("libcublas.so.12", LibraryFile(path="/x/libcublas.so.12")),
    ],
)
def test_wrong_version_does_not_fire_on_right_or_unknown_files(wanted, file):
    inv = change_libraries(linux_tf221_pip(), wanted=(wanted,), resolved=file)
    assert run(library_wrong_version, inv) == []


# --------------------------------------------------------------------------- shadowed


def test_system_cuda_on_ld_library_path_shadows_pip():
    findings = all_mine(system_cuda_on_ld_library_path_shadows_pip())
    finding = only(findings, "library-shadowed")
    assert [f.id for f in findings] == ["library-shadowed"]
    assert finding.severity is Severity.WARNING
    assert finding.subject == SYSTEM_CUDA
    evidence = evidence_text(finding)
    assert f"{SYSTEM_CUDA}/libcublas.so.12 (12.2.5.6)" in evidence
    assert f"{LINUX_SITE}/nvidia/cublas/lib/libcublas.so.12 (12.9.1.4" in evidence
    assert "libcublasLt.so.12" in evidence
    fix = fix_text(finding)
    assert "unset LD_LIBRARY_PATH" in fix
    assert f"env -u LD_LIBRARY_PATH {LINUX_PY}" in fix


def test_shadowing_with_unknown_versions_is_info():
    base = system_cuda_on_ld_library_path_shadows_pip()
    libs = tuple(
        replace(r, resolved=replace(r.resolved, version=None)) if r.role in ("cublas",) else r
        for r in base.libraries
        if r.role != "cublasLt"
    )
    inv = replace(base, libraries=libs)
    finding = only(run(library_shadowed, inv), "library-shadowed")
    assert finding.severity is Severity.INFO


def test_pip_copy_without_a_file_version_gets_its_wheel_version():
    """The real pip libcudart.so.12 has no version in its name: the wheel tells it."""
    inv = with_ld_library_path(linux_tf221_pip(), "/opt/cuda-12.2/lib64")
    pip_copy = replace(library(inv, "libcudart.so.12").resolved, version=None, version_source="")
    system = LibraryFile(
        path="/opt/cuda-12.2/lib64/libcudart.so.12",
        via="LD_LIBRARY_PATH",
        soname="libcudart.so.12",
        version="12.2",
        version_source="version function",
    )
    inv = change_libraries(inv, roles=("cudart",), resolved=system, candidates=(pip_copy,))
    finding = only(run(library_shadowed, inv), "library-shadowed")
    assert finding.severity is Severity.WARNING
    assert "(12.9.79, via RUNPATH)" in evidence_text(finding)


def test_shadowing_by_an_identical_version_is_not_reported():
    base = system_cuda_on_ld_library_path_shadows_pip()
    libs = tuple(
        replace(r, resolved=replace(r.resolved, version="12.9.1.4"))
        if r.role in ("cublas", "cublasLt")
        else r
        for r in base.libraries
    )
    assert run(library_shadowed, replace(base, libraries=libs)) == []


def test_windows_earlier_path_entry_shadows_a_later_one():
    first = LibraryFile(path="C:\\tools\\cudnn\\bin\\cudnn64_8.dll", via="PATH", version="8.9.7")
    later = LibraryFile(path=f"{WIN_CUDA}\\bin\\cudnn64_8.dll", via="PATH", version="8.1.1")
    inv = change_libraries(
        windows_tf210(), wanted=("cudnn64_8.dll",), resolved=first, candidates=(later,)
    )
    finding = only(run(library_shadowed, inv), "library-shadowed")
    assert finding.severity is Severity.WARNING
    assert finding.subject == "C:\\tools\\cudnn\\bin"
    assert "Path" in fix_text(finding)


def test_windows_stray_copy_in_system32_hides_the_cuda_one():
    stray = LibraryFile(path="C:\\Windows\\System32\\cudnn64_8.dll", via="System32")
    real = LibraryFile(path=f"{WIN_CUDA}\\bin\\cudnn64_8.dll", via="PATH")
    inv = change_libraries(
        windows_tf210(), wanted=("cudnn64_8.dll",), resolved=stray, candidates=(real,)
    )
    finding = only(run(library_shadowed, inv), "library-shadowed")
    assert finding.severity is Severity.INFO  # Windows versions are not read
    assert "stray copy" in finding.title
    assert "del C:\\Windows\\System32\\cudnn64_8.dll" in fix_text(finding)


def test_driver_and_runtime_dlls_in_system32_are_not_stray():
    other = LibraryFile(path="C:\\Program Files\\NVIDIA Corporation\\NVSMI\\nvml.dll", via="PATH")
    inv = change_libraries(windows_tf210(), roles=("nvml", "msvc_runtime"), candidates=(other,))
    assert run(library_shadowed, inv) == []


def test_versions_told_to_different_precision_are_the_same():
    base = system_cuda_on_ld_library_path_shadows_pip()
    libs = tuple(
        replace(r, resolved=replace(r.resolved, version="12.9"))
        if r.role in ("cublas", "cublasLt")
        else r
        for r in base.libraries
    )
    assert run(library_shadowed, replace(base, libraries=libs)) == []


# --------------------------------------------------------------------------- unloadable


def test_truncated_library_first_is_unloadable():
    findings = all_mine(truncated_library_first())
    finding = only(findings, "library-unloadable")
    assert [f.id for f in findings] == ["library-unloadable"]
    assert finding.severity is Severity.ERROR
    assert "file too short" in finding.title
    fix = fix_text(finding)
    assert "file -L /home/ada/lib/libcudart.so.12" in fix
    assert "unset LD_LIBRARY_PATH" in fix


def test_broken_pip_file_says_reinstall_its_wheel():
    broken = LibraryFile(
        path=f"{LINUX_SITE}/nvidia/cuda_cupti/lib/libcupti.so.12",
        via="RUNPATH",
        error="not an ELF file",
    )
    inv = change_libraries(linux_tf221_pip(), roles=("cupti",), resolved=broken)
    finding = only(run(library_unloadable, inv), "library-unloadable")
    assert finding.severity is Severity.WARNING  # optional library
    assert "--force-reinstall --no-deps nvidia-cuda-cupti-cu12==12.9.79" in fix_text(finding)


def test_windows_broken_dll_is_unloadable():
    broken = LibraryFile(path=f"{WIN_CUDA}\\bin\\cublas64_11.dll", via="PATH", error="not a PE")
    inv = change_libraries(windows_tf210(), wanted=("cublas64_11.dll",), resolved=broken)
    finding = only(run(library_unloadable, inv), "library-unloadable")
    assert finding.severity is Severity.ERROR
    assert "file -L" not in fix_text(finding)


# --------------------------------------------------------------------------- nvidia wheels


def test_tf_and_torch_mixed_cudnn():
    finding = only(run(nvidia_wheels_mixed, tf_and_torch_mixed_cudnn()), "nvidia-wheels-mixed")
    assert finding.severity is Severity.WARNING
    assert finding.subject == "nvidia-cudnn-cu12"
    assert "9.1.0.70" in finding.title and "torch" in finding.title
    assert ">=9.3" in evidence_text(finding)
    fix = fix_text(finding)
    assert "python3 -m venv /home/ada/venvs/torch" in fix
    assert f"{LINUX_PY} -m pip uninstall -y torch" in fix
    assert "tensorflow[and-cuda]==2.18.0" in fix


def test_torch_with_a_fitting_cudnn_is_fine():
    inv = with_distributions(
        tf_and_torch_mixed_cudnn(), Distribution("nvidia-cudnn-cu12", "9.5.1.17", LINUX_SITE)
    )
    assert run(nvidia_wheels_mixed, inv) == []


def test_old_cudnn_without_another_framework_is_left_to_the_cudnn_rules():
    inv = without_distributions(tf_and_torch_mixed_cudnn(), "torch")
    assert run(nvidia_wheels_mixed, inv) == []


def test_torch_pin_outside_tf_requirements():
    requires = ('nvidia-cublas-cu12==12.5.3.2; extra == "and-cuda"',)
    inv = with_tensorflow(tf_and_torch_mixed_cudnn(), requires=requires)
    inv = with_distributions(
        inv,
        Distribution("nvidia-cudnn-cu12", "9.3.0.75", LINUX_SITE),
        Distribution("nvidia-cublas-cu12", "12.4.5.8", LINUX_SITE),
    )
    finding = only(run(nvidia_wheels_mixed, inv), "nvidia-wheels-mixed")
    assert finding.subject == "nvidia-cublas-cu12"
    assert "nvidia-cublas-cu12==12.5.3.2" in evidence_text(finding)


def test_cu11_and_cu12_wheels_for_one_component_is_an_error():
    finding = only(run(nvidia_wheels_mixed, cu11_and_cu12_wheels()), "nvidia-wheels-mixed")
    assert finding.severity is Severity.ERROR
    assert finding.subject == "cu11+cu12"
    assert "nvidia-cublas" in finding.detail
    assert "cu12" in finding.detail
    fix = fix_text(finding)
    assert f"{LINUX_PY} -m pip uninstall -y nvidia-cublas-cu11 nvidia-cudnn-cu11" in fix
    assert "--force-reinstall --no-deps" in fix and "nvidia-cublas-cu12==12.9.1.4" in fix


def test_different_majors_on_different_components_is_a_warning():
    inv = with_distributions(
        linux_tf221_pip(), Distribution("nvidia-cuda-nvrtc-cu11", "11.8.89", LINUX_SITE)
    )
    finding = only(run(nvidia_wheels_mixed, inv), "nvidia-wheels-mixed")
    assert finding.severity is Severity.WARNING


def test_wheel_names_are_normalized():
    inv = with_distributions(
        linux_tf221_pip(), Distribution("NVIDIA_cuBLAS_cu11", "11.11.3.6", LINUX_SITE)
    )
    finding = only(run(nvidia_wheels_mixed, inv), "nvidia-wheels-mixed")
    assert finding.severity is Severity.ERROR


def test_windows_env_without_nvidia_wheels_is_fine():
    inv = with_distributions(windows_tf210(), Distribution("torch", "2.5.1", "C:\\x"))
    assert run(nvidia_wheels_mixed, inv) == []


# --------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("name", "major"),
    [
        ("libcudart.so.12", 12),
        ("libcudart.so.11.0", 11),
        ("/a/b/libcupti.so.11.8", 11),
        ("cudart64_110.dll", 11),
        ("cudart64_101.dll", 10),
        ("cublas64_11.dll", 11),
        ("cudnn64_8.dll", 8),
        ("C:\\x\\cudnn_ops_infer64_8.dll", 8),
        ("nvcuda.dll", None),
        ("", None),
        ("libcuda.so", None),
    ],
)
def test_wanted_major(name, major):
    assert wanted_major(name) == major


@pytest.mark.parametrize(
    ("version", "spec", "ok"),
    [
        ("9.1.0.70", ">=9.3.0.75,<10.0", False),
        ("9.10.2.21", ">=9.3.0.75,<10.0", True),
        ("12.5.3.2", "==12.5.3.2", True),
        ("12.4.5.8", "==12.5.3.2", False),
        ("12.9.1", "==12.*", True),
        ("11.8.0", "==12.*", False),
        ("2.27.7", "~=2.27", True),
        ("3.0", "~=2.27", False),
        ("1.0", "", True),
        ("garbage", ">=1", None),
        ("1.0", ">=garbage", None),
        ("1.0", "^1.0", None),
    ],
)
def test_satisfies(version, spec, ok):
    assert satisfies(version, spec) is ok


def test_parse_requirement_forms():
    req = parse_requirement('nvidia-cudnn-cu12 (<10.0,>=9.3.0.75) ; extra == "and-cuda"')
    assert req is not None
    assert (req.name, req.specifier, req.extra) == (
        "nvidia-cudnn-cu12",
        "<10.0,>=9.3.0.75",
        "and-cuda",
    )
    assert parse_requirement("") is None
    assert parse_requirement(";;;") is None


# --------------------------------------------------------------------------- malformed facts


def malformed_inventories() -> list[Inventory]:
    weird_files = (
        LibraryFile(path=""),
        LibraryFile(path="\\", soname="", version="", version_source="soname"),
        LibraryFile(path="/x/lib.so.", soname="lib.so.x", version="garbage", error=""),
        LibraryFile(path="C:\\", via="PATH", version="v", error="bad"),
    )
    weird = tuple(
        LibraryResolution(
            role=role, wanted=wanted, python=python, resolved=file, candidates=weird_files
        )
        for role in ("", "cudart", "cudnn", "cuda_driver", "msvc_runtime", "odd")
        for wanted in ("", "libcudart.so.", "cudart64_.dll", "x64_1234.dll")
        for python in ("", LINUX_PY, "/nowhere/python")
        for file in (None, *weird_files)
    )
    bad_python = PythonEnv(
        executable="",
        prefix="",
        distributions=(
            Distribution("", ""),
            Distribution("nvidia--cu", "x"),
            Distribution("nvidia-cudnn-cu99999999999999999999", ""),
            Distribution("torch", ""),
        ),
    )
    linux = linux_tf221_pip()
    base_variants = [
        replace(linux, libraries=weird),
        replace(windows_tf210(), libraries=weird),
        replace(linux, pythons=(bad_python,), libraries=weird),
        with_tensorflow(
            linux,
            version="",
            cuda_version=None,
            cudnn_version="",
            requires=("", ";", "nvidia-cudnn-cu12 ; extra ==", "x>=; extra == 'and-cuda'"),
        ),
        with_tensorflow(linux, version="garbage", cuda_version="64_", cudnn_version="64_x"),
        replace(linux, pythons=(), environment=EnvironmentInfo()),
        replace(linux, host=replace(linux.host, os="")),
        replace(linux, host=replace(linux.host, os="darwin"), libraries=weird),
    ]
    torch = with_distributions(
        base_variants[3],
        Distribution("torch", "", LINUX_SITE),
        Distribution("nvidia-cudnn-cu12", "", LINUX_SITE),
    )
    return [*base_variants, torch]


@pytest.mark.parametrize("index", range(len(malformed_inventories())))
def test_malformed_facts_never_raise(index):
    inventory = malformed_inventories()[index]
    all_mine(inventory)
    assert not [
        f
        for f in evaluate(inventory)
        if f.id == "rule-failed" and f.subject in {r.__name__ for r in libraries.RULES}
    ]


def test_windows_python_command_is_the_watched_interpreter():
    inv = change_libraries(windows_tf210(), roles=("cudart",), resolved=None)
    inv = with_python(inv, distributions=(*inv.pythons[0].distributions,))
    assert WIN_PY.startswith("C:\\")
    findings = run(library_not_found, inv)
    assert findings and all(f.link.value == "libraries" for f in findings)
