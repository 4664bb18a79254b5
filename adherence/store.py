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

import logging
import os
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import sqlite_utils

from . import explore

from .errors import AdherenceError

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 30_000
WAL_AUTOCHECKPOINT_PAGES = 10_000
# After a checkpoint resets the WAL, SQLite cuts the file back to this size instead of keeping its peak.
JOURNAL_SIZE_LIMIT = 16 * 1024 * 1024
# Writes stop (503, Retry-After) while the free space could not absorb the WAL plus this margin: a
# checkpoint copies WAL pages into the main file, which needs room to grow. Refusing early keeps the
# database able to checkpoint, read and purge; writing on until the disk is full wedges it.
DISK_RESERVE_BYTES = 8 * 1024 * 1024
# The service checkpoints from a thread of its own (start_checkpointer) once the WAL holds this much,
# every CHECKPOINT_INTERVAL_S; the writer's autocheckpoint then only steps in past the backstop.
BACKGROUND_CHECKPOINT_BYTES = 4 * 1024 * 1024
CHECKPOINT_INTERVAL_S = 1.0
BACKSTOP_AUTOCHECKPOINT_PAGES = 50_000
# With less free space than this (beyond the WAL) every write first checks whether to checkpoint.
CHECKPOINT_MARGIN_BYTES = 64 * 1024 * 1024
# Databases up to this size get a full quick_check at start; bigger ones a probe of every table's ends.
QUICK_CHECK_MAX_BYTES = 64 * 1024 * 1024
RESTORE_ADVICE = ("stop the service and restore the latest backup (made with sqlite3 <database> \".backup <copy>\"; "
                  "see 'Backups' in README.md and docs/operations.md), or move the file aside to start "
                  "with an empty database")


class StoreError(AdherenceError):
    """The database file cannot be used as it is: the message names the file and what to do."""


class StoreUnavailable(StoreError, sqlite3.OperationalError):
    """Writes are refused for now (file replaced, disk nearly full, read-only, corrupted).

    An ``sqlite3.OperationalError`` so every caller that already answers a database error with a
    503 or a failed tick does so here, and an ``AdherenceError`` so the CLI prints it cleanly.
    """
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
    (
        # what stored results reflect, recorded with them (runner.py): each agent's evaluated-to instant,
        # and per day the versions of the rules and the day's segments it was computed with
        "0004_evaluation_record",
        """
        CREATE TABLE evaluation (worker_sid TEXT PRIMARY KEY, evaluated_to_ms INTEGER NOT NULL) WITHOUT ROWID;
        ALTER TABLE adherence ADD COLUMN rules_version TEXT;
        ALTER TABLE adherence ADD COLUMN schedule_version TEXT;
        ALTER TABLE adherence ADD COLUMN stale INTEGER NOT NULL DEFAULT 0;
        """,
    ),
    (
        # notifications (adherence/notify): the outbox written in the transaction that changes an exception,
        # what was announced per exception and route, snoozes, acknowledgements and their audit history
        "0006_notifications",
        """
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY,
            channel TEXT NOT NULL,
            route TEXT NOT NULL,
            event TEXT NOT NULL,              -- opened, closed, reminder, corrected, removed, test
            exception_id INTEGER,
            worker_sid TEXT,
            agent TEXT,
            payload TEXT NOT NULL,            -- the event as JSON (the webhook body's "exception" and "previous")
            status TEXT NOT NULL DEFAULT 'pending',   -- pending, sent, dead, cancelled
            attempts INTEGER NOT NULL DEFAULT 0,
            created_ms INTEGER NOT NULL,
            next_attempt_ms INTEGER NOT NULL,
            digest_ms INTEGER,
            sent_ms INTEGER,
            last_error TEXT
        );
        CREATE INDEX outbox_pending ON outbox(channel, next_attempt_ms) WHERE status = 'pending';
        CREATE INDEX outbox_pending_agent ON outbox(channel, agent, id) WHERE status = 'pending';
        CREATE INDEX outbox_exception ON outbox(exception_id);
        CREATE TABLE notify_state (
            exception_id INTEGER NOT NULL,
            route TEXT NOT NULL,
            announced_ms INTEGER NOT NULL,
            start_ms INTEGER NOT NULL,
            end_ms INTEGER,
            reminders INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (exception_id, route)
        ) WITHOUT ROWID;
        CREATE TABLE snoozes (
            id INTEGER PRIMARY KEY,
            worker_sid TEXT,
            exception_id INTEGER,
            until_ms INTEGER NOT NULL,
            by TEXT,
            created_ms INTEGER NOT NULL
        );
        CREATE INDEX snoozes_until ON snoozes(until_ms);
        CREATE TABLE acks (
            exception_id INTEGER PRIMARY KEY,
            by TEXT,
            note TEXT,
            at_ms INTEGER NOT NULL
        );
        CREATE TABLE notification_audit (
            id INTEGER PRIMARY KEY,
            at_ms INTEGER NOT NULL,
            action TEXT NOT NULL,             -- ack, unack, snooze, unsnooze, retry
            worker_sid TEXT,
            agent TEXT,
            exception_id INTEGER,
            by TEXT,
            detail TEXT
        );
        CREATE INDEX notification_audit_at ON notification_audit(at_ms);
        """,
    ),
    # the roster beside the results, and views with names, ISO times and seconds (explore.py; README
    # "Explore the data"), written with sqlite-utils' table and view API
    ("0007_explore", explore.create_schema),
    (
        # neutral time (a rule's impact, kept with each exception), period approvals (inputs, like the
        # approval of one exception: a recompute reads them) and the audit history (append only).
        # approval_periods.scope is agent, team or all; target the worker SID or team (NULL for all); mode
        # neutral or in. audit.action is approve, withdraw, period_approve or period_withdraw; detail is JSON.
        "0008_neutral_periods_audit",
        """
        ALTER TABLE exceptions ADD COLUMN impact TEXT NOT NULL DEFAULT 'out';
        ALTER TABLE adherence ADD COLUMN neutral_ms INTEGER NOT NULL DEFAULT 0;
        CREATE TABLE approval_periods (
            id INTEGER PRIMARY KEY,
            scope TEXT NOT NULL,
            target TEXT,
            start_ms INTEGER NOT NULL,
            end_ms INTEGER NOT NULL,
            mode TEXT NOT NULL,
            reason TEXT NOT NULL,
            created_by TEXT,
            created_ms INTEGER NOT NULL,
            withdrawn_by TEXT,
            withdrawn_ms INTEGER
        );
        CREATE INDEX approval_periods_active ON approval_periods(start_ms) WHERE withdrawn_ms IS NULL;
        CREATE TABLE audit (
            id INTEGER PRIMARY KEY,
            at_ms INTEGER NOT NULL,
            by TEXT,
            action TEXT NOT NULL,
            exception_id INTEGER,
            period_id INTEGER,
            worker_sid TEXT,
            agent TEXT,
            day TEXT,
            note TEXT,
            detail TEXT
        );
        CREATE INDEX audit_exception ON audit(exception_id);
        CREATE INDEX audit_worker_day ON audit(worker_sid, day);
        CREATE INDEX audit_at ON audit(at_ms);
        """,
    ),
    (
        # snooze, unsnooze, acknowledge and retry are written to the supervisor audit table (one history
        # with the approvals, shown on the exception, the agent's day and GET /api/audit): the rows of the
        # notifications' own history move there, the acknowledgement's note into audit.note
        "0009_notify_audit",
        """
        INSERT INTO audit (at_ms, by, action, exception_id, worker_sid, agent, day, note, detail)
            SELECT n.at_ms, n.by, n.action, n.exception_id, n.worker_sid, n.agent,
                   (SELECT e.day FROM exceptions e WHERE e.id = n.exception_id),
                   CASE WHEN n.action = 'ack' THEN json_extract(n.detail, '$.note') END,
                   CASE WHEN n.action IN ('ack', 'unack') THEN NULL ELSE n.detail END
            FROM notification_audit n ORDER BY n.at_ms, n.id;
        DROP TABLE notification_audit;
        """,
    ),
    (
        # the journal in compact rows (packed event SIDs, interned strings, records zlib-compressed against a
        # dictionary of the database's own first records) behind a ``journal`` view with the old columns:
        # ~2.3 KB a record on disk became a few hundred bytes (see adherence/journal_format.py)
        "0010_compact_journal",
        lambda db: _compact_journal(db),
    ),
    (
        # each exception's CSV line kept in a table of its own, in the export's order (start, id): the month's
        # export reads stored text in order instead of sorting and formatting ~100k rows (issue #16). Kept by
        # triggers, so every writer of ``exceptions`` keeps it true; (day, start) lets an export find where a
        # date range's rows lie in that order (see queries.exception_csv)
        "0011_exception_lines",
        lambda db: _exception_lines(db),
    ),
    (
        # the RTA dedup key in time order (the record's event time, then its SID): commits append to the
        # index instead of rewriting pages all over it (journal_format.rta_key)
        "0012_journal_time_keys",
        lambda db: _journal_time_keys(db),
    ),
]


def _compact_journal(db: sqlite_utils.Database) -> None:
    from .journal_format import migrate_journal

    migrate_journal(db.conn)


def _journal_time_keys(db: sqlite_utils.Database) -> None:
    from .journal_format import migrate_time_keys

    migrate_time_keys(db.conn)


# -- 0011: stored CSV lines ------------------------------------------------------------------------------
# Part of migration 0011 (frozen once released: a change is a new migration that replaces the triggers).
# The line of one exception exactly as ``queries.exception_csv`` writes it (the bytes of ``csv_lines`` over
# ``exception_row``), in plain SQL so that any connection writing ``exceptions`` keeps it (no Python function
# needed). A cell plain SQL cannot write like the csv module (the formula guard, which depends on Python's
# float(); a value that is not text where text is expected, an instant out of range) makes the whole line
# NULL, as does an open exception (its duration grows with the clock): those lines are made when read.
# The cells have the shape of queries._sql_text and _sql_iso on purpose, not their code: the read path
# may change; what a released migration installs may not (tests/test_exception_lines.py holds both equal).
EXCEPTION_LINE_COLUMNS = ("id", "agent", "worker_sid", "team", "rule", "severity", "scheduled_activity",
                          "actual_activity", "task_state", "start_ms", "end_ms", "day", "approved", "note")


def _line_text(c: str) -> str:
    return (f"CASE WHEN {c} IS NULL THEN '' WHEN typeof({c}) != 'text' OR substr({c}, 1, 1) IN "
            f"('=', '+', '-', '@', char(9), char(13)) OR instr({c}, char(0)) THEN NULL "
            f"WHEN instr({c}, ',') OR instr({c}, '\"') OR instr({c}, char(10)) OR instr({c}, char(13)) "
            f"THEN '\"' || replace({c}, '\"', '\"\"') || '\"' ELSE {c} END")


def _line_iso(c: str) -> str:
    return (f"CASE WHEN typeof({c}) = 'integer' AND {c} >= 0 AND {c} < 253402300800000 "
            f"THEN strftime('%Y-%m-%dT%H:%M:%S', {c} / 1000, 'unixepoch') "
            f"|| CASE WHEN {c} % 1000 THEN printf('.%03d', {c} % 1000) ELSE '' END || 'Z' END")


def exception_line_sql(p: str) -> str:
    """The stored line of the row whose columns are ``{p}id``, ``{p}agent``... (``NEW.`` in a trigger)."""
    t = _line_text
    d = f"max(0, {p}end_ms - {p}start_ms)"
    cells = [
        f"CASE WHEN typeof({p}id) = 'integer' THEN {p}id END", t(f"{p}agent"), t(f"{p}worker_sid"), t(f"{p}team"),
        t(f"{p}rule"), t(f"{p}severity"), t(f"{p}scheduled_activity"), t(f"{p}actual_activity"),
        t(f"{p}task_state"), _line_iso(f"{p}start_ms"), _line_iso(f"{p}end_ms"),
        f"CASE WHEN typeof({d}) = 'integer' AND {d} >= 0 THEN CASE WHEN {d} % 1000 = 0 THEN {d} / 1000 "
        f"ELSE rtrim(printf('%d.%03d', {d} / 1000, {d} % 1000), '0') END END",
        "'closed'",
        f"CASE WHEN typeof({p}approved) = 'integer' THEN CASE WHEN {p}approved THEN 'true' ELSE 'false' END END",
        t(f"{p}note"),
    ]
    line = " || ',' || ".join(f"({c})" for c in cells) + " || char(13, 10)"
    return f"CASE WHEN {p}end_ms IS NULL THEN NULL ELSE {line} END"


def _exception_lines(db: sqlite_utils.Database) -> None:
    new = exception_line_sql("NEW.")
    put = f"INSERT OR REPLACE INTO exception_lines (start_ms, id, day, line) VALUES (NEW.start_ms, NEW.id, NEW.day, {new})"
    gone = "DELETE FROM exception_lines WHERE start_ms = OLD.start_ms AND id = OLD.id"
    for sql in (
        # the export's order is the key: a range of it is one walk of this table, no sort, no lookup
        "CREATE TABLE exception_lines (start_ms INTEGER NOT NULL, id INTEGER NOT NULL, day TEXT NOT NULL, "
        "line TEXT, PRIMARY KEY (start_ms, id)) WITHOUT ROWID",
        f"INSERT INTO exception_lines (start_ms, id, day, line) SELECT start_ms, id, day, {exception_line_sql('')} "
        "FROM exceptions",
        f"CREATE TRIGGER exception_lines_insert AFTER INSERT ON exceptions BEGIN {put}; END",
        f"CREATE TRIGGER exception_lines_update AFTER UPDATE OF {', '.join(EXCEPTION_LINE_COLUMNS)} ON exceptions "
        f"BEGIN {gone}; {put}; END",
        f"CREATE TRIGGER exception_lines_delete AFTER DELETE ON exceptions BEGIN {gone}; END",
        # (day) becomes (day, start_ms): the same searches, plus a date range's first and last start in a few seeks
        "CREATE INDEX exceptions_day_start ON exceptions(day, start_ms)",
        "DROP INDEX exceptions_day",
    ):
        db.execute(sql)


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
    conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
    conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def connect_read_only(path: Path | str, immutable: bool = False) -> sqlite3.Connection:
    """A connection that never writes, for a file (or directory) this process may not write.

    ``immutable`` for a file on a read-only file system: without it SQLite cannot open a WAL-mode
    database whose ``-shm`` it may not create; nothing can change such a file under us anyway.
    """
    uri = Path(path).resolve().as_uri() + ("?mode=ro&immutable=1" if immutable else "?mode=ro")
    conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False,
                           isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
    return conn


_CORRUPT_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB (extended codes keep these in the low byte)


def _is_corruption(exc: BaseException) -> bool:
    """Damage to the file, not a bad statement ("malformed JSON" from a json function is not)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _CORRUPT_CODES
    text = str(exc).lower()
    return ("database disk image is malformed" in text or "file is not a database" in text
            or "malformed database schema" in text)


class _Refusing:
    """Stands in for the writer while writes are refused: every statement raises the reason."""

    def __init__(self, error: StoreUnavailable):
        self.error = error

    def execute(self, *args, **kwargs):
        raise self.error

    executemany = executescript = execute


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

    def __init__(self, path: Path | str, *, probe: bool = True):
        self.path = Path(path)
        self.memory = str(path) == ":memory:"
        self.read_only = False
        self._immutable = False
        self.corruption: str | None = None  # sticky: set by the start probe or any "malformed" error
        self._identity: tuple[int, int] | None = None
        self._write_lock = threading.RLock()
        self._checkpointer: threading.Thread | None = None
        self._checkpointer_stop = threading.Event()
        self._local = threading.local()
        self._all_readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._space_error: str | None = None
        self._dir = str(self.path.parent)
        self._wal = str(self.path) + "-wal"
        if not self.memory:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"database {self.path}: cannot create its directory ({exc.strerror})") from None
        try:
            self._writer = connect(self.path)
            with self._write_lock:
                migrate(self._writer)
        except sqlite3.DatabaseError as exc:
            if _is_corruption(exc):
                raise StoreError(f"database {self.path} is corrupted ({exc}): {RESTORE_ADVICE}") from None
            if not self._open_read_only(exc):
                raise StoreError(f"database {self.path} cannot be opened for writing ({exc}): check that the "
                                 f"file and its directory exist and belong to the user running adherence") from None
        if not self.memory:
            st = os.stat(self.path)
            self._identity = (st.st_dev, st.st_ino)
        if probe:
            self.corruption = self._probe()
            if self.corruption:
                log.error("database %s failed its integrity probe: %s", self.path, self.corruption,
                          extra={"event": "database_corrupt"})

    def _open_read_only(self, exc: sqlite3.DatabaseError) -> bool:
        """Fall back to reading when the file exists but may not be written (reports still work)."""
        if self.memory or not self.path.exists():
            return False
        try:
            try:
                conn = connect_read_only(self.path)
                conn.execute("SELECT 1 FROM sqlite_master").fetchall()
            except sqlite3.OperationalError:
                if not os.statvfs(self.path.parent).f_flag & os.ST_RDONLY:
                    raise
                conn = connect_read_only(self.path, immutable=True)
                self._immutable = True
            db = sqlite_utils.Database(conn)
            missing = [m.name for m in _migration_set().pending(db)]
        except sqlite3.DatabaseError as again:
            if _is_corruption(again):
                raise StoreError(f"database {self.path} is corrupted ({again}): {RESTORE_ADVICE}") from None
            return False
        if missing:
            conn.close()
            raise StoreError(f"database {self.path} is read-only ({exc}) and needs upgrading "
                             f"({', '.join(missing)}): run adherence once with write access to it") from None
        log.warning("database %s is read-only (%s): reads only", self.path, exc, extra={"event": "database_read_only"})
        self._writer = conn
        self.read_only = True
        return True

    def _probe(self) -> str | None:
        """A start-up integrity probe, cheap enough for every start: a full ``quick_check`` on a small
        file, else the schema and both ends of every table and index. None when nothing is wrong."""
        if self.memory:
            return None
        try:
            conn = self._writer
            if self.path.stat().st_size <= QUICK_CHECK_MAX_BYTES:
                rows = [r[0] for r in conn.execute("PRAGMA quick_check(5)")]
                return None if rows == ["ok"] else "; ".join(rows)
            tables = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall()
            for name, sql in tables:
                quoted = '"' + name.replace('"', '""') + '"'
                if "WITHOUT ROWID" in (sql or "").upper():  # no rowid: its first leaf is enough
                    conn.execute(f"SELECT * FROM {quoted} LIMIT 1").fetchall()
                    continue
                conn.execute(f"SELECT * FROM {quoted} ORDER BY rowid LIMIT 1").fetchall()
                conn.execute(f"SELECT * FROM {quoted} ORDER BY rowid DESC LIMIT 1").fetchall()
            return None
        except sqlite3.DatabaseError as exc:
            if _is_corruption(exc):
                return str(exc)
            # busy or locked (a VACUUM elsewhere): not damage, and the flag would stick for the whole run
            log.warning("database %s: integrity probe skipped: %s", self.path, exc, extra={"event": "probe_skipped"})
            return None

    # -- why writes may be refused ------------------------------------------------------
    def identity_error(self) -> str | None:
        """Why the file this process holds is no longer the configured path, or None.

        After ``rm`` the writer would go on committing into the unlinked inode, and after a
        ``mv`` over it into the old file while new readers open the new one: acknowledged
        records would be lost either way.
        """
        if self._identity is None:
            return None
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return (f"the database file {self.path} was deleted while in use; restore it (or its backup) "
                    f"and restart the service")
        except OSError as exc:
            return f"the database file {self.path} cannot be checked: {exc.strerror}"
        if (st.st_dev, st.st_ino) != self._identity:
            return (f"the database file {self.path} was replaced by another file while in use; "
                    f"restart the service to use the new file")
        return None

    def file_status(self) -> dict:
        """Sizes and free space, for /health and /metrics (None when not applicable)."""
        if self.memory:
            return {"size_bytes": None, "wal_bytes": None, "free_bytes": None}

        def size(p: Path) -> int | None:
            try:
                return os.stat(p).st_size
            except OSError:
                return None

        try:
            vfs = os.statvfs(self.path.parent)
            free = vfs.f_bavail * vfs.f_frsize
        except OSError:
            free = None
        return {"size_bytes": size(self.path), "wal_bytes": size(Path(str(self.path) + "-wal")), "free_bytes": free}

    def _checkpoint(self, mode: str = "TRUNCATE") -> bool:
        """Fold the WAL into the main file; True when it was complete. Never raises."""
        try:
            busy, _, _ = self._writer.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
            return busy == 0
        except sqlite3.Error as exc:
            log.warning("checkpoint failed: %s", exc, extra={"event": "checkpoint_failed"})
            return False

    def _space_check(self) -> str | None:
        """Why writing now could wedge the database on a full disk, or None. Under the writer lock.

        When free space gets tight the WAL is checkpointed (TRUNCATE) first, which moves its pages into
        the main file and frees the WAL's own space; writes are refused only if that is not enough.
        Nothing is remembered: once space is freed the next write goes through.
        """
        if self.memory:
            return None
        # the common case in two system calls: plenty of room beyond the WAL
        try:
            vfs = os.statvfs(self._dir)
        except OSError:
            return None  # the directory is gone: identity_error says so
        free = vfs.f_bavail * vfs.f_frsize
        try:
            wal = os.stat(self._wal).st_size
        except OSError:
            wal = 0
        if free - wal >= CHECKPOINT_MARGIN_BYTES:
            self._space_error = None
            return None
        if wal and free < wal + DISK_RESERVE_BYTES:
            self._checkpoint("TRUNCATE")
            status = self.file_status()
            free, wal = status["free_bytes"] or 0, status["wal_bytes"] or 0
        if free < wal + DISK_RESERVE_BYTES:
            self._space_error = (f"disk nearly full: {free // 1024} KiB free on the file system of "
                                 f"{self.path} (WAL {wal // 1024} KiB); writes resume by themselves once space is freed")
            return self._space_error
        self._space_error = None
        return None

    def require_sound(self) -> None:
        """For a CLI verb: stop with the reason (naming the file) when the start probe found damage."""
        if self.corruption:
            raise StoreError(f"database {self.path} is corrupted ({self.corruption}): {RESTORE_ADVICE}")

    def require_writable(self) -> None:
        """For a CLI verb that writes: stop, naming the file, rather than fail halfway."""
        self.require_sound()
        if self.read_only:
            raise StoreError(f"database {self.path} is read-only for this process; this command writes to it: "
                             f"run it as the user that owns the file, on a writable file system")

    def write_refusal(self) -> str | None:
        """Why writes are refused right now, or None. Under the writer lock (see ``write``)."""
        if self.read_only:
            return f"the database {self.path} is read-only for this process"
        if self.corruption:
            return f"the database {self.path} is corrupted ({self.corruption}): {RESTORE_ADVICE}"
        return self.identity_error() or self._space_check()

    def _writer_or_refusal(self):
        reason = self.write_refusal()
        if reason is None:
            return self._writer
        return _Refusing(StoreUnavailable(reason))

    def _note_error(self, exc: BaseException) -> None:
        if isinstance(exc, sqlite3.DatabaseError) and _is_corruption(exc) and not self.corruption:
            self.corruption = str(exc)
            log.error("database %s is corrupted: %s", self.path, exc, extra={"event": "database_corrupt"})

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction on the writer connection (serialised)."""
        with self._write_lock:
            conn = self._writer_or_refusal()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                self._note_error(exc)
                raise
            try:
                yield conn
            except BaseException as exc:
                self._note_error(exc)
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # SQLITE_FULL and friends may have rolled it back already
                raise
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._note_error(exc)
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    @contextmanager
    def write_lock(self) -> Iterator[sqlite3.Connection]:
        """The writer connection under the writer lock, no transaction opened: each statement is its
        own transaction. For a write that is one statement (one round trip instead of three).
        While writes are refused the connection given raises the reason at its first statement."""
        with self._write_lock:
            yield self._writer_or_refusal()

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
        """This thread's read connection. Refused (StoreUnavailable) once the file was replaced or
        deleted: answering from another file than the writer's would show data that is not being kept."""
        reason = self.identity_error()
        if reason is not None:
            raise StoreUnavailable(reason)
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect_read_only(self.path, self._immutable) if self.read_only else connect(self.path)
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
        """None when the database answers and takes writes, else why not (for /health)."""
        try:
            self.reader.execute("SELECT 1 FROM journal LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            self._note_error(exc)
            if not self.corruption:  # (damage found by this very read is said as damage, below)
                return str(exc)
        if self.corruption:
            return f"the database {self.path} is corrupted ({self.corruption}): {RESTORE_ADVICE}"
        if self.read_only:
            return f"the database {self.path} is read-only for this process"
        if self._write_lock.acquire(timeout=1):
            try:
                return self._space_check()
            finally:
                self._write_lock.release()
        return self._space_error

    def integrity_check(self) -> list[str]:
        """``PRAGMA integrity_check``: every page and index (slow on a big file). ["ok"] when sound."""
        return _integrity_check(self._writer)

    def start_checkpointer(self, interval_s: float = CHECKPOINT_INTERVAL_S) -> None:
        """Fold the WAL into the main file from a thread of its own, PASSIVE (never waiting for the writer
        or readers), whenever it holds more than ``BACKGROUND_CHECKPOINT_BYTES``. The writer's own
        autocheckpoint, which runs inside a commit (with the writer held, a webhook waiting behind it) and
        took up to a second on a big WAL, is then only a backstop. For the long-running service."""
        if self.memory or self._checkpointer is not None:
            return
        with self._write_lock:
            self._writer.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_AUTOCHECKPOINT_PAGES}")

        def run() -> None:
            conn = None
            try:
                while not self._checkpointer_stop.wait(interval_s):
                    try:
                        if os.stat(self._wal).st_size < BACKGROUND_CHECKPOINT_BYTES:
                            continue
                    except OSError:
                        continue
                    try:
                        conn = conn or connect(self.path)
                        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    except sqlite3.Error as exc:
                        log.warning("background checkpoint failed: %s", exc, extra={"event": "checkpoint_failed"})
            finally:
                if conn is not None:
                    conn.close()

        self._checkpointer = threading.Thread(target=run, name="adherence-checkpoint", daemon=True)
        self._checkpointer.start()

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer_stop.set()
            self._checkpointer.join(timeout=10)
            self._checkpointer = None
        with self._readers_lock:
            for c in self._all_readers:
                try:
                    c.close()
                except sqlite3.Error:
                    pass
            self._all_readers.clear()
        with self._write_lock:
            self._writer.close()


def _integrity_check(conn: sqlite3.Connection) -> list[str]:
    try:
        return [r[0] for r in conn.execute("PRAGMA integrity_check(100)")]
    except sqlite3.DatabaseError as exc:
        return [str(exc)]


def check_file(path: Path | str) -> list[str]:
    """``PRAGMA integrity_check`` of the database at ``path`` without changing it (no migration, no
    file created): ["ok"] when sound, else SQLite's findings. For ``adherence check --database``."""
    path = Path(path)
    try:
        conn = connect_read_only(path)
    except sqlite3.Error as exc:
        try:
            if not os.statvfs(path.parent).f_flag & os.ST_RDONLY:
                return [str(exc)]
            conn = connect_read_only(path, immutable=True)
        except (OSError, sqlite3.Error) as again:
            return [str(again)]
    try:
        return _integrity_check(conn)
    finally:
        conn.close()
