"""Policy and quotas on a real SQLite file, with a clock the tests move."""

import threading
from datetime import datetime, timezone

import pytest

from aria_engine.options import GenerationOptions
from bot.policy import Actor, Policy, format_wait, next_utc_midnight
from bot.settings import Scope, Settings
from bot.store import ResultRecord, Store

# 20:48 UTC: the daily quota resets in 3 h 12 min.
EVENING = datetime(2024, 5, 1, 20, 48, tzinfo=timezone.utc).timestamp()
MIDNIGHT = datetime(2024, 5, 2, tzinfo=timezone.utc).timestamp()
SERVER = "discord:100"
DEFAULT = GenerationOptions()


class Clock:
    def __init__(self, now: float = EVENING):
        self.now = now

    def __call__(self) -> float:
        return self.now


def member(**overrides) -> Actor:
    fields = dict(platform="discord", server_id="100", channel_id="c1", user_id="u1", role_ids=("r-member",))
    fields.update(overrides)
    return Actor(**fields)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(tmp_path, clock):
    with Store(tmp_path / "aria.db", clock=clock) as store:
        yield store


@pytest.fixture
def settings(store):
    return Settings(store)


@pytest.fixture
def policy(settings, store, clock):
    return Policy(settings, store, clock=clock)


def set_server(settings, name, value):
    settings.set(name, value, scope=Scope.SERVER, server=SERVER)


def test_a_member_may_compose_with_the_defaults(policy):
    decision = policy.try_acquire(member(), DEFAULT)
    assert decision.allowed and decision.reason_code == "ok" and decision.use_id is not None


# -- refusals, each with its message ---------------------------------------------------------


def test_a_disabled_channel_says_so_and_names_who_can_help(policy, settings):
    settings.set("enabled", False, scope=Scope.CHANNEL, server=SERVER, channel="c1")
    decision = policy.check(member(), DEFAULT)
    assert (decision.allowed, decision.reason_code, decision.retry_after_s) == (False, "disabled", None)
    assert decision.message.startswith("ARIA is turned off in this channel; ask a moderator")
    assert policy.check(member(channel_id="c2"), DEFAULT).allowed


def test_a_disabled_server_and_a_disabled_deployment_say_so(policy, settings):
    set_server(settings, "enabled", False)
    assert policy.check(member(), DEFAULT).message.startswith("ARIA is turned off on this server")
    settings.set("enabled", False, scope=Scope.GLOBAL)
    assert policy.check(member(server_id="101"), DEFAULT).message == "ARIA is turned off for now; please try again later."


def test_a_disabled_channel_is_disabled_for_admins_too(policy, settings):
    settings.set("enabled", False, scope=Scope.CHANNEL, server=SERVER, channel="c1")
    assert policy.check(member(is_admin=True), DEFAULT).reason_code == "disabled"


def test_roles_restrict_members_but_not_admins(policy, settings):
    set_server(settings, "allowed_roles", ["r-artist"])
    decision = policy.check(member(), DEFAULT)
    assert (decision.allowed, decision.reason_code) == (False, "role")
    assert "limited to certain roles" in decision.message and "ask a moderator" in decision.message
    assert policy.check(member(role_ids=("r-member", "r-artist")), DEFAULT).allowed
    assert policy.check(member(is_admin=True), DEFAULT).allowed
    set_server(settings, "admin_user_ids", ["u1"])
    assert policy.is_admin(member())
    assert policy.check(member(), DEFAULT).allowed


def test_on_slack_the_restriction_is_by_user_groups_and_says_so(policy, settings):
    settings.set("allowed_roles", "<!subteam^S0DESIGN|@designers>", scope=Scope.SERVER, server="slack:T1")
    slack_member = member(platform="slack", server_id="T1", role_ids=())
    decision = policy.check(slack_member, DEFAULT)
    assert decision.reason_code == "role" and "limited to certain user groups here" in decision.message
    assert policy.check(member(platform="slack", server_id="T1", role_ids=("S0DESIGN",)), DEFAULT).allowed


def test_a_mode_that_is_not_allowed_lists_the_allowed_ones(policy, settings):
    set_server(settings, "allowed_modes", ["continuous_concat", "continuous_token"])
    decision = policy.check(member(), DEFAULT.replace(mode="discrete_token"))
    assert decision.reason_code == "mode"
    assert decision.message == (
        "The discrete_token mode isn't allowed here; please pick continuous_concat or continuous_token.")


def test_length_and_duration_above_the_limits_are_refused(policy, settings):
    set_server(settings, "max_length", 256)
    set_server(settings, "max_duration_s", 20)
    long = policy.check(member(), DEFAULT.replace(length=300, duration_s=10))
    assert long.reason_code == "length"
    assert long.message == "A length of 300 tokens is above the limit here of 256; please ask for 256 tokens or fewer."
    slow = policy.check(member(), DEFAULT.replace(length=256, duration_s=45))
    assert slow.reason_code == "duration"
    assert slow.message == "A piece of 45 s is longer than the limit here of 20 s; please ask for 20 s or less."
    assert policy.check(member(), DEFAULT.replace(length=256, duration_s=20)).allowed


def test_cooldown_counts_down_and_expires(policy, clock):
    assert policy.try_acquire(member(), DEFAULT).allowed
    clock.now += 12.5
    decision = policy.try_acquire(member(), DEFAULT)
    assert (decision.allowed, decision.reason_code, decision.retry_after_s) == (False, "cooldown", 7.5)
    assert decision.message == "Just a moment: you can compose again in 8 s (there's a 20 s cooldown here)."
    clock.now += 7.5
    assert policy.try_acquire(member(), DEFAULT).allowed
    assert policy.check(member(user_id="u2"), DEFAULT).allowed  # the cooldown is per member


def test_the_daily_quota_says_when_it_resets_and_resets_at_utc_midnight(policy, settings, clock):
    set_server(settings, "cooldown_s", 0)
    set_server(settings, "daily_quota", 3)
    assert all(policy.try_acquire(member(), DEFAULT).allowed for _ in range(3))
    decision = policy.try_acquire(member(), DEFAULT)
    assert (decision.allowed, decision.reason_code) == (False, "quota")
    assert decision.retry_after_s == pytest.approx(3 * 3600 + 12 * 60)
    assert decision.message == (
        "You've used all 3 of today's compositions here. Your quota resets in 3 h 12 min (midnight UTC).")
    clock.now = MIDNIGHT - 1
    assert policy.check(member(), DEFAULT).message.endswith("resets in 1 s (midnight UTC).")
    clock.now = MIDNIGHT
    assert policy.try_acquire(member(), DEFAULT).allowed
    assert policy.usage(member()).used_today == 1


def test_quota_is_counted_per_server(policy, settings):
    set_server(settings, "cooldown_s", 0)
    set_server(settings, "daily_quota", 1)
    assert policy.try_acquire(member(), DEFAULT).allowed
    assert policy.check(member(), DEFAULT).reason_code == "quota"
    assert policy.check(member(server_id="101"), DEFAULT).allowed


def test_a_zero_quota_means_unlimited(policy, settings):
    set_server(settings, "cooldown_s", 0)
    set_server(settings, "daily_quota", 0)
    assert all(policy.try_acquire(member(), DEFAULT).allowed for _ in range(40))
    assert policy.usage(member()).remaining is None


def test_admins_keep_quota_and_cooldown_unless_the_server_exempts_them(policy, settings):
    admin = member(is_admin=True)
    assert policy.try_acquire(admin, DEFAULT).allowed
    assert policy.check(admin, DEFAULT).reason_code == "cooldown"
    set_server(settings, "admins_bypass_limits", True)
    assert policy.check(admin, DEFAULT).allowed
    assert policy.try_acquire(member(user_id="u2"), DEFAULT).allowed
    assert policy.check(member(user_id="u2"), DEFAULT).reason_code == "cooldown"


# -- what counts -----------------------------------------------------------------------------


def test_refused_and_checked_attempts_do_not_count(policy, settings):
    set_server(settings, "cooldown_s", 0)
    set_server(settings, "daily_quota", 1)
    assert policy.check(member(), DEFAULT).allowed
    assert policy.try_acquire(member(), DEFAULT.replace(length=5000)).reason_code == "length"
    assert policy.usage(member()).used_today == 0
    assert policy.try_acquire(member(), DEFAULT).allowed


def test_release_refunds_a_use_whose_job_never_ran(policy, settings):
    set_server(settings, "daily_quota", 1)
    decision = policy.try_acquire(member(), DEFAULT)
    policy.attach_job(decision.use_id, "job-1")
    assert policy.check(member(), DEFAULT).reason_code == "quota"
    assert policy.release(decision.use_id)
    assert policy.check(member(), DEFAULT).allowed
    assert not policy.release(decision.use_id)


def run_burst(policy, actors, options=DEFAULT):
    start = threading.Barrier(len(actors))
    decisions = [None] * len(actors)

    def click(i):
        start.wait()
        decisions[i] = policy.try_acquire(actors[i], options)

    threads = [threading.Thread(target=click, args=(i,)) for i in range(len(actors))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return decisions


def test_a_burst_of_20_parallel_clicks_never_exceeds_the_quota(policy, settings, store):
    set_server(settings, "cooldown_s", 0)
    set_server(settings, "daily_quota", 5)
    decisions = run_burst(policy, [member()] * 20)
    assert sum(d.allowed for d in decisions) == 5
    assert {d.reason_code for d in decisions if not d.allowed} == {"quota"}
    assert store.uses_since(member(), 0) == 5


def test_a_burst_through_two_connections_never_exceeds_the_quota(tmp_path, clock):
    """Two stores on one file stand for two bot processes sharing the database."""
    path = tmp_path / "shared.db"
    with Store(path, clock=clock) as one, Store(path, clock=clock) as two:
        Settings(one).set("cooldown_s", 0, scope=Scope.SERVER, server=SERVER)
        Settings(one).set("daily_quota", 5, scope=Scope.SERVER, server=SERVER)
        policies = [Policy(Settings(s), s, clock=clock) for s in (one, two)]
        start = threading.Barrier(20)
        allowed = []

        def click(i):
            start.wait()
            if policies[i % 2].try_acquire(member(), DEFAULT).allowed:
                allowed.append(i)

        threads = [threading.Thread(target=click, args=(i,)) for i in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert len(allowed) == 5
        assert one.uses_since(member(), 0) == 5


# -- helpers for adapters --------------------------------------------------------------------


def test_fit_defaults_brings_unchosen_options_within_the_limits(policy, settings):
    set_server(settings, "max_length", 256)
    set_server(settings, "max_duration_s", 20)
    set_server(settings, "allowed_modes", ["discrete_token"])
    fitted = policy.fit_defaults(member(), DEFAULT)
    assert (fitted.length, fitted.duration_s, fitted.mode) == (256, 20.0, "discrete_token")
    assert policy.check(member(), fitted).allowed
    chosen = DEFAULT.replace(length=1000)
    kept = policy.fit_defaults(member(), chosen, explicit={"length"})
    assert kept.length == 1000 and policy.check(member(), kept).reason_code == "length"
    assert policy.fit_defaults(member(server_id="101"), DEFAULT) is DEFAULT


def test_purge_expired_uses_each_servers_retention(policy, settings, store, clock):
    day = 86_400.0

    def result(result_id, server_id, age_days):
        return ResultRecord(result_id=result_id, platform="discord", server_id=server_id, channel_id="c1",
                            user_id="u1", source_kind="mood", options=DEFAULT.as_dict(),
                            created_at=clock.now - age_days * day)

    set_server(settings, "results_retention_days", 7)
    store.save_result(result("short-kept", "100", 6))
    store.save_result(result("short-gone", "100", 8))
    store.save_result(result("default-kept", "101", 8))
    store.save_result(result("default-gone", "101", 31))
    store.add_use(member(), kind="compose", at=clock.now)
    clock.now += 3 * day
    assert policy.purge_expired() == 3  # short-kept is now 9 days old too
    assert store.get_result("default-kept") is not None
    assert store.uses_since(member(), 0) == 0


@pytest.mark.parametrize(
    "seconds, words",
    [(0.2, "1 s"), (12, "12 s"), (59.5, "1 min"), (60, "1 min"), (125, "2 min 5 s"),
     (3599.5, "1 h"), (3600, "1 h"), (3 * 3600 + 12 * 60, "3 h 12 min"), (3 * 3600 + 11 * 60 + 1, "3 h 12 min"),
     (7199, "2 h")],
)
def test_format_wait(seconds, words):
    assert format_wait(seconds) == words


def test_next_utc_midnight():
    assert next_utc_midnight(EVENING) == MIDNIGHT
    assert next_utc_midnight(MIDNIGHT) == MIDNIGHT + 86_400


async def test_a_request_that_cannot_be_built_gives_its_use_back(tmp_path):
    """Admitted, then nothing to compose from (no picture, no emotion): a refusal, not an
    exception, and the day's use is refunded."""
    from aria_engine.engine import LocalEngine
    from bot.service import AriaService, Refusal

    store = Store(tmp_path / "aria.db")
    try:
        service = AriaService(LocalEngine(), store)
        actor = member()
        admission = service.admit(actor, GenerationOptions(composer="procedural"))
        assert service.policy.usage(actor).used_today == 1
        refusal = await service.submit(admission)
        assert isinstance(refusal, Refusal) and refusal.code == "error" and "try again" in refusal.message
        assert service.policy.usage(actor).used_today == 0
    finally:
        store.close()
