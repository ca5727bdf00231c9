"""adapters/slack/manifest.yml names exactly what the code handles and calls: the command, the
shortcut, the events, and the scope of every Web API method the adapter uses (no more, no less)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

pytest.importorskip("slack_bolt")

from adapters.slack import app, blocks  # noqa: E402

SLACK_DIR = Path(app.__file__).parent
MANIFEST = yaml.safe_load((SLACK_DIR / "manifest.yml").read_text())

# slack_sdk method -> the bot scope Slack requires for it (None: no scope, or the app-level token).
METHOD_SCOPES = {
    "auth_test": None,
    "apps_connections_open": None,  # the app-level token's connections:write
    "chat_postMessage": "chat:write",
    "chat_update": "chat:write",
    "chat_delete": "chat:write",
    "chat_postEphemeral": "chat:write",
    "conversations_history": {"channels:history", "groups:history"},
    "conversations_replies": {"channels:history", "groups:history"},
    "conversations_open": "im:write",
    "files_upload_v2": "files:write",
    "files_delete": "files:write",  # forget-me and purge delete the files ARIA uploaded
    "users_info": "users:read",
    "usergroups_list": "usergroups:read",
    "usergroups_users_list": "usergroups:read",
    "views_open": None,  # needs only a trigger_id
}
EVENT_SCOPES = {"app_mention": "app_mentions:read", "subteam_members_changed": "usergroups:read",
                "message.channels": "channels:history", "message.groups": "groups:history"}
# Scopes for what arrives rather than what is called.
INBOUND_SCOPES = {"commands", "files:read"}  # /aria and the shortcut; url_private downloads


def methods_called() -> set[str]:
    found = set()
    for source in SLACK_DIR.rglob("*.py"):
        found |= set(re.findall(r"client\.([a-z]+_[A-Za-z0-9_]+)\(", source.read_text()))
    return found


def needed_scopes() -> set[str]:
    scopes = set(INBOUND_SCOPES)
    for method in methods_called():
        assert method in METHOD_SCOPES, f"the adapter calls {method}: add its scope to METHOD_SCOPES and the manifest"
        scope = METHOD_SCOPES[method]
        scopes |= {scope} if isinstance(scope, str) else (scope or set())
    return scopes | {EVENT_SCOPES[event] for event in app.EVENTS}


def test_scopes_are_exactly_what_the_code_needs():
    assert set(MANIFEST["oauth_config"]["scopes"]["bot"]) == needed_scopes()


def test_command_shortcut_and_events_match_the_listeners():
    [command] = MANIFEST["features"]["slash_commands"]
    assert command["command"] == app.COMMAND
    assert command["should_escape"] is True  # /aria admin reads <#C123|name> and <@U123>
    [shortcut] = MANIFEST["features"]["shortcuts"]
    assert shortcut["type"] == "message" and shortcut["callback_id"] == blocks.SHORTCUT
    assert shortcut["name"] == "Compose music"
    assert tuple(MANIFEST["settings"]["event_subscriptions"]["bot_events"]) == app.EVENTS
    assert MANIFEST["settings"]["interactivity"]["is_enabled"] is True  # buttons, modal, shortcut


def test_socket_mode_by_default_and_a_bot_user():
    assert MANIFEST["settings"]["socket_mode_enabled"] is True
    assert MANIFEST["features"]["bot_user"]["display_name"] == "ARIA"
    assert MANIFEST["features"]["app_home"]["messages_tab_enabled"] is True  # where private results arrive
    assert len(MANIFEST["display_information"]["description"]) <= 140  # Slack's limit


def test_the_listeners_are_registered():
    """The bolt app has a listener for the command, the shortcut, the modal and each button."""
    from adapters.slack.config import SlackConfig

    adapter = app.SlackAdapter(SlackConfig(bot_token="xoxb-x", app_token="xapp-x"), service=None)
    names = {listener.ack_function.__name__ for listener in adapter.app._async_listeners}
    assert {"on_mention", "on_shortcut", "on_command", "on_modal", "on_variation", "on_another_mode",
            "on_cancel"} <= names
