"""The shipped tray icons: what icons/make_icons.py draws, one per monitor state, told apart
by shape as well as colour."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path
from types import ModuleType

import pytest
from PIL import Image, ImageChops

from monitor.model import MonitorState

ICONS = Path(__file__).resolve().parents[1] / "icons"
REGENERATE = "run `python icons/make_icons.py` and commit the icons"


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_icons", ICONS / "make_icons.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_icons = load_generator()


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("icons")
    make_icons.write_all(out)
    return out


def shipped_files() -> set[str]:
    return {p.name for p in ICONS.iterdir() if p.suffix in (".png", ".ico")}


def test_every_monitor_state_has_a_drawing() -> None:
    assert set(make_icons.STATES) == {state.value for state in MonitorState}


def test_shipped_files_are_exactly_what_the_script_writes(regenerated: Path) -> None:
    assert shipped_files() == {p.name for p in regenerated.iterdir()}, REGENERATE


def differing_pixels(a: Image.Image, b: Image.Image, tolerance: int = 16) -> int:
    """Pixels where some RGBA channel differs by more than `tolerance`."""
    diff = ImageChops.difference(a.convert("RGBA"), b.convert("RGBA"))
    worst = ImageChops.lighter(
        ImageChops.lighter(diff.getchannel("R"), diff.getchannel("G")),
        ImageChops.lighter(diff.getchannel("B"), diff.getchannel("A")),
    )
    return sum(worst.point(lambda v: 255 if v > tolerance else 0).histogram()[255:])


@pytest.mark.parametrize("state", make_icons.STATES)
@pytest.mark.parametrize("size", make_icons.PNG_SIZES)
def test_shipped_png_matches_the_script(regenerated: Path, state: str, size: int) -> None:
    """A little slack: another Pillow version may round an antialiased edge differently."""
    name = f"{state}-{size}.png"
    with Image.open(ICONS / name) as shipped, Image.open(regenerated / name) as fresh:
        assert shipped.size == fresh.size == (size, size)
        assert shipped.mode == "RGBA"
        assert differing_pixels(shipped, fresh) <= size * size // 100, f"{name}: {REGENERATE}"


@pytest.mark.parametrize("state", make_icons.STATES)
def test_ico_holds_every_size_and_the_same_pixels_as_the_pngs(state: str) -> None:
    with Image.open(ICONS / f"{state}.ico") as ico:
        assert ico.info["sizes"] == {(s, s) for s in make_icons.SIZES}
        for size in make_icons.PNG_SIZES:
            ico.size = (size, size)
            ico.load()
            with Image.open(ICONS / f"{state}-{size}.png") as png:
                assert differing_pixels(ico, png, tolerance=0) == 0, (state, size)


def tones(state: str, size: int) -> list[int]:
    """Each pixel as transparent (0), dark (1) or light (2): the icon as a monochrome panel
    or a colour-blind eye sees its shape."""
    image = make_icons.render(state, size)
    luminance = image.convert("L").tobytes()
    alpha = image.getchannel("A").tobytes()
    return [0 if a < 128 else 1 if v < 128 else 2 for v, a in zip(luminance, alpha, strict=True)]


@pytest.mark.parametrize("size", [16, 32])
def test_states_differ_by_shape_not_only_colour(size: int) -> None:
    maps = {state: tones(state, size) for state in make_icons.STATES}
    for a, b in itertools.combinations(make_icons.STATES, 2):
        differ = sum(x != y for x, y in zip(maps[a], maps[b], strict=True)) / size**2
        assert differ >= 0.15, f"{a} and {b} look alike without colour at {size} px"


def test_drawing_is_deterministic() -> None:
    first, second = make_icons.render("checking", 24), make_icons.render("checking", 24)
    assert first.tobytes() == second.tobytes()


def test_icons_use_the_canvas_and_keep_a_transparent_margin() -> None:
    """Legible at 16 px: each shape fills most of the square, none is cut by the border."""
    for state in make_icons.STATES:
        alpha = make_icons.render(state, 64).getchannel("A")
        left, top, right, bottom = alpha.getbbox() or (0, 0, 0, 0)
        assert right - left >= 48 and bottom - top >= 48, state
        edges = [alpha.crop(box) for box in ((0, 0, 64, 1), (0, 63, 64, 64))]
        edges += [alpha.crop(box) for box in ((0, 0, 1, 64), (63, 0, 64, 64))]
        assert max(edge.getextrema()[1] for edge in edges) < 64, state
