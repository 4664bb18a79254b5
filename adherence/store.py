"""SQLite: schema migrations, connections and the single writer.

One process owns the database's writes. SQLite allows one writer at a time;
rather than letting request threads race for the write lock (and answer 500
on "database is locked"), every write goes through one connection guarded by
a lock. Reads use a connection per thread (sqlite3 connections, and so
sqlite-utils ``Database`` objects, belong to the thread that opened them).
WAL mode lets readers run while the writer writes. ``synchronous=NORMAL``
in WAL mode loses nothing when the *process* dies (kill -9): a committed
transaction is in the WAL file before the 200 goes out.
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import sqlite_utils

BUSY_TIMEOUT_MS = 30_000
WAL_AUTOCHECKPOINT_PAGES = 10_000
CACHE_KIB = 8 * 1024  # per connection (one per request thread): memory adds up
BULK_CACHE_KIB = 64 * 1024  # the writer's, while replaying

# Named, applied once (sqlite-utils records them in _sqlite_migrations); safe to run at every start.
# Append only: a migration once released is never edited. A body is SQL or a function of the Database.
MIGRATIONS: list[tuple[str, Any]] = [
    (
        "0001_journal",
        """
        CREATE TABLE journal (
            id INTEGER PRIMARY KEY,
            event_sid TEXT,
            worker_sid TEXT NOT NULL,
            at_ms INTEGER NOT NULL,
            received_ms INTEGER NOT NULL,
            flagged INTEGER NOT NULL DEFAULT 0,
            activity TEXT NOT NULL,
            task TEXT NOT NULL,
            record TEXT NOT NULL
        );
        CREATE UNIQUE INDEX journal_event_sid ON journal(event_sid) WHERE event_sid IS NOT NULL;
        CREATE INDEX journal_worker_at ON journal(worker_sid, at_ms);
        CREATE INDEX journal_received ON journal(received_ms);
        CREATE TABLE rejected (
            id INTEGER PRIMARY KEY,
            received_ms INTEGER NOT NULL,
            reason TEXT NOT NULL,
            content_type TEXT,
            remote_addr TEXT,
            body BLOB
        );
        CREATE INDEX rejected_received ON rejected(received_ms);
        """,
    ),
    (
        "0002_results",
        """
        CREATE TABLE exceptions (
            id INTEGER PRIMARY KEY,
            worker_sid TEXT NOT NULL,
            agent TEXT NOT NULL,
            team TEXT,
            rule TEXT NOT NULL,
            severity TEXT NOT NULL,
            scheduled_activity TEXT,
            actual_activity TEXT,
            task_state TEXT,
            start_ms INTEGER NOT NULL,
            end_ms INTEGER,
            day TEXT NOT NULL,
            approved INTEGER NOT NULL DEFAULT 0,
            approved_by TEXT,
            approved_at_ms INTEGER,
            note TEXT,
            updated_ms INTEGER NOT NULL
        );
        CREATE INDEX exceptions_worker_start ON exceptions(worker_sid, start_ms);
        CREATE INDEX exceptions_day ON exceptions(day);
        CREATE INDEX exceptions_open ON exceptions(end_ms) WHERE end_ms IS NULL;
        CREATE TABLE adherence (
            worker_sid TEXT NOT NULL,
            day TEXT NOT NULL,
            agent TEXT NOT NULL,
            team TEXT,
            scheduled_ms INTEGER NOT NULL,
            in_adherence_ms INTEGER NOT NULL,
            out_of_adherence_ms INTEGER NOT NULL,
            approved_ms INTEGER NOT NULL,
            logged_in_ms INTEGER NOT NULL,
            adherence_percent REAL,
            conformance_percent REAL,
            exceptions INTEGER NOT NULL,
            as_of_ms INTEGER NOT NULL,
            PRIMARY KEY (worker_sid, day)
        );
        CREATE INDEX adherence_day ON adherence(day);
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
        """,
    ),
    (
        # retention deletes by record time; nothing reads journal rows by receipt time
        "0003_journal_at_index",
        """
        DROP INDEX IF EXISTS journal_received;
        CREATE INDEX IF NOT EXISTS journal_at ON journal(at_ms);
        """,
    ),
]


def connect(path: Path | str) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    # Performance only. In WAL mode with synchronous=NORMAL each checkpoint syncs the files; checkpointing
    # every 10,000 pages (~40 MB of WAL) instead of SQLite's 1,000 makes that ten times rarer, which ingest
    # (random inserts into the event-SID and worker indexes) feels most. A 64 MiB page cache per connection
    # keeps those indexes' hot pages in memory.
    conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
    conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


LEGACY_MIGRATIONS_TABLE = "_migrations"  # our own bookkeeping before sqlite-utils kept it


def _migration_set() -> sqlite_utils.Migrations:
    """``MIGRATIONS`` as a sqlite-utils migration set (it records what ran in ``_sqlite_migrations``).

    An entry's body is SQL (statements run one by one: ``executescript`` would commit mid-migration)
    or a function of the sqlite-utils ``Database``, for migrations written with its table API.
    """
    migrations = sqlite_utils.Migrations("adherence")
    for name, body in MIGRATIONS:
        if callable(body):
            migrations(name=name)(body)
        else:

            def run(db: sqlite_utils.Database, sql: str = body) -> None:
                for statement in sql.split(";"):
                    if statement.strip():
                        db.execute(statement)

            migrations(name=name)(run)
    return migrations


def _adopt_legacy(db: sqlite_utils.Database, migrations: sqlite_utils.Migrations) -> None:
    """A database made before migrations were sqlite-utils': record what it had applied, then drop
    the old table, so the same migrations are not run twice."""
    if not db[LEGACY_MIGRATIONS_TABLE].exists():
        return
    migrations.ensure_migrations_table(db)
    done = {m.name for m in migrations.applied(db)}
    for (name,) in db.execute(f"SELECT name FROM {LEGACY_MIGRATIONS_TABLE} ORDER BY rowid").fetchall():
        if name not in done:
            migrations._record_applied(db, name)
    db.execute(f"DROP TABLE {LEGACY_MIGRATIONS_TABLE}")


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply pending migrations; return the names applied.

    The whole run holds the write lock (BEGIN IMMEDIATE): two processes starting on one new database
    (``serve`` and ``replay``) would otherwise both see a migration pending and the second would fail
    on "table already exists". sqlite-utils nests each migration's own transaction as a savepoint.
    """
    db = sqlite_utils.Database(conn)
    migrations = _migration_set()
    if not migrations.pending(db) and not db[LEGACY_MIGRATIONS_TABLE].exists():
        return []
    conn.execute("BEGIN IMMEDIATE")
    try:
        _adopt_legacy(db, migrations)
        names = [m.name for m in migrations.pending(db)]
        migrations.apply(db)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return names


class Store:
    """The database: a locked writer connection plus per-thread readers."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = connect(self.path)
        self._write_lock = threading.RLock()
        self._local = threading.local()
        self._all_readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        with self._write_lock:
            migrate(self._writer)

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction on the writer connection (serialised)."""
        with self._write_lock:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextmanager
    def write_lock(self) -> Iterator[sqlite3.Connection]:
        """The writer connection under the writer lock, no transaction opened: each statement is its
        own transaction. For a write that is one statement (one round trip instead of three)."""
        with self._write_lock:
            yield self._writer

    def bulk_load(self, wal_pages: int = 50_000) -> None:
        """Checkpoint the WAL more rarely on the writer (performance only: each checkpoint syncs).

        For ``adherence replay``: fewer, larger checkpoints while it writes a feed. The WAL may grow
        to ``wal_pages`` pages (~200 MB) before it is folded into the database.
        """
        with self._write_lock:
            self._writer.execute(f"PRAGMA wal_autocheckpoint = {int(wal_pages)}")
            self._writer.execute(f"PRAGMA cache_size = -{BULK_CACHE_KIB}")

    @property
    def reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
            with self._readers_lock:
                self._all_readers.append(conn)
        return conn

    @property
    def db(self) -> sqlite_utils.Database:
        """A sqlite-utils view of this thread's reader connection."""
        d = getattr(self._local, "db", None)
        if d is None:
            d = sqlite_utils.Database(self.reader)
            self._local.db = d
        return d

    def query(self, sql: str, params=()) -> list[dict]:
        return [dict(r) for r in self.reader.execute(sql, params)]

    def get_meta(self, key: str) -> str | None:
        row = self.reader.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.write() as conn:
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def check(self) -> str | None:
        """None when the database answers, else the error text (for /health)."""
        try:
            self.reader.execute("SELECT 1 FROM journal LIMIT 1").fetchall()
            return None
        except sqlite3.Error as exc:
            return str(exc)

    def close(self) -> None:
        with self._readers_lock:
            for c in self._all_readers:
                try:
                    c.close()
                except sqlite3.Error:
                    pass
            self._all_readers.clear()
        with self._write_lock:
            self._writer.close()
