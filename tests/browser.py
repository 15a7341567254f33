"""Headless Chromium for tests: render a local page to PNG, and read what it asked the network.

`render(page, png)` runs Debian's `chromium` once with a throwaway profile, a screenshot of the
viewport and a net log (`--log-net-log`), in its own process group that is killed afterwards.
`page_requests(netlog)` lists the URLs the page itself asked for (the browser's own background
fetches, which have no initiator, are left out); the local schemes are dropped with
`remote_only`. Chromium 150 on Debian 12: `--headless` is the new headless mode, which still
supports `--screenshot`; it waits for the load event before taking it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
LOCAL_SCHEMES = ("file:", "data:", "about:", "blob:", "chrome:", "chrome-extension:", "devtools:")
# Flags that keep the browser's own traffic down (update checks, sync, first-run pages).
QUIET_FLAGS = (
    "--headless",
    "--no-sandbox",  # we run as root in CI containers
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
)


def find_chromium() -> str | None:
    """The browser to use: $CHROMIUM, else the first of CHROMIUM_NAMES on PATH."""
    chosen = os.environ.get("CHROMIUM")
    if chosen:
        return chosen if shutil.which(chosen) else None
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


@dataclass(frozen=True)
class Rendered:
    png: Path
    netlog: Path
    returncode: int
    output: str


def render(
    page: Path,
    png: Path,
    *,
    width: int = 1280,
    height: int = 2000,
    dark: bool = False,
    timeout: float = 90.0,
    chromium: str | None = None,
) -> Rendered:
    """Screenshot `page` (a local file) into `png`; the net log lands beside the PNG.

    Raises RuntimeError when Chromium is missing, times out or writes no PNG.
    """
    binary = chromium or find_chromium()
    if binary is None:
        raise RuntimeError("chromium not found")
    netlog = png.with_suffix(".netlog.json")
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        args = [
            binary,
            *QUIET_FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            f"--screenshot={png}",
            f"--log-net-log={netlog}",
            *(["--force-dark-mode"] if dark else []),
            page.resolve().as_uri(),
        ]
        returncode, output = _run(args, timeout)
    if not png.is_file() or png.stat().st_size == 0:
        raise RuntimeError(f"chromium wrote no screenshot (exit {returncode}):\n{output[-3000:]}")
    return Rendered(png=png, netlog=netlog, returncode=returncode, output=output)


def dump_dom(page: Path, timeout: float = 90.0, chromium: str | None = None) -> str:
    """The page's DOM after its scripts ran (`--dump-dom`), as HTML text."""
    binary = chromium or find_chromium()
    if binary is None:
        raise RuntimeError("chromium not found")
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        args = [binary, *QUIET_FLAGS, f"--user-data-dir={profile}", "--dump-dom"]
        returncode, output = _run([*args, page.resolve().as_uri()], timeout, merge=False)
    if returncode != 0 or "<html" not in output:
        raise RuntimeError(f"chromium dumped no DOM (exit {returncode})")
    return output


def _run(args: list[str], timeout: float, merge: bool = True) -> tuple[int, str]:
    """Run Chromium in a new session and kill the whole group after (it leaves helpers)."""
    env = {**os.environ, "NO_AT_BRIDGE": "1", "GSETTINGS_BACKEND": "memory"}
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merge else subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        _kill_group(proc.pid)
        proc.communicate()
        raise RuntimeError(f"chromium did not finish within {timeout:.0f} s") from exc
    finally:
        _kill_group(proc.pid)
    return proc.returncode, output.decode("utf-8", "replace")


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


# --------------------------------------------------------------------------- the net log


@dataclass(frozen=True)
class Request:
    """One URL request from the net log.

    initiator: the origin that asked: "null" for a file:// page (an opaque origin), "not an
    origin" for the browser's own requests. isolation_key: the network isolation key, which
    starts with the top frame's site: "file://" for everything a local page loads.
    """

    url: str
    initiator: str
    isolation_key: str

    @property
    def from_page(self) -> bool:
        return (
            self.isolation_key.startswith("file://")
            or self.initiator == "null"
            or self.initiator.startswith("file://")
        )


def load_netlog(path: Path) -> dict:
    """The net log as JSON; a log cut short (browser killed) is closed so it still parses."""
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        trimmed = text.rstrip().rstrip(",")
        return json.loads(trimmed + ("]}" if '"events"' in trimmed else "}"))


def requests(netlog: Path) -> list[Request]:
    """Every URL request that started (URL_REQUEST_START_JOB events), in order."""
    log = load_netlog(netlog)
    types = {number: name for name, number in log["constants"]["logEventTypes"].items()}
    found = []
    for event in log.get("events", ()):
        params = event.get("params") or {}
        if types.get(event.get("type")) == "URL_REQUEST_START_JOB" and "url" in params:
            found.append(
                Request(
                    url=str(params["url"]),
                    initiator=str(params.get("initiator", "")),
                    isolation_key=str(params.get("network_isolation_key", "")),
                )
            )
    return found


def page_requests(netlog: Path) -> list[str]:
    """The URLs the page asked for (browser background traffic left out)."""
    return [r.url for r in requests(netlog) if r.from_page]


def remote_only(urls: Iterable[str]) -> list[str]:
    """The URLs that would leave the machine (not file:, data:, about:...)."""
    return [u for u in urls if not u.lower().startswith(LOCAL_SCHEMES)]
