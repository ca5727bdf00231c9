"""The components under ARIA's messages: Variation, Another mode, Parameters, Delete, Cancel;
they go through the policy like new requests and keep working after a restart."""

from __future__ import annotations

import pytest

pytest.importorskip("discord")

from bot.policy import Actor  # noqa: E402
from tests.discord_harness import ephemeral_answer, make_world, neural_engine, result_of, running_bot  # noqa: E402

pytestmark = pytest.mark.timeout(240)


def custom_id(message, action: str) -> str:
    return next(i for i in message.custom_ids() if i.split(":")[1] == action)


def started(running, world, user) -> bool:
    """Whether one of this user's pieces is being composed (so later ones wait their turn)."""
    records = running.store.list_user_jobs("discord", str(world.guild.id), str(user.id))
    return any(r.status == "running" for r in records)


def result_id(message) -> str:
    return custom_id(message, "v").split(":")[2]


async def a_result(double, world, user=None, **options):
    options = {"valence": 0.6, "arousal": 0.3, **options}
    interaction = await double.send_slash_command(world.guild, world.general, user or world.alice, "aria-mood", options)
    return await result_of(double, interaction)


async def test_variation_same_emotion_new_seed(double, tmp_path):
    world = make_world(double)
    async with running_bot(double, tmp_path) as running:
        first = await a_result(double, world, seed=11)
        click = await double.click_button(first, custom_id(first, "v"), world.bob)
        second = await result_of(double, click)
        assert second is not first and "valence +0.60" in second.text() and "arousal +0.30" in second.text()
        old, new = running.store.get_result(result_id(first)), running.store.get_result(result_id(second))
        assert (new.valence, new.arousal) == (old.valence, old.arousal)
        assert new.seed != old.seed and new.user_id == str(world.bob.id)


NEURAL = {"max_length": 256}  # tiny random transformers: a few hundred tokens take about a second


async def test_another_mode(double, tmp_path):
    world = make_world(double)
    async with running_bot(double, tmp_path, engine=neural_engine(tmp_path / "models"), settings=NEURAL) as running:
        first = await a_result(double, world)
        assert "transformer (continuous_concat)" in first.text()
        select = custom_id(first, "m")
        pick = await double.choose(first, select, ["discrete_token"], world.alice)
        second = await result_of(double, pick)
        assert running.store.get_result(result_id(second)).options["mode"] == "discrete_token"
        assert "transformer (discrete_token)" in second.text()
        # the new result's select offers the other modes
        options = next(c for row in second.components for c in row["components"] if c["custom_id"].startswith("aria:m:"))
        assert {o["value"] for o in options["options"]} == {"continuous_concat", "continuous_token"}


async def test_no_another_mode_under_a_procedural_piece(double, tmp_path):
    """The built-in composer has no modes: its pieces offer no mode select, and the select
    on an older message (from before this was so) explains instead of making the same piece."""
    world = make_world(double)
    async with running_bot(double, tmp_path, settings={"daily_quota": 5}) as running:
        first = await a_result(double, world)
        assert "procedural composer" in first.text()
        assert [i.split(":")[1] for i in first.custom_ids()] == ["v", "e", "p", "d"]
        # A message posted by an older version still carries the select.
        first.components.append({"type": 1, "components": [{
            "type": 3, "custom_id": f"aria:m:{result_id(first)}", "placeholder": "Another mode...",
            "options": [{"label": m, "value": m} for m in ("continuous_token", "discrete_token")]}]})
        stale = await double.choose(first, f"aria:m:{result_id(first)}", ["discrete_token"], world.alice)
        answer = await ephemeral_answer(double, stale)
        assert "procedural composer, which has no conditioning modes" in answer.content
        assert "`aria models pull`" in answer.content and "Variation" in answer.content
        assert stale.callbacks[0]["type"] == 4  # answered at once, never deferred
        assert len(running.store.list_user_jobs("discord", str(world.guild.id), str(world.alice.id))) == 1
        usage = running.service.policy.usage(Actor("discord", str(world.guild.id), str(world.general.id),
                                                   str(world.alice.id)))
        assert usage.used_today == 1  # the click cost nothing


async def test_parameters_are_private(double, tmp_path):
    world = make_world(double)
    async with running_bot(double, tmp_path):
        first = await a_result(double, world, seed=1234)
        click = await double.click_button(first, custom_id(first, "p"), world.bob)
        answer = await ephemeral_answer(double, click)
        text = answer.text()
        assert "seed: 1234" in text and "valence: +0.60" in text and "mode: continuous_concat" in text


async def test_delete_by_requester_and_moderator_only(double, tmp_path):
    world = make_world(double)
    async with running_bot(double, tmp_path) as running:
        first = await a_result(double, world, user=world.alice)
        refused = await double.click_button(first, custom_id(first, "d"), world.bob)
        answer = await ephemeral_answer(double, refused)
        assert "Only the person who asked" in answer.content and not first.deleted

        click = await double.click_button(first, custom_id(first, "d"), world.alice)
        await double.wait_for(lambda: first.deleted, 10, "the requester's delete")
        assert running.store.get_result(result_id(first)).deleted

        second = await a_result(double, world, user=world.alice)
        await double.click_button(second, custom_id(second, "d"), world.moderator)
        await double.wait_for(lambda: second.deleted, 10, "the moderator's delete")
        audit = running.store.recent_audit("discord", str(world.guild.id))
        assert audit[0].action == "delete_result" and audit[0].user_id == str(world.moderator.id)


async def test_cancel_a_queued_piece(double, tmp_path):
    world = make_world(double)
    # One worker thread and a long first piece (several seconds of work even on a quiet machine,
    # so its status message gets more than one progress edit) keep the second one waiting.
    async with running_bot(double, tmp_path, settings={"max_duration_s": 90}) as running:
        long = await double.send_slash_command(world.guild, world.general, world.bob, "aria-mood",
                                               {"valence": 0.1, "arousal": 0.9, "duration": 90})
        await double.wait_for(lambda: started(running, world, world.bob), 20, "the long piece to start")
        waiting = await double.send_slash_command(world.guild, world.general, world.alice, "aria-mood",
                                                  {"valence": -0.4, "arousal": -0.4, "duration": 2})
        status = await double.wait_for(
            lambda: waiting.original if waiting.original and waiting.original.custom_ids() else None,
            20, "a status message with a Cancel button")
        assert "line" in status.content.lower() or "next" in status.content.lower(), status.content
        cancel = custom_id(status, "c")

        queue = await double.send_slash_command(world.guild, world.general, world.alice, "aria-queue")
        listing = (await ephemeral_answer(double, queue)).text()
        assert "mood -0.40 / -0.40: position 1 in line" in listing or "next" in listing, listing
        assert "No daily limit here" in listing

        intruder = await double.click_button(status, cancel, world.bob)
        assert "Only the person who asked" in (await ephemeral_answer(double, intruder)).content

        click = await double.click_button(status, cancel, world.alice)
        assert (await ephemeral_answer(double, click)).content == "Cancelled."
        await double.wait_for(lambda: waiting.original.content == "Cancelled." and not waiting.original.custom_ids(),
                              20, "the status message to say Cancelled")
        rid = cancel.split(":")[2]
        assert running.store.get_result(rid).status == "cancelled"
        # the long piece was left alone, and its status edits came at most every 2 s
        done = await result_of(double, long, timeout=120)
        status_edits = done.edits[:-1]
        assert len(status_edits) >= 2
        assert all(b - a >= 1.95 for a, b in zip(status_edits, status_edits[1:])), status_edits


async def test_buttons_survive_a_restart(double, tmp_path):
    world = make_world(double)
    async with running_bot(double, tmp_path):
        first = await a_result(double, world)
    async with running_bot(double, tmp_path) as running:  # a new process, the same data dir
        assert running.bot.synced is False
        click = await double.click_button(first, custom_id(first, "v"), world.alice)
        second = await result_of(double, click)
        assert "valence +0.60" in second.text()
        params = await double.click_button(first, custom_id(first, "p"), world.alice)
        assert "seed" in (await ephemeral_answer(double, params)).text()


async def test_jobs_lost_in_a_crash_end_and_their_requesters_hear_of_it(double, tmp_path):
    from bot.store import ResultRecord, Store

    world = make_world(double)
    # What a process that died mid-job leaves behind: a record still marked queued.
    with Store(tmp_path / "aria.db") as store:
        store.save_result(ResultRecord("deadbeef", "discord", str(world.guild.id), str(world.general.id),
                                       str(world.alice.id), "mood", options={}, valence=0.1, arousal=0.1))
    async with running_bot(double, tmp_path) as running:
        notice = await double.wait_for_message(lambda m: "restarted" in m.content)
        assert notice.channel_id == world.general.id and notice.content.startswith(f"<@{world.alice.id}>")
        record = running.store.get_result("deadbeef")
        assert record.status == "failed" and record.error == "lost in a restart"


async def test_clicks_go_through_the_same_policy(double, tmp_path):
    world = make_world(double)
    settings = {**NEURAL, "allowed_modes": ["continuous_concat", "continuous_token"]}
    async with running_bot(double, tmp_path, engine=neural_engine(tmp_path / "models"), settings=settings) as running:
        first = await a_result(double, world)
        wrong_mode = await double.choose(first, custom_id(first, "m"), ["discrete_token"], world.bob)
        assert "discrete_token mode isn't allowed here" in (await ephemeral_answer(double, wrong_mode)).content
        running.service.settings.set("cooldown_s", 600, scope="global")
        again = await double.click_button(first, custom_id(first, "v"), world.alice)  # alice just composed
        assert "compose again in" in (await ephemeral_answer(double, again)).content
        assert again.callbacks[0]["type"] == 4  # refused at once, never deferred
