"""Windows autostart: the `tf-stack-monitor` value under HKCU\\...\\CurrentVersion\\Run.

The registry sits behind `RunKey` (get/set/delete of one key's values) so the logic runs, and
is tested, anywhere; `winreg` is imported only inside `WinregKey`. The command is pythonw.exe
(no console window) `-m monitor run`. A Run value carries no marker, so ours is recognised by
its shape: an interpreter running `-m monitor run`, or the `tf-stack-monitor` script with `run`.
Task Manager's Startup tab does not touch the Run value: it flags it in StartupApproved\\Run,
which `status` reads so that an entry switched off there is not reported as enabled.
"""

from __future__ import annotations

import ntpath
import os
import re
import subprocess
from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol

from monitor.autostart import NAME, AutostartStatus, Exists, entry_problems, refused

RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"
APPROVED_KEY = r"Software\Microsoft\Windows\CurrentVersion\Explorer\StartupApproved\Run"
VALUE_NAME = NAME
_PROGRAM = re.compile(r'"([^"]*)"?|([^ \t]*)')


class RunKey(Protocol):
    """The values of one registry key."""

    def get(self, name: str) -> str | bytes | None: ...

    def set(self, name: str, value: str) -> None: ...

    def delete(self, name: str) -> None: ...


class WinregKey:
    """A key under HKEY_CURRENT_USER, through winreg (Windows only)."""

    def __init__(self, subkey: str):
        self.subkey = subkey

    def get(self, name: str) -> str | bytes | None:
        import winreg

        try:
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, self.subkey) as key:
                return winreg.QueryValueEx(key, name)[0]
        except FileNotFoundError:
            return None

    def set(self, name: str, value: str) -> None:
        import winreg

        access = winreg.KEY_SET_VALUE
        with winreg.CreateKeyEx(winreg.HKEY_CURRENT_USER, self.subkey, 0, access) as key:
            winreg.SetValueEx(key, name, 0, winreg.REG_SZ, value)

    def delete(self, name: str) -> None:
        import winreg

        try:
            access = winreg.KEY_SET_VALUE
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, self.subkey, 0, access) as key:
                winreg.DeleteValue(key, name)
        except FileNotFoundError:
            pass


def winreg_keys() -> tuple[RunKey, RunKey]:
    return WinregKey(RUN_KEY), WinregKey(APPROVED_KEY)


def windows_command(executable: str, exists: Exists = os.path.exists) -> tuple[str, ...]:
    """pythonw.exe beside `executable` when there is one, so no console window opens."""
    pythonw = ntpath.join(ntpath.dirname(executable), "pythonw.exe")
    return (pythonw if exists(pythonw) else executable, "-m", "monitor", "run")


def run_value(argv: Sequence[str]) -> str:
    """The Run value: the program always quoted (spaces in Program Files), the rest as CRT args."""
    return f'"{argv[0]}"' + "".join(" " + subprocess.list2cmdline([arg]) for arg in argv[1:])


def parse_command_line(line: str) -> tuple[str, ...]:
    """argv as CommandLineToArgvW splits it: the program name first, then the CRT rules."""
    match = _PROGRAM.match(line.lstrip())
    assert match is not None  # the pattern matches the empty string
    program = match.group(1) if match.group(1) is not None else match.group(2)
    return (program, *_crt_args(line.lstrip()[match.end() :])) if program else ()


def is_our_command(argv: Sequence[str]) -> bool:
    if tuple(argv[1:]) == ("-m", "monitor", "run"):
        return True
    script = ntpath.basename(argv[0]).lower() if argv else ""
    return script in (NAME, f"{NAME}.exe") and tuple(argv[1:]) == ("run",)


def approved_says_disabled(data: str | bytes | None) -> bool:
    """StartupApproved data: first byte 02 (or missing value) on, an odd first byte (03) off."""
    return isinstance(data, bytes) and bool(data) and data[0] & 1 == 1


def _crt_args(text: str) -> list[str]:
    args: list[str] = []
    current: list[str] = []
    quoted = started = False
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\":
            run = len(text[i:]) - len(text[i:].lstrip("\\"))
            if i + run < len(text) and text[i + run] == '"':
                current.append("\\" * (run // 2))
                if run % 2:
                    current.append('"')
                    i += run + 1
                else:
                    i += run
                continue
            current.append("\\" * run)
            i += run
            continue
        if char == '"':
            quoted, started = not quoted, True
        elif char in " \t" and not quoted:
            if started or current:
                args.append("".join(current))
            current, started = [], False
        else:
            current.append(char)
        i += 1
    if started or current:
        args.append("".join(current))
    return args


class WindowsRunAutostart:
    method = "windows-run"

    def __init__(
        self,
        run_key: RunKey,
        approved_key: RunKey | None,
        command: Sequence[str],
        exists: Exists = os.path.exists,
    ):
        self.run_key = run_key
        self.approved_key = approved_key
        self.command = tuple(command)
        self.exists = exists
        self.location = f"HKCU\\{RUN_KEY}, value {VALUE_NAME}"

    def status(self) -> AutostartStatus:
        base = AutostartStatus(self.method, self.location)
        value = self.run_key.get(VALUE_NAME)
        if value is None:
            return base
        argv = parse_command_line(value) if isinstance(value, str) else ()
        ours = is_our_command(argv)
        switched_off = self._switched_off()
        problems: tuple[str, ...] = ()
        if switched_off:
            problems = (
                "turned off in Task Manager's Startup tab (or Settings > Apps > Startup); "
                f"`{NAME} autostart enable` turns it back on",
            )
        more, notes = entry_problems(ours, argv, self.command, self.exists)
        problems += more
        return replace(
            base,
            enabled=not switched_off,
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
        wanted = run_value(self.command)
        changed = False
        if self.run_key.get(VALUE_NAME) != wanted:
            self.run_key.set(VALUE_NAME, wanted)
            changed = True
        if self._switched_off() and self.approved_key is not None:
            self.approved_key.delete(VALUE_NAME)  # a missing flag means "on"
            changed = True
        return replace(self.status(), changed=changed)

    def disable(self) -> AutostartStatus:
        current = self.status()
        if not current.exists:
            return current
        if not current.ours:
            return refused(current, "not removed")
        self.run_key.delete(VALUE_NAME)
        return replace(self.status(), changed=True)

    def _switched_off(self) -> bool:
        if self.approved_key is None:
            return False
        return approved_says_disabled(self.approved_key.get(VALUE_NAME))
