"""Issue 14's goals pinned on a small grid: every cue moves the right way between adjacent levels,
densities never double between them, valence shades the mode, seeds vary the accompaniment,
phrases breathe, and the mastered audio keeps the loudness cue. The features are the benchmark's
own (`bench/emotion.py`), read from the MIDI; one pair of pieces is rendered for loudness."""

from __future__ import annotations

import functools
import itertools
import statistics

import numpy as np
import pytest

from aria_engine.emotion import Emotion
from aria_engine.music.procedural import ProceduralComposer
from aria_engine.options import GenerationOptions
from bench import emotion as bench

COMPOSER = ProceduralComposer()
LEVELS = (-0.8, 0.0, 0.8)  # the benchmark's grid, every other level
FINE_LEVELS = (-0.8, -0.4, 0.0, 0.4, 0.8)  # for the densities: adjacent levels of the full grid
SEEDS = (0, 1, 2)
DURATION_S = 20.0


@functools.lru_cache(maxsize=None)
def features(valence: float, arousal: float, seed: int, duration_s: float = DURATION_S) -> dict[str, float]:
    midi = COMPOSER.compose(Emotion(valence, arousal), GenerationOptions(seed=seed, duration_s=duration_s)).midi
    return bench.midi_features(midi)


def by_level(name: str, axis: str, levels=LEVELS, others=(-0.5, 0.5), seeds=SEEDS,
             duration_s: float = DURATION_S) -> list[float]:
    """The feature's mean at each level of one axis, over the other axis and the seeds."""
    means = []
    for level in levels:
        points = [(level, other) if axis == "valence" else (other, level) for other in others]
        means.append(statistics.mean(features(v, a, s, duration_s)[name] for v, a in points for s in seeds))
    return means


def rising(values) -> bool:
    return all(b > a for a, b in zip(values, values[1:]))


@pytest.mark.parametrize("cue", ["tempo_bpm", "onset_rate", "velocity", "pitched_rate", "drums_rate",
                                 "guitar_rate", "bass_rate", "piano_rate", "strings_rate"])
def test_arousal_cues_rise_level_by_level(cue):
    assert rising(by_level(cue, "arousal")), by_level(cue, "arousal")


@pytest.mark.parametrize("cue", ["onset_rate", "drums_rate", "guitar_rate", "bass_rate", "piano_rate",
                                 "strings_rate"])
def test_no_density_doubles_between_adjacent_levels(cue):
    """Issue 14: guitar and drums switched on between a = -0.4 and 0 (3.4 -> 19.6 notes/s)."""
    means = by_level(cue, "arousal", FINE_LEVELS, others=(-0.4, 0.4), seeds=(0, 1, 2, 3))
    assert rising(means), means
    assert max(b / a for a, b in zip(means, means[1:])) <= bench.MAX_DENSITY_STEP, means


@pytest.mark.parametrize("cue", ["major_minor", "melody_register", "consonance"])
def test_valence_cues_rise_level_by_level(cue):
    assert rising(by_level(cue, "valence")), by_level(cue, "valence")


def test_valence_shades_the_mode_rather_than_switching_it():
    """The key-profile score moves in steps of similar size across the five levels: no step
    carries most of the change (the old composer jumped once, between v = -0.4 and 0). At the
    benchmark's 30 s: shorter pieces have too few phrases to visit the relative key often."""
    scores = by_level("major_minor", "valence", FINE_LEVELS, seeds=(0, 1, 2, 3), duration_s=30.0)
    steps = np.diff(scores)
    assert (steps > 0).all(), scores
    assert steps.max() < 0.6 * (scores[-1] - scores[0]), scores


def test_seeds_vary_every_accompanying_part():
    """Across five seeds at one emotion, each part's set of bar rhythms overlaps by Jaccard <= 0.5."""
    sets = {family: [] for family in bench.ACCOMPANIMENT}
    for seed in range(5):
        midi = COMPOSER.compose(bench.VARIETY_EMOTION, GenerationOptions(seed=100 + seed, duration_s=30)).midi
        for family in sets:
            sets[family].append(bench.bar_rhythms(midi, family))
    for family, family_sets in sets.items():
        overlap = statistics.mean(len(a & b) / len(a | b) for a, b in itertools.combinations(family_sets, 2))
        assert overlap <= bench.MAX_JACCARD, (family, overlap)


@pytest.mark.parametrize("valence, arousal", list(itertools.product(LEVELS, LEVELS)))
def test_phrases_have_dynamics(valence, arousal):
    sd = statistics.mean(features(valence, arousal, s, 30.0)["bar_velocity_sd"] for s in SEEDS)
    assert sd >= bench.MIN_BAR_VELOCITY_SD


def test_the_melody_breathes_between_phrases():
    composition = COMPOSER.compose(Emotion(0.4, 0.0), GenerationOptions(seed=3, duration_s=30))
    piano = [i for i in composition.midi.instruments if i.name == "piano"][0]
    notes = sorted(piano.notes, key=lambda n: n.start)
    beat = 60.0 / composition.stats["tempo_bpm"]
    gaps = [b.start - max(n.end for n in notes[: k + 1]) for k, b in enumerate(notes[1:])]
    assert sum(g >= 0.9 * beat for g in gaps) >= len(composition.stats["phrase_starts_s"]) - 1


def test_mastered_audio_keeps_the_loudness_cue():
    """Calm is clearly quieter than energetic after mastering, and neither clips."""
    pyloudnorm = pytest.importorskip("pyloudnorm")
    from aria_engine.render import Renderer
    from aria_engine.render.mastering import PEAK_CEILING_DBFS, peak_level_dbfs

    with Renderer() as renderer:
        meter = pyloudnorm.Meter(renderer.sample_rate)
        levels, peaks = [], []
        for arousal in (-0.8, 0.8):
            midi = COMPOSER.compose(Emotion(0.0, arousal), GenerationOptions(seed=1, duration_s=15)).midi
            audio = renderer.master(midi).audio
            levels.append(meter.integrated_loudness(audio.astype(np.float64)))
            peaks.append(peak_level_dbfs(audio))
    assert levels[1] - levels[0] >= 6.0, levels
    assert max(peaks) <= PEAK_CEILING_DBFS + 1e-6
