"""The vocabulary: published order, safe loading, tokens <-> MIDI."""

from __future__ import annotations

import random

import pretty_midi
import pytest

torch = pytest.importorskip("torch")

from aria_engine.music.vocab import INSTRUMENTS, Vocab, VocabError  # noqa: E402


@pytest.fixture(scope="module")
def vocab():
    return Vocab.build("none")


def test_published_order(vocab):
    assert len(vocab) == 1007
    assert vocab.event2idx == {
        "OFF_DRUMS": 0, "ON_DRUMS": 1, "OFF_GUITAR": 2, "ON_GUITAR": 3, "OFF_BASS": 4, "ON_BASS": 5,
        "OFF_PIANO": 6, "ON_PIANO": 7, "OFF_STRINGS": 8, "ON_STRINGS": 9, "TIMESHIFT": 10,
    }
    assert vocab.tuple2idx["<PAD>"] == 0 and vocab.tuple2idx["<START>"] == 1
    assert vocab.tuple2idx[(0, 21)] == 2 and vocab.tuple2idx[(0, 108)] == 89 and vocab.tuple2idx[(1, 21)] == 90
    assert vocab.tuple2idx[(9, 108)] == 881
    assert vocab.tuple2idx[(10, 8)] == 882 and vocab.tuple2idx[(10, 1000)] == 1006
    assert vocab.transposable_event_inds == [2, 3, 4, 5, 6, 7, 8, 9]
    assert vocab.special_ids == [0, 1]
    assert sum(vocab.is_timeshift) == 125


def test_discrete_vocabulary_appends_sorted_emotion_tokens():
    vocab = Vocab.build("discrete_token")
    assert len(vocab) == 1017
    assert [vocab.idx2tuple[i] for i in range(1007, 1017)] == [
        "<A-1>", "<A-2>", "<A0>", "<A1>", "<A2>", "<V-1>", "<V-2>", "<V0>", "<V1>", "<V2>",
    ]
    assert vocab.emotion_ids(-2, 1) == (vocab.tuple2idx["<V-2>"], vocab.tuple2idx["<A1>"])
    assert set(vocab.special_ids) == {0, 1, *range(1007, 1017)}


def test_a_missing_emotion_bin_is_explained():
    vocab = Vocab.build("discrete_token", emotion_tokens=["<V0>", "<A0>"])
    with pytest.raises(VocabError, match="<V2>"):
        vocab.emotion_ids(2, 0)


def test_mappings_round_trip_through_the_file_format(tmp_path, vocab):
    path = tmp_path / "mappings.pt"
    vocab.save_mappings(path)
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"event2idx", "idx2event", "tuple2idx", "idx2tuple", "transposable_event_inds"}
    loaded = Vocab.load(path)
    assert loaded.tuple2idx == vocab.tuple2idx and loaded.idx2event == vocab.idx2event


def test_loading_refuses_code_and_nonsense(tmp_path):
    class Boom:
        def __reduce__(self):
            return (print, ("this must never run",))

    torch.save({"event2idx": Boom()}, tmp_path / "evil.pt")
    with pytest.raises(VocabError, match="allows"):
        Vocab.load(tmp_path / "evil.pt")
    torch.save({"event2idx": {}}, tmp_path / "partial.pt")
    with pytest.raises(VocabError, match="missing"):
        Vocab.load(tmp_path / "partial.pt")


def test_to_midi_follows_the_reference_rules(vocab):
    on, off = (lambda ins, p: vocab.note_id("ON", ins, p)), (lambda ins, p: vocab.note_id("OFF", ins, p))
    tokens = [
        vocab.start_id,
        off("PIANO", 60),  # no open note: ignored
        on("PIANO", 60), on("DRUMS", 36), on("BASS", 40),
        vocab.timeshift_id(1000), vocab.timeshift_id(496),
        off("PIANO", 60), off("DRUMS", 36),
        on("STRINGS", 70),  # never closed: dropped
        vocab.timeshift_id(8), off("BASS", 40),
    ]
    midi = vocab.to_midi(tokens)
    tracks = {t.name: t for t in midi.instruments}
    assert [t.name for t in midi.instruments] == ["drums", "piano", "guitar", "bass", "strings"]
    assert tracks["drums"].is_drum and (tracks["piano"].program, tracks["guitar"].program) == (0, 24)
    assert (tracks["bass"].program, tracks["strings"].program) == (32, 48)
    (piano,) = tracks["piano"].notes
    assert (piano.pitch, piano.velocity, piano.start, piano.end) == (60, 110, 0.0, pytest.approx(1.496))
    assert tracks["drums"].notes[0].velocity == 120
    (bass,) = tracks["bass"].notes
    assert (bass.velocity, bass.end) == (127, pytest.approx(1.504))
    assert tracks["strings"].notes == [] and tracks["guitar"].notes == []
    assert vocab.count_instruments(tokens) == 4  # STRINGS is named by a token, though dropped


def test_to_midi_rejects_indices_outside_the_vocabulary(vocab):
    with pytest.raises(VocabError, match="outside"):
        vocab.to_midi([1, 5000])


def test_from_midi_encodes_as_the_models_were_trained(vocab):
    midi = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(program=0, name="piano")
    bass = pretty_midi.Instrument(program=33)  # named by program
    piano.notes = [pretty_midi.Note(90, 60, 0.5, 3.0), pretty_midi.Note(90, 10, 0.5, 1.0)]  # 10: out of range
    bass.notes = [pretty_midi.Note(90, 40, 0.5, 0.503)]
    midi.instruments = [piano, bass]
    tokens = [vocab.describe(t) for t in vocab.from_midi(midi)]
    assert tokens == [
        "ON_BASS_40", "ON_PIANO_60",  # starts at the first note; ON first; BASS before PIANO
        "TIMESHIFT_8",  # 3 ms rounds to 0, which becomes 8
        "OFF_BASS_40",
        "TIMESHIFT_1000", "TIMESHIFT_1000", "TIMESHIFT_496",  # 2497 ms: 1000 + 1000 + round(497 / 8) * 8
        "OFF_PIANO_60",
    ]


def _random_piece(rng: random.Random) -> pretty_midi.PrettyMIDI:
    """Notes on an 8 ms grid that never touch a note of the same instrument and pitch."""
    midi = pretty_midi.PrettyMIDI()
    for name in INSTRUMENTS:
        track = pretty_midi.Instrument(program=0, is_drum=name == "DRUMS", name=name.lower())
        busy_until: dict[int, int] = {}
        for _ in range(rng.randint(3, 12)):
            pitch = rng.randint(21, 108)
            start = rng.randint(0, 600) * 8
            if start <= busy_until.get(pitch, -8):
                continue
            end = start + rng.randint(1, 400) * 8
            busy_until[pitch] = end
            track.notes.append(pretty_midi.Note(100, pitch, start / 1000, end / 1000))
        midi.instruments.append(track)
    return midi


def _notes(midi):
    return sorted(
        (t.name, n.pitch, round(n.start, 6), round(n.end, 6)) for t in midi.instruments for n in t.notes
    )


@pytest.mark.parametrize("seed", range(5))
def test_tokens_midi_tokens_round_trip(vocab, seed):
    piece = _random_piece(random.Random(seed))
    tokens = vocab.from_midi(piece)
    decoded = vocab.to_midi([vocab.start_id, *tokens])
    assert vocab.from_midi(decoded) == tokens
    offset = min(n.start for t in piece.instruments for n in t.notes)
    shifted = [(name, pitch, round(s - offset, 6), round(e - offset, 6)) for name, pitch, s, e in _notes(piece)]
    assert _notes(decoded) == shifted
