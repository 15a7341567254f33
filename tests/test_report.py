"""Text and JSON rendering of a report."""

import json

import scenarios

from monitor.model import Finding, Link, PythonEnv, Report, Severity
from monitor.record import replace
from monitor.report import exit_code, headline, render_json, render_text

DRIVER_OLD = Finding(
    "driver-too-old",
    Severity.ERROR,
    Link.DRIVER,
    "The NVIDIA driver is too old for CUDA 12.5",
    detail="TensorFlow 2.21 needs driver >= 525.60.13.",
    evidence=(("driver", "470.82.01"),),
    fix=("sudo ubuntu-drivers install",),
)
PATH_DUP = Finding("path-duplicate-entry", Severity.INFO, Link.ENVIRONMENT, "PATH repeats /usr/bin")


def report(*findings):
    return Report(
        inventory=scenarios.linux_tf221_pip(),
        findings=findings,
        duration_s=0.12,
        tool_version="0.1.0",
        checked_at="2026-11-23T12:00:00+00:00",
    )


def test_healthy_report_says_so_on_the_first_line():
    text = render_text(report(PATH_DUP))
    assert text.splitlines()[0].startswith("HEALTHY: no problems found.")
    assert exit_code(report(PATH_DUP)) == 0


def test_findings_sit_under_their_link_with_fix_steps():
    text = render_text(report(DRIVER_OLD, PATH_DUP))
    lines = text.splitlines()
    assert lines[0] == "BROKEN: 1 error. The NVIDIA driver is too old for CUDA 12.5"
    driver_line = next(i for i, line in enumerate(lines) if "Driver" in line and "570.133" in line)
    gpu_line = next(i for i, line in enumerate(lines) if "RTX 4090" in line)
    finding_line = next(i for i, line in enumerate(lines) if "[driver-too-old]" in line)
    assert driver_line < finding_line < gpu_line
    assert "1. sudo ubuntu-drivers install" in text
    assert "driver: 470.82.01" in text
    assert "\033[" not in text


def test_colour_only_when_asked():
    assert "\033[31m" in render_text(report(DRIVER_OLD), colour=True)


def test_ascii_marks_for_terminals_without_unicode():
    text = render_text(report(DRIVER_OLD), unicode=False)
    assert "✗" not in text and "✓" not in text
    text.encode("ascii")


def test_json_document_follows_the_schema():
    doc = json.loads(json.dumps(render_json(report(DRIVER_OLD, PATH_DUP))))
    assert doc["schema"] == 1
    assert (doc["verdict"], doc["exit_code"]) == ("broken", 2)
    assert doc["findings"][0]["evidence"] == {"driver": "470.82.01"}
    assert set(doc["findings"][0]) == {
        "id",
        "severity",
        "link",
        "title",
        "detail",
        "evidence",
        "fix",
        "subject",
    }
    assert doc["inventory"]["driver"]["driver_version"] == "570.133.07"


def test_headline_counts_warnings():
    warn = Finding("x", Severity.WARNING, Link.GPU, "Slow first start")
    assert headline(report(warn, warn)) == "WARNINGS: 2 warnings. Slow first start"
    assert exit_code(report(warn)) == 1


def test_links_that_could_not_be_judged_get_a_neutral_mark():
    from monitor.model import DriverInfo
    from monitor.record import replace

    inventory = replace(scenarios.linux_tf221_pip(), driver=DriverInfo(error="NVML not found"))
    text = render_text(Report(inventory=inventory))
    gpu_line = next(line for line in text.splitlines() if line[2:5] == "GPU")
    assert gpu_line.startswith("- GPU") and "unknown (no driver)" in gpu_line
    assert "?" not in gpu_line


def test_long_details_are_wrapped():
    long = Finding("x", Severity.ERROR, Link.GPU, "t", detail="word " * 60)
    detail = [line for line in render_text(report(long)).splitlines() if "word" in line]
    assert len(detail) > 1
    assert all(len(line) <= 100 for line in detail)


def link_line(text: str, title: str) -> str:
    return next(line for line in text.splitlines() if line[2:].startswith(title))


def test_missing_libraries_without_a_finding_of_their_own_get_no_check_mark():
    """No driver: libcuda is missing, and the driver finding explains it. The Libraries line
    says what is missing, with the neutral mark, never a check mark."""
    inventory = scenarios.linux_tf221_pip()
    libraries = tuple(
        replace(r, resolved=None) if r.role == "cuda_driver" else r for r in inventory.libraries
    )
    shown = render_text(
        replace(report(), inventory=replace(inventory, libraries=libraries)), unicode=False
    )
    line = link_line(shown, "Libraries")
    assert line.startswith("- Libraries") and "missing libcuda.so.1" in line
    # Two missing libraries, each asked for by two interpreters: named once each, all shown.
    two = tuple(
        replace(r, resolved=None) if r.role in ("cuda_driver", "cudart") else r
        for r in inventory.libraries
    )
    twice = replace(inventory, libraries=two + two)
    line = link_line(render_text(replace(report(), inventory=twice), unicode=False), "Libraries")
    assert "libcuda.so.1" in line and "libcudart.so.12" in line and "..." not in line
    assert link_line(render_text(report(), unicode=False), "Libraries").startswith("+ Libraries")


def test_an_interpreter_that_could_not_be_asked_is_not_given_a_version_or_bits():
    inventory = replace(
        scenarios.linux_tf221_pip(),
        pythons=(PythonEnv(executable="/opt/gone/python", error="no such interpreter"),),
    )
    line = link_line(render_text(replace(report(), inventory=inventory)), "Python")
    assert line.endswith("Python        /opt/gone/python: not inspected")
