"""Our notification as a real notification server draws it: dunst on Xvfb, screenshotted.

The D-Bus tests prove what we send; this one proves a real server shows all of it (title,
what changed, what broke, the fix, our icon), not cut off. Run as a script to refresh the
README's picture:

    python tests/test_notify_screen.py docs/screenshots
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from jeepney import message_bus
from jeepney.io.blocking import open_dbus_connection
from PIL import Image, ImageChops
from xdesktop import (
    BACKDROP,
    Desktop,
    Rect,
    _paint_backdrop,
    _process,
    _start_xvfb,
    count_colour,
    wait_until,
)

from monitor.check import judge
from monitor.diff import diff_reports
from monitor.messages import Notification, notification_for
from monitor.model import Change, ChangeKind, MonitorState
from monitor.notify_dbus import BUS_NAME, DbusNotifier
from monitor.record import replace
from monitor.tray import icon_path
from tests.dbus_session import session_bus, use_session_bus
from tests.scenarios import linux_tf221_pip

TOOLS = ("Xvfb", "import", "dbus-daemon", "dunst")
PACKAGES = ("xvfb", "imagemagick", "dbus-daemon", "dunst", "fonts-dejavu-core")
WIDTH, MAX_HEIGHT, OFFSET = 600, 300, 20
FOREGROUND = (236, 239, 244)
ICON_RED = (209, 36, 47)  # the broken icon's face; the frame's red is another, on purpose
MARGIN = 16  # of desktop around the notification in the README's picture

DUNSTRC = """\
[global]
    monitor = 0
    follow = none
    width = {width}
    height = {height}
    origin = top-left
    offset = {offset}x{offset}
    scale = 1
    indicate_hidden = no
    transparency = 0
    padding = 12
    horizontal_padding = 12
    text_icon_padding = 14
    frame_width = 2
    corner_radius = 6
    font = DejaVu Sans 10
    line_height = 3
    markup = full
    format = "<b>%s</b>\\n%b"
    alignment = left
    vertical_alignment = top
    word_wrap = yes
    ellipsize = end
    ignore_newline = no
    show_indicators = no
    show_age_threshold = -1
    icon_position = left
    min_icon_size = 48
    max_icon_size = 48
    enable_recursive_icon_lookup = false
    history_length = 0

[urgency_low]
    background = "#2e3440"
    foreground = "#eceff4"
    frame_color = "#4c566a"
    timeout = 0

[urgency_normal]
    background = "#2e3440"
    foreground = "#eceff4"
    frame_color = "#88c0d0"
    timeout = 0

[urgency_critical]
    background = "#2e3440"
    foreground = "#eceff4"
    frame_color = "#bf616a"
    timeout = 0
"""


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def broken_after_driver_update() -> Notification:
    """What the daemon says when a driver update (rebooted into) comes with cuDNN gone."""
    inventory = linux_tf221_pip()
    old = inventory.driver.driver_version
    driver = replace(
        inventory.driver,
        driver_version="580.65.06",
        cuda_driver_version="13.0",
        kernel_module_version="580.65.06",
        nvml_version="13.580.65.06",
    )
    libraries = tuple(
        replace(lib, resolved=None) if lib.role == "cudnn" else lib for lib in inventory.libraries
    )
    after = replace(inventory, driver=driver, libraries=libraries)
    diff = diff_reports(judge(inventory), judge(after))
    change = Change(ChangeKind.DRIVER, "NVIDIA driver", old, driver.driver_version)
    notification = notification_for(diff, changes=[change])
    assert notification is not None
    return notification


@contextmanager
def dunst_desktop(workdir: Path) -> Iterator[Desktop]:
    """Xvfb, a private session bus and dunst on both, up and owning the Notifications name."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "dunstrc"
    config.write_text(DUNSTRC.format(width=WIDTH, height=MAX_HEIGHT, offset=OFFSET))
    with ExitStack() as stack:
        display = _start_xvfb(stack, workdir / "xvfb.log")
        _paint_backdrop(display)
        address = stack.enter_context(session_bus(workdir / "bus"))
        desktop = Desktop(display, address, workdir)
        log = stack.enter_context((workdir / "dunst.log").open("w"))
        argv = ["dunst", "-config", str(config)]
        dunst = stack.enter_context(_process(argv, env=desktop.env, stdout=log, stderr=log))
        with open_dbus_connection(bus=address) as bus:

            def owned() -> bool:
                if dunst.poll() is not None:
                    pytest.fail(f"dunst exited {dunst.returncode}: {_tail(workdir / 'dunst.log')}")
                reply = bus.send_and_get_reply(message_bus.NameHasOwner(BUS_NAME), timeout=10)
                return bool(reply.body[0])

            wait_until(owned, f"dunst to own {BUS_NAME}")
        yield desktop


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-2000:]


def show_and_capture(desktop: Desktop, notification: Notification) -> tuple[Image.Image, Rect]:
    """Send it as the daemon does; the screen once dunst drew it, and where it is."""
    notifier = DbusNotifier(app_icon=str(icon_path(MonitorState.BROKEN, 64)), on_click=_ignore)
    try:
        notifier.show(notification)
        screen, drawn = wait_until(lambda: _drawn(desktop), "dunst to draw the notification")
    finally:
        notifier.stop()
    return screen, drawn


def _ignore(_clicked: Notification) -> None:
    """The daemon opens the report; here a click only has to be possible (actions sent)."""


def _drawn(desktop: Desktop) -> tuple[Image.Image, Rect] | None:
    """The screen and the box of everything that is not the backdrop, once there is one."""
    screen = desktop.screenshot("notification")
    box = ImageChops.difference(screen, Image.new("RGB", screen.size, BACKDROP)).getbbox()
    if box is None:
        return None
    left, top, right, bottom = box
    return screen, Rect(left, top, right - left, bottom - top)


def distinct_colours(image: Image.Image, rect: Rect) -> int:
    return len(image.crop(rect.box()).getcolors(maxcolors=1 << 16) or ())


@pytest.fixture
def desktop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Desktop]:
    missing = missing_tools()
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (Debian packages: {' '.join(PACKAGES)})")
    with dunst_desktop(tmp_path / "desktop") as running:
        use_session_bus(monkeypatch, running.env["DBUS_SESSION_BUS_ADDRESS"])
        yield running


def test_dunst_draws_the_whole_broken_stack_notification_with_our_icon(desktop: Desktop) -> None:
    notification = broken_after_driver_update()
    assert notification.title == "TensorFlow GPU stack broken"
    assert "580.65.06" in notification.body and "Fix: " in notification.body

    screen, drawn = show_and_capture(desktop, notification)

    [window] = [w.rect for w in desktop.windows() if w.name == "Dunst"]
    assert drawn == window  # everything off the backdrop is dunst's window, all of it shown
    assert (drawn.x, drawn.y) == (OFFSET, OFFSET)
    assert WIDTH <= drawn.width <= WIDTH + 10  # dunst 1.9 widens by a few px for its frame
    # Five lines of text or more, and below dunst's cap: nothing was cut off at the bottom.
    assert 90 <= drawn.height < MAX_HEIGHT
    assert distinct_colours(screen, drawn) > 40  # anti-aliased text, not a blank box
    text = Rect(drawn.x + 80, drawn.y, drawn.width - 80, drawn.height)
    assert count_colour(screen, text, FOREGROUND, tolerance=16) > 1500
    lower_half = Rect(text.x, drawn.y + drawn.height // 2, text.width, drawn.height // 2 - 4)
    assert count_colour(screen, lower_half, FOREGROUND, tolerance=16) > 300  # the fix line
    icon = Rect(drawn.x, drawn.y, 80, 80)
    assert count_colour(screen, icon, ICON_RED) > 48 * 48 // 4
    assert count_colour(screen, text, ICON_RED) == 0  # the icon sits left of the text


def main(folder: Path) -> None:
    """Write folder/notification.png: the notification with a little desktop around it."""
    missing = missing_tools()
    if missing:
        sys.exit(f"needs {', '.join(missing)} (Debian packages: {' '.join(PACKAGES)})")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work, dunst_desktop(Path(work)) as desktop:
        os.environ["DBUS_SESSION_BUS_ADDRESS"] = desktop.env["DBUS_SESSION_BUS_ADDRESS"]
        screen, drawn = show_and_capture(desktop, broken_after_driver_update())
    left, top, right, bottom = drawn.box()
    box = (left - MARGIN, top - MARGIN, right + MARGIN, bottom + MARGIN)
    screen.crop(box).save(folder / "notification.png", optimize=True)
    print(folder / "notification.png")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
