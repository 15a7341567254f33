"""Rule library-shadowed: a search-path entry or a stray copy wins over the copy TF should load.

Linux: LD_LIBRARY_PATH comes before TF's RUNPATH (the pip wheels). Windows: the application
directory, System32 and earlier Path entries come before later Path entries and the toolkit.
"""

from __future__ import annotations

import ntpath
import posixpath
from collections.abc import Iterator

from monitor.model import Finding, Inventory, LibraryFile, LibraryResolution, Link, Severity
from monitor.record import replace
from monitor.rules.fixes import quote_path
from monitor.rules.libraries_files import (
    DRIVER_ROLES,
    VERSIONED_ROLES,
    version_major,
    wanted_major,
    wrong_version_reasons,
)
from monitor.rules.libraries_interpreter import python_command, python_env, subject_for, tf_needs
from monitor.rules.libraries_paths import (
    basename,
    dirname,
    is_windows,
    ld_library_path_without,
    where_set_hint,
)
from monitor.rules.libraries_wheels import WHEEL_COMPONENT, nvidia_wheels
from monitor.versions import parse_version

# Where a copy that wins comes from, and where the copy it hides would have come from. Linux:
# LD_LIBRARY_PATH is searched before TF's RUNPATH (the pip wheels). Windows: LoadLibrary looks
# in the application directory, System32 and the Windows directory before PATH, and earlier
# PATH entries before later ones ("toolkit": a CUDA toolkit's bin that is not on PATH).
_SHADOW_VIA = {
    "linux": ("LD_LIBRARY_PATH",),
    "windows": ("PATH", "application dir", "System32", "Windows dir"),
}
_HIDDEN_VIA = {"linux": ("RUNPATH", "pip"), "windows": ("PATH", "CUDA_PATH", "toolkit")}


def library_shadowed(inventory: Inventory) -> Iterator[Finding]:
    """A manual search-path entry (or a stray copy) wins over the copy TF should load.

    One finding per (interpreter, directory): a system CUDA in LD_LIBRARY_PATH hides every pip
    library at once, and the fix (drop that directory) is the same for all of them.
    """
    os_name = "windows" if is_windows(inventory) else "linux"
    groups: dict[tuple[str, str, str], list[tuple[LibraryResolution, LibraryFile, bool]]] = {}
    for res in inventory.libraries:
        file = res.resolved
        if file is None or file.error or file.via not in _SHADOW_VIA[os_name]:
            continue
        if res.role in DRIVER_ROLES or res.role == "msvc_runtime":
            continue  # these belong in System32 / come with the driver: nothing is hidden
        if wrong_version_reasons(res):
            continue  # library-wrong-version tells this one, naming the hidden copy
        hidden = _hidden_copy(inventory, res, file, os_name)
        if hidden is None:
            continue
        copy, versions_differ = hidden
        key = (res.python, dirname(file.path, os_name), file.via)
        groups.setdefault(key, []).append((res, copy, versions_differ))
    for (python, directory, via), members in groups.items():
        yield _shadow_finding(inventory, os_name, python, directory, via, members)


def _with_wheel_version(
    inventory: Inventory, res: LibraryResolution, copy: LibraryFile
) -> LibraryFile:
    """A pip copy whose file name tells no version gets its wheel's (nvidia/cuda_runtime/lib/
    libcudart.so.12 is nvidia-cuda-runtime-cu12 12.9.79). Not for CUPTI: year versions."""
    component = WHEEL_COMPONENT.get(res.role)
    if component is None or res.role not in VERSIONED_ROLES or "nvidia" not in copy.path:
        return copy
    python = python_env(inventory, res.python)
    if python is None:
        return copy
    major = wanted_major(res.wanted)
    for wheel in nvidia_wheels(python):
        if wheel.component != component:
            continue
        wheel_major = version_major(wheel.dist.version)
        if major is not None and wheel_major is not None and wheel_major != major:
            continue
        return replace(copy, version=wheel.dist.version, version_source=f"wheel {wheel.name}")
    return copy


def versions_differ(a: str | None, b: str | None) -> bool | None:
    """Whether two versions differ, compared as far as both go ("12.9" vs "12.9.79": same)."""
    mine, theirs = parse_version(a), parse_version(b)
    if mine is None or theirs is None:
        return None
    width = min(len(mine), len(theirs))
    return mine[:width] != theirs[:width]


def _hidden_copy(
    inventory: Inventory, res: LibraryResolution, file: LibraryFile, os_name: str
) -> tuple[LibraryFile, bool] | None:
    """The copy TF would otherwise load, and whether its version is known to differ."""
    names = {basename(file.path).lower(), res.wanted.lower()}
    unknown = None
    for copy in res.candidates:
        if copy.error or copy.via not in _HIDDEN_VIA[os_name]:
            continue
        if basename(copy.path).lower() not in names or _same_path(copy.path, file.path, os_name):
            continue
        if copy.version is None:
            copy = _with_wheel_version(inventory, res, copy)
        differ = versions_differ(file.version, copy.version)
        if differ:
            return copy, True
        if differ is None:
            unknown = unknown or copy
    return (unknown, False) if unknown is not None else None


def _same_path(a: str, b: str, os_name: str) -> bool:
    if os_name == "windows":
        return ntpath.normcase(ntpath.normpath(a)) == ntpath.normcase(ntpath.normpath(b))
    return posixpath.normpath(a) == posixpath.normpath(b)


def _shadow_finding(
    inventory: Inventory,
    os_name: str,
    python: str,
    directory: str,
    via: str,
    members: list[tuple[LibraryResolution, LibraryFile, bool]],
) -> Finding:
    differ = any(d for _, _, d in members)
    first_res, first_copy, _ = members[0]
    count = len(members)
    what = first_res.wanted if count == 1 else f"{count} libraries"
    if os_name == "linux":
        title = f"LD_LIBRARY_PATH entry {directory} hides the pip wheels' copy of {what}"
        why = (
            f"LD_LIBRARY_PATH is searched before TensorFlow's RUNPATH, so TensorFlow loads "
            f"these files from {directory} instead of the pip nvidia-* wheels"
        )
    elif via == "PATH":
        title = f"Path entry {directory} hides another copy of {what}"
        why = (
            f"{directory} comes earlier in Path, so TensorFlow loads these DLLs from there "
            "instead of from the later directory"
        )
    else:
        title = f"A stray copy of {what} in {directory} hides the CUDA one"
        why = (
            f"Windows searches {directory} ({via}) before any Path entry, so TensorFlow loads "
            "this copy instead of the one in the CUDA / cuDNN directory"
        )
    if differ:
        detail = (
            f"{why}, and their versions differ. Mixed CUDA library versions cause load "
            "failures, wrong-version errors or crashes"
            + (" that depend on the shell you start Python from." if os_name == "linux" else ".")
        )
    else:
        detail = (
            f"{why}. Their versions could not be told, so this may be harmless; but the result "
            "depends on a search-order accident."
        )
    evidence: list[tuple[str, str]] = []
    for res, copy, _ in members:
        file = res.resolved
        assert file is not None
        evidence.append(
            (
                res.wanted,
                f"loads {file.path} ({file.version or 'version unknown'}); hides "
                f"{copy.path} ({copy.version or 'version unknown'}, via {copy.via})",
            )
        )
    if python:
        evidence.append(("python", python))
    variable = "PATH" if os_name == "windows" else "LD_LIBRARY_PATH"
    evidence.append((variable, inventory.environment.get(variable) or "(not set)"))
    needs = tf_needs(inventory, python)
    hidden_dir = dirname(first_copy.path, os_name)
    if os_name == "linux":
        fix = [
            f"Remove {directory} from LD_LIBRARY_PATH: "
            + ld_library_path_without(inventory, [directory]),
            where_set_hint("LD_LIBRARY_PATH", needs.python if needs else None),
            "Or keep it for other programs and start this interpreter without it: "
            f"env -u LD_LIBRARY_PATH {python_command(inventory, python)} your_script.py",
        ]
    elif via == "PATH":
        fix = [
            f"Move {hidden_dir} before {directory} in Path, or remove {directory} from Path "
            "(System Properties > Environment Variables; check both the user and the system "
            "Path).",
            f"Check in a new terminal: where {first_res.wanted}",
        ]
    else:
        names = " ".join(
            quote_path(res.resolved.path, os_name) for res, _, _ in members if res.resolved
        )
        fix = [
            f"Delete the copies someone put in {directory} (an administrator prompt may be "
            f"needed): del {names}",
            f"Make sure {hidden_dir} is on Path, then check in a new terminal: "
            f"where {first_res.wanted}",
        ]
    return Finding(
        id="library-shadowed",
        severity=Severity.WARNING if differ else Severity.INFO,
        link=Link.LIBRARIES,
        title=title,
        detail=detail,
        evidence=tuple(evidence),
        fix=tuple(fix),
        subject=subject_for(inventory, directory, python),
    )
