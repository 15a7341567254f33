"""Rules about the windows link (placeholder: filled in by its owner)."""

from __future__ import annotations

RULES: list = []
