"""The bot's SQLite database: settings, usage, results (and their MIDI), meta, audit, the platform events
already seen. All SQL lives here.

It stays one module (about 700 lines) on purpose: the schema, its migrations, the damage checks
and every query are one contract with one file, and reading them side by side is how a change to
a table is checked against every statement that touches it.

One file, WAL mode, one connection guarded by a re-entrant lock, so any thread (and code on the
asyncio loop) may call in. Every operation touches a handful of rows and takes well under a
millisecond, which is why the API is synchronous; `purge_*` on a large database is the one call
worth running in `asyncio.to_thread`.

Writes run in `BEGIN IMMEDIATE` transactions, so several processes sharing the file (two bot
shards, a CLI) stay consistent too. `transaction()` is public so the policy can make a
check-and-record atomic without writing SQL of its own.

The schema is versioned: `MIGRATIONS[i]` brings a database from version i to i + 1, and opening a
database applies whatever it is missing, each step in its own transaction.

Damage: opening checks the file first (its header, then `PRAGMA quick_check` on a read-only
connection, before anything could write to it) and raises `StoreDamaged` with one line saying
what is wrong and what to do; the damaged file is never changed, moved or deleted by opening.
`backup()` writes a checked copy beside the store with sqlite3's online backup API (the bots
do it on a schedule, see bot.housekeeping), and `restore()` (`aria admin restore`) puts a
backup back, keeping the damaged file under another name.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence
from urllib.parse import quote

from aria_engine.options import GenerationOptions

log = logging.getLogger(__name__)

SOURCE_KINDS = ("image", "mood")
STATUSES = ("queued", "running", "done", "failed", "cancelled")
UNFINISHED = ("queued", "running")
_UNFINISHED_SQL = "status IN ('queued', 'running')"
DAY_S = 86_400.0

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 0 -> 1: the initial schema. Empty strings, not NULLs, mark "not applicable" in settings
    # keys so the primary key stays unique.
    (
        """CREATE TABLE settings (
            scope TEXT NOT NULL,
            server_id TEXT NOT NULL DEFAULT '',
            channel_id TEXT NOT NULL DEFAULT '',
            user_id TEXT NOT NULL DEFAULT '',
            name TEXT NOT NULL,
            value TEXT NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (scope, server_id, channel_id, user_id, name))""",
        """CREATE TABLE usage (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            platform TEXT NOT NULL,
            server_id TEXT NOT NULL,
            channel_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            job_id TEXT,
            at REAL NOT NULL)""",
        "CREATE INDEX usage_by_user ON usage (platform, server_id, user_id, at)",
        """CREATE TABLE results (
            result_id TEXT PRIMARY KEY,
            platform TEXT NOT NULL,
            server_id TEXT NOT NULL,
            channel_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            source_kind TEXT NOT NULL,
            image_sha256 TEXT,
            image_ref TEXT NOT NULL DEFAULT '{}',
            valence REAL,
            arousal REAL,
            options TEXT NOT NULL,
            seed INTEGER,
            composer TEXT,
            encoder TEXT,
            status TEXT NOT NULL,
            error TEXT,
            message_channel_id TEXT,
            message_id TEXT,
            extra TEXT NOT NULL DEFAULT '{}',
            deleted INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL)""",
        "CREATE INDEX results_by_user ON results (platform, server_id, user_id, created_at)",
        "CREATE INDEX results_by_age ON results (created_at)",
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE audit (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at REAL NOT NULL,
            platform TEXT NOT NULL,
            server_id TEXT NOT NULL,
            channel_id TEXT,
            user_id TEXT NOT NULL,
            action TEXT NOT NULL,
            details TEXT NOT NULL DEFAULT '{}')""",
        "CREATE INDEX audit_by_server ON audit (platform, server_id, at)",
    ),
    # 1 -> 2: platform events already handled (Slack's Events API retries a delivery with the
    # same event_id), so a retry that arrives after a restart is not done twice.
    (
        "CREATE TABLE seen_events (key TEXT PRIMARY KEY, at REAL NOT NULL)",
        "CREATE INDEX seen_events_by_age ON seen_events (at)",
    ),
    # 2 -> 3: jams (bot/jams.py) and their contributions, so an open jam survives a restart and
    # a finished one is never composed twice (its status moves open -> composing once).
    (
        """CREATE TABLE jams (
            jam_id TEXT PRIMARY KEY,
            platform TEXT NOT NULL,
            server_id TEXT NOT NULL,
            channel_id TEXT NOT NULL,
            host_id TEXT NOT NULL,
            host_name TEXT NOT NULL,
            title TEXT NOT NULL,
            status TEXT NOT NULL,
            deadline REAL NOT NULL,
            max_contributions INTEGER NOT NULL,
            options TEXT NOT NULL,
            seconds REAL,
            board TEXT NOT NULL DEFAULT '{}',
            result_id TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL)""",
        "CREATE INDEX jams_by_channel ON jams (platform, server_id, channel_id, status)",
        """CREATE TABLE jam_contributions (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            jam_id TEXT NOT NULL REFERENCES jams (jam_id),
            user_id TEXT NOT NULL,
            user_name TEXT NOT NULL,
            kind TEXT NOT NULL,
            valence REAL NOT NULL,
            arousal REAL NOT NULL,
            encoder TEXT NOT NULL,
            caption TEXT NOT NULL DEFAULT '',
            removed INTEGER NOT NULL DEFAULT 0,
            at REAL NOT NULL)""",
        "CREATE INDEX jam_contributions_by_jam ON jam_contributions (jam_id, removed, id)",
    ),
    # 3 -> 4: requests ARIA turned down, by reason (quota, cooldown, image_unsafe...), for
    # `/aria-admin stats`; member data, so retention and forget-me reach it (bot/members.py).
    (
        """CREATE TABLE refusals (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at REAL NOT NULL,
            platform TEXT NOT NULL,
            server_id TEXT NOT NULL,
            channel_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            reason TEXT NOT NULL)""",
        "CREATE INDEX refusals_by_server ON refusals (platform, server_id, at)",
    ),
    # 4 -> 5: each finished piece's MIDI, so Extend can continue it after a restart (bot/extend.py);
    # it goes with its result row (retention, forget-me, purge, delete), see _drop_orphan_midi.
    (
        """CREATE TABLE result_midi (
            result_id TEXT PRIMARY KEY,
            midi BLOB NOT NULL)""",
    ),
)

MAX_STORED_MIDI = 2 << 20  # bytes: a 10-minute piece is ~100 KB; larger ones are not kept


# Every table the migrations create, so a store missing one is found at open.
EXPECTED_TABLES = frozenset(
    {"schema_version"}
    | {statement.split("(")[0].split()[-1] for steps in MIGRATIONS for statement in steps
       if statement.lstrip().upper().startswith("CREATE TABLE")}
)

_HEADER = b"SQLite format 3\x00"
BACKUP_SUFFIX = ".backup"


class StoreError(RuntimeError):
    """The store cannot be used; the message is one line saying why and what to do."""


class StoreDamaged(StoreError):
    """The database file is damaged (or not a database at all); it was left as it is."""


class SchemaTooNewError(StoreError):
    """The database was written by a newer ARIA; refuse rather than guess."""


def backup_path(path: str | Path) -> Path:
    """Where the store's backup lives: beside it, `aria.db.backup`."""
    path = Path(path)
    return path.with_name(path.name + BACKUP_SUFFIX)


def damage(path: str | Path) -> str | None:
    """What is wrong with the database file at `path`, in a few words; None if it is sound.

    Reads only: the header, then `PRAGMA quick_check` on a read-only connection.
    """
    path = Path(path)
    try:
        with path.open("rb") as file:
            header = file.read(100)
    except OSError as error:
        return f"cannot be read: {error.strerror or error}"
    if len(header) < 100 or not header.startswith(_HEADER):
        return "bad header, not an SQLite database" if header else "it is empty"
    try:
        conn = sqlite3.connect(f"file:{quote(str(path.absolute()))}?mode=ro", uri=True)
    except sqlite3.Error as error:
        return f"cannot be opened: {error}"
    try:
        rows = [row[0] for row in conn.execute("PRAGMA quick_check").fetchall()]
    except sqlite3.DatabaseError as error:
        return str(error) if is_damage(error) else None  # e.g. locked: the real open will say
    finally:
        conn.close()
    if rows == ["ok"]:
        return None
    first = " ".join(rows[0].replace("*** in database main ***", "").split())
    more = f" and {len(rows) - 1} more problems" if len(rows) > 1 else ""
    return f"quick_check found {first}{more}"


def is_damage(error: sqlite3.Error) -> bool:
    """Whether SQLite said the file is damaged (SQLITE_CORRUPT, SQLITE_NOTADB), not merely busy."""
    return getattr(error, "sqlite_errorcode", 0) & 0xFF in (11, 26)


def _damaged_message(path: Path, what: str) -> str:
    backup = backup_path(path)
    if backup.is_file():
        taken = datetime.fromtimestamp(backup.stat().st_mtime, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        todo = (f"restore the backup from {taken} with `aria admin restore --data-dir {path.parent}` "
                "(it keeps the damaged file beside it)")
    else:
        todo = "there is no backup beside it, so move the file away to start with an empty store"
    return f"the store {path} is damaged ({what}); ARIA left it untouched and did not start: {todo}"


def restore(path: str | Path, source: str | Path | None = None, *, force: bool = False) -> tuple[Path, Path | None]:
    """Put the backup (or `source`) back in place of the store at `path`.

    The current file, and its -wal and -shm, are renamed `<name>.damaged-<time>`, never
    deleted; a store that is still sound is replaced only with `force`. Stop the bots first.
    Returns (the restored store, where the old file went or None). Raises StoreError.
    """
    path = Path(path)
    source = Path(source) if source else backup_path(path)
    if not source.is_file():
        raise StoreError(f"no backup at {source}: nothing to restore")
    problem = damage(source)
    if problem:
        raise StoreError(f"the backup {source} is damaged too ({problem}); nothing was changed")
    kept = None
    if path.exists():
        if damage(path) is None and not force:
            raise StoreError(f"the store {path} is not damaged; add --force to replace it with {source} anyway")
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        kept = path.with_name(f"{path.name}.damaged-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            if Path(str(path) + suffix).exists():
                os.replace(str(path) + suffix, str(kept) + suffix)
    _copy_database(source, path)
    return path, kept


def _copy_database(source: Path, dest: Path) -> None:
    """A consistent copy through sqlite3's backup API, written under a temporary name first."""
    partial = dest.with_name(dest.name + ".partial")
    partial.unlink(missing_ok=True)
    src = sqlite3.connect(f"file:{quote(str(source.absolute()))}?mode=ro", uri=True)
    try:
        target = sqlite3.connect(str(partial))
        try:
            src.backup(target)
        finally:
            target.close()
    finally:
        src.close()
    os.replace(partial, dest)


class Who(Protocol):
    """Anyone the store records: `bot.policy.Actor` fits."""

    platform: str
    server_id: str
    channel_id: str
    user_id: str


@dataclass
class ResultRecord:
    """What a result's buttons need after a restart: who asked, from what, with which settings.

    `image_ref` says where to fetch the picture again (e.g. `{"url": ...}`, Discord
    `{"message_id", "attachment_id"}`, Slack `{"file_id"}`); `extra` holds any other
    platform detail an adapter wants back (thread ts, interaction expiry...). Both are JSON.
    """

    result_id: str
    platform: str
    server_id: str
    channel_id: str
    user_id: str
    source_kind: str  # "image" or "mood" (an explicit emotion)
    options: dict[str, Any]
    seed: int | None = None
    valence: float | None = None
    arousal: float | None = None
    image_sha256: str | None = None
    image_ref: dict[str, Any] = field(default_factory=dict)
    composer: str | None = None
    encoder: str | None = None
    status: str = "queued"
    error: str | None = None
    message_channel_id: str | None = None
    message_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    deleted: bool = False
    created_at: float = field(default_factory=time.time)
    updated_at: float | None = None

    def __post_init__(self) -> None:
        if self.source_kind not in SOURCE_KINDS:
            raise ValueError(f"source_kind must be one of {', '.join(SOURCE_KINDS)}")
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}")
        if self.updated_at is None:
            self.updated_at = self.created_at

    def generation_options(self) -> GenerationOptions:
        """The options back as `GenerationOptions` (keys this version doesn't know are dropped)."""
        known = {f.name for f in fields(GenerationOptions)}
        return GenerationOptions(**{k: v for k, v in self.options.items() if k in known})


_JSON_COLUMNS = ("options", "image_ref", "extra")
_RESULT_COLUMNS = tuple(f.name for f in fields(ResultRecord))
_UPDATABLE = frozenset(_RESULT_COLUMNS) - {"result_id", "created_at", "updated_at"}


@dataclass(frozen=True)
class AuditEntry:
    at: float
    platform: str
    server_id: str
    channel_id: str | None
    user_id: str
    action: str
    details: dict[str, Any]


@dataclass(frozen=True)
class SettingRow:
    scope: str
    server_id: str
    channel_id: str
    user_id: str
    name: str
    value: Any


class Store:
    """The bot's database file. Thread-safe; see the module docstring for why it is sync."""

    def __init__(self, path: str | Path, *, clock=time.time, busy_timeout_s: float = 10.0):
        self.path = Path(path)
        self.clock = clock
        if str(path) != ":memory:":
            self._check_file()
        self._lock = threading.RLock()
        self._depth = 0
        try:
            self._conn = sqlite3.connect(
                str(path), timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as error:
            raise StoreError(f"cannot open the store {self.path}: {error}") from None
        self._conn.row_factory = sqlite3.Row
        try:
            self._set_wal(busy_timeout_s)
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except sqlite3.DatabaseError as error:
            self._conn.close()
            if is_damage(error):  # damage quick_check could not see
                raise StoreDamaged(_damaged_message(self.path, str(error))) from None
            raise StoreError(f"cannot open the store {self.path}: {error}") from None
        except BaseException:
            self._conn.close()
            raise

    def _set_wal(self, busy_timeout_s: float) -> None:
        """WAL mode. Switching a new file to it needs the file to itself, and SQLite answers
        "database is locked" at once, without waiting, when another process opening it at the
        same moment holds it: so try again for as long as a write would wait."""
        deadline = time.monotonic() + busy_timeout_s
        while True:
            try:
                self._conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.02)

    def _check_file(self) -> None:
        """Refuse a damaged file before any connection could write to it."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(f"cannot make the data folder {self.path.parent}: {error.strerror or error}") from None
        if self.path.is_dir():
            raise StoreError(f"the store {self.path} is a folder, not a database file")
        if not self.path.exists() or self.path.stat().st_size == 0:
            return  # a new store
        problem = damage(self.path)
        if problem:
            raise StoreDamaged(_damaged_message(self.path, problem))

    # -- lifecycle -------------------------------------------------------------------------

    def backup(self, dest: str | Path | None = None) -> Path:
        """Copy the store, online, to `dest` (default: `aria.db.backup` beside it).

        The copy is made under a temporary name and checked with quick_check before it replaces
        the previous backup, so a failed or damaged copy never costs the last good one.
        """
        dest = Path(dest) if dest else backup_path(self.path)
        partial = dest.with_name(dest.name + ".partial")
        partial.unlink(missing_ok=True)
        target = sqlite3.connect(str(partial))
        try:
            with self._lock:
                self._conn.backup(target)
            sound = target.execute("PRAGMA quick_check").fetchall() == [("ok",)]
        finally:
            target.close()
        if not sound:
            partial.unlink(missing_ok=True)
            raise StoreDamaged(f"the store {self.path} failed quick_check while being backed up; "
                               f"the backup {dest} was kept as it was")
        os.replace(partial, dest)
        return dest

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Hold the lock and one write transaction; nested calls join the outer one."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield
            except BaseException:
                self._depth = 0
                self._conn.execute("ROLLBACK")
                raise
            self._depth = 0
            self._conn.execute("COMMIT")

    def _write(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        with self.transaction():
            return self._conn.execute(sql, params)

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    # -- schema ----------------------------------------------------------------------------

    @property
    def schema_version(self) -> int:
        rows = self._read("SELECT version FROM schema_version")
        return rows[0]["version"] if rows else 0

    def _migrate(self) -> None:
        """Bring the schema up to date in one write transaction, the version read inside it, so
        that processes opening a new store at once migrate it once (the others wait for the
        write lock, then find it current); then check every table the schema names is there."""
        applied = []
        with self.transaction():
            self._conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = self._conn.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                self._conn.execute("INSERT INTO schema_version (version) VALUES (0)")
            current = row[0] if row is not None else 0
            if not isinstance(current, int) or current < 0:
                raise StoreDamaged(_damaged_message(self.path, f"its schema version is {current!r}"))
            if current > len(MIGRATIONS):
                raise SchemaTooNewError(
                    f"{self.path} has schema version {current}, but this ARIA knows only up to "
                    f"{len(MIGRATIONS)}; upgrade ARIA or use another data directory"
                )
            for version in range(current, len(MIGRATIONS)):
                for statement in MIGRATIONS[version]:
                    self._conn.execute(statement)
                applied.append(version + 1)
            if applied:
                self._conn.execute("UPDATE schema_version SET version = ?", (applied[-1],))
        for version in applied:
            log.info("migrated %s to schema version %d", self.path, version)
        self._check_tables()

    def _check_tables(self) -> None:
        """A store at the right version without one of its tables would open, then fail on
        every call that needs it: refuse it at open, as other damage."""
        present = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing = sorted(EXPECTED_TABLES - present)
        if missing:
            raise StoreDamaged(_damaged_message(
                self.path, f"it lacks the table{'s' if len(missing) > 1 else ''} {', '.join(missing)}"))

    # -- settings --------------------------------------------------------------------------

    def setting_rows(
        self, *, server_id: str, channel_id: str | None, user_id: str | None, name: str | None = None
    ) -> list[SettingRow]:
        """Every stored row that may apply to this place: global, server, channel and user."""
        sql = """SELECT * FROM settings WHERE (
                    scope = 'global'
                    OR (scope = 'server' AND server_id = :server)
                    OR (scope = 'channel' AND server_id = :server AND channel_id = :channel)
                    OR (scope = 'user' AND server_id = :server AND user_id = :user))"""
        params = {"server": server_id, "channel": channel_id or "", "user": user_id or ""}
        if name is not None:
            sql += " AND name = :name"
            params["name"] = name
        rows = self._read(sql, params)
        return [
            SettingRow(r["scope"], r["server_id"], r["channel_id"], r["user_id"], r["name"], json.loads(r["value"]))
            for r in rows
        ]

    def put_setting(
        self, scope: str, name: str, value: Any, *, server_id: str = "", channel_id: str = "", user_id: str = ""
    ) -> None:
        self._write(
            """INSERT INTO settings (scope, server_id, channel_id, user_id, name, value, updated_at)
               VALUES (?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (scope, server_id, channel_id, user_id, name)
               DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at""",
            (scope, server_id, channel_id, user_id, name, json.dumps(value), self.clock()),
        )

    def delete_setting(
        self, scope: str, name: str, *, server_id: str = "", channel_id: str = "", user_id: str = ""
    ) -> bool:
        cursor = self._write(
            "DELETE FROM settings WHERE scope = ? AND server_id = ? AND channel_id = ? AND user_id = ? AND name = ?",
            (scope, server_id, channel_id, user_id, name),
        )
        return cursor.rowcount > 0

    # -- usage (quota and cooldown) --------------------------------------------------------

    def add_use(self, who: Who, *, kind: str, at: float, job_id: str | None = None) -> int:
        cursor = self._write(
            """INSERT INTO usage (platform, server_id, channel_id, user_id, kind, job_id, at)
               VALUES (?, ?, ?, ?, ?, ?, ?)""",
            (who.platform, who.server_id, who.channel_id, who.user_id, kind, job_id, at),
        )
        return int(cursor.lastrowid)

    def attach_job(self, use_id: int, job_id: str) -> None:
        self._write("UPDATE usage SET job_id = ? WHERE id = ?", (job_id, use_id))

    def use_of_job(self, job_id: str) -> int | None:
        """The usage row counted for this job, if there is one (to refund a job that never ran)."""
        rows = self._read("SELECT id FROM usage WHERE job_id = ? ORDER BY id DESC LIMIT 1", (job_id,))
        return rows[0]["id"] if rows else None

    def delete_use(self, use_id: int) -> bool:
        return self._write("DELETE FROM usage WHERE id = ?", (use_id,)).rowcount > 0

    def uses_since(self, who: Who, since: float) -> int:
        rows = self._read(
            "SELECT COUNT(*) AS n FROM usage WHERE platform = ? AND server_id = ? AND user_id = ? AND at >= ?",
            (who.platform, who.server_id, who.user_id, since),
        )
        return rows[0]["n"]

    def last_use_at(self, who: Who) -> float | None:
        rows = self._read(
            "SELECT MAX(at) AS at FROM usage WHERE platform = ? AND server_id = ? AND user_id = ?",
            (who.platform, who.server_id, who.user_id),
        )
        return rows[0]["at"]

    def purge_usage_before(self, at: float) -> int:
        return self._write("DELETE FROM usage WHERE at < ?", (at,)).rowcount

    # -- results ---------------------------------------------------------------------------

    def save_result(self, record: ResultRecord) -> None:
        """Insert or replace the whole record."""
        row = asdict(record)
        for column in _JSON_COLUMNS:
            row[column] = json.dumps(row[column])
        row["deleted"] = int(row["deleted"])
        columns = ", ".join(_RESULT_COLUMNS)
        marks = ", ".join(f":{c}" for c in _RESULT_COLUMNS)
        self._write(f"INSERT OR REPLACE INTO results ({columns}) VALUES ({marks})", row)

    def get_result(self, result_id: str) -> ResultRecord | None:
        rows = self._read("SELECT * FROM results WHERE result_id = ?", (result_id,))
        return _record(rows[0]) if rows else None

    def update_result(self, result_id: str, /, **changes: Any) -> ResultRecord | None:
        """Change some fields (status, message ids, valence...); returns the new record or None."""
        unknown = set(changes) - _UPDATABLE
        if unknown:
            raise ValueError(f"cannot update result fields: {', '.join(sorted(unknown))}")
        if "status" in changes and changes["status"] not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}")
        with self.transaction():
            current = self.get_result(result_id)
            if current is None:
                return None
            for name, value in changes.items():
                setattr(current, name, value)
            current.updated_at = self.clock()
            self.save_result(current)
            return current

    def mark_result_deleted(self, result_id: str) -> bool:
        with self.transaction():
            self._write("DELETE FROM result_midi WHERE result_id = ?", (result_id,))
            return self.update_result(result_id, deleted=True) is not None

    def save_midi(self, result_id: str, midi: bytes) -> bool:
        """Keep a finished piece's MIDI (for Extend); False when it is too large to keep."""
        if len(midi) > MAX_STORED_MIDI:
            return False
        self._write("INSERT OR REPLACE INTO result_midi (result_id, midi) VALUES (?, ?)", (result_id, bytes(midi)))
        return True

    def midi_of(self, result_id: str) -> bytes | None:
        rows = self._read("SELECT m.midi FROM result_midi m JOIN results r USING (result_id) "
                          "WHERE m.result_id = ? AND r.deleted = 0", (result_id,))
        return bytes(rows[0]["midi"]) if rows else None

    def _drop_orphan_midi(self) -> None:
        """MIDI whose result row went (retention, forget-me, purge) goes with it."""
        self._write("DELETE FROM result_midi WHERE result_id NOT IN (SELECT result_id FROM results)")

    def list_user_jobs(
        self,
        platform: str,
        server_id: str,
        user_id: str,
        *,
        statuses: Sequence[str] | None = None,
        limit: int = 10,
        include_deleted: bool = False,
    ) -> list[ResultRecord]:
        """This user's records on this server, newest first."""
        sql = "SELECT * FROM results WHERE platform = ? AND server_id = ? AND user_id = ?"
        params: list[Any] = [platform, server_id, user_id]
        if statuses:
            sql += f" AND status IN ({', '.join('?' * len(statuses))})"
            params += list(statuses)
        if not include_deleted:
            sql += " AND deleted = 0"
        sql += " ORDER BY created_at DESC LIMIT ?"
        params.append(limit)
        return [_record(r) for r in self._read(sql, params)]

    def unfinished_results(self, platform: str | None = None) -> list[ResultRecord]:
        """Records still queued or running (after a restart: jobs to pick up again or to fail),
        oldest first; `platform` limits them to one platform's."""
        where, params = _UNFINISHED_SQL, ()
        if platform is not None:
            where, params = f"{_UNFINISHED_SQL} AND platform = ?", (platform,)
        return [_record(r) for r in self._read(f"SELECT * FROM results WHERE {where} ORDER BY created_at", params)]

    def result_servers(self) -> list[tuple[str, str]]:
        """(platform, server_id) of every server with stored results."""
        rows = self._read("SELECT DISTINCT platform, server_id FROM results")
        return [(r["platform"], r["server_id"]) for r in rows]

    def purge_older_than(
        self, days: float, *, platform: str | None = None, server_id: str | None = None, now: float | None = None
    ) -> int:
        """Delete results created more than `days` ago (optionally on one server); returns how many."""
        cutoff = (self.clock() if now is None else now) - days * DAY_S
        sql, params = "DELETE FROM results WHERE created_at < ?", [cutoff]
        if platform is not None and server_id is not None:
            sql += " AND platform = ? AND server_id = ?"
            params += [platform, server_id]
        with self.transaction():
            deleted = self._write(sql, params).rowcount
            self._drop_orphan_midi()
        return deleted

    # -- meta ------------------------------------------------------------------------------

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        rows = self._read("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0]["value"] if rows else default

    def set_meta(self, key: str, value: str) -> None:
        self._write(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # -- events seen (retry dedupe) ---------------------------------------------------------

    def first_sighting(self, key: str, *, keep_s: float) -> bool:
        """Record an event's key; True the first time it is seen within `keep_s` seconds.

        Check and record are one transaction, so two processes sharing the file (or a retry
        racing its original) cannot both get True. Keys older than `keep_s` are forgotten here.
        """
        now = self.clock()
        with self.transaction():
            self._conn.execute("DELETE FROM seen_events WHERE at < ?", (now - keep_s,))
            cursor = self._conn.execute("INSERT OR IGNORE INTO seen_events (key, at) VALUES (?, ?)", (key, now))
        return cursor.rowcount == 1

    # -- audit -----------------------------------------------------------------------------

    def audit(self, who: Who, action: str, details: dict[str, Any] | str | None = None) -> None:
        """Record an admin action (a setting changed, a result deleted by a moderator...)."""
        if details is None:
            details = {}
        elif isinstance(details, str):
            details = {"text": details}
        self._write(
            """INSERT INTO audit (at, platform, server_id, channel_id, user_id, action, details)
               VALUES (?, ?, ?, ?, ?, ?, ?)""",
            (self.clock(), who.platform, who.server_id, who.channel_id, who.user_id, action,
             json.dumps(details, default=str)),
        )

    def recent_audit(self, platform: str, server_id: str, *, limit: int = 20) -> list[AuditEntry]:
        """This server's audit entries, newest first."""
        rows = self._read(
            "SELECT * FROM audit WHERE platform = ? AND server_id = ? ORDER BY at DESC, id DESC LIMIT ?",
            (platform, server_id, limit),
        )
        return [
            AuditEntry(r["at"], r["platform"], r["server_id"], r["channel_id"], r["user_id"], r["action"],
                       json.loads(r["details"]))
            for r in rows
        ]

    def purge_audit_older_than(self, days: float, *, now: float | None = None) -> int:
        cutoff = (self.clock() if now is None else now) - days * DAY_S
        return self._write("DELETE FROM audit WHERE at < ?", (cutoff,)).rowcount

    # -- member data (bot/members.py: forget-me, purge, retention) ---------------------------------

    def member_rows(self, platform: str, server_id: str, *, user_id: str | None = None,
                    channel_id: str | None = None) -> list[ResultRecord]:
        """Every result record of one member, or of one channel, on a server (deleted ones too)."""
        column, value = ("user_id", user_id) if user_id is not None else ("channel_id", channel_id)
        return [_record(r) for r in self._read(
            f"SELECT * FROM results WHERE platform = ? AND server_id = ? AND {column} = ? ORDER BY created_at",
            (platform, server_id, value))]

    def forget_rows(self, platform: str, server_id: str, *, user_id: str | None = None,
                    channel_id: str | None = None) -> dict[str, int]:
        """Delete one member's (or one channel's) results, usage, jam contributions and, for a
        member, their own settings, in one transaction; how many rows of each went."""
        column, value = ("user_id", user_id) if user_id is not None else ("channel_id", channel_id)
        where = f"platform = ? AND server_id = ? AND {column} = ?"
        params = (platform, server_id, value)
        with self.transaction():
            self._write(f"DELETE FROM refusals WHERE {where}", params)
            counts = {"results": self._write(f"DELETE FROM results WHERE {where}", params).rowcount,
                      "uses": self._write(f"DELETE FROM usage WHERE {where}", params).rowcount,
                      "settings": 0, "contributions": 0}
            self._drop_orphan_midi()
            if user_id is not None:
                counts["settings"] = self._write(
                    "DELETE FROM settings WHERE scope = 'user' AND server_id = ? AND user_id = ?",
                    (f"{platform}:{server_id}", user_id)).rowcount
                if self._read("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'jam_contributions'"):
                    counts["contributions"] = self._write(
                        "DELETE FROM jam_contributions WHERE user_id = ? AND jam_id IN "
                        "(SELECT jam_id FROM jams WHERE platform = ? AND server_id = ?)",
                        (user_id, platform, server_id)).rowcount
        return counts

    # -- refusals and stats (bot/stats.py) ---------------------------------------------------------

    def record_refusal(self, who: Who, reason: str) -> None:
        self._write("INSERT INTO refusals (at, platform, server_id, channel_id, user_id, reason) VALUES (?, ?, ?, ?, ?, ?)",
                    (self.clock(), who.platform, who.server_id, who.channel_id or "", who.user_id, reason))

    def refusals_since(self, platform: str, server_id: str, since: float) -> dict[str, int]:
        rows = self._read("SELECT reason, COUNT(*) AS n FROM refusals WHERE platform = ? AND server_id = ? AND at >= ?"
                          " GROUP BY reason ORDER BY n DESC, reason", (platform, server_id, since))
        return {r["reason"]: r["n"] for r in rows}

    def results_since(self, platform: str, server_id: str, since: float) -> list[ResultRecord]:
        return [_record(r) for r in self._read(
            "SELECT * FROM results WHERE platform = ? AND server_id = ? AND created_at >= ? ORDER BY created_at",
            (platform, server_id, since))]

    def server_unfinished(self, platform: str, server_id: str) -> int:
        """A server's pieces waiting or being made (for `server_max_jobs`)."""
        return self._read(f"SELECT COUNT(*) AS n FROM results WHERE {_UNFINISHED_SQL} AND platform = ? AND server_id = ?",
                          (platform, server_id))[0]["n"]

    def server_uses_since(self, platform: str, server_id: str, since: float) -> int:
        """A whole server's uses since `since` (for `server_daily_budget`)."""
        return self._read("SELECT COUNT(*) AS n FROM usage WHERE platform = ? AND server_id = ? AND at >= ?",
                          (platform, server_id, since))[0]["n"]

    def member_servers(self) -> list[tuple[str, str]]:
        """(platform, server_id) of every server with results or jams stored (for retention)."""
        sql = ("SELECT platform, server_id FROM results UNION SELECT platform, server_id FROM usage"
               " UNION SELECT platform, server_id FROM refusals")
        if self._read("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'jams'"):
            sql += " UNION SELECT platform, server_id FROM jams"
        return [(r["platform"], r["server_id"]) for r in self._read(sql)]

    def purge_refusals_before(self, platform: str, server_id: str, at: float) -> int:
        return self._write("DELETE FROM refusals WHERE platform = ? AND server_id = ? AND at < ?",
                           (platform, server_id, at)).rowcount

    def purge_contributions_before(self, platform: str, server_id: str, at: float) -> int:
        """Jam contributions (member data) older than `at` on one server, for retention."""
        if not self._read("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'jam_contributions'"):
            return 0
        return self._write("DELETE FROM jam_contributions WHERE at < ? AND jam_id IN "
                           "(SELECT jam_id FROM jams WHERE platform = ? AND server_id = ?)",
                           (at, platform, server_id)).rowcount


def _record(row: sqlite3.Row) -> ResultRecord:
    values = {name: row[name] for name in _RESULT_COLUMNS}
    for column in _JSON_COLUMNS:
        values[column] = json.loads(values[column])
    values["deleted"] = bool(values["deleted"])
    return ResultRecord(**values)
