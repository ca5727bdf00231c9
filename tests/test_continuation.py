"""Extend: a score that continues an earlier piece (`JamScore.continues`) is composed as one job,
the earlier notes verbatim, the new sections after them, for both composers."""

from __future__ import annotations

import io
from pathlib import Path

import pretty_midi
import pytest

from aria_engine.emotion import Emotion
from aria_engine.jam import (Contribution, Continuation, JamError, JamScore, Part, compose_jam, jam_trajectory,
                             markers_of)
from aria_engine.music.procedural.sections import MAX_TEMPO_RATIO
from aria_engine.music.procedural.state import StateError, parse_state, read_state
from aria_engine.options import GenerationOptions
from aria_engine.pipeline import Pipeline, Request

CALM, SAD, JOYFUL = Emotion(0.6, -0.7), Emotion(-0.6, 0.0), Emotion(0.7, 0.8)


def _notes(midi_bytes: bytes, before: float | None = None) -> list[tuple]:
    midi = pretty_midi.PrettyMIDI(io.BytesIO(midi_bytes))
    return sorted((i.is_drum, i.program, n.pitch, n.velocity, midi.time_to_tick(n.start), midi.time_to_tick(n.end))
                  for i in midi.instruments for n in i.notes if before is None or n.start < before - 1e-3)


def _end_of_notes(midi_bytes: bytes) -> float:
    midi = pretty_midi.PrettyMIDI(io.BytesIO(midi_bytes))
    return max(n.end for i in midi.instruments for n in i.notes)


def _largest_gap(midi_bytes: bytes, at: float, around: float = 2.0) -> float:
    """The longest silence within `around` seconds of `at` (the check test_jam makes at boundaries)."""
    midi = pretty_midi.PrettyMIDI(io.BytesIO(midi_bytes))
    notes = sorted((n.start, n.end) for i in midi.instruments for n in i.notes)
    window = [(max(s, at - around), min(e, at + around)) for s, e in notes if e > at - around and s < at + around]
    covered, gap = at - around, 0.0
    for start, end in window:
        gap = max(gap, start - covered)
        covered = max(covered, end)
    return max(gap, at + around - covered)


# -- procedural ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    return Pipeline(models_dir=tmp_path_factory.mktemp("no-models"))


@pytest.fixture(scope="module")
def earlier_jam(pipeline):
    contributions = [Contribution("@ana", emotion=CALM), Contribution("@bo", emotion=SAD)]
    return compose_jam(pipeline, contributions, GenerationOptions(seed=11), seconds=10)


@pytest.fixture(scope="module")
def extended_jam(pipeline, earlier_jam):
    contributions = [Contribution("@ana", emotion=CALM), Contribution("@bo", emotion=SAD),
                     Contribution("@cy", emotion=JOYFUL)]
    return compose_jam(pipeline, contributions, GenerationOptions(seed=5), seconds=10,
                       continues=Continuation(earlier_jam.result.midi, 2, "procedural"))


def test_every_procedural_piece_carries_its_closing_state(pipeline, earlier_jam):
    state = read_state(pretty_midi.PrettyMIDI(io.BytesIO(earlier_jam.result.midi)))
    last = earlier_jam.result.composition.stats["sections"][-1]
    assert state.emotion == SAD and state.mode == "aeolian" and state.bpm == last["tempo_bpm"][-1]
    assert list(state.motif) == earlier_jam.result.composition.stats["motif_steps"]
    single = pipeline.run(Request(emotion=JOYFUL, options=GenerationOptions(seed=2, duration_s=8)))
    state = read_state(pretty_midi.PrettyMIDI(io.BytesIO(single.midi)))
    assert state.emotion == JOYFUL and state.mode == "ionian" and state.tonic_pc == single.composition.stats["tonic_pc"]


def test_the_state_is_parsed_strictly():
    good = 'aria-state {"v":1,"tonic":3,"mode":"ionian","bpm":90.0,"motif":[0,1],"valence":0.1,"arousal":0.2}'
    assert parse_state(good).tonic_pc == 3
    for bad in (good.replace('"tonic":3', '"tonic":12'), good.replace('"bpm":90.0', '"bpm":1e400'),
                good.replace('"mode":"ionian"', '"mode":"x"'), good.replace('[0,1]', '[]'),
                good.replace('"valence":0.1', '"valence":"0.1"'), good.replace('}', ',"extra":1}'),
                good.replace('"motif":[0,1]', '"motif":[' + ",".join(["1"] * 400) + "]"),
                "aria-state [" * 300, "aria-state {"):
        with pytest.raises(StateError):
            parse_state(bad)


def test_a_continued_jam_keeps_the_earlier_notes_and_adds_a_marked_section(earlier_jam, extended_jam):
    earlier, longer = earlier_jam.result.midi, extended_jam.result.midi
    join = _end_of_notes(earlier)
    assert _notes(longer, before=join) == _notes(earlier)  # verbatim
    assert [t for _, t in markers_of(longer)] == ["1. @ana: serene", "2. @bo: sad", "3. @cy: joyful"]
    assert [round(t, 3) for t, _ in markers_of(longer)[:2]] == [round(t, 3) for t, _ in markers_of(earlier)]
    assert abs(markers_of(longer)[2][0] - join) < 0.01
    assert [s.contributor for s in extended_jam.sections] == ["@ana", "@bo", "@cy"]
    assert extended_jam.credits.splitlines()[2].startswith("3. @cy: joyful, 0:20-0:30")
    assert extended_jam.sections[1].key == earlier_jam.sections[1].key  # read back from the earlier MIDI
    assert abs(extended_jam.result.composition.duration_s - (join + 10)) < 0.01


def test_the_new_section_goes_where_its_emotion_asks_without_a_gap_or_jump_at_the_join(earlier_jam, extended_jam):
    longer = pretty_midi.PrettyMIDI(io.BytesIO(extended_jam.result.midi))
    join = _end_of_notes(earlier_jam.result.midi)
    _, tempi = longer.get_tempo_changes()
    ratios = [max(a / b, b / a) for a, b in zip(tempi, tempi[1:])]
    assert max(ratios) <= MAX_TEMPO_RATIO + 1e-3, ratios  # the ramp starts from the earlier closing tempo
    earlier_state = read_state(pretty_midi.PrettyMIDI(io.BytesIO(earlier_jam.result.midi)))
    times, tempi = longer.get_tempo_changes()
    first_new = [q for t, q in zip(times, tempi) if t >= join - 1e-3][0]
    assert first_new == pytest.approx(earlier_state.bpm * MAX_TEMPO_RATIO, rel=1e-3)  # 110 -> 132, towards 150
    assert tempi[-1] == pytest.approx(150, rel=1e-3)  # arousal 0.8: 110 + 50 * 0.8
    assert _largest_gap(extended_jam.result.midi, join) < 0.3
    density = [len([n for i in longer.instruments for n in i.notes if a <= n.start < b]) / (b - a)
               for a, b in ((join - 10, join), (join, join + 10))]
    assert density[1] > density[0]  # arousal 0.0 -> 0.8
    keys = [k for k in longer.key_signature_changes if k.time >= join - 1e-3]
    assert keys and keys[0].key_number < 12  # valence -0.6 -> 0.7: to the (relative) major
    states = [e.text for e in longer.text_events if e.text.startswith("aria-state ")]
    assert len(states) == 1 and '"arousal":0.8' in states[0]  # the longer piece's own closing state


def test_an_ordinary_piece_continues_with_its_key_and_motif(pipeline):
    single = pipeline.run(Request(emotion=CALM, options=GenerationOptions(seed=4, duration_s=12)))
    state = read_state(pretty_midi.PrettyMIDI(io.BytesIO(single.midi)))
    contributions = [Contribution("piece.mid", emotion=state.emotion), Contribution("@dee", emotion=Emotion(0.6, 0.4))]
    extended = compose_jam(pipeline, contributions, GenerationOptions(seed=9), seconds=8,
                           continues=Continuation(single.midi, 1, "procedural"))
    join = _end_of_notes(single.midi)
    assert _notes(extended.result.midi, before=join) == _notes(single.midi)
    assert [t for _, t in markers_of(extended.result.midi)] == ["1. piece.mid: serene", "2. @dee: joyful"]
    assert extended.result.composition.stats["motif_steps"] == list(state.motif)
    assert _largest_gap(extended.result.midi, join) < 0.3
    # same mode, valence holds: up a fifth from the earlier key
    new_key = extended.sections[1].key.split()[0]
    from aria_engine.music.procedural.harmony import PITCH_NAMES
    assert (PITCH_NAMES.index(new_key) - state.tonic_pc) % 12 == 7
    again = compose_jam(pipeline, contributions, GenerationOptions(seed=9), seconds=8,
                        continues=Continuation(single.midi, 1, "procedural"))
    assert again.result.midi == extended.result.midi  # seeded


def test_bad_continuations_are_refused_in_words(pipeline, earlier_jam):
    parts = [Part("@ana", CALM), Part("@bo", SAD)]
    with pytest.raises(JamError, match="holds 1 to 1"):
        JamScore.of(parts, 10, Continuation(earlier_jam.result.midi, 2, "procedural"))
    with pytest.raises(JamError, match="not a readable MIDI"):
        compose_jam(pipeline, [Contribution("a", emotion=CALM), Contribution("b", emotion=SAD)],
                    GenerationOptions(seed=1), seconds=8, continues=Continuation(b"MThd nonsense", 1, "procedural"))
    bare = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(0)
    piano.notes.append(pretty_midi.Note(80, 60, 0.0, 2.0))
    bare.instruments.append(piano)
    buffer = io.BytesIO()
    bare.write(buffer)
    with pytest.raises(JamError, match="carries no ARIA state"):
        compose_jam(pipeline, [Contribution("a", emotion=CALM), Contribution("b", emotion=SAD)],
                    GenerationOptions(seed=1), seconds=8, continues=Continuation(buffer.getvalue(), 1, "procedural"))


def test_the_continuation_trajectory_starts_at_the_earlier_emotion():
    trajectory = jam_trajectory([SAD, JOYFUL], previous=CALM)
    assert trajectory.at(0.0) == CALM
    assert trajectory.at(0.125) == SAD and trajectory.at(0.4) == SAD
    assert trajectory.at(0.7) == JOYFUL and trajectory.at(1.0) == JOYFUL
    score = JamScore.of([Part("@a", CALM), Part("@b", SAD), Part("@c", JOYFUL)], 10,
                        Continuation(b"MThd", 1, "procedural"))
    assert score.composed_trajectory() == trajectory and [p.contributor for p in score.new_parts] == ["@b", "@c"]
    assert "sha256:" in repr(score.continues)  # the cache key names the earlier MIDI by its digest


# -- transformer ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def transformer(tmp_path_factory):
    pytest.importorskip("torch")
    from tests.factories.music import make_music_checkpoint

    root = tmp_path_factory.mktemp("tiny")
    checkpoint = make_music_checkpoint(root / "cc", "continuous_concat", seed=1)
    return Pipeline(models_dir=root / "none", model_dir=checkpoint, device="cpu")


TRANSFORMER = GenerationOptions(composer="transformer", mode="continuous_concat", seed=3, window=32, length=200,
                                min_instruments=2)


@pytest.fixture(scope="module")
def earlier_piece(transformer):
    return transformer.run(Request(emotion=CALM, options=TRANSFORMER))


def _extend(transformer, earlier_piece, decode="fast", seed=8):
    contributions = [Contribution("earlier", emotion=CALM), Contribution("@bo", emotion=JOYFUL)]
    return compose_jam(transformer, contributions, TRANSFORMER.replace(seed=seed, decode=decode), tokens=64,
                       continues=Continuation(earlier_piece.midi, 1, "transformer"))


@pytest.mark.parametrize("decode", ["fast", "exact"])
def test_a_transformer_continuation_keeps_the_earlier_notes_and_is_seeded(transformer, earlier_piece, decode):
    extended = _extend(transformer, earlier_piece, decode)
    join = _end_of_notes(earlier_piece.midi)
    assert _notes(extended.result.midi, before=join) == _notes(earlier_piece.midi)
    composition = extended.result.composition
    _, vocab, _, _ = transformer.composer("transformer", "continuous_concat").load()
    primer = vocab.from_midi(pretty_midi.PrettyMIDI(io.BytesIO(earlier_piece.midi)))
    assert composition.stats["primer_tokens"] == len(primer) and composition.tokens[:len(primer)] == primer
    assert len(composition.tokens) == len(primer) + 64  # length counts only the new tokens
    assert [t for _, t in markers_of(extended.result.midi)] == ["1. earlier: serene", "2. @bo: joyful"]
    assert markers_of(extended.result.midi)[1][0] == pytest.approx(join, abs=0.01)
    assert _extend(transformer, earlier_piece, decode).result.midi == extended.result.midi
    assert _extend(transformer, earlier_piece, decode, seed=9).result.composition.tokens != composition.tokens


@pytest.mark.parametrize("decode", ["fast", "exact"])
def test_primed_decoding_sees_the_last_window_and_follows_the_trajectory(transformer, decode):
    """Every step's logits are the oracle forward over the window the rules give, conditioned on
    the continuation trajectory at that step (the oracle tests' check, with a primer)."""
    import torch

    from aria_engine.music.decoding import DecodeRequest, generate, step_conditions

    model, vocab, _, _ = transformer.composer("transformer", "continuous_concat").load()
    primer = ()
    for i in range(27):  # 81 tokens, over the window
        pitch = 60 + i % 5
        primer += (vocab.note_id("ON", "PIANO", pitch), vocab.timeshift_id(96), vocab.note_id("OFF", "PIANO", pitch))
    trajectory = jam_trajectory([JOYFUL], previous=SAD)
    request = DecodeRequest(emotion=trajectory, length=30, window=24, seed=6, primer=primer)
    seen = []
    result = generate(model, vocab, [request], decode=decode, observe=seen.append, trajectory_refresh=8)[0]
    assert len(result.tokens) == 30 and len(seen) == 30
    values = torch.tensor(step_conditions(trajectory, 30), dtype=torch.float32).tolist()
    for info in seen:
        assert info.sequence[:1 + len(primer)] == [vocab.start_id, *primer]
        window = info.sequence[info.window_start:]
        if decode == "exact":
            assert info.window_start == len(info.sequence) - 24 and info.condition == pytest.approx(values[info.step])
        else:
            assert (24 + 1) // 2 <= len(window) <= 24
            assert info.condition == pytest.approx(values[info.step - info.step % 8])
        expected = model(torch.tensor([window]), valence=info.condition[0], arousal=info.condition[1])[0, -1]
        assert (expected - info.logits).abs().max().item() <= 1e-4
    assert seen[0].condition == pytest.approx((SAD.valence, SAD.arousal))  # from the earlier emotion
    assert seen[-1].condition[0] == pytest.approx(JOYFUL.valence, abs=0.01)
    assert generate(model, vocab, [request], decode=decode, trajectory_refresh=8)[0].tokens == result.tokens
    with pytest.raises(ValueError, match="primer"):
        generate(model, vocab, [DecodeRequest(emotion=CALM, length=4, primer=(vocab.start_id,))])


def test_a_continuation_is_refused_by_the_other_composer(transformer, pipeline, earlier_piece, earlier_jam):
    contributions = [Contribution("a", emotion=CALM), Contribution("b", emotion=SAD)]
    with pytest.raises(JamError, match="carries no ARIA state"):  # a transformer piece, procedurally
        compose_jam(pipeline, contributions, GenerationOptions(seed=1), seconds=8,
                    continues=Continuation(earlier_piece.midi, 1, "procedural"))
    with pytest.raises(JamError, match="built-in composer"):
        transformer.compose([(JamScore.of([Part("a", CALM), Part("b", SAD)], 8,
                                           Continuation(earlier_jam.result.midi, 1, "procedural")), TRANSFORMER)])
