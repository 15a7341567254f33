"""What a desktop notification says, decided from a ReportDiff (pure: no I/O, no clock).

A notification is worth showing when the user would act on it or wants to know: the stack
broke, a new error appeared while it was broken, it works again, or the NVIDIA driver changed
(even when all is still fine: driver updates are the usual cause of a later breakage).
Warnings, info findings, a finding that only changed its wording, and the first check of a
healthy machine are left to the tray icon and the report.

Texts fit what notification servers show: a title within 63 characters and a body within
250 (the Windows balloon holds 64 and 256 UTF-16 units, ending NUL included).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from monitor.model import (
    Change,
    ChangeKind,
    FactChange,
    Finding,
    Link,
    ReportDiff,
    Severity,
    Verdict,
)
from monitor.versions import parse_version

TITLE_MAX = 63
BODY_MAX = 250
STACK_KEY = "stack"

Urgency = Literal["low", "normal", "critical"]

_CHANGE_MAX = 80  # "After the NVIDIA driver update 535.104.05 → 550.54.14"
_PROBLEM_MAX = 110
_PROBLEM_MIN = 40  # what is left of a problem's title to make room for the fix
_VALUE_MAX = 24  # longer values (paths, variable contents) are not shown in a sentence
_ASCII = str.maketrans({"→": "->", "…": "...", "\n": " | "})
_LINK_ORDER = {link: index for index, link in enumerate(Link)}
# Which fact heads "After ...": causes first. A library that resolves elsewhere (LIBRARIES)
# is not named: it is the consequence of a change beside it, and the problem names it anyway.
_CAUSES = (Link.DRIVER, Link.GPU, Link.CUDA, Link.CUDNN, Link.TENSORFLOW, Link.PYTHON)
_CAUSE_ORDER = {
    link: index for index, link in enumerate((*_CAUSES, Link.ENVIRONMENT, Link.RUNTIME))
}
_NOT_CHANGES = (ChangeKind.PERIODIC, ChangeKind.MANUAL)


@dataclass(frozen=True)
class Notification:
    """One desktop notification.

    key: notifications with the same key replace each other on screen (the stack's state is
    one thing: "healthy again" replaces "broken"). finding_ids: the findings it is about, so
    a click can open the report at the right place.
    """

    title: str
    body: str
    urgency: Urgency = "normal"
    finding_ids: tuple[str, ...] = ()
    key: str = STACK_KEY

    def one_line(self) -> str:
        """ASCII-safe single line for logs (a Windows console cannot encode "→")."""
        return f"{self.title}: {self.body}".translate(_ASCII)


def notification_for(diff: ReportDiff, changes: Sequence[Change] = ()) -> Notification | None:
    """The notification this diff deserves, or None when it is not worth interrupting for."""
    before, after = diff.before_verdict, diff.after_verdict
    new_errors = _new(diff.appeared, diff.cleared, Severity.ERROR)
    change = _what_changed(diff.facts, changes)
    if after is Verdict.BROKEN and before is not Verdict.BROKEN:
        errors = new_errors or _of(diff.appeared, Severity.ERROR)
        return _broken("TensorFlow GPU stack broken", errors, change)
    if before is None:
        return None
    if after is Verdict.BROKEN and new_errors:
        title = "TensorFlow GPU stack: new error"
        if len(new_errors) > 1:
            title = f"TensorFlow GPU stack: {len(new_errors)} new errors"
        return _broken(title, new_errors, change)
    if before is Verdict.BROKEN and after is not Verdict.BROKEN:
        return _works_again(diff, change)
    driver = _driver_fact(diff.facts)
    if driver is not None:
        return _driver_changed(driver, diff)
    return None


def merge_diffs(older: ReportDiff, newer: ReportDiff) -> ReportDiff:
    """One diff for two consecutive ones (A->B then B->C gives A->C).

    A finding that appeared and cleared again in between is gone from both lists, a fact
    that came back to its first value is no change: what is left is what a user who saw A
    needs to hear about C.
    """
    facts: dict[tuple[Link, str], FactChange] = {}
    for fact in (*older.facts, *newer.facts):
        first = facts.get((fact.link, fact.subject))
        start = first.before if first else fact.before
        facts[(fact.link, fact.subject)] = FactChange(fact.link, fact.subject, start, fact.after)
    older_cleared = {_identity(f) for f in older.cleared}
    newer_cleared = {_identity(f) for f in newer.cleared}
    older_appeared = {_identity(f) for f in older.appeared}
    newer_appeared = {_identity(f) for f in newer.appeared}
    appeared = [f for f in older.appeared if _identity(f) not in newer_cleared]
    appeared += [f for f in newer.appeared if _identity(f) not in older_cleared]
    cleared = [f for f in older.cleared if _identity(f) not in newer_appeared]
    cleared += [f for f in newer.cleared if _identity(f) not in older_appeared]
    return ReportDiff(
        before_verdict=older.before_verdict,
        after_verdict=newer.after_verdict,
        facts=tuple(f for f in facts.values() if f.before != f.after),
        appeared=tuple(appeared),
        cleared=tuple(cleared),
    )


# --------------------------------------------------------------------------- the kinds


def _broken(title: str, errors: Sequence[Finding], change: str) -> Notification:
    """What changed, what broke, the first fix step; the fix is worth more than the whole
    problem title (the report has that), so the title gives way when both do not fit."""
    lead = f"{change}: " if change else ""
    fix = next((f.fix[0] for f in errors if f.fix), "")
    if not errors:
        first = f"{lead}See the report for what broke."
        return Notification(title, _body(first), "critical")
    first = f"{lead}{_problem(errors, 'error')}."
    fix_line = _fix_line(fix, BODY_MAX - len(first) - 1)
    if fix_line and len(first) + 1 + len(fix_line) > BODY_MAX:
        fix_line = _fix_line(fix, BODY_MAX - len(lead) - _PROBLEM_MIN - 2)
        room = BODY_MAX - len(lead) - len(fix_line) - 2
        first = f"{lead}{_problem(errors, 'error', max(room, _PROBLEM_MIN))}."
    return Notification(
        title=title,
        body=_body(first, fix_line),
        urgency="critical",
        finding_ids=tuple(f.id for f in errors),
    )


def _works_again(diff: ReportDiff, change: str) -> Notification:
    fixed = _new(diff.cleared, diff.appeared, Severity.ERROR) or _of(diff.cleared, Severity.ERROR)
    resolved = f"Resolved: {_problem(fixed)}." if fixed else "No errors left."
    if diff.after_verdict is Verdict.HEALTHY:
        title, rest = "TensorFlow GPU stack is healthy again", ""
    else:
        title = "TensorFlow GPU stack works again, with warnings"
        warnings = _of(diff.appeared, Severity.WARNING)
        rest = f"Warning: {_problem(warnings)}." if warnings else ""
    return Notification(
        title=title,
        body=_body(resolved, f"{change}." if change else "", rest),
        urgency="normal",
        finding_ids=tuple(f.id for f in fixed),
    )


def _driver_changed(fact: FactChange, diff: ReportDiff) -> Notification:
    state = {
        Verdict.HEALTHY: "The TensorFlow GPU stack is still healthy.",
        Verdict.WARNINGS: "The TensorFlow GPU stack still works (with warnings).",
        Verdict.BROKEN: "The TensorFlow GPU stack is still broken.",
    }[diff.after_verdict]
    warnings = _new(diff.appeared, diff.cleared, Severity.WARNING)
    fixed = _new(diff.cleared, diff.appeared, Severity.ERROR)
    lines = [f"{_clip(fact.subject, 30)} {_values(fact)}.", state]
    if fixed:
        lines.append(f"Resolved: {_problem(fixed)}.")
    if warnings:
        lines.append(f"New warning: {_problem(warnings)}.")
    return Notification(
        title=_clip(_driver_title(fact), TITLE_MAX),
        body=_body(*lines),
        urgency="normal",
        finding_ids=tuple(f.id for f in (*fixed, *warnings)),
    )


def _driver_title(fact: FactChange) -> str:
    """ "NVIDIA driver updated to 550.54.14"; "NVIDIA driver is not available (...)"."""
    before, after = parse_version(fact.before), parse_version(fact.after)
    if before and after:
        return f"{fact.subject} {_direction(fact.before, fact.after)}d to {fact.after}"
    if after:
        return f"{fact.subject} {fact.after} {'is available' if fact.before else 'installed'}"
    if fact.after:
        return f"{fact.subject} is {fact.after}"
    return f"{fact.subject} {fact.before} is gone"


# --------------------------------------------------------------------------- what changed


def _what_changed(facts: Sequence[FactChange], changes: Sequence[Change]) -> str:
    """ "After the NVIDIA driver update 535.104.05 → 550.54.14 (+1 more change)", or ""."""
    causes = sorted(
        (f for f in facts if f.link in _CAUSE_ORDER), key=lambda f: _CAUSE_ORDER[f.link]
    )
    items = [(f.subject, f.before, f.after) for f in causes]
    if not items:
        items = [(c.subject, c.before, c.after) for c in changes if c.kind not in _NOT_CHANGES]
    if not items:
        return ""
    text = "After " + _event(*items[0])
    if len(items) > 1:
        text += f" ({_more(len(items) - 1, 'change')})"
    return text


def _event(subject: str, before: str, after: str) -> str:
    """The change as a phrase; the subject is shortened, never the versions."""
    path = "/" in subject or "\\" in subject  # "tensorflow in /home/ada/venvs/tf/bin/python"
    if not _short(before) or not _short(after) or not (before or after):
        template = "a change to {}"
    elif before and after and path:
        template = f"the {_direction(before, after)} of {{}} ({before} → {after})"
    elif before and after:
        template = f"the {{}} {_direction(before, after)} {before} → {after}"
    elif after:
        template = f"{{}} appeared ({after})" if path else f"{{}} {after} appeared"
    else:
        template = f"{{}} was removed ({before})" if path else f"{{}} {before} was removed"
    room = max(_CHANGE_MAX - len("After ") - len(template) + 2, 16)
    return template.format(_clip_middle(subject, room) if path else _clip(subject, room))


def _direction(before: str, after: str) -> str:
    old, new = parse_version(before), parse_version(after)
    if old is None or new is None or old == new:
        return "change"
    return "update" if new > old else "downgrade"


def _values(fact: FactChange) -> str:
    return f"{fact.before or '(none)'} → {fact.after or '(none)'}"


def _driver_fact(facts: Iterable[FactChange]) -> FactChange | None:
    """The driver's version change, else any other driver fact that changed."""
    driver = [f for f in facts if f.link is Link.DRIVER]
    versioned = [f for f in driver if parse_version(f.before) or parse_version(f.after)]
    return (versioned or driver or [None])[0]


# --------------------------------------------------------------------------- findings


def _identity(finding: Finding) -> tuple[str, str]:
    return finding.id, finding.subject


def _of(findings: Iterable[Finding], severity: Severity) -> list[Finding]:
    """In chain order, as the report lists them: the driver's error before its consequences."""
    return sorted(
        (f for f in findings if f.severity is severity), key=lambda f: _LINK_ORDER[f.link]
    )


def _new(
    findings: Sequence[Finding], others: Sequence[Finding], severity: Severity
) -> list[Finding]:
    """Findings of `severity` that did not merely move: no finding on the other side has the
    same id and the same subject or title (a reworded title or a new path is not news)."""
    moved = {(f.id, f.subject) for f in others} | {(f.id, f.title) for f in others}
    return [
        f
        for f in _of(findings, severity)
        if (f.id, f.subject) not in moved and (f.id, f.title) not in moved
    ]


def _problem(findings: Sequence[Finding], noun: str = "", limit: int = _PROBLEM_MAX) -> str:
    """The first finding's title, with "(+2 more errors)" when there are others."""
    suffix = f" ({_more(len(findings) - 1, noun)})" if len(findings) > 1 else ""
    return _clip(findings[0].title, limit - len(suffix)) + suffix


# --------------------------------------------------------------------------- text


def _body(*lines: str) -> str:
    """Non-empty lines joined; the last one is cut to make the whole fit BODY_MAX."""
    kept = [_squash(line) for line in lines if line]
    text = "\n".join(kept)
    if len(text) <= BODY_MAX:
        return text
    head = "\n".join(kept[:-1])
    room = BODY_MAX - len(head) - 1
    return f"{head}\n{_clip(kept[-1], room)}" if room > 20 else _clip(text, BODY_MAX)


def _fix_line(step: str, room: int) -> str:
    """ "Fix: <step>"; when that does not fit, the command after the step's last ": " alone
    (the explanation before it is in the report), and only then a cut."""
    if not step:
        return ""
    line = f"Fix: {_squash(step)}"
    command = step.rpartition(": ")[2]
    if len(line) > room and command != step and len(f"Fix: {_squash(command)}") <= room:
        line = f"Fix: {_squash(command)}"
    return line


def _squash(text: str) -> str:
    """One space for every run of whitespace: fix steps align comments with runs of spaces."""
    return " ".join(text.split())


def _clip(text: str, limit: int) -> str:
    text = _squash(text)
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _clip_middle(text: str, limit: int) -> str:
    """A path keeps its last directories: "tensorflow in …/venvs/tf/bin/python"."""
    text = _squash(text)
    sep = "/" if "/" in text else "\\"
    start = text.find(sep)
    if len(text) <= limit or start < 0:
        return text
    head, parts = text[:start], text[start:].split(sep)
    tail = parts[-1]
    for part in reversed(parts[1:-1]):
        if len(head) + len(tail) + len(part) + 3 > limit:
            break
        tail = f"{part}{sep}{tail}"
    shortened = f"{head}…{sep}{tail}"
    return shortened if len(shortened) <= limit else _clip(text, limit)


def _short(value: str) -> bool:
    return len(value) <= _VALUE_MAX


def _more(count: int, noun: str = "") -> str:
    """ "+1 more change", "+2 more errors", "+3 more"."""
    if not noun:
        return f"+{count} more"
    return f"+{count} more {noun}" if count == 1 else f"+{count} more {noun}s"
