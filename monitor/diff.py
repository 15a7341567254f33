"""What changed between two reports: the stack's facts, the findings, the verdict. Pure.

The daemon diffs each new report against the last one; notifications, history and the tray
are built from the result ("driver 535.104.05 -> 550.54.14; new error: libcudnn.so.8 not
found"). A fact is compared by a key that survives re-ordering (a GPU by UUID, a toolkit by
root, a library by interpreter and file name), so a diff lists only real changes.
"""

from __future__ import annotations

from collections.abc import Iterable

from monitor.model import (
    FactChange,
    Finding,
    Inventory,
    LibraryResolution,
    Link,
    PythonEnv,
    Report,
    ReportDiff,
)

# The distributions whose version is a fact of the stack (the rest of site-packages is not).
_STACK_PREFIXES = ("tensorflow", "tf-keras", "keras", "nvidia-", "tf-nightly", "jax")
GONE = ""  # before/after of something that did not exist


def diff_reports(before: Report | None, after: Report) -> ReportDiff:
    """The changes from `before` (None: the first report) to `after`."""
    if before is None:
        return ReportDiff(before_verdict=None, after_verdict=after.verdict)
    old, new = _keyed(before.findings), _keyed(after.findings)
    return ReportDiff(
        before_verdict=before.verdict,
        after_verdict=after.verdict,
        facts=tuple(diff_inventories(before.inventory, after.inventory)),
        appeared=tuple(f for key, f in new.items() if key not in old),
        cleared=tuple(f for key, f in old.items() if key not in new),
    )


def diff_inventories(before: Inventory, after: Inventory) -> list[FactChange]:
    """Every fact of the stack that differs, in chain order (driver first)."""
    changes: list[FactChange] = []
    changes += _driver(before, after)
    changes += _pairs(Link.GPU, _gpus(before), _gpus(after))
    changes += _pairs(Link.CUDA, _toolkits(before), _toolkits(after))
    changes += _pairs(Link.CUDNN, _cudnn(before), _cudnn(after))
    changes += _pairs(Link.LIBRARIES, _libraries(before), _libraries(after))
    changes += _pairs(Link.TENSORFLOW, _packages(before), _packages(after))
    changes += _pairs(Link.PYTHON, _pythons(before), _pythons(after))
    changes += _pairs(Link.ENVIRONMENT, _variables(before), _variables(after))
    return changes


def _keyed(findings: Iterable[Finding]) -> dict[tuple[str, str], Finding]:
    return {(f.id, f.subject): f for f in findings}


def _pairs(link: Link, before: dict[str, str], after: dict[str, str]) -> list[FactChange]:
    """Changes between two {subject: value} maps; a missing subject is GONE."""
    out = []
    for subject in [*before, *(s for s in after if s not in before)]:
        old, new = before.get(subject, GONE), after.get(subject, GONE)
        if old != new:
            out.append(FactChange(link, subject, old, new))
    return out


def _driver(before: Inventory, after: Inventory) -> list[FactChange]:
    return _pairs(Link.DRIVER, _driver_facts(before), _driver_facts(after))


def _driver_facts(inventory: Inventory) -> dict[str, str]:
    driver = inventory.driver
    if not driver.nvml_loaded:
        facts = {"NVIDIA driver": f"not available ({driver.error or 'NVML not loaded'})"}
    else:
        facts = {"NVIDIA driver": driver.driver_version or "unknown"}
        if driver.cuda_driver_version:
            facts["CUDA version the driver supports"] = driver.cuda_driver_version
    if driver.kernel_module_version:
        facts["NVIDIA kernel module"] = driver.kernel_module_version
    return facts


def _gpus(inventory: Inventory) -> dict[str, str]:
    out = {}
    for gpu in inventory.driver.gpus:
        key = f"GPU {gpu.uuid or gpu.index}"
        cc = f", compute capability {gpu.compute_capability}" if gpu.compute_capability else ""
        out[key] = f"{gpu.name or 'unknown GPU'}{cc}"
    return out


def _toolkits(inventory: Inventory) -> dict[str, str]:
    out = {}
    for toolkit in inventory.toolkits:
        value = toolkit.version or "version unknown"
        out[f"CUDA toolkit {toolkit.root}"] = value + (" (active)" if toolkit.active else "")
    return out


def _cudnn(inventory: Inventory) -> dict[str, str]:
    return {f"cuDNN {c.location}": c.version or "version unknown" for c in inventory.cudnn}


def _libraries(inventory: Inventory) -> dict[str, str]:
    return {_library_subject(r): _library_value(r) for r in inventory.libraries}


def _library_subject(resolution: LibraryResolution) -> str:
    where = f" for {resolution.python}" if resolution.python else ""
    return f"{resolution.wanted}{where}"


def _library_value(resolution: LibraryResolution) -> str:
    found = resolution.resolved
    if found is None:
        return "not found"
    version = f" ({found.version})" if found.version else ""
    problem = f" [{found.error}]" if found.error else ""
    return f"{found.path}{version}{problem}"


def _packages(inventory: Inventory) -> dict[str, str]:
    out = {}
    for python in inventory.pythons:
        for dist in python.distributions:
            if dist.name.startswith(_STACK_PREFIXES):
                out[f"{dist.name} in {python.executable}"] = dist.version
    return out


def _pythons(inventory: Inventory) -> dict[str, str]:
    return {f"Python {p.executable}": _python_value(p) for p in inventory.pythons}


def _python_value(python: PythonEnv) -> str:
    return f"cannot be started ({python.error})" if python.error else python.version


def _variables(inventory: Inventory) -> dict[str, str]:
    return dict(inventory.environment.variables)
