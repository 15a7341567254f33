"""The report diff: real scenario inventories changed the way driver updates and pip do."""

from __future__ import annotations

import scenarios

from monitor.check import judge
from monitor.diff import diff_inventories, diff_reports
from monitor.model import FactChange, Link, Verdict
from monitor.record import replace


def _driver_update(inventory, version="550.54.14", cuda="12.4"):
    driver = replace(inventory.driver, driver_version=version, cuda_driver_version=cuda)
    return replace(inventory, driver=driver)


def test_the_first_report_has_nothing_to_compare():
    report = judge(scenarios.linux_tf221_pip())
    diff = diff_reports(None, report)
    assert diff.before_verdict is None and diff.after_verdict == report.verdict
    assert diff.empty and not diff.verdict_changed


def test_the_same_stack_twice_is_no_change():
    inventory = scenarios.linux_tf221_pip()
    assert diff_reports(judge(inventory), judge(inventory)).empty


def test_a_driver_update_names_old_and_new_versions():
    before = scenarios.linux_tf221_pip()
    after = _driver_update(before, "580.65.06", "13.0")
    facts = diff_inventories(before, after)
    assert FactChange(Link.DRIVER, "NVIDIA driver", before.driver.driver_version, "580.65.06") in (
        facts
    )
    assert any(f.subject == "CUDA version the driver supports" and f.after == "13.0" for f in facts)


def test_a_driver_too_old_for_the_build_appears_as_a_new_error():
    before = scenarios.linux_tf221_pip()
    after = _driver_update(before, "470.256.02", "11.4")
    diff = diff_reports(judge(before), judge(after))
    assert diff.after_verdict is Verdict.BROKEN and diff.verdict_changed
    assert any(f.link is Link.DRIVER for f in diff.appeared)
    back = diff_reports(judge(after), judge(before))
    assert {f.id for f in back.cleared} == {f.id for f in diff.appeared}
    assert back.after_verdict is Verdict.HEALTHY and back.verdict_changed


def test_nvml_going_away_is_a_driver_fact():
    before = scenarios.linux_tf221_pip()
    gone = replace(before.driver, nvml_loaded=False, error="NVML Shared Library Not Found")
    facts = diff_inventories(before, replace(before, driver=gone))
    assert facts[0].subject == "NVIDIA driver"
    assert facts[0].after == "not available (NVML Shared Library Not Found)"


def test_a_removed_wheel_and_a_tensorflow_upgrade_are_package_facts():
    before = scenarios.linux_tf221_pip()
    python = before.pythons[0]
    kept = tuple(d for d in python.distributions if d.name != "nvidia-cudnn-cu12")
    upgraded = tuple(replace(d, version="2.22.0") if d.name == "tensorflow" else d for d in kept)
    after = scenarios.with_python(before, distributions=upgraded)
    facts = {f.subject: f for f in diff_inventories(before, after) if f.link is Link.TENSORFLOW}
    cudnn = facts[f"nvidia-cudnn-cu12 in {scenarios.LINUX_PY}"]
    assert cudnn.before and cudnn.after == ""
    assert facts[f"tensorflow in {scenarios.LINUX_PY}"].after == "2.22.0"


def test_a_library_that_is_no_longer_found():
    before = scenarios.linux_tf221_pip()
    libraries = tuple(
        replace(r, resolved=None) if r.role == "cudnn" else r for r in before.libraries
    )
    facts = diff_inventories(before, replace(before, libraries=libraries))
    lost = {f.subject: f.after for f in facts if f.link is Link.LIBRARIES}
    assert lost[f"libcudnn.so.9 for {scenarios.LINUX_PY}"] == "not found"
    assert all(after == "not found" for after in lost.values())
    assert len(lost) == sum(1 for r in before.libraries if r.role == "cudnn")


def test_reordered_facts_are_not_changes():
    before = scenarios.linux_tf221_pip()
    after = replace(before, libraries=tuple(reversed(before.libraries)))
    assert diff_inventories(before, after) == []


def test_an_environment_variable_change():
    before = scenarios.linux_tf221_pip()
    env = replace(before.environment, variables=(("CUDA_VISIBLE_DEVICES", "-1"),))
    facts = diff_inventories(before, replace(before, environment=env))
    assert FactChange(Link.ENVIRONMENT, "CUDA_VISIBLE_DEVICES", "", "-1") in facts
