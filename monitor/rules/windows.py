"""Rules for native Windows: the Visual C++ runtime and DLLs that are on PATH but won't load.

`_pywrap_tensorflow_internal.pyd` imports MSVCP140, VCRUNTIME140 and VCRUNTIME140_1, and
`self_check.py` loads msvcp140.dll and msvcp140_1.dll with ctypes on import. Since Python 3.8
neither an extension module's dependencies nor a ctypes load by bare name search PATH: only
the application directory, System32, the module's own directory and os.add_dll_directory()
directories. So "the DLL is on PATH" is not "the DLL will load".
"""

from __future__ import annotations

from collections.abc import Iterator

from monitor.model import Finding, Inventory, LibraryResolution, Link, Severity
from monitor.rules.libraries import dirname, python_env, subject_for
from monitor.versions import at_least

VC_REDIST_URL = "https://aka.ms/vs/17/release/vc_redist.x64.exe"

_REDIST_STEPS = (
    "Install the Microsoft Visual C++ Redistributable for Visual Studio 2015-2022 (x64): "
    f"download and run {VC_REDIST_URL} (or: winget install Microsoft.VCRedist.2015+.x64).",
    "It puts msvcp140.dll, msvcp140_1.dll, vcruntime140.dll and vcruntime140_1.dll into "
    "C:\\Windows\\System32; check with: dir C:\\Windows\\System32\\msvcp140_1.dll",
    "Open a new terminal (or restart the IDE / Jupyter) and import tensorflow again.",
)


def _on_windows(inventory: Inventory) -> bool:
    return inventory.host.os == "windows"


def _loads_from_path_only(res: LibraryResolution) -> bool:
    """on_path_only is set and nothing better resolves (or the probe named the same file)."""
    if res.on_path_only is None:
        return False
    return res.resolved is None or res.resolved.path == res.on_path_only.path


def vc_runtime_missing(inventory: Inventory) -> Iterator[Finding]:
    if not _on_windows(inventory):
        return
    on_path = {res.wanted.lower() for res in inventory.libraries if _loads_from_path_only(res)}
    missing: dict[str, str] = {}
    for dll in inventory.runtime:
        if dll.path is None and dll.name:
            missing.setdefault(dll.name.lower(), dll.name)
    for res in inventory.libraries:
        if res.role == "msvc_runtime" and res.resolved is None and res.on_path_only is None:
            missing.setdefault(res.wanted.lower(), res.wanted)
    for name in on_path:  # dll-on-path-not-loadable tells that story
        missing.pop(name, None)
    if not missing:
        return
    names = sorted(missing.values(), key=str.lower)
    yield Finding(
        id="vc-runtime-missing",
        severity=Severity.ERROR,
        link=Link.RUNTIME,
        title=f"Visual C++ runtime missing: {', '.join(names)}",
        detail=(
            "TensorFlow's native module needs the Visual C++ 2015-2022 runtime "
            "(msvcp140.dll, msvcp140_1.dll, vcruntime140.dll, vcruntime140_1.dll). Without "
            'them `import tensorflow` fails with "Could not find the DLL(s) '
            f'\'{names[0]}\'" or "DLL load failed while importing _pywrap_tensorflow_internal".'
        ),
        evidence=tuple((name, "not found") for name in names),
        fix=_REDIST_STEPS,
    )


def dll_on_path_not_loadable(inventory: Inventory) -> Iterator[Finding]:
    if not _on_windows(inventory):
        return
    for res in inventory.libraries:
        if not _loads_from_path_only(res):
            continue
        found = res.on_path_only
        assert found is not None
        python = python_env(inventory, res.python)
        version = python.version if python and python.version else ""
        if version and at_least(version, "3.8") is False:
            continue  # before 3.8 PATH was still searched: it loads
        exe = res.python or (python.executable if python else "")
        python_label = f"Python {version}" if version else "Python 3.8+"
        directory = dirname(found.path, "windows")
        runtime = res.role == "msvc_runtime"
        consequence = (
            f"`import tensorflow` fails: \"Could not find the DLL(s) '{res.wanted}'\"."
            if runtime
            else "TensorFlow cannot load it"
            + (" and cannot use the GPU." if res.required else " (an optional feature).")
        )
        fix = []
        if runtime:
            fix.extend(_REDIST_STEPS[:2])
        fix.append(
            "Or, in your script before importing TensorFlow: import os; "
            f'os.add_dll_directory(r"{directory}"); import tensorflow as tf'
        )
        yield Finding(
            id="dll-on-path-not-loadable",
            severity=Severity.ERROR if res.required else Severity.WARNING,
            link=Link.RUNTIME if runtime else Link.LIBRARIES,
            title=f"{res.wanted} is on PATH, but {python_label} will not load it from there",
            detail=(
                f"{res.wanted} is in {directory}, which is on PATH. Since Python 3.8 the DLLs "
                "an extension module depends on (and ctypes loads by bare name) are searched "
                "only in the application directory (that of the real python.exe; for a venv, "
                "the base installation's), System32, the module's own directory and "
                "directories added with os.add_dll_directory(); PATH is not "
                f"searched. So on PATH is not the same as will load. {consequence}"
            ),
            evidence=(
                ("wanted", res.wanted),
                ("found on PATH", found.path),
                ("python", f"{exe} ({version or 'version unknown'})"),
                (
                    "searched instead",
                    "python.exe's directory; C:\\Windows\\System32; the module's directory; "
                    "os.add_dll_directory() directories",
                ),
            ),
            fix=tuple(fix),
            subject=subject_for(inventory, res.wanted, res.python),
        )


RULES = [vc_runtime_missing, dll_on_path_not_loadable]
