"""The wire format on its own: a real Result survives it whole, and nothing malformed or hostile
gets past `load_result`, `event_from_fields` or `request_from_json` (the trip through a real
redis-server is in test_redis_wire.py)."""

from __future__ import annotations

import io
import json
import pickle
import struct
import sys
from dataclasses import replace
from pathlib import Path

import mido
import pretty_midi
import pytest

from aria_engine.emotion import Emotion, Trajectory
from aria_engine.jam import MAX_CONTRIBUTIONS, Continuation, JamScore, Part, markers_of
from aria_engine.engine import Cancelled, Done, Failed, Progress, Queued, Started
from aria_engine.engine import wire
from aria_engine.engine.wire import (
    MAGIC, MAX_MIDI_TICKS, SECTION_LIMITS, SECTIONS, WireError, dump_result, event_from_fields, event_to_fields,
    load_reading_answer, load_result, reading_answer, reading_from_json, reading_to_json, request_from_json,
    request_to_json, score_continuation,
)
from aria_engine.options import GenerationOptions
from aria_engine.pipeline import Origin, Pipeline, Request
from bot.reply import build_reply

REPO = Path(__file__).resolve().parents[1]
DEFAULTS = dict(composer="procedural", encoder="palette")  # the embedded defaults: no weights


@pytest.fixture(scope="module")
def results():
    """A piece from a picture and one along a trajectory, as the embedded defaults make them."""
    pipeline = Pipeline()
    picture = Request(image=(REPO / "examples" / "dusk.png").read_bytes(),
                      options=GenerationOptions(**DEFAULTS, duration_s=3, seed=5), max_upload_bytes=8_000_000)
    journey = Request(emotion=Trajectory.linear([Emotion(-0.8, -0.6), Emotion(0.8, 0.7)]),
                      options=GenerationOptions(**DEFAULTS, duration_s=4, seed=9))
    return [pipeline.run(picture), pipeline.run(journey)]


def transformer_like(result):
    """The fields only the transformer fills: a mode, tokens, its stats."""
    comp = replace(result.composition, composer="transformer", mode="continuous_token", tokens=[5, 17, 300, 2],
                   stats={"tokens_per_s": 812.25, "attempts": 1}, notes=["took two attempts"])
    return replace(result, composition=comp, notes=["a note"])


def notes_of(midi: pretty_midi.PrettyMIDI):
    return [(i.program, i.is_drum, i.name, [(n.start, n.end, n.pitch, n.velocity) for n in i.notes])
            for i in midi.instruments]


def assert_same_for_the_bot(back, result):
    """Every field the bot, the store and the CLI read from a Result."""
    for name in ("emotion", "trajectory", "encoder", "options", "midi", "audio", "emotion_chart", "piano_roll",
                 "timings", "notes"):
        assert getattr(back, name) == getattr(result, name), name
    for name in ("composer", "seed", "mode", "tokens", "notes", "stats", "instruments"):
        assert getattr(back.composition, name) == getattr(result.composition, name), name
    assert back.backend == result.backend and back.summary() == result.summary()
    assert build_reply(back, upload_limit=8_000_000) == build_reply(result, upload_limit=8_000_000)
    # The rebuilt pretty_midi object is exactly what the .mid says, and the composed piece to the tick.
    assert notes_of(back.composition.midi) == notes_of(pretty_midi.PrettyMIDI(io.BytesIO(result.midi)))
    original, rebuilt = notes_of(result.composition.midi), notes_of(back.composition.midi)
    assert [track[:3] for track in rebuilt] == [track[:3] for track in original]
    for mine, theirs in zip(rebuilt, original):
        assert [n[2:] for n in mine[3]] == [n[2:] for n in theirs[3]]
        assert [t for n in mine[3] for t in n[:2]] == pytest.approx([t for n in theirs[3] for t in n[:2]], abs=2e-3)
    assert back.composition.duration_s == pytest.approx(result.composition.duration_s, abs=2e-3)


def test_a_real_result_survives_the_wire_in_every_field_the_bot_uses(results):
    for result in [*results, transformer_like(results[0])]:
        frame = dump_result(result)
        assert frame.startswith(MAGIC)
        assert_same_for_the_bot(load_result(frame), result)
    assert results[1].trajectory is not None and results[0].trajectory is None


# -- malformed and hostile results ------------------------------------------------------------------


def split(frame: bytes) -> tuple[dict, dict[str, bytes]]:
    (size,) = struct.unpack_from(">I", frame, len(MAGIC))
    start = len(MAGIC) + 4
    header = json.loads(frame[start:start + size])
    sections, at = {}, start + size
    for name in SECTIONS:
        sections[name] = frame[at:at + header["sections"][name]]
        at += header["sections"][name]
    return header, sections


def join(header: dict, sections: dict[str, bytes], *, sizes: bool = True) -> bytes:
    if sizes:
        header = {**header, "sections": {name: len(sections[name]) for name in SECTIONS}}
    raw = json.dumps(header).encode()
    return MAGIC + struct.pack(">I", len(raw)) + raw + b"".join(sections[name] for name in SECTIONS)


def edited(frame: bytes, change) -> bytes:
    header, sections = split(frame)
    change(header, sections)
    return join(header, sections)


def long_midi() -> bytes:
    """A 30-byte MIDI file whose one note ends 2**28 ticks in (pretty_midi would allocate 8
    bytes for every tick of it)."""
    track = mido.MidiTrack([mido.Message("note_on", note=60, velocity=90, time=0),
                            mido.Message("note_off", note=60, time=2**28 - 1)])
    buffer = io.BytesIO()
    mido.MidiFile(tracks=[track], ticks_per_beat=480).save(file=buffer)
    return buffer.getvalue()


def exploit(marker: Path) -> bytes:
    """The pickle of the red-team report: it names `aria_engine.loadtest.subprocess.Popen`,
    which the old allow-list let through, and would start a process that creates `marker`."""
    def text(value: str) -> bytes:
        raw = value.encode()
        return b"X" + struct.pack("<I", len(raw)) + raw

    command = [sys.executable, "-c", f"open({str(marker)!r}, 'w').write('owned')"]
    return (b"\x80\x04" + text("aria_engine.loadtest") + text("subprocess.Popen") + b"\x93"  # STACK_GLOBAL
            + b"](" + b"".join(text(part) for part in command) + b"e"  # [the command]
            + b"\x85R.")  # (command,) -> Popen(command)


def malformed(frame: bytes) -> list[tuple[str, bytes, str]]:
    """(what, bytes, the words the reason must contain) for each kind of broken envelope."""
    header, sections = split(frame)

    def header_bytes(raw: bytes) -> bytes:
        return MAGIC + struct.pack(">I", len(raw)) + raw + b"".join(sections[n] for n in SECTIONS)

    def setting(path, value):
        def change(head, _):
            *parents, last = path
            node = head
            for key in parents:
                node = node[key]
            node[last] = value
        return edited(frame, change)

    return [
        ("an old pickle", pickle.dumps({"not": "a result"}), "pickle"),
        ("no envelope", b"GIF89a" + b"\x00" * 40, "not an ARIA result envelope"),
        ("bad JSON", header_bytes(b"{not json"), "header is not valid JSON"),
        ("bad UTF-8", header_bytes(b'{"a": "\xff"}'), "header is not valid JSON"),
        ("a newer version", setting(["version"], 3), "version is 3"),
        ("another format", setting(["format"], "aria-request"), "format is 'aria-request'"),
        ("an unknown field", setting(["run"], "os.system"), "unknown fields: run"),
        ("a missing field", edited(frame, lambda h, s: h.pop("notes")), "lacks notes"),
        ("a number as text", setting(["emotion", "valence"], "high"), "valence must be a number, not str"),
        ("out of range", setting(["emotion", "arousal"], 3.5), "arousal must be a number between -1 and 1"),
        ("NaN", setting(["audio", "duration_s"], float("nan")), "duration must be a number"),
        ("a number past float", setting(["audio", "duration_s"], 10**400), "duration is out of range"),
        ("a hostile name", setting(["<@everyone>\n"], 1), "unknown fields: ??everyone??"),
        ("a list for an object", setting(["composition"], ["procedural"]), "composition must be an object"),
        ("a bool for a seed", setting(["composition", "seed"], True), "seed must be an integer, not bool"),
        ("a bad option", setting(["options", "top_p"], 7), "top-p"),
        ("an unknown option", setting(["options", "shell"], "sh"), "unknown fields: shell"),
        ("a bad audio type", setting(["audio", "mime_type"], "text/html"), "audio's type must be audio/ogg"),
        ("a bad mode", setting(["composition", "mode"], "exec"), "mode must be one of"),
        ("deep stats", setting(["composition", "stats"], {"a": [[[[[1]]]]]}), "nested too deep"),
        ("a huge header", header_bytes(b" " * (wire.MAX_HEADER_BYTES + 1)), "header is 1048577 bytes"),
        ("an oversized section", edited(frame, lambda h, s: s.update(midi=s["midi"] + b"\0" * SECTION_LIMITS["midi"])),
         f"midi section is {len(sections['midi']) + SECTION_LIMITS['midi']} bytes, over its"),
        ("a negative size", join({**header, "sections": {**header["sections"], "midi": -1}}, sections, sizes=False),
         "midi section's size must be between 0"),
        ("truncated in the header", frame[:len(MAGIC) + 10], "truncated inside its header"),
        ("truncated in a section", frame[:-7], "truncated: 7 bytes"),
        ("trailing bytes", frame + b"tail", "4 bytes after its last section"),
        ("sizes that lie", join({**header, "sections": {**header["sections"],
                                                        "audio": len(sections["audio"]) + 10,
                                                        "emotion_chart": len(sections["emotion_chart"]) - 10}},
                                sections, sizes=False), "emotion chart is not a PNG"),
        ("not a MIDI file", edited(frame, lambda h, s: s.update(midi=b"MThd\x00\x00\x00\x06garbage")),
         "MIDI section is not a MIDI file"),
        ("a MIDI file too long", edited(frame, lambda h, s: s.update(midi=long_midi())),
         f"over the {MAX_MIDI_TICKS}-tick limit"),
    ]


def test_every_malformed_result_is_refused_with_what_is_wrong(results):
    for what, data, reason in malformed(dump_result(results[0])):
        with pytest.raises(WireError) as refused:
            load_result(data)
        assert reason in str(refused.value), (what, str(refused.value))


def test_a_result_over_a_limit_is_refused_by_the_writer_too(results, monkeypatch):
    monkeypatch.setitem(SECTION_LIMITS, "audio", 100)
    with pytest.raises(WireError, match="audio section is .* bytes, over its 100-byte limit"):
        dump_result(results[0])


def test_the_exploit_pickle_is_never_loaded(tmp_path):
    marker = tmp_path / "owned"
    with pytest.raises(WireError, match="pickle"):
        load_result(exploit(marker))
    assert not marker.exists()


# -- events and requests --------------------------------------------------------------------------


def test_events_survive_the_wire(results):
    for event in (Queued(3, 12.5), Queued(1, None), Started("w1", 4), Progress("composing", 0.25, "composing 3 of 12"),
                  Failed("Sorry.", "ab12", "error"), Failed("No.", None, "image_rejected"), Cancelled("u9")):
        fields = {k.encode(): v.encode() for k, v in event_to_fields(event).items()}
        assert event_from_fields(fields) == event
    done = {k.encode(): v.encode() for k, v in event_to_fields(Done(results[0], cached=True)).items()}
    assert event_from_fields(done, results[0]) == Done(results[0], cached=True)


@pytest.mark.parametrize("fields, reason", [
    ({"type": "shell"}, "unknown type 'shell'"),
    ({}, "no readable type"),
    ({b"type": b"\xff"}, "no readable type"),
    ({"type": "progress", "stage": '"composing"', "fraction": '"x"', "detail": '""'}, "fraction must be a number"),
    ({"type": "progress", "stage": '"mining"', "fraction": "0.5", "detail": '""'}, "unknown stage 'mining'"),
    ({"type": "progress", "stage": '"composing"', "fraction": "1.5", "detail": '""'}, "between 0 and 1"),
    ({"type": "progress", "stage": '"composing"', "fraction": "0.5"}, "lacks detail"),
    ({"type": "queued", "position": "1", "cmd": '"id"'}, "unknown fields: cmd"),
    ({"type": "queued", "position": "{"}, "not valid JSON"),
    ({"type": "queued", "position": "-1"}, "position must be between 0"),
    ({"type": "started", "worker": '"' + "w" * 9000 + '"'}, "over 8192 bytes"),
    ({"type": "failed", "reason": "42"}, "reason must be text, not int"),
    ({"type": "failed", "reason": '"x"', "kind": '"Not A Word"'}, "kind must be a short lower-case word"),
    ({"type": "cancelled", "by": "null"}, "who cancelled must be text, not null"),
    ({"type": "done", "cached": '"yes"'}, "cached must be true or false"),
])
def test_a_malformed_event_is_refused_with_what_is_wrong(fields, reason):
    with pytest.raises(WireError) as refused:
        event_from_fields(fields, result=None)
    assert reason in str(refused.value)


def test_requests_survive_the_wire_and_anything_else_is_refused():
    request = Request(emotion=Trajectory.linear([Emotion(-0.2, 0.1), Emotion(0.9, -0.7)]),
                      options=GenerationOptions(duration_s=7, seed=3, mode="discrete_token", top_k=5),
                      origin=Origin("discord", "g1", "c1", "u1"), max_upload_bytes=8_000_000)
    assert request_from_json(request_to_json(request), None) == request
    picture = Request(image=b"\x89PNG...", options=GenerationOptions(seed=1))
    assert request_from_json(request_to_json(picture), picture.image) == picture
    good = json.loads(request_to_json(picture))

    def tampered(path, value):
        data = json.loads(json.dumps(good))
        node = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        return json.dumps(data)

    for text, image, reason in [
        (tampered(["options", "top_k"], "many"), b"x", "options.top_k must be an integer, not str"),
        (tampered(["options", "length"], 5.5), b"x", "options.length must be an integer, not float"),
        (tampered(["options", "top_p"], 7), b"x", "top-p"),
        (tampered(["origin", "user"], {"$": 1}), b"x", "origin's user must be text, not dict"),
        (tampered(["origin", "admin"], True), b"x", "origin has unknown fields: admin"),
        (tampered(["has_image"], "yes"), b"x", "has_image must be true or false"),
        (tampered(["max_upload_bytes"], -5), b"x", "max_upload_bytes must be between 0"),
        (tampered(["emotion"], {"valence": float("nan"), "arousal": 0}), b"x", "valence must be a number"),
        (request_to_json(picture), None, "picture is missing"),
        ("[1, 2]", None, "request must be an object, not list"),
        ("{", None, "request is not valid JSON"),
        (None, None, "request is missing"),
        ("[" * 100_000, None, f"over {wire.MAX_REQUEST_BYTES} bytes"),
    ]:
        with pytest.raises(WireError) as refused:
            request_from_json(text, image)
        assert reason in str(refused.value), (reason, str(refused.value))


# -- jams -----------------------------------------------------------------------------------------

PARTS = (Part("@ana", Emotion(0.6, 0.4), "the sea", "palette"), Part("@bo", Emotion(-0.5, -0.3)),
         Part("@cy", Emotion(0.2, 0.8), "", "clip"))


def jam_request(score: JamScore, seed: int = 4) -> Request:
    return Request(emotion=score, options=GenerationOptions(**DEFAULTS, duration_s=score.seconds * len(score.parts),
                                                            seed=seed),
                   origin=Origin("slack", "T1", "C1", "U1"), max_upload_bytes=8_000_000)


@pytest.fixture(scope="module")
def jam_result():
    """A three-part jam as the embedded defaults compose it (6 s a section)."""
    return Pipeline().run(jam_request(JamScore.of(PARTS, 6)))


def through_the_wire(request: Request) -> Request:
    return request_from_json(request_to_json(request), request.image, score_continuation(request.emotion))


def test_a_jam_score_travels_whole_in_a_request(jam_result):
    score = JamScore.of(PARTS, 6)
    assert through_the_wire(jam_request(score)) == jam_request(score)
    continued = replace(score, continues=Continuation(jam_result.midi, 2, "procedural"))
    back = through_the_wire(jam_request(continued))
    assert back == jam_request(continued) and isinstance(back.emotion, JamScore)
    assert back.emotion.continues.midi == jam_result.midi  # the bytes beside the JSON, intact
    assert len(request_to_json(jam_request(continued))) < 4096  # the MIDI is not in the JSON
    assert score_continuation(score) is None and score_continuation(Emotion(0, 0)) is None


def test_the_wire_knows_every_field_of_a_jam():
    """A field added to Part, Continuation or JamScore must be added to the wire too (this fails
    until it is), or a worker would compose the score without it."""
    from dataclasses import fields as fields_of

    assert {f.name for f in fields_of(Part)} == {"contributor", "emotion", "caption", "encoder"}
    assert {f.name for f in fields_of(Continuation)} == {"midi", "sections", "composer"}
    assert {f.name for f in fields_of(JamScore)} == {"keyframes", "parts", "seconds", "continues"}


def test_a_jam_result_survives_the_wire_whole(jam_result):
    assert isinstance(jam_result.trajectory, JamScore)
    back = load_result(dump_result(jam_result))
    assert_same_jam_for_the_bot(back, jam_result)  # the score too: parts, seconds
    assert [t for _, t in markers_of(back.midi)] == ["1. @ana: " + PARTS[0].emotion.label,
                                                     "2. @bo: " + PARTS[1].emotion.label,
                                                     "3. @cy: " + PARTS[2].emotion.label]
    assert any(note.startswith("credits:\n1. @ana") for note in back.composition.notes)
    continued = replace(jam_result, trajectory=replace(jam_result.trajectory,
                                                       continues=Continuation(jam_result.midi, 1, "procedural")))
    again = load_result(dump_result(continued))
    assert again.trajectory == continued.trajectory and again.trajectory.continues.midi == jam_result.midi


def assert_same_jam_for_the_bot(back, result):
    """As assert_same_for_the_bot; a jam's tempo ramps round some notes' starts to the file's ticks,
    which may reorder notes that start together, so the composed piece is compared as sets."""
    for name in ("emotion", "trajectory", "encoder", "options", "midi", "audio", "emotion_chart", "piano_roll",
                 "timings", "notes"):
        assert getattr(back, name) == getattr(result, name), name
    for name in ("composer", "seed", "mode", "tokens", "notes", "stats", "instruments"):
        assert getattr(back.composition, name) == getattr(result.composition, name), name
    assert back.backend == result.backend and back.summary() == result.summary()
    assert build_reply(back, upload_limit=8_000_000) == build_reply(result, upload_limit=8_000_000)
    assert notes_of(back.composition.midi) == notes_of(pretty_midi.PrettyMIDI(io.BytesIO(result.midi)))
    for mine, theirs in zip(notes_of(back.composition.midi), notes_of(result.composition.midi)):
        assert mine[:3] == theirs[:3] and sorted(n[2:] for n in mine[3]) == sorted(n[2:] for n in theirs[3])


def test_a_result_of_the_earlier_version_still_reads(results):
    header, sections = split(dump_result(results[1]))
    header = {**header, "version": 1, "sections": {n: len(sections[n]) for n in SECTIONS[:4]}}
    raw = json.dumps(header).encode()
    old = MAGIC + struct.pack(">I", len(raw)) + raw + b"".join(sections[n] for n in SECTIONS[:4])
    assert_same_for_the_bot(load_result(old), results[1])


def long_continuation() -> bytes:
    return long_midi()


def test_a_forged_jam_request_is_refused_with_what_is_wrong(jam_result):
    continued = jam_request(replace(JamScore.of(PARTS, 6), continues=Continuation(jam_result.midi, 2, "procedural")))
    good = json.loads(request_to_json(continued))
    midi = jam_result.midi

    def tampered(change) -> str:
        data = json.loads(json.dumps(good))
        change(data["emotion"]["jam"], data)
        return json.dumps(data)

    def setting(path, value):
        def change(jam, data):
            node = jam
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value
        return tampered(change)

    many = [{"contributor": f"@m{i}", "valence": 0.1, "arousal": 0.1, "caption": "", "encoder": "explicit"}
            for i in range(MAX_CONTRIBUTIONS + 1)]
    huge = midi + b"\0" * wire.MAX_CONTINUATION_BYTES
    for text, cont, reason in [
        (setting(["parts"], many), midi, f"parts has more than {MAX_CONTRIBUTIONS} items"),
        (setting(["parts"], []), None, "parts must not be empty"),
        (setting(["parts"], "ana, bo"), midi, "parts must be a list, not str"),
        (setting(["parts", 0, "caption"], "x" * 121), midi, "part 1's caption is longer than 120 characters"),
        (setting(["parts", 1, "contributor"], ["@bo"]), midi, "part 2's contributor must be text, not list"),
        (setting(["parts", 2, "encoder"], "Not A Word"), midi, "part 3's encoder must be a short lower-case word"),
        (setting(["parts", 0, "valence"], 2), midi, "valence must be a number between -1 and 1"),
        (setting(["parts", 0, "arousal"], "calm"), midi, "arousal must be a number, not str"),
        (setting(["parts", 0, "run"], "sh"), midi, "part 1 has unknown fields: run"),
        (setting(["seconds"], 1e9), midi, "seconds per section must be a number between 6 and 120"),
        (setting(["exec"], 1), midi, "the jam has unknown fields: exec"),
        (setting(["continues", "sections"], 0), midi, "continuation's sections must be between 1 and 2"),
        (setting(["continues", "sections"], 3), midi, "continuation's sections must be between 1 and 2"),
        (setting(["continues", "sections"], True), midi, "sections must be an integer, not bool"),
        (setting(["continues", "composer"], "<@here>"), midi, "continuation's composer must be a short lower-case"),
        (setting(["continues"], [1]), midi, "continuation must be an object, not list"),
        (request_to_json(continued), None, "continuation's MIDI is missing"),
        (request_to_json(continued), midi[:-1], "not the"),
        (setting(["continues", "midi_bytes"], 7), b"garbage", "continuation's MIDI is not a MIDI file"),
        (setting(["continues", "midi_bytes"], len(long_continuation())), long_continuation(),
         f"continuation's MIDI is {2**28 - 1} ticks long"),
        (setting(["continues", "midi_bytes"], len(huge)), huge, "MIDI size must be between 0 and"),
        (setting(["continues", "midi_bytes"], 10), huge, f"over its {wire.MAX_CONTINUATION_BYTES}-byte limit"),
        (setting(["continues"], None), midi, "carries a continuation's MIDI but no jam that continues"),
        (request_to_json(jam_request(JamScore.of(PARTS[:1], 6))), midi, "no jam that continues"),
        (tampered(lambda jam, data: data.update(version=9)), midi, "version is 9"),
        (tampered(lambda jam, data: data["emotion"].update(keyframes=[[2, {"valence": 0, "arousal": 0}]])), midi,
         "fraction must be a number between 0 and 1"),
    ]:
        with pytest.raises(WireError) as refused:
            request_from_json(text, None, cont)
        assert reason in str(refused.value), (reason, str(refused.value))
    one_part = json.loads(request_to_json(jam_request(JamScore.of(PARTS[:1], 6))))
    one_part["emotion"]["jam"]["continues"] = {"sections": 1, "composer": "procedural", "midi_bytes": len(midi)}
    with pytest.raises(WireError, match="needs at least two parts"):
        request_from_json(json.dumps(one_part), None, midi)


def test_a_request_of_the_earlier_version_still_reads():
    request = Request(emotion=Emotion(0.1, 0.2), options=GenerationOptions(seed=3))
    old = json.loads(request_to_json(request))
    del old["version"]
    assert request_from_json(json.dumps(old), None) == request


def test_a_reading_and_its_answers_survive_the_wire():
    from aria_engine.safety import ImageUnsafe

    options = GenerationOptions(encoder="palette", image_safety="refuse", image_safety_threshold=0.3)
    assert reading_from_json(reading_to_json(options), b"\x89PNG") == (b"\x89PNG", options)
    assert load_reading_answer(reading_answer(Emotion(0.25, -0.5), "palette")) == (Emotion(0.25, -0.5), "palette")
    with pytest.raises(ImageUnsafe) as refused:
        load_reading_answer(reading_answer(unsafe=(0.91, 0.3)))
    assert (refused.value.score, refused.value.threshold) == (0.91, 0.3)
    with pytest.raises(ValueError, match="^That file is not a picture$"):
        load_reading_answer(reading_answer(error="That file is not a picture"))
    for text, image, reason in [
        (reading_to_json(options), None, "picture is missing"),
        (json.dumps({"format": "aria-result", "version": 1, "options": {}}), b"x", "not an aria-reading"),
        (json.dumps({"format": "aria-reading", "version": 1, "options": {"image_safety": "maybe"}}), b"x",
         "image_safety must be one of"),
    ]:
        with pytest.raises(WireError, match=reason):
            reading_from_json(text, image)
    for answer, reason in [(b"x" * 5000, "at most 4096 bytes"), (b"{", "not valid JSON"),
                           (json.dumps({"emotion": {"valence": 5, "arousal": 0}, "encoder": "palette"}), "valence"),
                           (json.dumps({"unsafe": {"score": "high", "threshold": 0.5}}), "score must be a number"),
                           (json.dumps({"emotion": None, "encoder": "palette", "x": 1}), "unknown fields: x")]:
        with pytest.raises(WireError, match=reason):
            load_reading_answer(answer)
