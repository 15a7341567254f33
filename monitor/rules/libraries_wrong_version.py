"""Rule library-wrong-version: the file the loader picks has another CUDA major than TF asked for.

Typically a renamed copy or a symlink (libcudart.so.11.0 -> libcudart.so.12).
"""

from __future__ import annotations

from collections.abc import Iterator

from monitor.model import Finding, Inventory, LibraryFile, LibraryResolution, Link
from monitor.rules.fixes import quote_path
from monitor.rules.libraries_files import (
    VERSIONED_ROLES,
    describe_file,
    major_minor_text,
    severity_for,
    version_major,
    wanted_major,
    wrong_version_reasons,
)
from monitor.rules.libraries_interpreter import TfNeeds, pip_install, subject_for, tf_needs
from monitor.rules.libraries_paths import (
    basename,
    dirname,
    ld_library_path_without,
    where_set_hint,
    windows_add_to_path,
)
from monitor.rules.libraries_wheels import installed, wheel_for


def library_wrong_version(inventory: Inventory) -> Iterator[Finding]:
    for res in inventory.libraries:
        reasons = wrong_version_reasons(res)
        if not reasons:
            continue
        file = res.resolved
        assert file is not None
        wanted = wanted_major(res.wanted)
        good = [
            c
            for c in res.candidates
            if not c.error and c.path != file.path and _candidate_major(res, c) == wanted
        ]
        needs = tf_needs(inventory, res.python)
        built = f" ({needs.label} is built for CUDA {needs.cuda})" if needs and needs.cuda else ""
        detail = (
            f"TensorFlow asks for {res.wanted}{built}. The loader picks {file.path}"
            f" (found via {file.via or 'an unknown route'}), but {' and '.join(reasons)}. "
            "A library of another major under that name makes TensorFlow fail to load it or "
            "crash on the first GPU call."
        )
        evidence = [("wanted", res.wanted), ("resolved", file.path), ("via", file.via or "?")]
        if file.soname:
            evidence.append(("soname", file.soname))
        if file.version:
            evidence.append(("version", f"{file.version} ({file.version_source or '?'})"))
        if res.python:
            evidence.append(("python", res.python))
        evidence.extend(("matching copy", describe_file(c)) for c in good)
        yield Finding(
            id="library-wrong-version",
            severity=severity_for(res.required),
            link=Link.LIBRARIES,
            title=f"{res.wanted} is really {_really(file)}",
            detail=detail,
            evidence=tuple(evidence),
            fix=tuple(_wrong_version_fix(inventory, res, file, good, needs)),
            subject=subject_for(inventory, res.wanted, res.python),
        )


def _candidate_major(res: LibraryResolution, file: LibraryFile) -> int | None:
    if file.soname:
        return wanted_major(file.soname)
    if res.role in VERSIONED_ROLES:
        return version_major(file.version)
    return None


def _really(file: LibraryFile) -> str:
    if file.soname and file.soname != basename(file.path):
        return file.soname + (f" ({file.version})" if file.version else "")
    return f"version {file.version}" if file.version else "another version"


def _wrong_version_fix(
    inventory: Inventory,
    res: LibraryResolution,
    file: LibraryFile,
    good: list[LibraryFile],
    needs: TfNeeds | None,
) -> list[str]:
    os_name = inventory.host.os
    steps = []
    if os_name == "windows":
        steps.append(
            f"If {file.path} is a copy renamed to {res.wanted}, delete it "
            f"(del {quote_path(file.path, os_name)}); a renamed DLL of another version does not "
            "work."
        )
        if good:
            steps.append(windows_add_to_path(dirname(good[0].path, os_name)))
        elif needs and needs.cuda:
            steps.append(
                f"Install the CUDA {major_minor_text(needs.cuda)} / "
                f"cuDNN {major_minor_text(needs.cudnn) or ''} "
                "that provide this DLL and put their bin directories on Path, ahead of "
                f"{dirname(file.path, os_name)}."
            )
        return steps
    directory = dirname(file.path, os_name)
    steps.append(
        f"Check what the file is: ls -l {quote_path(file.path, os_name)}; if it is a symlink or a "
        f"renamed copy someone made, remove it: rm {quote_path(file.path, os_name)}"
    )
    if file.via == "LD_LIBRARY_PATH":
        steps.append(
            f"Or stop the loader from looking in {directory}: "
            + ld_library_path_without(inventory, [directory])
        )
        steps.append(where_set_hint("LD_LIBRARY_PATH", needs.python if needs else None))
    wheel = wheel_for(res.role, needs.cuda_major if needs else None)
    present = installed(needs.python, wheel) if needs and wheel else None
    if present is not None and ("/nvidia/" in file.path or file.via in ("RUNPATH", "pip")):
        steps.append(
            "Restore the wheel's own files: "
            + pip_install(
                inventory,
                res.python,
                "--force-reinstall",
                "--no-deps",
                f"{present.name}=={present.version}",
            )
        )
    return steps
