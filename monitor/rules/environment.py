"""Rules about the variables that steer the loader and CUDA: PATH, LD_LIBRARY_PATH,
CUDA_HOME / CUDA_PATH and CUDA_VISIBLE_DEVICES.

The probe splits the search paths into PathEntry records (exists, writable by others, which
CUDA toolkit a directory belongs to); these rules only judge them.
"""

from __future__ import annotations

import ntpath
import posixpath
import re
from collections.abc import Iterator, Sequence

from monitor.model import CudaToolkit, Finding, GpuInfo, Inventory, Link, PathEntry, Severity
from monitor.rules.libraries import (
    TfNeeds,
    has_and_cuda,
    is_windows,
    quote,
    tf_needs,
    where_set_hint,
)
from monitor.versions import major_minor

_WIN_PATH_DIALOG = (
    "System Properties > Advanced > Environment Variables (look in both the user and the "
    "system Path)"
)


def _variables(inventory: Inventory) -> Iterator[tuple[str, tuple[PathEntry, ...]]]:
    env = inventory.environment
    if env.path:
        yield "PATH", env.path
    if env.ld_library_path:
        yield "LD_LIBRARY_PATH", env.ld_library_path


def _key(path: str, windows: bool) -> str:
    """The directory as the loader compares it (case and trailing separators ignored on
    Windows)."""
    path = (path or "").strip()
    if not path:
        return ""
    if windows:
        path = path.strip('"')
        return ntpath.normcase(ntpath.normpath(path)).rstrip("\\") or path
    return posixpath.normpath(path)


def _checked(entry: PathEntry) -> bool:
    """An entry the probe could look at: not empty, not relative (those carry a note)."""
    return bool(entry.path and entry.path.strip()) and not entry.note


def _separator(inventory: Inventory) -> str:
    return ";" if is_windows(inventory) else ":"


def _set_command(inventory: Inventory, variable: str, entries: Sequence[str]) -> str:
    """The shell command that sets `variable` to `entries` for this OS."""
    if is_windows(inventory):
        value = ";".join(entries)
        return f"Edit {variable} in {_WIN_PATH_DIALOG}; the cleaned value would be: {value}"
    if not entries:
        return f"unset {variable}"
    return f"export {variable}={quote(':'.join(entries), 'linux')}"


def _mm(version: str | None) -> str | None:
    mm = major_minor(version)
    return f"{mm[0]}.{mm[1]}" if mm else None


# --------------------------------------------------------------------------- path-entry-missing


def path_entry_missing(inventory: Inventory) -> Iterator[Finding]:
    for variable, entries in _variables(inventory):
        bad = [e for e in entries if _checked(e) and (not e.exists or not e.is_dir)]
        bad = list({e.path: e for e in bad}.values())  # a duplicated entry once
        if not bad:
            continue
        keep = [e.path for e in entries if e.path and e not in bad]
        evidence = tuple(
            (e.path, "does not exist" if not e.exists else "is not a directory") for e in bad
        )
        count = len(bad)
        title = (
            f"{variable} entry {bad[0].path} does not exist"
            if count == 1 and not bad[0].exists
            else f"{count} {variable} entries are missing or not directories"
        )
        if keep or variable != "PATH":
            fix = [f"Remove them from {variable}: " + _set_command(inventory, variable, keep)]
        else:  # never advise emptying PATH: no command would be found any more
            fix = [
                "None of the PATH entries exists: set PATH to directories that do (with "
                "--root, PATH is this shell's, not the checked disk's)"
            ]
        if is_windows(inventory):
            fix.append(
                "Or drop every missing directory from the user Path (PowerShell): "
                '$p = [Environment]::GetEnvironmentVariable("Path", "User") -split ";" | '
                "Where-Object { $_ -and (Test-Path $_) }; "
                '[Environment]::SetEnvironmentVariable("Path", ($p -join ";"), "User")'
            )
        else:
            fix.append(where_set_hint(variable, None))
        yield Finding(
            id="path-entry-missing",
            severity=Severity.INFO,
            link=Link.ENVIRONMENT,
            title=title,
            detail=(
                f"{variable} lists directories that are not there. Harmless today, but a "
                "leftover of an uninstalled toolkit, and a place where whoever creates that "
                "directory first gets searched."
            ),
            evidence=evidence,
            fix=tuple(fix),
            subject=variable,
        )


# --------------------------------------------------------------------------- duplicates


def path_duplicate_entry(inventory: Inventory) -> Iterator[Finding]:
    windows = is_windows(inventory)
    for variable, entries in _variables(inventory):
        seen: dict[str, int] = {}
        duplicates: list[tuple[int, PathEntry, int]] = []
        keep: list[str] = []
        for position, entry in enumerate(entries, 1):
            key = _key(entry.path, windows)
            if not key:
                continue
            if key in seen:
                duplicates.append((position, entry, seen[key]))
                continue
            seen[key] = position
            keep.append(entry.path)
        if not duplicates:
            continue
        evidence = tuple(
            (entry.path, f"position {position}, already at position {first}")
            for position, entry, first in duplicates
        )
        title = (
            f"{variable} lists {duplicates[0][1].path} twice"
            if len(duplicates) == 1
            else f"{variable} has {len(duplicates)} duplicate entries"
        )
        fix = ["Remove the later copies: " + _set_command(inventory, variable, keep)]
        if not windows:
            fix.append(where_set_hint(variable, None))
        yield Finding(
            id="path-duplicate-entry",
            severity=Severity.INFO,
            link=Link.ENVIRONMENT,
            title=title,
            detail=(
                f"Only the first copy of a directory in {variable} counts; later copies make "
                "the variable longer (a shell rc file that appends on every start) and harder "
                "to read."
            ),
            evidence=evidence,
            fix=tuple(fix),
            subject=variable,
        )


# --------------------------------------------------------------------------- multiple CUDA


def path_multiple_cuda(inventory: Inventory) -> Iterator[Finding]:
    needs = tf_needs(inventory)
    for variable, entries in _variables(inventory):
        versions: dict[str, list[PathEntry]] = {}
        for entry in entries:
            mm = _mm(entry.cuda_version)
            if mm:
                versions.setdefault(mm, []).append(entry)
        if len(versions) < 2:
            continue
        first = next(iter(versions))
        yield _multiple_cuda_finding(inventory, variable, entries, versions, first, needs)


def _multiple_cuda_finding(
    inventory: Inventory,
    variable: str,
    entries: tuple[PathEntry, ...],
    versions: dict[str, list[PathEntry]],
    first: str,
    needs: TfNeeds | None,
) -> Finding:
    order = list(versions)
    needed = _mm(needs.cuda) if needs else None
    pip_cuda = needs is not None and has_and_cuda(inventory, needs.tf)
    library_var = variable == "LD_LIBRARY_PATH" or is_windows(inventory)
    keep_version = _version_to_keep(order, needed)
    if pip_cuda and variable == "LD_LIBRARY_PATH":
        keep_version = None  # TF brings its own pip CUDA libraries; no toolkit belongs here
    detail = (
        f"{variable} holds directories of CUDA {' and '.join(order)}. The first match wins, "
        f"so every file both have comes from CUDA {first}"
        + (" (libraries TensorFlow opens by name)." if library_var else " (nvcc, ptxas).")
    )
    if needs and needed:
        detail += f" {needs.label} was built for CUDA {needed}"
        if pip_cuda and variable == "LD_LIBRARY_PATH":
            detail += (
                " and loads its own pip nvidia-* libraries; a toolkit on LD_LIBRARY_PATH is "
                "searched before them and only gets in their way."
            )
        elif pip_cuda:
            detail += (
                " and loads its own pip nvidia-* libraries; PATH still decides which nvcc and "
                "ptxas other tools run."
            )
        else:
            detail += "."
    evidence: list[tuple[str, str]] = [
        (f"CUDA {version}", ", ".join(e.path for e in group)) for version, group in versions.items()
    ]
    evidence.append(("first", f"CUDA {first}"))
    if needs and needed:
        evidence.append(("tensorflow needs", f"CUDA {needed} ({needs.label})"))
    keep = [
        e.path
        for e in entries
        if e.path and (_mm(e.cuda_version) is None or _mm(e.cuda_version) == keep_version)
    ]
    dropped = [v for v in order if v != keep_version]
    if keep_version:
        what = f"Keep only the CUDA {keep_version} entries"
    else:
        what = "Remove the CUDA toolkit entries"
    fix = [f"{what} (drop CUDA {', '.join(dropped)}): " + _set_command(inventory, variable, keep)]
    if not is_windows(inventory):
        fix.append(where_set_hint(variable, needs.python if needs else None))
    else:
        fix.append("Open a new terminal afterwards; running programs keep the old Path.")
    return Finding(
        id="path-multiple-cuda",
        severity=Severity.WARNING,
        link=Link.ENVIRONMENT,
        title=f"{variable} mixes CUDA {' and '.join(order)} (CUDA {first} comes first)",
        detail=detail,
        evidence=tuple(evidence),
        fix=tuple(fix),
        subject=variable,
    )


def _version_to_keep(order: list[str], needed: str | None) -> str:
    """The listed CUDA version TF needs (same major.minor, else same major), else the first."""
    if needed:
        if needed in order:
            return needed
        major = needed.split(".")[0]
        for version in order:
            if version.split(".")[0] == major:
                return version
    return order[0]


# --------------------------------------------------------------------------- writable dirs


def path_writable_dir(inventory: Inventory) -> Iterator[Finding]:
    """A directory other users can write, searched before the system ones: whoever can write
    there can plant a `python`, `nvidia-smi` or `libcudart.so.12` that runs as this user."""
    windows = is_windows(inventory)
    for variable, entries in _variables(inventory):
        for position, entry in enumerate(entries, 1):
            if variable == "PATH" and entry.is_system:
                break  # after the first system directory, system binaries already won
            if not entry.writable_by_others or not entry.exists or not _checked(entry):
                continue
            if windows:
                planted = "programs and DLLs (e.g. a fake cudart64_110.dll that TensorFlow loads)"
            elif variable == "LD_LIBRARY_PATH":
                planted = "libraries (e.g. a fake libcudart.so.12 that TensorFlow loads)"
            else:
                planted = "programs (e.g. a fake python, pip or nvidia-smi)"
            detail = (
                f"{entry.path} is writable by other users and comes "
                + (
                    f"at position {position} of LD_LIBRARY_PATH, which is searched before "
                    "everything else. "
                    if variable == "LD_LIBRARY_PATH"
                    else f"at position {position} of {variable}, before the system directories. "
                )
                + f"Anyone who can write there can plant {planted} that run as you."
            )
            if windows:
                fix = (
                    f'Take write access away from other users: icacls "{entry.path}" '
                    f'/inheritance:d && icacls "{entry.path}" /remove:g *S-1-5-11 *S-1-5-32-545 '
                    "*S-1-1-0",
                    f"Or move it after C:\\Windows\\system32 in {variable} ({_WIN_PATH_DIALOG}).",
                )
            else:
                fix = (
                    "Take write access away from other users: chmod o-w "
                    f"{quote(entry.path, 'linux')} (prefix sudo if you do not own it).",
                    f"Or remove it from {variable}"
                    + (", or move it after /usr/bin." if variable == "PATH" else "."),
                )
            yield Finding(
                id="path-writable-dir",
                severity=Severity.WARNING,
                link=Link.ENVIRONMENT,
                title=f"{variable} entry {entry.path} is writable by other users",
                detail=detail,
                evidence=(
                    ("variable", variable),
                    ("position", str(position)),
                    ("directory", entry.path),
                    ("writable by others", "yes"),
                ),
                fix=fix,
                subject=f"{variable} {entry.path}",
            )


# --------------------------------------------------------------------------- CUDA_HOME


_HOME_VARIABLES = ("CUDA_HOME", "CUDA_PATH")


def cuda_home_mismatch(inventory: Inventory) -> Iterator[Finding]:
    needs = tf_needs(inventory)
    needed = _mm(needs.cuda) if needs else None
    for variable in _HOME_VARIABLES:
        value = (inventory.environment.get(variable) or "").strip()
        if not value:
            continue
        toolkit = _toolkit_for(inventory, variable, value)
        evidence: list[tuple[str, str]] = [(variable, value)]
        if toolkit is None or (toolkit.version is None and toolkit.error):
            reason = toolkit.error if toolkit and toolkit.error else "no CUDA toolkit found there"
            evidence.append(("problem", reason))
            yield Finding(
                id="cuda-home-mismatch",
                severity=Severity.WARNING,
                link=Link.ENVIRONMENT,
                title=f"{variable} points to {value}, which is not a CUDA toolkit",
                detail=(
                    f"{variable}={value} is not a usable CUDA toolkit ({reason}). Tools that "
                    "look for nvcc, ptxas or "
                    "the CUDA headers through it (building custom ops, JIT compilers, other "
                    "frameworks) fail or fall back to something else."
                ),
                evidence=tuple(evidence),
                fix=tuple(_home_fix(inventory, variable, needed)),
                subject=variable,
            )
            continue
        if not needed or not toolkit.version:
            continue
        have = major_minor(toolkit.version)
        want = major_minor(needed)
        if have is None or want is None or have[0] == want[0]:
            continue
        evidence += [
            ("toolkit", f"{toolkit.root} (CUDA {toolkit.version})"),
            ("tensorflow needs", f"CUDA {needed} ({needs.label if needs else '?'})"),
        ]
        pip_note = (
            " TensorFlow itself loads its pip CUDA libraries, but tools that build or JIT "
            "CUDA code through it get the wrong major."
            if needs and has_and_cuda(inventory, needs.tf)
            else " Anything that finds CUDA through it gets a toolkit TensorFlow cannot use."
        )
        yield Finding(
            id="cuda-home-mismatch",
            severity=Severity.WARNING,
            link=Link.ENVIRONMENT,
            title=(
                f"{variable} points to CUDA {_mm(toolkit.version)}, "
                f"{needs.label if needs else 'TensorFlow'} needs CUDA {needed}"
            ),
            detail=f"{variable}={value} is a CUDA {toolkit.version} toolkit.{pip_note}",
            evidence=tuple(evidence),
            fix=tuple(_home_fix(inventory, variable, needed)),
            subject=variable,
        )


def _origins(toolkit: CudaToolkit) -> set[str]:
    return {part.strip() for part in (toolkit.origin or "").split(";")}


def _toolkit_for(inventory: Inventory, variable: str, value: str) -> CudaToolkit | None:
    windows = is_windows(inventory)
    for toolkit in inventory.toolkits:
        if variable in _origins(toolkit):
            return toolkit
    key = _key(value, windows)
    for toolkit in inventory.toolkits:
        if _key(toolkit.root, windows) == key:
            return toolkit
    return None


def _home_fix(inventory: Inventory, variable: str, needed: str | None) -> list[str]:
    match = None
    want = major_minor(needed)
    if want is not None:
        candidates = [
            t for t in inventory.toolkits if t.version and not t.error and major_minor(t.version)
        ]
        exact = [t for t in candidates if major_minor(t.version) == want]
        same_major = [t for t in candidates if (major_minor(t.version) or (0,))[0] == want[0]]
        match = (exact or same_major or [None])[0]
    if is_windows(inventory):
        if match is not None:
            return [
                f"Point it at the CUDA {_mm(match.version)} toolkit: "
                f'setx {variable} "{match.root}"',
                "Open a new terminal afterwards.",
            ]
        return [
            (f"Install CUDA {needed} and point {variable} at it, or " if needed else "")
            + f'remove {variable}: [Environment]::SetEnvironmentVariable("{variable}", '
            '$null, "User") (and "Machine" from an administrator prompt if it is set there).'
        ]
    if match is not None:
        steps = [
            f"Point it at the CUDA {_mm(match.version)} toolkit: "
            f"export {variable}={quote(match.root, 'linux')}"
        ]
    else:
        steps = [f"Unset it if nothing needs it: unset {variable}"]
        if needed:
            steps.append(
                f"Or install CUDA {needed} (https://developer.nvidia.com/cuda-toolkit-archive) "
                f"and export {variable}=/usr/local/cuda-{needed}"
            )
    steps.append(where_set_hint(variable, None))
    return steps


# --------------------------------------------------------------------------- gpus-hidden


def visible_gpus(value: str, gpus: Sequence[GpuInfo]) -> tuple[int, bool]:
    """How many GPUs CUDA_VISIBLE_DEVICES leaves visible, and whether that is uncertain.

    CUDA reads the comma-separated list up to the first entry that names no device: an index
    out of range, -1, an unknown or ambiguous GPU-<uuid> prefix, anything else. MIG-<uuid>
    entries (and UUIDs the probe did not read) cannot be checked here: uncertain.
    """
    count = 0
    used: set[int] = set()
    for token in value.split(","):
        token = token.strip()
        if re.fullmatch(r"\d+", token):
            index = int(token)
            if index >= len(gpus) or index in used:
                break
            used.add(index)
            count += 1
            continue
        if token[:4].upper() == "MIG-":
            return count, True
        if token[:4].upper() == "GPU-":
            if not any(g.uuid for g in gpus):
                return count, True
            prefix = token.lower()
            if len(prefix) <= 4:
                return count, True  # "GPU-" alone: a prefix of every UUID; CUDA's take unknown
            matches = [i for i, g in enumerate(gpus) if g.uuid.lower().startswith(prefix)]
            if len(matches) != 1 or matches[0] in used:
                break
            used.add(matches[0])
            count += 1
            continue
        break
    return count, False


def gpus_hidden(inventory: Inventory) -> Iterator[Finding]:
    value = inventory.environment.get("CUDA_VISIBLE_DEVICES")
    gpus = inventory.driver.gpus
    if value is None or not gpus:
        return
    visible, uncertain = visible_gpus(value, gpus)
    if visible or uncertain:
        return
    what = "the only GPU" if len(gpus) == 1 else f"all {len(gpus)} GPUs"
    listed = "1 GPU" if len(gpus) == 1 else f"{len(gpus)} GPUs"
    listing = "; ".join(f"{g.index}: {g.name or '?'} ({g.uuid or 'no uuid'})" for g in gpus)
    shown = repr(value)
    if not value.strip():
        why = "An empty value hides every GPU."
    elif value.strip() == "-1":
        why = "-1 is the usual way to force CPU-only runs; it hides every GPU."
    else:
        why = (
            "CUDA reads the list up to the first entry that names no GPU (an index out of "
            "range, -1, an unknown UUID), so none is left."
        )
    if is_windows(inventory):
        fix = (
            "For this terminal: Remove-Item Env:CUDA_VISIBLE_DEVICES (cmd: set "
            'CUDA_VISIBLE_DEVICES=), or pick a GPU: $env:CUDA_VISIBLE_DEVICES = "0"',
            'For good: [Environment]::SetEnvironmentVariable("CUDA_VISIBLE_DEVICES", $null, '
            '"User") (and "Machine" from an administrator prompt if it is set there).',
        )
    else:
        fix = (
            "Unset it: unset CUDA_VISIBLE_DEVICES, or pick a GPU: export CUDA_VISIBLE_DEVICES=0",
            where_set_hint("CUDA_VISIBLE_DEVICES", None)
            + " Also look at Jupyter kernel.json files, systemd units and container "
            "settings.",
        )
    yield Finding(
        id="gpus-hidden",
        severity=Severity.ERROR,
        link=Link.GPU,
        title=f"CUDA_VISIBLE_DEVICES={shown} hides {what} from TensorFlow",
        detail=(
            f"NVML lists {listed}, but CUDA_VISIBLE_DEVICES={shown} leaves CUDA none, "
            f"so TensorFlow finds no GPU and runs on the CPU. {why}"
        ),
        evidence=(("CUDA_VISIBLE_DEVICES", shown), ("GPUs NVML lists", listing)),
        fix=fix,
    )


RULES = [
    path_entry_missing,
    path_duplicate_entry,
    path_multiple_cuda,
    path_writable_dir,
    cuda_home_mismatch,
    gpus_hidden,
]
