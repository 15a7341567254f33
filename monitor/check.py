"""One check: collect the inventory, run the rules, time it."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping, Sequence

from monitor import __version__
from monitor.facts import collect_inventory
from monitor.model import Inventory, Report
from monitor.rules import evaluate


def judge(inventory: Inventory, started: float | None = None) -> Report:
    """Run the rules over an inventory (from this machine or a snapshot)."""
    started = time.perf_counter() if started is None else started
    findings = evaluate(inventory)
    return Report(
        inventory=inventory,
        findings=findings,
        checked_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        duration_s=time.perf_counter() - started,
        tool_version=__version__,
    )


def run_check(
    root: str = "/",
    env: Mapping[str, str] | None = None,
    pythons: Sequence[str] | None = None,
    nvml_library: str | None = None,
    python_timeout: float = 10.0,
) -> Report:
    started = time.perf_counter()
    inventory = collect_inventory(
        root=root,
        env=env,
        pythons=pythons,
        nvml_library=nvml_library,
        python_timeout=python_timeout,
    )
    return judge(inventory, started)
