"""collect_inventory: every probe runs, and a failing one is recorded, not raised."""

from __future__ import annotations

import sys

from monitor.facts import collect, driver, tensorflow, toolkits
from monitor.model import CudaToolkit, DriverInfo


def broken(*args, **kwargs):
    raise RuntimeError("a bug in the probe")


def test_a_probe_that_raises_is_recorded_and_the_others_still_run(tmp_path, monkeypatch):
    monkeypatch.setattr(driver, "probe_driver", broken)
    monkeypatch.setattr(tensorflow, "probe_python", broken)
    monkeypatch.setattr(
        toolkits, "probe_toolkits", lambda *a: (CudaToolkit("/usr/local/cuda-12.4", "12.4.1"),)
    )

    inventory = collect.collect_inventory(
        root=str(tmp_path), env={"PATH": "/usr/bin"}, os_name="linux", pythons=[sys.executable]
    )

    assert sorted(inventory.probe_errors) == [
        "driver probe failed: RuntimeError: a bug in the probe",
        f"python {sys.executable} probe failed: RuntimeError: a bug in the probe",
    ]
    assert inventory.driver == DriverInfo(error="probe failed")
    assert [p.error for p in inventory.pythons] == ["probe failed"]
    assert [t.version for t in inventory.toolkits] == ["12.4.1"]
