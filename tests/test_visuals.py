"""The emotion chart and the piano roll: real PNGs, of the right size, with things where they belong."""

from __future__ import annotations

import io

import numpy as np
import pretty_midi
import pytest
from PIL import Image

from aria_engine.emotion import Emotion, Trajectory
from aria_engine.visuals import (
    CHART_LEFT,
    CHART_SIDE,
    CHART_TOP,
    FAMILY_COLOURS,
    PATH_COLOUR,
    POINT_COLOUR,
    chart_position,
    emotion_chart,
    note_colour,
    piano_roll,
)


def decode(png: bytes) -> np.ndarray:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    return np.asarray(image.convert("RGB")).astype(int)


def mask_of(pixels: np.ndarray, colour, tolerance: int = 6) -> np.ndarray:
    return (np.abs(pixels - np.asarray(colour)) <= tolerance).all(axis=-1)


# -- the emotion chart ----------------------------------------------------------------------


def test_chart_is_a_png_of_the_requested_size():
    assert decode(emotion_chart(Emotion(0.3, 0.2))).shape == (512, 512, 3)
    assert decode(emotion_chart(Emotion(0.3, 0.2), size_px=300)).shape == (300, 300, 3)


def test_chart_position_maps_the_plane_onto_the_plot_square():
    size = 400
    left, top, side = CHART_LEFT * size, CHART_TOP * size, CHART_SIDE * size
    assert chart_position(-1, 1, size) == pytest.approx((left, top))
    assert chart_position(1, -1, size) == pytest.approx((left + side, top + side))
    assert chart_position(0, 0, size) == pytest.approx((left + side / 2, top + side / 2))
    x_pos, y_pos = chart_position(0.5, 0.5, size)
    assert x_pos > left + side / 2 and y_pos < top + side / 2  # pleasant is right, energetic is up


@pytest.mark.parametrize(("valence", "arousal"), [(0.62, -0.31), (-0.7, 0.55), (-0.4, -0.8), (0.9, 0.9)])
def test_the_point_lands_where_chart_position_says_and_nowhere_else(valence, arousal):
    pixels = decode(emotion_chart(Emotion(valence, arousal)))
    red = mask_of(pixels, POINT_COLOUR, tolerance=10)
    x, y = chart_position(valence, arousal)
    assert red[round(y), round(x)]
    # The red disc sits in the right quadrant: its centre of mass is the point.
    ys, xs = np.nonzero(red)
    disc = (np.abs(xs - x) < 12) & (np.abs(ys - y) < 12)
    assert disc.sum() > 150
    assert np.mean(xs[disc]) == pytest.approx(x, abs=1.5) and np.mean(ys[disc]) == pytest.approx(y, abs=1.5)
    mirror_x, mirror_y = chart_position(-valence, -arousal)
    assert not red[round(mirror_y), round(mirror_x)]


def test_trajectory_is_drawn_as_a_path():
    start, middle, end = Emotion(-0.6, -0.6), Emotion(0.0, 0.4), Emotion(0.7, -0.2)
    with_path = decode(emotion_chart(end, trajectory=Trajectory.linear([start, middle, end])))
    without = decode(emotion_chart(end))
    halfway = chart_position(-0.3, -0.1)  # on the segment from start to middle
    near = (slice(round(halfway[1]) - 2, round(halfway[1]) + 3), slice(round(halfway[0]) - 2, round(halfway[0]) + 3))
    assert mask_of(with_path[near], PATH_COLOUR, tolerance=40).any()
    assert not mask_of(without[near], PATH_COLOUR, tolerance=40).any()
    # A constant trajectory has no path to draw, and is no error.
    decode(emotion_chart(end, trajectory=Trajectory.constant(end)))


def test_extreme_points_stay_on_the_picture():
    for v, a in [(1, 1), (-1, -1), (1, -1), (-1, 1), (0, 0)]:
        pixels = decode(emotion_chart(Emotion(v, a)))
        x, y = chart_position(v, a)
        assert mask_of(pixels, POINT_COLOUR, tolerance=10)[round(y), round(x)]


# -- the piano roll -------------------------------------------------------------------------


def made_midi(*, piano=True, bass=True, drums=True) -> pretty_midi.PrettyMIDI:
    """Piano C4 over 0-2 s, bass C2 over 2-4 s, a kick every half second, a hi-hat every quarter."""
    midi = pretty_midi.PrettyMIDI()
    if piano:
        keys = pretty_midi.Instrument(program=0)
        keys.notes.append(pretty_midi.Note(velocity=100, pitch=60, start=0.0, end=2.0))
        keys.notes.append(pretty_midi.Note(velocity=100, pitch=64, start=0.5, end=1.5))
        midi.instruments.append(keys)
    if bass:
        low = pretty_midi.Instrument(program=33)
        low.notes.append(pretty_midi.Note(velocity=100, pitch=36, start=2.0, end=4.0))
        midi.instruments.append(low)
    if drums:
        kit = pretty_midi.Instrument(program=0, is_drum=True)
        for k in range(8):
            kit.notes.append(pretty_midi.Note(velocity=100, pitch=36, start=k * 0.5, end=k * 0.5 + 0.01))
            kit.notes.append(pretty_midi.Note(velocity=80, pitch=42, start=k * 0.5 + 0.25, end=k * 0.5 + 0.3))
        midi.instruments.append(kit)
    return midi


def test_piano_roll_is_a_png_of_the_requested_size():
    assert decode(piano_roll(made_midi())).shape == (400, 1024, 3)
    assert decode(piano_roll(made_midi(), width_px=640, height_px=300)).shape == (300, 640, 3)


def test_notes_are_drawn_where_and_when_they_play():
    pixels = decode(piano_roll(made_midi()))
    height, width = pixels.shape[:2]
    body = pixels[40:]  # below the legend
    piano = mask_of(body, note_colour("piano", 100))
    bass = mask_of(body, note_colour("bass", 100))
    drums = mask_of(body, note_colour("drums", 100)) | mask_of(body, note_colour("drums", 80))
    for notes in (piano, bass, drums):
        assert notes.sum() > 20
    piano_ys, piano_xs = np.nonzero(piano)
    bass_ys, bass_xs = np.nonzero(bass)
    drum_ys, drum_xs = np.nonzero(drums)
    # Time runs left to right: the piano plays in the first half, the bass in the second.
    assert piano_xs.max() <= bass_xs.min()
    assert piano_xs.max() < 0.55 * width and bass_xs.min() > 0.48 * width  # 2 s of 4 s, after the margin
    # Pitch runs upwards: C4 is above C2; drums have a band of their own at the bottom.
    assert piano_ys.mean() < bass_ys.mean() < drum_ys.min()
    assert drum_ys.min() + 40 > 0.6 * height
    # Drum hits are short ticks across the whole piece.
    assert drum_xs.min() < 0.1 * width and drum_xs.max() > 0.8 * width


def test_legend_shows_each_family_that_plays():
    pixels = decode(piano_roll(made_midi()))
    legend = pixels[:30]
    for family in ("piano", "bass", "drums"):
        assert mask_of(legend, FAMILY_COLOURS[family], tolerance=0).sum() > 50
    for family in ("guitar", "strings"):
        assert not mask_of(pixels, FAMILY_COLOURS[family], tolerance=0).any()


def test_pitched_only_drums_only_and_odd_notes_draw_without_error():
    for midi in (made_midi(drums=False), made_midi(piano=False, bass=False)):
        assert decode(piano_roll(midi)).shape == (400, 1024, 3)
    odd = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(program=48)
    inst.notes.append(pretty_midi.Note(velocity=1, pitch=127, start=0.0, end=0.0))  # zero length, top key
    inst.notes.append(pretty_midi.Note(velocity=127, pitch=0, start=599.0, end=600.0))  # ten minutes in
    kit = pretty_midi.Instrument(program=0, is_drum=True)
    kit.notes.append(pretty_midi.Note(velocity=90, pitch=81, start=1.0, end=1.1))  # a triangle: "other"
    odd.instruments.extend([inst, kit])
    pixels = decode(piano_roll(odd))
    assert mask_of(pixels, note_colour("strings", 127)).any()


def test_empty_midi_gives_a_readable_picture_not_a_crash():
    midi = pretty_midi.PrettyMIDI()
    midi.instruments.append(pretty_midi.Instrument(program=0))  # an instrument with no notes
    pixels = decode(piano_roll(midi))
    assert pixels.shape == (400, 1024, 3)
    text = (pixels < 200).all(axis=-1)
    assert text[150:260, 380:650].sum() > 200  # the "no notes" message, in the middle
    for colour in FAMILY_COLOURS.values():
        assert not mask_of(pixels, colour, tolerance=0).any()
