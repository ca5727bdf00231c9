"""Synthesis split over two synths, the clip's shorter ring-out, and the lazy byte budget: all with
the real FluidSynth and real SoundFonts."""

from __future__ import annotations

import struct

import io

import numpy as np
import pretty_midi
import pytest
import soundfile

from aria_engine.render import AudioTooLarge, RenderError, Renderer, soundfonts, synthesis
from aria_engine.render.mastering import normalise, trim_and_normalise, trim_silence
from aria_engine.render.soundfonts import FLUIDR3_PATH, TIMGM_PATH, preset_samples
from aria_engine.render.synthesis import CLIP_TAIL, assign_channels, split_for_synths

SR = 44100


def default_font():
    return FLUIDR3_PATH if FLUIDR3_PATH.exists() else TIMGM_PATH


@pytest.fixture(scope="module")
def split():
    with Renderer(default_font(), synth_parts=2) as r:
        yield r


@pytest.fixture(scope="module")
def single():
    with Renderer(default_font(), synth_parts=1) as r:
        yield r


def instrument(program, notes, is_drum=False, name=""):
    inst = pretty_midi.Instrument(program, is_drum=is_drum, name=name)
    inst.notes = [pretty_midi.Note(velocity=v, pitch=p, start=s, end=e) for v, p, s, e in notes]
    return inst


def quartet(seconds: float = 4.0) -> pretty_midi.PrettyMIDI:
    """Drums, bass, guitar strums and strings: a small version of what the composer writes."""
    beat, midi = 0.5, pretty_midi.PrettyMIDI()
    beats = [b * beat for b in range(int(seconds / beat))]
    drums = instrument(0, [(110, 36 if i % 2 == 0 else 38, t, t + 0.1) for i, t in enumerate(beats)], True, "drums")
    drums.notes += [pretty_midi.Note(80, 42, t + beat / 2, t + beat / 2 + 0.05) for t in beats]
    bass = instrument(33, [(100, 36 + (i % 4) * 2, t, t + 0.4) for i, t in enumerate(beats)], name="bass")
    guitar = instrument(25, [(85, p, t + k * 0.01, t + 0.45) for t in beats for k, p in enumerate((52, 55, 59, 64))],
                        name="guitar")
    strings = instrument(48, [(70, p, 0.0, seconds) for p in (60, 64, 67)], name="strings")
    midi.instruments = [drums, bass, guitar, strings]
    return midi


def decode(data: bytes):
    return soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)


def relative_db(difference: np.ndarray, reference: np.ndarray) -> float:
    rms = lambda x: np.sqrt(np.mean(np.square(x, dtype=np.float64)))  # noqa: E731
    return 20 * np.log10(rms(difference) / rms(reference))


# --- Which instruments play together --------------------------------------------------------


def test_preset_samples_maps_every_general_midi_program():
    for path in (FLUIDR3_PATH, TIMGM_PATH):
        if not path.exists():
            continue
        presets = preset_samples(path)
        assert all(presets.get((0, program)) for program in range(128)), path
        assert presets.get((128, 0)), f"{path} has no standard drum kit"
    presets = preset_samples(TIMGM_PATH)
    assert presets[(0, 0)].isdisjoint(presets[(0, 33)])  # piano and bass play different recordings


def test_a_font_whose_presets_cannot_be_mapped_plays_on_one_synth(tmp_path, monkeypatch):
    truncated = tmp_path / "truncated.sf2"
    truncated.write_bytes(TIMGM_PATH.read_bytes()[:4096])
    with pytest.raises(struct.error):
        preset_samples(truncated)

    def unreadable(path):
        raise ValueError("no preset data")

    monkeypatch.setattr(soundfonts, "preset_samples", unreadable)
    with Renderer(TIMGM_PATH, synth_parts=2) as renderer:
        assert renderer._font.presets == {}
        midi = quartet(1.0)
        channels = assign_channels(midi.instruments)
        assert split_for_synths(midi.instruments, channels, renderer._font, 2) == [[0, 1, 2, 3]]
        clip = renderer.render(midi)
    audio, _ = decode(clip.data)
    assert np.abs(audio).max() > 0.5


def test_split_balances_notes_and_keeps_channels_and_samples_together(split):
    font = split._font
    midi = quartet()
    presets = [font.presets[font.preset(inst)] for inst in midi.instruments]
    assert all(a.isdisjoint(b) for i, a in enumerate(presets) for b in presets[:i]), "font shares samples"
    channels = assign_channels(midi.instruments)
    # Heaviest first onto the lighter synth: guitar (32 notes) | drums (16), bass (8), strings (3).
    assert [len(inst.notes) for inst in midi.instruments] == [16, 8, 32, 3]
    assert split_for_synths(midi.instruments, channels, font, 2) == [[2], [0, 1, 3]]
    assert split_for_synths(midi.instruments, channels, font, 1) == [[0, 1, 2, 3]]
    assert split_for_synths(midi.instruments, channels, font, 8) == [[2], [0], [1], [3]]

    # The same program on two channels plays the same samples: one synth.
    twins = [instrument(0, [(90, 60, 0, 1)] * 50), instrument(0, [(90, 64, 0, 1)] * 50)]
    assert split_for_synths(twins, assign_channels(twins), font, 2) == [[0, 1]]
    if default_font() == FLUIDR3_PATH:  # its two grand pianos share recordings
        pianos = [instrument(0, [(90, 60, 0, 1)] * 50), instrument(1, [(90, 64, 0, 1)] * 50)]
        assert split_for_synths(pianos, assign_channels(pianos), font, 2) == [[0, 1]]

    # Instruments squeezed onto one channel (more of them than the synth has channels) stay together.
    crowd = [instrument((33, 48)[p % 2], [(90, 60, 0, 0.1)]) for p in range(260)]  # disjoint samples
    crowd_channels = assign_channels(crowd)
    groups = split_for_synths(crowd, crowd_channels, font, 2)
    assert len(groups) == 2
    for group in groups:
        assert len({crowd_channels[i] for i in group}) == 1

    silent = [instrument(0, []), *quartet(1.0).instruments]  # no notes: no synth of its own
    assert all(0 not in g or len(g) > 1 for g in split_for_synths(silent, assign_channels(silent), font, 8))


# --- Same sound, on two synths ----------------------------------------------------------------


def test_two_synths_sound_like_one(split, single):
    midi = quartet()
    one, two = single.synthesize(midi), split.synthesize(midi)
    assert len(one) == len(two)
    # Not bit-identical: FluidSynth ramps each new voice's first 64 samples from the level its
    # voice slot last played at, and which notes shared slots differs. Everything else adds up.
    assert relative_db(two - one, one) < -40


def test_split_renders_are_bit_for_bit_repeatable(split):
    midi = quartet(2.0)
    first = split.synthesize(midi)
    split.synthesize(quartet(1.0))  # a render in between must not leak into the next
    assert np.array_equal(first, split.synthesize(midi))
    assert np.array_equal(first, synthesis.synthesize(midi, soundfont=split.soundfont))  # fresh font, same split


def test_one_instrument_plays_on_one_synth_exactly_as_before(split, single):
    midi = pretty_midi.PrettyMIDI()
    midi.instruments = [instrument(0, [(90, 60 + i % 12, i * 0.1, i * 0.1 + 0.3) for i in range(20)])]
    assert np.array_equal(split.synthesize(midi), single.synthesize(midi))


# --- The clip's ring-out and encoding ---------------------------------------------------------


def test_the_clip_tail_stops_early_without_changing_the_clip(split, single):
    midi = quartet()
    del midi.instruments[2]  # the steel guitar rings for seconds: without it the tail soon fades
    for renderer in (single, split):
        full = renderer.synthesize(midi)
        short = renderer.synthesize(midi, tail=CLIP_TAIL)
        assert len(short) < len(full)
        expected, clip = normalise(trim_silence(full, SR)), trim_and_normalise(short, SR)
        if renderer is single:
            assert np.array_equal(clip, expected)  # exactly the clip the whole ring-out gives
        else:  # each synth stops on its own, 70 dB below its own peak: the rest it leaves out is tiny
            assert abs(len(clip) - len(expected)) <= round(0.01 * SR)
            n = min(len(clip), len(expected))
            assert np.abs(clip[:n] - expected[:n]).max() < 10 ** (-70 / 20)


def test_trim_and_normalise_in_place_is_normalise_of_trim():
    rng = np.random.default_rng(1)
    audio = np.concatenate([rng.normal(0, 0.2, (SR, 2)), np.zeros((SR, 2))]).astype(np.float32)
    expected = normalise(trim_silence(audio.copy(), SR))
    assert np.array_equal(trim_and_normalise(audio, SR), expected)
    with pytest.raises(RenderError, match="silence"):
        trim_and_normalise(np.zeros((SR, 2), np.float32), SR)


def test_render_reports_its_stage_times(split):
    clip = split.render(quartet(1.0))
    assert set(clip.timings) == {"synthesis", "mastering", "encoding"}
    assert all(t >= 0 for t in clip.timings.values())


def test_a_byte_budget_can_be_given_once_the_clip_is_encoded(split):
    midi = quartet(2.0)
    full = split.render(midi)
    asked = []

    def budget():
        asked.append(True)
        return len(full.data) // 2

    half = split.render(midi, max_bytes=budget)
    assert asked == [True]
    assert len(half.data) <= len(full.data) // 2 and half.notes
    unlimited = split.render(midi, max_bytes=lambda: None)
    assert np.array_equal(decode(unlimited.data)[0], decode(full.data)[0]) and unlimited.notes == []


def test_audio_too_large_carries_the_whole_clip(split):
    midi = quartet(2.0)
    full = split.render(midi)
    with pytest.raises(AudioTooLarge) as caught:
        split.render(midi, max_bytes=lambda: 2000)
    kept = caught.value.unfitted
    assert kept is not None and kept.notes == [] and kept.duration_s == full.duration_s
    audio, rate = decode(kept.data)
    assert rate == SR and np.array_equal(audio, decode(full.data)[0])  # the same clip, whole
    with pytest.raises(AudioTooLarge) as caught:
        split.render(midi, max_bytes=lambda: 0)
    assert caught.value.unfitted is not None
