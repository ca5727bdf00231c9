"""The bot token goes only to Slack's file hosts: a file URL anywhere else (another port, host
or scheme than the allowed origins) is refused privately before anything is fetched or counted,
and a redirect off the allow-list is not followed. Through the real app and the Slack double."""

from __future__ import annotations

import pytest

pytest.importorskip("slack_bolt")

from bot.policy import Actor  # noqa: E402
from tests.slack_harness import make_world, picture, running_app, wait_for_ephemeral, wait_for_result  # noqa: E402

pytestmark = pytest.mark.timeout(180)


def pointing_at(file: dict, url: str) -> dict:
    return {**file, "url_private": url, "url_private_download": url}


def used_today(running, world) -> int:
    return running.service.policy.usage(Actor("slack", world.team.id, world.general.id, world.alice.id)).used_today


@pytest.mark.parametrize("transport", ["socket", "http"])
async def test_file_urls_off_slack_are_refused_before_the_token_is_sent(double, elsewhere, tmp_path, transport):
    world = make_world(double)
    image = double.add_file(world.alice, "sun.png", picture(), "image/png")
    path = image["url_private_download"].split(str(double.port), 1)[1]
    crafted = [
        elsewhere.url("files-pri/T1-F1/sun.png"),  # the API base's host, another port
        f"http://localhost:{double.port}{path}",  # the API base's port, another host name
        f"https://127.0.0.1:{double.port}{path}",  # the API base's host and port, another scheme
        f"http://files.slack.com:{elsewhere.port}/files-pri/T1-F1/sun.png",  # Slack's host, another port
    ]
    async with running_app(double, tmp_path, transport=transport, settings={"daily_quota": 5}) as running:
        for n, url in enumerate(crafted):
            await double.post(world.general, world.alice, f"<@{double.bot_user_id}> please",
                              files=(pointing_at(image, url),))
            text = (await wait_for_ephemeral(double, world.alice, after=n))["text"]
            assert "points outside Slack's file servers" in text and "Upload the picture to Slack" in text, text
        assert elsewhere.requests == [] and double.downloads == []
        assert double.bot_messages() == []
        assert running.store.list_user_jobs("slack", world.team.id, world.alice.id) == []
        assert used_today(running, world) == 0
        # The real URL still works.
        message, _ = await double.post(world.general, world.alice, f"<@{double.bot_user_id}> please",
                                       files=(image,))
        await wait_for_result(double, world.general, message["ts"])
    assert double.downloads == [{"file_id": image["id"], "authorized": True}]


async def test_the_form_refuses_a_file_off_slack_in_the_form(double, elsewhere, tmp_path):
    world = make_world(double)
    image = double.add_file(world.alice, "sun.png", picture(), "image/png")
    async with running_app(double, tmp_path):
        await double.slash(world.general, world.alice, "")
        [view] = await double.wait_for(lambda: double.views_for(world.alice), 10, "the modal")
        answer = await double.submit(view["id"], world.alice, {"picture": [pointing_at(image, elsewhere.url())]})
        assert answer.ack_payload["response_action"] == "errors"
        assert "points outside Slack's file servers" in answer.ack_payload["errors"]["picture"]
    assert elsewhere.requests == [] and double.downloads == []


@pytest.mark.parametrize("transport", ["socket", "http"])
async def test_a_redirect_off_slack_is_not_followed(double, elsewhere, tmp_path, transport):
    world = make_world(double)
    image = double.add_file(world.alice, "sun.png", picture(), "image/png")
    double.file_redirects[image["id"]] = elsewhere.url("stolen.png")
    async with running_app(double, tmp_path, transport=transport, settings={"daily_quota": 5}) as running:
        await double.post(world.general, world.alice, f"<@{double.bot_user_id}> please", files=(image,))
        text = (await wait_for_ephemeral(double, world.alice))["text"]
        assert "sent me on to another site (http://127.0.0.1:" in text and "sent nothing" in text, text
        assert elsewhere.requests == []
        assert double.downloads == [{"file_id": image["id"], "authorized": True}]  # the first hop, on Slack
        assert running.store.list_user_jobs("slack", world.team.id, world.alice.id) == []
        assert used_today(running, world) == 0  # given back
