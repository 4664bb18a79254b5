"""The journal's storage format: compact rows behind a ``journal`` view.

The journal was one wide table (34-character event and worker SIDs as text, the
record as JSON text, a unique index on the event SID text): ~2.3 KB a record on
disk. Now (migration ``0010_compact_journal``):

* ``journal_rows``: one row a record. The event SID as 18 bytes (its two-letter
  prefix and its 32 hex digits as 16 bytes; any other form stays text), the
  worker, activity, task and channel summary as small integers into
  ``journal_strings``, and the raw record zlib-compressed against a dictionary
  built from this database's own first records (``journal_dicts``: the account,
  workspace, activity and queue SIDs and the field names repeat in every record).
* ``journal_strings``: every worker SID, activity name, task state and reduced
  channel list once.
* indexes: the event SID (unique: duplicates), (worker, time) (timelines) and time
  (retention, the since-load): three as before, but on 18-byte and integer keys.
* ``journal``: a view with the old columns (``id, event_sid, worker_sid, at_ms,
  received_ms, flagged, activity, task, record``), so every reader of the journal
  reads it unchanged. Its ``record`` is ``{"channels": [...]}`` with what the live
  board's channel summary reads (task channel name, availability, capacities and
  each reservation's two statuses); the whole record as received is
  ``raw_record(conn, raw)`` of ``journal_rows.raw``. ``INSERT`` and ``DELETE`` on
  the view work (triggers), for tools and tests; the service writes the tables.

Nothing here takes a lock or opens a transaction: the callers hold the writer.
"""

from __future__ import annotations

import json
import re
import time
import zlib
from collections import deque
from typing import Any

_SID = re.compile(r"(.{1,16}?)([0-9a-f]{32})\Z", re.S)

KIND_RTA, KIND_EVENT, KIND_DERIVED = 0, 1, 2
TIME_KEY = b"\x00"  # first byte of an RTA record's time-ordered key (``rta_key``); other keys start with a SID's

WBITS = -12  # a 4 KiB window: the dictionary fits, a record rarely goes beyond
DICT_BYTES = 4096 - 262  # zlib uses at most the window less its look-ahead
DICT_AFTER = (64_000, 8_000_000, 64_000_000)  # bytes of records seen before dictionaries 1, 2 and 3 are made
RECENT = 400  # the records a dictionary is made from: the latest seen
_SHAPE = re.compile(rb"[0-9a-f]{32}|[0-9]")
SUBSTITUTED = 0x80  # format byte: the event SID, worker SID and record time are placeholders in the text
ENVELOPE = 0x40  # format byte: the text is the body as received, an envelope of this one record
# placeholders: control characters never appear raw in the JSON text (the encoder escapes them)
_P_SID, _P_WORKER, _P_AT = '"\x01"', '"\x02"', '"\x03"'
LEVEL = 6

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

SCHEMA = [
    "CREATE TABLE journal_strings (id INTEGER PRIMARY KEY, s TEXT NOT NULL UNIQUE)",
    "CREATE TABLE journal_dicts (id INTEGER PRIMARY KEY, zdict BLOB NOT NULL)",
    """CREATE TABLE journal_rows (
        id INTEGER PRIMARY KEY,
        sid,
        worker INTEGER NOT NULL,
        at_ms INTEGER NOT NULL,
        received_ms INTEGER NOT NULL,
        flagged INTEGER NOT NULL DEFAULT 0,
        kind INTEGER NOT NULL DEFAULT 0,
        activity INTEGER NOT NULL,
        task INTEGER NOT NULL,
        chan INTEGER,
        raw NOT NULL
    )""",
    "CREATE UNIQUE INDEX journal_rows_sid ON journal_rows(sid) WHERE sid IS NOT NULL",
    "CREATE INDEX journal_rows_worker_at ON journal_rows(worker, at_ms)",
    "CREATE INDEX journal_rows_at ON journal_rows(at_ms)",
]

VIEW = [
    """CREATE VIEW journal AS
    SELECT r.id AS id,
           CASE WHEN typeof(r.sid) != 'blob' THEN r.sid
                WHEN substr(r.sid, 1, 1) = x'00'
                THEN CAST(substr(r.sid, 8, length(r.sid) - 23) AS TEXT) || lower(hex(substr(r.sid, -16)))
                ELSE CAST(substr(r.sid, 1, length(r.sid) - 16) AS TEXT) || lower(hex(substr(r.sid, -16)))
                END AS event_sid,
           w.s AS worker_sid,
           r.at_ms AS at_ms,
           r.received_ms AS received_ms,
           r.flagged AS flagged,
           (SELECT s FROM journal_strings WHERE id = r.activity) AS activity,
           (SELECT s FROM journal_strings WHERE id = r.task) AS task,
           CASE WHEN typeof(r.raw) = 'text' THEN r.raw
                ELSE '{"channels":' || COALESCE((SELECT s FROM journal_strings WHERE id = r.chan), 'null') || '}'
                END AS record
    FROM journal_rows r JOIN journal_strings w ON w.id = r.worker""",
    """CREATE TRIGGER journal_insert INSTEAD OF INSERT ON journal BEGIN
        INSERT OR IGNORE INTO journal_strings (s) VALUES (NEW.worker_sid);
        INSERT OR IGNORE INTO journal_strings (s) VALUES (NEW.activity);
        INSERT OR IGNORE INTO journal_strings (s) VALUES (NEW.task);
        INSERT INTO journal_rows (id, sid, worker, at_ms, received_ms, flagged, kind, activity, task, chan, raw)
        VALUES (NEW.id, NEW.event_sid, (SELECT id FROM journal_strings WHERE s = NEW.worker_sid), NEW.at_ms,
                NEW.received_ms, COALESCE(NEW.flagged, 0),
                CASE WHEN NEW.record LIKE '{"source":"derived"%' THEN 2 WHEN NEW.record LIKE '{"source":%' THEN 1
                     ELSE 0 END,
                (SELECT id FROM journal_strings WHERE s = NEW.activity),
                (SELECT id FROM journal_strings WHERE s = NEW.task), NULL, NEW.record);
    END""",
    """CREATE TRIGGER journal_delete INSTEAD OF DELETE ON journal BEGIN
        DELETE FROM journal_rows WHERE id = OLD.id;
    END""",
]


def sid_key(sid: str | None):
    """The stored form of an event SID: bytes (prefix + 16 bytes) for ``XX`` + 32 lowercase hex digits."""
    if sid is None:
        return None
    m = _SID.match(sid)
    if m is None:
        return sid
    return m.group(1).encode("utf-8") + bytes.fromhex(m.group(2))


def rta_key(sid: str | None, stated_ms: int | None):
    """The stored form of an RTA record's event SID: the record's own event time first, then the SID.

    The dedup index is then in time order: a replay or the live feed appends to its end instead of
    rewriting index pages all over the file at each commit (a random 16-byte key lands on a different
    page every time). A redelivery of a record is the same record, so it has the same key; the time is
    the record's ``date_last_processed_event`` as written, not the row's ``at_ms`` (which is the receipt
    time when that date is unusable or ahead of the receipt: a redelivery is received at another time).
    ``stated_ms`` None (no usable date) and dates before 1970 or after 10889 take 0. ``TIME_KEY`` + 6
    bytes of milliseconds, big-endian + ``sid_key(sid)``; a SID not in the ``XX`` + 32 hex digits form
    stays text, as ``sid_key`` leaves it."""
    key = sid_key(sid)
    return time_key(key, stated_ms) if type(key) is bytes else key


def time_key(key: bytes, stated_ms: int | None) -> bytes:
    t = stated_ms if stated_ms is not None and 0 < stated_ms < 1 << 48 else 0
    return TIME_KEY + t.to_bytes(6, "big") + key


def stated_ms(rec) -> int | None:
    """The event time a feed record states (``date_last_processed_event``), even where the row's
    ``at_ms`` took the receipt time instead; None when it states none that parses."""
    if not rec.flagged:
        return rec.at_ms
    from .feed import _instant_ms

    try:
        return _instant_ms(rec.raw.get("date_last_processed_event"))
    except (ValueError, OverflowError, TypeError, AttributeError):
        return None


def sid_text(key) -> str | None:
    if key is None or isinstance(key, str):
        return key
    key = bytes(key)
    if key[:1] == TIME_KEY:
        key = key[7:]
    return key[:-16].decode("utf-8") + key[-16:].hex()


def reduced_channels(channels: Any) -> str:
    """What ``feed._channel_summary`` reads of a channel list, as JSON (interned: few distinct values)."""
    if not isinstance(channels, list):
        return "null"
    out = []
    for ch in channels:
        if not isinstance(ch, dict):
            continue
        c = {k: ch[k] for k in ("task_channel_name", "available", "available_capacity", "capacity") if k in ch}
        res = ch.get("reservations")
        if isinstance(res, list):
            c["reservations"] = [
                {k: r[k] for k in ("status", "task_assignment_status") if k in r} if isinstance(r, dict) else None
                for r in res
            ]
        out.append(c)
    return _encode(out)


class Codec:
    """Compresses records against this database's dictionaries; decompresses any stored form.

    Dictionary 0 is none. Dictionaries 1, 2, 3 are made from the records seen recently once 64 KB,
    8 MB and 64 MB of records went through (the first records of a day are status changes only; the
    later dictionaries know the reservations and channels of a busy hour), kept in ``journal_dicts``:
    every process reads the same ones, and a row names the one it was compressed with."""

    def __init__(self):
        self._dicts: dict[int, bytes | None] = {0: None}
        self._primed: dict[int, Any] = {}
        self._current = 0
        self._recent: deque[bytes] = deque(maxlen=RECENT)
        self._seen = 0

    def load(self, conn) -> None:
        for i, z in conn.execute("SELECT id, zdict FROM journal_dicts"):
            self._dicts[i] = bytes(z)
        if len(self._dicts) > 1:
            self._current = max(self._dicts)

    def compress(self, text: str, sid: str | None = None, worker: str | None = None, at_ms: int | None = None,
                 envelope: bool = False) -> bytes:
        """The stored form of a record's JSON text: what the row's columns hold (its event SID, worker SID
        and time, wherever they appear whole as strings) becomes a placeholder, the rest is deflated."""
        head, d, data = self.prepare(text, sid, worker, at_ms, envelope)
        return head + deflate(self._primed, self._dicts, d, data)

    def prepare(self, text: str, sid: str | None = None, worker: str | None = None, at_ms: int | None = None,
                envelope: bool = False) -> tuple[bytes, int, bytes]:
        """``compress`` but the deflating: (the format byte, the dictionary's id, the bytes to deflate).
        ``head + deflate(..., d, data)`` is what ``compress`` returns."""
        data = substituted(text, sid, worker, at_ms).encode("utf-8", "surrogatepass")
        d = self._current
        if d < len(DICT_AFTER):
            self._recent.append(data)
            self._seen += len(data)
        return _HEADS[d | SUBSTITUTED | (ENVELOPE if envelope else 0)], d, data

    def wants_dict(self) -> bool:
        return self._current < len(DICT_AFTER) and self._seen >= DICT_AFTER[self._current]

    def make_dict(self, conn) -> tuple[int, bytes]:
        """The next dictionary: another process's, or made now from the records seen. Call it in a
        transaction of its own and ``adopt`` what it returns once that committed (rows must never name
        a dictionary a rollback took away)."""
        d = self._current + 1
        row = conn.execute("SELECT zdict FROM journal_dicts WHERE id = ?", (d,)).fetchone()
        if row is not None:
            return d, bytes(row[0])
        z = build_dict(list(self._recent))
        conn.execute("INSERT INTO journal_dicts (id, zdict) VALUES (?, ?)", (d, z))
        return d, z

    def adopt(self, made: tuple[int, bytes]) -> None:
        d, z = made
        self._dicts[d] = z
        self._current = max(self._current, d)

    def decode(self, conn, raw, sid=None, worker: str | None = None, at_ms: int | None = None) -> str:
        """The record as received (its JSON text) from ``journal_rows.raw`` and the row's ``sid``,
        worker SID and ``at_ms``."""
        if isinstance(raw, str):
            return raw
        raw = bytes(raw)
        d = raw[0] & ~(SUBSTITUTED | ENVELOPE)
        if d not in self._dicts:
            self.load(conn)
        z = self._dicts[d]
        o = zlib.decompressobj(WBITS, z) if z is not None else zlib.decompressobj(WBITS)
        text = (o.decompress(raw[1:]) + o.flush()).decode("utf-8", "surrogatepass")
        if raw[0] & SUBSTITUTED:
            if _P_SID in text:
                text = text.replace(_P_SID, f'"{sid_text(sid)}"')
            if _P_WORKER in text:
                text = text.replace(_P_WORKER, f'"{worker}"')
            if _P_AT in text:
                text = text.replace(_P_AT, f'"{iso_ms(at_ms)}"')
        if raw[0] & ENVELOPE:
            text = _encode(json.loads(text)["records"][0])
        return text


_HEADS = [bytes((i,)) for i in range(256)]


def deflate(primed: dict, dicts: dict, d: int, data: bytes) -> bytes:
    """``data`` deflated against dictionary ``d`` of ``dicts``; ``primed`` keeps a compressor with each
    dictionary loaded, copied for each record (cheaper than loading the dictionary)."""
    c = primed.get(d)
    if c is None:
        z = dicts[d]
        c = primed[d] = (zlib.compressobj(LEVEL, zlib.DEFLATED, WBITS, 8, zlib.Z_DEFAULT_STRATEGY, z)
                         if z is not None else zlib.compressobj(LEVEL, zlib.DEFLATED, WBITS))
    c = c.copy()
    return c.compress(data) + c.flush()


class Deflater:
    """Deflates prepared records (``Codec.prepare``) in a child process: ``adherence replay`` parses and
    writes on one core while the other compresses. Results come back in the order sent.

    ``send`` a list of (dictionary id, bytes), then ``receive`` one list of deflated bytes for each send, in
    order. At most ``IN_FLIGHT`` lists are out at once (``send`` receives the oldest first), as many as the
    pipes hold."""

    IN_FLIGHT = 8

    def __init__(self):
        import os
        import subprocess
        import sys
        from multiprocessing.connection import Connection
        from pathlib import Path

        jobs_r, jobs_w = os.pipe()
        out_r, out_w = os.pipe()
        # room for every list in flight: a send does not wait for the child. Without it, one list at a time
        # (the child could otherwise block writing results while this process blocks writing it work)
        if not all([_pipe_size(fd, 1 << 20) for fd in (jobs_w, out_w)]):
            self.IN_FLIGHT = 1
        # a plain interpreter running this module (multiprocessing's spawn would import the caller's main script)
        root = str(Path(__file__).resolve().parents[1])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", "import sys; from adherence.journal_format import _deflate_child; "
                 "_deflate_child(int(sys.argv[1]), int(sys.argv[2]))", str(jobs_r), str(out_w)],
                pass_fds=(jobs_r, out_w), env=env, stdin=subprocess.DEVNULL)
        finally:
            os.close(jobs_r)
            os.close(out_w)
        self._jobs, self._results = Connection(jobs_w, readable=False), Connection(out_r, writable=False)
        self._known: set[int] = set()
        self._out = 0
        self._ready: deque[list[bytes]] = deque()

    def send(self, codec: Codec, jobs: list[tuple[int, bytes]]) -> None:
        if self._out >= self.IN_FLIGHT:
            self._ready.append(self._recv())
        new = {d: codec._dicts[d] for d, _ in jobs if d not in self._known}
        self._known.update(new)
        self._jobs.send((new, jobs))
        self._out += 1

    def receive(self) -> list[bytes]:
        return self._ready.popleft() if self._ready else self._recv()

    def _recv(self) -> list[bytes]:
        try:
            out = self._results.recv()
        except EOFError:
            raise RuntimeError(f"the compression process ended (exit code {self._proc.poll()})") from None
        self._out -= 1
        if isinstance(out, BaseException):
            raise out
        return out

    def close(self) -> None:
        try:
            self._jobs.send(None)
        except OSError:
            pass
        self._jobs.close()
        self._results.close()
        try:
            self._proc.wait(5)
        except Exception:
            self._proc.kill()
            self._proc.wait()


def _deflate_child(jobs_fd: int, results_fd: int) -> None:
    from multiprocessing.connection import Connection

    jobs, results = Connection(jobs_fd, writable=False), Connection(results_fd, readable=False)
    dicts: dict[int, bytes | None] = {0: None}
    primed: dict = {}
    while True:
        try:
            msg = jobs.recv()
        except EOFError:
            return
        if msg is None:
            return
        new, work = msg
        dicts.update(new)
        try:
            out = [deflate(primed, dicts, d, data) for d, data in work]
        except Exception as exc:  # (said to the parent, which raises it)
            out = exc
        results.send(out)


def _pipe_size(fd: int, size: int) -> bool:
    try:
        import fcntl

        return fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), size) >= size
    except (ImportError, OSError):
        return False


def substituted(text: str, sid: str | None, worker: str | None, at_ms: int | None) -> str:
    """``text`` with the row's event SID, worker SID and time (as whole JSON strings) as placeholders."""
    if sid is not None:
        text = text.replace(f'"{sid}"', _P_SID)
    if worker is not None:
        text = text.replace(f'"{worker}"', _P_WORKER)
    if at_ms is not None:
        text = text.replace(f'"{iso_ms(at_ms)}"', _P_AT)
    return text


_SECOND: tuple = (None, "")  # the last second formatted (records come in time order); replaced whole


def iso_ms(at_ms: int) -> str:
    """Twilio's timestamp form, ``2026-11-24T17:41:15.510Z``."""
    global _SECOND
    sec = at_ms // 1000
    last = _SECOND
    if last[0] != sec:
        last = _SECOND = (sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)))
    return f"{last[1]}.{at_ms % 1000:03d}Z"


def build_dict(sample: list[bytes]) -> bytes:
    """A preset dictionary from sample records: one of each shape (the record with its SIDs, times and
    numbers taken out), the most frequent shapes (weighted by length) nearest the end, where zlib finds
    matches cheapest, up to the window."""
    counts: dict[bytes, int] = {}
    rep: dict[bytes, bytes] = {}
    for t in sample:
        k = _SHAPE.sub(b"", t)
        counts[k] = counts.get(k, 0) + 1
        rep.setdefault(k, t)
    picked: list[bytes] = []
    size = 0
    for k in sorted(counts, key=lambda k: counts[k] * len(k), reverse=True):
        t = rep[k]
        if size + len(t) <= DICT_BYTES:
            picked.append(t)
            size += len(t)
    return b"".join(reversed(picked)) or b"{}"


def raw_record(conn, row_id: int, codec: Codec | None = None) -> str | None:
    """The journaled record of row ``row_id`` as received (its JSON text), whatever form it is stored in."""
    row = conn.execute(
        "SELECT r.raw, r.sid, w.s, r.at_ms FROM journal_rows r JOIN journal_strings w ON w.id = r.worker"
        " WHERE r.id = ?", (row_id,)).fetchone()
    if row is None:
        return None
    raw, sid, worker, at = row
    return (codec or Codec()).decode(conn, raw, sid, worker, at)


class Interner:
    """Ids of ``journal_strings``, remembered. Forgotten after a rollback (an id made in it is gone)."""

    def __init__(self):
        self._ids: dict[str, int] = {}

    def id(self, conn, s: str) -> int:
        i = self._ids.get(s)
        if i is None:
            row = conn.execute("SELECT id FROM journal_strings WHERE s = ?", (s,)).fetchone()
            if row is None:  # (OR IGNORE: another process may have added it since)
                conn.execute("INSERT OR IGNORE INTO journal_strings (s) VALUES (?)", (s,))
                row = conn.execute("SELECT id FROM journal_strings WHERE s = ?", (s,)).fetchone()
            i = self._ids[s] = row[0]
        return i

    def known(self, conn, s: str) -> int | None:
        i = self._ids.get(s)
        if i is None:
            row = conn.execute("SELECT id FROM journal_strings WHERE s = ?", (s,)).fetchone()
            if row is None:
                return None
            i = self._ids[s] = row[0]
        return i

    def forget(self) -> None:
        self._ids.clear()


def migrate_journal(conn) -> None:
    """``0010_compact_journal``: the wide ``journal`` table becomes ``journal_rows`` + the view.

    Ids are kept (the evaluation watermark counts on them), each record compressed, its SID packed."""
    for sql in SCHEMA:
        conn.execute(sql)
    codec, names = Codec(), Interner()
    # the dictionary from the first records (the database's own SIDs and field names)
    sample = [substituted(record, sid, worker, at).encode("utf-8", "surrogatepass") for record, sid, worker, at in conn.execute(
        "SELECT record, event_sid, worker_sid, at_ms FROM journal WHERE record NOT LIKE '{\"source\":%'"
        " ORDER BY id DESC LIMIT 400")]
    if sample:
        codec._recent.extend(sample)
        codec._seen = DICT_AFTER[0]
        codec.adopt(codec.make_dict(conn))
    last = 0
    while True:
        rows = conn.execute(
            "SELECT id, event_sid, worker_sid, at_ms, received_ms, flagged, activity, task, record FROM journal "
            "WHERE id > ? ORDER BY id LIMIT 5000", (last,)).fetchall()
        if not rows:
            break
        out = []
        for jid, sid, worker, at, received, flagged, activity, task, record in rows:
            try:
                chans = json.loads(record).get("channels")
            except (ValueError, AttributeError):
                chans = None
            kind = (KIND_DERIVED if record.startswith('{"source":"derived"') else
                    KIND_EVENT if record.startswith('{"source":') else KIND_RTA)
            out.append((jid, sid_key(sid), names.id(conn, worker), at, received, flagged, kind,
                        names.id(conn, activity), names.id(conn, task), names.id(conn, reduced_channels(chans)),
                        codec.compress(record, sid, worker, at)))
        conn.executemany(INSERT_ROW_WITH_ID, out)
        last = rows[-1][0]
    conn.execute("DROP TABLE journal")
    for sql in VIEW:
        conn.execute(sql)


def migrate_time_keys(conn) -> None:
    """``0012_journal_time_keys``: every RTA row's event-SID key becomes ``rta_key`` (time first).

    A row's stated time is its ``at_ms`` unless the row is flagged (the receipt time stood in): then it
    is read from the record itself. The view is made again (it decodes both key forms)."""
    conn.create_function("adherence_time_key", 2, lambda key, t: time_key(bytes(key), t), deterministic=True)
    conn.execute("UPDATE journal_rows SET sid = adherence_time_key(sid, at_ms) WHERE kind = ? AND flagged = 0"
                 " AND typeof(sid) = 'blob' AND substr(sid, 1, 1) != x'00'", (KIND_RTA,))
    codec = Codec()
    flagged = conn.execute(
        "SELECT r.id, r.sid, w.s, r.at_ms, r.raw FROM journal_rows r JOIN journal_strings w ON w.id = r.worker"
        " WHERE r.kind = ? AND r.flagged != 0 AND typeof(r.sid) = 'blob' AND substr(r.sid, 1, 1) != x'00'",
        (KIND_RTA,)).fetchall()
    for rid, key, worker, at, raw in flagged:
        try:
            record = json.loads(codec.decode(conn, raw, key, worker, at))
            t = stated_ms(_Stated(record))
        except (ValueError, AttributeError, TypeError, zlib.error):
            t = None
        conn.execute("UPDATE journal_rows SET sid = ? WHERE id = ?", (time_key(bytes(key), t), rid))
    conn.execute("DROP VIEW IF EXISTS journal")
    for sql in VIEW:
        conn.execute(sql)


class _Stated:
    """A stored record as ``stated_ms`` reads one."""

    flagged = True

    def __init__(self, raw):
        self.raw = raw


INSERT_ROW = ("INSERT OR IGNORE INTO journal_rows (sid, worker, at_ms, received_ms, flagged, kind, activity, task, chan, raw)"
              " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
INSERT_ROW_WITH_ID = ("INSERT INTO journal_rows (id, sid, worker, at_ms, received_ms, flagged, kind, activity, task, chan, "
                      "raw) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
