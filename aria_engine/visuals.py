"""The two pictures in a reply: the emotion on the valence-arousal plane, and the piano roll.

Drawn with Pillow rather than matplotlib: the same two pictures made with matplotlib's Agg
canvas took 200-350 ms each here (mostly text layout), Pillow takes a few tens of ms, and the
whole pipeline has about a second. The chart is drawn at twice its size and downsampled, which
antialiases its circles and diagonal lines; the piano roll is all axis-aligned bars and is drawn
at its final size. Text uses DejaVu Sans (shipped inside matplotlib, a core dependency).

Every element sits at a fixed place, so `chart_position` says exactly where a point lands.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pretty_midi
from PIL import Image, ImageDraw, ImageFont

from aria_engine.emotion import QUADRANTS, Emotion, Trajectory
from aria_engine.music import FAMILIES, instrument_family

RGB = tuple[int, int, int]

WHITE: RGB = (255, 255, 255)
INK: RGB = (43, 45, 66)
SOFT_INK: RGB = (92, 96, 118)
MUTED: RGB = (141, 145, 166)
GRID: RGB = (227, 229, 236)


# -- fonts ----------------------------------------------------------------------------------


def _font_dirs() -> list[Path]:
    dirs = []
    spec = importlib.util.find_spec("matplotlib")  # found without importing matplotlib
    if spec and spec.submodule_search_locations:
        dirs.append(Path(next(iter(spec.submodule_search_locations))) / "mpl-data" / "fonts" / "ttf")
    dirs.append(Path("/usr/share/fonts/truetype/dejavu"))
    return dirs


@functools.lru_cache(maxsize=64)
def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    for directory in _font_dirs():
        if (directory / name).is_file():
            return ImageFont.truetype(str(directory / name), size)
    return ImageFont.load_default(size)


def _paste_vertical_text(image: Image.Image, text: str, text_font, centre: tuple[float, float], colour: RGB) -> None:
    """Text turned 90 degrees counter-clockwise (reading upwards), centred on `centre`."""
    left, top, right, bottom = text_font.getbbox(text)
    strip = Image.new("RGB", (right - left + 4, bottom - top + 4), WHITE)
    ImageDraw.Draw(strip).text((2 - left, 2 - top), text, font=text_font, fill=colour)
    strip = strip.transpose(Image.Transpose.ROTATE_90)
    image.paste(strip, (round(centre[0] - strip.width / 2), round(centre[1] - strip.height / 2)))


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=3)
    return buffer.getvalue()


def _mix(colour: RGB, alpha: float, background: RGB = WHITE) -> RGB:
    """`colour` at opacity `alpha` over `background`, as an opaque colour."""
    return tuple(round(b + (c - b) * alpha) for c, b in zip(colour, background))


def _hex(code: str) -> RGB:
    return tuple(int(code[i : i + 2], 16) for i in (1, 3, 5))


# -- the emotion chart ----------------------------------------------------------------------

# The plot square inside the chart, as fractions of the picture: left, top, side.
CHART_LEFT, CHART_TOP, CHART_SIDE = 0.125, 0.045, 0.83
SUPERSAMPLE = 2
QUADRANT_TINTS: dict[tuple[int, int], RGB] = {
    (1, 1): _hex("#fff1c9"),  # happy / excited: warm yellow
    (-1, 1): _hex("#ffd9d4"),  # angry / tense: red
    (-1, -1): _hex("#dbe4f5"),  # sad / depressed: blue
    (1, -1): _hex("#d9f0e0"),  # calm / serene: green
}
POINT_COLOUR: RGB = _hex("#d62839")
PATH_COLOUR: RGB = _hex("#5c6784")
TICKS = (-1.0, -0.5, 0.0, 0.5, 1.0)


def chart_position(valence: float, arousal: float, size_px: int = 512) -> tuple[float, float]:
    """Pixel (x, y) of a point on a chart `size_px` wide, y counted down from the top."""
    x = (CHART_LEFT + (valence + 1) / 2 * CHART_SIDE) * size_px
    y = (CHART_TOP + (1 - arousal) / 2 * CHART_SIDE) * size_px
    return x, y


@dataclass(frozen=True)
class _Canvas:
    """A supersampled drawing surface that speaks in chart units and final-picture pixels."""

    draw: ImageDraw.ImageDraw
    size_px: int

    @property
    def unit(self) -> float:
        """One final pixel at the 512-px design size, in canvas pixels."""
        return SUPERSAMPLE * self.size_px / 512

    def at(self, valence: float, arousal: float) -> tuple[float, float]:
        x, y = chart_position(valence, arousal, self.size_px)
        return x * SUPERSAMPLE, y * SUPERSAMPLE

    def font(self, size: float, bold: bool = False):
        return font(max(6, round(size * self.unit)), bold)


def emotion_chart(emotion: Emotion, *, trajectory: Trajectory | None = None, size_px: int = 512) -> bytes:
    """PNG: the valence-arousal plane with its four quadrants, the point, and the path if any."""
    big = Image.new("RGB", (size_px * SUPERSAMPLE, size_px * SUPERSAMPLE), WHITE)
    canvas = _Canvas(ImageDraw.Draw(big), size_px)
    _draw_plane(canvas)
    _draw_quadrant_names(canvas, emotion)
    _draw_axis_labels(big, canvas)
    if trajectory is not None and len(trajectory.keyframes) > 1:
        _draw_path(canvas, [e for _, e in trajectory.keyframes])
    _draw_point(canvas, emotion)
    return _png(big.reduce(SUPERSAMPLE))  # a box average of each 2x2 block: the antialiasing


def trajectory_chart(points: list[tuple[str, Emotion]], *, size_px: int = 512) -> bytes:
    """PNG: a jam's path on the valence-arousal plane, each contribution a numbered point with
    its contributor's name beside it (the board redraws it as the jam grows)."""
    big = Image.new("RGB", (size_px * SUPERSAMPLE, size_px * SUPERSAMPLE), WHITE)
    canvas = _Canvas(ImageDraw.Draw(big), size_px)
    _draw_plane(canvas)
    _draw_axis_labels(big, canvas)
    d, u = canvas.draw, canvas.unit
    xy = [canvas.at(e.valence, e.arousal) for _, e in points]
    if len(xy) > 1:
        d.line(xy, fill=PATH_COLOUR, width=round(2.2 * u), joint="curve")
        _arrowhead(d, xy[-2], xy[-1], 12 * u, PATH_COLOUR)
    number_font, name_font = canvas.font(11, bold=True), canvas.font(11)
    for number, ((name, emotion), (x, y)) in enumerate(zip(points, xy), start=1):
        r = 9 * u
        d.ellipse((x - r, y - r, x + r, y + r), fill=POINT_COLOUR, outline=WHITE, width=round(1.5 * u))
        d.text((x, y), str(number), font=number_font, fill=WHITE, anchor="mm")
        right_side = emotion.valence <= 0.4
        d.text((x + (13 if right_side else -13) * u, y), f"{name} ({emotion.label})", font=name_font,
               fill=INK, anchor="lm" if right_side else "rm")
    return _png(big.reduce(SUPERSAMPLE))


def _draw_plane(c: _Canvas) -> None:
    d, u = c.draw, c.unit
    for (sv, sa), tint in QUADRANT_TINTS.items():
        x0, y0 = c.at(min(0, sv), max(0, sa))
        x1, y1 = c.at(max(0, sv), min(0, sa))
        d.rectangle((x0, y0, x1, y1), fill=tint)
    for value in (-0.5, 0.5):
        d.line((c.at(value, -1), c.at(value, 1)), fill=WHITE, width=round(1.2 * u))
        d.line((c.at(-1, value), c.at(1, value)), fill=WHITE, width=round(1.2 * u))
    d.line((c.at(0, -1), c.at(0, 1)), fill=MUTED, width=round(1.3 * u))
    d.line((c.at(-1, 0), c.at(1, 0)), fill=MUTED, width=round(1.3 * u))
    d.rectangle((*c.at(-1, 1), *c.at(1, -1)), outline=MUTED, width=round(1.0 * u))



    tick_font = c.font(10)
    for value in TICKS:
        x, y = c.at(value, -1)
        d.line((x, y, x, y + 4 * u), fill=MUTED, width=round(u))
        d.text((x, y + 6 * u), f"{value:g}", font=tick_font, fill=MUTED, anchor="ma")
        x, y = c.at(-1, value)
        d.line((x - 4 * u, y, x, y), fill=MUTED, width=round(u))
        d.text((x - 6 * u, y), f"{value:g}", font=tick_font, fill=MUTED, anchor="rm")


def _draw_quadrant_names(c: _Canvas, avoid: Emotion) -> None:
    """Each name in its quadrant's outer corner, or by the axis when the point would cover it."""
    name_font = c.font(13, bold=True)
    px, py = c.at(avoid.valence, avoid.arousal)
    margin = 14 * c.unit
    for (sv, sa), name in QUADRANTS.items():
        vertical = "a" if sa > 0 else "d"
        place = (c.at(0.95 * sv, 0.95 * sa), ("r" if sv > 0 else "l") + vertical)
        left, top, right, bottom = c.draw.textbbox(place[0], name, font=name_font, anchor=place[1])
        if left - margin <= px <= right + margin and top - margin <= py <= bottom + margin:
            place = (c.at(0.05 * sv, 0.95 * sa), ("l" if sv > 0 else "r") + vertical)
        c.draw.text(place[0], name, font=name_font, fill=SOFT_INK, anchor=place[1])


def _draw_axis_labels(big: Image.Image, c: _Canvas) -> None:
    label_font = c.font(12)
    x, y = c.at(0, -1)
    c.draw.text((x, y + 22 * c.unit), "valence  (unpleasant → pleasant)", font=label_font, fill=INK, anchor="ma")
    x, y = c.at(-1, 0)
    _paste_vertical_text(big, "arousal  (calm → energetic)", label_font, (x - 44 * c.unit, y), INK)


def _draw_path(c: _Canvas, points: list[Emotion]) -> None:
    d, u = c.draw, c.unit
    xy = [c.at(e.valence, e.arousal) for e in points]
    d.line(xy, fill=PATH_COLOUR, width=round(2.2 * u), joint="curve")
    for x, y in xy[:-1]:
        r = 3.5 * u
        d.ellipse((x - r, y - r, x + r, y + r), fill=PATH_COLOUR)
    _arrowhead(d, xy[-2], xy[-1], 12 * u, PATH_COLOUR)
    x, y = xy[0]
    d.text((x + 7 * u, y), "start", font=c.font(10), fill=PATH_COLOUR, anchor="lm")


def _arrowhead(d: ImageDraw.ImageDraw, tail, tip, length: float, colour: RGB) -> None:
    angle = math.atan2(tip[1] - tail[1], tip[0] - tail[0])
    spread = math.radians(24)
    left = (tip[0] - length * math.cos(angle - spread), tip[1] - length * math.sin(angle - spread))
    right = (tip[0] - length * math.cos(angle + spread), tip[1] - length * math.sin(angle + spread))
    d.polygon([tip, left, right], fill=colour)


def _draw_point(c: _Canvas, emotion: Emotion) -> None:
    d, u = c.draw, c.unit
    v, a = emotion.valence, emotion.arousal
    x, y = c.at(v, a)
    ring, r = 10.5 * u, 8 * u
    d.ellipse((x - ring, y - ring, x + ring, y + ring), fill=WHITE)
    d.ellipse((x - r, y - r, x + r, y + r), fill=POINT_COLOUR)

    # The label sits on the side of the point that faces the centre, so it stays on the plot.
    text = f"{emotion.label} ({v:+.2f}, {a:+.2f})"
    label_font = c.font(13, bold=True)
    left, top, right, bottom = d.textbbox((0, 0), text, font=label_font, anchor="lt")
    pad = 5 * u
    w, h = right - left + 2 * pad, bottom - top + 2 * pad
    bx = x + 16 * u if v <= 0.2 else x - 16 * u - w
    by = y - 16 * u - h if a <= 0.6 else y + 16 * u
    d.rounded_rectangle((bx, by, bx + w, by + h), radius=6 * u, fill=WHITE, outline=POINT_COLOUR, width=round(1.4 * u))
    d.text((bx + pad, by + pad), text, font=label_font, fill=INK, anchor="lt")


# -- the piano roll -------------------------------------------------------------------------

FAMILY_COLOURS: dict[str, RGB] = {
    "drums": _hex("#6c757d"),
    "guitar": _hex("#f4a261"),
    "bass": _hex("#264653"),
    "piano": _hex("#7b5ea7"),
    "strings": _hex("#2a9d8f"),
}
DRUM_ROWS = (  # (label, General MIDI percussion keys), bottom to top
    ("kick", (35, 36)),
    ("snare", (37, 38, 39, 40)),
    ("toms", (41, 43, 45, 47, 48, 50)),
    ("hi-hat", (42, 44, 46)),
    ("cymbals", (49, 51, 52, 53, 55, 57, 59)),
)
DRUM_TICK_S = 0.07  # a drum hit's length means little: every hit is a short tick (2..6 px)
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
TIME_STEPS = (0.5, 1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600)
DRUM_BAND_BG: RGB = (246, 246, 248)


@functools.lru_cache(maxsize=1024)
def note_colour(family: str, velocity: int) -> RGB:
    """A note's colour: its family's hue, more solid the louder it is."""
    return _mix(FAMILY_COLOURS[family], 0.45 + 0.55 * min(max(velocity, 0), 127) / 127)


@dataclass(frozen=True)
class _Band:
    """A horizontal strip of the roll: pixel box and the value range it shows (bottom to top)."""

    left: int
    top: int
    right: int
    bottom: int
    end_s: float
    low: float
    high: float

    def x(self, seconds: np.ndarray | float):
        return self.left + np.asarray(seconds) / self.end_s * (self.right - self.left)

    def y(self, value: np.ndarray | float):
        return self.bottom - (np.asarray(value) - self.low) / (self.high - self.low) * (self.bottom - self.top)


def piano_roll(midi: pretty_midi.PrettyMIDI, *, width_px: int = 1024, height_px: int = 400,
               sections: Sequence[tuple[float, str]] = ()) -> bytes:
    """PNG: notes as bars coloured by instrument family over time; drums in a band of their own;
    `sections` ((start time, label), e.g. a jam's contributors) as numbered boundary lines."""
    image = Image.new("RGB", (width_px, height_px), WHITE)
    draw = ImageDraw.Draw(image)
    by_family = _notes_by_family(midi)
    if not by_family:
        _draw_empty(draw, width_px, height_px)
        return _png(image)

    end = 1.01 * max(float(notes[:, 1].max()) for notes in by_family.values())
    pitched = {f: n for f, n in by_family.items() if f != "drums"}
    drums = by_family.get("drums")
    left, right, top, bottom = 62, width_px - 18, 34, height_px - 38
    drum_rows = _drum_rows(drums) if drums is not None else []
    drum_height = 0 if drums is None else (bottom - top if not pitched else max(14 * len(drum_rows), round(0.2 * (bottom - top))))
    gap = 8 if pitched and drums is not None else 0

    bands = []
    if pitched:
        low = min(int(n[:, 2].min()) for n in pitched.values()) - 2
        high = max(int(n[:, 2].max()) for n in pitched.values()) + 2
        band = _Band(left, top, right, bottom - drum_height - gap, end, low - 0.5, high + 0.5)
        _draw_time_grid(draw, band, end)
        _draw_pitched(draw, band, pitched)
        _draw_pitch_axis(image, draw, band, low, high)
        bands.append(band)
    if drums is not None:
        band = _Band(left, bottom - drum_height, right, bottom, end, -0.5, len(drum_rows) - 0.5)
        draw.rectangle((band.left, band.top, band.right, band.bottom), fill=DRUM_BAND_BG)
        _draw_time_grid(draw, band, end)
        _draw_drums(draw, band, drums, drum_rows)
        bands.append(band)
    _draw_time_axis(draw, bands[-1], end)
    _draw_legend(draw, [f for f in FAMILIES if f in by_family], left, 10)
    _draw_sections(draw, bands[0].top, bands[-1], sections)
    return _png(image)


def _draw_sections(draw, top: int, band: _Band, sections: Sequence[tuple[float, str]]) -> None:
    label_font = font(10, bold=True)
    for number, (start, label) in enumerate(sections, start=1):
        x = float(band.x(start))
        if number > 1:
            draw.line((x, top, x, band.bottom), fill=POINT_COLOUR, width=2)
        draw.text((x + 4, top + 2), f"{number}. {label}", font=label_font, fill=POINT_COLOUR, anchor="lt")


def _notes_by_family(midi: pretty_midi.PrettyMIDI) -> dict[str, np.ndarray]:
    """family -> array of (start, end, pitch, velocity) rows, for instruments that play."""
    grouped: dict[str, list] = {}
    for instrument in midi.instruments:
        if instrument.notes:
            rows = [(n.start, n.end, n.pitch, n.velocity) for n in instrument.notes]
            grouped.setdefault(instrument_family(instrument), []).extend(rows)
    return {family: np.array(rows, dtype=np.float64) for family, rows in grouped.items()}


def _draw_bars(draw: ImageDraw.ImageDraw, band: _Band, notes: np.ndarray, rows: np.ndarray, family: str) -> None:
    """One bar per note: x from start to end (drums: a fixed tick), y centred on its row."""
    x0 = np.floor(band.x(notes[:, 0])).astype(int)
    if family == "drums":
        tick = int(np.clip(round(float(band.x(DRUM_TICK_S)) - band.left), 2, 6))
        x1 = x0 + tick - 1
    else:
        x1 = np.maximum(np.ceil(band.x(notes[:, 1])).astype(int) - 1, x0 + 1)
    row_px = (band.bottom - band.top) / (band.high - band.low)
    half = max(1.0, 0.4 * row_px)
    y_mid = band.y(rows)
    y0 = np.round(y_mid - half).astype(int)
    y1 = np.maximum(np.round(y_mid + half).astype(int) - 1, y0)
    for i in np.argsort(notes[:, 3], kind="stable"):  # loud notes on top
        draw.rectangle((x0[i], y0[i], x1[i], y1[i]), fill=note_colour(family, int(notes[i, 3])))


def _draw_pitched(draw, band: _Band, pitched: dict[str, np.ndarray]) -> None:
    for family in FAMILIES:  # canonical order: later families draw on top
        if family in pitched:
            _draw_bars(draw, band, pitched[family], pitched[family][:, 2], family)


def _draw_pitch_axis(image: Image.Image, draw, band: _Band, low: int, high: int) -> None:
    small = font(10)
    draw.line((band.left, band.top, band.left, band.bottom), fill=MUTED)
    for pitch in range(low, high + 1):
        if pitch % 12 == 0:
            y = float(band.y(pitch))
            draw.line((band.left - 3, y, band.left, y), fill=MUTED)
            draw.text((band.left - 6, y), f"{NOTE_NAMES[0]}{pitch // 12 - 1}", font=small, fill=MUTED, anchor="rm")
    _paste_vertical_text(image, "pitch", font(11), (band.left - 44, (band.top + band.bottom) / 2), INK)


def _drum_rows(drums: np.ndarray) -> list[int]:
    """Which DRUM_ROWS are played (index len(DRUM_ROWS) means "other"), bottom to top."""
    return sorted({_drum_row(int(p)) for p in drums[:, 2]})


def _drum_row(key: int) -> int:
    for i, (_, keys) in enumerate(DRUM_ROWS):
        if key in keys:
            return i
    return len(DRUM_ROWS)


def _draw_drums(draw, band: _Band, drums: np.ndarray, rows_used: list[int]) -> None:
    place = {row: i for i, row in enumerate(rows_used)}
    rows = np.array([place[_drum_row(int(p))] for p in drums[:, 2]], dtype=np.float64)
    _draw_bars(draw, band, drums, rows, "drums")
    small = font(10)
    draw.line((band.left, band.top, band.left, band.bottom), fill=MUTED)
    for i, row in enumerate(rows_used):
        name = DRUM_ROWS[row][0] if row < len(DRUM_ROWS) else "other"
        draw.text((band.left - 6, float(band.y(i))), name, font=small, fill=MUTED, anchor="rm")


def _time_step(end: float) -> float:
    return next((s for s in TIME_STEPS if end / s <= 8), TIME_STEPS[-1])


def _draw_time_grid(draw, band: _Band, end: float) -> None:
    step = _time_step(end)
    for k in range(1, int(end / step) + 1):
        x = float(band.x(k * step))
        draw.line((x, band.top, x, band.bottom), fill=GRID)


def _draw_time_axis(draw, band: _Band, end: float) -> None:
    step = _time_step(end)
    small = font(10)
    draw.line((band.left, band.bottom, band.right, band.bottom), fill=MUTED)
    for k in range(0, int(end / step) + 1):
        x = float(band.x(k * step))
        draw.line((x, band.bottom, x, band.bottom + 3), fill=MUTED)
        draw.text((x, band.bottom + 5), f"{k * step:g}", font=small, fill=MUTED, anchor="ma")
    draw.text(((band.left + band.right) / 2, band.bottom + 19), "time (s)", font=font(11), fill=INK, anchor="ma")


def _draw_legend(draw, families: list[str], x: int, y: int) -> None:
    label_font = font(12)
    for family in families:
        draw.rectangle((x, y + 2, x + 16, y + 12), fill=FAMILY_COLOURS[family])
        draw.text((x + 22, y + 7), family, font=label_font, fill=INK, anchor="lm")
        x += 22 + round(draw.textlength(family, font=label_font)) + 20


def _draw_empty(draw, width_px: int, height_px: int) -> None:
    draw.rectangle((8, 8, width_px - 9, height_px - 9), outline=GRID, width=2)
    draw.text((width_px / 2, height_px / 2 - 6), "no notes", font=font(28, bold=True), fill=MUTED, anchor="md")
    draw.text((width_px / 2, height_px / 2 + 8), "this piece has nothing to draw", font=font(13), fill=MUTED, anchor="ma")
