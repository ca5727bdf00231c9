"""The procedural composer, judged on the MIDI it writes: every piece is written to bytes and
parsed back with pretty_midi, and the musical claims of the module docstring are measured there."""

from __future__ import annotations

import functools
import io
import statistics

import numpy as np
import pretty_midi
import pytest

from aria_engine.emotion import Emotion, Trajectory
from aria_engine.music import FAMILIES, instrument_family
from aria_engine.music.procedural import (
    CADENCES,
    PROGRESSIONS,
    SCALES,
    ProceduralComposer,
    chord_scale,
    leading_tone_diminished,
    midi_bytes,
    parse_numeral,
)
from aria_engine.options import GenerationOptions

COMPOSER = ProceduralComposer()
SEEDS = (0, 1, 2, 3)
AROUSAL_LADDER = (-0.9, -0.3, 0.3, 0.9)
MOODS = {  # a point in each quadrant and the centre
    "serene": Emotion(0.7, -0.6),
    "excited": Emotion(0.8, 0.8),
    "tense": Emotion(-0.8, 0.8),
    "sad": Emotion(-0.7, -0.7),
    "neutral": Emotion(0.0, 0.0),
}

# Krumhansl-Kessler key profiles (tonic first).
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


# --- helpers: compose, round-trip, measure ---------------------------------------------------


def compose(emotion: Emotion | Trajectory, seed: int = 1, **options):
    """A composition and its MIDI parsed back from bytes (cached: tests only read them).
    Pieces last 15 s unless a test asks otherwise: long enough for three phrases when lively."""
    options.setdefault("duration_s", 15.0)
    return _compose(emotion, seed, tuple(sorted(options.items())))


@functools.lru_cache(maxsize=None)
def _compose(emotion, seed, options):
    composition = COMPOSER.compose(emotion, GenerationOptions(seed=seed, **dict(options)))
    return composition, parse(composition.midi)


def parse(midi: pretty_midi.PrettyMIDI) -> pretty_midi.PrettyMIDI:
    return pretty_midi.PrettyMIDI(io.BytesIO(midi_bytes(midi)))


def pitched(midi):
    return [n for i in midi.instruments if not i.is_drum for n in i.notes]


def track(midi, family: str) -> pretty_midi.Instrument:
    (instrument,) = [i for i in midi.instruments if instrument_family(i) == family]
    return instrument


def tempo(midi) -> float:
    return float(midi.get_tempo_changes()[1][0])


def notes_per_second(notes, seconds: float) -> float:
    return len(notes) / seconds


def pitch_class_weights(notes, tonic_pc: int = 0) -> np.ndarray:
    """Duration-weighted pitch classes, rotated so index 0 is the tonic."""
    weights = np.zeros(12)
    for n in notes:
        weights[(n.pitch - tonic_pc) % 12] += n.end - n.start
    return weights


def estimate_key(midi) -> tuple[int, str]:
    """(tonic pitch class, "major"/"minor") that best fits the Krumhansl-Kessler profiles."""
    weights = pitch_class_weights(pitched(midi))
    best = max(
        ((np.corrcoef(np.roll(profile, tonic), weights)[0, 1], tonic, name)
         for tonic in range(12) for name, profile in (("major", MAJOR_PROFILE), ("minor", MINOR_PROFILE))),
    )
    return best[1], best[2]


def sounding(midi, time: float, families=None) -> list[pretty_midi.Note]:
    """Pitched notes sounding at `time`, optionally only from some families."""
    tracks = [i for i in midi.instruments if not i.is_drum]
    if families is not None:
        tracks = [i for i in tracks if instrument_family(i) in families]
    return [n for i in tracks for n in i.notes if n.start <= time < n.end]


def skyline(instrument) -> list[tuple[float, int]]:
    """(onset, highest sounding pitch) at each onset: the melody of a piano part."""
    onsets = sorted({n.start for n in instrument.notes})
    return [(t, max(n.pitch for n in instrument.notes if n.start <= t < n.end)) for t in onsets]


def mean_over_seeds(measure, emotion) -> float:
    return statistics.mean(measure(*compose(emotion, seed)) for seed in SEEDS)


def is_triad(pcs: set[int]) -> bool:
    """True when the pitch classes fit inside one major or minor triad."""
    return any(pcs <= {(r + i) % 12 for i in third} for r in range(12) for third in ((0, 4, 7), (0, 3, 7)))


# --- the MIDI file: instruments, duration, range, determinism ---------------------------------


@pytest.mark.parametrize("mood", MOODS)
def test_round_trip_keeps_families_programs_and_names(mood):
    composition, midi = compose(MOODS[mood])
    plan = COMPOSER.plan(MOODS[mood], seed=1)
    assert [i.name for i in midi.instruments] == [instrument_family(i) for i in midi.instruments]
    assert {instrument_family(i): i.program for i in midi.instruments} == dict(plan.instruments)
    assert [i.name for i in midi.instruments] == [f for f in FAMILIES if f in plan.families]
    assert all(i.notes for i in midi.instruments)
    assert composition.instruments == list(plan.families)
    assert composition.composer == "procedural" and composition.seed == 1 and composition.mode is None
    drums = [i for i in midi.instruments if i.name == "drums"]
    assert all(i.is_drum for i in drums)


@pytest.mark.parametrize("duration", [1.0, 4.0, 12.5, 30.0, 75.0])
@pytest.mark.parametrize("mood", ["sad", "excited"])
def test_piece_ends_at_the_requested_duration(duration, mood):
    composition, midi = compose(MOODS[mood], duration_s=duration)
    bar_s = 240.0 / tempo(midi)
    assert abs(midi.get_end_time() - duration) <= max(0.05 * duration, bar_s)
    assert abs(composition.duration_s - duration) < 0.01
    assert min(n.start for n in pitched(midi)) == 0.0  # no silent lead-in


@pytest.mark.parametrize("mood", MOODS)
def test_notes_stay_in_the_models_range(mood):
    for seed in SEEDS:
        _, midi = compose(MOODS[mood], seed)
        assert all(21 <= n.pitch <= 108 for i in midi.instruments for n in i.notes)
        assert all(1 <= n.velocity <= 127 for i in midi.instruments for n in i.notes)


@pytest.mark.parametrize("mood", MOODS)
def test_round_trip_does_not_garble_notes(mood):
    """Same-pitch notes never overlap on one track, so pretty_midi reads back what was written."""
    composition, midi = compose(MOODS[mood], duration_s=20)
    for written, read in zip(composition.midi.instruments, midi.instruments, strict=True):
        assert len(written.notes) == len(read.notes)
        by_key = lambda n: (round(n.start, 3), n.pitch)  # noqa: E731
        for a, b in zip(sorted(written.notes, key=by_key), sorted(read.notes, key=by_key)):
            assert a.pitch == b.pitch and a.velocity == b.velocity
            assert abs(a.start - b.start) < 2e-3 and abs(a.end - b.end) < 2e-3
        for pitch in {n.pitch for n in read.notes}:
            same = sorted((n for n in read.notes if n.pitch == pitch), key=lambda n: n.start)
            assert all(x.end <= y.start + 1e-9 for x, y in zip(same, same[1:]))
            assert all(n.end > n.start for n in same)


def test_same_seed_same_bytes_other_seed_other_piece():
    emotion = Emotion(0.3, 0.4)
    first = midi_bytes(COMPOSER.compose(emotion, GenerationOptions(seed=42)).midi)
    again = midi_bytes(ProceduralComposer().compose(emotion, GenerationOptions(seed=42)).midi)
    other = midi_bytes(COMPOSER.compose(emotion, GenerationOptions(seed=43)).midi)
    assert first == again
    assert first != other
    def notes(data: bytes):
        return [(n.pitch, round(n.start, 3)) for n in pitched(pretty_midi.PrettyMIDI(io.BytesIO(data)))]
    assert notes(first) != notes(other)


@pytest.mark.parametrize("minimum", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("mood", MOODS)
def test_min_instruments_families_really_play(mood, minimum):
    composition, midi = compose(MOODS[mood], min_instruments=minimum, duration_s=15)
    playing = {instrument_family(i) for i in midi.instruments if i.notes}
    assert len(playing) >= minimum
    assert len(composition.instruments) >= minimum


def test_drums_stay_soft_and_sparse_at_low_arousal():
    """The band always plays (issue 14: instruments switching on made densities jump), so calm
    drums are a soft ride and side stick, a few hits a bar."""
    _, calm = compose(MOODS["sad"])
    _, loud = compose(MOODS["tense"])
    soft_drums, loud_drums = track(calm, "drums"), track(loud, "drums")
    assert {n.pitch for n in soft_drums.notes} <= {36, 37, 49, 51}  # kick, side stick, crash, ride
    loudness = [statistics.mean(n.velocity for n in drums.notes) for drums in (soft_drums, loud_drums)]
    assert loudness[0] < loudness[1] - 25
    assert notes_per_second(soft_drums.notes, 15) < notes_per_second(loud_drums.notes, 15) / 3


# --- arousal: tempo, density, velocity, articulation, drums -----------------------------------


def test_tempo_rises_with_arousal_from_60_to_160():
    tempi = [tempo(compose(Emotion(0.2, a))[1]) for a in (-1.0, *AROUSAL_LADDER, 1.0)]
    assert tempi == sorted(tempi) and len(set(tempi)) == len(tempi)
    assert tempi[0] == pytest.approx(60, abs=0.5) and tempi[-1] == pytest.approx(160, abs=0.5)
    assert tempo(compose(Emotion(0.0, 0.0))[1]) == pytest.approx(110, abs=0.5)


def test_density_rises_with_arousal():
    def all_notes(c, m):
        return notes_per_second(pitched(m), m.get_end_time())

    def piano_notes(c, m):
        return notes_per_second(track(m, "piano").notes, m.get_end_time())

    overall = [mean_over_seeds(all_notes, Emotion(0.2, a)) for a in AROUSAL_LADDER]
    melody = [mean_over_seeds(piano_notes, Emotion(0.2, a)) for a in AROUSAL_LADDER]
    assert overall == sorted(overall) and melody == sorted(melody)
    assert melody[-1] > 3 * melody[0]


def test_velocity_rises_with_arousal():
    def mean_velocity(c, m):
        return statistics.mean(n.velocity for n in pitched(m))

    loudness = [mean_over_seeds(mean_velocity, Emotion(-0.2, a)) for a in AROUSAL_LADDER]
    assert loudness == sorted(loudness)
    assert loudness[-1] - loudness[0] > 40


def test_notes_get_shorter_with_arousal():
    """Legato when calm, staccato when energetic: the melody's sounding length per beat falls."""
    def beats_per_note(c, m):
        beat = 60.0 / tempo(m)
        return statistics.mean((n.end - n.start) / beat for n in track(m, "piano").notes)
    lengths = [mean_over_seeds(beats_per_note, Emotion(0.5, a)) for a in AROUSAL_LADDER]
    assert lengths == sorted(lengths, reverse=True)


def test_drums_follow_arousal():
    hits = []
    for a in AROUSAL_LADDER:
        _, midi = compose(Emotion(0.4, a))
        drums = [i for i in midi.instruments if i.is_drum]
        hits.append(notes_per_second(drums[0].notes, 15) if drums else 0.0)
    assert 0.0 < hits[0] < 1.5
    assert hits == sorted(hits) and hits[-1] > 5 * hits[0]
    _, full = compose(Emotion(0.4, 0.9))
    kit = {n.pitch for n in track(full, "drums").notes}
    assert {36, 38, 42, 49} <= kit  # kick, snare, closed hat, crash
    assert kit & {45, 47, 50}  # tom fills at phrase ends


# --- valence: mode, consonance, register, contour ---------------------------------------------


@pytest.mark.parametrize("valence", [0.9, 0.5, 0.1, -0.1, -0.5, -0.9])
@pytest.mark.parametrize("arousal", [-0.6, 0.6])
def test_mode_follows_valence_major_third_or_minor_third(valence, arousal):
    for seed in SEEDS[:2]:
        composition, midi = compose(Emotion(valence, arousal), seed)
        weights = pitch_class_weights(pitched(midi), composition.stats["tonic_pc"])
        major_third, minor_third = weights[4], weights[3]
        if valence > 0:
            assert major_third > 4 * minor_third
        else:
            assert minor_third > 4 * major_third


@pytest.mark.parametrize("seed", SEEDS)
def test_key_profiles_hear_major_when_pleasant_and_minor_when_sad(seed):
    happy, happy_midi = compose(Emotion(0.8, 0.3), seed)
    sad, sad_midi = compose(Emotion(-0.8, -0.3), seed)
    assert estimate_key(happy_midi) == (happy.stats["tonic_pc"], "major")
    assert estimate_key(sad_midi) == (sad.stats["tonic_pc"], "minor")


def test_plan_shades_the_mode_by_mixture():
    """The home key is major for v >= 0 and minor below; the share of the other mode's colour
    falls linearly with valence, so there is no band where the mode jumps."""
    modes = [COMPOSER.plan(Emotion(v, a)).mode for v in (0.9, 0.5, 0.0, -0.1, -0.5) for a in (-0.5, 0.5)]
    assert modes == ["ionian"] * 6 + ["aeolian"] * 4
    shares = [COMPOSER.plan(Emotion(v, 0.0)).minor_share for v in (-0.8, -0.4, 0.0, 0.4, 0.8)]
    assert shares == sorted(shares, reverse=True)
    steps = np.diff(shares)
    assert np.allclose(steps, steps[0]) and shares[2] == 0.5


def test_harmony_grows_dissonant_when_unpleasant_or_aroused():
    """Accompaniment chords measured at each bar's middle: plain triads when pleasant and calm,
    mostly sevenths / sus / diminished when tense."""
    def triad_share(c, m):
        beat = 60.0 / tempo(m)
        times = [4 * beat * (k + 0.5) for k in range(c.stats["bars"] - 1)]
        chords = [{n.pitch % 12 for n in sounding(m, t, ("strings", "guitar", "bass"))} for t in times]
        return statistics.mean(is_triad(pcs) for pcs in chords if pcs)
    assert mean_over_seeds(triad_share, Emotion(0.8, -0.5)) == 1.0
    assert mean_over_seeds(triad_share, Emotion(-0.8, 0.8)) < 0.4
    assert mean_over_seeds(triad_share, Emotion(0.0, 0.0)) < mean_over_seeds(triad_share, Emotion(0.8, -0.5))


def test_register_is_higher_when_pleasant():
    def mean_pitch(c, m):
        notes = [n for i in m.instruments if i.name in ("piano", "strings") for n in i.notes]
        return statistics.mean(n.pitch for n in notes)
    for arousal in (-0.5, 0.5):
        pleasant = mean_over_seeds(mean_pitch, Emotion(0.8, arousal))
        unpleasant = mean_over_seeds(mean_pitch, Emotion(-0.8, arousal))
        assert pleasant > unpleasant + 4


def _phrase_slopes(composition, midi, part: float = 1.0) -> list[float]:
    """Least-squares slope (semitones per phrase) of the melody within each phrase, over its
    first `part`."""
    starts = composition.stats["phrase_starts_s"] + [midi.get_end_time()]
    line = skyline(track(midi, "piano"))
    slopes = []
    for begin, end in zip(starts[:-2], starts[1:-1]):  # the final phrase ends on a held tonic
        points = [((t - begin) / (end - begin), p) for t, p in line if begin <= t < end]
        points = [(x, p) for x, p in points if x < part]
        if len(points) >= 3:
            xs, ps = zip(*points)
            slopes.append(float(np.polyfit(xs, ps, 1)[0]))
    return slopes


def test_melody_falls_when_sad_and_rises_into_an_arch_when_pleasant():
    sad = [s for seed in SEEDS for s in _phrase_slopes(*compose(Emotion(-0.9, 0.0), seed, duration_s=30))]
    happy = [compose(Emotion(0.9, 0.0), seed, duration_s=30) for seed in SEEDS]
    happy_rise = [s for piece in happy for s in _phrase_slopes(*piece, part=0.6)]
    happy_whole = [s for piece in happy for s in _phrase_slopes(*piece)]
    assert statistics.mean(sad) < -3
    assert statistics.mean(happy_rise) > 3
    assert statistics.mean(happy_whole) > statistics.mean(sad) + 3


# --- structure: cadence, chord tones, motifs, progressions ------------------------------------


@pytest.mark.parametrize("mood", MOODS)
def test_final_chord_is_the_tonic_triad_with_the_tonic_in_the_bass(mood):
    for seed in SEEDS[:2]:
        composition, midi = compose(MOODS[mood], seed)
        tonic = composition.stats["tonic_pc"]
        third = 4 if 4 in SCALES[composition.stats["modes"][-1]] else 3
        final = sounding(midi, midi.get_end_time() - 0.05)
        pcs = {(n.pitch - tonic) % 12 for n in final}
        ninth = {2} if composition.stats["chords"][-1].endswith("add9") else set()  # a sad close
        assert {0, third} <= pcs <= {0, third, 7} | ninth
        assert min(n.pitch for n in final) % 12 == tonic
        holding = {i.name for i in midi.instruments if any(n in final for n in i.notes)}
        assert holding == {i.name for i in midi.instruments if not i.is_drum}  # everyone ends together
        held = max(n.end - n.start for n in final)
        assert held >= 0.75 * 240 / tempo(midi) - 0.01  # a held final chord, at least 3 beats


def test_last_phrase_closes_with_the_modes_cadence():
    for mood, emotion in MOODS.items():
        composition, _ = compose(emotion)
        mode = composition.stats["modes"][-1]
        chords = composition.stats["chords"]
        pre, dominant = CADENCES[mode]
        assert chords[-1] in ("I", "i", "iadd9", "Iadd9")
        assert chords[-3].startswith(pre)
        assert chords[-2].startswith(dominant) or chords[-2] == "vii°7"


def test_melody_puts_chord_tones_on_strong_beats():
    """Beats 1 and 3 of the piano melody belong to the chord the strings and bass sound."""
    for seed in SEEDS:
        composition, midi = compose(Emotion(0.5, -0.3), seed, duration_s=30)
        beat = 60.0 / tempo(midi)
        strong = [n for n in track(midi, "piano").notes
                  if abs((n.start / beat) % 2) < 1e-3 or abs((n.start / beat) % 2 - 2) < 1e-3]
        assert len(strong) > 8
        for note in strong:
            harmony = {n.pitch % 12 for n in sounding(midi, note.start + 1e-3, ("strings", "bass"))}
            assert note.pitch % 12 in harmony


def test_sections_repeat_their_motif_rhythm():
    """AABA: the first bars of the two A phrases share their rhythm; B's differs."""
    composition, midi = compose(MOODS["excited"], seed=3, duration_s=30)
    starts = composition.stats["phrase_starts_s"]
    assert len(starts) >= 4
    beat = 60.0 / tempo(midi)
    melody = track(midi, "piano").notes

    def first_bar_rhythm(phrase: int) -> tuple[float, ...]:
        begin = starts[phrase]
        bar = [n for n in melody if begin <= n.start < begin + 4 * beat]
        return tuple(round((n.start - begin) / beat, 2) for n in bar)

    assert first_bar_rhythm(0) == first_bar_rhythm(1) == first_bar_rhythm(3)
    assert first_bar_rhythm(0) != first_bar_rhythm(2)


@pytest.mark.parametrize("mode", PROGRESSIONS)
def test_progressions_are_diatonic_except_the_borrowed_dominant(mode):
    scale = set(SCALES[mode])
    names = [n for sections in PROGRESSIONS[mode].values() for p in sections for n in p.split()]
    for name in names + list(CADENCES[mode]):
        chord = parse_numeral(name)
        borrowed = name == "V" and mode in ("dorian", "aeolian")
        assert set(chord.tones) <= scale or borrowed, (mode, name)


def test_chord_scale_lets_borrowed_tones_displace_their_neighbours():
    aeolian = SCALES["aeolian"]
    assert chord_scale(aeolian, parse_numeral("V")) == (0, 2, 3, 5, 7, 8, 11)  # harmonic minor
    assert chord_scale(SCALES["dorian"], leading_tone_diminished()) == (0, 2, 3, 5, 7, 8, 11)
    assert chord_scale(aeolian, parse_numeral("iv")) == aeolian


def test_roman_numerals_parse_to_the_right_chords():
    assert parse_numeral("bVII").tones == (10, 2, 5)
    assert parse_numeral("ii").tones == (2, 5, 9)
    assert parse_numeral("vii°").tones == (11, 2, 5)
    assert parse_numeral("bII").tones == (1, 5, 8)
    with pytest.raises(ValueError, match="roman numeral"):
        parse_numeral("X7")


# --- the documented plan ----------------------------------------------------------------------


def test_plan_documents_the_mapping():
    calm, wild = COMPOSER.plan(Emotion(0.0, -1.0)), COMPOSER.plan(Emotion(0.0, 1.0))
    assert (calm.tempo_bpm, wild.tempo_bpm) == (60, 160)
    assert calm.density < wild.density and calm.velocity < wild.velocity
    assert calm.articulation > wild.articulation and calm.syncopation < wild.syncopation
    drums = [COMPOSER.plan(Emotion(0.0, a)).drums for a in (-1.0, 0.0, 0.4, 1.0)]
    assert drums == ["soft", "groove", "groove", "full"]
    for part in ("bass_density", "guitar_onsets", "guitar_strings", "strings_onsets", "drum_density"):
        assert getattr(calm, part) < getattr(wild, part), part
    assert calm.bass_pattern == "held" and wild.bass_pattern == "octaves"
    assert COMPOSER.plan(Emotion(0.8, -0.8)).dissonance < 0.05
    assert COMPOSER.plan(Emotion(-0.9, 0.9)).dissonance > 0.8
    assert COMPOSER.plan(Emotion(0.8, 0)).melody_register > COMPOSER.plan(Emotion(-0.8, 0)).melody_register
    assert COMPOSER.plan(Emotion(0.8, 0)).contour == "rising arch"
    assert COMPOSER.plan(Emotion(-0.8, 0)).contour == "falling"
    assert COMPOSER.plan(Emotion(0.5, 0.5)).tonic == "C"  # no seed: the home key
    assert COMPOSER.plan(Emotion(0.5, 0.5), seed=7) == COMPOSER.plan(Emotion(0.5, 0.5), seed=7)


@pytest.mark.parametrize("v", [-1.0, -0.5, 0.0, 0.5, 1.0])
@pytest.mark.parametrize("a", [-1.0, -0.5, 0.0, 0.5, 1.0])
def test_plan_programs_belong_to_their_family(v, a):
    for minimum in (1, 5):
        plan = COMPOSER.plan(Emotion(v, a), min_instruments=minimum)
        assert len(plan.families) >= minimum and "piano" in plan.families
        for family, program in plan.instruments:
            assert instrument_family(pretty_midi.Instrument(program, is_drum=family == "drums")) == family


def test_serene_is_the_whole_band_played_sparsely():
    composition, midi = compose(Emotion(0.8, -0.9))
    assert composition.instruments == list(FAMILIES)
    end = midi.get_end_time()
    assert notes_per_second(track(midi, "drums").notes, end) < 1.5
    assert notes_per_second(track(midi, "bass").notes, end) < 1.0
    assert statistics.mean(n.velocity for n in pitched(midi)) < 50


def test_tense_and_loud_gets_distortion_guitar_and_tremolo_strings():
    _, midi = compose(MOODS["tense"])
    assert track(midi, "guitar").program == 30
    assert track(midi, "strings").program == 44


# --- trajectories, progress, batches, bad input -----------------------------------------------


def test_trajectory_moves_tempo_mode_density_and_loudness():
    rising = Trajectory.linear([Emotion(-0.7, -0.9), Emotion(0.8, 0.9)])
    composition, midi = compose(rising, duration_s=40)
    times, tempi = midi.get_tempo_changes()
    assert len(tempi) > 3 and tempi[-1] > tempi[0] + 60
    assert all(b >= a - 0.1 for a, b in zip(tempi, tempi[1:]))
    assert composition.stats["modes"][0] == "aeolian" and composition.stats["modes"][-1] == "ionian"
    end = midi.get_end_time()
    first = [n for n in pitched(midi) if n.start < end / 3]
    last = [n for n in pitched(midi) if n.start >= 2 * end / 3]
    assert len(last) > 2 * len(first)
    assert statistics.mean(n.velocity for n in last) > statistics.mean(n.velocity for n in first) + 25
    starts = composition.stats["phrase_starts_s"]
    tonic = composition.stats["tonic_pc"]
    opening = pitch_class_weights([n for n in pitched(midi) if n.start < starts[1]], tonic)
    closing = pitch_class_weights([n for n in pitched(midi) if n.start >= starts[-1]], tonic)
    assert opening[3] > opening[4] and closing[4] > closing[3]
    drums = track(midi, "drums").notes
    assert sum(n.start >= 2 * end / 3 for n in drums) > 3 * sum(n.start < end / 3 for n in drums)  # it wakes up


def test_a_constant_trajectory_equals_its_emotion():
    emotion = Emotion(0.4, -0.2)
    options = GenerationOptions(seed=9)
    assert midi_bytes(COMPOSER.compose(emotion, options).midi) == midi_bytes(
        COMPOSER.compose(Trajectory.constant(emotion), options).midi)


def test_progress_is_reported_up_to_one():
    fractions: list[float] = []
    COMPOSER.compose(Emotion(0.1, 0.1), GenerationOptions(seed=1), progress=fractions.append)
    assert len(fractions) >= 3 and fractions == sorted(fractions) and fractions[-1] == 1.0


def test_batch_equals_one_by_one():
    requests = [(Emotion(0.5, 0.5), GenerationOptions(seed=1)),
                (Emotion(-0.5, -0.5), GenerationOptions(seed=2, duration_s=10))]
    fractions: list[float] = []
    batch = COMPOSER.compose_batch(requests, progress=fractions.append)
    assert [midi_bytes(c.midi) for c in batch] == [midi_bytes(COMPOSER.compose(*r).midi) for r in requests]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_bad_input_gets_a_clear_message():
    with pytest.raises(TypeError, match="Emotion or a Trajectory"):
        COMPOSER.compose("happy", GenerationOptions(seed=1))
    with pytest.raises(ValueError, match="seed must be set"):
        COMPOSER.compose(Emotion(0, 0), GenerationOptions())


def test_notes_describe_the_piece():
    composition, _ = compose(MOODS["serene"])
    plan = COMPOSER.plan(MOODS["serene"], seed=1)
    assert plan.tonic in composition.notes[0] and plan.mode in composition.notes[0]
