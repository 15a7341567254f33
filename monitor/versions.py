"""Version strings as they appear in the wild, parsed without raising."""

from __future__ import annotations

import re

_NUMBERS = re.compile(r"(\d+(?:\.\d+)*)")

Version = tuple[int, ...]


def parse_version(text: str | None) -> Version | None:
    """The first dotted number in `text` as a tuple, or None.

    "535.104.05" -> (535, 104, 5); "V12.2.140" -> (12, 2, 140); "2.16.0rc1" -> (2, 16, 0);
    "" / None / "garbage" -> None.
    """
    if not text:
        return None
    match = _NUMBERS.search(str(text))
    if not match:
        return None
    return tuple(int(part) for part in match.group(1).split("."))


def major_minor(text: str | None) -> tuple[int, int] | None:
    """(major, minor) of a version string; a bare major gets minor 0."""
    parsed = parse_version(text)
    if not parsed:
        return None
    return parsed[0], parsed[1] if len(parsed) > 1 else 0


def format_version(version: Version) -> str:
    return ".".join(str(part) for part in version)


def at_least(actual: str | None, minimum: str | None) -> bool | None:
    """actual >= minimum, or None when either cannot be parsed."""
    a, m = parse_version(actual), parse_version(minimum)
    if a is None or m is None:
        return None
    width = max(len(a), len(m))
    return a + (0,) * (width - len(a)) >= m + (0,) * (width - len(m))
