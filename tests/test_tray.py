"""The tray: backend choice from desktop facts, the menu model and its actions, headless
mode, and the real icon in a real tray host (trayer under Xvfb): its pixels in the tray, a
click, the GTK menu driven with the keyboard as a user would.

The real tray runs in a child process (this file run as a script, `_child`): GTK binds to the
first display it opens and ends its process when that display goes away, so it must not live
in the test process, whose Xvfb comes and goes with each test.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from xdesktop import Desktop, Rect, count_colour, desktop_fixture, wait_until  # noqa: F401

from monitor.model import MonitorState
from monitor.tray import (
    BUSY_DISABLED,
    TOOLTIP_MAX,
    BackendChoice,
    DesktopFacts,
    MenuEntry,
    Tray,
    TrayActions,
    TrayView,
    choose_backend,
    gi_backends,
    icon_path,
    menu_entries,
    probe_desktop,
    session_bus_address,
    tooltip_text,
)

HERE = Path(__file__).resolve()
# The fill colours drawn by icons/make_icons.py: what a screenshot of each state contains.
GREEN = (46, 164, 78)
AMBER = (247, 183, 0)
WHITE = (255, 255, 255)  # the GTK (Adwaita) menu background


class Recorder:
    """Real callbacks that note what was called (in `calls`, and in `log` if given, for a
    child process to report); the autostart state is a real file under tmp."""

    def __init__(self, flag: Path, log: Path | None = None) -> None:
        self.calls: list[str] = []
        self.flag = flag
        self.log = log

    def note(self, name: str) -> None:
        self.calls.append(name)
        if self.log:
            with self.log.open("a") as out:
                out.write(name + "\n")

    def set_autostart(self, on: bool) -> None:
        self.note(f"set_autostart {on}")
        if on:
            self.flag.touch()
        else:
            self.flag.unlink(missing_ok=True)

    def actions(self) -> TrayActions:
        return TrayActions(
            check_now=lambda: self.note("check_now"),
            run_gpu_test=lambda: self.note("run_gpu_test"),
            show_report=lambda: self.note("show_report"),
            what_changed=lambda: self.note("what_changed"),
            toggle_pause=lambda: self.note("toggle_pause"),
            autostart_enabled=self.flag.exists,
            set_autostart=self.set_autostart,
            open_log_folder=lambda: self.note("open_log_folder"),
            quit=lambda: self.note("quit"),
        )


@pytest.fixture
def recorder(tmp_path: Path) -> Recorder:
    return Recorder(tmp_path / "autostart-enabled")


HEADLESS = BackendChoice(None, "no display: DISPLAY and WAYLAND_DISPLAY are unset")
X11 = {"DISPLAY": ":0"}
WAYLAND = {"WAYLAND_DISPLAY": "wayland-0"}
GTK_BOTH = frozenset({"appindicator", "gtk"})


# --- choosing a backend -------------------------------------------------------------------


def linux(env: dict[str, str], available: frozenset[str] = GTK_BOTH, **facts: Any) -> DesktopFacts:
    return DesktopFacts("linux", env, available, **facts)


@pytest.mark.parametrize(
    ("facts", "backend", "reason"),
    [
        pytest.param(linux({}, session_bus=True), None, "no display", id="ssh-no-display"),
        pytest.param(
            linux(X11, xembed_host=True, session_bus=True),
            "gtk",
            "X tray via GTK; click shows the report",
            id="xfce-x-tray",
        ),
        pytest.param(
            linux(X11, xembed_host=True, sni_host=True, session_bus=True),
            "appindicator",
            "StatusNotifier",
            id="kde-x11-both-trays",
        ),
        pytest.param(
            linux(WAYLAND, sni_host=True, session_bus=True),
            "appindicator",
            "StatusNotifier",
            id="gnome-wayland-appindicator-extension",
        ),
        pytest.param(
            linux(X11, frozenset(), xembed_host=True),
            None,
            "PyGObject is missing: pip install 'tf-stack-monitor[desktop]'",
            id="x-tray-without-pygobject",
        ),
        pytest.param(
            linux(X11, xembed_host=True, session_bus=False),
            None,
            "no D-Bus session bus",
            id="x-tray-without-session-bus",
        ),
        pytest.param(
            linux(WAYLAND, frozenset({"gtk"}), sni_host=True, session_bus=True),
            None,
            "apt-get install gir1.2-ayatanaappindicator3-0.1",
            id="kde-wayland-without-appindicator-typelib",
        ),
        pytest.param(
            linux(X11, session_bus=True),
            None,
            "no tray host",
            id="gnome-x11-without-extension",
        ),
        pytest.param(
            linux(X11, x_error='Can\'t connect to display ":0"'),
            None,
            "cannot open the X display",
            id="stale-display-variable",
        ),
        pytest.param(
            DesktopFacts("win32", {}, frozenset({"win32"})),
            "win32",
            "notification area",
            id="windows",
        ),
        pytest.param(
            DesktopFacts("darwin", {}, frozenset({"darwin"})),
            "darwin",
            "main thread",
            id="macos",
        ),
        pytest.param(
            DesktopFacts("darwin", {}, frozenset()),
            None,
            "darwin backend cannot be loaded",
            id="macos-without-pyobjc",
        ),
        pytest.param(
            linux({**X11, "PYSTRAY_BACKEND": "appindicator"}, xembed_host=True, session_bus=True),
            "appindicator",
            "PYSTRAY_BACKEND=appindicator is set",
            id="user-forces-appindicator",
        ),
        pytest.param(
            linux({**X11, "PYSTRAY_BACKEND": "gtk"}, xembed_host=True, session_bus=False),
            None,
            "cannot show our menu",
            id="user-forces-gtk-without-session-bus",
        ),
        pytest.param(
            linux({**X11, "PYSTRAY_BACKEND": "xorg"}, xembed_host=True, session_bus=True),
            None,
            "cannot show our menu",
            id="user-forces-xorg-which-has-no-menu",
        ),
    ],
)
def test_choose_backend(facts: DesktopFacts, backend: str | None, reason: str) -> None:
    choice = choose_backend(facts)
    assert choice.backend == backend
    assert reason in choice.reason


def test_session_bus_address_follows_libdbus_lookup(tmp_path: Path) -> None:
    assert session_bus_address({"DBUS_SESSION_BUS_ADDRESS": "unix:path=/x"}) == "unix:path=/x"
    assert session_bus_address({"XDG_RUNTIME_DIR": str(tmp_path)}) == ""
    (tmp_path / "bus").touch()
    assert session_bus_address({"XDG_RUNTIME_DIR": str(tmp_path)}) == f"unix:path={tmp_path}/bus"


def test_probe_without_display_says_headless() -> None:
    facts = probe_desktop("linux", {"PATH": "/usr/bin"})
    assert not facts.xembed_host and not facts.session_bus
    assert choose_backend(facts) == HEADLESS


# --- tooltip and menu model --------------------------------------------------------------


def test_tooltip_gives_the_verdict_and_the_time_of_the_last_check() -> None:
    now = datetime(2024, 5, 2, 15, 0)
    line = "Broken: libcudnn.so.8 not found"
    assert tooltip_text(line, datetime(2024, 5, 2, 14, 32), now) == f"{line} (checked 14:32)"
    assert tooltip_text(line, datetime(2024, 5, 1, 9, 5), now).endswith("2024-05-01 09:05)")
    assert tooltip_text(line, None, now) == f"{line} (not checked yet)"


def test_tooltip_is_one_line_short_enough_for_windows() -> None:
    text = tooltip_text("Warnings:\n" + "x " * 200, None, datetime(2024, 5, 2))
    assert "\n" not in text
    assert len(text) == TOOLTIP_MAX and text.endswith("\u2026")


def labels(entries: list[MenuEntry]) -> list[str]:
    return [e.label for e in entries]


def test_menu_lists_the_verdict_then_the_actions() -> None:
    view = TrayView(MonitorState.HEALTHY, "t", "Healthy: TF 2.16 sees 1 GPU", busy=False)
    entries = menu_entries(view, autostart=False)
    assert [e.label for e in entries if e.key != "separator"] == [
        "Healthy: TF 2.16 sees 1 GPU",
        "Check now",
        "Run GPU test",
        "Show report",
        "What changed",
        "Pause monitoring",
        "Start at login",
        "Open log folder",
        "Quit",
    ]
    assert all(e.enabled for e in entries if e.key != "separator")
    assert [e.key for e in entries if e.default] == ["show_report"]
    assert [e.checked for e in entries if e.key == "autostart"] == [False]


def test_menu_greys_out_check_actions_while_busy() -> None:
    view = TrayView(MonitorState.CHECKING, "t", "Checking\u2026", busy=True)
    disabled = {e.key for e in menu_entries(view, autostart=True) if not e.enabled}
    assert disabled == BUSY_DISABLED | {"separator"}


def test_menu_offers_resume_when_paused_and_shows_autostart_ticked() -> None:
    entries = menu_entries(TrayView(MonitorState.PAUSED, "t", "Paused", False), autostart=True)
    assert "Resume monitoring" in labels(entries) and "Pause monitoring" not in labels(entries)
    assert next(e for e in entries if e.key == "autostart").checked is True


# --- headless Tray: the menu actions and what they do --------------------------------------


def test_headless_tray_says_why_and_runs_nothing(recorder: Recorder, caplog) -> None:
    tray = Tray(recorder.actions(), choice=HEADLESS)
    caplog.set_level(logging.WARNING, logger="monitor.tray")
    tray.run()  # returns at once
    tray.run_detached()  # starts no thread (the leak guard would fail)
    tray.update(MonitorState.BROKEN, "Broken (checked 14:32)", "Broken: cuDNN missing", False)
    tray.stop()
    assert tray.backend is None
    assert tray.status_line == "tray: headless (no display: DISPLAY and WAYLAND_DISPLAY are unset)"
    assert "tray: headless" in caplog.text
    assert tray.view.state is MonitorState.BROKEN


def test_a_headless_tray_cannot_show_a_balloon_and_says_why(recorder: Recorder) -> None:
    from monitor.messages import Notification
    from monitor.notify import NotifyError, TrayNotifier

    tray = Tray(recorder.actions(), choice=HEADLESS)
    with pytest.raises(RuntimeError, match=r"no tray notifications \(tray: headless"):
        tray.notify("body", "title")
    with pytest.raises(NotifyError, match="the tray icon could not show it"):
        TrayNotifier(tray.notify).show(Notification("TensorFlow GPU stack broken", "x"))


def test_menu_actions_call_their_callbacks(recorder: Recorder) -> None:
    tray = Tray(recorder.actions(), choice=HEADLESS)
    tray.update(MonitorState.HEALTHY, "Healthy", "Healthy", busy=False)
    for key in ("verdict", "check_now", "run_gpu_test", "show_report", "what_changed"):
        tray.activate(key)
    for key in ("toggle_pause", "open_log_folder", "quit"):
        tray.activate(key)
    assert recorder.calls == [
        "show_report",  # the verdict line opens the report
        "check_now",
        "run_gpu_test",
        "show_report",
        "what_changed",
        "toggle_pause",
        "open_log_folder",
        "quit",
    ]


def test_busy_tray_ignores_greyed_entries(recorder: Recorder) -> None:
    tray = Tray(recorder.actions(), choice=HEADLESS)
    tray.update(MonitorState.CHECKING, "Checking", "Checking\u2026", busy=True)
    for key in ("check_now", "run_gpu_test", "toggle_pause", "show_report"):
        tray.activate(key)
    assert recorder.calls == ["show_report"]


def test_start_at_login_checkbox_follows_and_changes_the_autostart_state(
    recorder: Recorder,
) -> None:
    tray = Tray(recorder.actions(), choice=HEADLESS)

    def ticked() -> bool | None:
        return next(e.checked for e in tray.menu() if e.key == "autostart")

    assert ticked() is False
    tray.activate("autostart")
    assert recorder.flag.exists() and ticked() is True
    recorder.flag.unlink()  # changed elsewhere (`tf-stack-monitor autostart disable`)
    assert ticked() is False
    tray.activate("autostart")
    assert recorder.calls == ["set_autostart True", "set_autostart True"]


def test_a_failing_callback_is_logged_not_raised(recorder: Recorder, caplog) -> None:
    def broken() -> None:
        raise OSError("xdg-open: not found")

    tray = Tray(replace(recorder.actions(), open_log_folder=broken), choice=HEADLESS)
    tray.update(MonitorState.HEALTHY, "Healthy", "Healthy", busy=False)
    tray.activate("open_log_folder")
    assert "the 'open_log_folder' action failed" in caplog.text
    assert "xdg-open: not found" in caplog.text


def test_every_state_has_an_icon() -> None:
    for state in MonitorState:
        assert icon_path(state).is_file(), state


# --- the real icon in a real tray host -----------------------------------------------------


def icon_pixels(desktop: Desktop, colour: tuple[int, int, int], name: str) -> tuple[int, int]:
    """(pixels of `colour` inside the tray, pixels of it elsewhere on the screen)."""
    shot = desktop.screenshot(name)
    tray = desktop.tray()
    inside = count_colour(shot, tray, colour)
    return inside, count_colour(shot, Rect(0, 0, *shot.size), colour) - inside


needs_gtk = pytest.mark.skipif(
    "gtk" not in gi_backends(),
    reason="needs PyGObject and GTK 3 typelibs (pip install 'pygobject<3.51'; "
    "apt-get install gir1.2-gtk-3.0 libgirepository1.0-dev libcairo2-dev pkg-config)",
)


class TrayChild:
    """This file run as a script: a Tray in its own process, driven over stdin."""

    def __init__(self, env: dict[str, str], workdir: Path, desktop: Desktop | None = None):
        self.events = workdir / "events.txt"
        self.events.touch()
        self.stderr = workdir / "child-stderr.txt"
        self.desktop = desktop
        with self.stderr.open("w") as err:
            self.process = subprocess.Popen(
                [sys.executable, str(HERE), str(self.events)],
                env=env,
                stdin=subprocess.PIPE,
                stderr=err,
                text=True,
            )

    def lines(self) -> list[str]:
        return self.events.read_text().splitlines()

    def wait_for(self, line: str) -> None:
        wait_until(lambda: line in self.lines(), f"the child to report {line!r}: {self.lines()}")

    def send(self, state: MonitorState, verdict: str, busy: bool) -> None:
        command = {"state": state.value, "verdict": verdict, "busy": busy}
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def finish(self) -> int:
        if self.process.stdin:
            self.process.stdin.close()
        try:
            return self.process.wait(timeout=30)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()

    def open_menu(self, button: int = 3) -> Rect:
        """Click the icon and return the menu's rectangle once it is drawn."""
        desktop = self.desktop
        assert desktop is not None
        before = desktop.window_ids()
        desktop.click(*desktop.tray().centre, button=button)
        return wait_until(lambda: desktop.new_window(before, 100, 100), "the menu to open")

    def choose(self, downs: int) -> None:
        """Pick the menu's n-th sensitive entry with the keyboard (GTK skips greyed ones)."""
        assert self.desktop is not None
        self.desktop.keys(*(["Down"] * downs), "Return")

    def check_clean_exit(self) -> None:
        code = self.finish()
        assert code == 0, self.stderr.read_text()
        assert self.lines()[-1] == "stopped"
        assert "Traceback" not in self.stderr.read_text()


@needs_gtk
def test_gtk_tray_icon_click_and_menu(desktop: Desktop, tmp_path: Path) -> None:
    child = TrayChild(desktop.env, tmp_path, desktop)
    try:
        child.wait_for("status tray: gtk (X tray via GTK; click shows the report)")
        wait_until(lambda: icon_pixels(desktop, GREEN, "icon")[0] > 100, "the green icon")
        assert icon_pixels(desktop, GREEN, "icon")[1] == 0

        before = desktop.window_ids()
        desktop.hover(*desktop.tray().centre)
        wait_until(lambda: desktop.new_window(before, 100, 20), "the tooltip")
        desktop.screenshot("tooltip")

        desktop.click(*desktop.tray().centre)  # the default action
        child.wait_for("show_report")

        menu = child.open_menu()
        shot = desktop.screenshot("menu")
        assert count_colour(shot, menu, WHITE) > menu.width * menu.height // 2  # drawn
        child.choose(2)  # the verdict line, then "Check now"
        child.wait_for("check_now")

        child.send(MonitorState.CHECKING, "Checking\u2026", busy=True)
        child.wait_for("updated")
        child.open_menu()
        desktop.screenshot("menu-busy")
        child.choose(2)  # "Check now" and "Run GPU test" are greyed: lands on "Show report"
        wait_until(lambda: child.lines().count("show_report") == 2, "the second show_report")
        assert "run_gpu_test" not in child.lines()

        child.send(MonitorState.WARNINGS, "Warnings: 2 (cuDNN 8 shadows cuDNN 9)", busy=False)
        wait_until(lambda: child.lines().count("updated") == 2, "the second update")
        wait_until(lambda: icon_pixels(desktop, AMBER, "warnings")[0] > 50, "an amber icon")
        child.open_menu()
        child.choose(7)  # "Start at login"
        child.wait_for("set_autostart True")
        child.open_menu()
        desktop.screenshot("menu-autostart-on")
        child.choose(9)  # "Quit"
        child.wait_for("quit")
    finally:
        child.check_clean_exit()


@needs_gtk
def test_probe_finds_the_x_tray_and_the_session_bus(desktop: Desktop) -> None:
    facts = probe_desktop("linux", desktop.env)
    assert (facts.xembed_host, facts.session_bus, facts.sni_host) == (True, True, False)
    assert choose_backend(facts).backend == "gtk"


@needs_gtk
def test_probe_finds_a_status_notifier_host_on_the_bus(desktop: Desktop) -> None:
    from gi.repository import Gio, GLib

    flags = (
        Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT
        | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION
    )
    address = desktop.env["DBUS_SESSION_BUS_ADDRESS"]
    watcher = Gio.DBusConnection.new_for_address_sync(address, flags, None, None)
    try:
        watcher.call_sync(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "RequestName",
            GLib.Variant("(su)", ("org.kde.StatusNotifierWatcher", 0)),
            GLib.VariantType("(u)"),
            Gio.DBusCallFlags.NONE,
            5000,
            None,
        )
        facts = probe_desktop("linux", desktop.env)
    finally:
        watcher.close_sync(None)
    assert facts.sni_host
    expected = "appindicator" if "appindicator" in facts.available else None
    assert choose_backend(facts).backend == expected


needs_appindicator = pytest.mark.skipif(
    "appindicator" not in gi_backends(),
    reason="needs the AppIndicator typelib (apt-get install gir1.2-ayatanaappindicator3-0.1)",
)


@needs_appindicator
def test_appindicator_tray_shows_in_an_x_tray_and_opens_its_menu_on_click(
    desktop: Desktop, tmp_path: Path
) -> None:
    """With no StatusNotifier host, libayatana-appindicator falls back to the X tray."""
    child = TrayChild({**desktop.env, "PYSTRAY_BACKEND": "appindicator"}, tmp_path, desktop)
    try:
        child.wait_for("status tray: appindicator (PYSTRAY_BACKEND=appindicator is set)")
        wait_until(lambda: icon_pixels(desktop, GREEN, "icon")[0] > 100, "the green icon")
        child.open_menu(button=1)  # AppIndicator has no default action: a click opens the menu
        desktop.screenshot("menu")
        child.choose(1)  # the verdict line
        child.wait_for("show_report")
    finally:
        child.check_clean_exit()


@needs_gtk
def test_a_tray_that_cannot_start_runs_headless(desktop: Desktop, tmp_path: Path) -> None:
    env = {**desktop.env, "DISPLAY": ":9999", "PYSTRAY_BACKEND": "gtk"}  # no X server there
    child = TrayChild(env, tmp_path)
    try:
        wait_until(lambda: child.lines(), "the child to start")
        assert child.lines()[0].startswith("status tray: headless (the gtk tray could not start: ")
        child.send(MonitorState.BROKEN, "Broken: libcudnn.so.8 not found", busy=False)
        child.wait_for("updated")
    finally:
        child.check_clean_exit()


def _child(events: Path) -> None:
    """Run a Tray as the daemon would: calls reported to `events`, updates read from stdin."""
    recorder = Recorder(events.with_name("autostart-enabled"), log=events)
    tray = Tray(recorder.actions())
    verdict = "Healthy: TensorFlow 2.16 runs on 1 GPU"
    now = datetime.now()
    tray.update(MonitorState.HEALTHY, tooltip_text(verdict, now, now), verdict, busy=False)
    tray.run_detached()
    recorder.note(f"status {tray.status_line}")
    for line in sys.stdin:
        command = json.loads(line)
        verdict = command["verdict"]
        tooltip = tooltip_text(verdict, datetime.now(), datetime.now())
        tray.update(MonitorState(command["state"]), tooltip, verdict, command["busy"])
        recorder.note("updated")
    tray.stop()
    recorder.note("stopped")


if __name__ == "__main__":
    _child(Path(sys.argv[1]))
