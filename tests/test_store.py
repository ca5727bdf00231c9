"""The bot's SQLite store, on real database files."""

import sqlite3
from dataclasses import dataclass

import pytest

import bot.store
from aria_engine.options import GenerationOptions
from bot.store import MIGRATIONS, ResultRecord, SchemaTooNewError, Store


@dataclass
class Who:
    platform: str = "discord"
    server_id: str = "100"
    channel_id: str = "200"
    user_id: str = "300"


class Clock:
    def __init__(self, now: float = 1_700_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def tables(path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def record(result_id="r1", **overrides) -> ResultRecord:
    fields = dict(
        result_id=result_id, platform="discord", server_id="100", channel_id="200", user_id="300",
        source_kind="image", options=GenerationOptions(seed=7, mode="continuous_token").as_dict(), seed=7,
        valence=0.62, arousal=-0.31, image_sha256="ab" * 32,
        image_ref={"message_id": "900", "attachment_id": "901", "url": "https://cdn.example/x.png"},
        composer="procedural", encoder="palette", status="done",
        message_channel_id="200", message_id="555", extra={"thread_ts": "1.2"}, created_at=1_700_000_000.0,
    )
    fields.update(overrides)
    return ResultRecord(**fields)


# -- schema ----------------------------------------------------------------------------------


def test_an_empty_file_is_migrated_to_the_current_schema(tmp_path):
    path = tmp_path / "aria.db"
    path.touch()
    with Store(path) as store:
        assert store.schema_version == len(MIGRATIONS)
    assert {"schema_version", "settings", "usage", "results", "meta", "audit"} <= tables(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_missing_directories_are_created(tmp_path):
    path = tmp_path / "a" / "b" / "aria.db"
    Store(path).close()
    assert path.exists()


def test_reopening_applies_only_missing_migrations(tmp_path, monkeypatch):
    path = tmp_path / "aria.db"
    with Store(path) as store:
        store.set_meta("commands", "hash-1")
    newer = MIGRATIONS + (("ALTER TABLE meta ADD COLUMN note TEXT DEFAULT 'new'",),)
    monkeypatch.setattr(bot.store, "MIGRATIONS", newer)
    with Store(path) as store:
        assert store.schema_version == len(newer)
        assert store.get_meta("commands") == "hash-1"
    with Store(path) as store:  # a second open must not run the ALTER again (it would fail)
        assert store.schema_version == len(newer)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT note FROM meta").fetchone()[0] == "new"


def test_a_database_from_a_newer_aria_is_refused(tmp_path):
    path = tmp_path / "aria.db"
    Store(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(SchemaTooNewError, match="schema version 99"):
        Store(path)


def test_a_failed_transaction_leaves_nothing_behind(tmp_path):
    with Store(tmp_path / "aria.db") as store:
        with pytest.raises(RuntimeError):
            with store.transaction():
                store.set_meta("half", "done")
                raise RuntimeError("boom")
        assert store.get_meta("half") is None


# -- results ---------------------------------------------------------------------------------


def test_results_survive_reopening(tmp_path):
    path = tmp_path / "aria.db"
    saved = record()
    with Store(path) as store:
        store.save_result(saved)
    with Store(path) as store:
        loaded = store.get_result("r1")
    assert loaded == saved
    assert loaded.generation_options() == GenerationOptions(seed=7, mode="continuous_token")
    assert loaded.image_ref["attachment_id"] == "901"


def test_an_unknown_result_is_none(tmp_path):
    with Store(tmp_path / "aria.db") as store:
        assert store.get_result("nope") is None
        assert store.update_result("nope", status="done") is None


def test_generation_options_drop_keys_this_version_does_not_know(tmp_path):
    options = {**GenerationOptions(seed=3).as_dict(), "from_the_future": 1}
    assert record(options=options).generation_options() == GenerationOptions(seed=3)


def test_update_result_changes_fields_and_checks_them(tmp_path):
    clock = Clock(1_700_000_100.0)
    with Store(tmp_path / "aria.db", clock=clock) as store:
        store.save_result(record(status="queued", message_id=None))
        updated = store.update_result("r1", status="running", message_id="777")
        assert (updated.status, updated.message_id, updated.updated_at) == ("running", "777", clock.now)
        assert store.get_result("r1") == updated
        with pytest.raises(ValueError, match="status must be one of"):
            store.update_result("r1", status="exploded")
        with pytest.raises(ValueError, match="cannot update result fields: created_at"):
            store.update_result("r1", created_at=0.0)


def test_a_record_with_a_bad_status_or_source_is_refused():
    with pytest.raises(ValueError, match="status"):
        record(status="lost")
    with pytest.raises(ValueError, match="source_kind"):
        record(source_kind="video")


def test_list_user_jobs_newest_first_without_deleted(tmp_path):
    with Store(tmp_path / "aria.db") as store:
        for i, status in enumerate(["done", "queued", "running", "failed"]):
            store.save_result(record(f"r{i}", status=status, created_at=1000.0 + i))
        store.save_result(record("other-user", user_id="301"))
        store.save_result(record("other-server", server_id="101"))
        store.save_result(record("slack", platform="slack"))
        assert store.mark_result_deleted("r3")
        assert [r.result_id for r in store.list_user_jobs("discord", "100", "300")] == ["r2", "r1", "r0"]
        unfinished = store.list_user_jobs("discord", "100", "300", statuses=("queued", "running"))
        assert [r.result_id for r in unfinished] == ["r2", "r1"]
        assert len(store.list_user_jobs("discord", "100", "300", limit=1)) == 1
        everything = store.list_user_jobs("discord", "100", "300", include_deleted=True)
        assert [r.result_id for r in everything][0] == "r3" and everything[0].deleted


def test_unfinished_results_per_platform_oldest_first_and_the_use_of_a_job(tmp_path):
    with Store(tmp_path / "aria.db") as store:
        store.save_result(record("later", status="running", created_at=1_700_000_100.0))
        store.save_result(record("first", status="queued", created_at=1_700_000_000.0))
        store.save_result(record("slack", status="queued", platform="slack"))
        store.save_result(record("done", status="done"))
        assert [r.result_id for r in store.unfinished_results("discord")] == ["first", "later"]
        assert len(store.unfinished_results()) == 3
        use = store.add_use(Who(), kind="compose", at=1.0, job_id="first")
        store.add_use(Who(), kind="compose", at=2.0)
        assert store.use_of_job("first") == use and store.use_of_job("later") is None


def test_purge_older_than_deletes_only_old_results(tmp_path):
    day = 86_400.0
    clock = Clock(1_700_000_000.0)
    with Store(tmp_path / "aria.db", clock=clock) as store:
        store.save_result(record("fresh", created_at=clock.now - 29 * day))
        store.save_result(record("old", created_at=clock.now - 31 * day))
        store.save_result(record("old-elsewhere", server_id="101", created_at=clock.now - 31 * day))
        assert store.purge_older_than(30, platform="discord", server_id="100") == 1
        assert store.get_result("old") is None and store.get_result("old-elsewhere") is not None
        assert store.purge_older_than(30) == 1
        assert store.get_result("fresh") is not None
        assert sorted(store.result_servers()) == [("discord", "100")]


# -- meta, audit, usage ----------------------------------------------------------------------


def test_meta_round_trips_and_overwrites(tmp_path):
    path = tmp_path / "aria.db"
    with Store(path) as store:
        assert store.get_meta("discord.commands_hash") is None
        assert store.get_meta("discord.commands_hash", "none") == "none"
        store.set_meta("discord.commands_hash", "abc")
        store.set_meta("discord.commands_hash", "def")
    with Store(path) as store:
        assert store.get_meta("discord.commands_hash") == "def"


def test_audit_is_per_server_and_newest_first(tmp_path):
    clock = Clock(1000.0)
    with Store(tmp_path / "aria.db", clock=clock) as store:
        store.audit(Who(), "set cooldown_s", {"value": 30, "scope": "channel"})
        clock.now += 1
        store.audit(Who(), "delete result", "r1")
        store.audit(Who(server_id="101"), "elsewhere")
        entries = store.recent_audit("discord", "100")
        assert [e.action for e in entries] == ["delete result", "set cooldown_s"]
        assert entries[0].details == {"text": "r1"}
        assert entries[1].details == {"value": 30, "scope": "channel"}
        assert (entries[1].user_id, entries[1].channel_id, entries[1].at) == ("300", "200", 1000.0)
        assert len(store.recent_audit("discord", "100", limit=1)) == 1
        assert store.purge_audit_older_than(0, now=1000.5) == 1


def test_usage_counts_per_user_and_server(tmp_path):
    with Store(tmp_path / "aria.db") as store:
        first = store.add_use(Who(), kind="compose", at=10.0)
        store.add_use(Who(), kind="variation", at=20.0, job_id="j2")
        store.add_use(Who(user_id="301"), kind="compose", at=30.0)
        store.add_use(Who(server_id="101"), kind="compose", at=40.0)
        assert store.uses_since(Who(), 0) == 2
        assert store.uses_since(Who(), 15) == 1
        assert store.last_use_at(Who()) == 20.0
        assert store.last_use_at(Who(user_id="999")) is None
        assert store.delete_use(first) and not store.delete_use(first)
        assert store.purge_usage_before(35.0) == 2


def test_two_connections_to_one_file_see_each_other(tmp_path):
    path = tmp_path / "aria.db"
    with Store(path) as one, Store(path) as two:
        one.save_result(record())
        assert two.get_result("r1") == one.get_result("r1")


# -- events seen -----------------------------------------------------------------------------


def test_an_event_is_new_once_within_the_window_and_survives_reopening(tmp_path):
    clock = Clock()
    with Store(tmp_path / "aria.db", clock=clock) as store:
        assert store.first_sighting("slack:Ev1", keep_s=3600)
        assert not store.first_sighting("slack:Ev1", keep_s=3600)
        assert store.first_sighting("slack:Ev2", keep_s=3600)
    clock.now += 3000
    with Store(tmp_path / "aria.db", clock=clock) as store:  # a restart
        assert not store.first_sighting("slack:Ev1", keep_s=3600)
        clock.now += 601  # Ev1 and Ev2 are now older than the window
        assert store.first_sighting("slack:Ev3", keep_s=3600)
        assert store._read("SELECT key FROM seen_events")[0]["key"] == "slack:Ev3"  # the old ones forgotten
        assert store.first_sighting("slack:Ev1", keep_s=3600)
