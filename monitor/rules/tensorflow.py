"""Rules about the watched interpreters and the TensorFlow installed in them.

Also the small TensorFlow lookups the driver, GPU and cuDNN rules share (`tf_release`,
`tf_facts`, `build_cuda`, ...): which release an install is, what it was built for, and how to
reinstall it on this host.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from monitor import compat
from monitor.model import (
    Distribution,
    Finding,
    HostInfo,
    Inventory,
    Link,
    PythonEnv,
    Severity,
    TensorflowBuild,
)
from monitor.record import record
from monitor.rules import fixes
from monitor.versions import major_minor

# Distributions that each install a full `tensorflow` package (two of them clobber each other).
TF_DISTRIBUTIONS = frozenset(
    {*compat.TF_BUILD_NAMES, "tf-nightly", "tf-nightly-cpu", "tf-nightly-gpu"}
)
# The `tensorflow` wheel is a small stub that pulls one of these on some platforms, so the pair
# is the normal install there (PyPI METADATA of 2.11-2.18.0 win_amd64, 2.13-2.15 macOS arm64,
# 2.14-2.16.1 Linux aarch64).
_COMPANIONS = {
    "tensorflow-intel": lambda host: host.os == "windows",
    "tensorflow-macos": lambda host: host.os == "darwin",
    "tensorflow-cpu-aws": lambda host: _is_arm(host),
}
_CPU_ONLY = frozenset({"tensorflow-cpu", "tf-nightly-cpu", "tensorflow-cpu-aws"})
_RELEASE = re.compile(r"^\s*v?(\d+)\.(\d+)(?:\.(\d+))?")
_CLEAN = re.compile(r"^\d+\.\d+\.\d+$")
_AND_CUDA_FIRST = (2, 14)  # the `tensorflow[and-cuda]` extra exists from TF 2.14 (Linux)
_LAST_WINDOWS_GPU = (2, 10)


def normalize(name: str) -> str:
    """A distribution name as PEP 503 compares it ("TensorFlow_GPU" -> "tensorflow-gpu")."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _is_arm(host: HostInfo) -> bool:
    return (host.machine or "").lower() in ("aarch64", "arm64", "armv8l")


# --------------------------------------------------------------------------- shared lookups


def tf_distributions(python: PythonEnv) -> list[Distribution]:
    """The TensorFlow-family distributions installed in `python`."""
    return [d for d in python.distributions if normalize(d.name) in TF_DISTRIBUTIONS]


def has_tensorflow(python: PythonEnv) -> bool:
    return python.tensorflow is not None or bool(tf_distributions(python))


def tf_version(python: PythonEnv) -> str:
    """The installed TensorFlow version: the build's, else the main distribution's."""
    if python.tensorflow is not None and python.tensorflow.version:
        return python.tensorflow.version
    dists = tf_distributions(python)
    for name in ("tensorflow", "tf-nightly"):
        for dist in dists:
            if normalize(dist.name) == name:
                return dist.version
    return dists[0].version if dists else ""


def tf_release(version: str | None) -> tuple[int, int] | None:
    """(major, minor) of a TF version ("2.16.1", "2.22.0.dev20251101"); None for "2.x", ""."""
    match = _RELEASE.match(version or "")
    if not match:
        return None
    return int(match.group(1)), int(match.group(2))


def python_release(version: str | None) -> tuple[int, int] | None:
    """(major, minor) of an interpreter version ("3.11.7"); None for "3", "", "garbage"."""
    return tf_release(version)


def _known_releases(os_name: str) -> list[tuple[int, int]]:
    releases = []
    for text in compat.known_tf_versions():
        release = tf_release(text)
        if release and compat.tf_build(text, os_name) is not None:
            releases.append(release)
    return sorted(releases)


@record
class TfFacts:
    """The tested-build row used for an install, and how it was chosen.

    how: "exact" (the release is in tensorflow_builds.csv), "nearest" (newer than every row:
    the newest row stands in), or "" (no usable row: facts is None).
    """

    facts: compat.TfBuildFacts | None
    how: str
    release: tuple[int, int] | None


def tf_facts(version: str | None, os_name: str) -> TfFacts:
    """The tested build configuration for a TF version, falling back to the newest release."""
    release = tf_release(version)
    if release is None:
        return TfFacts(None, "", None)
    key = f"{release[0]}.{release[1]}"
    facts = compat.tf_build(key, os_name)
    if facts is not None:
        return TfFacts(facts, "exact", release)
    known = _known_releases(os_name)
    if known and release > known[-1]:
        newest = known[-1]
        return TfFacts(compat.tf_build(f"{newest[0]}.{newest[1]}", os_name), "nearest", release)
    return TfFacts(None, "", release)


def build_value(tf: TensorflowBuild, *keys: str) -> str | None:
    """A raw build_info value by the first key present."""
    pairs = dict(tf.build_info)
    for key in keys:
        value = pairs.get(key)
        if value not in (None, ""):
            return value
    return None


def is_cuda_build(tf: TensorflowBuild) -> bool:
    """Whether the build uses CUDA: the flag, else the presence of a CUDA version."""
    if tf.is_cuda_build is not None:
        return tf.is_cuda_build
    return bool(tf.cuda_version or build_value(tf, "cuda_version", "cuda_version_number"))


def build_cuda(tf: TensorflowBuild, os_name: str) -> tuple[str | None, str]:
    """The CUDA version a CUDA build of TF was compiled with, and where that came from.

    build_info first ("64_112" on Windows means 11.2), then the tested-build table.
    """
    raw = tf.cuda_version or build_value(tf, "cuda_version", "cuda_version_number")
    plain = compat.build_version(raw)
    if plain and major_minor(plain):
        return plain, "build_info.py"
    facts = tf_facts(tf.version, os_name).facts
    if facts is not None and facts.cuda:
        return facts.cuda, f"tensorflow_builds.csv (TF {facts.tf_version})"
    return None, ""


def cuda_pythons(inventory: Inventory) -> Iterator[tuple[PythonEnv, TensorflowBuild]]:
    """Each watched interpreter whose TensorFlow is a CUDA build (Linux or Windows)."""
    if inventory.host.os not in ("linux", "windows"):
        return
    for python in inventory.pythons:
        tf = python.tensorflow
        if python.error is None and tf is not None and is_cuda_build(tf):
            yield python, tf


def install_requirement(version: str | None, host: HostInfo) -> str:
    """The requirement that (re)installs this TF release with GPU support on this host."""
    release = tf_release(version)
    pin = ""
    if version and _CLEAN.match(version.strip()):
        pin = f"=={version.strip()}"
    elif release:
        pin = f"=={release[0]}.{release[1]}.*"
    if host.os == "linux" and not _is_arm(host) and (release is None or release >= _AND_CUDA_FIRST):
        return f"tensorflow[and-cuda]{pin}"
    if release is not None and release < (2, 1):
        return f"tensorflow-gpu{pin}"
    return f"tensorflow{pin}"


def _subject(python: PythonEnv) -> str:
    return python.executable


# --------------------------------------------------------------------------- rules


def tf_not_installed(inventory: Inventory) -> Iterable[Finding]:
    pythons = inventory.pythons
    if any(has_tensorflow(p) for p in pythons):
        return
    if pythons and all(p.error for p in pythons):
        return  # python-probe-failed says why nothing could be read
    watched = ", ".join(p.executable for p in pythons) or "none"
    host = inventory.host
    example = (
        "C:\\path\\to\\venv\\Scripts\\python.exe"
        if host.os == "windows"
        else ("/path/to/venv/bin/python")
    )
    fix = [
        f"Watch the interpreter you run TensorFlow with: `tf-stack-monitor check --python"
        f" {example}` (or add it to the config file's watched interpreters)."
    ]
    if pythons:
        fix.append(
            "Or install TensorFlow into a watched one: "
            + fixes.pip(pythons[0].executable, host, "install", install_requirement(None, host))
        )
    yield Finding(
        id="tf-not-installed",
        severity=Severity.WARNING,
        link=Link.TENSORFLOW,
        title="No watched Python interpreter has TensorFlow installed",
        detail=(
            "The monitor looked for TensorFlow in the interpreters it watches and found none,"
            " so it cannot check the TensorFlow side of the stack. If TensorFlow lives in"
            " another virtual environment or conda env, point the monitor at that"
            " interpreter."
        ),
        evidence=(("watched interpreters", watched),),
        fix=tuple(fix),
    )


def python_probe_failed(inventory: Inventory) -> Iterable[Finding]:
    host = inventory.host
    for python in inventory.pythons:
        if not python.error:
            continue
        yield Finding(
            id="python-probe-failed",
            severity=Severity.WARNING,
            link=Link.PYTHON,
            title=f"Could not inspect the interpreter {python.executable}",
            detail=(
                "Starting the watched interpreter to learn its sys.path failed, so its"
                f" TensorFlow was not checked: {python.error}"
            ),
            evidence=(("interpreter", python.executable), ("error", python.error)),
            fix=(
                f"Check that it runs: {fixes.python_cmd(python.executable, host)} -c"
                f" {fixes.quote('import sys; print(sys.version)', host)}",
                "If the environment was deleted or moved, watch the new interpreter with"
                " `tf-stack-monitor check --python PATH`.",
            ),
            subject=_subject(python),
        )


def python_32bit(inventory: Inventory) -> Iterable[Finding]:
    host = inventory.host
    for python in inventory.pythons:
        if python.error or python.bits != 32:
            continue
        if host.os == "windows":
            how = (
                "Install 64-bit Python from https://www.python.org/downloads/windows/"
                ' (the "Windows installer (64-bit)") and create the venv with it:'
                " `py -3.10-64 -m venv C:\\venvs\\tf`"
            )
        else:
            how = (
                "Install a 64-bit (x86_64 or aarch64) Python and create the venv with it:"
                " `python3 -m venv ~/venvs/tf`"
            )
        yield Finding(
            id="python-32bit",
            severity=Severity.ERROR,
            link=Link.PYTHON,
            title=f"{python.executable} is a 32-bit Python: TensorFlow has no 32-bit wheels",
            detail=(
                "TensorFlow publishes 64-bit wheels only; pip cannot install it into a 32-bit"
                " interpreter, and no 32-bit build can use CUDA."
            ),
            evidence=(
                ("interpreter", python.executable),
                ("bits", str(python.bits)),
                ("python version", python.version),
            ),
            fix=(
                how,
                "Then, with the new venv's interpreter: "
                + fixes.pip(
                    "",
                    host,
                    "install",
                    install_requirement(tf_version(python) or None, host),
                ),
            ),
            subject=_subject(python),
        )


def tf_multiple_distributions(inventory: Inventory) -> Iterable[Finding]:
    host = inventory.host
    for python in inventory.pythons:
        if python.error:
            continue
        dists = {normalize(d.name): d for d in tf_distributions(python)}
        names = set(dists)
        if "tensorflow" in names:
            for companion, applies in _COMPANIONS.items():
                if companion in names and applies(host):
                    names.discard(companion)
        if len(names) < 2:
            continue
        ordered = sorted(names)
        listed = ", ".join(f"{n} {dists[n].version}" for n in ordered)
        keep = dists.get("tensorflow") or dists[ordered[0]]
        yield Finding(
            id="tf-multiple-distributions",
            severity=Severity.ERROR,
            link=Link.TENSORFLOW,
            title=f"Several TensorFlow distributions are installed at once: {', '.join(ordered)}",
            detail=(
                "Each of these installs the same `tensorflow` package directory, so the files"
                " on disk are a mix of whichever was installed last; uninstalling one of"
                " them later deletes files the other needs. The import then fails or runs"
                " a different build than pip reports."
            ),
            evidence=(("interpreter", python.executable), ("distributions", listed)),
            fix=(
                fixes.pip(python.executable, host, "uninstall", "-y", *ordered),
                fixes.pip(
                    python.executable, host, "install", install_requirement(keep.version, host)
                ),
            ),
            subject=_subject(python),
        )


def tf_gpu_package(inventory: Inventory) -> Iterable[Finding]:
    host = inventory.host
    for python in inventory.pythons:
        if python.error:
            continue
        gpu = next((d for d in python.distributions if normalize(d.name) == "tensorflow-gpu"), None)
        if gpu is None:
            continue
        release = tf_release(gpu.version)
        if release is not None and release < (2, 1):
            continue  # TF 2.0: tensorflow-gpu was the GPU package
        stub = release is not None and release >= (2, 12)
        if stub:
            severity, title = (
                Severity.ERROR,
                f"tensorflow-gpu {gpu.version} is an empty stub that only fails",
            )
            detail = (
                "From 2.12 the PyPI package tensorflow-gpu is a placeholder that raises an"
                " error telling you to install `tensorflow` instead (TF 2.12 release"
                " notes); it contains no TensorFlow."
            )
        else:
            severity, title = (
                Severity.WARNING,
                f"tensorflow-gpu {gpu.version} is the legacy GPU package",
            )
            detail = (
                "Since TF 2.1 the `tensorflow` package itself includes GPU support;"
                " tensorflow-gpu was kept as an alias and ended with 2.11. Use"
                " `tensorflow` so upgrades and other packages' requirements resolve"
                " to one distribution."
            )
        wanted = tf_version(python) if not stub else None
        yield Finding(
            id="tf-gpu-package",
            severity=severity,
            link=Link.TENSORFLOW,
            title=title,
            detail=detail,
            evidence=(("interpreter", python.executable), ("tensorflow-gpu", gpu.version)),
            fix=(
                fixes.pip(python.executable, host, "uninstall", "-y", "tensorflow-gpu"),
                fixes.pip(
                    python.executable, host, "install", install_requirement(wanted or None, host)
                ),
            ),
            subject=_subject(python),
        )


def tf_cpu_only_build(inventory: Inventory) -> Iterable[Finding]:
    host = inventory.host
    for python in inventory.pythons:
        if python.error or not has_tensorflow(python):
            continue
        version = tf_version(python)
        release = tf_release(version)
        if host.os == "windows":
            if release is None or release > _LAST_WINDOWS_GPU:
                continue  # tf-windows-native-no-gpu explains these
        elif host.os != "linux":
            continue
        tf = python.tensorflow
        cpu_dists = sorted(
            normalize(d.name) for d in tf_distributions(python) if normalize(d.name) in _CPU_ONLY
        )
        build_is_cpu = tf is not None and tf.is_cuda_build is False
        build_unknown = tf is None or tf.is_cuda_build is None
        if not (build_is_cpu or (cpu_dists and build_unknown)):
            continue
        evidence = [("interpreter", python.executable), ("tensorflow version", version or "?")]
        if tf is not None:
            evidence.append(("is_cuda_build", str(tf.is_cuda_build)))
            if tf.distribution:
                evidence.append(("distribution", tf.distribution))
        if cpu_dists:
            evidence.append(("CPU-only distributions", ", ".join(cpu_dists)))
        if host.os == "linux" and _is_arm(host):
            yield Finding(
                id="tf-cpu-only-build",
                severity=Severity.WARNING,
                link=Link.TENSORFLOW,
                title="The pip TensorFlow for ARM64 Linux is a CPU-only build",
                detail=(
                    "TensorFlow's aarch64 Linux wheels on PyPI are built without CUDA, so"
                    " this TensorFlow never uses the GPU."
                ),
                evidence=(*evidence, ("machine", host.machine)),
                fix=(
                    "Use a CUDA-enabled TensorFlow for ARM64 built by NVIDIA (JetPack wheels for"
                    " Jetson, or an NGC container), or build TensorFlow from source with CUDA.",
                ),
                subject=_subject(python),
            )
            continue
        steps = []
        if cpu_dists:
            steps.append(fixes.pip(python.executable, host, "uninstall", "-y", *cpu_dists))
        reinstall = install_requirement(version or None, host)
        flags = ("--force-reinstall",) if not cpu_dists else ()
        steps.append(fixes.pip(python.executable, host, "install", *flags, reinstall))
        if reinstall.startswith("tensorflow[and-cuda]"):
            how = "the `and-cuda` extra also installs the matching NVIDIA CUDA/cuDNN wheels"
        elif host.os == "windows":
            how = "it needs CUDA 11.2 and cuDNN 8.1 on PATH"
        else:
            how = "it needs the CUDA and cuDNN versions of its tested build installed"
        yield Finding(
            id="tf-cpu-only-build",
            severity=Severity.ERROR,
            link=Link.TENSORFLOW,
            title=f"TensorFlow {version or ''} in {python.executable} is a CPU-only build".replace(
                "  ", " "
            ),
            detail=(
                "This TensorFlow was built without CUDA (build_info is_cuda_build=False or a"
                " CPU-only distribution), so it never uses the GPU however the driver and"
                f" libraries are set up. Reinstall the GPU build; {how}."
            ),
            evidence=tuple(evidence),
            fix=tuple(steps),
            subject=_subject(python),
        )


def tf_windows_native_no_gpu(inventory: Inventory) -> Iterable[Finding]:
    host = inventory.host
    if host.os != "windows":
        return
    for python in inventory.pythons:
        if python.error or not has_tensorflow(python):
            continue
        version = tf_version(python)
        release = tf_release(version)
        if release is None or release <= _LAST_WINDOWS_GPU:
            continue
        py = python_release(python.version)
        old_python = (
            ""
            if py is None or py <= (3, 10)
            else (
                f" Python {python.version} is too new for TF 2.10 (it supports 3.7-3.10): create a"
                " Python 3.10 venv first: `py -3.10 -m venv C:\\venvs\\tf210`."
            )
        )
        evidence = [
            ("interpreter", python.executable),
            ("tensorflow version", version),
            ("python version", python.version or "?"),
        ]
        if python.tensorflow is not None:
            evidence.append(("is_cuda_build", str(python.tensorflow.is_cuda_build)))
        yield Finding(
            id="tf-windows-native-no-gpu",
            severity=Severity.ERROR,
            link=Link.TENSORFLOW,
            title=f"TensorFlow {version} has no GPU support on native Windows",
            detail=(
                "GPU support on native Windows ended with TensorFlow 2.10: every later"
                " Windows wheel is CPU-only (tensorflow_builds.csv; TensorFlow install"
                " docs). Run TensorFlow inside WSL2, where the Linux wheel uses the"
                " Windows NVIDIA driver, or pin the last GPU release 2.10 with CUDA 11.2"
                " and cuDNN 8.1."
            ),
            evidence=tuple(evidence),
            fix=(
                "WSL2 (recommended): in an administrator PowerShell run `wsl --install -d Ubuntu`"
                " and restart Windows.",
                "Keep the Windows NVIDIA driver up to date; install no NVIDIA driver inside WSL."
                " Check with `nvidia-smi` in the Ubuntu terminal.",
                "In Ubuntu: `sudo apt update && sudo apt install -y python3-venv`, then"
                " `python3 -m venv ~/venvs/tf && ~/venvs/tf/bin/python -m pip install -U pip`"
                " and `~/venvs/tf/bin/python -m pip install 'tensorflow[and-cuda]'`.",
                'Verify: `~/venvs/tf/bin/python -c "import tensorflow as tf;'
                " print(tf.config.list_physical_devices('GPU'))\"`, and watch that interpreter"
                " with `tf-stack-monitor check --python ~/venvs/tf/bin/python`.",
                "Or stay native with TF 2.10:"
                + old_python
                + " "
                + fixes.pip(
                    python.executable
                    if not old_python
                    else "C:\\venvs\\tf210\\Scripts\\python.exe",
                    host,
                    "install",
                    "tensorflow<2.11",
                )
                + ", plus CUDA 11.2 and cuDNN 8.1 (e.g. `conda install -c conda-forge"
                " cudatoolkit=11.2 cudnn=8.1.0`, or NVIDIA's installers with their bin"
                " directories on PATH).",
            ),
            subject=_subject(python),
        )


def tf_macos_no_cuda(inventory: Inventory) -> Iterable[Finding]:
    if inventory.host.os != "darwin":
        return
    for python in inventory.pythons:
        if python.error or not has_tensorflow(python):
            continue
        yield Finding(
            id="tf-macos-no-cuda",
            severity=Severity.INFO,
            link=Link.TENSORFLOW,
            title="TensorFlow on macOS does not use CUDA",
            detail=(
                "No TensorFlow 2.x release supports CUDA on macOS (the last macOS GPU build"
                " was tensorflow_gpu 1.1.0). On Apple silicon, Apple's tensorflow-metal"
                " plugin can use the GPU; the NVIDIA checks do not apply here."
            ),
            evidence=(
                ("interpreter", python.executable),
                ("tensorflow version", tf_version(python) or "?"),
            ),
            fix=(
                "Optional, Apple silicon: "
                + fixes.pip(python.executable, inventory.host, "install", "tensorflow-metal"),
            ),
            subject=_subject(python),
        )


def _installed_pin(tf: TensorflowBuild) -> str:
    """The requirement that reinstalls exactly the TensorFlow distribution found."""
    dist = tf.distribution or "tensorflow"
    return f"{dist}=={tf.version}" if tf.version else dist


def tf_files_missing(inventory: Inventory) -> Iterable[Finding]:
    host = inventory.host
    for python in inventory.pythons:
        tf = python.tensorflow
        if python.error or tf is None or not tf.missing_files:
            continue
        pin = _installed_pin(tf)
        shown = ", ".join(tf.missing_files[:5]) + (
            f" (and {len(tf.missing_files) - 5} more)" if len(tf.missing_files) > 5 else ""
        )
        yield Finding(
            id="tf-files-missing",
            severity=Severity.ERROR,
            link=Link.TENSORFLOW,
            title=f"{len(tf.missing_files)} of TensorFlow's own native files are missing",
            detail=(
                "Files that the installed distribution's RECORD lists are gone from disk"
                " (an interrupted install, a cleanup tool, or two TensorFlow distributions"
                " uninstalling each other's files). `import tensorflow` fails or loses"
                " GPU support."
            ),
            evidence=(
                ("interpreter", python.executable),
                ("distribution", pin),
                ("missing", shown),
            ),
            fix=(
                fixes.pip(
                    python.executable, host, "install", "--force-reinstall", "--no-deps", pin
                ),
            ),
            subject=_subject(python),
        )


def tf_build_info_unreadable(inventory: Inventory) -> Iterable[Finding]:
    host = inventory.host
    for python in inventory.pythons:
        tf = python.tensorflow
        if python.error or tf is None or not tf.error:
            continue
        pin = _installed_pin(tf)
        yield Finding(
            id="tf-build-info-unreadable",
            severity=Severity.WARNING,
            link=Link.TENSORFLOW,
            title="TensorFlow's build information could not be read",
            detail=(
                "The monitor reads what TensorFlow was built for (CUDA, cuDNN, GPU"
                " architectures) from tensorflow/python/platform/build_info.py without"
                " importing it. That failed, so the CUDA, cuDNN and GPU checks for this"
                f" interpreter are incomplete: {tf.error}"
            ),
            evidence=(
                ("interpreter", python.executable),
                ("package dir", tf.package_dir),
                ("error", tf.error),
            ),
            fix=(
                fixes.pip(
                    python.executable, host, "install", "--force-reinstall", "--no-deps", pin
                ),
            ),
            subject=_subject(python),
        )


def tf_version_unknown(inventory: Inventory) -> Iterable[Finding]:
    host = inventory.host
    known = _known_releases(host.os if host.os != "darwin" else "darwin")
    newest = f"{known[-1][0]}.{known[-1][1]}" if known else "?"
    oldest = f"{known[0][0]}.{known[0][1]}" if known else "?"
    for python in inventory.pythons:
        if python.error or not has_tensorflow(python):
            continue
        version = tf_version(python)
        found = tf_facts(version, host.os)
        if found.how == "exact":
            continue
        evidence = (
            ("interpreter", python.executable),
            ("tensorflow version", version or "?"),
            ("known releases", f"{oldest} - {newest}"),
        )
        if found.how == "nearest":
            yield Finding(
                id="tf-version-unknown",
                severity=Severity.INFO,
                link=Link.TENSORFLOW,
                title=f"TensorFlow {version} is newer than the monitor's compatibility data",
                detail=(
                    f"The tested-build table ends at TF {newest}; for this release the rules"
                    f" use TF {newest}'s facts (CUDA, cuDNN, Python range) where the build"
                    " itself does not say. Update tf-stack-monitor for exact data."
                ),
                evidence=evidence,
                fix=("Update tf-stack-monitor to a release that knows this TensorFlow version.",),
                subject=_subject(python),
            )
            continue
        yield Finding(
            id="tf-version-unknown",
            severity=Severity.WARNING,
            link=Link.TENSORFLOW,
            title=(
                f"TensorFlow version {version!r} is not one the monitor knows"
                if version
                else "The installed TensorFlow's version could not be determined"
            ),
            detail=(
                f"The compatibility data covers TF {oldest} to {newest}. For this version the"
                " CUDA, cuDNN and Python checks that need the tested-build table are"
                " skipped."
            ),
            evidence=evidence,
            fix=(
                "Reinstall a released TensorFlow 2.x: "
                + fixes.pip(
                    python.executable,
                    host,
                    "install",
                    "--force-reinstall",
                    install_requirement(None, host),
                ),
            ),
            subject=_subject(python),
        )


def python_version_unsupported(inventory: Inventory) -> Iterable[Finding]:
    host = inventory.host
    for python in inventory.pythons:
        if python.error or not has_tensorflow(python):
            continue
        version = tf_version(python)
        found = tf_facts(version, host.os)
        py = python_release(python.version)
        if found.how != "exact" or found.facts is None or py is None:
            continue
        low, high = major_minor(found.facts.python_min), major_minor(found.facts.python_max)
        if low is None or high is None or low <= py <= high:
            continue
        facts = found.facts
        rng = f"{facts.python_min}-{facts.python_max}"
        newer = _newest_release_for_python(py, host)
        steps = [
            f"Create a venv with a supported Python ({rng}) and install TensorFlow {version}"
            " there: "
            + (
                f"`py -{facts.python_max} -m venv C:\\venvs\\tf`"
                if host.os == "windows"
                else f"`python{facts.python_max} -m venv ~/venvs/tf` (or `uv venv"
                f" --python {facts.python_max}`, or `conda create -n tf"
                f" python={facts.python_max}`)"
            ),
        ]
        if newer is not None and py > high:
            steps.append(
                f"Or upgrade TensorFlow to {newer[0]}.{newer[1]}, which supports Python"
                f" {py[0]}.{py[1]}: "
                + fixes.pip(
                    python.executable,
                    host,
                    "install",
                    "--upgrade",
                    install_requirement(f"{newer[0]}.{newer[1]}", host),
                )
            )
        yield Finding(
            id="python-version-unsupported",
            severity=Severity.ERROR,
            link=Link.PYTHON,
            title=(
                f"Python {python.version} is not supported by TensorFlow"
                f" {facts.tf_version} (supports {rng})"
            ),
            detail=(
                f"TensorFlow {facts.tf_version} publishes wheels for Python {rng} only"
                " (PyPI wheel tags, tensorflow_builds.csv). A TensorFlow built for another"
                " Python cannot import its compiled extension in this interpreter."
            ),
            evidence=(
                ("interpreter", python.executable),
                ("python version", python.version),
                ("tensorflow version", version),
                ("supported python", rng),
            ),
            fix=tuple(steps),
            subject=_subject(python),
        )


def _newest_release_for_python(py: tuple[int, int], host: HostInfo) -> tuple[int, int] | None:
    """The newest known TF release with wheels for this Python (and GPU where it can have it)."""
    best = None
    for release in _known_releases(host.os):
        facts = compat.tf_build(f"{release[0]}.{release[1]}", host.os)
        if facts is None:
            continue
        if host.os == "windows" and release > _LAST_WINDOWS_GPU:
            continue
        low, high = major_minor(facts.python_min), major_minor(facts.python_max)
        if low and high and low <= py <= high:
            best = release
    return best


RULES = [
    tf_not_installed,
    python_probe_failed,
    python_32bit,
    tf_multiple_distributions,
    tf_gpu_package,
    tf_cpu_only_build,
    tf_windows_native_no_gpu,
    tf_macos_no_cuda,
    tf_files_missing,
    tf_build_info_unreadable,
    tf_version_unknown,
    python_version_unsupported,
]
