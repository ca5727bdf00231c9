"""The moderator's toolbox without a platform (bot.moderation, bot.policy, a real store): who
moderates, block and unblock with the reason audited, per-role daily quotas, and the server's
caps on pieces at once and per day, with the refusals' exact words."""

from __future__ import annotations

import re

import pytest

from aria_engine.options import GenerationOptions
from bot.moderation import NOT_A_MODERATOR
from bot.policy import Actor
from bot.service import AriaService
from bot.settings import Scope
from bot.store import ResultRecord, Store

START = 1_800_000_000.0 + 3600  # 09:00 UTC


@pytest.fixture
def service(tmp_path):
    store = Store(tmp_path / "aria.db", clock=lambda: START)
    service = AriaService(None, store)
    service.policy.clock = lambda: START
    for name, value in {"cooldown_s": 0, "daily_quota": 2}.items():
        service.settings.set(name, value, scope=Scope.GLOBAL)
    yield service
    store.close()


def member(user, roles=(), **flags) -> Actor:
    return Actor("discord", "G1", "C1", user, role_ids=tuple(roles), **flags)


def use(service, actor):
    decision = service.policy.try_acquire(actor, GenerationOptions())
    return decision.allowed, decision.message


def test_moderators_are_admins_the_platform_sign_or_a_configured_role(service):
    service.settings.set("moderator_roles", ["RMOD"], scope=Scope.SERVER, server="discord:G1")
    assert service.moderation.is_moderator(member("U1", ("RMOD",)))
    assert service.moderation.is_moderator(member("U2", is_moderator=True))
    assert service.moderation.is_moderator(member("U3", is_admin=True))
    assert not service.moderation.is_moderator(member("U4", ("ROTHER",)))
    with pytest.raises(PermissionError, match=re.escape(NOT_A_MODERATOR)):
        service.moderation.block(member("U4"), "U5", "no")


def test_block_and_unblock_with_the_reason_in_the_audit(service):
    mod, alice = member("UMOD", is_moderator=True), member("UALICE")
    change = service.moderation.block(mod, "UALICE", "  posting  other people's art ")
    assert change.message == "<@UALICE> can no longer use ARIA on this server. Reason: posting other people's art"
    assert change.audit_text == "<@UMOD> blocked <@UALICE> from ARIA. Reason: posting other people's art"
    assert use(service, alice) == (False, "A moderator has paused your use of ARIA on this server. "
                                          "If you'd like to talk about it, please ask the moderators.")
    assert service.moderation.block(mod, "UALICE").message == "<@UALICE> is already blocked from ARIA here."
    assert service.moderation.unblock(mod, "UALICE").audit_text == "<@UMOD> unblocked <@UALICE> from ARIA."
    assert use(service, alice)[0]
    entries = service.store.recent_audit("discord", "G1")
    assert [(e.action, e.details.get("reason")) for e in entries] == [
        ("unblock", None), ("block", "posting other people's art")]
    with pytest.raises(ValueError, match="can't block yourself"):
        service.moderation.block(mod, "UMOD")


def test_per_role_daily_quotas_the_most_generous_wins(service):
    service.settings.set("role_quotas", "<@&RSUP>:4, RSTAFF:0", scope=Scope.SERVER, server="discord:G1")
    assert service.settings.get("role_quotas", server="discord:G1") == {"RSUP": 4, "RSTAFF": 0}
    everyone, supporter, staff = member("U1"), member("U2", ("RSUP",)), member("U3", ("RSUP", "RSTAFF"))
    assert [use(service, everyone)[0] for _ in range(3)] == [True, True, False]
    assert [use(service, supporter)[0] for _ in range(5)] == [True, True, True, True, False]
    assert all(use(service, staff)[0] for _ in range(6))  # 0: unlimited
    assert service.policy.usage(supporter).daily_quota == 4
    with pytest.raises(ValueError, match="pairs of a role"):
        service.settings.set("role_quotas", "RSUP:lots", scope=Scope.SERVER, server="discord:G1")


def test_the_servers_caps_on_pieces_at_once_and_per_day(service):
    service.settings.set("daily_quota", 0, scope=Scope.GLOBAL)
    service.settings.set("server_max_jobs", 2, scope=Scope.SERVER, server="discord:G1")
    for i in range(2):
        service.store.save_result(ResultRecord(result_id=f"r{i}", platform="discord", server_id="G1", channel_id="C1",
                                               user_id=f"U{i}", source_kind="mood", options={}, status="queued"))
    assert use(service, member("U9")) == (False, "This server already has 2 pieces waiting or being composed, its "
                                                 "limit at once; please try again when one is done.")
    assert use(service, Actor("discord", "G2", "C1", "U9"))[0]  # another server is not held back
    service.store.update_result("r0", status="done")
    assert use(service, member("U9"))[0]

    service.settings.set("server_daily_budget", 3, scope=Scope.SERVER, server="discord:G1")
    assert [use(service, member(f"U{i}"))[0] for i in range(3)] == [True, True, False]  # 1 + these 2 make 3
    allowed, message = use(service, member("UADMIN", is_admin=True))
    assert not allowed and message == ("This server has used all 3 of today's pieces. ARIA is back for everyone here "
                                       "in 15 h (midnight UTC).")
