"""Linux autostart: an XDG autostart entry (desktop) or a systemd user unit (headless).

Both files carry the key `X-TF-Stack-Monitor-Autostart=true` (desktop files and systemd both
ignore `X-` keys), which is how `disable` recognises what `enable` wrote.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Sequence
from dataclasses import replace
from functools import cached_property
from pathlib import Path

from monitor.autostart import (
    NAME,
    AutostartStatus,
    Exists,
    entry_problems,
    not_ours_problem,
    refused,
    run_tool,
    write_if_changed,
)

MARKER_KEY = "X-TF-Stack-Monitor-Autostart"
HEADER = f"# Written by `{NAME} autostart enable`; `{NAME} autostart disable` removes it.\n"
UNIT = f"{NAME}.service"
LINGER_DIR = Path("/var/lib/systemd/linger")

# --------------------------------------------------------------------------- desktop entry

# Desktop Entry Specification, "The Exec key": arguments holding these must be quoted.
_EXEC_RESERVED = frozenset(" \t\n\"'\\><~|&;$*?#()`")
_VALUE_ESCAPES = {"s": " ", "n": "\n", "t": "\t", "r": "\r", "\\": "\\"}
_FIELD_CODES = frozenset({"%f", "%F", "%u", "%U", "%i", "%c", "%k"})


def render_desktop_entry(argv: Sequence[str]) -> str:
    return (
        HEADER + "[Desktop Entry]\n"
        "Type=Application\n"
        "Name=TF Stack Monitor\n"
        "Comment=Watches the TensorFlow GPU stack and says what broke and how to fix it\n"
        f"Exec={desktop_exec(argv)}\n"
        "Icon=utilities-system-monitor\n"
        "Terminal=false\n"
        "Hidden=false\n"
        "X-GNOME-Autostart-enabled=true\n"
        f"{MARKER_KEY}=true\n"
    )


def desktop_exec(argv: Sequence[str]) -> str:
    """The Exec value for argv: quoted per the spec, then escaped as a string value."""
    line = " ".join(_quote_exec_arg(arg) for arg in argv)
    return line.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")


def parse_desktop_exec(value: str) -> tuple[str, ...]:
    """argv from an Exec value (field codes dropped); () when the quoting is broken."""
    line = re.sub(r"\\(.)", lambda m: _VALUE_ESCAPES.get(m.group(1), m.group(0)), value)
    args = _split_exec(line)
    if args is None:
        return ()
    return tuple(arg.replace("%%", "%") for arg in args if arg not in _FIELD_CODES)


def parse_desktop_entry(text: str) -> dict[str, str]:
    """The keys of the [Desktop Entry] group (the first of a duplicated key wins)."""
    entry: dict[str, str] = {}
    group = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            group = line[1:-1]
        elif group == "Desktop Entry" and "=" in line:
            key, value = line.split("=", 1)
            entry.setdefault(key.strip(), value.strip())
    return entry


def _quote_exec_arg(arg: str) -> str:
    arg = arg.replace("%", "%%")
    if arg and not _EXEC_RESERVED.intersection(arg):
        return arg
    return '"' + re.sub(r'(["`$\\])', r"\\\1", arg) + '"'


def _split_exec(line: str) -> list[str] | None:
    args: list[str] = []
    current: list[str] = []
    quoted = started = False
    chars = iter(line)
    for char in chars:
        if quoted:
            if char == "\\":
                following = next(chars, "")
                current.append(following if following in '"`$\\' else char + following)
            elif char == '"':
                quoted = False
            else:
                current.append(char)
        elif char == '"':
            quoted = started = True
        elif char in " \t":
            if started or current:
                args.append("".join(current))
            current, started = [], False
        else:
            current.append(char)
    if quoted:
        return None
    if started or current:
        args.append("".join(current))
    return args


class XdgAutostart:
    """~/.config/autostart/tf-stack-monitor.desktop: the desktop session starts the tray."""

    method = "xdg"

    def __init__(self, config_home: Path, command: Sequence[str], exists: Exists = os.path.exists):
        self.path = config_home / "autostart" / f"{NAME}.desktop"
        self.command = tuple(command)
        self.exists = exists

    def status(self) -> AutostartStatus:
        base = AutostartStatus(self.method, str(self.path))
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except (FileNotFoundError, NotADirectoryError):
            return base
        except OSError as exc:
            return replace(base, exists=True, problems=(f"cannot read it: {exc.strerror}",))
        entry = parse_desktop_entry(text)
        ours = entry.get(MARKER_KEY) == "true"
        argv = parse_desktop_exec(entry.get("Exec", ""))
        turned_off = (
            entry.get("Hidden") == "true" or entry.get("X-GNOME-Autostart-enabled") == "false"
        )
        problems: tuple[str, ...] = ()
        if turned_off:
            problems = (
                "turned off in the desktop's startup settings (Hidden=true or "
                f"X-GNOME-Autostart-enabled=false); `{NAME} autostart enable` turns it back on",
            )
        more, notes = entry_problems(ours, argv, self.command, self.exists)
        problems += more
        return replace(
            base,
            enabled=not turned_off,
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
        changed = write_if_changed(self.path, render_desktop_entry(self.command).encode())
        return replace(self.status(), changed=changed)

    def disable(self) -> AutostartStatus:
        current = self.status()
        if not current.exists:
            return current
        if not current.ours:
            return refused(current, "not removed")
        self.path.unlink()
        return replace(self.status(), changed=True)


# --------------------------------------------------------------------------- systemd user unit


def render_user_unit(argv: Sequence[str]) -> str:
    return (
        HEADER + "[Unit]\n"
        "Description=tf-stack-monitor: watches the TensorFlow GPU stack\n"
        f"{MARKER_KEY}=true\n"
        "\n"
        "[Service]\n"
        f"ExecStart={systemd_exec(argv)}\n"
        "Restart=on-failure\n"
        "RestartSec=10\n"
        "# 1: another monitor already runs; 2: a bad config. Restarting would not help.\n"
        "RestartPreventExitStatus=1 2\n"
        "Environment=PYTHONUNBUFFERED=1\n"
        "\n"
        "[Install]\n"
        "WantedBy=default.target\n"
    )


def systemd_exec(argv: Sequence[str]) -> str:
    """An ExecStart command line: `%` and `$` doubled, odd arguments double-quoted."""
    return " ".join(_quote_systemd_arg(arg) for arg in argv)


def parse_systemd_exec(value: str) -> tuple[str, ...]:
    """argv from an ExecStart value (prefixes like `-` dropped); () when unparsable."""
    try:
        args = shlex.split(value.lstrip("-@:+!"))
    except ValueError:
        return ()
    return tuple(arg.replace("%%", "%").replace("$$", "$") for arg in args)


def parse_unit(text: str) -> dict[str, dict[str, str]]:
    """Sections and keys of a unit file (the last assignment of a key wins, as in systemd)."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for raw in text.replace("\\\n", " ").splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
        elif current is not None and "=" in line:
            key, value = line.split("=", 1)
            current[key.strip()] = value.strip()
    return sections


def _quote_systemd_arg(arg: str) -> str:
    arg = arg.replace("%", "%%").replace("$", "$$")
    if arg and not any(char in arg for char in " \t\n\"'\\;"):
        return arg
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


class SystemdUserAutostart:
    """~/.config/systemd/user/tf-stack-monitor.service, enabled into default.target.

    The `default.target.wants` link is made here exactly as `systemctl --user enable` makes
    it, so the result is the same whether or not a user manager is reachable (in a container,
    over some SSH sessions); when one is, it is reloaded and the service started now.
    """

    method = "systemd-user"

    def __init__(
        self,
        config_home: Path,
        command: Sequence[str],
        *,
        user: str,
        systemctl: str | None = "systemctl",
        linger_dir: Path = LINGER_DIR,
        exists: Exists = os.path.exists,
    ):
        self.unit = config_home / "systemd" / "user" / UNIT
        self.link = self.unit.parent / "default.target.wants" / UNIT
        self.command = tuple(command)
        self.user = user
        self.systemctl = systemctl
        self.linger_dir = linger_dir
        self.exists = exists

    @cached_property
    def manager(self) -> bool:
        """A user manager answers (only asked when there is a systemctl to ask)."""
        result = self._systemctl("show-environment")
        return result is not None and result.returncode == 0

    def status(self) -> AutostartStatus:
        base = AutostartStatus(self.method, str(self.unit))
        try:
            text = self.unit.read_text(encoding="utf-8", errors="replace")
        except (FileNotFoundError, NotADirectoryError):
            return base
        except OSError as exc:
            return replace(base, exists=True, problems=(f"cannot read it: {exc.strerror}",))
        sections = parse_unit(text)
        ours = sections.get("Unit", {}).get(MARKER_KEY) == "true"
        argv = parse_systemd_exec(sections.get("Service", {}).get("ExecStart", ""))
        enabled = self._linked()
        problems, notes = entry_problems(ours, argv, self.command, self.exists)
        if not enabled:
            problems += (f"installed but not enabled (no link {self.link})",)
        else:
            more_problems, more_notes = self._runtime_state()
            problems += more_problems
            notes += more_notes
        return replace(
            base,
            enabled=enabled,
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
        if self.link.exists() and not self.link.is_symlink():
            refusal = not_ours_problem(str(self.link), "not enabled")
            return replace(current, problems=(*current.problems, refusal))
        wrote = write_if_changed(self.unit, render_user_unit(self.command).encode())
        linked = self._make_link()
        failures: tuple[str, ...] = ()
        if self.manager:
            if wrote or linked:
                failures += self._call("daemon-reload")
            failures += self._call("restart" if wrote else "start", UNIT)
        result = self.status()
        return replace(result, changed=wrote or linked, problems=result.problems + failures)

    def disable(self) -> AutostartStatus:
        current = self.status()
        if not current.exists:
            return current
        if not current.ours:
            return refused(current, "not removed")
        failures = self._call("stop", UNIT) if self.manager else ()
        if self._linked():
            self.link.unlink()
        self.unit.unlink()
        if self.manager:
            failures += self._call("daemon-reload")
        result = self.status()
        return replace(result, changed=True, problems=result.problems + failures)

    def _linked(self) -> bool:
        if not self.link.is_symlink():
            return False
        target = os.path.join(self.link.parent, os.readlink(self.link))
        return os.path.normpath(target) == os.path.normpath(self.unit)

    def _make_link(self) -> bool:
        if self._linked():
            return False
        if self.link.is_symlink():
            self.link.unlink()  # a link to an older unit path: `systemctl enable` replaces it too
        self.link.parent.mkdir(parents=True, exist_ok=True)
        self.link.symlink_to(self.unit)
        return True

    def _runtime_state(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        notes: tuple[str, ...] = ()
        if not (self.linger_dir / self.user).exists():
            notes += (
                "it starts when you log in and stops at your last logout; "
                f"`loginctl enable-linger {self.user}` starts it at boot instead",
            )
        if not self.manager:
            unreachable = "no systemd user manager reachable from here: it starts at the next login"
            return (), (*notes, unreachable)
        result = self._systemctl("is-active", UNIT)
        state = result.stdout.strip() if result is not None else "unknown"
        if state == "failed":
            return (
                (f"the service failed: `journalctl --user -u {NAME}` says why",),
                notes,
            )
        if state == "active":
            return (), (*notes, "running now")
        return (), (*notes, f"not running now ({state}); `systemctl --user start {NAME}` starts it")

    def _systemctl(self, *args: str) -> subprocess.CompletedProcess[str] | None:
        if self.systemctl is None:
            return None
        return run_tool([self.systemctl, "--user", *args])

    def _call(self, *args: str) -> tuple[str, ...]:
        result = self._systemctl(*args)
        if result is not None and result.returncode == 0:
            return ()
        detail = (result.stderr.strip() or f"exit {result.returncode}") if result else "not run"
        return (f"`systemctl --user {' '.join(args)}` failed: {detail}",)
