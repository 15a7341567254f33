"""macOS autostart: a LaunchAgent in ~/Library/LaunchAgents, loaded into the gui/<uid> domain.

The plist is written with plistlib; an XML comment before <plist> is the marker (plistlib and
launchd ignore comments). KeepAlive restarts the monitor only when it exits unsuccessfully,
so quitting from the tray stays quit. `disable` removes the file but does not boot the job
out: the process asking may be the tray that launchd started, and it should not kill itself.
launchctl is only run on macOS; elsewhere its command lines are built and can be inspected.
"""

from __future__ import annotations

import os
import plistlib
import re
import subprocess
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from xml.parsers.expat import ExpatError

from monitor.autostart import (
    NAME,
    AutostartStatus,
    Exists,
    entry_problems,
    refused,
    run_tool,
    write_if_changed,
)

LABEL = "com.github.tf-stack-monitor"
MARKER = (
    f"<!-- Written by `{NAME} autostart enable`; `{NAME} autostart disable` removes it. "
    "X-TF-Stack-Monitor-Autostart -->"
).encode()


def render_launch_agent(argv: Sequence[str], log_path: str) -> bytes:
    document = {
        "Label": LABEL,
        "ProgramArguments": list(argv),
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "ProcessType": "Interactive",
        "LimitLoadToSessionType": "Aqua",
        "EnvironmentVariables": {"PYTHONUNBUFFERED": "1"},
        "StandardOutPath": log_path,
        "StandardErrorPath": log_path,
    }
    data = plistlib.dumps(document, sort_keys=False)
    return data.replace(b"<plist ", MARKER + b"\n<plist ", 1)


def bootstrap_argv(uid: int, plist: str, launchctl: str = "launchctl") -> list[str]:
    """Load the agent now (it starts at once: RunAtLoad)."""
    return [launchctl, "bootstrap", f"gui/{uid}", plist]


def bootout_argv(uid: int, launchctl: str = "launchctl") -> list[str]:
    return [launchctl, "bootout", f"gui/{uid}/{LABEL}"]


def print_argv(uid: int, launchctl: str = "launchctl") -> list[str]:
    """Exit status 0 when the job is loaded."""
    return [launchctl, "print", f"gui/{uid}/{LABEL}"]


def print_disabled_argv(uid: int, launchctl: str = "launchctl") -> list[str]:
    return [launchctl, "print-disabled", f"gui/{uid}"]


def enable_argv(uid: int, launchctl: str = "launchctl") -> list[str]:
    """Clear a `launchctl disable` override, which beats the plist."""
    return [launchctl, "enable", f"gui/{uid}/{LABEL}"]


def override_disabled(print_disabled_output: str) -> bool:
    """`"label" => disabled` (macOS 11+) or `=> true` (older) in `launchctl print-disabled`."""
    pattern = rf'^\s*"{re.escape(LABEL)}"\s*=>\s*(disabled|true)\s*$'
    return re.search(pattern, print_disabled_output, re.MULTILINE) is not None


class LaunchAgentAutostart:
    method = "launchagent"

    def __init__(
        self,
        home: Path,
        command: Sequence[str],
        *,
        uid: int,
        launchctl: str | None = None,
        exists: Exists = os.path.exists,
    ):
        self.path = home / "Library" / "LaunchAgents" / f"{LABEL}.plist"
        self.log_path = str(home / "Library" / "Logs" / f"{NAME}-launchd.log")
        self.command = tuple(command)
        self.uid = uid
        self.launchctl = launchctl
        self.exists = exists

    def status(self) -> AutostartStatus:
        base = AutostartStatus(self.method, str(self.path))
        try:
            data = self.path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return base
        except OSError as exc:
            return replace(base, exists=True, problems=(f"cannot read it: {exc.strerror}",))
        ours = MARKER in data
        try:
            document = plistlib.loads(data)
        except (plistlib.InvalidFileException, ExpatError, ValueError) as exc:
            return replace(base, exists=True, ours=ours, problems=(f"not a valid plist: {exc}",))
        arguments = document.get("ProgramArguments") if isinstance(document, dict) else None
        argv = tuple(arguments) if isinstance(arguments, list) else ()
        off = self._turned_off(document)
        more, notes = entry_problems(ours, argv, self.command, self.exists)
        problems = off + more
        if self.launchctl is not None:
            notes += ("loaded in launchd now",) if self._loaded() else ("loads at the next login",)
        return replace(
            base,
            enabled=not off,
            exists=True,
            ours=ours,
            points_to=argv,
            problems=problems,
            notes=notes,
        )

    def enable(self) -> AutostartStatus:
        current = self.status()
        if current.exists and not current.ours:
            return refused(current, "not enabled")
        changed = write_if_changed(self.path, render_launch_agent(self.command, self.log_path))
        failures: tuple[str, ...] = ()
        notes: tuple[str, ...] = ()
        if self.launchctl is not None:
            if self._overridden():
                failures += self._call(enable_argv(self.uid, self.launchctl))
                changed = True
            if not self._loaded():
                failures += self._call(bootstrap_argv(self.uid, str(self.path), self.launchctl))
            elif changed:
                notes = ("the loaded job keeps its old settings until the next login",)
        result = self.status()
        return replace(
            result,
            changed=changed,
            problems=result.problems + failures,
            notes=result.notes + notes,
        )

    def disable(self) -> AutostartStatus:
        current = self.status()
        if not current.exists:
            return current
        if not current.ours:
            return refused(current, "not removed")
        self.path.unlink()
        result = replace(self.status(), changed=True)
        if self.launchctl is not None and self._loaded():
            stop = " ".join(bootout_argv(self.uid))
            note = f"still loaded for this session; `{stop}` stops it now"
            result = replace(result, notes=(*result.notes, note))
        return result

    def _turned_off(self, document: object) -> tuple[str, ...]:
        """Why launchd will skip the agent: its Disabled key, or a `launchctl disable` override."""
        reasons: tuple[str, ...] = ()
        if isinstance(document, dict) and document.get("Disabled") is True:
            reasons += (f"turned off by its Disabled key; `{NAME} autostart enable` rewrites it",)
        if self.launchctl is not None and self._overridden():
            reasons += (
                f"turned off by `launchctl disable gui/{self.uid}/{LABEL}`; "
                f"`{NAME} autostart enable` turns it back on",
            )
        return reasons

    def _loaded(self) -> bool:
        result = self._run(print_argv(self.uid, self._tool()))
        return result is not None and result.returncode == 0

    def _overridden(self) -> bool:
        result = self._run(print_disabled_argv(self.uid, self._tool()))
        return result is not None and override_disabled(result.stdout)

    def _tool(self) -> str:
        return self.launchctl or "launchctl"

    def _run(self, argv: list[str]) -> subprocess.CompletedProcess[str] | None:
        return run_tool(argv) if self.launchctl is not None else None

    def _call(self, argv: list[str]) -> tuple[str, ...]:
        result = self._run(argv)
        if result is not None and result.returncode == 0:
            return ()
        detail = (result.stderr.strip() or f"exit {result.returncode}") if result else "not run"
        return (f"`{' '.join(argv)}` failed: {detail}",)
