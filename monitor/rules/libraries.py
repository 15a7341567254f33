"""Rules about the libraries link (placeholder: filled in by its owner)."""

from __future__ import annotations

RULES: list = []
