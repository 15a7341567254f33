"""One check: collect the inventory, run the rules, time it."""

from __future__ import annotations

import contextlib
import importlib
import threading
import time
from collections.abc import Mapping, Sequence

from monitor import __version__
from monitor.facts.collect import collect_inventory
from monitor.facts.interpreter import InterpreterQuery
from monitor.model import Inventory, Report, utc_now
from monitor.record import replace

# Imported while the check waits for its child processes (see run_check), not before.
_LATER_MODULES = ("monitor.rules", "monitor.report", "monitor.snapshot")


def judge(inventory: Inventory, started: float | None = None) -> Report:
    """Run the rules over an inventory (from this machine or a snapshot)."""
    from monitor.rules import evaluate

    started = time.perf_counter() if started is None else started
    findings = evaluate(inventory)
    return Report(
        inventory=inventory,
        findings=findings,
        checked_at=utc_now(),
        duration_s=time.perf_counter() - started,
        tool_version=__version__,
    )


def run_check(
    root: str = "/",
    env: Mapping[str, str] | None = None,
    pythons: Sequence[str] | None = None,
    nvml_library: str | None = None,
    python_timeout: float = 10.0,
    queries: Mapping[str, InterpreterQuery] | None = None,
    started: float | None = None,
) -> Report:
    """Check this machine (or the one under `root`); queries: interpreters already asked."""
    started = time.perf_counter() if started is None else started
    # The probes spend part of their time waiting for child processes; the rules and the
    # renderer are imported meanwhile (the import lock makes a concurrent import safe).
    importer = threading.Thread(target=_import_all, args=(_LATER_MODULES,), name="import-rules")
    importer.start()
    try:
        inventory = collect_inventory(
            root=root,
            env=env,
            pythons=pythons,
            nvml_library=nvml_library,
            python_timeout=python_timeout,
            queries=queries,
        )
    finally:
        importer.join()
    return judge(inventory, started)


def _import_all(names: Sequence[str]) -> None:
    for name in names:
        with contextlib.suppress(Exception):
            importlib.import_module(name)


def with_load_tests(
    report: Report,
    timeout: float = 120.0,
    nvml_library: str | None = None,
    pythons: Sequence[str] | None = None,
) -> Report:
    """Run the GPU load test in each watched interpreter that has TensorFlow; merge findings.

    The load test of an interpreter whose check already failed to read it is skipped.
    """
    from monitor.loadtest.last_good import previous_good, remember
    from monitor.loadtest.runner import run_load_test
    from monitor.rules import sort_findings

    inventory = report.inventory
    chosen = [
        py.executable
        for py in inventory.pythons
        if py.tensorflow is not None and (not pythons or py.executable in pythons)
    ]
    results = []
    for python in chosen:
        result = run_load_test(
            python,
            inventory,
            timeout=timeout,
            nvml_library=nvml_library,
            previous=previous_good(python),
        )
        remember(result)
        results.append(result)
    findings = sort_findings((*report.findings, *(f for r in results for f in r.findings)))
    return replace(report, load_tests=(*report.load_tests, *results), findings=findings)
