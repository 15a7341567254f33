"""Rules about PATH, LD_LIBRARY_PATH, CUDA_HOME / CUDA_PATH and CUDA_VISIBLE_DEVICES."""

from __future__ import annotations

import pytest

from monitor.model import (
    CudaToolkit,
    EnvironmentInfo,
    Finding,
    GpuInfo,
    Inventory,
    Link,
    PathEntry,
    Severity,
)
from monitor.record import replace
from monitor.rules import environment, evaluate
from monitor.rules.environment import (
    cuda_home_mismatch,
    gpus_hidden,
    path_duplicate_entry,
    path_entry_missing,
    path_multiple_cuda,
    path_writable_dir,
    visible_gpus,
)
from tests.scenarios import WIN_CUDA, linux_tf221_pip, windows_tf210

MY_IDS = {
    "path-entry-missing",
    "path-duplicate-entry",
    "path-multiple-cuda",
    "path-writable-dir",
    "cuda-home-mismatch",
    "gpus-hidden",
}

WIN_CUDA_12 = "C:\\Program Files\\NVIDIA GPU Computing Toolkit\\CUDA\\v12.2"


# --------------------------------------------------------------------------- helpers


def run(rule, inventory: Inventory) -> list[Finding]:
    return list(rule(inventory))


def all_mine(inventory: Inventory) -> list[Finding]:
    return [f for rule in environment.RULES for f in rule(inventory)]


def only(findings: list[Finding], finding_id: str) -> Finding:
    matching = [f for f in findings if f.id == finding_id]
    assert len(matching) == 1, findings
    return matching[0]


def fix_text(finding: Finding) -> str:
    return "\n".join(finding.fix)


def evidence_text(finding: Finding) -> str:
    return "\n".join(f"{k}: {v}" for k, v in finding.evidence)


def with_env(
    inventory: Inventory,
    path: tuple[PathEntry, ...] | None = None,
    ld: tuple[PathEntry, ...] | None = None,
    **variables: str,
) -> Inventory:
    """The inventory with PATH / LD_LIBRARY_PATH entries and variables replaced."""
    env = inventory.environment
    sep = ";" if inventory.host.os == "windows" else ":"
    values = dict(env.variables)
    values.update(variables)
    if path is not None:
        values["PATH"] = sep.join(e.path for e in path)
    if ld is not None:
        values["LD_LIBRARY_PATH"] = ":".join(e.path for e in ld)
    return replace(
        inventory,
        environment=EnvironmentInfo(
            variables=tuple(sorted(values.items())),
            path=env.path if path is None else path,
            ld_library_path=env.ld_library_path if ld is None else ld,
        ),
    )


def linux_path(*extra_first: PathEntry) -> tuple[PathEntry, ...]:
    return (*extra_first, *linux_tf221_pip().environment.path)


# --------------------------------------------------------------------------- named scenarios


def cuda_11_8_and_12_2_on_path() -> Inventory:
    """Two toolkit installs, both added by their installers' instructions."""
    path = linux_path(
        PathEntry("/usr/local/cuda-11.8/bin", cuda_version="11.8"),
        PathEntry("/usr/local/cuda-12.2/bin", cuda_version="12.2"),
    )
    ld = (
        PathEntry("/usr/local/cuda-11.8/lib64", cuda_version="11.8"),
        PathEntry("/usr/local/cuda-12.2/lib64", cuda_version="12.2"),
        PathEntry("/opt/intel/lib"),
    )
    return with_env(linux_tf221_pip(), path=path, ld=ld)


def world_writable_dir_before_usr_bin() -> Inventory:
    """`export PATH=/srv/shared/bin:$PATH` with /srv/shared/bin mode 777."""
    return with_env(
        linux_tf221_pip(), path=linux_path(PathEntry("/srv/shared/bin", writable_by_others=True))
    )


def cuda_visible_devices_minus_one() -> Inventory:
    return with_env(linux_tf221_pip(), CUDA_VISIBLE_DEVICES="-1")


def cuda_visible_devices_uuid_of_present_gpu() -> Inventory:
    return with_env(linux_tf221_pip(), CUDA_VISIBLE_DEVICES="GPU-5d1e2b9c")


def windows_cuda_11_2_and_12_2_on_path() -> Inventory:
    inv = windows_tf210()
    path = (
        PathEntry(f"{WIN_CUDA_12}\\bin", cuda_version="12.2"),
        PathEntry(f"{WIN_CUDA_12}\\libnvvp", cuda_version="12.2"),
        *inv.environment.path,
    )
    return with_env(inv, path=path)


# --------------------------------------------------------------------------- healthy


@pytest.mark.parametrize("scenario", [linux_tf221_pip, windows_tf210])
def test_healthy_scenarios_have_no_environment_findings(scenario):
    inventory = scenario()
    assert all_mine(inventory) == []
    findings = evaluate(inventory)
    assert not [f for f in findings if f.id in MY_IDS and f.severity is not Severity.INFO]
    assert not [f for f in findings if f.id == "rule-failed"]


# --------------------------------------------------------------------------- path-multiple-cuda


def test_cuda_11_8_and_12_2_on_path():
    findings = run(path_multiple_cuda, cuda_11_8_and_12_2_on_path())
    assert {f.subject for f in findings} == {"PATH", "LD_LIBRARY_PATH"}
    ld = next(f for f in findings if f.subject == "LD_LIBRARY_PATH")
    assert ld.severity is Severity.WARNING
    assert "CUDA 11.8 comes first" in ld.title
    assert "TensorFlow 2.21.0 was built for CUDA 12.5" in ld.detail
    # pip TF brings its own CUDA: drop every toolkit directory, keep the rest
    assert "export LD_LIBRARY_PATH=/opt/intel/lib" in fix_text(ld)
    path = next(f for f in findings if f.subject == "PATH")
    assert "Keep only the CUDA 12.2 entries" in fix_text(path)
    assert "/usr/local/cuda-11.8/bin" not in fix_text(path).split("export PATH=")[1]


def test_windows_cuda_11_2_and_12_2_on_path_keeps_what_tf_210_needs():
    finding = only(
        run(path_multiple_cuda, windows_cuda_11_2_and_12_2_on_path()), "path-multiple-cuda"
    )
    assert "CUDA 12.2 comes first" in finding.title
    assert "CUDA 11.2" in finding.detail
    fix = fix_text(finding)
    assert "Keep only the CUDA 11.2 entries" in fix
    assert f"{WIN_CUDA}\\bin" in fix
    assert "Environment Variables" in fix


def test_one_cuda_version_in_several_dirs_is_fine():
    path = linux_path(
        PathEntry("/usr/local/cuda-12.2/bin", cuda_version="12.2"),
        PathEntry("/usr/local/cuda-12.2/nsight", cuda_version="12.2.1"),
    )
    assert run(path_multiple_cuda, with_env(linux_tf221_pip(), path=path)) == []


# --------------------------------------------------------------------------- path-writable-dir


def test_world_writable_dir_before_usr_bin():
    finding = only(run(path_writable_dir, world_writable_dir_before_usr_bin()), "path-writable-dir")
    assert finding.severity is Severity.WARNING
    assert finding.subject == "PATH /srv/shared/bin"
    assert "chmod o-w /srv/shared/bin" in fix_text(finding)


def test_writable_dir_after_the_system_dirs_is_fine():
    path = (
        *linux_tf221_pip().environment.path,
        PathEntry("/srv/shared/bin", writable_by_others=True),
    )
    assert run(path_writable_dir, with_env(linux_tf221_pip(), path=path)) == []


def test_writable_dir_anywhere_in_ld_library_path():
    ld = (PathEntry("/opt/lib"), PathEntry("/tmp/libs", writable_by_others=True))
    finding = only(run(path_writable_dir, with_env(linux_tf221_pip(), ld=ld)), "path-writable-dir")
    assert finding.subject == "LD_LIBRARY_PATH /tmp/libs"
    assert "position 2" in finding.detail


def test_windows_writable_dir_before_system32():
    path = (
        PathEntry("C:\\shared\\bin", writable_by_others=True),
        *windows_tf210().environment.path,
    )
    finding = only(
        run(path_writable_dir, with_env(windows_tf210(), path=path)), "path-writable-dir"
    )
    assert 'icacls "C:\\shared\\bin"' in fix_text(finding)


def test_missing_writable_dir_is_not_reported_as_writable():
    path = linux_path(PathEntry("/gone", exists=False, is_dir=False, writable_by_others=True))
    assert run(path_writable_dir, with_env(linux_tf221_pip(), path=path)) == []


# --------------------------------------------------------------------------- missing / duplicates


def test_missing_path_entry_is_info_with_a_cleaned_value():
    path = linux_path(PathEntry("/opt/old-cuda/bin", exists=False, is_dir=False))
    finding = only(
        run(path_entry_missing, with_env(linux_tf221_pip(), path=path)), "path-entry-missing"
    )
    assert finding.severity is Severity.INFO
    assert finding.subject == "PATH"
    assert "export PATH=/home/ada/venvs/tf/bin:/usr/local/bin:/usr/bin:/bin" in fix_text(finding)


def test_a_missing_entry_listed_twice_is_counted_once():
    gone = PathEntry("/opt/old-cuda/bin", exists=False, is_dir=False)
    inv = with_env(linux_tf221_pip(), path=linux_path(gone, gone))
    finding = only(run(path_entry_missing, inv), "path-entry-missing")
    assert finding.title == "PATH entry /opt/old-cuda/bin does not exist"
    assert finding.evidence == (("/opt/old-cuda/bin", "does not exist"),)


def test_a_path_with_no_existing_entry_is_never_told_to_be_unset():
    gone = tuple(PathEntry(d, exists=False, is_dir=False) for d in ("/usr/bin", "/bin", "/usr/bin"))
    finding = only(
        run(path_entry_missing, with_env(linux_tf221_pip(), path=gone)), "path-entry-missing"
    )
    assert finding.title == "2 PATH entries are missing or not directories"
    assert "unset" not in fix_text(finding)
    assert "None of the PATH entries exists" in finding.fix[0]
    # LD_LIBRARY_PATH may be emptied: nothing left to search is a fine fix there.
    ld = only(
        run(path_entry_missing, with_env(linux_tf221_pip(), ld=gone[:1])), "path-entry-missing"
    )
    assert "unset LD_LIBRARY_PATH" in fix_text(ld)


def test_windows_missing_path_entry():
    path = (
        *windows_tf210().environment.path,
        PathEntry("C:\\old\\bin", exists=False, is_dir=False),
    )
    finding = only(
        run(path_entry_missing, with_env(windows_tf210(), path=path)), "path-entry-missing"
    )
    assert "Test-Path" in fix_text(finding)


def test_empty_or_relative_entries_are_not_called_missing():
    path = linux_path(
        PathEntry("", exists=False, is_dir=False, note="empty entry: the current directory"),
        PathEntry("bin", exists=False, is_dir=False, note="relative"),
    )
    inv = with_env(linux_tf221_pip(), path=path)
    assert run(path_entry_missing, inv) == []
    assert run(path_duplicate_entry, inv) == []


def test_duplicate_path_entry_linux():
    path = linux_path(PathEntry("/usr/bin/", is_system=True))
    finding = only(
        run(path_duplicate_entry, with_env(linux_tf221_pip(), path=path)), "path-duplicate-entry"
    )
    assert finding.severity is Severity.INFO
    assert "/usr/bin" in finding.title
    assert "position 4, already at position 1" in evidence_text(finding)


def test_duplicate_path_entry_windows_ignores_case_and_trailing_backslash():
    path = (*windows_tf210().environment.path, PathEntry("c:\\windows\\SYSTEM32\\", is_system=True))
    finding = only(
        run(path_duplicate_entry, with_env(windows_tf210(), path=path)), "path-duplicate-entry"
    )
    assert "position 5, already at position 3" in evidence_text(finding)


def test_same_name_different_case_on_linux_is_not_a_duplicate():
    path = linux_path(PathEntry("/USR/BIN"))
    assert run(path_duplicate_entry, with_env(linux_tf221_pip(), path=path)) == []


# --------------------------------------------------------------------------- cuda-home-mismatch


def test_cuda_home_pointing_at_cuda_11_for_tf_221():
    inv = replace(
        linux_tf221_pip(),
        toolkits=(
            CudaToolkit("/usr/local/cuda-11.8", version="11.8.89", origin="CUDA_HOME"),
            CudaToolkit("/usr/local/cuda-12.5", version="12.5.82", origin="/usr/local/cuda-*"),
        ),
    )
    inv = with_env(inv, CUDA_HOME="/usr/local/cuda-11.8")
    finding = only(run(cuda_home_mismatch, inv), "cuda-home-mismatch")
    assert finding.severity is Severity.WARNING
    assert finding.subject == "CUDA_HOME"
    assert "CUDA 11.8" in finding.title and "12.5" in finding.title
    assert "export CUDA_HOME=/usr/local/cuda-12.5" in fix_text(finding)


def test_cuda_home_that_does_not_exist():
    inv = with_env(linux_tf221_pip(), CUDA_HOME="/usr/local/cuda-10.1")
    finding = only(run(cuda_home_mismatch, inv), "cuda-home-mismatch")
    assert "not a CUDA toolkit" in finding.title
    assert "unset CUDA_HOME" in fix_text(finding)


def test_dangling_cuda_home_reported_by_the_probe():
    inv = replace(
        linux_tf221_pip(),
        toolkits=(CudaToolkit("/opt/cuda", origin="CUDA_HOME", error="does not exist"),),
    )
    finding = only(
        run(cuda_home_mismatch, with_env(inv, CUDA_HOME="/opt/cuda")), "cuda-home-mismatch"
    )
    assert "does not exist" in finding.detail


def test_cuda_home_matching_major_is_fine():
    inv = replace(
        linux_tf221_pip(),
        toolkits=(
            CudaToolkit(
                "/usr/local/cuda-12.4",
                version="12.4.1",
                origin="CUDA_HOME; /usr/local/cuda -> cuda-12.4",
            ),
        ),
    )
    assert run(cuda_home_mismatch, with_env(inv, CUDA_HOME="/usr/local/cuda")) == []


def test_windows_cuda_path_pointing_at_12_2_for_tf_210():
    inv = windows_tf210()
    inv = replace(
        inv,
        toolkits=(
            replace(inv.toolkits[0], origin="CUDA_PATH_V11_2"),
            CudaToolkit(WIN_CUDA_12, version="12.2.140", origin="CUDA_PATH"),
        ),
    )
    inv = with_env(inv, CUDA_PATH=WIN_CUDA_12)
    finding = only(run(cuda_home_mismatch, inv), "cuda-home-mismatch")
    assert finding.subject == "CUDA_PATH"
    assert f'setx CUDA_PATH "{WIN_CUDA}"' in fix_text(finding)


def test_windows_cuda_path_matched_by_root_case_insensitively():
    inv = windows_tf210()
    inv = replace(inv, toolkits=(replace(inv.toolkits[0], origin="Program Files"),))
    inv = with_env(inv, CUDA_PATH=WIN_CUDA.upper() + "\\")
    assert run(cuda_home_mismatch, inv) == []


# --------------------------------------------------------------------------- gpus-hidden


def test_cuda_visible_devices_minus_one():
    finding = only(run(gpus_hidden, cuda_visible_devices_minus_one()), "gpus-hidden")
    assert finding.severity is Severity.ERROR
    assert finding.link is Link.GPU
    assert "'-1'" in finding.title
    assert "unset CUDA_VISIBLE_DEVICES" in fix_text(finding)
    assert "export CUDA_VISIBLE_DEVICES=0" in fix_text(finding)


def test_cuda_visible_devices_uuid_of_present_gpu():
    assert run(gpus_hidden, cuda_visible_devices_uuid_of_present_gpu()) == []


@pytest.mark.parametrize(
    "value", ["", " ", "-1", "1", "GPU-ffff", "abc,0", "NoDevFiles", ",0", "0x0"]
)
def test_values_that_hide_every_gpu(value):
    inv = with_env(linux_tf221_pip(), CUDA_VISIBLE_DEVICES=value)
    only(run(gpus_hidden, inv), "gpus-hidden")


@pytest.mark.parametrize(
    "value",
    [
        "0",
        " 0 ",
        "0,,abc",
        "0,1",
        "0,-1",
        "GPU-5D1E2B9C-0000-4000-8000-000000000001",
        "MIG-4b2e9f7a-1c3d-5e6f-7a8b-9c0d1e2f3a4b",
        "GPU-",
    ],
)
def test_values_that_leave_a_gpu_or_cannot_be_checked(value):
    inv = with_env(linux_tf221_pip(), CUDA_VISIBLE_DEVICES=value)
    assert run(gpus_hidden, inv) == []


def test_no_gpus_listed_means_nothing_to_hide():
    inv = cuda_visible_devices_minus_one()
    inv = replace(inv, driver=replace(inv.driver, gpus=()))
    assert run(gpus_hidden, inv) == []


def test_windows_cuda_visible_devices_minus_one():
    inv = with_env(windows_tf210(), CUDA_VISIBLE_DEVICES="-1")
    finding = only(run(gpus_hidden, inv), "gpus-hidden")
    assert "Remove-Item Env:CUDA_VISIBLE_DEVICES" in fix_text(finding)


def test_visible_gpus_counts_up_to_the_first_bad_entry():
    gpus = (
        GpuInfo(0, uuid="GPU-aaaa1111"),
        GpuInfo(1, uuid="GPU-aaaa2222"),
        GpuInfo(2, uuid="GPU-bbbb3333"),
    )
    assert visible_gpus("0,1,2", gpus) == (3, False)
    assert visible_gpus("2,7,0", gpus) == (1, False)
    assert visible_gpus("GPU-aaaa", gpus) == (0, False)  # ambiguous prefix
    assert visible_gpus("GPU-bbbb,GPU-aaaa1", gpus) == (2, False)
    assert visible_gpus("0,0", gpus) == (1, False)
    assert visible_gpus("1,MIG-x", gpus) == (1, True)
    assert visible_gpus("GPU-x", (GpuInfo(0),)) == (0, True)  # no UUIDs read: unknown


# --------------------------------------------------------------------------- malformed facts


def malformed_inventories() -> list[Inventory]:
    weird = (
        PathEntry(""),
        PathEntry(" "),
        PathEntry('"C:\\quoted"', cuda_version="garbage"),
        PathEntry("/x", cuda_version=""),
        PathEntry("/y", cuda_version="v"),
        PathEntry("/z", cuda_version="12", writable_by_others=True, exists=False),
        PathEntry("\\", is_system=True),
    )
    linux = linux_tf221_pip()
    odd_toolkits = (CudaToolkit(""), CudaToolkit("/a", version="x", origin=";;"))
    variants = []
    for base in (linux, windows_tf210()):
        for value in ("0,,abc", ",,,", "GPU-", "MIG-", "-", "٣", "0" * 400, "\x00"):
            inv = with_env(
                base,
                path=weird,
                ld=weird,
                CUDA_VISIBLE_DEVICES=value,
                CUDA_HOME="",
                CUDA_PATH=" x ",
            )
            variants.append(replace(inv, toolkits=odd_toolkits))
    variants.append(replace(linux, environment=EnvironmentInfo(), pythons=()))
    variants.append(replace(linux, driver=replace(linux.driver, gpus=(GpuInfo(0, uuid=""),))))
    variants.append(replace(linux, host=replace(linux.host, os="")))
    return variants


@pytest.mark.parametrize("index", range(len(malformed_inventories())))
def test_malformed_facts_never_raise(index):
    inventory = malformed_inventories()[index]
    all_mine(inventory)
    names = {r.__name__ for r in environment.RULES}
    assert not [f for f in evaluate(inventory) if f.id == "rule-failed" and f.subject in names]
