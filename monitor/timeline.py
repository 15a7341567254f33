"""History views: the one-line summary of what changed, and the `history` command's output.

Pure: no I/O. The text view is for someone new to the machine: when the stack broke, what
changed just before, when it was fixed and how long it was broken. The JSON view is a
versioned contract (bump JSON_SCHEMA when a field changes meaning or goes away).
"""

from __future__ import annotations

import datetime as dt
import textwrap
from collections.abc import Sequence

from monitor.model import (
    Change,
    ChangeKind,
    FactChange,
    Finding,
    ReportDiff,
    TimelineEntry,
    Verdict,
    to_jsonable,
)

JSON_SCHEMA = 1
WRAP = 100
# A summary names this many fact changes and this many findings of each kind (new,
# cleared), and counts the rest: it must fit a tray tooltip or a notification.
MAX_FACTS = 4
MAX_FINDINGS = 3

_CHECK_KINDS = (ChangeKind.PERIODIC, ChangeKind.MANUAL)
_STATE = {Verdict.HEALTHY: "healthy", Verdict.WARNINGS: "with warnings", Verdict.BROKEN: "broken"}


# --------------------------------------------------------------------------- summary


def summarize(diff: ReportDiff, changes: Sequence[Change]) -> str:
    """One line for people: "NVIDIA driver 535.104.05 -> 550.54.14; new error: ...".

    The facts come from the diff; when it found none, from what the triggers noticed. A first
    check has no "before", so it names only the problems it found.
    """
    parts: list[str] = []
    if diff.before_verdict is None:
        parts.append("first check")
    else:
        facts: Sequence[Change | FactChange] = diff.facts or [
            c for c in changes if c.kind not in _CHECK_KINDS
        ]
        parts += _capped([describe_change(c) for c in facts], MAX_FACTS, "more changes")
    appeared = sorted(diff.appeared, key=lambda f: -f.severity.rank)
    parts += _capped([_new(f) for f in appeared], MAX_FINDINGS, "more new findings")
    parts += _capped([f"cleared: {f.title}" for f in diff.cleared], MAX_FINDINGS, "more cleared")
    return "; ".join(parts) or "no change"


def describe_change(change: Change | FactChange) -> str:
    """ "NVIDIA driver 535.104.05 -> 550.54.14", "added nvidia-cudnn-cu12 9.10.2.21"."""
    if isinstance(change, Change) and change.kind is ChangeKind.PERIODIC:
        return "periodic check"
    if isinstance(change, Change) and change.kind is ChangeKind.MANUAL:
        return f"check requested ({change.subject})" if change.subject else "check requested"
    if change.before and change.after:
        return f"{change.subject} {change.before} -> {change.after}"
    if change.after:
        return f"added {change.subject} {change.after}"
    if change.before:
        return f"removed {change.subject} {change.before}"
    return f"{change.subject} changed"


def _new(finding: Finding) -> str:
    return f"new {finding.severity.value}: {finding.title}"


def _capped(parts: list[str], most: int, rest: str) -> list[str]:
    if len(parts) <= most:
        return parts
    return [*parts[:most], f"{len(parts) - most} {rest}"]


# --------------------------------------------------------------------------- text


def render_timeline_text(
    entries: Sequence[TimelineEntry],
    now: dt.datetime | None = None,
    tz: dt.tzinfo | None = None,
) -> str:
    """The `history` command's text, oldest first; times in `tz` (None: this machine's zone)."""
    if not entries:
        return "No history yet: the monitor has not recorded a check.\n"
    now = now or dt.datetime.now(dt.timezone.utc)
    zone = (_parse(entries[0].at) or now).astimezone(tz).tzname() or "local time"
    lines = [f"History of the TensorFlow GPU stack, oldest first (times in {zone}).", ""]
    run_start: dt.datetime | None = None
    previous: TimelineEntry | None = None
    for entry in entries:
        at = _parse(entry.at)
        lines.append(_heading(entry, previous, run_start, at, tz))
        lines += _entry_lines(entry, at, tz)
        if previous is None or previous.verdict is not entry.verdict:
            run_start = at
        previous = entry
    since = f" since {_clock(run_start, tz)}" if run_start else ""
    ago = f" ({_duration(now - run_start)} ago)" if run_start else ""
    lines += ["", f"Latest verdict: {entries[-1].verdict.value.upper()}{since}{ago}."]
    return "\n".join(lines) + "\n"


def _heading(
    entry: TimelineEntry,
    previous: TimelineEntry | None,
    run_start: dt.datetime | None,
    at: dt.datetime | None,
    tz: dt.tzinfo | None,
) -> str:
    when = _clock(at, tz) if at else entry.at
    head = f"{when}  {entry.verdict.value.upper():<8}"
    if previous is None:
        return head.rstrip()
    if previous.verdict is entry.verdict:
        return f"{head}  still {_STATE[entry.verdict]}"
    event = _event(previous.verdict, entry.verdict)
    if at and run_start:
        event += f", after {_duration(at - run_start)} {_STATE[previous.verdict]}"
    return f"{head}  {event}"


def _event(before: Verdict, after: Verdict) -> str:
    if after is Verdict.BROKEN:
        return "broke"
    if after is Verdict.HEALTHY:
        return "fixed" if before is Verdict.BROKEN else "warnings cleared"
    return "partly fixed" if before is Verdict.BROKEN else "warnings appeared"


def _entry_lines(entry: TimelineEntry, at: dt.datetime | None, tz: dt.tzinfo | None) -> list[str]:
    lines = []
    for change in entry.changes:
        label = "checked:" if change.kind in _CHECK_KINDS else "changed:"
        stamp = _stamp(_parse(change.at), at, tz)
        lines += _wrapped(" ".join(p for p in (label, stamp, describe_change(change)) if p))
    lines += _wrapped(f"found:   {entry.summary}")
    return lines


def _wrapped(text: str) -> list[str]:
    return textwrap.wrap(
        text,
        WRAP,
        initial_indent="    ",
        subsequent_indent="             ",
        break_on_hyphens=False,
        break_long_words=False,
    )


# --------------------------------------------------------------------------- JSON


def render_timeline_json(entries: Sequence[TimelineEntry]) -> dict:
    """The `history --json` document: {"schema": 1, "entries": [...]}, oldest first.

    Each entry: at, verdict, summary, changes (kind, subject, before, after, at), appeared and
    cleared (finding ids).
    """
    return {"schema": JSON_SCHEMA, "entries": [to_jsonable(e) for e in entries]}


# --------------------------------------------------------------------------- time


def _parse(stamp: str) -> dt.datetime | None:
    """An ISO 8601 time; naive ones are UTC. None when there is none or it does not parse."""
    try:
        parsed = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def _clock(when: dt.datetime | None, tz: dt.tzinfo | None) -> str:
    return when.astimezone(tz).strftime("%Y-%m-%d %H:%M") if when else ""


def _stamp(when: dt.datetime | None, entry_at: dt.datetime | None, tz: dt.tzinfo | None) -> str:
    """A change's time: the time of day when it is the entry's day, else date and time."""
    if when is None:
        return ""
    if entry_at and when.astimezone(tz).date() == entry_at.astimezone(tz).date():
        return when.astimezone(tz).strftime("%H:%M")
    return _clock(when, tz)


def _duration(span: dt.timedelta) -> str:
    """ "45 s", "12 min", "2 h 13 min", "18 days 4 h": precise enough to read at a glance."""
    seconds = max(0, int(span.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes, hours, days = seconds // 60 % 60, seconds // 3600 % 24, seconds // 86400
    if seconds < 3600:
        return f"{minutes} min"
    if days == 0:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    text = "1 day" if days == 1 else f"{days} days"
    return f"{text} {hours} h" if hours else text
