"""Rules about the environment link (placeholder: filled in by its owner)."""

from __future__ import annotations

RULES: list = []
