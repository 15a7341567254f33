"""The tray icon: the monitor's state as an icon, a one-line tooltip and a menu.

pystray draws the icon; which of its backends can show a menu depends on the desktop, so the
choice is made here from facts (`probe_desktop`, I/O) by a pure function (`choose_backend`):
AppIndicator where a StatusNotifier host runs (KDE, GNOME with the AppIndicator extension,
most Wayland panels), GTK where an X tray (XEmbed: XFCE, MATE, LXDE, Cinnamon, i3bar...)
runs, win32 on Windows, darwin on macOS. pystray's xorg backend is never chosen: it has no
menu, and from a second thread its python-xlib connection leaves requests unsent, so the
icon sometimes never docks and stopping it hangs. Where no tray can be shown (no display, no
tray host, PyGObject missing) the Tray runs headless and says why in `status_line`; nothing
raises. pystray and Pillow are imported only here, and lazily: with no DISPLAY,
`import pystray` raises Xlib's DisplayNameError.

Callbacks run on the tray's event thread: they must return quickly (queue work, don't do it).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from monitor.model import MonitorState

log = logging.getLogger(__name__)

APP_NAME = "tf-stack-monitor"
ICON_SIZE = 64  # the image handed to pystray; hosts scale it to their slot (HiDPI included)
TOOLTIP_MAX = 127  # Windows keeps 127 characters of a tray tooltip (NOTIFYICONDATAW.szTip)
STOP_TIMEOUT = 10.0
SNI_WATCHER = "org.kde.StatusNotifierWatcher"
ENV_KEYS = ("DISPLAY", "WAYLAND_DISPLAY", "PYSTRAY_BACKEND", "DBUS_SESSION_BUS_ADDRESS")
PYGOBJECT_HINT = "pip install 'tf-stack-monitor[desktop]', see the README"

# Entries that start or steer a check: greyed out while one runs.
BUSY_DISABLED = frozenset({"check_now", "run_gpu_test", "toggle_pause"})


class BackendChoice(NamedTuple):
    """A pystray backend name (None: headless) and why, in words for the log and `status`."""

    backend: str | None
    reason: str


@dataclass(frozen=True)
class DesktopFacts:
    """What this session offers a tray icon; `probe_desktop` gathers it, tests write it.

    env: the variables that matter (ENV_KEYS). available: pystray backends with a menu whose
    libraries are installed ("appindicator", "gtk", "win32", "darwin"). xembed_host: an X
    tray owns _NET_SYSTEM_TRAY_S<screen>. sni_host: a StatusNotifierWatcher is on the session
    bus. session_bus: a D-Bus session bus answers (pystray's GTK backends need one).
    x_error: why the X display could not be opened, if it could not.
    """

    platform: str
    env: Mapping[str, str] = field(default_factory=dict)
    available: frozenset[str] = frozenset()
    xembed_host: bool = False
    sni_host: bool = False
    session_bus: bool = False
    x_error: str = ""


def choose_backend(facts: DesktopFacts) -> BackendChoice:
    """The pystray backend that can show this desktop an icon with a menu, or None and why."""
    override = facts.env.get("PYSTRAY_BACKEND", "")
    if override:
        # pystray's GTK backends fail to start without a session bus (and hang on the way out)
        bus_ok = facts.session_bus or override in ("win32", "darwin")
        if override in facts.available and bus_ok:
            return BackendChoice(override, f"PYSTRAY_BACKEND={override} is set")
        return BackendChoice(
            None, f"PYSTRAY_BACKEND={override} is set, but that backend cannot show our menu here"
        )
    if facts.platform == "win32":
        return _only(facts, "win32", "Windows notification area")
    if facts.platform == "darwin":
        return _only(facts, "darwin", "macOS menu bar, runs on the main thread")
    return _choose_unix(facts)


def _only(facts: DesktopFacts, backend: str, description: str) -> BackendChoice:
    if backend in facts.available:
        return BackendChoice(backend, description)
    return BackendChoice(None, f"pystray's {backend} backend cannot be loaded")


def _choose_unix(facts: DesktopFacts) -> BackendChoice:
    wayland = bool(facts.env.get("WAYLAND_DISPLAY"))
    if not facts.env.get("DISPLAY") and not wayland:
        return BackendChoice(None, "no display: DISPLAY and WAYLAND_DISPLAY are unset")
    if facts.x_error and not wayland:
        return BackendChoice(None, f"cannot open the X display: {facts.x_error}")
    if "gtk" not in facts.available:
        return BackendChoice(None, f"PyGObject is missing: {PYGOBJECT_HINT}")
    if not facts.session_bus:
        return BackendChoice(None, "no D-Bus session bus, which pystray's GTK backends need")
    if facts.sni_host and "appindicator" in facts.available:
        return BackendChoice("appindicator", "StatusNotifier tray via AppIndicator")
    if facts.xembed_host:
        return BackendChoice("gtk", "X tray via GTK; click shows the report")
    if facts.sni_host:
        return BackendChoice(
            None,
            "a StatusNotifier tray runs but AppIndicator is missing: "
            "apt-get install gir1.2-ayatanaappindicator3-0.1",
        )
    return BackendChoice(None, "no tray host: no StatusNotifier watcher, no X tray")


def probe_desktop(
    platform: str = sys.platform, env: Mapping[str, str] | None = None
) -> DesktopFacts:
    """Gather the facts `choose_backend` needs; failures read as "not available"."""
    full = dict(os.environ if env is None else env)
    wanted = {key: full[key] for key in ENV_KEYS if full.get(key)}
    if platform in ("win32", "darwin"):
        module = "ctypes" if platform == "win32" else "AppKit"
        have = importlib.util.find_spec(module) is not None
        return DesktopFacts(platform, wanted, frozenset({platform} if have else ()))
    available = frozenset(gi_backends())
    display = wanted.get("DISPLAY", "")
    xembed_host, x_error = _xembed_host(display) if display else (False, "")
    address = session_bus_address(full)
    session_bus, sni_host = _session_bus(address) if address and available else (False, False)
    return DesktopFacts(platform, wanted, available, xembed_host, sni_host, session_bus, x_error)


def session_bus_address(env: Mapping[str, str]) -> str:
    """Where the D-Bus session bus listens, as libdbus finds it ("" when nowhere)."""
    if env.get("DBUS_SESSION_BUS_ADDRESS"):
        return env["DBUS_SESSION_BUS_ADDRESS"]
    runtime = env.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime, "bus").exists():
        return f"unix:path={Path(runtime, 'bus')}"
    return ""


def gi_backends() -> list[str]:
    """The GTK-based backends whose GObject typelibs are installed (nothing is loaded yet)."""
    try:
        import gi
    except ImportError:
        return []
    found = []
    try:
        gi.require_version("Gtk", "3.0")
        found.append("gtk")
    except ValueError:
        return []
    for namespace in ("AyatanaAppIndicator3", "AppIndicator3"):
        try:
            gi.require_version(namespace, "0.1")
        except ValueError:
            continue
        found.append("appindicator")
        break
    return found


def _xembed_host(display_name: str) -> tuple[bool, str]:
    """Whether an X tray owns the system tray selection (and the error if X cannot open)."""
    try:
        from Xlib import X, display

        connection = display.Display(display_name)
    except Exception as exc:  # Xlib raises its own error types for every way of failing
        return False, str(exc) or type(exc).__name__
    try:
        atom = connection.intern_atom(f"_NET_SYSTEM_TRAY_S{connection.get_default_screen()}")
        return connection.get_selection_owner(atom) != X.NONE, ""
    finally:
        connection.close()


def _session_bus(address: str) -> tuple[bool, bool]:
    """(the session bus answers, a StatusNotifierWatcher is on it), on a private connection.

    Private, because GLib's shared connection exits the process when the bus goes away.
    """
    try:
        from gi.repository import Gio, GLib

        flags = (
            Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT
            | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION
        )
        bus = Gio.DBusConnection.new_for_address_sync(address, flags, None, None)
    except Exception:  # no bus, or gi without Gio: both mean "no session bus"
        return False, False
    try:
        reply = bus.call_sync(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "NameHasOwner",
            GLib.Variant("(s)", (SNI_WATCHER,)),
            GLib.VariantType("(b)"),
            Gio.DBusCallFlags.NONE,
            2000,
            None,
        )
        return True, bool(reply.unpack()[0])
    except Exception:
        return True, False
    finally:
        bus.close_sync(None)


def tooltip_text(verdict_line: str, last_check: datetime | None, now: datetime) -> str:
    """One line: the verdict and when the last check ran (date only when not today)."""
    if last_check is None:
        when = "not checked yet"
    elif last_check.date() == now.date():
        when = f"checked {last_check:%H:%M}"
    else:
        when = f"checked {last_check:%Y-%m-%d %H:%M}"
    return _one_line(f"{verdict_line} ({when})", TOOLTIP_MAX)


def _one_line(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "\u2026"


@dataclass(frozen=True)
class TrayActions:
    """What the menu does; each runs on the tray's thread and must return quickly."""

    check_now: Callable[[], None]
    run_gpu_test: Callable[[], None]
    show_report: Callable[[], None]
    what_changed: Callable[[], None]
    toggle_pause: Callable[[], None]
    autostart_enabled: Callable[[], bool]
    set_autostart: Callable[[bool], None]
    open_log_folder: Callable[[], None]
    quit: Callable[[], None]


@dataclass(frozen=True)
class TrayView:
    """What the icon shows now."""

    state: MonitorState = MonitorState.CHECKING
    tooltip: str = "tf-stack-monitor: starting"
    verdict_line: str = "Starting\u2026"
    busy: bool = True


@dataclass(frozen=True)
class MenuEntry:
    """One line of the menu. key names the action; checked is None for a plain item."""

    key: str
    label: str
    enabled: bool = True
    checked: bool | None = None
    default: bool = False


SEPARATOR = MenuEntry("separator", "", enabled=False)


def menu_entries(view: TrayView, autostart: bool) -> list[MenuEntry]:
    """The menu for this view: the verdict on top (it opens the report), then the actions."""
    paused = view.state is MonitorState.PAUSED

    def action(key: str, label: str, **extra: Any) -> MenuEntry:
        return MenuEntry(key, label, not (view.busy and key in BUSY_DISABLED), **extra)

    return [
        MenuEntry("verdict", _one_line(view.verdict_line, 80)),
        SEPARATOR,
        action("check_now", "Check now"),
        action("run_gpu_test", "Run GPU test"),
        action("show_report", "Show report", default=True),
        action("what_changed", "What changed"),
        SEPARATOR,
        action("toggle_pause", "Resume monitoring" if paused else "Pause monitoring"),
        action("autostart", "Start at login", checked=autostart),
        action("open_log_folder", "Open log folder"),
        SEPARATOR,
        action("quit", "Quit"),
    ]


def icons_dir() -> Path:
    """The icon folder: monitor/icons in an installed wheel, icons/ in a source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "icons", here.parent / "icons"):
        if (candidate / "healthy-64.png").is_file():
            return candidate
    return here / "icons"


def icon_path(state: MonitorState, size: int = ICON_SIZE, folder: Path | None = None) -> Path:
    return (folder or icons_dir()) / f"{state.value}-{size}.png"


class Tray:
    """The tray icon and its menu, or a headless stand-in that says why there is none.

    update() may be called from any thread, before or after the icon runs. On macOS call
    run() on the main thread; elsewhere run_detached() starts the icon on its own thread.
    stop() ends either and joins the thread; it is safe from a menu callback and when headless.
    """

    def __init__(
        self,
        actions: TrayActions,
        choice: BackendChoice | None = None,
        icons: Path | None = None,
    ) -> None:
        self._actions = actions
        self._icons = icons or icons_dir()
        self._choice = choice or choose_backend(probe_desktop())
        self._failure = ""
        self._lock = threading.RLock()
        self._view = TrayView()
        self._icon: Any = None
        self._pystray: Any = None
        self._thread: threading.Thread | None = None
        self._stopping = False

    @property
    def backend(self) -> str | None:
        """The pystray backend in use, None when headless."""
        return None if self._failure else self._choice.backend

    @property
    def status_line(self) -> str:
        """One line for the log and `status`: which tray, or headless and why."""
        if self._failure:
            return f"tray: headless ({self._failure})"
        if self._choice.backend is None:
            return f"tray: headless ({self._choice.reason})"
        return f"tray: {self._choice.backend} ({self._choice.reason})"

    @property
    def view(self) -> TrayView:
        return self._view

    def menu(self) -> list[MenuEntry]:
        """The menu as it is shown now (autostart read afresh)."""
        return menu_entries(self._view, self._autostart_enabled())

    def update(self, state: MonitorState, tooltip: str, verdict_line: str, busy: bool) -> None:
        """Show a new state: icon image, tooltip and menu (greyed entries while busy)."""
        with self._lock:
            changed_state = state is not self._view.state
            self._view = TrayView(state, _one_line(tooltip, TOOLTIP_MAX), verdict_line, busy)
            if self._icon is None:
                return
            try:
                if changed_state:
                    self._icon.icon = self._image(state)
                self._icon.title = self._view.tooltip
                self._refresh_menu()
            except Exception:  # a backend failing to redraw must not stop the daemon
                log.exception("tray: could not update the icon")

    def notify(self, message: str, title: str) -> None:
        """A balloon from the icon (the Windows notification backend); raises when there is
        no icon or the backend has none, so the notifier falls back to the log."""
        with self._lock:
            icon = self._icon
        if icon is None or not getattr(icon, "HAS_NOTIFICATION", False):
            raise RuntimeError(f"no tray notifications ({self.status_line})")
        icon.notify(message, title)

    def activate(self, key: str) -> None:
        """Do what the menu entry `key` does, as a click on it would (disabled: nothing)."""
        entry = next((e for e in self.menu() if e.key == key), None)
        if entry is None or not entry.enabled:
            return
        handlers: dict[str, Callable[[], None]] = {
            "verdict": self._actions.show_report,
            "check_now": self._actions.check_now,
            "run_gpu_test": self._actions.run_gpu_test,
            "show_report": self._actions.show_report,
            "what_changed": self._actions.what_changed,
            "toggle_pause": self._actions.toggle_pause,
            "autostart": lambda: self._actions.set_autostart(not entry.checked),
            "open_log_folder": self._actions.open_log_folder,
            "quit": self._actions.quit,
        }
        try:
            handlers[key]()
        except Exception:
            log.exception("tray: the %r action failed", key)
        with self._lock:
            if self._icon is not None:
                self._refresh_menu()

    def run(self) -> None:
        """Run the icon on this thread until stop(); returns at once when headless."""
        icon = self._start()
        if icon is not None:
            self._loop(icon)

    def run_detached(self) -> None:
        """Run the icon on its own thread (Linux, Windows); nothing to do when headless."""
        icon = self._start()
        if icon is not None:
            self._thread = threading.Thread(
                target=self._loop, args=(icon,), name="tray", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Hide the icon, end its loop and join its thread."""
        with self._lock:
            icon, self._stopping = self._icon, True
        if icon is None:
            return
        try:
            icon.stop()
        except Exception:
            log.exception("tray: error while stopping the icon")
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(STOP_TIMEOUT)
            if thread.is_alive():
                log.warning("tray: the icon thread did not end within %s s", STOP_TIMEOUT)
        with self._lock:
            self._icon = None

    def _start(self) -> Any:
        """Create the pystray icon (None when headless or when the backend cannot start)."""
        backend = self._choice.backend
        if backend is None:
            log.warning("%s", self.status_line)
            return None
        try:
            with self._lock:
                self._pystray, icon_class = _load_backend(backend)
                self._icon = icon_class(APP_NAME, self._image(self._view.state), self._view.tooltip)
                self._refresh_menu()
        except Exception as exc:  # pystray/GTK/X raise many types when they cannot start
            self._fail(f"the {backend} tray could not start: {exc}")
            return None
        log.info("%s", self.status_line)
        return self._icon

    def _loop(self, icon: Any) -> None:
        try:
            icon.run()
        except Exception as exc:
            if self._stopping:  # e.g. pystray's gtk backend closing a notification on stop
                log.debug("tray: ignored while stopping: %s", exc)
            else:
                self._fail(f"the {self._choice.backend} tray stopped: {exc}")

    def _fail(self, why: str) -> None:
        with self._lock:
            self._failure = why
            self._icon = None
        log.warning("%s", self.status_line)

    def _image(self, state: MonitorState) -> Any:
        from PIL import Image

        with Image.open(icon_path(state, ICON_SIZE, self._icons)) as image:
            return image.convert("RGBA")

    def _refresh_menu(self) -> None:
        pystray = self._pystray
        items = [
            pystray.Menu.SEPARATOR if entry is SEPARATOR else self._menu_item(pystray, entry)
            for entry in self.menu()
        ]
        self._icon.menu = pystray.Menu(*items)

    def _menu_item(self, pystray: Any, entry: MenuEntry) -> Any:
        return pystray.MenuItem(
            entry.label,
            lambda _icon, _item: self.activate(entry.key),
            checked=None if entry.checked is None else (lambda _item: bool(entry.checked)),
            default=entry.default,
            enabled=entry.enabled,
        )

    def _autostart_enabled(self) -> bool:
        try:
            return bool(self._actions.autostart_enabled())
        except Exception:
            log.exception("tray: could not read the autostart state")
            return False


def _load_backend(backend: str) -> tuple[Any, type]:
    """Import pystray with `backend` and return (pystray, our Icon class for it)."""
    saved = os.environ.get("PYSTRAY_BACKEND")
    os.environ["PYSTRAY_BACKEND"] = backend
    try:
        import pystray

        module = importlib.import_module(f"pystray._{backend}")
    finally:
        if saved is None:
            del os.environ["PYSTRAY_BACKEND"]
        else:
            os.environ["PYSTRAY_BACKEND"] = saved
    return pystray, _gtk_icon(module) if backend == "gtk" else module.Icon


def _gtk_icon(module: Any) -> type:
    """pystray's GTK icon, with its title also shown as the hover tooltip."""
    from pystray._util.gtk import mainloop

    class GtkIcon(module.Icon):  # type: ignore[misc, name-defined]
        @mainloop
        def _show(self) -> None:
            self._status_icon.set_title(self.title)
            self._status_icon.set_tooltip_text(self.title)
            self._status_icon.set_visible(True)

        @mainloop
        def _update_title(self) -> None:
            self._status_icon.set_title(self.title)
            self._status_icon.set_tooltip_text(self.title)

    return GtkIcon
