"""Registered settings, their scopes and validation, stored in a real SQLite file."""

import pytest

from aria_engine.options import MODES
from bot.settings import Scope, Settings, SettingsRegistry, aria_registry, boolean, server_key
from bot.store import Store

SERVER = "discord:100"
OTHER = "discord:101"

DEFAULTS = {
    "enabled": True,
    "allowed_roles": [],
    "cooldown_s": 20.0,
    "daily_quota": 25,
    "max_length": 1024,
    "max_duration_s": 60.0,
    "allowed_modes": list(MODES),
    "private_by_default": False,
    "jam_starters": [],
    "jam_open_per_channel": 1,
    "jam_open_per_server": 5,
    "jam_contributions_per_member": 2,
    "jam_max_contributions": 12,
    "jam_longest_minutes": 1440,
    "jam_longest_piece_s": 600,
    "audit_channel": None,
    "admin_user_ids": [],
    "admins_bypass_limits": False,
    "results_retention_days": 30,
    "moderator_roles": [],
    "blocked_user_ids": [],
    "role_quotas": {},
    "server_max_jobs": 0,
    "server_daily_budget": 0,
    "image_safety": "refuse",
    "image_safety_threshold": 0.5,
    "age_restricted_channels": [],
}


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "aria.db") as store:
        yield store


@pytest.fixture
def settings(store):
    return Settings(store)


def test_a_fresh_database_has_the_registered_defaults(settings):
    assert settings.effective(SERVER, "c1") == DEFAULTS
    assert all(view.source is None and view.source_label == "default" for view in settings.describe(SERVER))


def test_every_setting_has_a_description_for_help(settings):
    views = settings.describe(SERVER, "c1")
    assert [v.name for v in views] == list(DEFAULTS)
    assert all(v.description.endswith(".") and len(v.description) < 100 for v in views)


def test_channel_overrides_server_overrides_global_overrides_default(settings):
    settings.set("cooldown_s", 10, scope=Scope.GLOBAL)
    settings.set("cooldown_s", 30, scope=Scope.SERVER, server=SERVER)
    settings.set("cooldown_s", 5, scope=Scope.CHANNEL, server=SERVER, channel="c1")
    assert settings.lookup("cooldown_s", server=SERVER, channel="c1") == (5.0, Scope.CHANNEL)
    assert settings.lookup("cooldown_s", server=SERVER, channel="c2") == (30.0, Scope.SERVER)
    assert settings.lookup("cooldown_s", server=SERVER) == (30.0, Scope.SERVER)
    assert settings.lookup("cooldown_s", server=OTHER, channel="c1") == (10.0, Scope.GLOBAL)
    assert settings.lookup("daily_quota", server=SERVER, channel="c1") == (25, None)


def test_reset_falls_back_to_the_next_scope_out(settings):
    settings.set("max_length", 256, scope=Scope.SERVER, server=SERVER)
    settings.set("max_length", 128, scope=Scope.CHANNEL, server=SERVER, channel="c1")
    assert settings.reset("max_length", scope=Scope.CHANNEL, server=SERVER, channel="c1")
    assert settings.get("max_length", server=SERVER, channel="c1") == 256
    assert not settings.reset("max_length", scope=Scope.CHANNEL, server=SERVER, channel="c1")
    assert settings.reset("max_length", scope="server", server=SERVER)
    assert settings.get("max_length", server=SERVER, channel="c1") == 1024


def test_a_user_preference_overrides_the_channel(settings):
    settings.set("private_by_default", True, scope=Scope.CHANNEL, server=SERVER, channel="c1")
    settings.set("private_by_default", "off", scope=Scope.USER, server=SERVER, user="u1")
    assert settings.get("private_by_default", server=SERVER, channel="c1", user="u1") is False
    assert settings.get("private_by_default", server=SERVER, channel="c1", user="u2") is True
    assert settings.get("private_by_default", server=OTHER, channel="c1", user="u1") is False


def test_platforms_never_share_settings(settings):
    settings.set("enabled", False, scope=Scope.SERVER, server=server_key("discord", "T01"))
    assert settings.get("enabled", server=server_key("slack", "T01")) is True
    with pytest.raises(ValueError, match="namespaced by platform"):
        settings.get("enabled", server="T01")
    with pytest.raises(ValueError, match="cannot make a server key"):
        server_key("", "1")


def test_values_persist_across_reopening(tmp_path):
    path = tmp_path / "aria.db"
    with Store(path) as store:
        Settings(store).set("allowed_modes", ["continuous_token"], scope=Scope.CHANNEL, server=SERVER, channel="c1")
    with Store(path) as store:
        assert Settings(store).lookup("allowed_modes", server=SERVER, channel="c1") == (
            ["continuous_token"], Scope.CHANNEL)


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("cooldown_s", -1, "cooldown_s must be a number of seconds between 0 and 3600"),
        ("cooldown_s", "soon", "cooldown_s must be a number of seconds between 0 and 3600"),
        ("cooldown_s", float("nan"), "cooldown_s must be a number of seconds between 0 and 3600"),
        ("cooldown_s", True, "cooldown_s must be a number of seconds between 0 and 3600"),
        ("daily_quota", 2.5, "daily_quota must be a whole number of compositions between 0 and 10000 (0 means unlimited)"),
        ("max_length", 9000, "max_length must be a whole number of tokens between 1 and 8192"),
        ("max_duration_s", 0, "max_duration_s must be a number of seconds between 1 and 600"),
        ("enabled", "maybe", "enabled must be on or off (true or false)"),
        ("allowed_modes", "jazz", "allowed_modes takes one or more of continuous_concat, continuous_token, discrete_token; 'jazz' is not one of them"),
        ("allowed_modes", [], "allowed_modes takes one or more of"),
        ("allowed_roles", "role with spaces?", "allowed_roles must be a list of ids separated by commas (or none)"),
        ("audit_channel", "#general!", "audit_channel must be one id, or none to turn it off"),
        ("results_retention_days", 0, "results_retention_days must be a whole number of days between 1 and 3650"),
    ],
)
def test_bad_values_get_a_message_fit_for_an_admin(settings, name, value, message):
    with pytest.raises(ValueError) as error:
        settings.set(name, value, scope=Scope.SERVER, server=SERVER)
    assert str(error.value).startswith(message)
    assert settings.lookup(name, server=SERVER).source is None  # nothing was stored


@pytest.mark.parametrize(
    "name, text, stored",
    [
        ("enabled", "off", False),
        ("enabled", "Yes", True),
        ("cooldown_s", " 30 ", 30.0),
        ("daily_quota", "0", 0),
        ("daily_quota", 12.0, 12),
        ("allowed_modes", "continuous_token, discrete_token, continuous_token", ["continuous_token", "discrete_token"]),
        ("allowed_roles", "<@&123>, 456 <@&123>", ["123", "456"]),
        ("allowed_roles", 789, ["789"]),
        ("allowed_roles", "none", []),
        ("admin_user_ids", "<@U01ABC|alice> U02", ["U01ABC", "U02"]),
        ("audit_channel", "<#C01|general>", "C01"),
        ("audit_channel", "none", None),
        ("audit_channel", 123, "123"),
    ],
)
def test_text_from_admin_commands_is_parsed(settings, name, text, stored):
    assert settings.set(name, text, scope=Scope.SERVER, server=SERVER) == stored
    assert settings.get(name, server=SERVER) == stored


def test_settings_refuse_scopes_they_were_not_registered_for(settings):
    with pytest.raises(ValueError, match="cooldown_s can be set everywhere, for a server, per channel, not per user"):
        settings.set("cooldown_s", 5, scope=Scope.USER, server=SERVER, user="u1")
    with pytest.raises(ValueError, match="audit_channel can be set for a server, not per channel"):
        settings.set("audit_channel", "C01", scope=Scope.CHANNEL, server=SERVER, channel="c1")
    with pytest.raises(ValueError, match="needs a channel"):
        settings.set("cooldown_s", 5, scope=Scope.CHANNEL, server=SERVER)


def test_an_unknown_setting_names_the_known_ones(settings):
    with pytest.raises(ValueError, match="no setting called 'cooldown'; settings are: enabled, allowed_roles"):
        settings.get("cooldown", server=SERVER)


def test_a_stored_value_that_no_longer_validates_is_skipped(settings, store):
    settings.set("max_length", 512, scope=Scope.SERVER, server=SERVER)
    store.put_setting("channel", "max_length", 99_999, server_id=SERVER, channel_id="c1")
    assert settings.lookup("max_length", server=SERVER, channel="c1") == (512, Scope.SERVER)


def test_mutable_defaults_are_not_shared(settings):
    settings.get("allowed_modes", server=SERVER).clear()
    assert settings.get("allowed_modes", server=SERVER) == list(MODES)


def test_a_registry_catches_its_own_mistakes():
    registry = SettingsRegistry()
    registry.register("on", default=True, parse=boolean(), scopes={Scope.SERVER}, description="On.")
    with pytest.raises(ValueError, match="already registered"):
        registry.register("on", default=True, parse=boolean(), scopes={Scope.SERVER}, description="On.")
    with pytest.raises(ValueError, match="must be on or off"):
        registry.register("bad", default="sometimes", parse=boolean(), scopes={Scope.SERVER}, description="Bad.")
    with pytest.raises(ValueError, match="at least one scope"):
        registry.register("nowhere", default=True, parse=boolean(), scopes=(), description="Nowhere.")
    assert "on" in registry and len(registry) == 1 and registry.names() == ["on"]
    assert len(aria_registry()) == len(DEFAULTS)
