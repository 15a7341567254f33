"""CUDA toolkits on disk: where each one is, its version, and which one a shell would use.

Only the known places are looked at (no recursive walks). Several ways to one directory (the
/usr/local/cuda symlink, CUDA_HOME, the nvcc on PATH) make one CudaToolkit whose `origin`
lists them all. `nvcc --version` runs only when no version file answers.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Mapping

from monitor.facts import syspath
from monitor.facts.paths import Root
from monitor.model import CudaToolkit
from monitor.record import record
from monitor.versions import parse_version

NVCC_TIMEOUT_S = 5.0
_VERSION_TXT = re.compile(r"CUDA Version\s+(\d+(?:\.\d+)*)")
_NVCC_RELEASE = re.compile(r"release (\d+\.\d+), V(\d+(?:\.\d+)*)")
_NVCC_RELEASE_SHORT = re.compile(r"release (\d+\.\d+)")
_WRAPPER_EXEC = re.compile(r"""^\s*exec\s+["']?(/\S*?/bin/nvcc)["']?(?:\s|$)""", re.M)
_CONDA_RECORDS = (
    re.compile(r"cudatoolkit-\d[^-]*-.*\.json"),
    re.compile(r"cuda-version-\d[^-]*-.*\.json"),
)
# Where the first nvcc on PATH, else these variables, point is the toolkit a build would use.
_ACTIVE_ORDER = ("nvcc on PATH", "CUDA_HOME", "CUDA_PATH")


@record
class _Candidate:
    path: str
    label: str
    explicit: bool = False  # named by a variable: worth reporting even when it is not there
    conda_records: tuple[str, ...] = ()


class _Found:
    """A toolkit root as the candidates add up: every label that named it, every error."""

    __slots__ = ("conda_records", "errors", "origins", "root", "usable")

    def __init__(self, root: str, usable: bool):
        self.root = root
        self.usable = usable
        self.origins: list[str] = []
        self.errors: list[str] = []
        self.conda_records: tuple[str, ...] = ()


def probe_toolkits(root: Root, env: Mapping[str, str], os_name: str) -> tuple[CudaToolkit, ...]:
    found: dict[str, _Found] = {}
    key_of_label: dict[str, str] = {}
    for candidate in _candidates(root, env, os_name):
        located = _locate(root, candidate, os_name)
        if located is None:
            continue
        path, label, error = located
        key = path.lower() if os_name == "windows" else path
        item = found.setdefault(key, _Found(root=path, usable=error is None))
        if label not in item.origins:
            item.origins.append(label)
        if error:
            item.errors.append(error)
        item.conda_records = item.conda_records or candidate.conda_records
        key_of_label.setdefault(candidate.label, key)
    active = next(
        (
            key_of_label[label]
            for label in _ACTIVE_ORDER
            if label in key_of_label and found[key_of_label[label]].usable
        ),
        None,
    )
    toolkits = []
    for key, item in found.items():
        version, source, errors = _version(root, item, os_name) if item.usable else (None, "", [])
        toolkits.append(
            CudaToolkit(
                root=item.root,
                version=version,
                version_source=source,
                origin="; ".join(item.origins),
                active=key == active,
                error="; ".join(item.errors + errors) or None,
            )
        )
    return tuple(toolkits)


def read_version_files(
    root: Root, toolkit_root: str, os_name: str
) -> tuple[str | None, str, list[str]]:
    """(version, source, errors) from version.json, else version.txt; errors of both kept."""
    errors = []
    text, error = syspath.read_text(
        root, syspath.join(os_name, toolkit_root, "version.json"), os_name
    )
    if text is not None:
        version, error = _version_from_json(text)
        if version:
            return version, "version.json", errors
    if error:
        errors.append(f"version.json: {error}")
    text, error = syspath.read_text(
        root, syspath.join(os_name, toolkit_root, "version.txt"), os_name
    )
    if text is not None:
        match = _VERSION_TXT.search(text)
        if match:
            return match.group(1), "version.txt", errors
        error = "no 'CUDA Version X.Y.Z' line"
    if error:
        errors.append(f"version.txt: {error}")
    return None, "", errors


def nvcc_version(executable: str) -> tuple[str | None, str | None]:
    """(version, error) from `nvcc --version`: "release 12.2, V12.2.140" -> "12.2.140"."""
    try:
        process = subprocess.Popen(
            [executable, "--version"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=os.name == "posix",
        )
    except OSError as exc:
        return None, f"cannot run nvcc: {exc.strerror or exc}"
    try:
        output, _ = process.communicate(timeout=NVCC_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        if os.name == "posix":
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
        process.communicate()
        return None, f"nvcc --version did not answer within {NVCC_TIMEOUT_S:g} s"
    text = output.decode("utf-8", errors="replace")
    match = _NVCC_RELEASE.search(text)
    if match:
        return match.group(2), None
    match = _NVCC_RELEASE_SHORT.search(text)
    if match:
        return match.group(1), None
    first_line = text.strip().splitlines()[0][:80] if text.strip() else "no output"
    return None, f"nvcc --version (exit {process.returncode}) gave no release: {first_line}"


def _version_from_json(text: str) -> tuple[str | None, str | None]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        return None, f"not valid JSON ({exc})"
    cuda = data.get("cuda") if isinstance(data, dict) else None
    if not isinstance(cuda, dict):
        return None, 'no "cuda" object'
    version = cuda.get("version")
    if not isinstance(version, str) or parse_version(version) is None:
        return None, f'"cuda" "version" is not a version string: {str(version)[:40]!r}'
    return version, None


def _candidates(root: Root, env: Mapping[str, str], os_name: str) -> list[_Candidate]:
    """Every place a toolkit may be, in the order they are reported."""
    windows = os_name == "windows"
    candidates = []
    if windows:
        candidates += _variable_candidates(env, os_name, ("CUDA_PATH", "CUDA_HOME"))
        candidates += [
            _Candidate(value.strip('"'), name, explicit=True)
            for name, value in syspath.cuda_path_variables(env, os_name)
            if value.strip('"')
        ]
        program_files = syspath.env_get(env, "ProgramFiles", os_name) or "C:\\Program Files"
        base = syspath.join(os_name, program_files, "NVIDIA GPU Computing Toolkit", "CUDA")
        candidates += [
            _Candidate(syspath.join(os_name, base, name), "Program Files")
            for name in syspath.by_version(syspath.list_dir(root, base, os_name))
            if re.fullmatch(r"v\d.*", name)
        ]
    else:
        candidates.append(_Candidate("/usr/local/cuda", "/usr/local/cuda"))
        scans = [("/usr/local", "cuda-")]
        if os_name == "darwin":
            scans.append(("/Developer/NVIDIA", "CUDA-"))
        for parent, prefix in scans:
            names = [
                name
                for name in syspath.list_dir(root, parent, os_name)
                if name.startswith(prefix) and name[len(prefix) : len(prefix) + 1].isdigit()
            ]
            for name in syspath.by_version(names):
                path = f"{parent}/{name}"
                candidates.append(_Candidate(path, path))
        candidates.append(_Candidate("/opt/cuda", "/opt/cuda"))
        candidates += _variable_candidates(env, os_name, ("CUDA_HOME", "CUDA_PATH"))
    nvcc = _first_nvcc_on_path(root, env, os_name)
    if nvcc:
        toolkit_root = syspath.dirname(os_name, syspath.dirname(os_name, nvcc))
        candidates.append(_Candidate(toolkit_root, "nvcc on PATH"))
    conda = _conda_candidate(root, env, os_name)
    if conda:
        candidates.append(conda)
    return candidates


def _variable_candidates(
    env: Mapping[str, str], os_name: str, names: tuple[str, ...]
) -> list[_Candidate]:
    values = ((name, syspath.env_get(env, name, os_name)) for name in names)
    return [_Candidate(value.strip('"'), name, explicit=True) for name, value in values if value]


def _first_nvcc_on_path(root: Root, env: Mapping[str, str], os_name: str) -> str | None:
    """The system path (symlinks followed) of the nvcc a shell would run, or None."""
    windows = os_name == "windows"
    executable = "nvcc.exe" if windows else "nvcc"
    for entry in syspath.split_search_path(syspath.env_get(env, "PATH", os_name), os_name):
        entry = entry.strip('"') if windows else entry
        if not syspath.is_absolute(entry, os_name):
            continue
        resolved, error = syspath.resolve(root, syspath.join(os_name, entry, executable), os_name)
        real = root.path(resolved)
        if error is None and os.path.isfile(real) and (windows or os.access(real, os.X_OK)):
            return _wrapped_nvcc(root, resolved, os_name) or resolved
    return None


def _wrapped_nvcc(root: Root, nvcc: str, os_name: str) -> str | None:
    """The real nvcc a wrapper script execs (`exec /usr/local/cuda-13.0/bin/nvcc "$@"`)."""
    text, _ = syspath.read_text(root, nvcc, os_name, limit=4096)
    match = _WRAPPER_EXEC.search(text) if text and text.startswith("#!") else None
    if not match:
        return None
    resolved, error = syspath.resolve(root, match.group(1), os_name)
    return resolved if error is None and os.path.isfile(root.path(resolved)) else None


def _conda_candidate(root: Root, env: Mapping[str, str], os_name: str) -> _Candidate | None:
    """$CONDA_PREFIX when it holds a CUDA toolkit (nvcc, or a cudatoolkit/cuda-version record)."""
    prefix = syspath.env_get(env, "CONDA_PREFIX", os_name)
    if not prefix or not syspath.is_absolute(prefix, os_name):
        return None
    meta = syspath.list_dir(root, syspath.join(os_name, prefix, "conda-meta"), os_name)
    records = tuple(
        name
        for pattern in _CONDA_RECORDS
        for name in syspath.by_version(meta)
        if pattern.fullmatch(name)
    )
    if records or _nvcc_in(root, prefix, os_name):
        return _Candidate(prefix, "conda", conda_records=records)
    return None


def _locate(root: Root, candidate: _Candidate, os_name: str) -> tuple[str, str, str | None] | None:
    """(root, origin label, error) of a candidate; None when a fixed place simply is not there."""
    what = (
        candidate.path
        if candidate.label == candidate.path
        else (f"{candidate.label}={candidate.path}")
    )
    if not syspath.is_absolute(candidate.path, os_name):
        return candidate.path, candidate.label, f"{what}: not an absolute path"
    resolved, error = syspath.resolve(root, candidate.path, os_name)
    real = root.path(resolved)
    if error is None and os.path.isdir(real):
        label = candidate.label
        if label == candidate.path and resolved != syspath.normpath(os_name, candidate.path):
            parent = syspath.dirname(os_name, candidate.path)
            shown = resolved[len(parent) + 1 :] if resolved.startswith(parent + "/") else resolved
            label = f"{candidate.path} -> {shown}"
        return resolved, label, None
    if not candidate.explicit and not os.path.lexists(root.path(candidate.path)):
        return None
    if error is None:
        if os.path.lexists(real):
            error = "not a directory"
        elif resolved != syspath.normpath(os_name, candidate.path):
            error = f"points to {resolved}, which does not exist"
        else:
            error = "does not exist"
    return candidate.path, candidate.label, f"{what}: {error}"


def _version(root: Root, item: _Found, os_name: str) -> tuple[str | None, str, list[str]]:
    version, source, errors = read_version_files(root, item.root, os_name)
    if version is None:
        for name in item.conda_records:
            record = syspath.join(os_name, item.root, "conda-meta", name)
            version, error = _conda_record_version(root, record, os_name)
            if version:
                return version, "conda-meta", errors
            errors.append(f"conda-meta/{name}: {error}")
    if version is None:
        nvcc = _nvcc_in(root, item.root, os_name)
        if nvcc:
            version, error = nvcc_version(root.path(nvcc))
            if version:
                return version, "nvcc", errors
            errors.append(str(error))
    if version is None and not errors:
        errors.append("no version.json, version.txt or bin/nvcc: an incomplete install?")
    return version, source, errors


def _conda_record_version(root: Root, record: str, os_name: str) -> tuple[str | None, str | None]:
    text, error = syspath.read_text(root, record, os_name)
    if text is None:
        return None, error or "vanished"
    try:
        version = json.loads(text).get("version")
    except (ValueError, AttributeError):
        return None, "not a JSON object"
    if not isinstance(version, str) or parse_version(version) is None:
        return None, f'"version" is not a version string: {str(version)[:40]!r}'
    return version, None


def _nvcc_in(root: Root, toolkit_root: str, os_name: str) -> str | None:
    """The resolved system path of the toolkit's nvcc (conda on Windows: Library\\bin)."""
    if os_name == "windows":
        places = (("bin", "nvcc.exe"), ("Library", "bin", "nvcc.exe"))
    else:
        places = (("bin", "nvcc"),)
    for parts in places:
        resolved, error = syspath.resolve(
            root, syspath.join(os_name, toolkit_root, *parts), os_name
        )
        if error is None and os.path.isfile(root.path(resolved)):
            return resolved
    return None
