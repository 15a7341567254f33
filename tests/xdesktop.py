"""A private X desktop for tests: Xvfb, a real tray host (trayer) and a D-Bus session bus.

The `desktop` fixture starts all three under tmp and tears them down; `Desktop` takes
screenshots (imagemagick `import`), finds windows (`xwininfo`), clicks and types (`xdotool`).
Tests skip, saying which tool is missing, where the Debian packages are not installed
(CI installs xvfb trayer imagemagick xdotool x11-utils dbus-daemon).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
from PIL import Image

TOOLS = ("Xvfb", "trayer", "import", "xdotool", "xwininfo", "dbus-daemon")
PACKAGES = ("xvfb", "trayer", "imagemagick", "xdotool", "x11-utils", "dbus-daemon")
SCREEN = (800, 400)
BACKDROP = (59, 66, 82)  # a desktop-like slate behind the panel, so screenshots read well
TIMEOUT = 30.0  # generous: the CI machines are small and shared

T = TypeVar("T")


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def wait_until(probe: Callable[[], T], what: str, timeout: float = TIMEOUT) -> T:
    """Poll `probe` until it returns something truthy; fail the test naming `what` if not."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


@dataclass(frozen=True)
class Rect:
    x: int
    y: int
    width: int
    height: int

    @property
    def centre(self) -> tuple[int, int]:
        return self.x + self.width // 2, self.y + self.height // 2

    def contains(self, x: int, y: int) -> bool:
        return self.x <= x < self.x + self.width and self.y <= y < self.y + self.height

    def box(self) -> tuple[int, int, int, int]:
        return self.x, self.y, self.x + self.width, self.y + self.height


@dataclass(frozen=True)
class Window:
    """A top-level window as `xwininfo -root -tree` lists it."""

    wid: str
    name: str
    rect: Rect


_TREE_LINE = re.compile(
    r'^\s*(0x[0-9a-f]+) (?:"([^"]*)"|\(has no name\))'  # id and name
    r".*?\s(\d+)x(\d+)\+-?\d+\+-?\d+\s+\+(-?\d+)\+(-?\d+)"  # size, absolute position
)


def parse_tree(text: str) -> list[Window]:
    """Top-level windows (direct children of the root) from `xwininfo -root -tree` output."""
    windows = []
    depth = None
    for line in text.splitlines():
        match = _TREE_LINE.match(line)
        if not match:
            continue
        indent = len(line) - len(line.lstrip())
        depth = indent if depth is None else depth
        if indent != depth:
            continue
        wid, name, width, height, x, y = match.groups()
        windows.append(Window(wid, name or "", Rect(int(x), int(y), int(width), int(height))))
    return windows


class Desktop:
    """A running private desktop; `env` is what a child process needs to use it."""

    def __init__(self, display: str, bus_address: str, workdir: Path) -> None:
        self.display = display
        self.workdir = workdir
        self.env = {
            **os.environ,
            "DISPLAY": display,
            "DBUS_SESSION_BUS_ADDRESS": bus_address,
            "NO_AT_BRIDGE": "1",
            "GSETTINGS_BACKEND": "memory",
            "GDK_BACKEND": "x11",
        }
        self.env.pop("WAYLAND_DISPLAY", None)
        self._shots = 0

    def tool(self, *argv: str) -> str:
        """Run an X tool on this display and return its output."""
        done = subprocess.run(
            argv, env=self.env, capture_output=True, text=True, timeout=TIMEOUT, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()}")
        return done.stdout

    def windows(self) -> list[Window]:
        return parse_tree(self.tool("xwininfo", "-root", "-tree"))

    def window_ids(self) -> set[str]:
        return {window.wid for window in self.windows()}

    def new_window(self, before: set[str], min_width: int, min_height: int) -> Rect | None:
        """A top-level window not in `before` and at least this big (a menu, a tooltip)."""
        for window in self.windows():
            big = window.rect.width >= min_width and window.rect.height >= min_height
            if window.wid not in before and big:
                return window.rect
        return None

    def tray(self) -> Rect:
        """trayer's panel: where docked icons are drawn."""
        return next(w.rect for w in self.windows() if w.name == "panel")

    def screenshot(self, name: str = "") -> Image.Image:
        """The whole screen, also kept as a PNG under the desktop's workdir."""
        self._shots += 1
        path = self.workdir / f"{self._shots:02d}-{name or 'screen'}.png"
        self.tool("import", "-window", "root", str(path))
        with Image.open(path) as image:
            return image.convert("RGB")

    def click(self, x: int, y: int, button: int = 1) -> None:
        self.tool("xdotool", "mousemove", str(x), str(y), "click", str(button))

    def hover(self, x: int, y: int) -> None:
        """Move onto (x, y) from a pixel away, so the window there sees the pointer arrive."""
        self.tool("xdotool", "mousemove", str(x - 2), str(y), "mousemove", str(x), str(y))

    def keys(self, *names: str) -> None:
        self.tool("xdotool", "key", "--delay", "60", *names)


def count_colour(
    image: Image.Image, rect: Rect, colour: tuple[int, int, int], tolerance: int = 24
) -> int:
    """How many pixels inside `rect` are within `tolerance` of `colour` on every channel."""
    data = image.convert("RGB").crop(rect.box()).tobytes()
    return sum(
        1
        for pixel in zip(data[0::3], data[1::3], data[2::3], strict=True)
        if all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True))
    )


@contextmanager
def _process(argv: list[str], **popen: object) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(argv, text=True, **popen)  # type: ignore[call-overload]
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        for stream in (process.stdout, process.stderr):
            if stream:
                stream.close()


def _start_xvfb(stack: ExitStack, log: Path) -> str:
    """Start Xvfb on a free display; it writes the number to the pipe once it accepts clients."""
    read_end, write_end = os.pipe()
    width, height = SCREEN
    argv = ["Xvfb", "-displayfd", str(write_end), "-screen", "0", f"{width}x{height}x24"]
    argv += ["-nolisten", "tcp", "-noreset"]
    with log.open("w") as err:
        stack.enter_context(_process(argv, pass_fds=(write_end,), stderr=err))
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        number = pipe.readline().strip()
    if not number:
        raise RuntimeError(f"Xvfb did not start: {log.read_text()[-2000:]}")
    return f":{number}"


def _start_bus(stack: ExitStack, env: dict[str, str]) -> str:
    argv = ["dbus-daemon", "--session", "--nofork", "--print-address=1"]
    bus = stack.enter_context(
        _process(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    )
    address = bus.stdout.readline().strip() if bus.stdout else ""
    if not address:
        raise RuntimeError("dbus-daemon did not print its address")
    return address


def _paint_backdrop(display: str) -> None:
    from Xlib.display import Display

    connection = Display(display)
    try:
        red, green, blue = BACKDROP
        root = connection.screen().root
        root.change_attributes(background_pixel=(red << 16) | (green << 8) | blue)
        root.clear_area()
        connection.sync()
    finally:
        connection.close()


def _tray_owned(display: str) -> bool:
    from Xlib import X
    from Xlib.display import Display

    connection = Display(display)
    try:
        atom = connection.intern_atom(f"_NET_SYSTEM_TRAY_S{connection.get_default_screen()}")
        return connection.get_selection_owner(atom) != X.NONE
    finally:
        connection.close()


@contextmanager
def x_desktop(workdir: Path) -> Iterator[Desktop]:
    """Xvfb + dbus-daemon + trayer (top right, 32 px high, opaque), torn down on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        display = _start_xvfb(stack, workdir / "xvfb.log")
        _paint_backdrop(display)
        address = _start_bus(stack, {**os.environ, "DISPLAY": display})
        desktop = Desktop(display, address, workdir)
        trayer = ["trayer", "--edge", "top", "--align", "right", "--widthtype", "request"]
        trayer += ["--height", "32", "--SetDockType", "true", "--transparent", "false"]
        with (workdir / "trayer.log").open("w") as log:
            stack.enter_context(_process(trayer, env=desktop.env, stdout=log, stderr=log))
        wait_until(lambda: _tray_owned(display), "trayer to own the system tray selection")
        yield desktop


@pytest.fixture(name="desktop")
def desktop_fixture(tmp_path: Path) -> Iterator[Desktop]:
    """A fresh private desktop per test (about a second to start)."""
    missing = missing_tools()
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (Debian packages: {' '.join(PACKAGES)})")
    with x_desktop(tmp_path / "desktop") as running:
        yield running
