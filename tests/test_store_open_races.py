"""Opening the store: processes racing to open a new one all succeed, and a store at the right
version that lacks a table is refused at open as damage (the red-team audit of issue 9's
fixes: one racer failed with `table ... already exists`; a missing table opened fine, then
failed on every call)."""

from __future__ import annotations

import multiprocessing
import sqlite3

import pytest

from bot.store import StoreDamaged, Store


def _open(path, barrier, results) -> None:
    from bot.store import Store, StoreError

    barrier.wait()
    try:
        Store(path).close()
        results.put("ok")
    except StoreError as error:
        results.put(f"StoreError: {error}")


def test_processes_opening_a_new_store_at_once_all_succeed(tmp_path):
    context = multiprocessing.get_context("fork")
    failures = []
    for trial in range(8):
        path = tmp_path / f"t{trial}" / "aria.db"
        path.parent.mkdir()
        barrier, results = context.Barrier(4), context.Queue()
        racers = [context.Process(target=_open, args=(path, barrier, results)) for _ in range(4)]
        for racer in racers:
            racer.start()
        outcomes = [results.get(timeout=60) for _ in racers]
        for racer in racers:
            racer.join(60)
        failures += [o for o in outcomes if o != "ok"]
        store = Store(path)
        assert store.schema_version == len(__import__("bot.store").store.MIGRATIONS)
        store.close()
    assert not failures, f"{len(failures)} of 32 opens failed, e.g. {failures[0]}"


@pytest.mark.parametrize("table", ["seen_events", "results", "settings"])
def test_a_store_missing_a_table_is_refused_at_open_in_one_line(tmp_path, table):
    path = tmp_path / "aria.db"
    Store(path).close()
    with sqlite3.connect(path) as connection:
        connection.execute(f"DROP TABLE {table}")
    connection.close()
    before = path.read_bytes()
    with pytest.raises(StoreDamaged) as caught:
        Store(path)
    message = str(caught.value)
    assert table in message and "damaged" in message and "\n" not in message, message
    assert path.read_bytes() == before  # left untouched
