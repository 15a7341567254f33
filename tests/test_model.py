"""The model round-trips through JSON and computes the verdict."""

import json

import pytest
import scenarios

from monitor.model import (
    Finding,
    Inventory,
    Link,
    Report,
    Severity,
    Verdict,
    from_jsonable,
    to_jsonable,
    verdict_of,
)
from monitor.record import replace


@pytest.mark.parametrize("build", [scenarios.linux_tf221_pip, scenarios.windows_tf210])
def test_inventory_round_trips_through_json(build):
    inventory = build()
    text = json.dumps(to_jsonable(inventory))
    assert from_jsonable(Inventory, json.loads(text)) == inventory


def test_report_round_trips_with_findings():
    finding = Finding(
        "driver-too-old",
        Severity.ERROR,
        Link.DRIVER,
        "Driver too old",
        evidence=(("driver", "470.82"),),
        fix=("update",),
    )
    report = Report(inventory=scenarios.linux_tf221_pip(), findings=(finding,), duration_s=0.1)
    again = from_jsonable(Report, json.loads(json.dumps(to_jsonable(report))))
    assert again == report
    assert again.findings[0].severity is Severity.ERROR


def test_unknown_keys_are_ignored_and_missing_ones_default():
    data = to_jsonable(scenarios.linux_tf221_pip())
    data["from_the_future"] = 1
    del data["driver"]["gpus"]
    inventory = from_jsonable(Inventory, data)
    assert inventory.driver.gpus == ()


def test_verdict_is_the_worst_severity():
    def f(sev):
        return Finding("x", sev, Link.GPU, "t")

    assert verdict_of([]) is Verdict.HEALTHY
    assert verdict_of([f(Severity.INFO)]) is Verdict.HEALTHY
    assert verdict_of([f(Severity.INFO), f(Severity.WARNING)]) is Verdict.WARNINGS
    assert verdict_of([f(Severity.WARNING), f(Severity.ERROR)]) is Verdict.BROKEN


def test_models_are_frozen():
    inventory = scenarios.linux_tf221_pip()
    with pytest.raises(AttributeError):
        inventory.host = None  # type: ignore[misc]
    assert replace(inventory, probe_errors=("x",)).probe_errors == ("x",)
