"""Collect an Inventory: run every probe against a root and an environment mapping.

A probe that fails unexpectedly (a bug of ours) is recorded in `probe_errors` and the others
still run, so one bad file never costs the whole check.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from monitor.facts import interpreter
from monitor.facts.host import current_os, probe_host
from monitor.facts.paths import Root
from monitor.model import DriverInfo, EnvironmentInfo, Inventory, PythonEnv, utc_now

T = TypeVar("T")


def collect_inventory(
    root: str = "/",
    env: Mapping[str, str] | None = None,
    os_name: str | None = None,
    pythons: Sequence[str] | None = None,
    nvml_library: str | None = None,
    python_timeout: float = 10.0,
    queries: Mapping[str, interpreter.InterpreterQuery] | None = None,
) -> Inventory:
    """Read every link of the stack. `pythons` None means the default watched interpreters.

    queries: interpreters already asked (`interpreter.start_query`), by executable.
    """
    from monitor.facts import (
        cudnn,
        driver,
        environment,
        loader,
        loader_versions,
        runtime,
        tensorflow,
        toolkits,
    )

    env = dict(os.environ if env is None else env)
    os_name = os_name or current_os()
    fs_root = Root(root)
    errors: list[str] = []

    def guarded(name: str, default: T, probe: Callable[[], T]) -> T:
        try:
            return probe()
        except Exception as exc:  # a probe bug must not stop the check
            errors.append(f"{name} probe failed: {type(exc).__name__}: {exc}")
            return default

    # Starting the watched interpreters is the slowest step: their answers are on the way
    # while the other probes read (the CLI may have asked even before importing us).
    executables = pythons if pythons else interpreter.default_interpreters(env, sys.executable)
    asked = dict(queries or {})
    for exe in executables:
        if exe not in asked:
            asked[exe] = interpreter.start_query(exe, fs_root, env)
    # So is the child that calls the libraries' version functions: it starts now and is told
    # which files to load once they are resolved.
    version_child = (
        loader_versions.VersionChild(env) if loader_versions.is_possible(os_name) else None
    )
    host = probe_host(fs_root, env, os_name)
    env_info = guarded(
        "environment",
        EnvironmentInfo(),
        lambda: environment.probe_environment(fs_root, env, os_name),
    )
    driver_info = guarded(
        "driver",
        DriverInfo(error="probe failed"),
        lambda: driver.probe_driver(fs_root, library_path=nvml_library),
    )
    found_toolkits = guarded("toolkits", (), lambda: toolkits.probe_toolkits(fs_root, env, os_name))
    python_envs = tuple(
        guarded(
            f"python {exe}",
            PythonEnv(executable=exe, error="probe failed"),
            lambda exe=exe: tensorflow.probe_python(
                exe, fs_root, env, timeout=python_timeout, query=asked[exe]
            ),
        )
        for exe in executables
    )
    site_packages = [site for py in python_envs for site in py.site_packages]
    found_cudnn = guarded(
        "cudnn",
        (),
        lambda: cudnn.probe_cudnn(fs_root, env, os_name, found_toolkits, site_packages),
    )
    libraries = guarded(
        "libraries",
        (),
        lambda: loader.probe_libraries(
            fs_root, env, os_name, python_envs, found_toolkits, version_child=version_child
        ),
    )
    if version_child is not None:
        version_child.close()
    python_dirs = [os.path.dirname(py.executable) for py in python_envs]
    runtime_dlls = guarded(
        "runtime", (), lambda: runtime.probe_runtime(fs_root, env, os_name, python_dirs)
    )
    return Inventory(
        host=host,
        collected_at=utc_now(),
        driver=driver_info,
        toolkits=tuple(found_toolkits),
        cudnn=tuple(found_cudnn),
        pythons=python_envs,
        libraries=tuple(libraries),
        environment=env_info,
        runtime=tuple(runtime_dlls),
        probe_errors=tuple(errors),
    )
