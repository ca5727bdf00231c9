"""Jams and their contributions in the store (tables of migration 2 -> 3 in `bot.store`).

Separate from `bot.store` so the jam rules (`bot.jams`) own their records; it uses the store's
connection, lock and transactions. Status moves open -> composing -> done (or failed), or open ->
cancelled; `claim` is the one compare-and-set that lets exactly one finisher compose a jam.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aria_engine.emotion import Emotion
from bot.store import Store

OPEN, COMPOSING, DONE, FAILED, CANCELLED = "open", "composing", "done", "failed", "cancelled"


@dataclass(frozen=True)
class Entry:
    """One contribution as stored: who, what emotion (read at once), which encoder, caption."""

    entry_id: int
    user_id: str
    user_name: str
    kind: str  # "picture" | "mood"
    emotion: Emotion
    encoder: str
    caption: str = ""


@dataclass
class Jam:
    jam_id: str
    platform: str
    server_id: str
    channel_id: str
    host_id: str
    host_name: str
    title: str
    status: str
    deadline: float
    max_contributions: int
    options: dict[str, Any]
    seconds: float | None
    board: dict[str, Any] = field(default_factory=dict)  # the adapter's message and thread ids
    result_id: str | None = None
    created_at: float = 0.0
    entries: list[Entry] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.status == OPEN


class JamBook:
    def __init__(self, store: Store) -> None:
        self.store = store

    def create(self, jam: Jam, now: float) -> None:
        self.store._write(
            "INSERT INTO jams (jam_id, platform, server_id, channel_id, host_id, host_name, title, status,"
            " deadline, max_contributions, options, seconds, board, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (jam.jam_id, jam.platform, jam.server_id, jam.channel_id, jam.host_id, jam.host_name, jam.title,
             jam.status, jam.deadline, jam.max_contributions, json.dumps(jam.options), jam.seconds,
             json.dumps(jam.board), now, now))

    def get(self, jam_id: str) -> Jam | None:
        rows = self.store._read("SELECT * FROM jams WHERE jam_id = ?", (jam_id,))
        return self._jam(rows[0]) if rows else None

    def count_open(self, platform: str, server_id: str, channel_id: str | None = None) -> int:
        sql = "SELECT COUNT(*) AS n FROM jams WHERE platform = ? AND server_id = ? AND status = ?"
        params: list[Any] = [platform, server_id, OPEN]
        if channel_id is not None:
            sql += " AND channel_id = ?"
            params.append(channel_id)
        return self.store._read(sql, params)[0]["n"]

    def open_jams(self, platform: str | None = None) -> list[Jam]:
        sql, params = "SELECT * FROM jams WHERE status = ?", [OPEN]
        if platform is not None:
            sql += " AND platform = ?"
            params.append(platform)
        return [self._jam(row) for row in self.store._read(sql + " ORDER BY deadline", params)]

    def by_board(self, platform: str, channel_id: str, board_ts: str) -> Jam | None:
        """The jam whose board is this message (the adapter's thread for it), open or not."""
        rows = self.store._read("SELECT * FROM jams WHERE platform = ? AND channel_id = ?"
                                " AND json_extract(board, '$.ts') = ?", (platform, channel_id, board_ts))
        return self._jam(rows[0]) if rows else None

    def add(self, jam_id: str, user_id: str, user_name: str, kind: str, emotion: Emotion, encoder: str,
            caption: str, now: float) -> int:
        cursor = self.store._write(
            "INSERT INTO jam_contributions (jam_id, user_id, user_name, kind, valence, arousal, encoder, caption, at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (jam_id, user_id, user_name, kind, emotion.valence, emotion.arousal, encoder, caption, now))
        return int(cursor.lastrowid)

    def remove(self, jam_id: str, entry_id: int) -> bool:
        cursor = self.store._write("UPDATE jam_contributions SET removed = 1 WHERE jam_id = ? AND id = ? AND removed = 0",
                                   (jam_id, entry_id))
        return cursor.rowcount == 1

    def last_contribution_at(self, platform: str, server_id: str, user_id: str) -> float | None:
        rows = self.store._read(
            "SELECT MAX(c.at) AS at FROM jam_contributions c JOIN jams j ON j.jam_id = c.jam_id"
            " WHERE j.platform = ? AND j.server_id = ? AND c.user_id = ?", (platform, server_id, user_id))
        return rows[0]["at"]

    def claim(self, jam_id: str, now: float, *, to: str = COMPOSING) -> bool:
        """Move an open jam on, once: True for the one caller that did."""
        cursor = self.store._write("UPDATE jams SET status = ?, updated_at = ? WHERE jam_id = ? AND status = ?",
                                   (to, now, jam_id, OPEN))
        return cursor.rowcount == 1

    def reopen(self, jam_id: str, now: float) -> None:
        self.store._write("UPDATE jams SET status = ?, updated_at = ? WHERE jam_id = ? AND status = ?",
                          (OPEN, now, jam_id, COMPOSING))

    def set_outcome(self, jam_id: str, status: str, now: float, result_id: str | None = None) -> None:
        self.store._write("UPDATE jams SET status = ?, result_id = ?, updated_at = ? WHERE jam_id = ?",
                          (status, result_id, now, jam_id))

    def set_board(self, jam_id: str, board: dict[str, Any], now: float) -> None:
        self.store._write("UPDATE jams SET board = ?, updated_at = ? WHERE jam_id = ?",
                          (json.dumps(board), now, jam_id))

    def _jam(self, row) -> Jam:
        entries = [Entry(r["id"], r["user_id"], r["user_name"], r["kind"], Emotion(r["valence"], r["arousal"]),
                         r["encoder"], r["caption"])
                   for r in self.store._read("SELECT * FROM jam_contributions WHERE jam_id = ? AND removed = 0"
                                             " ORDER BY id", (row["jam_id"],))]
        return Jam(row["jam_id"], row["platform"], row["server_id"], row["channel_id"], row["host_id"],
                   row["host_name"], row["title"], row["status"], row["deadline"], row["max_contributions"],
                   json.loads(row["options"]), row["seconds"], json.loads(row["board"]), row["result_id"],
                   row["created_at"], entries)
