"""The last good load test per interpreter and GPU, for the throughput comparison.

A small JSON file in the platformdirs state dir until the history database (issue 4) holds
load-test results. Unreadable or corrupt files count as "no previous run", never an error.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from monitor.model import LoadTestResult, from_jsonable, to_jsonable


def store_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_state_dir("tf-stack-monitor")) / "loadtest-last-good.json"


def _key(python: str, gpu_uuid: str) -> str:
    return f"{python}|{gpu_uuid}"


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def previous_good(
    python: str, gpu_uuid: str = "", path: Path | None = None
) -> LoadTestResult | None:
    """The last good run of `python` on that GPU (any GPU when the uuid is unknown)."""
    entries = _read(path or store_path())
    entry = entries.get(_key(python, gpu_uuid))
    if entry is None and not gpu_uuid:
        entry = next((v for k, v in entries.items() if k.startswith(f"{python}|")), None)
    try:
        return from_jsonable(LoadTestResult, entry) if isinstance(entry, dict) else None
    except (TypeError, ValueError, KeyError):
        return None


def remember(result: LoadTestResult, path: Path | None = None) -> str | None:
    """Keep `result` when it ran on a GPU; returns an error message instead of raising."""
    if not result.ok or result.gflops is None:
        return None
    path = path or store_path()
    entries = _read(path)
    entries[_key(result.python, result.gpu_uuid)] = to_jsonable(result)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(entries), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        return f"cannot save the load-test result to {path}: {exc.strerror or exc}"
    return None
