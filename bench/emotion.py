"""Does the music follow the emotion, and does it sound like music? Measured on a valence-arousal grid.

    .venv/bin/python bench/emotion.py [--seeds 4] [--duration 30] [--corpus 40] [--out out/bench-emotion]
                                      [--composer procedural|transformer] [--no-audio] [--save FILE]

Composes the 5x5 grid {-0.8, -0.4, 0, 0.4, 0.8}^2 for a few seeds, then reads:

* from the MIDI: tempo, onset rate, velocity, notes per second per instrument family, how many
  families play, a Krumhansl-Kessler major-minor score, melody register (the skyline's mean
  pitch), consonance (Huron's dyadic interval-class values), articulation, per-bar velocity SD,
  and the bar rhythms of each accompanying instrument (their overlap across seeds is the
  variety measure);
* from the audio mastered exactly as the product masters it (`Renderer.master`): integrated
  loudness (ITU-R BS.1770, pyloudnorm), sample and true peak;
* MusPy's metrics (pitch-class entropy, scale consistency, polyphony rate, groove consistency,
  empty-beat rate) on the pitched tracks, beside the same metrics on a sample of music21's
  bundled corpus and Kundu et al.'s image-to-music figures;
* an independent symbolic valence-arousal estimate from cue weights in the music-psychology
  literature (see `estimate_emotion`), and its mean absolute error against the asked emotion.

It prints one table per axis (feature by level, Spearman over all pieces, whether the level means
are monotone, and for densities the largest step between adjacent levels), the goals of issue 14
with pass/fail, and writes heatmap PNGs. Runs in about two minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import math
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pretty_midi

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aria_engine.device import cpu_model  # noqa: E402
from aria_engine.emotion import Emotion  # noqa: E402
from aria_engine.music import FAMILIES, instrument_family  # noqa: E402
from aria_engine.options import GenerationOptions  # noqa: E402

LEVELS = (-0.8, -0.4, 0.0, 0.4, 0.8)
VARIETY_EMOTION = Emotion(0.4, 0.4)
VARIETY_SEEDS = 5
ACCOMPANIMENT = ("guitar", "bass", "strings", "drums")

# Krumhansl & Kessler (1982) probe-tone profiles, tonic first.
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
# Huron (1994), "Interval-class content in equally tempered pitch-class sets": aggregate dyadic
# consonance per interval class 1..6.
HURON_CONSONANCE = {1: -1.428, 2: -0.582, 3: 0.594, 4: 0.386, 5: 1.240, 6: -0.453}
CONSONANCE_STEP_S = 0.125  # how often the sounding pitch classes are sampled
RHYTHM_GRID = 4  # bar rhythms on a sixteenth-note grid

# Kundu et al.'s image-to-music figures (as quoted in issue 14).
KUNDU = {"polyphony_rate": 0.7818, "pitch_class_entropy": 3.0932, "groove_consistency": 0.9998}
MUSPY_METRICS = ("pitch_class_entropy", "scale_consistency", "polyphony_rate", "groove_consistency",
                 "empty_beat_rate")

# The corpus sample: (music21 composer name, share of the sample); scores only (no opus
# collections or roman-numeral analyses), spread evenly through each composer's file list.
# Beethoven's quartets are left out: one takes a minute to parse.
CORPUS = (("bach", 0.55), ("mozart", 0.08), ("haydn", 0.08), ("monteverdi", 0.1), ("palestrina", 0.08),
          ("joplin", 0.03), ("handel", 0.03), ("schubert", 0.03), ("corelli", 0.03))
CORPUS_FORMATS = (".mxl", ".xml", ".krn")
METRIC_RESOLUTION = 24  # time steps per beat for every piece measured: groove consistency depends on it

# Goals of issue 14.
AROUSAL_CUES = ("tempo_bpm", "onset_rate", "velocity", "lufs")
VALENCE_CUES = ("major_minor", "melody_register", "consonance")
DENSITIES = ("onset_rate", "pitched_rate", "drums_rate", "guitar_rate", "bass_rate", "piano_rate",
             "strings_rate")
MIN_SPEARMAN = 0.9
MAX_DENSITY_STEP = 2.0
MIN_LOUDNESS_SPAN_LU = 8.0
MAX_JACCARD = 0.5
MIN_BAR_VELOCITY_SD = 5.0


# ---------------------------------------------------------------------------------------------
# Features from the MIDI


def _pitched(midi):
    return [n for i in midi.instruments if not i.is_drum for n in i.notes]


def mean_tempo(midi: pretty_midi.PrettyMIDI) -> float:
    """Time-weighted mean of the tempo map."""
    times, tempi = midi.get_tempo_changes()
    end = midi.get_end_time()
    spans = np.diff(np.append(times, end))
    return float(np.sum(spans * tempi) / max(np.sum(spans), 1e-9))


def major_minor(notes) -> float:
    """Best major-profile correlation minus best minor-profile correlation (duration-weighted
    pitch classes, any tonic): > 0 sounds major, < 0 minor."""
    weights = np.zeros(12)
    for n in notes:
        weights[n.pitch % 12] += n.end - n.start
    if not weights.any():
        return 0.0
    best = lambda profile: max(np.corrcoef(np.roll(profile, t), weights)[0, 1] for t in range(12))  # noqa: E731
    return float(best(KK_MAJOR) - best(KK_MINOR))


def skyline_pitches(notes) -> list[int]:
    """The highest sounding pitch at each onset: the melody as a listener follows it."""
    notes = sorted(notes, key=lambda n: n.start)
    onsets = sorted({round(n.start, 3) for n in notes})
    starts = np.array([n.start for n in notes])
    line = []
    for t in onsets:
        upto = np.searchsorted(starts, t + 1e-3)
        sounding = [n.pitch for n in notes[:upto] if n.end > t + 1e-3]
        if sounding:
            line.append(max(sounding))
    return line


def consonance(notes, end_s: float) -> float:
    """Mean dyadic consonance of the pitch classes sounding together, sampled in time."""
    if not notes:
        return 0.0
    starts = np.array([n.start for n in notes])
    ends = np.array([n.end for n in notes])
    pitches = np.array([n.pitch for n in notes])
    values = []
    for t in np.arange(0.0, end_s, CONSONANCE_STEP_S):
        pcs = sorted({int(p) % 12 for p in pitches[(starts <= t) & (ends > t)]})
        if len(pcs) < 2:
            continue
        pairs = [HURON_CONSONANCE[min((b - a) % 12, (a - b) % 12)] for a, b in itertools.combinations(pcs, 2)]
        values.append(sum(pairs) / len(pairs))
    return float(np.mean(values)) if values else 0.0


def articulation(midi) -> float:
    """How much of the gap to its part's next onset a note sounds (1 legato, ~0.5 staccato)."""
    ratios = []
    for instrument in midi.instruments:
        if instrument.is_drum:
            continue
        onsets = sorted({n.start for n in instrument.notes})
        following = dict(zip(onsets, onsets[1:]))
        for n in instrument.notes:
            if n.start in following:
                ratios.append(min(1.0, (n.end - n.start) / (following[n.start] - n.start)))
    return float(np.mean(ratios)) if ratios else 1.0


def bar_positions(midi, times) -> tuple[np.ndarray, np.ndarray]:
    """(bar index, sixteenth within the bar) of each time, from the MIDI's beat grid (4/4)."""
    beats = midi.get_beats()
    if len(beats) < 2:
        beats = np.array([0.0, 0.5])
    step = beats[-1] - beats[-2]
    grid = np.append(beats, beats[-1] + step * np.arange(1, 64))
    beat = np.interp(times, grid, np.arange(len(grid)))
    sixteenth = np.round(beat * RHYTHM_GRID).astype(int)
    return sixteenth // (4 * RHYTHM_GRID), sixteenth % (4 * RHYTHM_GRID)


def bar_rhythms(midi, family: str) -> set[tuple[int, ...]]:
    """The distinct one-bar onset patterns a family plays."""
    notes = [n for i in midi.instruments if instrument_family(i) == family for n in i.notes]
    if not notes:
        return set()
    bars, steps = bar_positions(midi, np.array([n.start for n in notes]))
    patterns: dict[int, set[int]] = {}
    for bar, s in zip(bars, steps):
        patterns.setdefault(int(bar), set()).add(int(s))
    return {tuple(sorted(p)) for p in patterns.values()}


def bar_velocity_sd(midi) -> float:
    """SD across bars of each bar's mean pitched velocity: phrase-level dynamics."""
    notes = _pitched(midi)
    if not notes:
        return 0.0
    bars, _ = bar_positions(midi, np.array([n.start for n in notes]))
    means = [np.mean([n.velocity for n, b in zip(notes, bars) if b == bar]) for bar in sorted(set(bars))]
    return float(np.std(means)) if len(means) > 1 else 0.0


def midi_features(midi: pretty_midi.PrettyMIDI) -> dict[str, float]:
    end = max(midi.get_end_time(), 1e-3)
    pitched = _pitched(midi)
    every = [n for i in midi.instruments for n in i.notes]
    features = {
        "tempo_bpm": mean_tempo(midi),
        "onset_rate": len({round(n.start, 2) for n in every}) / end,
        "pitched_rate": len(pitched) / end,
        "velocity": float(np.mean([n.velocity for n in every])) if every else 0.0,
        "instruments": float(len({instrument_family(i) for i in midi.instruments if i.notes})),
        "major_minor": major_minor(pitched),
        "melody_register": float(np.mean(skyline_pitches(pitched))) if pitched else 0.0,
        "consonance": consonance(pitched, end),
        "articulation": articulation(midi),
        "bar_velocity_sd": bar_velocity_sd(midi),
    }
    for family in FAMILIES:
        count = sum(len(i.notes) for i in midi.instruments if instrument_family(i) == family)
        features[f"{family}_rate"] = count / end
    return features


# ---------------------------------------------------------------------------------------------
# Audio, MusPy


def audio_features(renderer, midi) -> dict[str, float]:
    """Loudness and peaks of the clip as the product masters it."""
    import pyloudnorm
    from scipy.signal import resample_poly

    audio = renderer.master(midi).audio.astype(np.float64)
    meter = pyloudnorm.Meter(renderer.sample_rate)
    peak = float(np.max(np.abs(audio)))
    true_peak = float(np.max(np.abs(resample_poly(audio, 4, 1, axis=0))))  # 4x oversampled (BS.1770)
    db = lambda x: 20 * math.log10(x) if x > 0 else -120.0  # noqa: E731
    return {"lufs": float(meter.integrated_loudness(audio)), "peak_dbfs": db(peak), "true_peak_dbfs": db(true_peak)}


def muspy_metrics(midi: pretty_midi.PrettyMIDI) -> dict[str, float]:
    """MusPy's metrics on the pitched tracks (drums have no pitch classes)."""
    import muspy

    pitched = pretty_midi.PrettyMIDI(io.BytesIO(_midi_bytes(midi)))
    pitched.instruments = [i for i in pitched.instruments if not i.is_drum]
    return _muspy_of(muspy.from_pretty_midi(pitched, resolution=METRIC_RESOLUTION))


def _muspy_of(music) -> dict[str, float]:
    import muspy

    music.tracks = [t for t in music.tracks if not t.is_drum]
    music.adjust_resolution(METRIC_RESOLUTION)
    return {
        "pitch_class_entropy": muspy.pitch_class_entropy(music),
        "scale_consistency": muspy.scale_consistency(music),
        "polyphony_rate": muspy.polyphony_rate(music),
        "groove_consistency": muspy.groove_consistency(music, 4 * music.resolution),
        "empty_beat_rate": muspy.empty_beat_rate(music),
    }


def _midi_bytes(midi) -> bytes:
    buffer = io.BytesIO()
    midi.write(buffer)
    return buffer.getvalue()


def corpus_metrics(total: int) -> dict[str, list[dict[str, float]]]:
    """MusPy metrics of a deterministic sample of music21's bundled corpus, per composer: each
    piece is written to MIDI by music21 and read by MusPy, as a generated piece is."""
    import muspy
    from music21 import corpus

    results: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for composer, share in CORPUS:
            paths = sorted(str(p) for p in corpus.getComposer(composer) if str(p).endswith(CORPUS_FORMATS))
            count = min(len(paths), max(1, round(share * total)))
            paths = [paths[round(k * len(paths) / count)] for k in range(count)]
            for k, path in enumerate(paths):
                try:
                    score = corpus.parse(path)
                    if hasattr(score, "scores"):  # an opus: its first score
                        score = score.scores[0]
                    target = Path(folder) / f"{composer}{k}.mid"
                    score.write("midi", fp=target)
                    values = _muspy_of(muspy.read_midi(target))
                except Exception as error:  # a corpus file music21 or MusPy cannot convert
                    print(f"  corpus: skipped {Path(path).name}: {type(error).__name__}", file=sys.stderr)
                    continue
                if all(math.isfinite(v) for v in values.values()):
                    results.setdefault(composer, []).append(values)
    return results


# ---------------------------------------------------------------------------------------------
# An independent estimate of the emotion from the cues


# Cue weights from the music-psychology literature, never fitted to any composer's output.
# Directions: Gabrielsson & Lindström (2010), "The role of structure in the musical expression
# of emotions" (Handbook of Music and Emotion, table 14.2) and Juslin (2001), "Communicating
# emotion in music performance" (cue utilisation): activity/arousal rises with tempo, loudness,
# note density, staccato articulation and (weakly) high register; valence rises with major mode,
# consonance, high register and faster tempo. Relative sizes: Eerola, Friberg & Bresin (2013),
# "Emotional expression in music: contribution, linearity, and additivity of primary musical
# cues" (Frontiers in Psychology 4:487) found mode the dominant cue for valence (then tempo and
# register) and tempo and dynamics the dominant cues for energy (then articulation); the
# weights below are those rankings rounded to coarse shares that sum to one.
AROUSAL_WEIGHTS = {"tempo": 0.35, "dynamics": 0.30, "density": 0.15, "articulation": 0.15, "register": 0.05}
VALENCE_WEIGHTS = {"mode": 0.45, "tempo": 0.15, "register": 0.20, "consonance": 0.20}
# Cue scales, each mapped to -1..1 from conventional anchors (not from any generated piece):
CUE_ANCHORS = {
    "tempo": (60.0, 160.0),  # BPM: largo/adagio .. allegro/presto
    "dynamics": (33.0, 112.0),  # MIDI velocity of pp .. ff (the usual notation-to-velocity table)
    "density": (math.log(1.0), math.log(16.0)),  # log onsets per second: sparse .. busy
    "articulation": (1.0, 0.5),  # sounding fraction: legato .. staccato
    "register": (55.0, 79.0),  # melody's mean MIDI pitch: G3 .. G5
    "mode": (-0.3, 0.3),  # the Krumhansl-Kessler major-minor score: clearly minor .. clearly major
    "consonance": (-0.3, 0.6),  # Huron's mean dyadic consonance: clustered sevenths .. plain triads
}


def _scaled(cue: str, value: float) -> float:
    lo, hi = CUE_ANCHORS[cue]
    return max(-1.0, min(1.0, 2 * (value - lo) / (hi - lo) - 1))


def estimate_emotion(features: dict[str, float]) -> tuple[float, float]:
    """(valence, arousal) from the cues alone, by the weights above."""
    cues = {
        "tempo": _scaled("tempo", features["tempo_bpm"]),
        "dynamics": _scaled("dynamics", features["velocity"]),
        "density": _scaled("density", math.log(max(features["onset_rate"], 1e-3))),
        "articulation": _scaled("articulation", features["articulation"]),
        "register": _scaled("register", features["melody_register"]),
        "mode": _scaled("mode", features["major_minor"]),
        "consonance": _scaled("consonance", features["consonance"]),
    }
    valence = sum(w * cues[c] for c, w in VALENCE_WEIGHTS.items())
    arousal = sum(w * cues[c] for c, w in AROUSAL_WEIGHTS.items())
    return valence, arousal


# ---------------------------------------------------------------------------------------------
# Statistics and tables


def spearman(x, y) -> float:
    from scipy.stats import spearmanr

    if np.ptp(np.asarray(y, float)) == 0:
        return 0.0
    return float(spearmanr(x, y).statistic)


def monotone(means) -> bool:
    steps = np.diff(means)
    return bool(np.all(steps > 0) or np.all(steps < 0))


def largest_step(means) -> float:
    """The largest ratio between adjacent level means (inf when a density switches on from 0)."""
    ratios = []
    for a, b in zip(means, means[1:]):
        lo, hi = sorted((a, b))
        if hi <= 1e-9:
            continue
        ratios.append(math.inf if lo <= 1e-9 else hi / lo)
    return max(ratios) if ratios else 1.0


@dataclass
class Piece:
    valence: float
    arousal: float
    seed: int
    features: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


def axis_table(pieces: list[Piece], axis: str, names: tuple[str, ...]) -> tuple[list[str], dict]:
    lines = [f"{'feature':<18}" + "".join(f"{level:>+8.1f}" for level in LEVELS)
             + f"{'rho':>7}{'monotone':>10}{'max step':>10}"]
    summary = {}
    for name in names:
        means = [statistics.mean(p.features[name] for p in pieces if getattr(p, axis) == level) for level in LEVELS]
        rho = spearman([getattr(p, axis) for p in pieces], [p.features[name] for p in pieces])
        step = largest_step(means) if name in DENSITIES else None
        summary[name] = {"means": means, "rho": rho, "monotone": monotone(means), "max_step": step}
        step_text = "" if step is None else ("inf" if math.isinf(step) else f"{step:.2f}x")
        lines.append(f"{name:<18}" + "".join(f"{m:>8.2f}" for m in means)
                     + f"{rho:>+7.2f}{'yes' if monotone(means) else 'NO':>10}{step_text:>10}")
    return lines, summary


def jaccard_variety(composer, duration: float) -> dict[str, float]:
    """Mean pairwise Jaccard overlap of each accompanying family's bar-rhythm sets across seeds."""
    sets: dict[str, list[set]] = {f: [] for f in ACCOMPANIMENT}
    for seed in range(VARIETY_SEEDS):
        midi = composer.compose(VARIETY_EMOTION, GenerationOptions(seed=1000 + seed, duration_s=duration)).midi
        for family in ACCOMPANIMENT:
            sets[family].append(bar_rhythms(midi, family))
    overlap = {}
    for family, family_sets in sets.items():
        pairs = [(a, b) for a, b in itertools.combinations(family_sets, 2) if a or b]
        if pairs:
            overlap[family] = statistics.mean(len(a & b) / len(a | b) for a, b in pairs)
    return overlap


def heatmaps(pieces: list[Piece], names: tuple[str, ...], folder: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    columns = 4
    rows = math.ceil(len(names) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.0 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        grid = np.array([[statistics.mean(p.features[name] for p in pieces if p.valence == v and p.arousal == a)
                          for v in LEVELS] for a in LEVELS])
        image = ax.imshow(grid, origin="lower", cmap="viridis", extent=(-1, 1, -1, 1))
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("valence", fontsize=8)
        ax.set_ylabel("arousal", fontsize=8)
        figure.colorbar(image, ax=ax, fraction=0.046)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    figure.tight_layout()
    path = folder / "heatmaps.png"
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def corpus_table(pieces: list[Piece], corpus: dict[str, list[dict]]) -> tuple[list[str], dict]:
    everything = [m for values in corpus.values() for m in values]
    lines = [f"{'metric':<20}{'ours':>8}{'ours lo-hi':>14}{'corpus p10-p90':>16}{'bach':>8}"
             + "".join(f"{c[:8]:>9}" for c in corpus if c != "bach") + f"{'Kundu':>8}  within"]
    within = {}
    for metric in MUSPY_METRICS:
        ours = [p.metrics[metric] for p in pieces if math.isfinite(p.metrics[metric])]
        mean = statistics.mean(ours)
        if everything:
            lo, hi = np.percentile([m[metric] for m in everything], [10, 90])
        else:
            lo = hi = math.nan
        within[metric] = {"ours": mean, "corpus": (float(lo), float(hi)), "ok": bool(lo <= mean <= hi)}
        median = lambda c: statistics.median(m[metric] for m in corpus[c]) if corpus.get(c) else math.nan  # noqa: E731
        kundu = f"{KUNDU[metric]:>8.4f}" if metric in KUNDU else f"{'':>8}"
        lines.append(f"{metric:<20}{mean:>8.3f}{min(ours):>7.2f}-{max(ours):<6.2f}{lo:>8.3f}-{hi:<7.3f}"
                     f"{median('bach'):>8.3f}" + "".join(f"{median(c):>9.3f}" for c in corpus if c != "bach")
                     + kundu + f"  {'yes' if within[metric]['ok'] else 'NO'}")
    counts = ", ".join(f"{c} {len(v)}" for c, v in corpus.items())
    lines.append(f"(corpus medians per composer; pieces: {counts})")
    return lines, within


# ---------------------------------------------------------------------------------------------
# The run


def compose_grid(composer, seeds: int, duration: float, renderer) -> list[Piece]:
    pieces = []
    for valence, arousal, seed in itertools.product(LEVELS, LEVELS, range(seeds)):
        emotion = Emotion(valence, arousal)
        midi = composer.compose(emotion, GenerationOptions(seed=seed, duration_s=duration)).midi
        piece = Piece(valence, arousal, seed, midi_features(midi), muspy_metrics(midi))
        if renderer is not None:
            piece.features.update(audio_features(renderer, midi))
        piece.features["est_valence"], piece.features["est_arousal"] = estimate_emotion(piece.features)
        pieces.append(piece)
    return pieces


def goals(arousal: dict, valence: dict, pieces: list[Piece], variety: dict, within: dict) -> list[str]:
    lines = []

    def goal(text: str, ok: bool) -> None:
        lines.append(f"  [{'met' if ok else 'MISSED'}] {text}")

    cues = [(n, arousal[n]) for n in AROUSAL_CUES if n in arousal] + [(n, valence[n]) for n in VALENCE_CUES]
    for name, summary in cues:
        goal(f"{name}: monotone {'yes' if summary['monotone'] else 'no'}, rho {summary['rho']:+.2f} (>= {MIN_SPEARMAN})",
             summary["monotone"] and summary["rho"] >= MIN_SPEARMAN)
    steps = {n: s["max_step"] for n, s in arousal.items() if s["max_step"] is not None}
    worst = max(steps, key=steps.get)
    goal(f"densities: largest step between adjacent arousal levels {steps[worst]:.2f}x ({worst}; <= {MAX_DENSITY_STEP}x)",
         steps[worst] <= MAX_DENSITY_STEP)
    if "lufs" in arousal:
        span = arousal["lufs"]["means"][-1] - arousal["lufs"]["means"][0]
        goal(f"loudness span calm -> energetic {span:.1f} LU (>= {MIN_LOUDNESS_SPAN_LU})", span >= MIN_LOUDNESS_SPAN_LU)
        top = max(p.features["true_peak_dbfs"] for p in pieces)
        goal(f"no clipping: highest true peak {top:+.2f} dBTP, sample peak "
             f"{max(p.features['peak_dbfs'] for p in pieces):+.2f} dBFS (< 0)", top < 0)
    if variety:
        worst = max(variety, key=variety.get)
        goal(f"variety: bar-rhythm Jaccard across {VARIETY_SEEDS} seeds, worst {worst} {variety[worst]:.2f} (<= {MAX_JACCARD})",
             variety[worst] <= MAX_JACCARD)
    sd = statistics.mean(p.features["bar_velocity_sd"] for p in pieces)
    goal(f"phrase dynamics: per-bar velocity SD {sd:.1f} (>= {MIN_BAR_VELOCITY_SD})", sd >= MIN_BAR_VELOCITY_SD)
    for metric, w in within.items():
        goal(f"{metric} {w['ours']:.3f} within corpus p10-p90 {w['corpus'][0]:.3f}-{w['corpus'][1]:.3f}", w["ok"])
    return lines


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--composer", default="procedural", choices=("procedural", "transformer"))
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--corpus", type=int, default=40, help="corpus pieces to compare with (0: none)")
    parser.add_argument("--no-audio", action="store_true", help="skip rendering (no loudness)")
    parser.add_argument("--out", type=Path, default=REPO / "out" / "bench-emotion", help="heatmaps go here")
    parser.add_argument("--save", type=Path, help="also write the report to this file")
    parser.add_argument("--json", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    from aria_engine.pipeline import Pipeline

    pipeline = Pipeline()
    composer = pipeline.composer(args.composer)
    renderer = None if args.no_audio else pipeline.renderer()
    pieces = compose_grid(composer, args.seeds, args.duration, renderer)
    grid_s = time.perf_counter() - started
    variety = jaccard_variety(composer, args.duration) if args.composer == "procedural" else {}
    corpus = corpus_metrics(args.corpus) if args.corpus else {}
    total_s = time.perf_counter() - started

    arousal_names = AROUSAL_CUES[:3] + (("lufs", "peak_dbfs") if renderer else ()) + (
        "pitched_rate", "drums_rate", "guitar_rate", "bass_rate", "piano_rate", "strings_rate",
        "instruments", "articulation", "est_arousal")
    valence_names = VALENCE_CUES + ("tempo_bpm", "est_valence")
    report = [f"# bench/emotion.py: {args.composer}, {len(pieces)} pieces ({len(LEVELS)}x{len(LEVELS)} grid x "
              f"{args.seeds} seeds, {args.duration:g} s){'' if renderer else ', no audio'}, on {cpu_model()}", ""]
    report.append("## arousal (mean over valence levels and seeds; rho: Spearman over all pieces)")
    lines, arousal = axis_table(pieces, "arousal", arousal_names)
    report += lines + ["", "## valence (mean over arousal levels and seeds)"]
    lines, valence = axis_table(pieces, "valence", valence_names)
    report += lines + [""]
    mae_v = statistics.mean(abs(p.features["est_valence"] - p.valence) for p in pieces)
    mae_a = statistics.mean(abs(p.features["est_arousal"] - p.arousal) for p in pieces)
    report.append(f"## literature-weighted cue estimator: MAE valence {mae_v:.3f}, arousal {mae_a:.3f} "
                  f"(Spearman {spearman([p.valence for p in pieces], [p.features['est_valence'] for p in pieces]):+.2f}, "
                  f"{spearman([p.arousal for p in pieces], [p.features['est_arousal'] for p in pieces]):+.2f})")
    report.append("")
    sds = [p.features["bar_velocity_sd"] for p in pieces]
    report.append(f"## variety: bar-rhythm Jaccard across {VARIETY_SEEDS} seeds at {VARIETY_EMOTION}: "
                  + ", ".join(f"{f} {j:.2f}" for f, j in variety.items())
                  + f"; per-bar velocity SD mean {statistics.mean(sds):.1f} (min {min(sds):.1f})")
    report.append("")
    report.append("## MusPy metrics beside music21's corpus and Kundu et al.")
    lines, within = corpus_table(pieces, corpus)
    report += lines + ["", "## goals (issue 14)"]
    report += goals(arousal, valence, pieces, variety, within)
    path = heatmaps(pieces, tuple(dict.fromkeys(arousal_names + valence_names)), args.out)
    report += ["", f"heatmaps: {path.relative_to(REPO) if path.is_relative_to(REPO) else path}",
               f"runtime: {total_s:.0f} s (grid {grid_s:.0f} s, corpus and variety {total_s - grid_s:.0f} s)"]
    text = "\n".join(report)
    print(text)
    if args.save:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        args.save.write_text(text + "\n")
    figures = {"arousal": arousal, "valence": valence, "variety": variety, "corpus": within,
               "mae": {"valence": mae_v, "arousal": mae_a}, "runtime_s": total_s}
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1, default=float))
    return figures


if __name__ == "__main__":
    main()
