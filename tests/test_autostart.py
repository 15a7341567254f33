"""Autostart: round trips in the private HOME, the files checked against their formats.

Linux variants run for real (files, symlinks, desktop-file-validate, systemd-analyze verify).
systemctl and launchctl are stood in for by small recording scripts, never the real user
manager. Windows runs against a dict-backed RunKey; macOS writes its plist and builds, but
does not run, its launchctl command lines.
"""

from __future__ import annotations

import os
import plistlib
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from monitor import autostart
from monitor.autostart import (
    AutostartStatus,
    default_method,
    format_status,
    methods_for,
    monitor_command,
)
from monitor.autostart_linux import (
    MARKER_KEY,
    SystemdUserAutostart,
    XdgAutostart,
    desktop_exec,
    parse_desktop_entry,
    parse_desktop_exec,
    parse_systemd_exec,
    parse_unit,
    render_desktop_entry,
    render_user_unit,
    systemd_exec,
)
from monitor.autostart_macos import (
    LABEL,
    MARKER,
    LaunchAgentAutostart,
    bootout_argv,
    bootstrap_argv,
    override_disabled,
    print_argv,
    render_launch_agent,
)
from monitor.autostart_windows import (
    APPROVED_KEY,
    RUN_KEY,
    WindowsRunAutostart,
    approved_says_disabled,
    is_our_command,
    parse_command_line,
    run_value,
    windows_command,
)

REPO = Path(__file__).resolve().parent.parent
SERVICE_INSTALL = REPO / "service_install"
TRICKY_ARGS = [
    "/home/ada/my venvs/tf 2.16/bin/tf-stack-monitor",
    "/opt/$HOME/100%/bin/tf-stack-monitor",
    "/srv/quote\"d/back\\slash/it's/tf-stack-monitor",
    "/plain/bin/tf-stack-monitor",
]


# --------------------------------------------------------------------------- stand-ins


@pytest.fixture(autouse=True)
def _no_user_manager(tmp_path, monkeypatch):
    """The front's real systemctl must not reach the developer's own user manager."""
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)


@pytest.fixture
def install(tmp_path):
    """A venv-like install: bin/python and an executable bin/tf-stack-monitor."""
    return make_install(tmp_path / "venv")


def make_install(root: Path) -> Path:
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True)
    for name in ("python", "tf-stack-monitor"):
        path = bin_dir / name
        path.write_text("#!/bin/sh\nexit 0\n")
        path.chmod(0o755)
    return bin_dir / "python"


class FakeTool:
    """An executable that logs its arguments and answers by substring: a real subprocess."""

    def __init__(self, directory: Path, name: str, answers: dict[str, tuple[str, int]]):
        self.path = directory / name
        self.log = directory / f"{name}.log"
        cases = "".join(
            f"  *'{key}'*) printf '%s\\n' '{out}'; exit {rc};;\n"
            for key, (out, rc) in answers.items()
        )
        self.path.write_text(
            f"#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{self.log}'\ncase \"$*\" in\n{cases}esac\n"
        )
        self.path.chmod(0o755)

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


class DictRunKey:
    """A registry key's values in a dict, counting writes."""

    def __init__(self, values: dict[str, str | bytes] | None = None):
        self.values: dict[str, str | bytes] = dict(values or {})
        self.writes = 0

    def get(self, name: str) -> str | bytes | None:
        return self.values.get(name)

    def set(self, name: str, value: str) -> None:
        self.values[name] = value
        self.writes += 1

    def delete(self, name: str) -> None:
        self.values.pop(name, None)
        self.writes += 1


def files_under(root: Path) -> dict[str, bytes]:
    """Every file and link under root with its content (links: their target)."""
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            found[str(path)] = os.readlink(path).encode()
        elif path.is_file():
            found[str(path)] = path.read_bytes()
    return found


def age(path: Path) -> int:
    """Backdate a file so that any rewrite shows in its mtime, whatever the clock granularity."""
    os.utime(path, ns=(10**18, 10**18), follow_symlinks=False)
    return path.lstat().st_mtime_ns


# --------------------------------------------------------------------------- choices


@pytest.mark.parametrize(
    ("platform", "env", "method"),
    [
        ("linux", {}, "systemd-user"),
        ("linux", {"DISPLAY": ":0"}, "xdg"),
        ("linux", {"WAYLAND_DISPLAY": "wayland-0"}, "xdg"),
        ("linux", {"XDG_CURRENT_DESKTOP": "GNOME"}, "xdg"),
        ("linux", {"DISPLAY": ""}, "systemd-user"),
        ("freebsd14", {"DISPLAY": ":0"}, "xdg"),
        ("win32", {}, "windows-run"),
        ("darwin", {"DISPLAY": ":0"}, "launchagent"),
    ],
)
def test_default_method_follows_the_session(platform, env, method):
    assert default_method(platform, env) == method
    assert method in methods_for(platform)


def test_command_is_the_script_beside_the_interpreter(install):
    script = str(install.parent / "tf-stack-monitor")
    assert monitor_command("xdg", str(install)) == (script, "run")
    assert monitor_command("launchagent", str(install)) == (script, "run")
    assert monitor_command("systemd-user", str(install)) == (script, "run", "--headless")


def test_command_falls_back_to_python_dash_m(install):
    (install.parent / "tf-stack-monitor").unlink()
    assert monitor_command("xdg", str(install)) == (str(install), "-m", "monitor", "run")


def test_windows_prefers_pythonw_so_no_console_opens():
    python = r"C:\Program Files\Python311\python.exe"
    pythonw = r"C:\Program Files\Python311\pythonw.exe"
    assert windows_command(python, {pythonw}.__contains__) == (pythonw, "-m", "monitor", "run")
    assert windows_command(python, set().__contains__) == (python, "-m", "monitor", "run")
    assert monitor_command("windows-run", python, {pythonw}.__contains__)[0] == pythonw


# --------------------------------------------------------------------------- XDG autostart


def xdg(home: Path, install: Path) -> XdgAutostart:
    return XdgAutostart(home / ".config", monitor_command("xdg", str(install)))


def test_xdg_enable_status_disable_round_trip(_private_home, install):
    before = files_under(_private_home)
    entry = xdg(_private_home, install)

    enabled = entry.enable()
    assert enabled.enabled and enabled.ours and enabled.changed and not enabled.problems
    assert enabled.points_to == (str(install.parent / "tf-stack-monitor"), "run")
    path = _private_home / ".config/autostart/tf-stack-monitor.desktop"
    assert enabled.location == str(path)
    fields = parse_desktop_entry(path.read_text())
    assert fields["Type"] == "Application"
    assert fields["X-GNOME-Autostart-enabled"] == "true"
    assert fields[MARKER_KEY] == "true"
    assert entry.status() == AutostartStatus(
        "xdg", str(path), enabled=True, exists=True, ours=True, points_to=enabled.points_to
    )

    disabled = entry.disable()
    assert disabled.changed and not disabled.exists and not disabled.enabled
    assert files_under(_private_home) == before
    assert entry.disable() == AutostartStatus("xdg", str(path))


def test_xdg_second_enable_changes_nothing(_private_home, install):
    entry = xdg(_private_home, install)
    entry.enable()
    path = Path(entry.status().location)
    content, mtime = path.read_bytes(), age(path)
    again = entry.enable()
    assert not again.changed and again.enabled
    assert path.read_bytes() == content and path.stat().st_mtime_ns == mtime


def test_xdg_leaves_a_foreign_file_of_the_same_name_alone(_private_home, install):
    path = _private_home / ".config/autostart/tf-stack-monitor.desktop"
    path.parent.mkdir(parents=True)
    mine = "[Desktop Entry]\nType=Application\nName=Mine\nExec=/usr/bin/my-own-wrapper --tray\n"
    path.write_text(mine)
    entry = xdg(_private_home, install)

    status = entry.status()
    assert status.exists and status.enabled and not status.ours
    assert status.points_to == ("/usr/bin/my-own-wrapper", "--tray")
    for result in (entry.disable(), entry.enable()):
        assert not result.changed
        assert "not written by tf-stack-monitor" in result.problems[-1]
        assert path.read_text() == mine


def test_xdg_status_tells_of_a_deleted_venv_and_enable_repoints_it(tmp_path, _private_home):
    old = make_install(tmp_path / "old")
    xdg(_private_home, old).enable()
    shutil.rmtree(tmp_path / "old")
    new = make_install(tmp_path / "new")
    entry = xdg(_private_home, new)

    stale = entry.status()
    assert stale.enabled and stale.ours
    assert stale.problems == (
        f"the autostart entry runs {old.parent / 'tf-stack-monitor'}, which no longer exists; "
        "`tf-stack-monitor autostart enable` points it at this installation",
    )
    fixed = entry.enable()
    assert fixed.changed and not fixed.problems
    assert fixed.points_to == (str(new.parent / "tf-stack-monitor"), "run")


def test_xdg_entry_of_another_live_install_is_a_note(tmp_path, _private_home):
    xdg(_private_home, make_install(tmp_path / "other")).enable()
    status = xdg(_private_home, make_install(tmp_path / "this")).status()
    assert status.enabled and not status.problems
    assert "not this installation" in status.notes[0]


@pytest.mark.parametrize("switch", ["Hidden=true", "X-GNOME-Autostart-enabled=false"])
def test_xdg_entry_turned_off_by_the_desktop_is_not_enabled(_private_home, install, switch):
    entry = xdg(_private_home, install)
    path = Path(entry.enable().location)
    key = switch.split("=")[0]
    text = "".join(
        f"{switch}\n" if line.startswith(f"{key}=") else line
        for line in path.read_text().splitlines(keepends=True)
    )
    path.write_text(text)
    off = entry.status()
    assert off.exists and off.ours and not off.enabled
    assert "turned off in the desktop's startup settings" in off.problems[0]
    back = entry.enable()
    assert back.enabled and back.changed and not back.problems


def test_xdg_unreadable_entry_is_a_problem_not_a_crash(_private_home, install):
    path = _private_home / ".config/autostart/tf-stack-monitor.desktop"
    path.mkdir(parents=True)  # a directory where the file should be (root reads anything)
    entry = xdg(_private_home, install)
    assert entry.status().problems[0].startswith("cannot read it:")
    assert entry.enable().problems and entry.disable().problems
    assert path.is_dir()


@pytest.mark.parametrize("program", TRICKY_ARGS)
def test_desktop_exec_quoting_round_trips(program):
    argv = (program, "run", "--flag=50%")
    assert parse_desktop_exec(desktop_exec(argv)) == argv


def test_desktop_exec_reads_field_codes_and_broken_quotes():
    assert parse_desktop_exec("app %U --x") == ("app", "--x")
    assert parse_desktop_exec('"/a b/app" run') == ("/a b/app", "run")
    assert parse_desktop_exec('"/a b/app run') == ()


desktop_file_validate = shutil.which("desktop-file-validate")


@pytest.mark.skipif(desktop_file_validate is None, reason="desktop-file-validate not installed")
@pytest.mark.parametrize("program", TRICKY_ARGS)
def test_desktop_entry_passes_desktop_file_validate(tmp_path, program):
    path = tmp_path / "tf-stack-monitor.desktop"
    path.write_text(render_desktop_entry((program, "run")))
    result = subprocess.run(
        [desktop_file_validate, str(path)], capture_output=True, text=True, timeout=30
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


# --------------------------------------------------------------------------- systemd user unit


def systemd_user(home: Path, install: Path, **kwargs) -> SystemdUserAutostart:
    kwargs.setdefault("systemctl", None)
    kwargs.setdefault("linger_dir", home / "linger")
    return SystemdUserAutostart(
        home / ".config", monitor_command("systemd-user", str(install)), user="ada", **kwargs
    )


def test_systemd_user_round_trip_without_a_user_manager(_private_home, install):
    before = files_under(_private_home)
    unit = systemd_user(_private_home, install)

    enabled = unit.enable()
    assert enabled.enabled and enabled.ours and enabled.changed and not enabled.problems
    assert "it starts at the next login" in enabled.notes[-1]
    assert "loginctl enable-linger ada" in enabled.notes[0]
    unit_path = _private_home / ".config/systemd/user/tf-stack-monitor.service"
    link = _private_home / ".config/systemd/user/default.target.wants/tf-stack-monitor.service"
    # exactly what `systemctl --user enable` makes: an absolute symlink to the unit file
    assert link.is_symlink() and os.readlink(link) == str(unit_path)
    service = parse_unit(unit_path.read_text())["Service"]
    assert service["Restart"] == "on-failure"
    assert parse_systemd_exec(service["ExecStart"]) == enabled.points_to
    assert enabled.points_to[1:] == ("run", "--headless")
    assert parse_unit(unit_path.read_text())["Install"] == {"WantedBy": "default.target"}

    disabled = unit.disable()
    assert disabled.changed and not disabled.exists and not disabled.enabled
    assert files_under(_private_home) == before


def test_systemd_user_second_enable_changes_nothing(_private_home, install):
    unit = systemd_user(_private_home, install)
    unit.enable()
    unit_path = Path(unit.status().location)
    link = unit_path.parent / "default.target.wants" / unit_path.name
    content, unit_mtime, link_mtime = unit_path.read_bytes(), age(unit_path), age(link)
    again = unit.enable()
    assert not again.changed and again.enabled
    assert unit_path.read_bytes() == content
    assert (unit_path.stat().st_mtime_ns, link.lstat().st_mtime_ns) == (unit_mtime, link_mtime)


def test_systemd_user_unit_without_its_link_is_not_enabled(_private_home, install):
    unit = systemd_user(_private_home, install)
    unit.enable()
    link = _private_home / ".config/systemd/user/default.target.wants/tf-stack-monitor.service"
    link.unlink()
    status = unit.status()
    assert status.exists and status.ours and not status.enabled
    assert status.problems == (f"installed but not enabled (no link {link})",)
    again = unit.enable()
    assert again.changed and again.enabled and link.is_symlink()


def test_systemd_user_with_linger_says_nothing_about_it(_private_home, install):
    (_private_home / "linger").mkdir()
    (_private_home / "linger" / "ada").touch()
    notes = systemd_user(_private_home, install).enable().notes
    assert not any("linger" in note for note in notes)


def test_systemd_user_leaves_a_foreign_unit_alone(_private_home, install):
    unit_path = _private_home / ".config/systemd/user/tf-stack-monitor.service"
    unit_path.parent.mkdir(parents=True)
    mine = "[Service]\nExecStart=/usr/local/bin/my-monitor\n"
    unit_path.write_text(mine)
    unit = systemd_user(_private_home, install)
    for result in (unit.enable(), unit.disable()):
        assert not result.ours and not result.changed
        assert "not written by tf-stack-monitor" in result.problems[-1]
    assert unit_path.read_text() == mine
    assert not (unit_path.parent / "default.target.wants").exists()


def test_systemd_user_with_a_user_manager_reloads_and_starts(tmp_path, _private_home, install):
    systemctl = FakeTool(tmp_path, "systemctl", {"is-active": ("active", 0)})
    unit = systemd_user(_private_home, install, systemctl=str(systemctl.path))
    enabled = unit.enable()
    assert enabled.enabled and not enabled.problems and "running now" in enabled.notes
    assert systemctl.calls() == [
        "--user show-environment",
        "--user daemon-reload",
        "--user restart tf-stack-monitor.service",
        "--user is-active tf-stack-monitor.service",
    ]

    systemctl.log.unlink()
    systemd_user(_private_home, install, systemctl=str(systemctl.path)).enable()
    assert "--user daemon-reload" not in systemctl.calls()
    assert "--user start tf-stack-monitor.service" in systemctl.calls()

    systemctl.log.unlink()
    systemd_user(_private_home, install, systemctl=str(systemctl.path)).disable()
    assert systemctl.calls()[-2:] == [
        "--user stop tf-stack-monitor.service",
        "--user daemon-reload",
    ]


def test_systemd_user_failed_service_is_a_problem(tmp_path, _private_home, install):
    systemctl = FakeTool(tmp_path, "systemctl", {"is-active": ("failed", 3), "restart": ("", 1)})
    result = systemd_user(_private_home, install, systemctl=str(systemctl.path)).enable()
    assert result.enabled  # linked: it will be started at login; but it does not run
    assert result.problems == (
        "the service failed: `journalctl --user -u tf-stack-monitor` says why",
        "`systemctl --user restart tf-stack-monitor.service` failed: exit 1",
    )


@pytest.mark.parametrize("program", TRICKY_ARGS)
def test_systemd_exec_quoting_round_trips(program):
    argv = (program, "run", "--headless")
    assert parse_systemd_exec(systemd_exec(argv)) == argv


systemd_analyze = shutil.which("systemd-analyze")


def verify_unit(path: Path, *, user: bool, runtime: Path) -> subprocess.CompletedProcess[str]:
    # A private runtime dir lets `--user verify` work where no user manager runs.
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
    argv = [systemd_analyze, *(["--user"] if user else []), "verify", str(path)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)


@pytest.mark.skipif(systemd_analyze is None, reason="systemd-analyze not installed")
@pytest.mark.parametrize("venv", ["venv", "my venvs/tf 2.16"])
def test_user_unit_passes_systemd_analyze_verify(tmp_path, venv):
    install = make_install(tmp_path / venv)
    path = tmp_path / "tf-stack-monitor.service"
    path.write_text(render_user_unit(monitor_command("systemd-user", str(install))))
    result = verify_unit(path, user=True, runtime=tmp_path / "runtime")
    assert (result.returncode, result.stderr) == (0, "")


@pytest.mark.skipif(systemd_analyze is None, reason="systemd-analyze not installed")
def test_system_wide_unit_passes_systemd_analyze_verify(tmp_path, install):
    text = (SERVICE_INSTALL / "tf-stack-monitor@.service").read_text()
    assert "User=%i" in text and "Restart=on-failure" in text
    path = tmp_path / "tf-stack-monitor@.service"
    path.write_text(text.replace("@EXECUTABLE@", str(install.parent / "tf-stack-monitor")))
    result = verify_unit(path, user=False, runtime=tmp_path / "runtime")
    assert (result.returncode, result.stderr) == (0, "")


@pytest.mark.skipif(systemd_analyze is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify_does_catch_a_missing_program(tmp_path):
    """The verify tests above mean something: a unit whose program is gone fails."""
    path = tmp_path / "tf-stack-monitor.service"
    path.write_text(render_user_unit(("/gone/venv/bin/tf-stack-monitor", "run", "--headless")))
    result = verify_unit(path, user=True, runtime=tmp_path / "runtime")
    assert result.returncode != 0 and "/gone/venv/bin/tf-stack-monitor" in result.stderr


# --------------------------------------------------------------------------- Windows Run value

PYTHONW = r"C:\Program Files\Python311\pythonw.exe"
PYTHON = r"C:\Program Files\Python311\python.exe"


def windows(run: DictRunKey, approved: DictRunKey | None = None, present=(PYTHONW, PYTHON)):
    command = windows_command(PYTHON, set(present).__contains__)
    return WindowsRunAutostart(run, approved, command, exists=set(present).__contains__)


def test_windows_run_value_round_trip():
    run, approved = DictRunKey(), DictRunKey()
    entry = windows(run, approved)
    enabled = entry.enable()
    assert run.values == {"tf-stack-monitor": f'"{PYTHONW}" -m monitor run'}
    assert enabled.enabled and enabled.ours and enabled.changed and not enabled.problems
    assert enabled.location == f"HKCU\\{RUN_KEY}, value tf-stack-monitor"
    assert enabled.points_to == (PYTHONW, "-m", "monitor", "run")

    writes = run.writes
    assert not entry.enable().changed and run.writes == writes

    disabled = entry.disable()
    assert disabled.changed and not disabled.exists and run.values == {}


def test_windows_without_pythonw_uses_python():
    run = DictRunKey()
    windows(run, present=(PYTHON,)).enable()
    assert run.values["tf-stack-monitor"] == f'"{PYTHON}" -m monitor run'


def test_windows_leaves_a_foreign_value_alone():
    run = DictRunKey({"tf-stack-monitor": r'"C:\Tools\watch.exe" --tray'})
    entry = windows(run)
    for result in (entry.enable(), entry.disable()):
        assert not result.ours and not result.changed
        assert "not written by tf-stack-monitor" in result.problems[-1]
    assert run.values == {"tf-stack-monitor": r'"C:\Tools\watch.exe" --tray'} and run.writes == 0


def test_windows_stale_value_and_task_manager_switch():
    old = r"C:\Users\ada\old venv\Scripts\pythonw.exe"
    run = DictRunKey({"tf-stack-monitor": f'"{old}" -m monitor run'})
    off = b"\x03\x00\x00\x00\xd4\x0d\x43\x8d\xc8\x3b\xd9\x01"
    approved = DictRunKey({"tf-stack-monitor": off})
    entry = windows(run, approved)

    status = entry.status()
    assert status.ours and not status.enabled
    assert "turned off in Task Manager's Startup tab" in status.problems[0]
    assert f"runs {old}, which no longer exists" in status.problems[1]

    fixed = entry.enable()
    assert fixed.enabled and fixed.changed and not fixed.problems
    assert approved.values == {} and run.values["tf-stack-monitor"] == f'"{PYTHONW}" -m monitor run'


@pytest.mark.parametrize(
    ("data", "off"),
    [(None, False), (b"\x02" + bytes(11), False), (b"\x03" + bytes(11), True), (b"", False)],
)
def test_startup_approved_flag(data, off):
    assert approved_says_disabled(data) is off


@pytest.mark.parametrize(
    "argv",
    [
        (PYTHONW, "-m", "monitor", "run"),
        (r"C:\p\app.exe", "a b", 'quo"te', "trail\\", r"back\\slash", ""),
        (r"C:\NoSpaces\tf-stack-monitor.exe", "run"),
    ],
)
def test_windows_command_line_round_trips(argv):
    assert parse_command_line(run_value(argv)) == argv


def test_windows_recognises_our_command_shapes():
    assert is_our_command((PYTHONW, "-m", "monitor", "run"))
    assert is_our_command((r"C:\v\Scripts\TF-STACK-MONITOR.EXE", "run"))
    assert not is_our_command((r"C:\Tools\watch.exe", "--tray"))
    assert not is_our_command(())
    assert parse_command_line(r"C:\NoQuotes\app.exe --x") == (r"C:\NoQuotes\app.exe", "--x")


def test_reg_file_holds_the_value_enable_writes():
    lines = (SERVICE_INSTALL / "windows" / "add-autostart.reg").read_bytes().split(b"\r\n")
    assert lines[0] == b"Windows Registry Editor Version 5.00"
    assert f"[HKEY_CURRENT_USER\\{RUN_KEY}]".encode() in lines
    line = next(line for line in lines if line.startswith(b'"tf-stack-monitor"='))
    data = line.partition(b"=")[2]
    value = data.decode("ascii")[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    argv = parse_command_line(value)
    assert value == run_value(argv) and is_our_command(argv) and argv[0].endswith("pythonw.exe")
    removal = (SERVICE_INSTALL / "windows" / "remove-autostart.reg").read_text()
    assert '"tf-stack-monitor"=-' in removal
    ps1 = (SERVICE_INSTALL / "windows" / "install-autostart.ps1").read_text()
    assert f"'{run_value(('{0}', '-m', 'monitor', 'run'))}' -f $pythonw" in ps1
    assert RUN_KEY in ps1 and APPROVED_KEY.startswith(RUN_KEY.rsplit("\\", 1)[0])


# --------------------------------------------------------------------------- macOS LaunchAgent


def launch_agent(home: Path, install: Path, **kwargs) -> LaunchAgentAutostart:
    command = monitor_command("launchagent", str(install))
    return LaunchAgentAutostart(home, command, uid=501, **kwargs)


def test_launch_agent_round_trip_and_plist_format(_private_home, install):
    before = files_under(_private_home)
    agent = launch_agent(_private_home, install)
    enabled = agent.enable()
    assert enabled.enabled and enabled.ours and enabled.changed and not enabled.problems
    path = _private_home / "Library/LaunchAgents/com.github.tf-stack-monitor.plist"
    data = path.read_bytes()
    assert MARKER in data
    document = plistlib.loads(data)
    assert document["Label"] == LABEL == "com.github.tf-stack-monitor"
    assert document["ProgramArguments"] == [str(install.parent / "tf-stack-monitor"), "run"]
    assert document["RunAtLoad"] is True
    assert document["KeepAlive"] == {"SuccessfulExit": False}
    log = str(_private_home / "Library/Logs/tf-stack-monitor-launchd.log")
    assert document["StandardOutPath"] == document["StandardErrorPath"] == log

    content, mtime = data, age(path)
    assert not agent.enable().changed
    assert (path.read_bytes(), path.stat().st_mtime_ns) == (content, mtime)

    assert agent.disable().changed and files_under(_private_home) == before


def test_launch_agent_leaves_a_foreign_plist_alone(_private_home, install):
    path = _private_home / "Library/LaunchAgents/com.github.tf-stack-monitor.plist"
    path.parent.mkdir(parents=True)
    mine = plistlib.dumps({"Label": LABEL, "ProgramArguments": ["/usr/local/bin/mine"]})
    path.write_bytes(mine)
    agent = launch_agent(_private_home, install)
    assert agent.status().points_to == ("/usr/local/bin/mine",)
    for result in (agent.enable(), agent.disable()):
        assert not result.ours and "not written by tf-stack-monitor" in result.problems[-1]
    assert path.read_bytes() == mine


def test_launch_agent_disabled_key_and_broken_plist(_private_home, install):
    agent = launch_agent(_private_home, install)
    path = Path(agent.enable().location)
    path.write_bytes(
        path.read_bytes().replace(
            b"<key>RunAtLoad</key>", b"<key>Disabled</key><true/><key>RunAtLoad</key>"
        )
    )
    assert not agent.status().enabled and "Disabled key" in agent.status().problems[0]
    assert agent.enable().enabled
    path.write_bytes(MARKER + b"<plist><dict><key>Label</")
    broken = agent.status()
    assert broken.ours and broken.problems[0].startswith("not a valid plist")


def test_launchctl_command_lines():
    plist = "/Users/ada/Library/LaunchAgents/com.github.tf-stack-monitor.plist"
    assert bootstrap_argv(501, plist) == ["launchctl", "bootstrap", "gui/501", plist]
    assert bootout_argv(501) == ["launchctl", "bootout", "gui/501/com.github.tf-stack-monitor"]
    assert print_argv(501) == ["launchctl", "print", "gui/501/com.github.tf-stack-monitor"]


@pytest.mark.parametrize(
    ("output", "off"),
    [
        ('disabled services = {\n\t"com.github.tf-stack-monitor" => disabled\n}\n', True),
        ('disabled services = {\n\t"com.github.tf-stack-monitor" => true\n}\n', True),
        ('disabled services = {\n\t"com.github.tf-stack-monitor" => enabled\n}\n', False),
        ('disabled services = {\n\t"com.github.tf-stack-monitor.x" => disabled\n}\n', False),
    ],
)
def test_launchctl_override_is_read(output, off):
    assert override_disabled(output) is off


def test_launch_agent_on_macos_bootstraps_when_not_loaded(tmp_path, _private_home, install):
    launchctl = FakeTool(
        tmp_path, "launchctl", {"print-disabled": ("", 0), "print gui/": ("", 113)}
    )
    agent = launch_agent(_private_home, install, launchctl=str(launchctl.path))
    result = agent.enable()
    assert f"bootstrap gui/501 {result.location}" in launchctl.calls()
    assert "enable gui/501/com.github.tf-stack-monitor" not in launchctl.calls()
    assert result.enabled and "loads at the next login" in result.notes


# --------------------------------------------------------------------------- the front


@pytest.fixture
def desktop_session(monkeypatch):
    if not sys.platform.startswith("linux"):
        pytest.skip("the front's Linux methods")
    monkeypatch.setenv("DISPLAY", ":99")


def test_front_enable_status_disable_in_a_desktop_session(desktop_session, _private_home):
    assert not autostart.status().exists
    enabled = autostart.enable()
    assert enabled.method == "xdg" and enabled.enabled and not enabled.problems
    assert enabled.points_to[-1] == "run"
    assert autostart.status() == replace(enabled, changed=False)
    assert autostart.disable().changed
    assert not autostart.status().exists and not autostart.disable().changed


def test_front_keeps_the_method_already_in_use(desktop_session, _private_home, monkeypatch):
    autostart.enable("systemd-user")
    assert autostart.enable().method == "systemd-user"  # not a second, xdg entry
    assert not (_private_home / ".config/autostart/tf-stack-monitor.desktop").exists()
    assert autostart.status().method == "systemd-user"
    assert autostart.disable().changed and not autostart.status().exists


def test_front_reports_an_entry_enabled_twice(desktop_session, _private_home):
    autostart.enable("xdg")
    autostart.enable("systemd-user")
    twice = autostart.status()
    assert twice.method == "xdg"
    assert "also enabled via systemd-user: the monitor would start twice" in twice.problems[-1]
    autostart.disable()
    assert files_under(_private_home / ".config") == {}


def test_front_turns_io_errors_into_problems(desktop_session, _private_home):
    (_private_home / ".config").mkdir(exist_ok=True)
    (_private_home / ".config/autostart").write_text("a file where a directory should be")
    result = autostart.enable("xdg")
    assert not result.enabled and result.problems[-1].startswith("cannot enable:")


def test_front_refuses_a_method_of_another_os(desktop_session):
    with pytest.raises(ValueError, match="not available on"):
        autostart.enable("launchagent")
    with pytest.raises(ValueError, match="unknown autostart method"):
        autostart.backend("cron")


def test_format_status_says_what_and_why():
    text = format_status(
        AutostartStatus(
            "xdg",
            "/h/.config/autostart/tf-stack-monitor.desktop",
            enabled=True,
            exists=True,
            ours=True,
            points_to=("/gone/bin/tf-stack-monitor", "run"),
            problems=(
                "the autostart entry runs /gone/bin/tf-stack-monitor, which no longer exists",
            ),
        )
    )
    assert text.splitlines() == [
        "autostart: enabled (xdg)",
        "  entry: /h/.config/autostart/tf-stack-monitor.desktop",
        "  runs: /gone/bin/tf-stack-monitor run",
        "  problem: the autostart entry runs /gone/bin/tf-stack-monitor, which no longer exists",
    ]


# --------------------------------------------------------------------------- service_install/


def test_service_install_templates_are_what_enable_writes():
    """The hand-install files and the code cannot drift apart."""
    assert (SERVICE_INSTALL / "tf-stack-monitor.desktop").read_text() == render_desktop_entry(
        ("@EXECUTABLE@", "run")
    )
    assert (SERVICE_INSTALL / "tf-stack-monitor.service").read_text() == render_user_unit(
        ("@EXECUTABLE@", "run", "--headless")
    )
    plist = SERVICE_INSTALL / "com.github.tf-stack-monitor.plist"
    log = "@HOME@/Library/Logs/tf-stack-monitor-launchd.log"
    assert plist.read_bytes() == render_launch_agent(("@EXECUTABLE@", "run"), log)
    assert plistlib.loads(plist.read_bytes())["Label"] == LABEL


def test_service_install_readme_names_every_file():
    readme = (SERVICE_INSTALL / "README.md").read_text()
    for path in sorted(SERVICE_INSTALL.rglob("*")):
        if path.is_file() and path.name != "README.md":
            assert path.name in readme, path
