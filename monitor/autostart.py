"""Start the monitor at login: `tf-stack-monitor autostart enable|disable|status`.

One front, one backend per OS (psutil style): `autostart_linux` (XDG autostart entry for a
desktop session, systemd user unit for a headless one), `autostart_windows` (the HKCU Run
value), `autostart_macos` (a LaunchAgent). Every entry we write carries a marker, so `disable`
removes exactly what `enable` wrote and never a file of the same name that someone else made.
`status` reads the entry back and says whether it will work: a stale entry (a deleted venv)
is reported, not hidden. Expected failures come back as `problems`, never as exceptions: the
tray calls these functions and must not crash.
"""

from __future__ import annotations

import getpass
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

NAME = "tf-stack-monitor"
METHODS = ("xdg", "systemd-user", "windows-run", "launchagent")
TOOL_TIMEOUT = 15.0

Exists = Callable[[str], bool]


@dataclass(frozen=True)
class AutostartStatus:
    """The truth about one autostart entry.

    `enabled`: it will start the monitor at the next login as things stand (a file the desktop
    was told to skip is not enabled). `ours`: the entry carries our marker; a foreign entry of
    the same name is reported but never changed. `points_to`: the command line it runs.
    `problems`: why it will not work, or why enable/disable refused. `notes`: worth knowing,
    not wrong. `changed`: enable/disable modified something (False for status and no-ops).
    """

    method: str
    location: str
    enabled: bool = False
    exists: bool = False
    ours: bool = False
    points_to: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    changed: bool = False


class Backend(Protocol):
    method: str

    def status(self) -> AutostartStatus: ...

    def enable(self) -> AutostartStatus: ...

    def disable(self) -> AutostartStatus: ...


# --------------------------------------------------------------------------- pure choices


def methods_for(platform: str) -> tuple[str, ...]:
    """The methods that make sense on `platform` (a `sys.platform` value), default first."""
    if platform == "win32":
        return ("windows-run",)
    if platform == "darwin":
        return ("launchagent",)
    return ("xdg", "systemd-user")


def default_method(platform: str, env: Mapping[str, str]) -> str:
    """A desktop session gets the tray (XDG autostart); a server gets a systemd user unit."""
    if platform in ("win32", "darwin"):
        return methods_for(platform)[0]
    desktop = ("XDG_CURRENT_DESKTOP", "DISPLAY", "WAYLAND_DISPLAY")
    return "xdg" if any(env.get(name) for name in desktop) else "systemd-user"


def monitor_command(
    method: str, executable: str, exists: Exists = os.path.exists
) -> tuple[str, ...]:
    """The command line an entry for `method` runs, for the interpreter `executable`.

    The installed `tf-stack-monitor` script beside the interpreter when there is one (a venv,
    pipx), else `python -m monitor`. Windows uses pythonw.exe so no console window opens.
    `executable` is not resolved: a venv's python is a symlink and resolving it leaves the venv.
    """
    if method == "windows-run":
        from monitor.autostart_windows import windows_command

        return windows_command(executable, exists)
    script = os.path.join(os.path.dirname(executable), NAME)
    base = (script,) if exists(script) else (executable, "-m", "monitor")
    return (*base, "run", "--headless") if method == "systemd-user" else (*base, "run")


def command_problems(
    argv: Sequence[str], expected: Sequence[str], exists: Exists = os.path.exists
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(problems, notes) about the command an existing entry runs."""
    if not argv:
        return (("the autostart entry has no command to run",), ())
    if not exists(argv[0]):
        return (
            (
                f"the autostart entry runs {argv[0]}, which no longer exists; "
                f"`{NAME} autostart enable` points it at this installation",
            ),
            (),
        )
    if tuple(argv) != tuple(expected):
        return (
            (),
            (
                f"the autostart entry runs `{' '.join(argv)}`, not this installation "
                f"(`{' '.join(expected)}`); `{NAME} autostart enable` points it here",
            ),
        )
    return ((), ())


def entry_problems(
    ours: bool, argv: Sequence[str], expected: Sequence[str], exists: Exists = os.path.exists
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(problems, notes) about an existing entry: its command if it is ours, else that it
    is left alone."""
    if ours:
        return command_problems(argv, expected, exists)
    return (), (f"not written by {NAME}: enable and disable leave it alone",)


# --------------------------------------------------------------------------- shared I/O


def config_home(env: Mapping[str, str]) -> Path:
    """$XDG_CONFIG_HOME when set to an absolute path (the spec ignores relative ones)."""
    value = env.get("XDG_CONFIG_HOME", "")
    if value and os.path.isabs(value):
        return Path(value)
    return home_dir(env) / ".config"


def home_dir(env: Mapping[str, str]) -> Path:
    return Path(env.get("HOME") or os.path.expanduser("~"))


def write_if_changed(path: Path, data: bytes) -> bool:
    """Write atomically unless the file already holds `data`: a repeated enable touches nothing."""
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return True


def run_tool(argv: Sequence[str]) -> subprocess.CompletedProcess[str] | None:
    """Run systemctl/launchctl; None when it cannot be run at all (missing, hung)."""
    try:
        return subprocess.run(
            list(argv), capture_output=True, text=True, timeout=TOOL_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None


def not_ours_problem(location: str, action: str) -> str:
    return (
        f"{location} exists but was not written by {NAME} (no marker); {action}: left alone. "
        "Rename or remove it yourself if it should go"
    )


def refused(current: AutostartStatus, action: str) -> AutostartStatus:
    """`current` with the reason a foreign entry was left alone."""
    refusal = not_ours_problem(current.location, action)
    return replace(current, problems=(*current.problems, refusal))


# --------------------------------------------------------------------------- the front


def backend(
    method: str,
    *,
    platform: str = sys.platform,
    env: Mapping[str, str] | None = None,
    executable: str = sys.executable,
) -> Backend:
    """The backend for `method` on this machine, with real paths and tools."""
    if method not in METHODS:
        raise ValueError(f"unknown autostart method {method!r}; choose from {', '.join(METHODS)}")
    env = os.environ if env is None else env
    command = monitor_command(method, executable)
    if method == "xdg":
        from monitor.autostart_linux import XdgAutostart

        return XdgAutostart(config_home(env), command)
    if method == "systemd-user":
        from monitor.autostart_linux import SystemdUserAutostart

        return SystemdUserAutostart(config_home(env), command, user=_user_name(env))
    if method == "launchagent":
        from monitor.autostart_macos import LaunchAgentAutostart

        launchctl = "launchctl" if platform == "darwin" else None
        return LaunchAgentAutostart(home_dir(env), command, uid=_uid(), launchctl=launchctl)
    from monitor.autostart_windows import WindowsRunAutostart, winreg_keys

    return WindowsRunAutostart(*winreg_keys(), command)


def status(method: str | None = None) -> AutostartStatus:
    """The entry for `method`; with None, whichever entry this user has (the default if none)."""
    if method is not None:
        return _checked(method).status()
    found = [s for s in (backend(m).status() for m in _local_methods()) if s.exists]
    if not found:
        return backend(_default()).status()
    # the entry that will run first: enabled before present, ours before foreign
    first, *others = sorted(found, key=lambda s: (not s.enabled, not s.ours))
    twice = [s.method for s in others if s.enabled]
    if first.enabled and twice:
        problem = (
            f"also enabled via {', '.join(twice)}: the monitor would start twice; "
            f"`{NAME} autostart disable --method {twice[0]}` removes the extra one"
        )
        return replace(first, problems=(*first.problems, problem))
    return first


def enable(method: str | None = None) -> AutostartStatus:
    """Install the entry (idempotent; rewrites a stale one). None: keep an existing method."""
    if method is None:
        existing = [m for m in _local_methods() if backend(m).status().ours]
        method = existing[0] if existing else _default()
    return _guarded(_checked(method), "enable")


def disable(method: str | None = None) -> AutostartStatus:
    """Remove our entry; None removes ours from every method of this OS."""
    if method is not None:
        return _guarded(_checked(method), "disable")
    results = [_guarded(backend(m), "disable") for m in _local_methods()]
    troubled = [r for r in results if r.problems]
    done = [r for r in results if r.changed]
    result = (troubled or done or results)[0]
    return replace(result, changed=any(r.changed for r in results))


def format_status(s: AutostartStatus) -> str:
    """Human text for the CLI and the tray's tooltip."""
    state = "enabled" if s.enabled else ("present but not enabled" if s.exists else "disabled")
    lines = [f"autostart: {state} ({s.method})", f"  entry: {s.location}"]
    if s.points_to:
        lines.append(f"  runs: {' '.join(s.points_to)}")
    lines += [f"  problem: {p}" for p in s.problems]
    lines += [f"  note: {n}" for n in s.notes]
    return "\n".join(lines) + "\n"


def _local_methods() -> tuple[str, ...]:
    default = _default()
    return (default, *(m for m in methods_for(sys.platform) if m != default))


def _default() -> str:
    return default_method(sys.platform, os.environ)


def _checked(method: str) -> Backend:
    if method not in methods_for(sys.platform):
        raise ValueError(
            f"autostart method {method!r} is not available on {sys.platform}; "
            f"choose from {', '.join(methods_for(sys.platform))}"
        )
    return backend(method)


def _guarded(target: Backend, action: str) -> AutostartStatus:
    """Turn I/O errors (read-only home, a directory in the way) into a problem."""
    try:
        return target.enable() if action == "enable" else target.disable()
    except OSError as exc:
        current = target.status()
        reason = exc.strerror or str(exc)
        where = f" {exc.filename}" if exc.filename else ""
        return replace(current, problems=(*current.problems, f"cannot {action}:{where}: {reason}"))


def _user_name(env: Mapping[str, str]) -> str:
    return env.get("USER") or env.get("LOGNAME") or getpass.getuser()


def _uid() -> int:
    return os.getuid() if hasattr(os, "getuid") else 0
