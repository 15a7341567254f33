"""Wording the failure builders share: the error Finding, step names, log tails, and the
loader check's answer for a library in a sentence."""

from __future__ import annotations

from collections.abc import Sequence

from monitor.model import Finding, LibraryFile, LibraryResolution, Link, Severity

TAIL_IN_DETAIL = 10  # log lines quoted in a finding's detail


# A builder returns this to claim a line without reporting it (optional libraries).
IGNORED = Finding(id="", severity=Severity.INFO, link=Link.LIBRARIES, title="")


def error_finding(
    finding_id: str,
    link: Link,
    title: str,
    detail: str | Sequence[str],
    fix: Sequence[str],
    subject: str = "",
) -> Finding:
    """An error finding; a `detail` given as sentences is joined (empty ones dropped)."""
    text = detail if isinstance(detail, str) else " ".join(part for part in detail if part)
    return Finding(
        id=finding_id,
        severity=Severity.ERROR,
        link=link,
        title=title,
        detail=text,
        fix=tuple(fix),
        subject=subject,
    )


_STEP_WORDS = {
    "import": "importing TensorFlow",
    "build_info": "reading TensorFlow's build information",
    "gpus": "finding and setting up the GPUs",
    "devices": "finding and setting up the GPUs",
    "matmul": "a matrix multiplication on the GPU",
    "matmul_gpu": "a matrix multiplication on the GPU",
    "cpu_matmul": "a matrix multiplication on the CPU",
    "train": "a Keras training step",
    "keras_step": "a Keras training step",
    "memory": "reading GPU memory statistics",
    "libraries": "listing the loaded libraries",
}


def step_text(step: str | None) -> str:
    if not step:
        return "before it reported any step"
    words = _STEP_WORDS.get(step)
    return f"in step '{step}' ({words})" if words else f"in step '{step}'"


def tail_lines(stderr: str, n: int = 20) -> str:
    """The last `n` lines of `stderr`, verbatim (trailing blank lines dropped)."""
    lines = stderr.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines[-n:]) if n > 0 else ""


def sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?", ")")) else text + "."


def _file_text(found: LibraryFile) -> str:
    facts = [f"version {found.version}"] if found.version else []
    if found.via:
        facts.append(f"via {found.via}")
    return f"{found.path} ({', '.join(facts)})" if facts else found.path


def describe_resolution(res: LibraryResolution | None, name: str) -> str:
    if res is None:
        return ""
    if res.resolved is None:
        text = f"The monitor's loader check finds no {name} for this interpreter either"
        if res.candidates:
            text += "; other copies on this machine: " + ", ".join(
                _file_text(c) for c in res.candidates[:3]
            )
        if res.on_path_only:
            text += (
                f"; {res.on_path_only.path} is on PATH, but Python 3.8+ does not search PATH "
                "for the DLLs of extension modules"
            )
        return text + "."
    return f"The loader would pick {_file_text(res.resolved)} for {name}."
