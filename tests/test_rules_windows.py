"""Rules for native Windows: the VC++ runtime, and DLLs on PATH that Python 3.8+ won't load."""

from __future__ import annotations

import pytest

from monitor.model import (
    Finding,
    Inventory,
    LibraryFile,
    LibraryResolution,
    Link,
    RuntimeDll,
    Severity,
)
from monitor.record import replace
from monitor.rules import evaluate, windows
from monitor.rules.windows import VC_REDIST_URL, dll_on_path_not_loadable, vc_runtime_missing
from tests.scenarios import WIN_PY, linux_tf221_pip, windows_tf210, with_python

MY_IDS = {"vc-runtime-missing", "dll-on-path-not-loadable"}
TOOLS = "C:\\tools\\bin"


def run(rule, inventory: Inventory) -> list[Finding]:
    return list(rule(inventory))


def all_mine(inventory: Inventory) -> list[Finding]:
    return [f for rule in windows.RULES for f in rule(inventory)]


def only(findings: list[Finding], finding_id: str) -> Finding:
    matching = [f for f in findings if f.id == finding_id]
    assert len(matching) == 1, findings
    return matching[0]


def fix_text(finding: Finding) -> str:
    return "\n".join(finding.fix)


def change_libraries(inventory: Inventory, wanted=(), roles=(), **changes) -> Inventory:
    libs = tuple(
        replace(res, **changes) if res.wanted in wanted or res.role in roles else res
        for res in inventory.libraries
    )
    return replace(inventory, libraries=libs)


def runtime_missing(inventory: Inventory, *names: str) -> Inventory:
    runtime = tuple(
        replace(dll, path=None, version=None) if dll.name in names else dll
        for dll in inventory.runtime
    )
    return replace(inventory, runtime=runtime)


# --------------------------------------------------------------------------- named scenarios


def windows_vc_redist_missing() -> Inventory:
    """A fresh Windows without the VC++ 2015-2022 redistributable."""
    names = ("msvcp140.dll", "msvcp140_1.dll", "vcruntime140.dll", "vcruntime140_1.dll")
    inv = runtime_missing(windows_tf210(), *names)
    return change_libraries(inv, roles=("msvc_runtime",), resolved=None)


def windows_msvcp140_1_on_path_only() -> Inventory:
    """An old redistributable lacks msvcp140_1.dll; a copy sits in a tools dir on PATH."""
    inv = runtime_missing(windows_tf210(), "msvcp140_1.dll")
    on_path = LibraryFile(path=f"{TOOLS}\\msvcp140_1.dll", via="PATH")
    return change_libraries(inv, wanted=("msvcp140_1.dll",), resolved=None, on_path_only=on_path)


# --------------------------------------------------------------------------- healthy


@pytest.mark.parametrize("scenario", [windows_tf210, linux_tf221_pip])
def test_healthy_scenarios_have_no_windows_findings(scenario):
    inventory = scenario()
    assert all_mine(inventory) == []
    findings = evaluate(inventory)
    assert not [f for f in findings if f.id in MY_IDS]
    assert not [f for f in findings if f.id == "rule-failed"]


# --------------------------------------------------------------------------- vc-runtime-missing


def test_windows_vc_redist_missing_is_one_error_with_the_download():
    inv = windows_vc_redist_missing()
    finding = only(run(vc_runtime_missing, inv), "vc-runtime-missing")
    assert finding.severity is Severity.ERROR
    assert finding.link is Link.RUNTIME
    assert "msvcp140_1.dll" in finding.title and "vcruntime140_1.dll" in finding.title
    assert VC_REDIST_URL in fix_text(finding)
    assert VC_REDIST_URL == "https://aka.ms/vs/17/release/vc_redist.x64.exe"
    assert run(dll_on_path_not_loadable, inv) == []
    # one cause, one story: the library rules do not repeat it
    assert not [f for f in evaluate(inv) if f.id == "library-not-found"]


def test_runtime_dll_missing_alone_fires():
    inv = runtime_missing(windows_tf210(), "vcruntime140_1.dll")
    finding = only(run(vc_runtime_missing, inv), "vc-runtime-missing")
    assert finding.title.endswith("vcruntime140_1.dll")


def test_unresolved_msvc_library_alone_fires():
    inv = change_libraries(windows_tf210(), wanted=("msvcp140.dll",), resolved=None)
    finding = only(run(vc_runtime_missing, inv), "vc-runtime-missing")
    assert "msvcp140.dll" in finding.title


def test_runtime_version_unreadable_is_not_missing():
    inv = windows_tf210()
    runtime = tuple(replace(dll, version=None, error="no version resource") for dll in inv.runtime)
    assert run(vc_runtime_missing, replace(inv, runtime=runtime)) == []


def test_linux_host_gets_no_windows_findings():
    inv = replace(windows_vc_redist_missing(), host=linux_tf221_pip().host)
    assert all_mine(inv) == []


# ------------------------------------------------------------------ dll-on-path-not-loadable


def test_windows_msvcp140_1_on_path_only():
    inv = windows_msvcp140_1_on_path_only()
    finding = only(run(dll_on_path_not_loadable, inv), "dll-on-path-not-loadable")
    assert finding.severity is Severity.ERROR
    assert finding.link is Link.RUNTIME
    assert finding.subject == "msvcp140_1.dll"
    assert "Python 3.10.11" in finding.title
    assert "PATH is not searched" in finding.detail
    assert "os.add_dll_directory()" in finding.detail
    fix = fix_text(finding)
    assert VC_REDIST_URL in fix
    assert f'os.add_dll_directory(r"{TOOLS}")' in fix
    # the on-PATH story replaces the missing story for that DLL
    assert run(vc_runtime_missing, inv) == []
    findings = evaluate(inv)
    assert not [f for f in findings if f.id in ("library-not-found", "vc-runtime-missing")]


def test_on_path_only_with_another_missing_runtime_dll_reports_both():
    inv = runtime_missing(windows_msvcp140_1_on_path_only(), "vcruntime140_1.dll")
    missing = only(run(vc_runtime_missing, inv), "vc-runtime-missing")
    assert "vcruntime140_1.dll" in missing.title
    assert "msvcp140_1.dll" not in missing.title
    only(run(dll_on_path_not_loadable, inv), "dll-on-path-not-loadable")


def test_optional_cuda_dll_on_path_only_is_a_library_warning():
    on_path = LibraryFile(path=f"{TOOLS}\\cupti64_112.dll", via="PATH")
    inv = change_libraries(windows_tf210(), roles=("cupti",), resolved=None, on_path_only=on_path)
    finding = only(run(dll_on_path_not_loadable, inv), "dll-on-path-not-loadable")
    assert finding.severity is Severity.WARNING
    assert finding.link is Link.LIBRARIES
    assert VC_REDIST_URL not in fix_text(finding)


def test_python_37_still_searches_path():
    inv = with_python(windows_msvcp140_1_on_path_only(), version="3.7.9")
    assert run(dll_on_path_not_loadable, inv) == []


def test_on_path_copy_is_moot_when_a_loadable_copy_resolves():
    good = LibraryFile(path="C:\\Windows\\System32\\msvcp140_1.dll", via="System32")
    on_path = LibraryFile(path=f"{TOOLS}\\msvcp140_1.dll", via="PATH")
    inv = change_libraries(
        windows_tf210(), wanted=("msvcp140_1.dll",), resolved=good, on_path_only=on_path
    )
    assert all_mine(inv) == []


# --------------------------------------------------------------------------- malformed facts


def malformed_inventories() -> list[Inventory]:
    base = windows_tf210()
    weird_libs = (
        LibraryResolution(role="msvc_runtime", wanted="", python="", resolved=None),
        LibraryResolution(
            role="", wanted="x.dll", python="nope", on_path_only=LibraryFile(path="")
        ),
        LibraryResolution(role="msvc_runtime", wanted="a.dll", on_path_only=LibraryFile(path="\\")),
    )
    return [
        replace(base, runtime=(RuntimeDll(""), RuntimeDll("x.dll", path=None, version="v"))),
        replace(base, libraries=weird_libs),
        replace(with_python(base, version=""), libraries=weird_libs),
        replace(with_python(base, version="garbage"), libraries=weird_libs),
        replace(base, pythons=(), libraries=weird_libs, runtime=()),
    ]


@pytest.mark.parametrize("index", range(len(malformed_inventories())))
def test_malformed_facts_never_raise(index):
    inventory = malformed_inventories()[index]
    all_mine(inventory)
    names = {r.__name__ for r in windows.RULES}
    assert not [f for f in evaluate(inventory) if f.id == "rule-failed" and f.subject in names]


def test_watched_interpreter_is_named():
    finding = only(
        run(dll_on_path_not_loadable, windows_msvcp140_1_on_path_only()),
        "dll-on-path-not-loadable",
    )
    assert any(WIN_PY in value for _, value in finding.evidence)
