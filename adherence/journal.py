"""Ingestion: the one path from a feed body to the journal and live state.

The webhook and ``adherence replay`` both come through here, so a replayed
feed produces exactly what the live service produced. Every body that
passed authentication is kept: usable records in ``journal``, unusable
bodies and records in ``rejected`` with the reason. A record whose
``last_processed_event_sid`` was already journaled is a duplicate:
acknowledged and counted, not applied twice.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Iterable

from .errors import FeedError
from .feed import Parsed, Record, _channel_summary, parse_body, parse_envelope
from .metrics import METRICS
from .model import Snapshot
from .state import Tracker
from .store import Store

log = logging.getLogger(__name__)

# A live record dated further ahead of its receipt than this takes the receipt time (clock skew guard).
MAX_AHEAD_MS = 5 * 60_000

_INSERT = (
    "INSERT OR IGNORE INTO journal (event_sid, worker_sid, at_ms, received_ms, flagged, activity, task, record)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)

# the stored record text: json.dumps(raw, separators=(",", ":"), ensure_ascii=False), with the encoder built once
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _row(rec: Record, received_ms: int) -> tuple:
    """The journal row of a record (the parameters of ``_INSERT``)."""
    return (rec.event_sid, rec.worker_sid, rec.at_ms, received_ms, int(rec.flagged), rec.activity, rec.task,
            _encode(rec.raw))


@dataclass
class Counts:
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: "Counts") -> None:
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.rejected += other.rejected
        self.errors.extend(other.errors[: max(0, 20 - len(self.errors))])

    def as_dict(self) -> dict:
        d = {"accepted": self.accepted, "duplicates": self.duplicates, "rejected": self.rejected}
        if self.errors:
            d["errors"] = self.errors
        return d


@dataclass(eq=False)
class _Pending:
    """One request's envelope waiting for the writer."""

    parsed: Parsed
    received_ms: int
    rows: list
    counts: Counts = field(default_factory=Counts)
    done: bool = False
    error: BaseException | None = None


class Journal:
    """Writes feed bodies to the journal and applies new records to the tracker."""

    def __init__(self, store: Store, tracker: Tracker | None):
        """``tracker`` None: journal only, no live state (``adherence replay``, whose process keeps none;
        the service builds its state from the journal when it starts, or catches up while it runs)."""
        self.store = store
        self.tracker = tracker
        self.observed_from = load_observed_from(store.reader)
        # Journal ids this process has applied above ``_high``; everything at or
        # below ``_high`` has been applied. Rows another process wrote (a replay
        # while the service runs) are found by ``catch_up``.
        row = store.reader.execute("SELECT MAX(id) FROM journal").fetchone()
        self._high = row[0] or 0
        self._local: set[int] = set()
        self._queue: list[_Pending] = []  # requests' envelopes waiting for the writer (group commit)
        self._queue_lock = threading.Lock()

    def reject_body(self, body: bytes, reason: str, received_ms: int, content_type: str | None, remote: str | None) -> None:
        with self.store.write() as conn:
            conn.execute(
                "INSERT INTO rejected (received_ms, reason, content_type, remote_addr, body) VALUES (?, ?, ?, ?, ?)",
                (received_ms, reason[:2000], (content_type or "")[:200], remote, body),
            )
        METRICS.inc("adherence_rejected_bodies_total")
        log.warning("rejected feed body: %s", reason, extra={"event": "feed_rejected", "remote": remote, "bytes": len(body)})

    def ingest_body(self, body: bytes, received_ms: int, content_type: str | None = None, remote: str | None = None,
                    max_ahead_ms: int | None = MAX_AHEAD_MS) -> Counts:
        """A request body → journal. Raises FeedError (after keeping the body) when unusable."""
        try:
            parsed = parse_envelope(parse_body(body), received_ms, max_ahead_ms)
        except FeedError as exc:
            self.reject_body(body, str(exc), received_ms, content_type, remote)
            raise
        return self._ingest_grouped(parsed, received_ms)

    def ingest_parsed(self, batch: Iterable[tuple[Parsed, int]]) -> Counts:
        """Store a batch of parsed envelopes in ONE transaction, then apply them in journal order."""
        counts = Counts()
        # rows are built before the writer lock is taken: the lock is held for SQLite and the tracker only
        work = [(parsed, received_ms, [(rec, _row(rec, received_ms)) for rec in parsed.records])
                for parsed, received_ms in batch]
        with self.store.write() as conn:
            self._write(conn, work, [counts] * len(work))
        return self._counted(counts)

    def _ingest_grouped(self, parsed: Parsed, received_ms: int) -> Counts:
        """One request's envelope, written together with those of requests waiting at the same time.

        Group commit: each request queues its rows, then takes the writer lock. The first to get it
        writes every queued envelope in one transaction (journal order = queue order) and applies them;
        the others find theirs done when they get the lock, and answer. A request still answers only
        after its records are committed; under load the writer does one commit for many requests.
        """
        item = _Pending(parsed, received_ms, [(rec, _row(rec, received_ms)) for rec in parsed.records])
        with self._queue_lock:
            self._queue.append(item)
        with self.store.write_lock() as conn:
            if not item.done:
                with self._queue_lock:
                    items, self._queue = self._queue, []
                try:
                    if (len(items) == 1 and len(item.rows) == 1 and not parsed.rejected
                            and self.observed_from is not None and item.rows[0][0].at_ms >= self.observed_from):
                        # one record alone: one INSERT is its own transaction (no BEGIN/COMMIT round trips)
                        rec, row = item.rows[0]
                        if self._stored(conn.execute(_INSERT, row), item.counts):
                            self._apply([(rec, received_ms)])
                    else:
                        with self.store.write() as tx:
                            self._write(tx, [(i.parsed, i.received_ms, i.rows) for i in items],
                                        [i.counts for i in items])
                except BaseException as exc:
                    for i in items:
                        i.error = exc
                        i.counts = Counts()
                for i in items:
                    i.done = True
        if item.error is not None:
            raise item.error
        return self._counted(item.counts)

    def _write(self, conn, work, counts: list[Counts]) -> None:
        """Insert the rows of ``work`` [(parsed, received_ms, [(record, row)])] and apply the new ones."""
        applied: list[tuple[Record, int]] = []
        for (parsed, received_ms, rows), c in zip(work, counts):
            for rec, row in rows:
                if self._stored(conn.execute(_INSERT, row), c):
                    applied.append((rec, received_ms))
            for index, raw, reason in parsed.rejected:
                conn.execute(
                    "INSERT INTO rejected (received_ms, reason, content_type, remote_addr, body) VALUES (?, ?, ?, ?, ?)",
                    (received_ms, reason[:2000], "application/json", None, _dump(raw)),
                )
                c.rejected += 1
                if len(c.errors) < 20:
                    c.errors.append(reason)
        if applied:
            first = min(rec.at_ms for rec, _ in applied)
            if self.observed_from is None or first < self.observed_from:
                self.observed_from = first
                conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('observed_from', ?)", (str(first),))
        # Apply inside the writer lock so live order == journal order (rebuild equals live).
        self._apply(applied)

    def _stored(self, cur, counts: Counts) -> bool:
        """Book one INSERT OR IGNORE: True when the record was new (journaled), False for a duplicate."""
        if cur.rowcount == 1:
            if cur.lastrowid == self._high + 1:
                self._high += 1  # the usual case: nobody else writes
            else:
                self._local.add(cur.lastrowid)
            counts.accepted += 1
            return True
        counts.duplicates += 1
        return False

    def _apply(self, applied: list[tuple[Record, int]]) -> None:
        if self.tracker is None:
            return
        for rec, received_ms in applied:
            self.tracker.apply(
                rec.worker_sid,
                Snapshot(rec.at_ms, rec.activity, rec.task, rec.flagged),
                rec.channels,
                received_ms,
            )

    def _counted(self, counts: Counts) -> Counts:
        METRICS.inc("adherence_records_accepted_total", counts.accepted)
        METRICS.inc("adherence_records_duplicate_total", counts.duplicates)
        METRICS.inc("adherence_records_rejected_total", counts.rejected)
        if counts.rejected:
            log.warning("rejected %d feed record(s): %s", counts.rejected, "; ".join(counts.errors[:3]),
                        extra={"event": "records_rejected"})
        return counts


    def catch_up(self) -> int:
        """Apply records other processes wrote to the journal; returns how many.

        They are applied after this process's own later rows, so among records with
        exactly the same timestamp the live order may differ from a rebuild's (journal
        id) order; every other record lands where a rebuild puts it.
        """
        n = 0
        with self.store.write() as conn:
            rows = conn.execute(
                "SELECT id, worker_sid, at_ms, activity, task, flagged, received_ms, record "
                "FROM journal WHERE id > ? ORDER BY id",
                (self._high,),
            ).fetchall()
            for jid, worker, at, activity, task, flagged, received, record in rows:
                if jid in self._local:
                    continue
                try:
                    channels = _channel_summary(json.loads(record).get("channels"))
                except (ValueError, AttributeError):
                    channels = ()
                self.tracker.apply(worker, Snapshot(at, activity, task, bool(flagged)), channels, received)
                if self.observed_from is None or at < self.observed_from:
                    self.observed_from = at
                    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('observed_from', ?)", (str(at),))
                n += 1
            if rows:
                self._high = rows[-1][0]
            self._local = {i for i in self._local if i > self._high}
        return n


def load_observed_from(conn) -> int | None:
    """The earliest instant the journal has ever held a record for: monitoring starts there.

    Before it nobody's state is known, so no rule can hold; from it on, an
    agent the feed has not mentioned yet is taken as not logged in. Kept in
    ``meta`` so purging old journal rows does not move it.
    """
    row = conn.execute("SELECT value FROM meta WHERE key = 'observed_from'").fetchone()
    if row is not None:
        return int(row[0])
    row = conn.execute("SELECT MIN(at_ms) FROM journal").fetchone()
    return row[0]


def _dump(raw: Any) -> bytes:
    try:
        return json.dumps(raw, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")
    except (TypeError, ValueError):
        return repr(raw).encode("utf-8", "replace")
