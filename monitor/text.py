"""Small wording helpers shared by the text, HTML and status renderers."""

from __future__ import annotations


def plural(count: int, word: str) -> str:
    """ "1 error", "2 errors", "0 warnings"."""
    return f"{count} {word}" + ("" if count == 1 else "s")
