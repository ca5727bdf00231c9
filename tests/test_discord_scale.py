"""Many servers at once: a burst of 50 interactions from 5 servers, and sharding."""

from __future__ import annotations

import asyncio
import time

import pytest

pytest.importorskip("discord")

from aria_engine.engine import LocalEngine  # noqa: E402
from aria_engine.pipeline import Pipeline  # noqa: E402
from tests.discord_harness import has_result, make_world, result_of, running_bot  # noqa: E402
from tests.doubles.discord_api import DiscordDouble  # noqa: E402

pytestmark = pytest.mark.timeout(400)


@pytest.mark.slow
async def test_a_burst_of_50_from_5_servers_is_all_answered(tmp_path):
    async with DiscordDouble() as double:
        worlds = [make_world(double, f"server{n}") for n in range(5)]
        users = {w.guild.id: [double.add_user(f"{w.guild.name}-member{i}") for i in range(10)] for w in worlds}
        engine = LocalEngine(Pipeline(), concurrency=2, max_batch=8, progress_interval_s=0.25)
        async with running_bot(double, tmp_path, engine=engine, settings={"max_duration_s": 1}):
            started = time.monotonic()
            sends = [double.send_slash_command(w.guild, w.general, user, "aria-mood",
                                               {"valence": round(-0.98 + 0.04 * i, 2), "arousal": 0.3})
                     for i, (w, user) in enumerate((w, u) for w in worlds for u in users[w.guild.id])]
            interactions = await asyncio.gather(*sends)
            # every one deferred within Discord's 3 s (the double refuses later answers)
            await double.wait_for(lambda: all(i.answered for i in interactions), 10, "50 deferrals")
            assert all(i.callbacks[0]["type"] == 5 for i in interactions), [i.callbacks[0] for i in interactions if i.callbacks[0]["type"] != 5][:2]
            assert max(i.sent_at for i in interactions) - min(i.sent_at for i in interactions) < 3
            results = await asyncio.gather(*(result_of(double, i, timeout=300) for i in interactions))
            elapsed = time.monotonic() - started
            assert len({m.id for m in results}) == 50 and all(has_result(m) for m in results)
            for interaction, message in zip(interactions, results):
                valence = interaction.payload["data"]["options"][0]["value"]
                assert f"valence {valence:+.2f}" in message.text()
            assert not [e for e in double.errors if "callback" in e]
            print(f"50 interactions from 5 servers answered in {elapsed:.1f} s (2 shared cores)")


async def test_auto_sharded_client_answers_every_shard(tmp_path):
    async with DiscordDouble(recommended_shards=2) as double:
        worlds = [make_world(double, f"shard-server{n}") for n in range(4)]
        shards = {(w.guild.id >> 22) % 2 for w in worlds}
        assert shards == {0, 1}
        async with running_bot(double, tmp_path, auto_shard=True) as running:
            await double.wait_until_connected(shards=2)
            assert sorted(tuple(i["shard"]) for i in double.identifies) == [(0, 2), (1, 2)]
            assert running.bot.shard_count == 2
            interactions = [await double.send_slash_command(w.guild, w.general, w.alice, "aria-mood",
                                                            {"valence": 0.3, "arousal": -0.3}) for w in worlds]
            for interaction in interactions:
                await result_of(double, interaction)
