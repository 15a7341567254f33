"""Render a Report as one self-contained HTML page: the chain as a diagram, the findings with
their fixes, the GPU load tests and a timeline of recent verdicts.

The page is a single file that works offline and from file://: CSS, the SVG diagram and a few
lines of script are inline, and a Content-Security-Policy forbids every fetch, so opening a
report cannot leak anything or wait on the network. Every piece of text is escaped.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html
import os
import re
import sys
import tempfile
import webbrowser
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from monitor.compat import build_version
from monitor.model import (
    Finding,
    Inventory,
    Link,
    LoadTestResult,
    Report,
    Severity,
    TimelineEntry,
    Verdict,
    utc_now,
)
from monitor.report import headline
from monitor.text import plural

# --------------------------------------------------------------------------- the chain


@dataclass(frozen=True)
class ChainBox:
    """One box of the diagram. state: "ok", "warning", "error" or "unknown" (not found)."""

    key: str
    title: str
    version: str
    note: str
    state: str
    findings: tuple[Finding, ...] = ()


BOX_ORDER = ("driver", "cuda", "cudnn", "tensorflow", "gpu")
BOX_TITLES = {
    "driver": "Driver",
    "cuda": "CUDA",
    "cudnn": "cuDNN",
    "tensorflow": "TensorFlow",
    "gpu": "GPU",
}
# Which box a finding colours. The nine links fold into five boxes by what a user would fix:
# PATH / LD_LIBRARY_PATH / CUDA_HOME decide which CUDA loads, so they belong to CUDA; the
# interpreter and the VC++ runtime belong to TensorFlow, which runs in one and needs the other.
# Library findings go to the box of the library they name (see box_of).
LINK_BOX = {
    Link.DRIVER: "driver",
    Link.GPU: "gpu",
    Link.CUDA: "cuda",
    Link.CUDNN: "cudnn",
    Link.LIBRARIES: "cuda",
    Link.ENVIRONMENT: "cuda",
    Link.TENSORFLOW: "tensorflow",
    Link.PYTHON: "tensorflow",
    Link.RUNTIME: "tensorflow",
}
BOX_EXPLAINED = {
    "driver": "the NVIDIA driver, its kernel module and NVML; libcuda / nvcuda.dll",
    "cuda": "CUDA toolkits and runtime libraries (cudart, cuBLAS, cuFFT...); PATH, "
    "LD_LIBRARY_PATH, CUDA_HOME",
    "cudnn": "cuDNN installs and the cuDNN libraries TensorFlow loads",
    "tensorflow": "the TensorFlow build, its Python interpreter, the VC++ runtime (Windows)",
    "gpu": "the GPUs NVML sees and whether this TensorFlow has kernels for them",
}
_DRIVER_LIBRARY = re.compile(r"libcuda\.so|nvcuda|nvml|libnvidia-ml|cuda_driver", re.I)

# The header colours of the boxes; the screenshot test looks for these exact colours.
STATE_COLOURS = {
    "ok": "#1a7f37",
    "warning": "#e8a317",
    "error": "#cf222e",
    "unknown": "#6e7781",
}
STATE_MARKS = {"ok": "✓", "warning": "!", "error": "✗", "unknown": "–"}
STATE_WORDS = {"ok": "works", "warning": "warning", "error": "broken", "unknown": "not found"}
_SEVERITY_STATE = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "ok"}
_SEVERITY_MARKS = {Severity.ERROR: "✗", Severity.WARNING: "!", Severity.INFO: "i"}
_SEVERITY_HEADINGS = {
    Severity.ERROR: "Errors",
    Severity.WARNING: "Warnings",
    Severity.INFO: "Notes",
}
_VERDICT_STATE = {Verdict.HEALTHY: "ok", Verdict.WARNINGS: "warning", Verdict.BROKEN: "error"}
_VERDICT_WORDS = {
    Verdict.HEALTHY: "Healthy",
    Verdict.WARNINGS: "Warnings",
    Verdict.BROKEN: "Broken",
}


def box_of(finding: Finding) -> str:
    """The diagram box a finding belongs to."""
    if finding.link is Link.LIBRARIES:
        named = f"{finding.subject} {finding.title}"
        if "cudnn" in named.lower():
            return "cudnn"
        if _DRIVER_LIBRARY.search(named):
            return "driver"
    return LINK_BOX[finding.link]


def chain_boxes(report: Report) -> tuple[ChainBox, ...]:
    """The five boxes, each with its version text and the worst finding that maps onto it."""
    inv = report.inventory
    versions = {
        "driver": _driver_text(inv),
        "cuda": _cuda_text(inv),
        "cudnn": _cudnn_text(inv),
        "tensorflow": _tensorflow_text(inv),
        "gpu": _gpu_text(inv),
    }
    boxes = []
    for key in BOX_ORDER:
        version, note = versions[key]
        findings = tuple(f for f in report.findings if box_of(f) == key)
        boxes.append(
            ChainBox(key, BOX_TITLES[key], version, note, _state(version, findings), findings)
        )
    return tuple(boxes)


def _state(version: str, findings: Sequence[Finding]) -> str:
    worst = max((f.severity.rank for f in findings), default=-1)
    if worst >= Severity.WARNING.rank:
        return "error" if worst == Severity.ERROR.rank else "warning"
    return "ok" if version else "unknown"


def _driver_text(inv: Inventory) -> tuple[str, str]:
    d = inv.driver
    version = d.driver_version or d.nvml_library_version or d.kernel_module_version
    if not version:
        return "", "NVML not available" if d.error else ""
    return version, f"CUDA {d.cuda_driver_version}" if d.cuda_driver_version else "NVIDIA driver"


def _cuda_text(inv: Inventory) -> tuple[str, str]:
    """The CUDA runtime TensorFlow loads (else the active toolkit), and where it comes from."""
    cudart = next((r for r in inv.libraries if r.role == "cudart" and r.resolved), None)
    active = next((t for t in inv.toolkits if t.active), None)
    if cudart and cudart.resolved and cudart.resolved.version:
        path = cudart.resolved.path.replace("\\", "/")
        source = "pip wheel" if "/nvidia/" in path and "-packages/" in path else "runtime"
        if (
            active
            and active.version
            and _major_minor(active.version) != _major_minor(cudart.resolved.version)
        ):
            source += f"; toolkit {active.version}"
        return cudart.resolved.version, source
    if active:
        return active.version or "unknown", "toolkit, active"
    if inv.toolkits:
        return inv.toolkits[0].version or "unknown", "toolkit, not active"
    return "", ""


def _major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def _cudnn_text(inv: Inventory) -> tuple[str, str]:
    loaded = next(
        (r for r in inv.libraries if r.role == "cudnn" and r.resolved and r.resolved.version),
        None,
    )
    if loaded and loaded.resolved:
        path = loaded.resolved.path.replace("\\", "/")
        return loaded.resolved.version or "", "pip wheel" if "-packages/" in path else "library"
    found = next((c for c in inv.cudnn if c.version), None)
    if found:
        return found.version or "", f"{found.source or 'on disk'}, not loaded"
    return "", ""


def _tensorflow_text(inv: Inventory) -> tuple[str, str]:
    builds = [py.tensorflow for py in inv.pythons if py.tensorflow is not None]
    if not builds:
        return "", "no watched interpreter has it"
    versions = list(dict.fromkeys(tf.version or "unknown" for tf in builds))
    kinds = list(
        dict.fromkeys(
            f"CUDA {build_version(tf.cuda_version) or '?'} build"
            if tf.is_cuda_build
            else "CPU-only build"
            for tf in builds
        )
    )
    note = kinds[0] if len(kinds) == 1 else f"{len(builds)} interpreters"
    return ", ".join(versions), note


def _gpu_text(inv: Inventory) -> tuple[str, str]:
    gpus = inv.driver.gpus
    if not gpus:
        return "", "no driver to ask" if not inv.driver.nvml_loaded else "none found"
    names = list(dict.fromkeys(_short_gpu(g.name) for g in gpus))
    ccs = list(dict.fromkeys(g.compute_capability or "?" for g in gpus))
    name = f"{len(gpus)} × {names[0]}" if len(names) == 1 and len(gpus) > 1 else " + ".join(names)
    return name, "CC " + ", ".join(ccs)


def _short_gpu(name: str) -> str:
    return re.sub(r"^(NVIDIA\s+)?(GeForce\s+)?", "", name or "unnamed GPU") or name


# --------------------------------------------------------------------------- fix steps


@dataclass(frozen=True)
class Segment:
    """A piece of a fix step. kind: "text", "command" (copyable) or "note" (a shell comment)."""

    kind: str
    text: str


# The programs a fix step's command can start with (an interpreter path is told by its option).
# fmt: off
_COMMAND_WORDS = frozenset({
    "sudo", "export", "unset", "setx", "env", "cd", "echo", "cat", "grep", "ls", "file", "ln",
    "rm", "chmod", "chown", "del", "dir", "where", "icacls", "reg", "Remove-Item", "import",
    "pip", "pip3", "conda", "mamba", "micromamba", "uv", "apt", "apt-get", "dnf", "yum",
    "zypper", "pacman", "winget", "wsl", "docker", "nvidia-smi", "lsmod", "lspci", "rmmod",
    "modprobe", "dkms", "mokutil", "ldconfig", "journalctl", "tf-stack-monitor",
})
# fmt: on
_INTERPRETER = re.compile(r"^(?:py|python[\d.]*|.*[/\\]python[\d.]*(?:\.exe)?)$", re.I)
_PROSE_AFTER = re.compile(r"[,;] (?:or|and|plus|then|if|check|e\.g\.)\b")
_COMMENT = re.compile(r"\s{2,}#\s")


def looks_like_command(text: str) -> bool:
    """Whether text starts with a command line (a known program, or an interpreter + option)."""
    first, _, rest = text.partition(" ")
    if first.startswith("`"):  # inline code, rendered as such
        return False
    if first.startswith('"'):
        quoted = re.match(r'^"([^"]+)"\s*(.*)$', text)
        if not quoted:
            return False
        first, rest = quoted.group(1), quoted.group(2)
    if first.startswith("[") and "]::" in first:  # PowerShell: [Environment]::...
        return True
    if re.match(r"\$[\w:]+$", first):  # PowerShell: $env:NAME = "value"
        return rest.startswith("= ")
    if _INTERPRETER.match(first) or "/" in first or "\\" in first:
        return rest.startswith("-")
    return first in _COMMAND_WORDS and bool(rest)


def fix_segments(step: str) -> tuple[Segment, ...]:
    """Split a fix step into prose and the commands in it ("Reinstall it: pip install x")."""
    segments: list[Segment] = []
    rest = step
    while rest:
        start = _command_start(rest)
        if start is None:
            segments.append(Segment("text", rest))
            break
        if start:
            segments.append(Segment("text", rest[:start]))
        command, tail = _take_command(rest[start:])
        segments.append(Segment("command", command))
        comment = _COMMENT.search(tail)
        if comment and comment.start() == 0:
            segments.append(Segment("note", tail[comment.end() :].strip()))
            break
        rest = tail
    return tuple(segments)


def _command_start(text: str) -> int | None:
    """Where the first command begins: at 0, or after a ": " outside inline `code`."""
    if looks_like_command(text):
        return 0
    for match in re.finditer(r": ", text):
        if text.count("`", 0, match.start()) % 2 == 0 and looks_like_command(text[match.end() :]):
            return match.end()
    return None


def _take_command(text: str) -> tuple[str, str]:
    """The command at the start of text, and the prose after it.

    The command ends at a shell comment, at ", or ..." / "; if ..." prose, at " (" that opens a
    remark, or at a ")" closing a parenthesis the command did not open; quotes are respected.
    """
    quote, depth, end = "", 0, len(text)
    for i, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"" and (i == 0 or not text[i - 1].isalnum() or char == '"'):
            quote = char
        elif char == "(" and i and text[i - 1] == " " and depth == 0:
            end = i - 1
            break
        elif char in "({":
            depth += 1
        elif char in ")}":
            if depth == 0:
                end = i
                break
            depth -= 1
        elif _COMMENT.match(text, i) or _PROSE_AFTER.match(text, i):
            end = i
            break
    command = text[:end].rstrip()
    if end == len(text) and re.search(r"\S\.$", command):
        return command[:-1], "."
    return command, text[len(command) :]


# --------------------------------------------------------------------------- the page


def render_html(
    report: Report,
    timeline: Sequence[TimelineEntry] = (),
    generated_at: str | None = None,
) -> str:
    """The whole report page as one HTML document (UTF-8, no external resources)."""
    generated_at = generated_at or utc_now()
    boxes = chain_boxes(report)
    ids = _finding_ids(report.findings)
    anchors: dict[str, str] = {}
    by_finding: dict[Finding, str] = {}
    for i, finding in enumerate(report.findings):
        anchors.setdefault(box_of(finding), ids[i])
        by_finding.setdefault(finding, ids[i])
    state = _VERDICT_STATE[report.verdict]
    body = "\n".join(
        (
            _header(report, generated_at),
            _chain_section(boxes, anchors),
            '<div class="columns">\n<div class="main-column">',
            _findings_section(report.findings, ids),
            '</div>\n<aside class="side-column">',
            _load_tests_section(report.load_tests, by_finding),
            _timeline_section(timeline, generated_at),
            "</aside>\n</div>",
            _footer(report, generated_at),
        )
    )
    title = f"{_VERDICT_WORDS[report.verdict]}: TensorFlow GPU stack on " + (
        report.inventory.host.hostname or "this machine"
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="color-scheme" content="light dark">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>{_e(title)}</title>\n"
        f'<link rel="icon" href="{_favicon(state)}">\n'
        f"<style>{CSS}</style>\n</head>\n"
        f'<body class="verdict-{state}">\n<main>\n{body}\n</main>\n'
        f"<script>{SCRIPT}</script>\n</body>\n</html>\n"
    )


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _finding_ids(findings: Sequence[Finding]) -> dict[int, str]:
    """Anchors for the findings, by position (the same finding can appear twice)."""
    return {
        i: f"f{i + 1}-{re.sub(r'[^a-z0-9-]', '', f.id.lower())}" for i, f in enumerate(findings)
    }


def _favicon(state: str) -> str:
    svg = (
        "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'>"
        f"<circle cx='8' cy='8' r='7' fill='{STATE_COLOURS[state]}'/></svg>"
    )
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


def _when(iso: str) -> str:
    """An ISO time as people read it: "2026-11-23 12:00 UTC" (local offsets kept)."""
    moment = _parse_time(iso)
    if moment is None:
        return iso or "unknown time"
    if moment.utcoffset() == dt.timedelta(0):
        return moment.strftime("%Y-%m-%d %H:%M UTC")
    return (
        moment.strftime("%Y-%m-%d %H:%M %z") if moment.tzinfo else moment.strftime("%Y-%m-%d %H:%M")
    )


def _parse_time(iso: str) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")) if iso else None
    except ValueError:
        return None


def _ago(iso: str, now_iso: str) -> str:
    """How long before `now_iso` that was ("3 h ago"), or "" when it cannot be told."""
    then, now = _parse_time(iso), _parse_time(now_iso)
    if then is None or now is None or (then.tzinfo is None) != (now.tzinfo is None):
        return ""
    seconds = (now - then).total_seconds()
    if seconds < 0:
        return ""
    for size, unit in ((86400, "day"), (3600, "h"), (60, "min")):
        if seconds >= size:
            count = int(seconds // size)
            word = unit if unit != "day" or count == 1 else "days"
            return f"{count} {word} ago"
    return "just now"


def _mark(state: str, label: str = "") -> str:
    """The mark with its meaning for screen readers: shape and colour, never colour alone."""
    words = label or STATE_WORDS[state]
    return (
        f'<span class="mark mark-{state}" role="img" aria-label="{_e(words)}" '
        f'title="{_e(words)}">{STATE_MARKS[state]}</span>'
    )


# --------------------------------------------------------------------------- header


def _header(report: Report, generated_at: str) -> str:
    inv = report.inventory
    state = _VERDICT_STATE[report.verdict]
    counts = {s: sum(1 for f in report.findings if f.severity is s) for s in Severity}
    tallies = [
        f'<a href="#sev-{s.value}">{plural(counts[s], w)}</a>'
        for s, w in ((Severity.ERROR, "error"), (Severity.WARNING, "warning"))
        if counts[s]
    ] or ["no problems"]
    if counts[Severity.INFO]:
        tallies.append(f'<a href="#sev-info">{plural(counts[Severity.INFO], "note")}</a>')
    host = inv.host
    system = " ".join(p for p in (host.os_release or host.os, host.machine) if p)
    facts = [
        ("Host", host.hostname or "this machine"),
        ("System", system + (" (WSL)" if host.is_wsl else "")),
        ("Checked", f"{_when(report.checked_at or inv.collected_at)}"),
        ("Took", f"{report.duration_s:.2f} s"),
        ("Tool", f"tf-stack-monitor {report.tool_version or '?'}"),
    ]
    facts_html = "".join(f"<div><dt>{_e(k)}</dt><dd>{_e(v)}</dd></div>" for k, v in facts)
    return (
        f'<header class="verdict verdict-{state}">\n'
        f'<p class="eyebrow">TensorFlow GPU stack report</p>\n'
        f'<div class="verdict-line"><span class="verdict-chip chip-{state}">'
        f"{STATE_MARKS[state]} {_e(_VERDICT_WORDS[report.verdict])}</span>"
        f"<h1>{_e(_headline_text(report))}</h1></div>\n"
        f'<p class="tally">{" · ".join(tallies)}{_load_test_tally(report.load_tests)}</p>\n'
        f'<dl class="facts">{facts_html}</dl>\n</header>'
    )


def _headline_text(report: Report) -> str:
    """The headline without its "BROKEN: 1 error." prefix: the chip already says that."""
    text = headline(report)
    if report.verdict is Verdict.HEALTHY:
        return "The TensorFlow GPU stack looks right."
    return text.split(". ", 1)[1] if ". " in text else text


def _load_test_tally(results: Sequence[LoadTestResult]) -> str:
    if not results:
        return " · GPU load test not run"
    good = sum(1 for r in results if r.outcome == "gpu")
    if good == len(results):
        return ' · <a href="#load-tests">GPU load test passed</a>'
    return f' · <a href="#load-tests">GPU load test: {_e(_outcome_words(results[0]))}</a>'


# --------------------------------------------------------------------------- chain diagram

_BOX_W, _BOX_H, _GAP, _HEAD = 200, 138, 44, 36


def _chain_section(boxes: Sequence[ChainBox], anchors: dict[str, str]) -> str:
    return (
        '<section class="chain" aria-labelledby="chain-h">\n'
        '<h2 id="chain-h">The chain</h2>\n'
        f"{chain_svg(boxes, anchors)}\n"
        f"{_legend()}\n"
        f"{_box_help()}\n</section>"
    )


def chain_svg(boxes: Sequence[ChainBox], anchors: dict[str, str] | None = None) -> str:
    """The diagram: one box per link, left to right, joined by arrows; anchors: box key -> the
    id of its first finding on the page (the box links there)."""
    width = len(boxes) * _BOX_W + (len(boxes) - 1) * _GAP
    label = "; ".join(
        f"{b.title}: {STATE_WORDS[b.state]}" + (f", {b.version}" if b.version else "")
        for b in boxes
    )
    parts = [
        f'<svg class="chain-svg" viewBox="0 0 {width} {_BOX_H + 4}" role="img" '
        f'aria-label="{_e(label)}" xmlns="http://www.w3.org/2000/svg">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0 0L10 5L0 10z" '
        'class="arrow-head"/></marker></defs>',
    ]
    for i, box in enumerate(boxes):
        x = i * (_BOX_W + _GAP)
        parts.append(_box_svg(box, x, (anchors or {}).get(box.key)))
        if i < len(boxes) - 1:
            y = 2 + _BOX_H / 2 + _HEAD / 2
            parts.append(
                f'<line class="arrow" x1="{x + _BOX_W + 4}" y1="{y}" '
                f'x2="{x + _BOX_W + _GAP - 5}" y2="{y}" marker-end="url(#arrow)"/>'
            )
    parts.append("</svg>")
    return "\n".join(parts)


def _box_svg(box: ChainBox, x: int, anchor: str | None) -> str:
    colour = STATE_COLOURS[box.state]
    tooltip = f"{box.title}: {STATE_WORDS[box.state]}" + "".join(
        f"\n{_SEVERITY_MARKS[f.severity]} {f.title}" for f in box.findings
    )
    version = box.version or "not found"
    counts = _box_counts(box.findings)
    inner = (
        f"<title>{_e(tooltip)}</title>"
        f'<rect class="box-body" x="{x + 1}" y="2" width="{_BOX_W - 2}" height="{_BOX_H - 2}" '
        f'rx="10" stroke="{colour}"/>'
        f'<path class="box-head" fill="{colour}" d="M{x + 1} {2 + _HEAD}V12a10 10 0 0 1 10-10'
        f'H{x + _BOX_W - 11}a10 10 0 0 1 10 10V{2 + _HEAD}z"/>'
        f'<text class="box-title box-title-{box.state}" x="{x + 14}" y="{_HEAD - 9}">'
        f"{_e(box.title)}</text>"
        f'<text class="box-mark box-title-{box.state}" x="{x + _BOX_W - 16}" y="{_HEAD - 8}" '
        f'text-anchor="end">{STATE_MARKS[box.state]}</text>'
        + _svg_text(version, f"box-version{'' if box.version else ' absent'}", x + 14, 72, 21)
        + _svg_text(box.note, "box-note", x + 14, 96, 14, bold=False)
        + f'<text class="box-count count-{box.state}" x="{x + 14}" y="{_BOX_H - 12}">'
        f"{_e(counts)}</text>"
    )
    group = f'<g class="box box-{box.state}" id="box-{box.key}" data-state="{box.state}">'
    if anchor:
        return f'{group}<a href="#{anchor}">{inner}</a></g>'
    return f"{group}{inner}</g>"


def _box_counts(findings: Sequence[Finding]) -> str:
    counts = {s: sum(1 for f in findings if f.severity is s) for s in Severity}
    parts = [
        plural(counts[s], w)
        for s, w in (
            (Severity.ERROR, "error"),
            (Severity.WARNING, "warning"),
            (Severity.INFO, "note"),
        )
        if counts[s]
    ]
    return ", ".join(parts) if parts else "no problems found"


_TEXT_ROOM = _BOX_W - 28
_SQUEEZE = 1.3  # how much narrower than its natural width a text may be drawn


def _svg_text(text: str, cls: str, x: int, y: int, size: int, bold: bool = True) -> str:
    """SVG text does not wrap: squeeze a long text into the box, and cut one that is too long."""
    per_char = size * (0.62 if bold else 0.55)
    limit = int(_TEXT_ROOM * _SQUEEZE / per_char)
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    fit = ""
    if len(text) * per_char > _TEXT_ROOM:
        fit = f' textLength="{_TEXT_ROOM}" lengthAdjust="spacingAndGlyphs"'
    return f'<text class="{cls}" x="{x}" y="{y}"{fit}>{_e(text)}</text>'


def _legend() -> str:
    items = "".join(
        f"<li>{_mark(state)} {_e(STATE_WORDS[state])}</li>"
        for state in ("ok", "warning", "error", "unknown")
    )
    return f'<ul class="legend" aria-label="What the marks mean">{items}</ul>'


def _box_help() -> str:
    rows = "".join(
        f"<li><strong>{_e(BOX_TITLES[k])}</strong>: {_e(BOX_EXPLAINED[k])}</li>" for k in BOX_ORDER
    )
    return (
        '<details class="box-help"><summary>What each box covers</summary>'
        f"<ul>{rows}</ul><p>A box takes the colour of its worst finding; notes do not change "
        "it. Click a box to jump to its first finding.</p></details>"
    )


# --------------------------------------------------------------------------- findings


def _findings_section(findings: Sequence[Finding], ids: dict[int, str]) -> str:
    parts = [
        '<section class="findings" aria-labelledby="findings-h">',
        '<h2 id="findings-h">Findings</h2>',
    ]
    if not any(f.severity is not Severity.INFO for f in findings):
        parts.append(
            f'<p class="all-good">{_mark("ok")} No problems found: every link of the chain '
            "checks out.</p>"
        )
    for severity in Severity:
        group = [(i, f) for i, f in enumerate(findings) if f.severity is severity]
        if not group:
            continue
        parts.append(
            f'<h3 class="sev-heading" id="sev-{severity.value}">'
            f'{_e(_SEVERITY_HEADINGS[severity])} <span class="count">{len(group)}</span></h3>'
        )
        parts.extend(_finding_html(f, ids[i]) for i, f in group)
    parts.append("</section>")
    return "\n".join(parts)


def _finding_html(finding: Finding, anchor: str) -> str:
    sev = finding.severity
    state = _SEVERITY_STATE[sev]
    mark = (
        '<span class="mark mark-info" role="img" aria-label="note" title="note">i</span>'
        if sev is Severity.INFO
        else _mark(state, sev.value)
    )
    paragraphs = "".join(f"<p>{_inline(p)}</p>" for p in finding.detail.splitlines() if p.strip())
    parts = [
        f'<article class="finding sev-{sev.value}" id="{anchor}">',
        f'<div class="finding-head">{mark}<h4>{_e(finding.title)}</h4>'
        f'<span class="tag">{_e(BOX_TITLES[box_of(finding)])}</span>'
        f'<code class="fid" title="finding id">{_e(finding.id)}</code></div>',
    ]
    if paragraphs:
        parts.append(f'<div class="detail">{paragraphs}</div>')
    if finding.fix:
        steps = "".join(f"<li>{_step_html(step)}</li>" for step in finding.fix)
        parts.append(f'<div class="fix"><h5>Fix</h5><ol>{steps}</ol></div>')
    if finding.evidence:
        rows = "".join(
            f'<tr><th scope="row">{_e(k)}</th><td>{_e(v)}</td></tr>' for k, v in finding.evidence
        )
        is_open = " open" if sev is Severity.ERROR else ""
        parts.append(
            f'<details class="evidence"{is_open}><summary>Evidence ({len(finding.evidence)})'
            f"</summary><table>{rows}</table></details>"
        )
    parts.append("</article>")
    return "\n".join(parts)


def _step_html(step: str) -> str:
    """A fix step: prose with inline code, commands as copyable blocks.

    A command that ends the step (or has only a shell comment after it) is a block; one in the
    middle of a sentence stays inline, with its own copy button.
    """
    segments = fix_segments(step)
    out = []
    for i, seg in enumerate(segments):
        if seg.kind == "text":
            out.append(_inline(seg.text))
        elif seg.kind == "note":
            out.append(f'<span class="note"># {_e(seg.text)}</span>')
        else:
            after = segments[i + 1] if i + 1 < len(segments) else None
            block = (
                after is None
                or after.kind == "note"
                or not re.search(r"\w", after.text)
                or after.text.lstrip().startswith("(")
            )
            out.append(_command_block(seg.text) if block else _inline_command(seg.text))
    return "".join(out)


def _command_block(command: str) -> str:
    return (
        f'<div class="cmd"><pre><code>{_e(command)}</code></pre>'
        '<button class="copy" type="button" title="Copy the command">Copy</button></div>'
    )


def _inline_command(command: str) -> str:
    return (
        f'<span class="cmd-inline"><code>{_e(command)}</code>'
        '<button class="copy copy-small" type="button" title="Copy" aria-label="Copy">'
        "Copy</button></span>"
    )


def _inline(text: str) -> str:
    """Escape prose; `backticked` spans become copyable inline code, URLs selectable text."""
    pieces = text.split("`")
    if len(pieces) % 2 == 0:  # an unpaired backtick: leave the text as written
        pieces = [text]
    out = []
    for i, piece in enumerate(pieces):
        if i % 2:
            out.append(_inline_command(piece))
        else:
            out.append(_urls(piece))
    return "".join(out)


def _urls(text: str) -> str:
    """URLs stay text (the page must not link out), but one click selects a whole URL."""
    out, last = [], 0
    for match in re.finditer(r"https?://[^\s()<>\"']+[^\s()<>\"'.,;:]", text):
        out.append(_e(text[last : match.start()]))
        out.append(f'<span class="url">{_e(match.group())}</span>')
        last = match.end()
    out.append(_e(text[last:]))
    return "".join(out)


# --------------------------------------------------------------------------- load tests

_OUTCOMES = {
    "gpu": "TensorFlow computed on the GPU",
    "cpu-only": "TensorFlow works, but on the CPU only",
    "failed": "the load test failed",
    "timeout": "the load test timed out",
    "crashed": "the load test crashed",
}


def _outcome_words(result: LoadTestResult) -> str:
    return _OUTCOMES.get(result.outcome, result.outcome or "unknown outcome")


def _load_tests_section(results: Sequence[LoadTestResult], anchors: dict[Finding, str]) -> str:
    parts = [
        '<section class="load-tests" id="load-tests" aria-labelledby="load-h">',
        '<h2 id="load-h">GPU load test</h2>',
    ]
    if not results:
        parts.append(
            '<p class="muted">Not run in this check. <span class="cmd-inline"><code>'
            "tf-stack-monitor report --gpu-test</code></span> runs it: a child process imports "
            "TensorFlow, multiplies matrices on the GPU and trains one Keras step.</p>"
        )
    parts.extend(_load_test_html(r, anchors) for r in results)
    parts.append("</section>")
    return "\n".join(parts)


def _load_test_html(result: LoadTestResult, anchors: dict[Finding, str]) -> str:
    state = "ok" if result.outcome == "gpu" else "error"
    if result.outcome == "cpu-only":
        state = (
            "warning" if not any(f.severity is Severity.ERROR for f in result.findings) else state
        )
    figures = _load_figures(result)
    parts = [
        f'<article class="load-test lt-{state}">',
        f'<div class="finding-head">{_mark(state, result.outcome or "unknown")}'
        f"<h4>{_e(_capital(_outcome_words(result)))}</h4></div>",
        f'<p class="python">Interpreter <code>{_e(result.python)}</code>'
        + (f" · started {_e(_when(result.started_at))}" if result.started_at else "")
        + "</p>",
    ]
    if result.detail:
        parts.append(f'<p class="detail">{_inline(result.detail)}</p>')
    if figures:
        cells = "".join(
            f'<div class="figure{" wide" if len(v) > 14 else ""}"><dt>{_e(k)}</dt>'
            f"<dd>{_e(v)}</dd></div>"
            for k, v in figures
        )
        parts.append(f'<dl class="figures">{cells}</dl>')
    if result.steps:
        parts.append(_steps_table(result))
    causes = [f for f in result.findings if f.severity is not Severity.INFO]
    if causes:
        links = "".join(
            f"<li>{_mark(_SEVERITY_STATE[f.severity], f.severity.value)} "
            + (f'<a href="#{anchors[f]}">{_e(f.title)}</a>' if f in anchors else _e(f.title))
            + "</li>"
            for f in causes
        )
        parts.append(f'<p class="why">Why, from its output:</p><ul class="causes">{links}</ul>')
    if result.loaded_libraries:
        libs = "\n".join(result.loaded_libraries)
        parts.append(
            f"<details><summary>Libraries TensorFlow loaded ({len(result.loaded_libraries)})"
            f'</summary><pre class="plain">{_e(libs)}</pre></details>'
        )
    if result.stderr_tail and result.outcome != "gpu":
        parts.append(
            "<details><summary>The end of its error output</summary>"
            f'<pre class="plain">{_e(result.stderr_tail)}</pre></details>'
        )
    parts.append("</article>")
    return "\n".join(parts)


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _load_figures(result: LoadTestResult) -> list[tuple[str, str]]:
    figures = []
    if result.device:
        figures.append(("Device", result.device))
    if result.gflops is not None:
        figures.append(("GPU matmul", f"{result.gflops:,.0f} GFLOP/s"))
    if result.cpu_gflops is not None:
        figures.append(("CPU matmul", f"{result.cpu_gflops:,.0f} GFLOP/s"))
    if result.import_seconds is not None:
        figures.append(("import tensorflow", f"{result.import_seconds:.1f} s"))
    if result.peak_memory_mib is not None:
        figures.append(("Peak GPU memory", f"{result.peak_memory_mib:,.0f} MiB"))
    if result.max_utilization_gpu is not None:
        figures.append(("GPU busy (NVML)", f"up to {result.max_utilization_gpu}%"))
    if result.tf_version:
        figures.append(("TensorFlow", result.tf_version))
    if result.duration_s:
        figures.append(("Took", f"{result.duration_s:.1f} s"))
    if result.signal or (result.exit_code not in (None, 0)):
        figures.append(("Exit", result.signal or str(result.exit_code)))
    return figures


def _steps_table(result: LoadTestResult) -> str:
    rows = []
    for step in result.steps:
        state = "ok" if step.ok else "error"
        rows.append(
            f'<tr class="step-{state}"><td>{_mark(state, "passed" if step.ok else "failed")}</td>'
            f"<td><code>{_e(step.name)}</code></td>"
            f'<td class="num">{step.seconds:.2f} s</td><td>{_inline(step.detail)}</td></tr>'
        )
    return (
        '<table class="steps"><thead><tr><th></th><th>Step</th><th class="num">Time</th>'
        f"<th>Detail</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


# --------------------------------------------------------------------------- timeline


def _timeline_section(timeline: Sequence[TimelineEntry], generated_at: str) -> str:
    parts = [
        '<section class="timeline" aria-labelledby="timeline-h">',
        '<h2 id="timeline-h">Recent history</h2>',
    ]
    if not timeline:
        parts.append(
            '<p class="muted">No history yet: the monitor records each verdict and what changed '
            "before it while it runs.</p>"
        )
    else:
        ordered = sorted(timeline, key=lambda t: _parse_time(t.at) or _EPOCH, reverse=True)
        parts.append('<ol class="events">')
        parts.extend(_timeline_entry(t, generated_at) for t in ordered)
        parts.append("</ol>")
    parts.append("</section>")
    return "\n".join(parts)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def _timeline_entry(entry: TimelineEntry, generated_at: str) -> str:
    state = _VERDICT_STATE[entry.verdict]
    ago = _ago(entry.at, generated_at)
    items = [
        f'<li class="change"><span class="what">{_e(c.subject)}</span> '
        f"{_change_text(c.before, c.after)}</li>"
        for c in entry.changes
    ]
    items += [
        f'<li class="appeared">{_mark("error", "new problem")}<span>{_e(t)}</span></li>'
        for t in entry.appeared
    ]
    items += [
        f'<li class="cleared">{_mark("ok", "fixed")}<span>{_e(t)}</span></li>'
        for t in entry.cleared
    ]
    details = f'<ul class="event-details">{"".join(items)}</ul>' if items else ""
    summary = f'<p class="summary">{_e(entry.summary)}</p>' if entry.summary else ""
    return (
        f'<li class="event event-{state}"><div class="event-head">'
        f'<span class="verdict-chip small chip-{state}">{STATE_MARKS[state]} '
        f"{_e(_VERDICT_WORDS[entry.verdict])}</span>"
        f'<time datetime="{_e(entry.at)}">{_e(_when(entry.at))}</time>'
        + (f'<span class="ago">{_e(ago)}</span>' if ago else "")
        + f"</div>{summary}{details}</li>"
    )


def _change_text(before: str, after: str) -> str:
    if before and after:
        return f"<code>{_e(before)}</code> → <code>{_e(after)}</code>"
    if after:
        return f"appeared: <code>{_e(after)}</code>"
    if before:
        return f"removed (was <code>{_e(before)}</code>)"
    return "changed"


# --------------------------------------------------------------------------- footer


def _footer(report: Report, generated_at: str) -> str:
    return (
        "<footer><p>Written by tf-stack-monitor "
        f"{_e(report.tool_version or '?')} on {_e(_when(generated_at))}. This page is one "
        "self-contained file: it loads nothing from the network. For every fact as JSON, run "
        '<span class="cmd-inline"><code>tf-stack-monitor check --json</code></span>; for a '
        'support bundle, <span class="cmd-inline"><code>tf-stack-monitor check '
        "--save-snapshot FILE --redact</code></span>.</p></footer>"
    )


# --------------------------------------------------------------------------- write and open


def write_report(path: str | os.PathLike[str], page: str) -> Path:
    """Write the page atomically (a reader never sees half a file); returns the path."""
    target = Path(path).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(page)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def open_in_browser(path: str | os.PathLike[str]) -> str:
    """Open the page in the user's browser; says what happened. Never raises."""
    try:
        url = Path(path).expanduser().resolve().as_uri()
    except (OSError, ValueError) as exc:
        return f"cannot open {path}: {exc}"
    if _headless():
        return f"no graphical session here: open {url} in a browser"
    try:
        opened = webbrowser.open(url)
    except Exception as exc:  # webbrowser runs arbitrary launchers: report, never raise
        return f"could not start a browser ({type(exc).__name__}: {exc}): open {url} yourself"
    return f"opened {url}" if opened else f"no browser found: open {url} in a browser"


def _headless() -> bool:
    """A Linux/BSD box without X11 or Wayland: a browser could only be a text one."""
    if sys.platform in ("win32", "darwin"):
        return False
    return not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


# --------------------------------------------------------------------------- assets

SCRIPT = """
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  function flash(button, text) {
    button.textContent = text;
    setTimeout(function () { button.textContent = "Copy"; }, 1800);
  }
  function select(node) {
    var range = document.createRange();
    range.selectNodeContents(node);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }
  function fallback(button, code) {
    select(code);
    var copied = false;
    try { copied = document.execCommand("copy"); } catch (e) { copied = false; }
    flash(button, copied ? "Copied" : "Selected: press Ctrl+C");
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button.copy") : null;
    if (!button) { return; }
    var code = button.parentNode.querySelector("code");
    if (!code) { return; }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(code.textContent).then(
        function () { flash(button, "Copied"); },
        function () { fallback(button, code); });
    } else {
      fallback(button, code);
    }
  });
  window.addEventListener("beforeprint", function () {
    document.querySelectorAll("details").forEach(function (d) { d.open = true; });
  });
})();
"""

_SCRIPT_HASH = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
# 'unsafe-inline' is for browsers without CSP 2; the others run only the script with this hash.
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; "
    f"script-src 'unsafe-inline' 'sha256-{_SCRIPT_HASH}'; img-src data:; "
    "base-uri 'none'; form-action 'none'"
)

CSS = """
:root {
  --bg: #f6f8fa; --card: #ffffff; --fg: #1f2328; --muted: #59636e; --border: #d1d9e0;
  --code-bg: #f2f4f7; --link: #0969da; --info: #0969da;
  --ok: #1a7f37; --warning: #e8a317; --error: #cf222e; --unknown: #6e7781;
  --ok-soft: #e6f6ea; --warning-soft: #fff6dc; --error-soft: #ffeceb; --unknown-soft: #f0f2f4;
  --warning-text: #8a5a00;
  color-scheme: light dark;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0d1117; --card: #161b22; --fg: #e6edf3; --muted: #9aa4ae; --border: #30363d;
    --code-bg: #0d1117; --link: #58a6ff; --info: #4493f8;
    --ok-soft: #13261b; --warning-soft: #2b2413; --error-soft: #2e1619; --unknown-soft: #1c2128;
    --warning-text: #e3b341;
  }
}
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body {
  margin: 0; background: var(--bg); color: var(--fg); line-height: 1.5; font-size: 15px;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "Liberation Sans",
    "DejaVu Sans", Arial, sans-serif;
}
main { max-width: 1180px; margin: 0 auto; padding: 24px 24px 40px; }
a { color: var(--link); }
code, pre, .fid {
  font-family: ui-monospace, "SFMono-Regular", "Cascadia Mono", Menlo, Consolas,
    "Liberation Mono", "DejaVu Sans Mono", monospace;
}
code { font-size: 0.88em; }
h1, h2, h3, h4, h5 { line-height: 1.25; }
h2 { font-size: 1.2rem; margin: 0 0 14px; }
section, header.verdict, footer {
  background: var(--card); border: 1px solid var(--border); border-radius: 12px;
  padding: 20px 24px; margin: 0 0 18px;
}
.muted, .eyebrow { color: var(--muted); }
.eyebrow { margin: 0 0 8px; font-size: 0.8rem; letter-spacing: 0.06em; text-transform: uppercase; }

/* header */
header.verdict { border-left: 8px solid var(--unknown); }
header.verdict-ok { border-left-color: var(--ok); }
header.verdict-warning { border-left-color: var(--warning); }
header.verdict-error { border-left-color: var(--error); }
.verdict-line { display: flex; align-items: center; gap: 14px; flex-wrap: wrap; }
.verdict-line h1 { font-size: 1.45rem; margin: 0; flex: 1 1 420px; }
.verdict-chip {
  display: inline-block; border-radius: 999px; padding: 4px 14px; font-weight: 700;
  font-size: 1.05rem; color: #fff; background: var(--unknown); white-space: nowrap;
}
.verdict-chip.small { font-size: 0.82rem; padding: 1px 10px; }
.chip-ok { background: var(--ok); }
.chip-warning { background: var(--warning); color: #1f2328; }
.chip-error { background: var(--error); }
.tally { margin: 10px 0 0; font-weight: 600; }
.facts { display: flex; flex-wrap: wrap; gap: 8px 32px; margin: 14px 0 0; }
.facts dt {
  font-size: 0.72rem; text-transform: uppercase; letter-spacing: 0.05em; color: var(--muted);
}
.facts dd { margin: 0; }

/* the chain */
.chain-svg { display: block; width: 100%; height: auto; max-width: 1176px; margin: 4px auto 0; }
.chain-svg text { font-family: inherit; }
.box-body { fill: var(--unknown-soft); stroke-width: 2.5; }
.box-ok .box-body { fill: var(--ok-soft); }
.box-warning .box-body { fill: var(--warning-soft); }
.box-error .box-body { fill: var(--error-soft); }
.box-title { font-size: 17px; font-weight: 700; fill: #fff; }
.box-mark { font-size: 19px; font-weight: 700; fill: #fff; }
.box-title-warning { fill: #1f2328; }
.box-version { font-size: 21px; font-weight: 700; fill: var(--fg); }
.box-version.absent { fill: var(--unknown); font-style: italic; font-weight: 600; }
.box-note { font-size: 14px; fill: var(--muted); }
.box-count { font-size: 13px; font-weight: 600; fill: var(--muted); }
.count-error { fill: var(--error); }
.count-warning { fill: var(--warning-text); }
.box a:hover .box-body, .box a:focus .box-body { stroke-width: 4; }
.arrow { stroke: var(--muted); stroke-width: 2.5; }
.arrow-head { fill: var(--muted); }
.legend { list-style: none; display: flex; flex-wrap: wrap; gap: 6px 22px; padding: 0;
  margin: 14px 0 6px; color: var(--muted); font-size: 0.9rem; }
.box-help { color: var(--muted); font-size: 0.9rem; }
.box-help ul { margin: 6px 0; padding-left: 20px; }
.box-help p { margin: 4px 0; }

/* marks: a shape and a colour */
.mark {
  display: inline-flex; align-items: center; justify-content: center; flex: none;
  width: 1.5em; height: 1.5em; border-radius: 50%; font-weight: 800; font-size: 0.9em;
  color: #fff; background: var(--unknown); line-height: 1;
}
.mark-ok { background: var(--ok); }
.mark-warning { background: var(--warning); color: #1f2328; }
.mark-error { background: var(--error); }
.mark-info { background: var(--info); font-style: italic; font-family: Georgia, serif; }

/* findings */
.sev-heading { font-size: 1rem; margin: 18px 0 10px; color: var(--muted);
  text-transform: uppercase; letter-spacing: 0.05em; }
.sev-heading .count { font-weight: 400; }
.all-good { display: flex; gap: 10px; align-items: center; font-weight: 600; }
.finding, .load-test {
  border: 1px solid var(--border); border-left: 5px solid var(--unknown); border-radius: 10px;
  padding: 14px 18px; margin: 0 0 14px; background: var(--card);
}
.finding.sev-error, .lt-error { border-left-color: var(--error); }
.finding.sev-warning, .lt-warning { border-left-color: var(--warning); }
.finding.sev-info { border-left-color: var(--info); }
.lt-ok { border-left-color: var(--ok); }
.finding-head { display: flex; align-items: center; gap: 10px; flex-wrap: wrap; }
.finding-head h4 { margin: 0; font-size: 1.05rem; flex: 1 1 0; min-width: 14em; }
.tag { font-size: 0.78rem; font-weight: 600; border: 1px solid var(--border);
  border-radius: 999px; padding: 0 9px; color: var(--muted); }
.fid { font-size: 0.78rem; color: var(--muted); }
.detail p { margin: 8px 0 0; }
.fix h5, .evidence summary { font-size: 0.8rem; text-transform: uppercase;
  letter-spacing: 0.05em; color: var(--muted); margin: 14px 0 4px; }
.fix ol { margin: 0; padding-left: 22px; }
.fix li { margin: 6px 0; }
.fix li::marker { font-weight: 700; color: var(--muted); }
.cmd { position: relative; margin: 6px 0 4px; }
.cmd pre {
  margin: 0; padding: 9px 84px 9px 12px; background: var(--code-bg);
  border: 1px solid var(--border); border-radius: 8px; white-space: pre-wrap;
  overflow-wrap: anywhere;
}
.cmd code { font-size: 0.86rem; }
.cmd-inline code, .python code, .steps code, .event-details code {
  background: var(--code-bg); border: 1px solid var(--border); border-radius: 5px;
  padding: 0 4px; overflow-wrap: anywhere;
}
.copy {
  position: absolute; top: 6px; right: 6px; font: inherit; font-size: 0.78rem;
  font-weight: 600; padding: 3px 10px; border-radius: 6px; cursor: pointer;
  border: 1px solid var(--border); background: var(--card); color: var(--fg);
}
.copy:hover { border-color: var(--link); color: var(--link); }
html:not(.js) .copy { display: none; }
.copy-small { position: static; font-size: 0.7rem; padding: 0 6px; margin-left: 4px;
  vertical-align: 1px; }
.note { color: var(--muted); font-size: 0.88rem; }
.url { user-select: all; -webkit-user-select: all; overflow-wrap: anywhere; }
.evidence summary { cursor: pointer; }
.evidence table { border-collapse: collapse; width: 100%; font-size: 0.86rem; }
.evidence th, .evidence td { text-align: left; vertical-align: top; padding: 4px 10px 4px 0;
  border-top: 1px solid var(--border); }
.evidence th { color: var(--muted); font-weight: 600; width: 26%; }
.evidence td { font-family: ui-monospace, "Liberation Mono", "DejaVu Sans Mono", monospace;
  font-size: 0.82rem; overflow-wrap: anywhere; }

/* load tests */
.python { margin: 8px 0 0; color: var(--muted); }
.figures { display: flex; flex-wrap: wrap; gap: 10px; margin: 12px 0; }
.figure { border: 1px solid var(--border); border-radius: 8px; padding: 6px 12px;
  min-width: 130px; }
.figure dt { font-size: 0.72rem; color: var(--muted); text-transform: uppercase;
  letter-spacing: 0.04em; }
.figure dd { margin: 0; font-weight: 700; font-size: 1.05rem; overflow-wrap: anywhere; }
.figure.wide { flex-basis: 100%; }
.steps { border-collapse: collapse; width: 100%; font-size: 0.9rem; margin: 6px 0; }
.steps th, .steps td { text-align: left; padding: 4px 10px 4px 0; vertical-align: top;
  border-top: 1px solid var(--border); }
.steps th { color: var(--muted); font-weight: 600; font-size: 0.8rem; }
.steps .num { text-align: right; white-space: nowrap; }
.steps .mark { font-size: 0.75em; }
.steps code { white-space: nowrap; }
pre.plain { background: var(--code-bg); border: 1px solid var(--border); border-radius: 8px;
  padding: 8px 12px; font-size: 0.8rem; white-space: pre-wrap; overflow-wrap: anywhere;
  max-height: 28em; overflow: auto; }
details > summary { cursor: pointer; }
.load-test details { margin: 6px 0; }
.why { margin: 10px 0 2px; font-weight: 600; }
.causes { list-style: none; padding: 0; margin: 0 0 8px; }
.causes li { display: grid; grid-template-columns: auto 1fr; gap: 8px; margin: 3px 0; }
.causes .mark { font-size: 0.72em; margin-top: 0.25em; }

/* timeline */
.events { list-style: none; margin: 0; padding: 0 0 0 22px; border-left: 3px solid var(--border); }
.event { position: relative; margin: 0 0 16px; }
.event::before { content: ""; position: absolute; left: -31px; top: 5px; width: 15px;
  height: 15px; border-radius: 50%; background: var(--unknown);
  border: 3px solid var(--card); }
.event-ok::before { background: var(--ok); }
.event-warning::before { background: var(--warning); }
.event-error::before { background: var(--error); }
.event-head { display: flex; align-items: center; gap: 12px; flex-wrap: wrap; }
.event-head time { font-weight: 600; }
.ago { color: var(--muted); font-size: 0.88rem; }
.summary { margin: 4px 0 0; }
.event-details { list-style: none; padding: 0; margin: 6px 0 0; font-size: 0.9rem; }
.event-details li { margin: 3px 0; }
.event-details li.appeared, .event-details li.cleared { display: grid; gap: 8px;
  grid-template-columns: auto 1fr; align-items: start; }
.event-details .mark { font-size: 0.72em; margin-top: 0.2em; }
.event-details .what { font-weight: 600; }

.columns { display: grid; grid-template-columns: minmax(0, 1fr) 390px; gap: 0 18px;
  align-items: start; }
.side-column .figure { min-width: 0; flex: 1 1 40%; }
.side-column .figure.wide { flex-basis: 100%; }
.side-column .steps td:last-child { font-size: 0.82rem; color: var(--muted); }
footer { color: var(--muted); font-size: 0.88rem; }
footer p { margin: 0; }

@media (max-width: 1000px) {
  .columns { display: block; }
}
@media (max-width: 700px) {
  main { padding: 10px; }
  section, header.verdict, footer { padding: 14px; }
}
@media print {
  :root { --bg: #fff; --card: #fff; --fg: #000; --muted: #444; --border: #bbb;
    --code-bg: #f4f4f4; --ok-soft: #e6f6ea; --warning-soft: #fff6dc; --error-soft: #ffeceb;
    --unknown-soft: #f0f2f4; --warning-text: #6b4500; }
  body { font-size: 11pt; }
  main { max-width: none; padding: 0; }
  .columns { display: block; }
  section, header.verdict, footer { border: none; padding: 0; margin: 0 0 14pt; }
  .copy, .copy-small, .box-help { display: none; }
  .finding-head, .event, .cmd, tr, .figures, .chain { break-inside: avoid; }
  h2, h3, h5, .finding-head { break-after: avoid; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  a { color: inherit; text-decoration: none; }
}
"""
