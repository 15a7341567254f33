"""Draw the tray icons: one per monitor state, at every size the trays ask for.

Run `python icons/make_icons.py` after changing a drawing; tests/test_icons.py fails while the
shipped PNG/ICO files differ from what this script draws.

Each state differs by silhouette as well as colour, so the icons read for colour-blind users
and in monochrome panels: healthy = circle with a check, warnings = triangle with "!",
broken = octagon with "x", checking = circular arrow, paused = two bars, error = square with
"?". Shapes are drawn with polygons and strokes (no fonts, so the output does not depend on the
machine), on a 16-unit grid so that edges land on whole pixels at 16/32/48/64/128 px, at 8x the
target size, then box-filtered down in premultiplied alpha (clean antialiased edges, no dark
fringes).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
STATES = ("healthy", "warnings", "broken", "checking", "paused", "error")
SIZES = (16, 24, 32, 48, 64, 128, 256)
PNG_SIZES = (16, 24, 32, 48, 64, 128)
SUPERSAMPLE = 8
GRID = 16  # drawings use coordinates 0..16

Point = tuple[float, float]
RGB = tuple[int, int, int]

WHITE: RGB = (255, 255, 255)
INK: RGB = (32, 32, 32)


class Pen:
    """Draws in grid units on a canvas `scale` pixels per unit."""

    def __init__(self, image: Image.Image, scale: float) -> None:
        self.draw = ImageDraw.Draw(image)
        self.scale = scale

    def _px(self, points: Sequence[Point]) -> list[Point]:
        return [(x * self.scale, y * self.scale) for x, y in points]

    def polygon(self, points: Sequence[Point], fill: RGB) -> None:
        self.draw.polygon(self._px(points), fill=fill)

    def disc(self, centre: Point, radius: float, fill: RGB) -> None:
        (x, y), r = self._px([centre])[0], radius * self.scale
        self.draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)

    def stroke(self, points: Sequence[Point], width: float, fill: RGB) -> None:
        """A polyline with round joints and round caps."""
        self.draw.line(self._px(points), fill=fill, width=round(width * self.scale), joint="curve")
        for end in (points[0], points[-1]):
            self.disc(end, width / 2, fill)

    def rounded_rect(self, box: tuple[float, float, float, float], radius: float, fill: RGB):
        x0, y0, x1, y1 = (v * self.scale for v in box)
        self.draw.rounded_rectangle((x0, y0, x1, y1), radius=radius * self.scale, fill=fill)


def regular_polygon(centre: Point, apothem: float, sides: int, rotation: float) -> list[Point]:
    """Vertices of a regular polygon given the distance from its centre to its flat sides."""
    circumradius = apothem / math.cos(math.pi / sides)
    return [
        (
            centre[0] + circumradius * math.cos(rotation + 2 * math.pi * k / sides),
            centre[1] + circumradius * math.sin(rotation + 2 * math.pi * k / sides),
        )
        for k in range(sides)
    ]


def arc_points(centre: Point, radius: float, start_deg: float, end_deg: float) -> list[Point]:
    """Points along an arc, angles clockwise from 3 o'clock (screen coordinates)."""
    steps = max(8, int(abs(end_deg - start_deg) / 6))
    angles = [math.radians(start_deg + (end_deg - start_deg) * i / steps) for i in range(steps + 1)]
    return [(centre[0] + radius * math.cos(a), centre[1] + radius * math.sin(a)) for a in angles]


def triangle_inset(points: Sequence[Point], distance: float) -> list[Point]:
    """The triangle whose sides lie `distance` inside the given one (negative: outside)."""
    (ax, ay), (bx, by), (cx, cy) = points
    a = math.dist((bx, by), (cx, cy))
    b = math.dist((ax, ay), (cx, cy))
    c = math.dist((ax, ay), (bx, by))
    perimeter = a + b + c
    ix, iy = (a * ax + b * bx + c * cx) / perimeter, (a * ay + b * by + c * cy) / perimeter
    area = abs((bx - ax) * (cy - ay) - (cx - ax) * (by - ay)) / 2
    inradius = 2 * area / perimeter
    k = (inradius - distance) / inradius
    return [(ix + (x - ix) * k, iy + (y - iy) * k) for x, y in points]


def draw_healthy(pen: Pen) -> None:
    pen.disc((8, 8), 7.75, (17, 99, 41))
    pen.disc((8, 8), 6.75, (46, 164, 78))
    pen.stroke([(4.6, 8.3), (7.0, 10.8), (11.4, 5.4)], 2.2, WHITE)


def draw_warnings(pen: Pen) -> None:
    outer = [(8, 0.4), (15.8, 15), (0.2, 15)]
    pen.polygon(outer, (122, 82, 0))
    pen.polygon(triangle_inset(outer, 1.0), (247, 183, 0))
    pen.stroke([(8, 5.6), (8, 9.6)], 2.2, INK)
    pen.disc((8, 12.4), 1.2, INK)


def draw_broken(pen: Pen) -> None:
    pen.polygon(regular_polygon((8, 8), 7.75, 8, math.pi / 8), (130, 7, 30))
    pen.polygon(regular_polygon((8, 8), 6.75, 8, math.pi / 8), (209, 36, 47))
    pen.stroke([(5.2, 5.2), (10.8, 10.8)], 2.2, WHITE)
    pen.stroke([(10.8, 5.2), (5.2, 10.8)], 2.2, WHITE)


def _arrowhead(centre: Point, radius: float, angle_deg: float, width: float) -> list[Point]:
    """A triangle at the arc's end at `angle_deg`, pointing counter-clockwise along the arc."""
    a = math.radians(angle_deg)
    end = (centre[0] + radius * math.cos(a), centre[1] + radius * math.sin(a))
    along = (math.sin(a), -math.cos(a))  # tangent, counter-clockwise on screen
    across = (math.cos(a), math.sin(a))  # radial
    half, ahead = width * 1.35, width * 1.45
    return [
        (end[0] + across[0] * half, end[1] + across[1] * half),
        (end[0] + along[0] * ahead, end[1] + along[1] * ahead),
        (end[0] - across[0] * half, end[1] - across[1] * half),
    ]


def draw_checking(pen: Pen) -> None:
    centre, radius, start, end = (7.7, 8.6), 4.7, -55.0, 205.0
    for width, outline, fill in ((2.4, 1.0, (10, 48, 105)), (2.4, 0.0, (33, 139, 255))):
        pen.stroke(arc_points(centre, radius, start, end), width + 2 * outline, fill)
        head = _arrowhead(centre, radius, start, width)
        pen.polygon(triangle_inset(head, -outline), fill)


def draw_paused(pen: Pen) -> None:
    for x in (2.0, 9.0):
        pen.rounded_rect((x, 1.0, x + 5, 15.0), 1.4, (66, 74, 83))
        pen.rounded_rect((x + 1, 2.0, x + 4, 14.0), 0.7, (175, 184, 193))


def draw_error(pen: Pen) -> None:
    pen.rounded_rect((0.5, 0.5, 15.5, 15.5), 2.5, (62, 31, 121))
    pen.rounded_rect((1.5, 1.5, 14.5, 14.5), 1.8, (150, 80, 230))
    hook = [*arc_points((8, 5.9), 2.5, 190, 400), (8, 8.9), (8, 9.4)]
    pen.stroke(hook, 2.1, WHITE)
    pen.disc((8, 12.4), 1.2, WHITE)


DRAWINGS: dict[str, Callable[[Pen], None]] = {
    "healthy": draw_healthy,
    "warnings": draw_warnings,
    "broken": draw_broken,
    "checking": draw_checking,
    "paused": draw_paused,
    "error": draw_error,
}


def render(state: str, size: int) -> Image.Image:
    """The icon for `state` at `size` x `size` pixels, RGBA."""
    big = size * SUPERSAMPLE
    canvas = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    DRAWINGS[state](Pen(canvas, big / GRID))
    # Every pixel drawn is opaque, so the canvas is already premultiplied; box-filter it as
    # such so that edges blend towards transparency, not towards black.
    return canvas.convert("RGBa").reduce(SUPERSAMPLE).convert("RGBA")


def write_all(out_dir: Path) -> list[Path]:
    """Write <state>-<size>.png for PNG_SIZES and a multi-size <state>.ico per state."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for state in STATES:
        images = {size: render(state, size) for size in SIZES}
        for size in PNG_SIZES:
            path = out_dir / f"{state}-{size}.png"
            images[size].save(path, optimize=False)
            written.append(path)
        ico = out_dir / f"{state}.ico"
        largest = images[max(SIZES)]
        others = [images[s] for s in SIZES if s != max(SIZES)]
        largest.save(ico, sizes=[(s, s) for s in SIZES], append_images=others)
        written.append(ico)
    return written


def preview(out: Path, background: RGB) -> None:
    """A sheet of every state at every PNG size on one background, for eyes."""
    pad = 8
    width = sum(PNG_SIZES) + pad * (len(PNG_SIZES) + 1)
    height = (max(PNG_SIZES) + pad) * len(STATES) + pad
    sheet = Image.new("RGB", (width, height), background)
    y = pad
    for state in STATES:
        x = pad
        for size in PNG_SIZES:
            icon = render(state, size)
            sheet.paste(icon, (x, y + (max(PNG_SIZES) - size) // 2), icon)
            x += size + pad
        y += max(PNG_SIZES) + pad
    sheet.save(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="where to write (default: icons/)")
    parser.add_argument("--preview", type=Path, help="also write a preview sheet to this PNG")
    args = parser.parse_args(argv)
    for path in write_all(args.out):
        print(path)
    if args.preview:
        preview(args.preview, (236, 236, 236))
        dark = args.preview.with_name(args.preview.stem + "-dark" + args.preview.suffix)
        preview(dark, (40, 40, 40))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
