"""Rule library-unloadable: the loader finds the file, but it is broken and cannot load."""

from __future__ import annotations

from collections.abc import Iterator

from monitor.model import Finding, Inventory, Link
from monitor.rules.fixes import quote_path
from monitor.rules.libraries_files import severity_for
from monitor.rules.libraries_interpreter import pip_install, subject_for, tf_needs
from monitor.rules.libraries_paths import dirname, ld_library_path_without
from monitor.rules.libraries_wheels import installed, wheel_for


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
            steps.append(f"Look at it: file -L {quote_path(file.path, os_name)}")
            steps.append(
                f"Replace or delete it (an interrupted copy, a 32-bit build or a text file): "
                f"rm {quote_path(file.path, os_name)}, or reinstall the package it came from."
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
            severity=severity_for(res.required),
            link=Link.LIBRARIES,
            title=f"{res.wanted} at {file.path} cannot be loaded: {file.error}",
            detail=detail,
            evidence=tuple(evidence),
            fix=tuple(steps),
            subject=subject_for(inventory, res.wanted, res.python),
        )
