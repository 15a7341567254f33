"""Rules about the library files TensorFlow loads: missing, wrong version, shadowed, broken.

The facts come from the loader probe (one LibraryResolution per file TF asks for) and from
the watched interpreters' nvidia-* wheels. Search order matters (compat README, section 4):
glibc looks in LD_LIBRARY_PATH before TF's RUNPATH (the pip wheels), so a system CUDA there
wins; Windows TF <= 2.10 calls LoadLibrary with a bare name, so its CUDA DLLs come from PATH.

The small helpers at the top (interpreter command, what TF needs, pip requirement specs) are
shared with the environment and windows rules.
"""

from __future__ import annotations

import ntpath
import posixpath
import re
import shlex
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

from monitor import compat
from monitor.model import (
    Distribution,
    Finding,
    Inventory,
    LibraryFile,
    LibraryResolution,
    Link,
    PythonEnv,
    Severity,
    TensorflowBuild,
)
from monitor.rules import fixes
from monitor.versions import at_least, major_minor, parse_version

# The driver's own libraries: they come with the NVIDIA driver, never from pip or a toolkit.
DRIVER_ROLES = frozenset({"cuda_driver", "nvml"})

# Roles whose own version shares its major with the soname (libcublas.so.12 is cuBLAS 12.x,
# libcufft.so.11 is cuFFT 11.x). Not CUPTI: its files carry year versions (2023.1.1).
_VERSIONED_ROLES = frozenset(
    {
        "cudart",
        "cublas",
        "cublasLt",
        "cufft",
        "curand",
        "cusolver",
        "cusparse",
        "cudnn",
        "nvjitlink",
        "nccl",
        "nvrtc",
    }
)

# Which nvidia-*-cuXX wheel provides a role's files (site-packages/nvidia/<dir>/lib).
_WHEEL_COMPONENT = {
    "cudart": "cuda-runtime",
    "cublas": "cublas",
    "cublasLt": "cublas",
    "cufft": "cufft",
    "curand": "curand",
    "cusolver": "cusolver",
    "cusparse": "cusparse",
    "cudnn": "cudnn",
    "cupti": "cuda-cupti",
    "nvjitlink": "nvjitlink",
    "nccl": "nccl",
    "nvrtc": "cuda-nvrtc",
}

_ROLE_LABEL = {
    "cudart": "the CUDA runtime",
    "cublas": "cuBLAS",
    "cublasLt": "cuBLASLt",
    "cufft": "cuFFT",
    "curand": "cuRAND",
    "cusolver": "cuSOLVER",
    "cusparse": "cuSPARSE",
    "cudnn": "cuDNN",
    "cupti": "CUPTI",
    "nvjitlink": "nvJitLink",
    "nccl": "NCCL",
    "nvrtc": "NVRTC",
    "cuda_driver": "the CUDA driver library",
    "nvml": "NVML (the driver's management library)",
    "msvc_runtime": "the Visual C++ runtime",
}

# What TensorFlow loses when an optional library is missing.
_OPTIONAL_IMPACT = {
    "cupti": "Only the TensorFlow profiler needs it; training and inference still use the GPU.",
    "nccl": "Only multi-GPU collectives (e.g. MirroredStrategy over NCCL) need it; a single "
    "GPU still works.",
    "nvml": "TensorFlow uses it only for extra device information; the GPU still works.",
    "nvjitlink": "cuSPARSE and cuSOLVER 12 link against it; without it they can fail to load.",
    "curand": "TensorFlow built for CUDA 12 does not open cuRAND itself; the GPU still works.",
}

# Frameworks that pin their own nvidia-* wheels (JAX through its jax-cuda*-plugin packages).
_FRAMEWORKS = ("torch",)
_WHEEL_RE = re.compile(r"^nvidia-(?P<component>.+)-cu(?P<major>\d+)$")
_CUDA_ARCHIVE = "https://developer.nvidia.com/cuda-toolkit-archive"
_CUDNN_ARCHIVE = "https://developer.nvidia.com/rdp/cudnn-archive"
_APPEND_LD = "${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
_WIN_CUDA_ROOT = "C:\\Program Files\\NVIDIA GPU Computing Toolkit\\CUDA"


# --------------------------------------------------------------------------- shared helpers


def is_windows(inventory: Inventory) -> bool:
    return fixes.is_windows(inventory.host)


def quote(text: str, os_name: str) -> str:
    """A path or argument quoted for the user's shell (POSIX sh, or cmd/PowerShell)."""
    if os_name == "windows":
        return f'"{text}"' if any(c in text for c in " &()^%!;,") else text
    return shlex.quote(text)


def basename(path: str) -> str:
    """The file name of a POSIX or Windows path."""
    return re.split(r"[\\/]", path or "")[-1]


def dirname(path: str, os_name: str) -> str:
    return ntpath.dirname(path) if os_name == "windows" or "\\" in path else posixpath.dirname(path)


def normalize_name(name: str) -> str:
    """PEP 503 distribution name: "NVIDIA_cuDNN_cu12" -> "nvidia-cudnn-cu12"."""
    return re.sub(r"[-_.]+", "-", name or "").lower()


def python_env(inventory: Inventory, executable: str = "") -> PythonEnv | None:
    """The watched interpreter `executable`, else the first one with TensorFlow, else any."""
    for python in inventory.pythons:
        if executable and python.executable == executable:
            return python
    for python in inventory.pythons:
        if python.tensorflow is not None:
            return python
    return inventory.pythons[0] if inventory.pythons else None


def _python_exe(inventory: Inventory, executable: str) -> str:
    python = python_env(inventory, executable)
    return executable or (python.executable if python else "")


def python_command(inventory: Inventory, executable: str = "") -> str:
    """The watched interpreter's own path, quoted, to prefix `-m pip ...` with."""
    return fixes.python_cmd(_python_exe(inventory, executable), inventory.host)


def pip_command(inventory: Inventory, executable: str, *args: str) -> str:
    """`<watched python> -m pip <args>`, each argument quoted as the user's shell needs."""
    return fixes.pip(_python_exe(inventory, executable), inventory.host, *args)


def pip_install(inventory: Inventory, executable: str, *args: str) -> str:
    return pip_command(inventory, executable, "install", *args)


@dataclass(frozen=True)
class TfNeeds:
    """What one watched TensorFlow was built for: versions as plain "12.5.1" / "9.3"."""

    python: PythonEnv
    tf: TensorflowBuild
    cuda: str | None
    cudnn: str | None
    facts: compat.TfBuildFacts | None

    @property
    def cuda_major(self) -> int | None:
        parsed = parse_version(self.cuda)
        return parsed[0] if parsed else None

    @property
    def label(self) -> str:
        return f"TensorFlow {self.tf.version or '(unknown version)'}"

    @property
    def gpu_distribution(self) -> str:
        """The distribution whose [and-cuda] extra brings the CUDA wheels (not -cpu/-intel)."""
        dist = self.tf.distribution or "tensorflow"
        return "tensorflow" if dist in ("tensorflow-cpu", "tensorflow-intel") else dist


def tf_needs(inventory: Inventory, executable: str = "") -> TfNeeds | None:
    """The CUDA and cuDNN the interpreter's TensorFlow was built for (None: no TF there).

    The wheel's own build_info wins for CUDA ("12.5.1"); the tested-build table gives the cuDNN
    minor that build_info leaves out ("9" -> "9.3") when their majors agree.
    """
    python = python_env(inventory, executable)
    if python is None or python.tensorflow is None:
        return None
    tf = python.tensorflow
    facts = compat.tf_build(tf.version, inventory.host.os)
    cuda = compat.build_version(tf.cuda_version)
    if cuda is None and facts is not None and facts.cuda:
        cuda = facts.cuda
    cudnn = compat.build_version(tf.cudnn_version)
    if facts is not None and facts.cudnn:
        table, own = major_minor(facts.cudnn), major_minor(cudnn)
        if own is None or (table is not None and table[0] == own[0]):
            cudnn = facts.cudnn
    return TfNeeds(python=python, tf=tf, cuda=cuda, cudnn=cudnn, facts=facts)


def is_cpu_only(inventory: Inventory, executable: str = "") -> bool:
    """The watched TensorFlow is known to be a CPU-only build (it opens no CUDA library)."""
    python = python_env(inventory, executable)
    return bool(python and python.tensorflow and python.tensorflow.is_cuda_build is False)


@dataclass(frozen=True)
class Requirement:
    """One Requires-Dist line: `nvidia-cudnn-cu12<10.0,>=9.3.0.75; extra == "and-cuda"`."""

    name: str
    specifier: str
    extra: str

    @property
    def text(self) -> str:
        return f"{self.name}{self.specifier}"


def parse_requirement(line: str) -> Requirement | None:
    if not line:
        return None
    body, _, marker = line.partition(";")
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(.*)$", body)
    if not match:
        return None
    specifier = re.sub(r"[\s()]", "", match.group(2))
    extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", marker)
    return Requirement(normalize_name(match.group(1)), specifier, extra.group(1) if extra else "")


def and_cuda_requirements(tf: TensorflowBuild) -> dict[str, Requirement]:
    """The `tensorflow[and-cuda]` requirements by normalized name."""
    found = {}
    for line in tf.requires:
        req = parse_requirement(line)
        if req and normalize_name(req.extra) == "and-cuda":
            found.setdefault(req.name, req)
    return found


def has_and_cuda(inventory: Inventory, tf: TensorflowBuild) -> bool:
    """Linux TF that gets CUDA from pip wheels: its METADATA has the extra, or (no METADATA
    read) it is 2.14 or newer, the first release with `tensorflow[and-cuda]`."""
    if inventory.host.os != "linux":
        return False
    if tf.requires:
        return bool(and_cuda_requirements(tf))
    return at_least(tf.version, "2.14") is True


def satisfies(version: str | None, specifier: str) -> bool | None:
    """`version` meets a PEP 440 specifier like ">=9.3.0.75,<10.0"; None when unreadable."""
    if parse_version(version) is None:
        return None
    for clause in (c.strip() for c in (specifier or "").split(",")):
        if not clause:
            continue
        match = re.match(r"(===|==|!=|~=|>=|<=|>|<)(.+)$", clause)
        if not match:
            return None
        op, wanted = match.groups()
        if wanted.endswith(".*"):
            prefix = parse_version(wanted[:-2])
            actual = parse_version(version)
            if prefix is None or actual is None:
                return None
            same = actual[: len(prefix)] == prefix
            if (op == "==" and not same) or (op == "!=" and same):
                return False
            continue
        if parse_version(wanted) is None:
            return None
        ge, le = at_least(version, wanted), at_least(wanted, version)
        ok = {
            "==": ge and le,
            "===": ge and le,
            "!=": not (ge and le),
            ">=": ge,
            "<=": le,
            ">": ge and not le,
            "<": le and not ge,
            "~=": ge and _compatible_prefix(version, wanted),
        }[op]
        if not ok:
            return False
    return True


def _compatible_prefix(version: str | None, wanted: str) -> bool:
    actual, base = parse_version(version) or (), parse_version(wanted) or ()
    prefix = base[:-1] if len(base) > 1 else base
    return actual[: len(prefix)] == prefix


def wheel_for(role: str, cuda_major: int | None) -> str | None:
    """The wheel that provides a role's library: cudart, CUDA 12 -> nvidia-cuda-runtime-cu12."""
    component = _WHEEL_COMPONENT.get(role)
    if component is None or cuda_major is None:
        return None
    return f"nvidia-{component}-cu{cuda_major}"


def installed(python: PythonEnv | None, name: str) -> Distribution | None:
    if python is None:
        return None
    wanted = normalize_name(name)
    return next((d for d in python.distributions if normalize_name(d.name) == wanted), None)


def ld_library_path_without(inventory: Inventory, remove: Iterable[str]) -> str:
    """`export LD_LIBRARY_PATH=...` without the given directories (or `unset ...`)."""
    drop = {posixpath.normpath(p) for p in remove if p}
    kept = [
        e.path
        for e in inventory.environment.ld_library_path
        if e.path and posixpath.normpath(e.path) not in drop
    ]
    if not kept:
        return "unset LD_LIBRARY_PATH"
    return f"export LD_LIBRARY_PATH={quote(':'.join(kept), 'linux')}"


def where_set_hint(variable: str, python: PythonEnv | None) -> str:
    """Where a Linux user's variable is usually set, as a grep over those files."""
    files = [
        "~/.bashrc",
        "~/.profile",
        "~/.bash_profile",
        "~/.zshrc",
        "/etc/environment",
        "/etc/profile.d/*.sh",
    ]
    if python and python.prefix:
        files.append(quote(posixpath.join(python.prefix, "bin", "activate"), "linux"))
    return (
        f"Make it permanent where {variable} is set (find it with: grep -n {variable} "
        f"{' '.join(files)}), then open a new shell."
    )


def windows_add_to_path(directory: str) -> str:
    return (
        "Add the directory to your user Path (PowerShell), then open a new terminal: "
        '[Environment]::SetEnvironmentVariable("Path", '
        '[Environment]::GetEnvironmentVariable("Path", "User") + '
        f'";{directory}", "User")'
    )


def subject_for(inventory: Inventory, name: str, python: str) -> str:
    """`name`, tagged with the interpreter when several are watched (keeps subjects unique)."""
    if python and len(inventory.pythons) > 1:
        return f"{name} [{python}]"
    return name


def _severity(required: bool) -> Severity:
    return Severity.ERROR if required else Severity.WARNING


def _describe(file: LibraryFile) -> str:
    parts = [file.path]
    extra = []
    if file.version:
        extra.append(f"version {file.version}")
    if file.soname and file.soname != basename(file.path):
        extra.append(f"soname {file.soname}")
    if file.via:
        extra.append(f"via {file.via}")
    if extra:
        parts.append(f"({', '.join(extra)})")
    return " ".join(parts)


# --------------------------------------------------------------------------- version numbers


def wanted_major(file_name: str) -> int | None:
    """The major a file name asks for: libcudart.so.12 -> 12, libcudart.so.11.0 -> 11,
    cudart64_110.dll -> 11, cublas64_11.dll -> 11, cudnn64_8.dll -> 8; nvcuda.dll -> None."""
    name = basename(file_name or "")
    match = re.search(r"\.so\.(\d+)", name)
    if match:
        return int(match.group(1))
    match = re.search(r"64_(\d+)\.dll$", name, re.IGNORECASE)
    if match:
        digits = match.group(1)
        if len(digits) <= 2:
            return int(digits)
        if len(digits) == 3:
            return int(digits[:2])
    return None


def _version_major(text: str | None) -> int | None:
    parsed = parse_version(text)
    return parsed[0] if parsed else None


def _wrong_version_reasons(res: LibraryResolution) -> list[str]:
    """Why the resolved file is not the major TF asked for (empty: it is, or cannot tell)."""
    file = res.resolved
    if file is None or file.error or res.role in DRIVER_ROLES or res.role == "msvc_runtime":
        return []
    wanted = wanted_major(res.wanted)
    if wanted is None:
        return []
    reasons = []
    soname_major = wanted_major(file.soname or "")
    if file.soname and soname_major is not None and soname_major != wanted:
        reasons.append(f"its soname is {file.soname} (major {soname_major}, not {wanted})")
    if res.role in _VERSIONED_ROLES and file.version_source != "soname":
        major = _version_major(file.version)
        if major is not None and major != wanted:
            source = f" (from its {file.version_source})" if file.version_source else ""
            reasons.append(f"it is version {file.version}{source}, major {major}, not {wanted}")
    return reasons


# --------------------------------------------------------------------------- library-not-found


def _driver_missing_story(inventory: Inventory) -> bool:
    """NVML itself could not be found: the driver rules report driver-not-found for that one
    cause, so library-not-found stays quiet about libcuda/NVML (one cause, one finding)."""
    driver = inventory.driver
    return not driver.nvml_loaded and driver.error_code == "NVML_ERROR_LIBRARY_NOT_FOUND"


def _group_key(res: LibraryResolution) -> str:
    """Files that come and go together (one wheel, one cuDNN) make one finding."""
    return _WHEEL_COMPONENT.get(res.role, res.role)


def library_not_found(inventory: Inventory) -> Iterator[Finding]:
    groups: dict[tuple[str, str], list[LibraryResolution]] = {}
    for res in inventory.libraries:
        if res.resolved is not None or res.on_path_only is not None:
            continue
        if res.role == "msvc_runtime":
            continue  # windows.vc-runtime-missing tells that story, with the redistributable
        if res.role in DRIVER_ROLES and _driver_missing_story(inventory):
            continue
        if is_cpu_only(inventory, res.python):
            continue
        groups.setdefault((res.python, _group_key(res)), []).append(res)
    merged: dict[str, list[list[LibraryResolution]]] = {}
    for (python, _), members in groups.items():
        if _wheel_not_installed(inventory, python, members):
            merged.setdefault(python, []).append(members)
    for python, wheel_groups in merged.items():
        if len(wheel_groups) >= 2:
            yield _and_cuda_missing_finding(inventory, python, wheel_groups)
    for (python, _), members in groups.items():
        if len(merged.get(python, ())) >= 2 and any(members is g for g in merged[python]):
            continue
        yield _not_found_finding(inventory, python, members)


def _wheel_not_installed(
    inventory: Inventory, python: str, members: list[LibraryResolution]
) -> bool:
    """Linux pip TensorFlow, and the wheel that provides these files is simply not there."""
    needs = tf_needs(inventory, python)
    if needs is None or not has_and_cuda(inventory, needs.tf):
        return False
    wheel = wheel_for(members[0].role, needs.cuda_major)
    if wheel is None or installed(needs.python, wheel) is not None:
        return False
    return not _elsewhere(members) and not _unlinked(members)


def _and_cuda_missing_finding(
    inventory: Inventory, python: str, wheel_groups: list[list[LibraryResolution]]
) -> Finding:
    """Several pip CUDA wheels missing at once: TF was installed without [and-cuda]. One
    finding with one command instead of one per wheel."""
    needs = tf_needs(inventory, python)
    assert needs is not None
    members = [m for group in wheel_groups for m in group]
    required = any(m.required for m in members)
    wheels = [wheel_for(g[0].role, needs.cuda_major) or g[0].role for g in wheel_groups]
    requirements = and_cuda_requirements(needs.tf)
    specs = [requirements[w].text if w in requirements else w for w in wheels]
    dist_name = needs.gpu_distribution
    consequence = (
        'TensorFlow cannot use the GPU: it logs "Cannot dlopen some GPU libraries" and runs '
        "on the CPU."
        if required
        else "Only optional features (profiler, multi-GPU) are affected."
    )
    evidence: list[tuple[str, str]] = [
        ("missing wheels", ", ".join(wheels)),
        ("files not found", ", ".join(m.wanted for m in members)),
    ]
    if python:
        evidence.append(("python", python))
    evidence.append(
        (
            "tensorflow",
            f"{needs.tf.version} built for CUDA {needs.cuda or '?'}, cuDNN {needs.cudnn or '?'}",
        )
    )
    return Finding(
        id="library-not-found",
        severity=_severity(required),
        link=Link.LIBRARIES,
        title=f"{len(members)} CUDA libraries of {needs.label} are missing: its nvidia-* "
        f"wheels ({len(wheels)}) are not installed",
        detail=(
            f"{needs.label} gets its CUDA libraries from the nvidia-*-cu{needs.cuda_major} "
            f"wheels of the [and-cuda] extra, and {len(wheels)} of them are not installed in "
            f"this environment (a plain `pip install {dist_name}` does not bring them). "
            f"{consequence}"
        ),
        evidence=tuple(evidence),
        fix=(
            "Install TensorFlow with its CUDA wheels: "
            + pip_install(inventory, python, f"{dist_name}[and-cuda]=={needs.tf.version}"),
            "Or only the missing wheels: " + pip_install(inventory, python, *specs),
        ),
        subject=subject_for(inventory, f"{dist_name}[and-cuda]", python),
    )


def _not_found_finding(
    inventory: Inventory, python: str, members: list[LibraryResolution]
) -> Finding:
    first = members[0]
    required = any(m.required for m in members)
    names = [m.wanted for m in members]
    label = _ROLE_LABEL.get(first.role, first.role)
    if len(names) == 1:
        title = f"{first.wanted} ({label}) not found"
    else:
        title = f"{first.wanted} and {len(names) - 1} more {label} files not found"
    windows = is_windows(inventory)
    if required:
        impact = (
            f"TensorFlow cannot use the GPU without {'it' if len(names) == 1 else 'them'}: it "
            'logs "Cannot dlopen some GPU libraries" and silently runs on the CPU.'
        )
    else:
        impact = _OPTIONAL_IMPACT.get(first.role, "TensorFlow works without it, with less.")
    where = (
        "in the application directory, System32 or any PATH directory"
        if windows
        else "in LD_LIBRARY_PATH, TensorFlow's RUNPATH (the pip nvidia-* wheels), the ld.so "
        "cache or /lib and /usr/lib"
    )
    detail = f"TensorFlow opens {', '.join(names)} by name; the loader finds no such file {where}."
    evidence: list[tuple[str, str]] = [("wanted", ", ".join(names))]
    evidence.append(("required", "yes" if required else "no (optional)"))
    if python:
        evidence.append(("python", python))
    needs = tf_needs(inventory, python)
    if needs:
        evidence.append(
            (
                "tensorflow",
                f"{needs.tf.version} built for CUDA {needs.cuda or '?'}, "
                f"cuDNN {needs.cudnn or '?'}",
            )
        )
    variable = "PATH" if windows else "LD_LIBRARY_PATH"
    evidence.append((variable, inventory.environment.get(variable) or "(not set)"))
    elsewhere = _elsewhere(members)
    for file in elsewhere:
        evidence.append(("found elsewhere", _describe(file)))
    for member in members:
        if member.note:
            evidence.append(("note", f"{member.wanted}: {member.note}"))
    return Finding(
        id="library-not-found",
        severity=_severity(required),
        link=Link.LIBRARIES,
        title=title,
        detail=f"{detail} {impact}",
        evidence=tuple(evidence),
        fix=tuple(_not_found_fix(inventory, python, members, needs, elsewhere)),
        subject=subject_for(inventory, first.wanted, python),
    )


def _elsewhere(members: list[LibraryResolution]) -> list[LibraryFile]:
    """Usable files with a wanted name that the loader does not search."""
    wanted = {m.wanted.lower() for m in members}
    seen, found = set(), []
    for member in members:
        for file in member.candidates:
            if file.error or basename(file.path).lower() not in wanted or file.path in seen:
                continue
            if file.soname and wanted_major(file.soname) != wanted_major(member.wanted):
                continue
            seen.add(file.path)
            found.append(file)
    return found


def _unlinked(members: list[LibraryResolution]) -> list[tuple[LibraryResolution, LibraryFile]]:
    """Files of the right major that lack the soname link TF asks for (ldconfig not run)."""
    out = []
    for member in members:
        for file in member.candidates:
            if file.error and "link next to it" in file.error:
                out.append((member, file))
                break
    return out


def _linux_elsewhere_steps(
    inventory: Inventory,
    members: list[LibraryResolution],
    elsewhere: list[LibraryFile],
    needs: TfNeeds | None,
) -> list[str]:
    """Steps when the file is on disk but not where the loader looks (empty: it is not)."""
    if elsewhere:
        file = elsewhere[0]
        directory = dirname(file.path, "linux")
        if file.via == "ld.so.conf":
            return [
                f"{directory} is listed in /etc/ld.so.conf.d but the loader cache is stale: "
                "sudo ldconfig"
            ]
        if members[0].role in DRIVER_ROLES:
            return [
                f"{file.path} exists, but the loader does not search {directory}: "
                f"echo {quote(directory, 'linux')} | sudo tee "
                "/etc/ld.so.conf.d/nvidia-driver.conf && sudo ldconfig"
            ]
        return [
            f"The file exists in {directory}, which the loader does not search; add it: "
            f"export LD_LIBRARY_PATH={quote(directory, 'linux')}{_APPEND_LD}",
            where_set_hint("LD_LIBRARY_PATH", needs.python if needs else None),
        ]
    unlinked = _unlinked(members)
    if unlinked:
        member, file = unlinked[0]
        directory = dirname(file.path, "linux")
        return [
            f"{file.path} is there but the {member.wanted} link is not: create the links with "
            f"sudo ldconfig, or by hand: ln -s {quote(basename(file.path), 'linux')} "
            f"{quote(posixpath.join(directory, member.wanted), 'linux')}"
        ]
    return []


def _not_found_fix(
    inventory: Inventory,
    python: str,
    members: list[LibraryResolution],
    needs: TfNeeds | None,
    elsewhere: list[LibraryFile],
) -> list[str]:
    role = members[0].role
    if is_windows(inventory):
        if role in DRIVER_ROLES:
            return driver_library_fix(inventory)
        return _windows_not_found_fix(inventory, members, needs, elsewhere)
    if role in DRIVER_ROLES:
        return _linux_elsewhere_steps(inventory, members, elsewhere, needs) or (
            driver_library_fix(inventory)
        )
    if needs is not None and has_and_cuda(inventory, needs.tf):
        return _pip_not_found_fix(inventory, python, members, needs, elsewhere)
    return _toolkit_not_found_fix(inventory, members, needs, elsewhere)


def driver_library_fix(inventory: Inventory) -> list[str]:
    """How to get libcuda.so.1 / nvcuda.dll / libnvidia-ml.so.1: they come with the driver."""
    return list(fixes.driver_install_steps(inventory.host))


def _pip_not_found_fix(
    inventory: Inventory,
    python: str,
    members: list[LibraryResolution],
    needs: TfNeeds,
    elsewhere: list[LibraryFile],
) -> list[str]:
    wheel = wheel_for(members[0].role, needs.cuda_major)
    dist_name = needs.gpu_distribution
    in_wheel = next((f for f in elsewhere if f.via == "pip"), None)
    if in_wheel is not None:
        # The wheel's file is there; TF's RUNPATH just does not lead to it (TF 2.16.1).
        directory = dirname(in_wheel.path, "linux")
        return [
            f"The file is in {directory}, but TensorFlow's RUNPATH does not lead there (a known "
            "problem of TF 2.16.1, tensorflow#63362). Link the pip libraries into the package: "
            f"cd {quote(needs.tf.package_dir, 'linux')} && ln -svf ../nvidia/*/lib/*.so* .",
            f"Or add it to the search path: export LD_LIBRARY_PATH={quote(directory, 'linux')}"
            f"{_APPEND_LD}",
        ]
    steps = _linux_elsewhere_steps(inventory, members, [], needs)
    present = installed(needs.python, wheel) if wheel else None
    if present is not None:
        steps.append(
            f"{present.name} {present.version} is installed but its files are missing; "
            "reinstall it: "
            + pip_install(
                inventory,
                python,
                "--force-reinstall",
                "--no-deps",
                f"{present.name}=={present.version}",
            )
        )
        if major_minor(needs.tf.version) == (2, 16):
            steps.append(
                "TensorFlow 2.16 often does not find the pip CUDA libraries (tensorflow#63362); "
                "link them into the package: cd "
                + quote(needs.tf.package_dir, "linux")
                + " && ln -svf ../nvidia/*/lib/*.so* ."
            )
        return steps
    if wheel:
        requirement = and_cuda_requirements(needs.tf).get(wheel)
        cudnn = major_minor(needs.cudnn)
        if requirement is not None:
            spec = requirement.text
        elif members[0].role == "cudnn" and cudnn is not None:
            spec = f"{wheel}>={needs.cudnn},<{cudnn[0] + 1}"
        else:
            spec = wheel
        steps.append("Install the wheel that provides it: " + pip_install(inventory, python, spec))
    steps.append(
        "Or reinstall TensorFlow with all its CUDA wheels: "
        + pip_install(inventory, python, f"{dist_name}[and-cuda]=={needs.tf.version}")
    )
    return steps


def _toolkit_not_found_fix(
    inventory: Inventory,
    members: list[LibraryResolution],
    needs: TfNeeds | None,
    elsewhere: list[LibraryFile],
) -> list[str]:
    role = members[0].role
    steps = _linux_elsewhere_steps(inventory, members, elsewhere, needs)
    if steps:
        return steps
    cuda = _mm_text(needs.cuda) if needs else None
    cudnn = _mm_text(needs.cudnn) if needs else None
    if not cuda:
        return [
            f"Install the library that provides {members[0].wanted} (the CUDA toolkit or cuDNN "
            "version your TensorFlow was built for) and add its lib64 directory to "
            "LD_LIBRARY_PATH."
        ]
    lib64 = f"/usr/local/cuda-{cuda}/lib64"
    if role == "cudnn":
        steps.append(
            f"Install cuDNN {cudnn or ''} for CUDA {cuda.split('.')[0]}.x ({_CUDNN_ARCHIVE}) "
            f"and copy its lib files into {lib64} (or add its lib directory to LD_LIBRARY_PATH)."
        )
    elif role == "cupti":
        lib64 = f"/usr/local/cuda-{cuda}/extras/CUPTI/lib64"
        steps.append(f"CUPTI ships with the CUDA {cuda} toolkit ({_CUDA_ARCHIVE}) in {lib64}.")
    else:
        steps.append(
            f"{needs.label if needs else 'TensorFlow'} needs CUDA {cuda}"
            + (f" and cuDNN {cudnn}" if cudnn else "")
            + f": install the CUDA {cuda} toolkit ({_CUDA_ARCHIVE})"
            + (f" and cuDNN {cudnn} ({_CUDNN_ARCHIVE})." if cudnn else ".")
        )
    steps.append(f"export LD_LIBRARY_PATH={lib64}{_APPEND_LD}")
    steps.append(where_set_hint("LD_LIBRARY_PATH", needs.python if needs else None))
    return steps


def _windows_not_found_fix(
    inventory: Inventory,
    members: list[LibraryResolution],
    needs: TfNeeds | None,
    elsewhere: list[LibraryFile],
) -> list[str]:
    role = members[0].role
    if needs is not None and needs.facts is not None and not needs.facts.gpu_supported:
        return [
            f"{needs.label} has no native-Windows GPU build (the last one is 2.10): run "
            'TensorFlow in WSL2 with the Linux wheel (pip install "tensorflow[and-cuda]"), or '
            "install tensorflow==2.10.1 with CUDA 11.2 and cuDNN 8.1."
        ]
    steps = []
    if elsewhere:
        directory = dirname(elsewhere[0].path, "windows")
        steps.append(f"The DLL exists in {directory}, which is not on Path.")
        steps.append(windows_add_to_path(directory))
        return steps
    cuda = _mm_text(needs.cuda) if needs else None
    cudnn = _mm_text(needs.cudnn) if needs else None
    if not cuda:
        return [
            f"Install the CUDA toolkit / cuDNN that provide {members[0].wanted} and add their "
            "bin directories to Path."
        ]
    root = _windows_toolkit_root(inventory, cuda)
    if role == "cudnn":
        steps.append(
            f"Install cuDNN {cudnn or ''} for CUDA {cuda.split('.')[0]}.x ({_CUDNN_ARCHIVE}) and "
            f"copy its bin\\*.dll into {root}\\bin (or add the cuDNN bin folder to Path)."
        )
        steps.append(windows_add_to_path(f"{root}\\bin"))
    elif role == "cupti":
        steps.append(windows_add_to_path(f"{root}\\extras\\CUPTI\\lib64"))
    else:
        steps.append(
            f"{needs.label if needs else 'TensorFlow'} needs CUDA {cuda}"
            + (f" and cuDNN {cudnn}" if cudnn else "")
            + f": install CUDA {cuda} ({_CUDA_ARCHIVE})"
            + (f" and cuDNN {cudnn} ({_CUDNN_ARCHIVE})" if cudnn else "")
            + ", then put their bin directories on Path."
        )
        steps.append(windows_add_to_path(f"{root}\\bin"))
    steps.append(f"Check in a new terminal: where {members[0].wanted}")
    return steps


def _windows_toolkit_root(inventory: Inventory, cuda_mm: str) -> str:
    for toolkit in inventory.toolkits:
        if _mm_text(toolkit.version) == cuda_mm and toolkit.root:
            return toolkit.root
    return f"{_WIN_CUDA_ROOT}\\v{cuda_mm}"


def _mm_text(version: str | None) -> str | None:
    mm = major_minor(version)
    return f"{mm[0]}.{mm[1]}" if mm else None


# --------------------------------------------------------------------------- wrong version


def library_wrong_version(inventory: Inventory) -> Iterator[Finding]:
    for res in inventory.libraries:
        reasons = _wrong_version_reasons(res)
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
        evidence.extend(("matching copy", _describe(c)) for c in good)
        yield Finding(
            id="library-wrong-version",
            severity=_severity(res.required),
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
    if res.role in _VERSIONED_ROLES:
        return _version_major(file.version)
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
            f"(del {quote(file.path, os_name)}); a renamed DLL of another version does not work."
        )
        if good:
            steps.append(windows_add_to_path(dirname(good[0].path, os_name)))
        elif needs and needs.cuda:
            steps.append(
                f"Install the CUDA {_mm_text(needs.cuda)} / cuDNN {_mm_text(needs.cudnn) or ''} "
                "that provide this DLL and put their bin directories on Path, ahead of "
                f"{dirname(file.path, os_name)}."
            )
        return steps
    directory = dirname(file.path, os_name)
    steps.append(
        f"Check what the file is: ls -l {quote(file.path, os_name)}; if it is a symlink or a "
        f"renamed copy someone made, remove it: rm {quote(file.path, os_name)}"
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


# --------------------------------------------------------------------------- shadowed


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
        if _wrong_version_reasons(res):
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
    component = _WHEEL_COMPONENT.get(res.role)
    if component is None or res.role not in _VERSIONED_ROLES or "nvidia" not in copy.path:
        return copy
    python = python_env(inventory, res.python)
    if python is None:
        return copy
    major = wanted_major(res.wanted)
    for wheel in _nvidia_wheels(python):
        if wheel.component != component:
            continue
        version_major = _version_major(wheel.dist.version)
        if major is not None and version_major is not None and version_major != major:
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
        names = " ".join(quote(res.resolved.path, os_name) for res, _, _ in members if res.resolved)
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


# --------------------------------------------------------------------------- unloadable


def library_unloadable(inventory: Inventory) -> Iterator[Finding]:
    os_name = inventory.host.os
    for res in inventory.libraries:
        file = res.resolved
        if file is None or not file.error:
            continue
        needs = tf_needs(inventory, res.python)
        detail = (
            f"The loader picks {file.path} for {res.wanted} (via {file.via or '?'}), but the "
            f"file is broken: {file.error}. The search stops at this file, so TensorFlow "
            + ("cannot use the GPU." if res.required else "loses the feature it provides.")
        )
        steps = []
        wheel = wheel_for(res.role, needs.cuda_major if needs else None)
        present = installed(needs.python, wheel) if needs and wheel else None
        if present is not None and "nvidia" in file.path:
            steps.append(
                "Reinstall the wheel it belongs to: "
                + pip_install(
                    inventory,
                    res.python,
                    "--force-reinstall",
                    "--no-deps",
                    f"{present.name}=={present.version}",
                )
            )
        if os_name == "windows":
            steps.append(
                f"Replace or delete {file.path} (an interrupted copy or a 32-bit DLL), or "
                "reinstall the CUDA toolkit / cuDNN it came from."
            )
        else:
            steps.append(f"Look at it: file -L {quote(file.path, os_name)}")
            steps.append(
                f"Replace or delete it (an interrupted copy, a 32-bit build or a text file): "
                f"rm {quote(file.path, os_name)}, or reinstall the package it came from."
            )
            if file.via == "LD_LIBRARY_PATH":
                directory = dirname(file.path, os_name)
                steps.append(
                    f"Or drop {directory} from LD_LIBRARY_PATH: "
                    + ld_library_path_without(inventory, [directory])
                )
        evidence = [
            ("wanted", res.wanted),
            ("resolved", file.path),
            ("via", file.via or "?"),
            ("error", file.error),
        ]
        if res.python:
            evidence.append(("python", res.python))
        yield Finding(
            id="library-unloadable",
            severity=_severity(res.required),
            link=Link.LIBRARIES,
            title=f"{res.wanted} at {file.path} cannot be loaded: {file.error}",
            detail=detail,
            evidence=tuple(evidence),
            fix=tuple(steps),
            subject=subject_for(inventory, res.wanted, res.python),
        )


# --------------------------------------------------------------------------- nvidia wheels


@dataclass(frozen=True)
class _Wheel:
    dist: Distribution
    name: str
    component: str
    major: int


def _nvidia_wheels(python: PythonEnv) -> list[_Wheel]:
    wheels, seen = [], set()
    for dist in python.distributions:
        name = normalize_name(dist.name)
        match = _WHEEL_RE.match(name)
        if not match or name in seen:  # a shadowed second copy is listed after the first
            continue
        seen.add(name)
        wheels.append(_Wheel(dist, name, match.group("component"), int(match.group("major"))))
    return wheels


def nvidia_wheels_mixed(inventory: Inventory) -> Iterator[Finding]:
    for python in inventory.pythons:
        wheels = _nvidia_wheels(python)
        if not wheels:
            continue
        needs = tf_needs(inventory, python.executable)
        if needs is not None and needs.python is not python:
            needs = None
        yield from _mixed_majors(inventory, python, wheels, needs)
        yield from _framework_conflict(inventory, python, wheels, needs)


def _mixed_majors(
    inventory: Inventory, python: PythonEnv, wheels: list[_Wheel], needs: TfNeeds | None
) -> Iterator[Finding]:
    majors = sorted({w.major for w in wheels})
    if len(majors) < 2:
        return
    by_component: dict[str, set[int]] = {}
    for wheel in wheels:
        by_component.setdefault(wheel.component, set()).add(wheel.major)
    doubled = sorted(c for c, m in by_component.items() if len(m) > 1)
    wanted = needs.cuda_major if needs and needs.cuda_major in majors else None
    wrong = [w for w in wheels if wanted is not None and w.major != wanted]
    right = [w for w in wheels if wanted is not None and w.major == wanted]
    tags = "+".join(f"cu{m}" for m in majors)
    listing = ", ".join(f"{w.name} {w.dist.version}" for w in wheels)
    if doubled:
        detail = (
            f"{', '.join('nvidia-' + c for c in doubled)} "
            f"{'is' if len(doubled) == 1 else 'are'} installed for more than one CUDA major. "
            "Both wheels unpack into the same site-packages/nvidia/<component> directory, so "
            "one overwrote the other's files and uninstalling either deletes files the other "
            "needs."
        )
    else:
        detail = (
            f"This interpreter has nvidia-* wheels for CUDA {' and '.join(map(str, majors))}. "
            "A TensorFlow build loads the libraries of one CUDA major; the others are either "
            "unused or, worse, loaded by another framework in the same process next to "
            "TensorFlow's."
        )
    if wanted is not None and needs is not None:
        detail += f" {needs.label} needs the cu{wanted} wheels."
    fix = []
    if wrong:
        fix.append(
            "Remove the wheels TensorFlow does not use: "
            + pip_command(inventory, python.executable, "uninstall", "-y", *(w.name for w in wrong))
        )
        if right:
            fix.append(
                "Restore the files the uninstall removed from the shared directories: "
                + pip_install(
                    inventory,
                    python.executable,
                    "--force-reinstall",
                    "--no-deps",
                    *(f"{w.name}=={w.dist.version}" for w in right),
                )
            )
    else:
        others = [w.name for w in wheels if w.major != majors[-1]]
        fix.append(
            "Keep the wheels of one CUDA major: "
            + pip_command(inventory, python.executable, "uninstall", "-y", *others)
            + ", then reinstall the others with --force-reinstall --no-deps."
        )
    fix.append(
        "If another package (an older PyTorch or JAX) needs the other major, give it its own "
        "virtual environment instead of sharing this one with TensorFlow."
    )
    yield Finding(
        id="nvidia-wheels-mixed",
        severity=Severity.ERROR if doubled else Severity.WARNING,
        link=Link.LIBRARIES,
        title=f"nvidia-* wheels for CUDA {' and '.join(map(str, majors))} in one environment",
        detail=detail,
        evidence=(("python", python.executable), ("wheels", listing)),
        fix=tuple(fix),
        subject=subject_for(inventory, tags, python.executable),
    )


def _framework_conflict(
    inventory: Inventory, python: PythonEnv, wheels: list[_Wheel], needs: TfNeeds | None
) -> Iterator[Finding]:
    """Another framework's pins leave a wheel outside what TensorFlow needs (torch pins
    nvidia-cudnn-cu12 9.1 while TF 2.18+ needs >= 9.3). Without such a framework, a wrong
    wheel is the cuDNN / TensorFlow rules' story."""
    frameworks = [
        d
        for d in python.distributions
        if normalize_name(d.name) in _FRAMEWORKS or normalize_name(d.name).startswith("jax-cuda")
    ]
    if not frameworks or needs is None or needs.tf.is_cuda_build is False:
        return
    requirements = and_cuda_requirements(needs.tf)
    for wheel in wheels:
        if needs.cuda_major is not None and wheel.major != needs.cuda_major:
            continue  # a different CUDA major is _mixed_majors' story
        problem = _wheel_problem(wheel, requirements.get(wheel.name), needs)
        if problem is None:
            continue
        names = ", ".join(f"{d.name} {d.version}" for d in frameworks)
        wanted_text, why = problem
        framework = frameworks[0]
        os_name = inventory.host.os
        windows = is_windows(inventory)
        join = ntpath.join if windows else posixpath.join
        venv_parent = dirname(python.prefix, os_name) if python.prefix else ""
        other = join(venv_parent, framework.name) if venv_parent else f"{framework.name}-venv"
        other_python = (
            join(other, "Scripts", "python.exe") if windows else join(other, "bin", "python")
        )
        base = fixes.python_cmd("", inventory.host)
        fix = (
            f"Give {framework.name} its own environment: {base} -m venv {quote(other, os_name)} "
            "&& "
            + pip_command(
                inventory, other_python, "install", f"{framework.name}=={framework.version}"
            ),
            "Then in this one: "
            + pip_command(inventory, python.executable, "uninstall", "-y", framework.name)
            + " && "
            + pip_install(
                inventory,
                python.executable,
                f"{needs.tf.distribution or 'tensorflow'}[and-cuda]=={needs.tf.version}",
            ),
            "Or align the versions, if both can live with it: "
            + pip_install(inventory, python.executable, f"{wheel.name}{wanted_text}")
            + f" (pip will warn about {framework.name}'s pin; test both frameworks after).",
        )
        yield Finding(
            id="nvidia-wheels-mixed",
            severity=Severity.WARNING,
            link=Link.LIBRARIES,
            title=f"{wheel.name} {wheel.dist.version} does not fit {needs.label} "
            f"(installed alongside {framework.name})",
            detail=(
                f"{names} shares this environment with TensorFlow and the nvidia-* wheels. "
                f"{wheel.name} is at {wheel.dist.version}, but {why}. One of the two "
                "frameworks gets a CUDA library it was not built for."
            ),
            evidence=(
                ("python", python.executable),
                ("wheel", f"{wheel.name} {wheel.dist.version}"),
                ("tensorflow needs", f"{wheel.name}{wanted_text}"),
                ("other frameworks", names),
            ),
            fix=fix,
            subject=subject_for(inventory, wheel.name, python.executable),
        )


def _wheel_problem(
    wheel: _Wheel, requirement: Requirement | None, needs: TfNeeds
) -> tuple[str, str] | None:
    """(what TF wants, why) when the wheel's version does not fit, else None."""
    if wheel.component == "cudnn" and needs.cudnn:
        want = parse_version(needs.cudnn)
        have = parse_version(wheel.dist.version)
        if want and have:
            if have[0] != want[0]:
                return (
                    f">={needs.cudnn},<{want[0] + 1}",
                    f"{needs.label} loads cuDNN {want[0]} (libcudnn.so.{want[0]})",
                )
            if at_least(wheel.dist.version, needs.cudnn) is False:
                return (
                    f">={needs.cudnn},<{want[0] + 1}",
                    f"{needs.label} was built with cuDNN {needs.cudnn} and refuses an older minor",
                )
    if requirement and satisfies(wheel.dist.version, requirement.specifier) is False:
        return requirement.specifier, f"{needs.label} requires {requirement.text}"
    return None


RULES = [
    library_not_found,
    library_wrong_version,
    library_shadowed,
    library_unloadable,
    nvidia_wheels_mixed,
]
