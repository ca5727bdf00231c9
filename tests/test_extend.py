"""Extend (bot/extend.py): any finished piece continued with one more picture or mood, on the
real store, policy and engine, with a fake clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from aria_engine.emotion import Emotion
from aria_engine.engine import LocalEngine
from aria_engine.jam import markers_of
from aria_engine.options import GenerationOptions
from aria_engine.pipeline import Pipeline
from bot.jam_store import JamBook
from bot.jams import JamRefused, JamService, pipeline_reader
from bot.outcomes import Finished
from bot.policy import Actor, Policy
from bot.service import AriaService
from bot.settings import Scope, Settings
from bot.store import Store
from tests.factories.clock import Clock

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
OPTIONS = GenerationOptions(composer="procedural", encoder="palette", duration_s=8.0, seed=3)


def member(user: str) -> Actor:
    return Actor("test", "s1", "c1", user)


@pytest.fixture
async def world(tmp_path):
    clock = Clock()
    pipeline = Pipeline(models_dir=tmp_path / "none")
    store = Store(tmp_path / "aria.db", clock=clock)
    settings = Settings(store)
    settings.set("image_safety", "off", scope=Scope.SERVER, server="test:s1")
    service = AriaService(LocalEngine(pipeline, concurrency=1, progress_interval_s=0.05), store,
                          settings=settings, policy=Policy(settings, store, clock))
    jams = JamService(service, JamBook(store), pipeline_reader(pipeline, "palette"), clock)
    async with service.engine:
        yield clock, store, service, jams
    store.close()


async def finished(service, ticket):
    """Follow a job as the bots do (the store keeps its MIDI on the way); the Finished update."""
    last = None
    async for update in service.follow(ticket):
        last = update
    assert isinstance(last, Finished), last
    return last


def notes(midi: bytes) -> set:
    import io

    import pretty_midi

    parsed = pretty_midi.PrettyMIDI(io.BytesIO(midi))
    return {(i.program, i.is_drum, n.pitch, round(n.start, 3), round(n.end, 3), n.velocity)
            for i in parsed.instruments for n in i.notes}


async def a_piece(service, clock, user="ana", emotion=Emotion(-0.6, -0.5)):
    admission = service.admit(member(user), OPTIONS, explicit={"seed", "duration_s", "composer", "encoder"})
    ticket = await service.submit(admission, emotion=emotion)
    await finished(service, ticket)
    clock.now += 3600  # past every cooldown
    return ticket.result_id


async def test_a_single_piece_extended_twice_grows_one_jam_record(world):
    clock, store, service, jams = world
    first = await a_piece(service, clock)
    assert store.midi_of(first) is not None and markers_of(store.midi_of(first)) == []

    extension = await jams.extend_result(member("bo"), "@bo", first, emotion=Emotion(0.7, 0.6), caption="sun")
    assert extension.readout == "2. @bo  valence +0.70 (pleasant)  arousal +0.60 (energetic)  -> joyful"
    end = await finished(service, extension.ticket)
    midi = store.midi_of(extension.ticket.result_id)
    assert [text for _, text in markers_of(midi)] == [f"1. <@ana>: {Emotion(-0.6, -0.5).label}", "2. @bo: joyful"]
    assert notes(store.midi_of(first)) <= notes(midi)  # the earlier piece, note for note, then the new part
    assert len(notes(midi)) > len(notes(store.midi_of(first)))
    holder = jams.book.get(extension.jam.jam_id)
    assert holder.status == "done" and holder.result_id == extension.ticket.result_id
    assert [e.user_id for e in holder.entries] == ["ana", "bo"] and holder.entries[1].caption == "sun"
    assert "credits" in "\n".join(end.reply.notes)

    clock.now += 3600
    again = await jams.extend_result(member("cy"), "@cy", extension.ticket.result_id,
                                     image=(EXAMPLES / "storm.png").read_bytes())
    await finished(service, again.ticket)
    assert again.jam.jam_id == holder.jam_id  # its latest piece extended: the same jam grows
    assert len(markers_of(store.midi_of(again.ticket.result_id))) == 3
    assert store.uses_since(member("bo"), 0) == 1 and store.uses_since(member("cy"), 0) == 1


async def test_an_older_piece_extended_branches_into_a_new_record(world):
    clock, store, service, jams = world
    first = await a_piece(service, clock)
    one = await jams.extend_result(member("bo"), "@bo", first, emotion=Emotion(0.7, 0.6))
    await finished(service, one.ticket)
    clock.now += 3600
    other = await jams.extend_result(member("cy"), "@cy", first, emotion=Emotion(0.2, -0.8))
    await finished(service, other.ticket)
    assert other.jam.jam_id != one.jam.jam_id
    assert [t for _, t in markers_of(store.midi_of(other.ticket.result_id))][1] == "2. @cy: " + Emotion(0.2, -0.8).label


async def test_refusals_are_specific_and_queue_nothing(world):
    clock, store, service, jams = world
    first = await a_piece(service, clock)
    with pytest.raises(JamRefused, match="picture or a mood"):
        await jams.extend_result(member("bo"), "@bo", first)
    with pytest.raises(JamRefused, match="gone"):
        await jams.extend_result(member("bo"), "@bo", "no-such-piece", emotion=Emotion(0, 0))
    with pytest.raises(JamRefused, match="could not be read"):
        await jams.extend_result(member("bo"), "@bo", first, image=b"not a picture")
    assert store.uses_since(member("bo"), 0) == 0

    assert service.delete(member("ana"), first).allowed
    assert store.midi_of(first) is None  # the deleted piece's MIDI went with it
    with pytest.raises(JamRefused, match="gone"):
        await jams.extend_result(member("bo"), "@bo", first, emotion=Emotion(0, 0))


async def test_forgetting_a_member_drops_their_pieces_midi(world):
    clock, store, service, jams = world
    first = await a_piece(service, clock)
    store.forget_rows("test", "s1", user_id="ana")
    assert store.midi_of(first) is None
    assert store._read("SELECT COUNT(*) AS n FROM result_midi")[0]["n"] == 0


async def test_the_longest_piece_setting_bounds_jams_and_extensions(world):
    from bot.extend import piece_seconds
    from bot.jams import fit_section

    assert fit_section(15, 12, 600) == 15 and fit_section(120, 12, 600) == 50 and fit_section(30, 12, 72) == 6
    clock, store, service, jams = world
    first = await a_piece(service, clock)  # 8 s
    service.settings.set("jam_longest_piece_s", 72, scope=Scope.SERVER, server="test:s1")
    extension = await jams.extend_result(member("bo"), "@bo", first, emotion=Emotion(0.7, 0.6))
    await finished(service, extension.ticket)
    assert piece_seconds(store.midi_of(extension.ticket.result_id)) <= 72 + 0.5
    service.settings.set("jam_longest_piece_s", 600, scope=Scope.SERVER, server="test:s1")
    service.settings.set("max_duration_s", 120, scope=Scope.SERVER, server="test:s1")
    admission = service.admit(member("ana"), OPTIONS.replace(duration_s=70.0),
                              explicit={"seed", "duration_s", "composer", "encoder"})
    long_one = await service.submit(admission, emotion=Emotion(0.2, 0.2))
    await finished(service, long_one)
    service.settings.set("jam_longest_piece_s", 72, scope=Scope.SERVER, server="test:s1")
    clock.now += 3600
    with pytest.raises(JamRefused, match="already as long as pieces get here"):
        await jams.extend_result(member("cy"), "@cy", long_one.result_id, emotion=Emotion(0.1, 0.1))
