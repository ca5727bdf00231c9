"""Draw the bundled example pictures (examples/*.png): four scenes of clearly different moods.

Made here from gradients, shapes and a little noise (no downloads), deterministic, so anyone
can regenerate them:

    .venv/bin/python scripts/make_examples.py [--out examples]

- sunflowers.png  bright, warm, saturated        -> pleasant and energetic (the `make demo` picture)
- storm.png       dark, cold, lightning contrast -> unpleasant and energetic (tense)
- dusk.png        dim, desaturated blue          -> unpleasant and calm (gloomy)
- meadow.png      soft pastel greens and sky     -> pleasant and calm (serene)

Scenes are drawn at twice the size, downsampled (which antialiases the shapes) and saved as
256-colour PNGs so that each stays well under 150 KB.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

WIDTH, HEIGHT = 512, 384
SCALE = 2  # drawing supersampling
W, H = WIDTH * SCALE, HEIGHT * SCALE


# -- small drawing helpers ------------------------------------------------------------------


def vertical_gradient(stops: list[tuple[float, tuple[int, int, int]]], height: int = H, width: int = W) -> np.ndarray:
    """An RGB float image whose rows blend between (fraction, colour) stops."""
    fractions = np.linspace(0.0, 1.0, height)
    positions = [p for p, _ in stops]
    channels = [np.interp(fractions, positions, [c[i] for _, c in stops]) for i in range(3)]
    column = np.stack(channels, axis=-1)
    return np.repeat(column[:, None, :], width, axis=1)


def smooth_noise(rng: np.random.Generator, cells: tuple[int, int], size: tuple[int, int] = (W, H)) -> np.ndarray:
    """Value noise in [0, 1]: random cells, bicubically enlarged (soft blotches for clouds, grass)."""
    small = Image.fromarray((rng.random((cells[1], cells[0])) * 255).astype(np.uint8))
    return np.asarray(small.resize(size, Image.Resampling.BICUBIC), dtype=np.float64) / 255.0


def fractal_noise(rng: np.random.Generator, octaves=((6, 4), (12, 9), (24, 18), (48, 36))) -> np.ndarray:
    total = np.zeros((H, W))
    weight_sum = 0.0
    for i, cells in enumerate(octaves):
        weight = 0.5**i
        total += weight * smooth_noise(rng, cells)
        weight_sum += weight
    return total / weight_sum


def ridge(rng: np.random.Generator, base: float, amplitude: float, roughness: int) -> np.ndarray:
    """A hill line: y (pixels) for every x, from a few summed sines with random phases."""
    x = np.linspace(0, 2 * math.pi, W)
    y = np.full(W, base * H)
    for k in range(1, roughness + 1):
        y += amplitude * H / k * np.sin(k * x * rng.uniform(0.6, 1.4) + rng.uniform(0, 2 * math.pi))
    return y


def below(line: np.ndarray) -> np.ndarray:
    """Boolean mask of the pixels under a hill line."""
    rows = np.arange(H)[:, None]
    return rows >= line[None, :]


def paint(canvas: np.ndarray, mask: np.ndarray, colour, alpha: float | np.ndarray = 1.0) -> None:
    a = mask * alpha if isinstance(alpha, np.ndarray) else mask * float(alpha)
    canvas += (np.asarray(colour, dtype=np.float64) - canvas) * a[..., None]


def radial(cx: float, cy: float, radius: float) -> np.ndarray:
    """1 at (cx, cy) falling smoothly to 0 at `radius` (pixels)."""
    yy, xx = np.mgrid[0:H, 0:W]
    d = np.hypot(xx - cx, yy - cy) / radius
    return np.clip(1 - d, 0, 1) ** 2


def grain(canvas: np.ndarray, rng: np.random.Generator, strength: float) -> None:
    canvas += rng.normal(0.0, strength, canvas.shape[:2])[..., None]


def overlay(canvas: np.ndarray, layer: Image.Image, blur: float = 0.0) -> None:
    """Composite an RGBA drawing (made with ImageDraw) onto the float canvas."""
    if blur:
        layer = layer.filter(ImageFilter.GaussianBlur(blur))
    rgba = np.asarray(layer, dtype=np.float64)
    alpha = rgba[..., 3] / 255.0
    canvas += (rgba[..., :3] - canvas) * alpha[..., None]


def new_layer() -> tuple[Image.Image, ImageDraw.ImageDraw]:
    layer = Image.new("RGBA", (W, H), (0, 0, 0, 0))
    return layer, ImageDraw.Draw(layer)


def petal(cx: float, cy: float, angle: float, length: float, width: float) -> list[tuple[float, float]]:
    """A lens-shaped petal or leaf pointing along `angle` from (cx, cy)."""
    dx, dy = math.cos(angle), math.sin(angle)
    nx, ny = -dy, dx
    points = []
    for i in range(13):
        t = i / 12
        w = width * math.sin(math.pi * t)
        points.append((cx + dx * length * t + nx * w, cy + dy * length * t + ny * w))
    for i in range(12, -1, -1):
        t = i / 12
        w = width * math.sin(math.pi * t)
        points.append((cx + dx * length * t - nx * w, cy + dy * length * t - ny * w))
    return points


def finish(canvas: np.ndarray) -> Image.Image:
    """Downsample (antialiasing the shapes) and reduce to 256 dithered colours: PNGs of ~100 KB."""
    image = Image.fromarray(np.clip(np.rint(canvas), 0, 255).astype(np.uint8))
    image = image.resize((WIDTH, HEIGHT), Image.Resampling.LANCZOS)
    return image.quantize(256, method=Image.Quantize.MEDIANCUT)


# -- the four scenes ------------------------------------------------------------------------


def sunflowers() -> Image.Image:
    rng = np.random.default_rng(11)
    canvas = vertical_gradient([(0.0, (38, 128, 230)), (0.38, (130, 196, 245)), (1.0, (130, 196, 245))])
    paint(canvas, np.ones((H, W)), (255, 244, 180), radial(0.84 * W, 0.12 * H, 0.30 * W))  # sun glow
    paint(canvas, radial(0.84 * W, 0.12 * H, 0.06 * W) > 0, (255, 250, 215))  # the sun
    clouds = np.clip((fractal_noise(rng) - 0.55) * 4, 0, 1) * (np.linspace(1, 0, H)[:, None] ** 2)
    paint(canvas, np.ones((H, W)), (255, 255, 255), 0.8 * clouds)

    hills = ridge(rng, 0.36, 0.012, 3)
    paint(canvas, below(hills), (72, 140, 40))
    field_top = ridge(rng, 0.42, 0.006, 4)
    field = below(field_top)
    texture = fractal_noise(rng, ((16, 8), (64, 32), (128, 96)))
    paint(canvas, field, (236, 178, 18))
    paint(canvas, field, (180, 110, 10), 0.55 * texture)

    layer, draw = new_layer()
    # Far flowers: rows of small heads getting bigger towards the viewer.
    for row in range(26):
        depth = row / 25
        y = (0.44 + 0.5 * depth**1.6) * H
        radius = 4 + 26 * depth**1.7
        for _ in range(int(60 - 35 * depth)):
            x = rng.uniform(-0.05, 1.05) * W
            yy = y + rng.normal(0, radius * 0.5)
            draw.ellipse((x - radius, yy - radius * 0.8, x + radius, yy + radius * 0.8), fill=(255, 205, 25, 255))
            r = radius * 0.4
            draw.ellipse((x - r, yy - r * 0.8, x + r, yy + r * 0.8), fill=(110, 55, 15, 255))
    overlay(canvas, layer)

    layer, draw = new_layer()
    for cx, cy, size in ((0.18, 0.62, 95), (0.50, 0.52, 80), (0.80, 0.70, 115)):
        cx, cy = cx * W, cy * H
        draw.line([(cx, cy), (cx + rng.uniform(-20, 20), H)], fill=(46, 120, 30, 255), width=int(size * 0.22))
        draw.polygon(petal(cx, cy + size * 1.6, math.radians(200), size * 1.2, size * 0.35), fill=(56, 140, 36, 255))
        draw.polygon(petal(cx, cy + size * 2.3, math.radians(-20), size * 1.3, size * 0.38), fill=(48, 128, 30, 255))
        for ring, (length, shade) in enumerate(((size * 1.05, (242, 176, 10)), (size * 0.95, (255, 214, 40)))):
            count = 22
            for i in range(count):
                angle = 2 * math.pi * (i + 0.5 * ring) / count
                draw.polygon(petal(cx, cy, angle, length, size * 0.17), fill=shade + (255,))
        draw.ellipse((cx - size * 0.5, cy - size * 0.5, cx + size * 0.5, cy + size * 0.5), fill=(92, 48, 14, 255))
        for _ in range(160):  # seeds
            a, r = rng.uniform(0, 2 * math.pi), size * 0.45 * math.sqrt(rng.random())
            x, y = cx + r * math.cos(a), cy + r * math.sin(a)
            draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=(60, 30, 8, 255))
    overlay(canvas, layer, blur=0.6)
    grain(canvas, rng, 1.5)
    return finish(canvas)


def storm() -> Image.Image:
    rng = np.random.default_rng(23)
    horizon = 0.58
    canvas = vertical_gradient([(0.0, (8, 10, 40)), (0.55, (34, 38, 100)), (0.6, (10, 18, 52)), (1.0, (4, 8, 28))])
    sky = np.arange(H)[:, None] < horizon * H

    # The bolt's path first: it lights the clouds around it.
    x, y = 0.62 * W, 0.0
    bolt = [(x, y)]
    while y < horizon * H:
        x += rng.normal(0, 22)
        y += rng.uniform(18, 40)
        bolt.append((x, y))
    lit = radial(0.62 * W, 0.3 * H, 0.55 * W)

    clouds = fractal_noise(rng)
    billows = np.clip(clouds - 0.42, 0, 1) * 2.4
    paint(canvas, sky, (128, 112, 250), np.clip(billows * (0.25 + 1.6 * lit), 0, 1))  # lit cloud edges
    paint(canvas, sky, (3, 4, 18), 0.9 * np.clip(0.5 - clouds, 0, 1) * 2)  # dark cores

    # Lightning: a wide violet glow under a white core, and one branch.
    layer, draw = new_layer()
    draw.line(bolt, fill=(255, 255, 255, 255), width=34)
    glow = np.asarray(layer.filter(ImageFilter.GaussianBlur(40)), dtype=np.float64)[..., 3] / 255.0
    paint(canvas, np.ones((H, W)), (150, 110, 255), np.clip(glow * 1.8, 0, 1))
    layer, draw = new_layer()
    draw.line(bolt, fill=(250, 250, 255, 255), width=8)
    branch = bolt[len(bolt) // 2]
    draw.line([branch, (branch[0] - 60, branch[1] + 45), (branch[0] - 95, branch[1] + 110)], fill=(235, 235, 255, 255), width=5)
    overlay(canvas, layer, blur=1.0)

    # Sea: dark swell with bright broken crests, the bolt reflected as a smear.
    sea = ~sky
    paint(canvas, sea, (28, 44, 110), 0.6 * smooth_noise(rng, (40, 60)) * sea)
    layer, draw = new_layer()
    for _ in range(520):
        cy = rng.uniform(horizon + 0.02, 1.0) * H
        depth = (cy / H - horizon) / (1 - horizon)
        cx = rng.uniform(0, W)
        length = 12 + 90 * depth
        shade = int(rng.uniform(190, 250))
        draw.line([(cx - length, cy), (cx, cy - 4 * depth - 2), (cx + length * 0.6, cy)],
                  fill=(shade, shade, 255, 255), width=max(2, int(7 * depth)))
    overlay(canvas, layer, blur=1.2)
    paint(canvas, np.ones((H, W)), (170, 170, 255), 0.7 * radial(0.62 * W, 0.7 * H, 0.22 * W) * sea)

    layer, draw = new_layer()  # rain
    for _ in range(700):
        x, y = rng.uniform(-100, W), rng.uniform(0, H)
        draw.line([(x, y), (x + 14, y + 46)], fill=(160, 170, 220, 80), width=2)
    overlay(canvas, layer)
    grain(canvas, rng, 2.0)
    return finish(canvas)


def dusk() -> Image.Image:
    rng = np.random.default_rng(5)
    canvas = vertical_gradient([(0.0, (58, 64, 84)), (0.5, (96, 102, 122)), (0.62, (112, 116, 132)), (1.0, (112, 116, 132))])
    haze = fractal_noise(rng)
    paint(canvas, np.ones((H, W)), (120, 124, 140), 0.35 * haze)
    paint(canvas, np.ones((H, W)), (150, 152, 165), 0.6 * radial(0.28 * W, 0.24 * H, 0.16 * W))  # moon glow
    paint(canvas, radial(0.28 * W, 0.24 * H, 0.035 * W) > 0, (170, 172, 182))

    for base, amp, colour in ((0.50, 0.03, (74, 80, 98)), (0.56, 0.025, (60, 65, 82)), (0.62, 0.018, (48, 52, 66))):
        paint(canvas, below(ridge(rng, base, amp, 4)), colour)

    # A still lake: the sky mirrored, darker, with faint ripples.
    lake_top = int(0.68 * H)
    mirrored = canvas[lake_top - 1 :: -1][: H - lake_top].copy() * 0.78
    ripples = 1 + 0.04 * np.sin(np.arange(H - lake_top)[:, None] * 0.9 + smooth_noise(rng, (8, 30))[lake_top:] * 6)
    canvas[lake_top:] = mirrored * ripples[..., None]
    paint(canvas, below(np.full(W, 0.68 * H)) & ~below(np.full(W, 0.69 * H)), (46, 50, 62))

    layer, draw = new_layer()  # a few distant trees on the shore
    for x in rng.uniform(0.55, 0.95, 14) * W:
        height = rng.uniform(18, 44)
        draw.polygon([(x, 0.68 * H - height), (x - height * 0.22, 0.68 * H), (x + height * 0.22, 0.68 * H)], fill=(38, 42, 54, 255))
    overlay(canvas, layer, blur=0.8)
    grain(canvas, rng, 1.0)
    return finish(canvas)


def meadow() -> Image.Image:
    rng = np.random.default_rng(8)
    canvas = vertical_gradient([(0.0, (176, 208, 232)), (0.45, (222, 234, 240)), (1.0, (222, 234, 240))])
    clouds = np.clip((fractal_noise(rng) - 0.5) * 3, 0, 1) * (np.arange(H)[:, None] < 0.45 * H)
    paint(canvas, np.ones((H, W)), (248, 250, 252), 0.8 * clouds)

    layers = ((0.44, 0.02, (188, 214, 176)), (0.52, 0.03, (172, 208, 158)), (0.64, 0.04, (158, 200, 146)), (0.78, 0.03, (176, 214, 158)))
    for base, amp, colour in layers:
        mask = below(ridge(rng, base, amp, 3))
        paint(canvas, mask, colour)
        paint(canvas, mask, tuple(c - 14 for c in colour), 0.5 * smooth_noise(rng, (30, 22)))

    layer, draw = new_layer()  # pastel flowers, denser and bigger near the viewer
    for _ in range(900):
        y = rng.uniform(0.6, 1.0) * H
        depth = (y / H - 0.6) / 0.4
        x = rng.uniform(0, W)
        r = 2 + 6 * depth
        colour = [(246, 208, 222), (226, 214, 240), (252, 250, 240), (250, 232, 196)][rng.integers(4)]
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour + (255,))
    for _ in range(500):  # grass blades
        x, y = rng.uniform(0, W), rng.uniform(0.7, 1.0) * H
        draw.line([(x, y), (x + rng.uniform(-6, 6), y - rng.uniform(10, 26))], fill=(150, 190, 138, 200), width=2)
    overlay(canvas, layer, blur=0.8)
    grain(canvas, rng, 0.75)
    return finish(canvas)


SCENES = {"sunflowers": sunflowers, "storm": storm, "dusk": dusk, "meadow": meadow}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "examples")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, draw_scene in SCENES.items():
        path = args.out / f"{name}.png"
        draw_scene().save(path, optimize=True)
        print(f"{path}  {path.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
