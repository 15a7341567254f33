"""History views: the one-line summary and the `history` command's text and JSON."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from monitor.model import (
    Change,
    ChangeKind,
    FactChange,
    Finding,
    Link,
    ReportDiff,
    Severity,
    TimelineEntry,
    Verdict,
)
from monitor.timeline import (
    describe_change,
    render_timeline_json,
    render_timeline_text,
    summarize,
)

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
VENV = "/home/ada/venvs/tf"

CUDNN_MISSING = Finding(
    "library-not-found",
    Severity.ERROR,
    Link.LIBRARIES,
    "libcudnn.so.9 and 7 more cuDNN files not found",
    subject="cudnn",
)
MINOR_COMPAT = Finding(
    "driver-minor-compat-only",
    Severity.WARNING,
    Link.DRIVER,
    "NVIDIA driver 535.104.05 runs TensorFlow 2.21.0 only through CUDA minor version compatibility",
)
PATH_DUP = Finding("path-duplicate-entry", Severity.INFO, Link.ENVIRONMENT, "PATH repeats /usr/bin")

CUDNN_REMOVED = Change(
    ChangeKind.PACKAGES, f"nvidia-cudnn-cu12 in {VENV}", "9.10.2.21", "", "2026-11-20T14:01:50Z"
)
CUDNN_BACK = Change(
    ChangeKind.PACKAGES, f"nvidia-cudnn-cu12 in {VENV}", "", "9.10.2.21", "2026-11-20T16:14:02Z"
)
DRIVER_DOWN = Change(
    ChangeKind.DRIVER, "NVIDIA driver", "570.133.07", "535.104.05", "2026-11-22T08:29:40Z"
)


def story() -> list[TimelineEntry]:
    """A cuDNN wheel uninstalled and put back, then a driver downgrade: ada's November."""
    removed = ReportDiff(
        Verdict.HEALTHY,
        Verdict.BROKEN,
        facts=(FactChange(Link.CUDNN, f"nvidia-cudnn-cu12 in {VENV}", "9.10.2.21", ""),),
        appeared=(CUDNN_MISSING,),
    )
    back = ReportDiff(
        Verdict.BROKEN,
        Verdict.HEALTHY,
        facts=(FactChange(Link.CUDNN, f"nvidia-cudnn-cu12 in {VENV}", "", "9.10.2.21"),),
        cleared=(CUDNN_MISSING,),
    )
    downgrade = ReportDiff(
        Verdict.HEALTHY,
        Verdict.WARNINGS,
        facts=(FactChange(Link.DRIVER, "NVIDIA driver", "570.133.07", "535.104.05"),),
        appeared=(MINOR_COMPAT,),
    )
    first = Change(ChangeKind.MANUAL, "monitor started", at="2026-11-02T09:14:05+00:00")
    return [
        TimelineEntry(
            "2026-11-02T09:14:05+00:00",
            Verdict.HEALTHY,
            summarize(ReportDiff(None, Verdict.HEALTHY), [first]),
            changes=(first,),
        ),
        TimelineEntry(
            "2026-11-20T14:02:31+00:00",
            Verdict.BROKEN,
            summarize(removed, [CUDNN_REMOVED]),
            (CUDNN_REMOVED,),
            appeared=("library-not-found",),
        ),
        TimelineEntry(
            "2026-11-20T16:15:10+00:00",
            Verdict.HEALTHY,
            summarize(back, [CUDNN_BACK]),
            (CUDNN_BACK,),
            cleared=("library-not-found",),
        ),
        TimelineEntry(
            "2026-11-22T08:30:12+00:00",
            Verdict.WARNINGS,
            summarize(downgrade, [DRIVER_DOWN]),
            (DRIVER_DOWN,),
            appeared=("driver-minor-compat-only",),
        ),
    ]


# --------------------------------------------------------------------------- summarize


def test_summary_names_what_changed_what_broke_and_what_cleared():
    diff = ReportDiff(
        Verdict.HEALTHY,
        Verdict.BROKEN,
        facts=(FactChange(Link.DRIVER, "NVIDIA driver", "535.104.05", "550.54.14"),),
        appeared=(PATH_DUP, CUDNN_MISSING),
        cleared=(MINOR_COMPAT,),
    )
    assert summarize(diff, [DRIVER_DOWN]) == (
        "NVIDIA driver 535.104.05 -> 550.54.14"
        "; new error: libcudnn.so.9 and 7 more cuDNN files not found"
        "; new info: PATH repeats /usr/bin"
        f"; cleared: {MINOR_COMPAT.title}"
    )


def test_summary_falls_back_on_what_the_triggers_saw_but_not_on_periodic_checks():
    diff = ReportDiff(Verdict.HEALTHY, Verdict.HEALTHY)
    periodic = Change(ChangeKind.PERIODIC, "", at="2026-11-20T14:00:00Z")
    assert summarize(diff, [periodic, CUDNN_BACK]) == f"added nvidia-cudnn-cu12 in {VENV} 9.10.2.21"
    assert summarize(diff, [periodic]) == "no change"


def test_first_check_names_its_problems_only():
    facts = (FactChange(Link.DRIVER, "NVIDIA driver", "", "570.133.07"),)
    diff = ReportDiff(None, Verdict.BROKEN, facts=facts, appeared=(CUDNN_MISSING,))
    assert summarize(diff, []) == f"first check; new error: {CUDNN_MISSING.title}"


def test_long_summaries_count_what_they_do_not_name():
    facts = tuple(FactChange(Link.PYTHON, f"pkg{n}", "1", "2") for n in range(6))
    appeared = tuple(Finding(f"f{n}", Severity.ERROR, Link.LIBRARIES, f"F{n}") for n in range(5))
    summary = summarize(ReportDiff(Verdict.HEALTHY, Verdict.BROKEN, facts, appeared), [])
    assert summary.startswith("pkg0 1 -> 2; pkg1 1 -> 2; pkg2 1 -> 2; pkg3 1 -> 2; 2 more changes;")
    assert summary.endswith("new error: F2; 2 more new findings")


@pytest.mark.parametrize(
    ("change", "text"),
    [
        (DRIVER_DOWN, "NVIDIA driver 570.133.07 -> 535.104.05"),
        (CUDNN_BACK, f"added nvidia-cudnn-cu12 in {VENV} 9.10.2.21"),
        (CUDNN_REMOVED, f"removed nvidia-cudnn-cu12 in {VENV} 9.10.2.21"),
        (Change(ChangeKind.LOADER, "/etc/ld.so.cache"), "/etc/ld.so.cache changed"),
        (Change(ChangeKind.PERIODIC, "every 6 h"), "periodic check"),
        (Change(ChangeKind.MANUAL, "Check now"), "check requested (Check now)"),
    ],
)
def test_changes_read_as_plain_words(change, text):
    assert describe_change(change) == text


# --------------------------------------------------------------------------- text


def test_text_tells_when_it_broke_what_changed_when_it_was_fixed_and_for_how_long():
    expected = f"""\
History of the TensorFlow GPU stack, oldest first (times in UTC).

2026-11-02 09:14  HEALTHY
    checked: 09:14 check requested (monitor started)
    found:   first check
2026-11-20 14:02  BROKEN    broke, after 18 days 4 h healthy
    changed: 14:01 removed nvidia-cudnn-cu12 in {VENV} 9.10.2.21
    found:   removed nvidia-cudnn-cu12 in {VENV} 9.10.2.21; new error: libcudnn.so.9 and
             7 more cuDNN files not found
2026-11-20 16:15  HEALTHY   fixed, after 2 h 12 min broken
    changed: 16:14 added nvidia-cudnn-cu12 in {VENV} 9.10.2.21
    found:   added nvidia-cudnn-cu12 in {VENV} 9.10.2.21; cleared: libcudnn.so.9 and 7
             more cuDNN files not found
2026-11-22 08:30  WARNINGS  warnings appeared, after 1 day 16 h healthy
    changed: 08:29 NVIDIA driver 570.133.07 -> 535.104.05
    found:   NVIDIA driver 570.133.07 -> 535.104.05; new warning: NVIDIA driver 535.104.05 runs
             TensorFlow 2.21.0 only through CUDA minor version compatibility

Latest verdict: WARNINGS since 2026-11-22 08:30 (1 day 3 h ago).
"""
    assert render_timeline_text(story(), now=NOW, tz=UTC) == expected


def test_every_report_view_says_still_and_counts_from_the_first_of_a_run():
    entries = [
        TimelineEntry("2026-11-20T14:00:00Z", Verdict.BROKEN, "first check"),
        TimelineEntry("2026-11-20T15:00:00Z", Verdict.BROKEN, "no change"),
        TimelineEntry("2026-11-20T15:30:00Z", Verdict.HEALTHY, "cleared: x"),
    ]
    lines = render_timeline_text(entries, now=NOW, tz=UTC).splitlines()
    assert lines[4] == "2026-11-20 15:00  BROKEN    still broken"
    assert lines[6] == "2026-11-20 15:30  HEALTHY   fixed, after 1 h 30 min broken"
    assert lines[-1] == "Latest verdict: HEALTHY since 2026-11-20 15:30 (2 days 20 h ago)."


def test_times_are_shown_in_the_zone_asked_for():
    paris = dt.timezone(dt.timedelta(hours=1), "CET")
    text = render_timeline_text(story(), now=NOW, tz=paris)
    assert "(times in CET)" in text
    assert "2026-11-20 15:02  BROKEN" in text
    assert "changed: 15:01 removed" in text


def test_a_change_from_another_day_shows_its_date():
    change = Change(ChangeKind.DRIVER, "NVIDIA driver", "1", "2", "2026-11-19T23:50:00Z")
    entry = TimelineEntry("2026-11-20T00:10:00Z", Verdict.BROKEN, "x", (change,))
    assert "changed: 2026-11-19 23:50 NVIDIA driver 1 -> 2" in render_timeline_text(
        [entry], now=NOW, tz=UTC
    )


def test_no_history_says_so():
    assert render_timeline_text([], now=NOW) == (
        "No history yet: the monitor has not recorded a check.\n"
    )


def test_unreadable_times_are_shown_as_written():
    entries = [TimelineEntry("yesterday", Verdict.BROKEN, "x")]
    text = render_timeline_text(entries, now=NOW, tz=UTC)
    assert "yesterday  BROKEN" in text
    assert text.endswith("Latest verdict: BROKEN.\n")


# --------------------------------------------------------------------------- JSON


def test_json_is_versioned_and_carries_ids_and_changes():
    document = json.loads(json.dumps(render_timeline_json(story())))
    assert document["schema"] == 1
    assert [e["verdict"] for e in document["entries"]] == [
        "healthy",
        "broken",
        "healthy",
        "warnings",
    ]
    broke = document["entries"][1]
    assert broke["at"] == "2026-11-20T14:02:31+00:00"
    assert broke["appeared"] == ["library-not-found"]
    assert broke["cleared"] == []
    assert broke["changes"] == [
        {
            "kind": "packages",
            "subject": f"nvidia-cudnn-cu12 in {VENV}",
            "before": "9.10.2.21",
            "after": "",
            "at": "2026-11-20T14:01:50Z",
        }
    ]
    assert broke["summary"].startswith("removed nvidia-cudnn-cu12")
