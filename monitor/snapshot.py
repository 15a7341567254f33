"""Support bundles: save a check's inventory and report as JSON, load one, redact one.

A snapshot is the `check --json` document plus `"kind": "tf-stack-monitor-snapshot"`, so
`check --snapshot FILE` can re-run today's rules on a machine we cannot reach.
"""

from __future__ import annotations

import json
import re
from typing import Any

from monitor.model import INVENTORY_SCHEMA, Inventory, from_jsonable

KIND = "tf-stack-monitor-snapshot"


class SnapshotError(Exception):
    """The file is not a snapshot we can read; the message says why."""


def snapshot_document(report_json: dict) -> dict:
    return {"kind": KIND, **report_json}


def load_inventory(text: str) -> Inventory:
    """The Inventory stored in a snapshot (or a plain `check --json` output)."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SnapshotError(f"not JSON: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("inventory"), dict):
        raise SnapshotError("no 'inventory' object: not a tf-stack-monitor snapshot")
    schema = document["inventory"].get("schema")
    if not isinstance(schema, int) or schema > INVENTORY_SCHEMA:
        raise SnapshotError(
            f"inventory schema {schema!r} is newer than this tf-stack-monitor understands; "
            "upgrade tf-stack-monitor"
        )
    try:
        return from_jsonable(Inventory, document["inventory"])
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise SnapshotError(f"malformed inventory: {exc}") from None


def redact(document: Any, user: str, home: str, hostname: str) -> Any:
    """Replace the user name, home path and host name in every string of `document`."""
    replacements: list[tuple[re.Pattern[str], str]] = []
    if home and home not in ("/", "\\"):
        replacements.append((re.compile(re.escape(home.rstrip("/\\")), re.IGNORECASE), "<home>"))
    if hostname:
        replacements.append((_word(hostname), "<host>"))
    if user:
        replacements.append((_word(user), "<user>"))

    def scrub(value: Any) -> Any:
        if isinstance(value, str):
            for pattern, token in replacements:
                value = pattern.sub(token, value)
            return value
        if isinstance(value, list):
            return [scrub(item) for item in value]
        if isinstance(value, dict):
            return {scrub(key): scrub(item) for key, item in value.items()}
        return value

    return scrub(document)


def _word(text: str) -> re.Pattern[str]:
    """`text` as a whole word: "ada" matches in /home/ada/x, not in "canada"."""
    return re.compile(
        r"(?<![A-Za-z0-9_.-])" + re.escape(text) + r"(?![A-Za-z0-9_-])", re.IGNORECASE
    )
