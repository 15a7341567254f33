"""Rule nvidia-wheels-mixed: one environment holds nvidia-* wheels that do not fit together.

Wheels for several CUDA majors at once, or another framework (PyTorch, JAX) pinning a wheel
outside what TensorFlow needs.
"""

from __future__ import annotations

import ntpath
import posixpath
from collections.abc import Iterator

from monitor.model import Finding, Inventory, Link, PythonEnv, Severity
from monitor.rules import fixes
from monitor.rules.fixes import quote_path
from monitor.rules.libraries_interpreter import (
    TfNeeds,
    pip_command,
    pip_install,
    subject_for,
    tf_needs,
)
from monitor.rules.libraries_paths import dirname, is_windows
from monitor.rules.libraries_wheels import (
    NvidiaWheel,
    Requirement,
    and_cuda_requirements,
    normalize_name,
    nvidia_wheels,
    satisfies,
)
from monitor.versions import at_least, parse_version

# Frameworks that pin their own nvidia-* wheels (JAX through its jax-cuda*-plugin packages).
_FRAMEWORKS = ("torch",)


def nvidia_wheels_mixed(inventory: Inventory) -> Iterator[Finding]:
    for python in inventory.pythons:
        wheels = nvidia_wheels(python)
        if not wheels:
            continue
        needs = tf_needs(inventory, python.executable)
        if needs is not None and needs.python is not python:
            needs = None
        yield from _mixed_majors(inventory, python, wheels, needs)
        yield from _framework_conflict(inventory, python, wheels, needs)


def _mixed_majors(
    inventory: Inventory, python: PythonEnv, wheels: list[NvidiaWheel], needs: TfNeeds | None
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
    inventory: Inventory, python: PythonEnv, wheels: list[NvidiaWheel], needs: TfNeeds | None
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
            f"Give {framework.name} its own environment: {base} -m venv "
            f"{quote_path(other, os_name)} && "
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
    wheel: NvidiaWheel, requirement: Requirement | None, needs: TfNeeds
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
