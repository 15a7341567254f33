"""Collect an Inventory: run every probe against a root and an environment mapping.

A probe that fails unexpectedly (a bug of ours) is recorded in `probe_errors` and the others
still run, so one bad file never costs the whole check.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from monitor.facts.host import current_os, probe_host
from monitor.facts.paths import Root
from monitor.model import DriverInfo, EnvironmentInfo, Inventory, PythonEnv

T = TypeVar("T")


def collect_inventory(
    root: str = "/",
    env: Mapping[str, str] | None = None,
    os_name: str | None = None,
    pythons: Sequence[str] | None = None,
    nvml_library: str | None = None,
    python_timeout: float = 10.0,
) -> Inventory:
    """Read every link of the stack. `pythons` None means the default watched interpreters."""
    from monitor.facts import cudnn, driver, environment, loader, runtime, tensorflow, toolkits

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

    # Starting the watched interpreters is the slowest step: run it while the other probes read.
    executables = pythons if pythons else tensorflow.default_interpreters(env, sys.executable)
    python_results: list[PythonEnv | None] = [None] * len(executables)

    def probe_one(index: int, exe: str) -> None:
        python_results[index] = guarded(
            f"python {exe}",
            None,
            lambda: tensorflow.probe_python(exe, fs_root, env, timeout=python_timeout),
        )

    workers = [
        threading.Thread(target=probe_one, args=(i, exe), name=f"probe-python-{i}", daemon=True)
        for i, exe in enumerate(executables)
    ]
    for worker in workers:
        worker.start()
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
    for worker in workers:
        worker.join()
    python_envs = tuple(e for e in python_results if e is not None)
    site_packages = [site for py in python_envs for site in py.site_packages]
    found_cudnn = guarded(
        "cudnn",
        (),
        lambda: cudnn.probe_cudnn(fs_root, env, os_name, found_toolkits, site_packages),
    )
    libraries = guarded(
        "libraries",
        (),
        lambda: loader.probe_libraries(fs_root, env, os_name, python_envs, found_toolkits),
    )
    python_dirs = [os.path.dirname(py.executable) for py in python_envs]
    runtime_dlls = guarded(
        "runtime", (), lambda: runtime.probe_runtime(fs_root, env, os_name, python_dirs)
    )
    return Inventory(
        host=host,
        collected_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        driver=driver_info,
        toolkits=tuple(found_toolkits),
        cudnn=tuple(found_cudnn),
        pythons=python_envs,
        libraries=tuple(libraries),
        environment=env_info,
        runtime=tuple(runtime_dlls),
        probe_errors=tuple(errors),
    )
