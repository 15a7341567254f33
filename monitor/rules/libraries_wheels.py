"""pip requirement specs and the nvidia-*-cuXX wheels that provide TF's CUDA libraries.

Parsing `tensorflow[and-cuda]`'s Requires-Dist lines, checking a version against them, and
finding which wheel provides a library role and whether it is installed.
"""

from __future__ import annotations

import re

from monitor.model import Distribution, Inventory, PythonEnv, TensorflowBuild
from monitor.record import record
from monitor.versions import at_least, parse_version

# Which nvidia-*-cuXX wheel provides a role's files (site-packages/nvidia/<dir>/lib).
WHEEL_COMPONENT = {
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


_WHEEL_RE = re.compile(r"^nvidia-(?P<component>.+)-cu(?P<major>\d+)$")


def normalize_name(name: str) -> str:
    """PEP 503 distribution name: "NVIDIA_cuDNN_cu12" -> "nvidia-cudnn-cu12"."""
    return re.sub(r"[-_.]+", "-", name or "").lower()


@record
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
    component = WHEEL_COMPONENT.get(role)
    if component is None or cuda_major is None:
        return None
    return f"nvidia-{component}-cu{cuda_major}"


def installed(python: PythonEnv | None, name: str) -> Distribution | None:
    if python is None:
        return None
    wanted = normalize_name(name)
    return next((d for d in python.distributions if normalize_name(d.name) == wanted), None)


@record
class NvidiaWheel:
    """One installed nvidia-<component>-cu<major> wheel."""

    dist: Distribution
    name: str
    component: str
    major: int


def nvidia_wheels(python: PythonEnv) -> list[NvidiaWheel]:
    """The interpreter's nvidia-*-cuXX wheels, the first copy of each."""
    wheels, seen = [], set()
    for dist in python.distributions:
        name = normalize_name(dist.name)
        match = _WHEEL_RE.match(name)
        if not match or name in seen:  # a shadowed second copy is listed after the first
            continue
        seen.add(name)
        wheels.append(NvidiaWheel(dist, name, match.group("component"), int(match.group("major"))))
    return wheels
