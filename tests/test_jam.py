"""A jam composed as one piece: markers per section, sections that follow their emotions, and
transitions without silent gaps or tempo jumps beyond the documented ramp."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pretty_midi
import pytest

from aria_engine.emotion import Emotion
from aria_engine.jam import Contribution, JamError, check_jam, compose_jam, jam_trajectory, markers_of, with_markers
from aria_engine.music.procedural import ProceduralComposer
from aria_engine.music.procedural.plan import plan_for
from aria_engine.music.procedural.sections import MAX_TEMPO_RATIO, JamMelodyWriter, fitted, plan_sections
from aria_engine.options import GenerationOptions
from aria_engine.pipeline import Pipeline

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
# calm and pleasant -> medium and unpleasant -> energetic and pleasant
MOODS = [Emotion(0.6, -0.7), Emotion(-0.6, 0.0), Emotion(0.7, 0.8)]
SECONDS = 15.0


@pytest.fixture(scope="module")
def jam(tmp_path_factory):
    pipeline = Pipeline(models_dir=tmp_path_factory.mktemp("no-models"))
    contributions = [Contribution(f"@m{i}", emotion=e) for i, e in enumerate(MOODS, start=1)]
    return compose_jam(pipeline, contributions, GenerationOptions(seed=11), seconds=SECONDS)


def _spans(midi_bytes: bytes) -> list[tuple[float, float]]:
    starts = [t for t, _ in markers_of(midi_bytes)]
    end = pretty_midi.PrettyMIDI(io.BytesIO(midi_bytes)).get_end_time()
    return list(zip(starts, starts[1:] + [end]))


def _tempo_at(midi: pretty_midi.PrettyMIDI, start: float, end: float) -> float:
    times, tempi = midi.get_tempo_changes()
    inside = [q for t, q in zip(times, tempi) if start <= t < end]
    before = [q for t, q in zip(times, tempi) if t < start]
    return float(np.median(inside or before[-1:]))


def _onsets_per_s(midi: pretty_midi.PrettyMIDI, start: float, end: float) -> float:
    onsets = [n.start for i in midi.instruments for n in i.notes if start <= n.start < end]
    return len(onsets) / (end - start)


def test_the_midi_holds_one_marker_per_section_naming_its_contributor(jam):
    markers = markers_of(jam.result.midi)
    assert [text for _, text in markers] == ["1. @m1: serene", "2. @m2: sad", "3. @m3: joyful"]
    assert markers[0][0] == 0.0
    assert [round(t, 3) for t, _ in markers] == [round(s.start_s, 3) for s in jam.sections]
    # the markers cost the notes nothing: the file still reads, every part still plays
    midi = pretty_midi.PrettyMIDI(io.BytesIO(jam.result.midi))
    assert len(midi.instruments) == 5 and all(i.notes for i in midi.instruments)


def test_sections_follow_their_emotions_tempo_density_and_mode(jam):
    midi = pretty_midi.PrettyMIDI(io.BytesIO(jam.result.midi))
    spans = _spans(jam.result.midi)
    tempi = [_tempo_at(midi, a, b) for a, b in spans]
    density = [_onsets_per_s(midi, a, b) for a, b in spans]
    assert tempi[0] < tempi[1] < tempi[2], tempi  # arousal -0.7 < 0.0 < 0.8
    assert density[0] < density[1] < density[2], density
    modes = []
    for a, b in spans:  # the key signature in force in each section
        current = [k for k in midi.key_signature_changes if k.time <= a + 1e-6][-1]
        modes.append("major" if current.key_number < 12 else "minor")
    assert modes == ["major", "minor", "major"]  # valence + - +


def test_no_boundary_has_a_silent_gap_or_a_tempo_jump_beyond_the_ramp():
    # the largest arousal swings: 60 -> 160 -> 60 BPM
    moods = [Emotion(0.5, -1.0), Emotion(0.5, 1.0), Emotion(-0.5, -1.0)]
    composition = ProceduralComposer().compose_sections(moods, 12.0, GenerationOptions(seed=3))
    midi = composition.midi
    _, tempi = midi.get_tempo_changes()
    ratios = [max(a / b, b / a) for a, b in zip(tempi, tempi[1:])]
    assert max(ratios) <= MAX_TEMPO_RATIO + 1e-3, ratios
    notes = sorted((n.start, n.end) for i in midi.instruments for n in i.notes)
    for boundary in [s["start_s"] for s in composition.stats["sections"]][1:]:
        window = [(max(s, boundary - 2), min(e, boundary + 2)) for s, e in notes if e > boundary - 2 and s < boundary + 2]
        covered = boundary - 2
        largest_gap = 0.0
        for start, end in window:
            largest_gap = max(largest_gap, start - covered)
            covered = max(covered, end)
        largest_gap = max(largest_gap, boundary + 2 - covered)
        assert largest_gap < 0.3, (boundary, largest_gap)


def test_keys_modulate_to_neighbours_and_an_extension_keeps_the_earlier_plan():
    sections = plan_sections(MOODS, seed=5)
    first = plan_for(MOODS[0], seed=5)
    assert sections[0].tonic_pc == first.tonic_pc
    # major -> relative minor (+9) -> relative major (+3): one key signature throughout
    assert (sections[1].tonic_pc - sections[0].tonic_pc) % 12 == 9
    assert (sections[2].tonic_pc - sections[1].tonic_pc) % 12 == 3
    longer = plan_sections(MOODS + [Emotion(0.8, 0.2)], seed=5)
    assert [(s.tonic_pc, s.mode, s.home_bpm) for s in longer[:3]] == [(s.tonic_pc, s.mode, s.home_bpm) for s in sections]
    assert (longer[3].tonic_pc - longer[2].tonic_pc) % 12 == 7  # same mode, valence rises: up a fifth


def test_one_motif_shapes_every_section():
    writer = JamMelodyWriter(seed=9, tonic_pc=0)
    ideas = [writer.motifs("A", plan_for(e, seed=9))[0] for e in MOODS]
    shape = writer.motif_steps
    from aria_engine.music.procedural.melody import MelodyWriter
    assert shape == MelodyWriter(9, 0).motifs("A", plan_for(MOODS[0], seed=9))[0].steps  # the first idea's
    for idea in ideas:
        assert idea.steps == fitted(shape, len(idea.rhythm))
    assert len({len(i.rhythm) for i in ideas}) > 1  # the rhythm follows each section's density


def test_an_extended_jam_replays_the_earlier_sections_note_for_note():
    options = GenerationOptions(seed=21)
    short = ProceduralComposer().compose_sections(MOODS, SECONDS, options)
    longer = ProceduralComposer().compose_sections(MOODS + [Emotion(-0.2, 0.5)], SECONDS, options)
    cut = short.stats["sections"][2]["start_s"]  # the earlier last section becomes a transition

    def notes_before(midi):
        return sorted((i.name, n.pitch, round(n.start, 4)) for i in midi.instruments for n in i.notes if n.start < cut - 1e-6)
    assert notes_before(short.midi) == notes_before(longer.midi)
    assert longer.stats["motif_steps"] == short.stats["motif_steps"]


def test_markers_survive_a_round_trip_and_keep_unicode_names():
    midi = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(0)
    piano.notes.append(pretty_midi.Note(80, 60, 0.0, 4.0))
    midi.instruments.append(piano)
    buffer = io.BytesIO()
    midi.write(buffer)
    marked = with_markers(buffer.getvalue(), [(0.0, "1. @ana: serene"), (2.0, "2. @Zoë: tense")])
    assert markers_of(marked) == [(0.0, "1. @ana: serene"), (2.0, "2. @Zoë: tense")]


def test_the_transformer_gets_keyframes_at_section_boundaries_and_discrete_token_is_refused():
    trajectory = jam_trajectory(MOODS)
    assert trajectory.at(0.1) == MOODS[0] and trajectory.at(0.3) == MOODS[0]
    reached = trajectory.at(1 / 3 + 0.25 / 3)
    assert (reached.valence, reached.arousal) == pytest.approx((MOODS[1].valence, MOODS[1].arousal))
    assert trajectory.at(0.6) == MOODS[1]
    between = trajectory.at(1 / 3 + 0.125 / 3)  # half way through the transition into section 2
    assert between.valence == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(JamError, match="discrete_token models take one emotion"):
        check_jam(3, GenerationOptions(mode="discrete_token"), "transformer", None, 128)
    check_jam(3, GenerationOptions(mode="continuous_token"), "transformer", None, 128)
    with pytest.raises(JamError, match="1 to 12"):
        check_jam(13, GenerationOptions(), "procedural", 15.0, None)


def test_a_jam_of_pictures_and_a_mood_reads_each_picture_and_credits_everyone(tmp_path):
    pipeline = Pipeline(models_dir=tmp_path)
    contributions = [Contribution("@ana", image=(EXAMPLES / "meadow.png").read_bytes(), caption="the field"),
                     Contribution("@bo", image=(EXAMPLES / "storm.png").read_bytes()),
                     Contribution("@cy", emotion=Emotion(0.5, -0.2))]
    piece = compose_jam(pipeline, contributions, GenerationOptions(seed=2), seconds=10)
    assert [s.encoder for s in piece.sections] == ["palette", "palette", "explicit"]
    lines = piece.credits.splitlines()
    assert re.fullmatch(r'1\. @ana: \w+, 0:00-0:1\d "the field"', lines[0]), lines[0]  # sections end on bar lines
    assert lines[2].startswith("3. @cy: content, 0:2")
    assert piece.result.emotion_chart.startswith(b"\x89PNG") and piece.result.piano_roll.startswith(b"\x89PNG")
    assert piece.result.audio.data and len(markers_of(piece.result.midi)) == 3
    with pytest.raises(JamError, match="seconds per section"):
        compose_jam(pipeline, contributions, GenerationOptions(seed=2), seconds=3)


def test_a_transformer_jam_conditions_per_token_and_marks_its_sections(tmp_path):
    pytest.importorskip("torch")
    from tests.factories.music import make_music_checkpoint

    checkpoint = make_music_checkpoint(tmp_path / "cc", "continuous_concat", seed=1)
    pipeline = Pipeline(models_dir=tmp_path / "none", model_dir=checkpoint, device="cpu")
    contributions = [Contribution(f"@m{i}", emotion=e) for i, e in enumerate(MOODS, start=1)]
    options = GenerationOptions(composer="transformer", mode="continuous_concat", seed=3, window=32)
    piece = compose_jam(pipeline, contributions, options, tokens=64)
    assert piece.result.composition.mode == "continuous_concat"
    assert len(piece.result.composition.tokens) <= 3 * 64
    markers = markers_of(piece.result.midi)
    assert [t for _, t in markers] == ["1. @m1: serene", "2. @m2: sad", "3. @m3: joyful"]
    assert [s.start_s for s in piece.sections] == sorted(s.start_s for s in piece.sections)
    with pytest.raises(JamError, match="discrete_token"):
        compose_jam(pipeline, contributions, options.replace(mode="discrete_token"), tokens=64)


async def test_the_engine_runs_a_jam_as_one_job_beside_single_pieces(tmp_path):
    from aria_engine.engine import Done, LocalEngine, Progress
    from aria_engine.jam import JamScore, Part
    from aria_engine.pipeline import Origin, Request

    score = JamScore.of([Part(f"@m{i}", e) for i, e in enumerate(MOODS, start=1)], seconds=8)
    options = GenerationOptions(composer="procedural", seed=4, duration_s=24)
    async with LocalEngine(Pipeline(models_dir=tmp_path), concurrency=1, progress_interval_s=0.05) as engine:
        jam = await engine.submit(Request(emotion=score, options=options, origin=Origin("test", "a", "c", "host")))
        single = await engine.submit(Request(emotion=Emotion(0.2, 0.2), options=options.replace(duration_s=4),
                                             origin=Origin("test", "b", "c", "u")))
        jam_end, single_end = await jam.wait(), await single.wait()
    assert isinstance(jam_end, Done) and isinstance(single_end, Done)
    assert [t for _, t in markers_of(jam_end.result.midi)] == ["1. @m1: serene", "2. @m2: sad", "3. @m3: joyful"]
    assert markers_of(single_end.result.midi) == []
    assert sum(isinstance(e, Done) for e in jam.history) == 1
    assert any(isinstance(e, Progress) and e.stage == "composing" for e in jam.history)
    assert abs(jam_end.result.composition.duration_s - 24) < 0.01


def test_the_markers_cross_the_redis_wire_with_the_midi(jam):
    from aria_engine.engine.wire import dump_result, load_result

    back = load_result(dump_result(jam.result))
    assert markers_of(back.midi) == markers_of(jam.result.midi) and len(markers_of(back.midi)) == 3
