"""Rules about the cuDNN library a watched TensorFlow loads.

TensorFlow checks the loaded cuDNN against the one it was compiled with and refuses a different
major or an older minor ("Loaded runtime CuDNN library: X but source was compiled with: Y.
CuDNN library needs to have matching major version and equal or higher minor version",
cuda_dnn.cc). The compiled minor is not in build_info (only the major is), so the tested-build
table's cuDNN (e.g. 9.3 for TF 2.18-2.21) stands in for it. A different major is not judged
here: TF asks for libcudnn.so.<its major>, so that is a file lying about its name, which
libraries.library-wrong-version reports.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from monitor import compat
from monitor.model import Finding, HostInfo, Inventory, LibraryResolution, PythonEnv, Severity
from monitor.model import Link as _Link
from monitor.rules import fixes
from monitor.rules.driver import KnownBad, gpu_ccs, known_bad_entries, known_bad_matches
from monitor.rules.tensorflow import build_cuda, build_value, cuda_pythons, tf_facts, tf_release
from monitor.versions import at_least, major_minor, parse_version

_MAIN_LIB = re.compile(
    r"^(?:libcudnn\.so(?:\.\d+)*|cudnn64_\d+\.dll|libcudnn\.\d+\.dylib)$", re.IGNORECASE
)


def _basename(path: str) -> str:
    return re.split(r"[\\/]", path)[-1]


def _directory(path: str) -> str:
    parts = re.split(r"([\\/])", path)
    return "".join(parts[:-2]) or path


def main_cudnn(inventory: Inventory, python: PythonEnv) -> Iterator[LibraryResolution]:
    """The resolutions of the main cuDNN library (not its sub-libraries) for an interpreter."""
    for library in inventory.libraries:
        if library.role != "cudnn" or library.python not in ("", python.executable):
            continue
        if _MAIN_LIB.match(_basename(library.wanted or "")):
            yield library


def _pip_package(cuda: str | None) -> str | None:
    mm = major_minor(cuda)
    if mm is None or mm[0] < 11:
        return None
    return f"nvidia-cudnn-cu{mm[0]}"


def _pre_turing_cap(inventory: Inventory, tf: tuple[int, int] | None) -> str | None:
    """The cuDNN release from which a GPU of this machine is no longer supported, if any."""
    caps = [
        e.min_version
        for e in known_bad_entries()
        if e.component == "cudnn"
        and e.condition.startswith("gpu_cc")
        and known_bad_matches("cudnn", e.min_version, "all", gpu_ccs(inventory), tf)
    ]
    return min(caps, key=lambda v: parse_version(v) or ()) if caps else None


def _requirement(package: str, lower: str | None, upper: str | None, exact_minor: bool) -> str:
    """A pip requirement for `package` between `lower` (inclusive) and `upper` (exclusive)."""
    if exact_minor and lower:
        mm = major_minor(lower)
        return f"{package}=={mm[0]}.{mm[1]}.*" if mm else package
    parts = []
    if lower:
        parts.append(f">={lower}")
    if upper:
        parts.append(f"<{upper}")
    return package + ",".join(parts)


def _where_fix(library: LibraryResolution, host: HostInfo) -> list[str]:
    """Steps that remove a wrong cuDNN that wins the search."""
    resolved = library.resolved
    if resolved is None:
        return []
    steps = []
    if resolved.via == "LD_LIBRARY_PATH":
        steps.append(
            f"{_directory(resolved.path)} is on LD_LIBRARY_PATH and wins over"
            " TensorFlow's own search: remove it from LD_LIBRARY_PATH (check"
            " ~/.bashrc, the venv's activate script, conda activation scripts)."
        )
    elif resolved.via == "PATH" and host.os == "windows":
        steps.append(
            f"{_directory(resolved.path)} comes first on PATH: move the directory with"
            " the right cuDNN before it, or remove the old cudnn*.dll files."
        )
    return steps


def cudnn_version_mismatch(inventory: Inventory) -> Iterable[Finding]:
    host = inventory.host
    for python, tf in cuda_pythons(inventory):
        built = compat.build_version(
            tf.cudnn_version or build_value(tf, "cudnn_version", "cudnn_version_number")
        )
        facts = tf_facts(tf.version, host.os).facts
        tested = facts.cudnn if facts is not None and facts.cudnn else None
        built_major = (parse_version(built) or parse_version(tested) or (None,))[0]
        if built_major is None:
            continue
        tested_mm = major_minor(tested)
        if tested_mm is None or tested_mm[0] != built_major:
            continue  # the compiled minor is unknown (the table describes another build)
        for library in main_cudnn(inventory, python):
            resolved = library.resolved
            loaded = parse_version(resolved.version) if resolved else None
            if resolved is None or loaded is None or len(loaded) < 2:
                continue
            # TF asks for libcudnn.so.<built major>: another major means a file lying about its
            # name, which libraries.library-wrong-version reports (one cause, one finding).
            if loaded[0] == built_major and loaded[:2] < tested_mm:
                yield _mismatch(inventory, python, tf.version, library, built_major, tested_mm)


def _mismatch(
    inventory: Inventory,
    python: PythonEnv,
    version: str,
    library: LibraryResolution,
    built_major: int,
    tested_mm: tuple[int, int],
) -> Finding:
    host = inventory.host
    resolved = library.resolved
    assert resolved is not None
    tf = python.tensorflow
    cuda, _ = build_cuda(tf, host.os) if tf is not None else (None, "")
    needed = f"{tested_mm[0]}.{tested_mm[1]}"
    steps = _where_fix(library, host)
    package = _pip_package(cuda)
    release = tf_release(version)
    if host.os == "linux" and package and release is not None and release >= (2, 14):
        cap = _pre_turing_cap(inventory, release) if built_major >= 9 else None
        upper = cap or str(built_major + 1)
        exact = release < (2, 18)  # 2.14-2.17 pinned their cuDNN wheel exactly
        steps.append(
            fixes.pip(
                python.executable,
                host,
                "install",
                _requirement(package, needed, upper, exact),
            )
        )
    elif host.os == "windows":
        steps.append(
            f"Install cuDNN {needed} for CUDA {cuda or '?'} and put its bin directory"
            " (with cudnn64_*.dll) on PATH before any other cuDNN, e.g. `conda install"
            f" -c conda-forge cudatoolkit={cuda or '11.2'} cudnn={needed}` in the"
            " environment."
        )
    else:
        steps.append(
            f"Install cuDNN {needed} (or a newer {built_major}.x) for CUDA"
            f" {cuda or '?'} from https://developer.nvidia.com/cudnn-archive or your"
            " package manager, and make it the one the loader finds first."
        )
    evidence = (
        ("interpreter", python.executable),
        ("tensorflow", version or "?"),
        ("file", resolved.path),
        ("wanted", library.wanted),
        (
            "loaded cuDNN",
            f"{resolved.version}"
            + (f" ({resolved.version_source})" if resolved.version_source else ""),
        ),
        ("found via", resolved.via or "?"),
        ("compiled cuDNN major (build_info)", str(built_major)),
        ("tested cuDNN (tensorflow_builds.csv)", needed),
    )
    return Finding(
        id="cudnn-version-mismatch",
        severity=Severity.ERROR,
        link=_Link.CUDNN,
        title=(
            f"cuDNN {resolved.version} ({_basename(resolved.path)}) does not match TensorFlow"
            f" {version}, which needs cuDNN {needed} or newer"
        ),
        detail=(
            f"The cuDNN the loader picks for this interpreter is {resolved.path}, version"
            f" {resolved.version}: it is older than cuDNN {needed}, the version TensorFlow"
            " was compiled and tested with. TensorFlow then refuses it ('Loaded runtime"
            f" CuDNN library: {resolved.version} but source was compiled with: {needed}."
            " CuDNN library needs to have matching major version and equal or higher minor"
            " version'), and convolutions, RNNs and other cuDNN ops fail with 'DNN library"
            " initialization failed'."
        ),
        evidence=evidence,
        fix=tuple(steps),
        subject=python.executable,
    )


def cudnn_known_bad(inventory: Inventory) -> Iterable[Finding]:
    host = inventory.host
    platform = compat.platform_name(host.os)
    ccs = gpu_ccs(inventory)
    for python, tf in cuda_pythons(inventory):
        release = tf_release(tf.version)
        cuda, _ = build_cuda(tf, host.os)
        package = _pip_package(cuda)
        facts = tf_facts(tf.version, host.os).facts
        floor = facts.cudnn if facts is not None and facts.cudnn else None
        for library in main_cudnn(inventory, python):
            resolved = library.resolved
            if resolved is None or parse_version(resolved.version) is None:
                continue
            for entry in known_bad_matches("cudnn", resolved.version, platform, ccs, release):
                steps = []
                if entry.pip_requirement and package and host.os == "linux":
                    requirement, capped = _known_bad_requirement(
                        inventory, entry, package, floor, release
                    )
                    steps.append(fixes.pip(python.executable, host, "install", requirement))
                    if capped:
                        steps.append(
                            "A GPU here predates Turing, and newer cuDNN releases crash on it,"
                            " so this is the newest usable cuDNN; whether it still has this"
                            " problem is not confirmed."
                        )
                steps.append(entry.fix)
                gpus = ", ".join(
                    f"{g.index}: {g.name or '?'} (CC {g.compute_capability})"
                    for g in inventory.driver.gpus
                    if g.compute_capability
                )
                evidence = [
                    ("interpreter", python.executable),
                    ("tensorflow", tf.version or "?"),
                    ("file", resolved.path),
                    ("loaded cuDNN", resolved.version or ""),
                    (
                        "known-bad range",
                        entry.range_text + (f" when {entry.condition}" if entry.condition else ""),
                    ),
                    ("source", entry.source),
                ]
                if entry.condition.startswith("gpu_cc") and gpus:
                    evidence.insert(4, ("GPUs", gpus))
                yield Finding(
                    id="cudnn-known-bad",
                    severity=entry.severity,
                    link=_Link.CUDNN,
                    title=(
                        f"cuDNN {resolved.version} is a known-bad release here"
                        f" ({entry.range_text}"
                        + (f", {entry.condition}" if entry.condition else "")
                        + ")"
                    ),
                    detail=entry.reason,
                    evidence=tuple(evidence),
                    fix=tuple(steps),
                    subject=f"{python.executable} {entry.min_version}",
                )


def _known_bad_requirement(
    inventory: Inventory,
    entry: KnownBad,
    package: str,
    floor: str | None,
    release: tuple[int, int] | None,
) -> tuple[str, bool]:
    """The row's pip requirement, for this CUDA's package, kept above TF's own cuDNN floor
    and below the release that dropped one of this machine's GPUs."""
    spec = entry.pip_requirement
    name_match = re.match(r"^[A-Za-z0-9_.-]+", spec)
    rest = spec[name_match.end() :] if name_match else ""
    bounds = dict.fromkeys(("lower", "upper"))
    for op, value in re.findall(r"(>=|<)\s*([\d.]+)", rest):
        bounds["lower" if op == ">=" else "upper"] = value
    cap = _pre_turing_cap(inventory, release)
    if cap and (bounds["upper"] is None or not at_least(cap, bounds["upper"])):
        bounds["upper"] = cap
    if floor and (bounds["lower"] is None or at_least(floor, bounds["lower"])):
        bounds["lower"] = floor
    capped = False
    if bounds["lower"] and bounds["upper"] and at_least(bounds["lower"], bounds["upper"]):
        # No release satisfies both: the last one below the cap is the best available.
        cap_mm = major_minor(bounds["upper"])
        if cap_mm:
            bounds["lower"] = f"{cap_mm[0]}.{max(cap_mm[1] - 1, 0)}"
            capped = True
    return _requirement(package, bounds["lower"], bounds["upper"], exact_minor=False), capped


RULES = [cudnn_version_mismatch, cudnn_known_bad]
