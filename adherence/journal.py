"""Ingestion: the one path from a feed body to the journal and live state.

The webhook and ``adherence replay`` both come through here, so a replayed
feed produces exactly what the live service produced. Every body that
passed authentication is kept: usable records in ``journal``, unusable
bodies and records in ``rejected`` with the reason. A record whose
``last_processed_event_sid`` was already journaled is a duplicate:
acknowledged and counted, not applied twice.

TaskRouter events (``ingest_events``) are journaled one row per event, the
row holding the raw event and the snapshot derived from every event of that
worker up to its instant. An event older than what is known re-derives the
worker's later instants: where a snapshot changes, a correction row (no
event SID) at that instant follows, and the last row at an instant wins, in
the tracker as in a journal read. So the journal stays append-only and the
timeline a function of the journal, whatever order events came in.

One worker is fed by one family of sources: the RTA feed, or TaskRouter
events (callback, Event Streams and backfill carry the same events and
merge). A record or event of the other family for that worker is refused
(kept in ``rejected`` with the reason): two views of one agent would make
its timeline flip between them.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

from .errors import FeedError
from .feed import Parsed, Record, _channel_summary, parse_body, parse_envelope
from .journal_format import (INSERT_ROW, KIND_DERIVED, KIND_EVENT, KIND_RTA, Codec, Interner, reduced_channels,
                             rta_key, sid_key, sid_text, stated_ms)
from .metrics import METRICS
from .model import Snapshot
from .sources import events as tr
from .state import Tracker
from .store import Store

log = logging.getLogger(__name__)

# Records ``ingest_parsed`` sends to the Deflater at once (it deflates them while the next are made).
DEFLATE_CHUNK = 64

# A live record dated further ahead of its receipt than this takes the receipt time (clock skew guard).
MAX_AHEAD_MS = 5 * 60_000

# the stored record text: json.dumps(raw, separators=(",", ":"), ensure_ascii=False), with the encoder built once
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


@dataclass
class Counts:
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[str] = field(default_factory=list)
    ignored: int = 0  # TaskRouter events that change no snapshot (kept in rejected, marked "ignored")
    corrected: int = 0  # snapshots re-derived because an event arrived late

    def add(self, other: "Counts") -> None:
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.rejected += other.rejected
        self.ignored += other.ignored
        self.corrected += other.corrected
        self.errors.extend(other.errors[: max(0, 20 - len(self.errors))])

    def as_dict(self) -> dict:
        d = {"accepted": self.accepted, "duplicates": self.duplicates, "rejected": self.rejected}
        if self.ignored:
            d["ignored"] = self.ignored
        if self.corrected:
            d["corrected"] = self.corrected
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
        self.codec = Codec()
        self.names = Interner()
        reader = store.reader
        try:
            self.codec.load(reader)
        except sqlite3.DatabaseError as exc:  # (a damaged file: the store says so; records compress without it)
            store._note_error(exc)
        self._high = 0
        try:
            self._high = reader.execute("SELECT MAX(id) FROM journal_rows").fetchone()[0] or 0
        except sqlite3.DatabaseError as exc:  # (the store says so: writes are refused, commands say why)
            store._note_error(exc)
        self._local: set[int] = set()
        self._queue: list[_Pending] = []  # requests' envelopes waiting for the writer (group commit)
        self._queue_lock = threading.Lock()
        self._per_tx = 1000  # records a transaction of ``ingest_parsed`` with a budget (adjusted as it writes)
        # ``ingest_parsed`` has records deflated by this (journal_format.Deflater) when set: ``adherence replay``
        self.deflater = None
        # workers fed by TaskRouter events (the RTA path refuses their records: one family per worker)
        lo, hi = tr.KEY_PREFIX, tr.KEY_PREFIX[:-1] + chr(ord(tr.KEY_PREFIX[-1]) + 1)
        self._event_fed: set[str] = set()
        try:
            self._event_fed = {
                r[0] for r in reader.execute(
                    "SELECT DISTINCT s.s FROM journal_rows r JOIN journal_strings s ON s.id = r.worker"
                    " WHERE (r.sid >= ? AND r.sid < ?) OR (r.sid >= ? AND r.sid < ?)",
                    (lo, hi, lo.encode(), hi.encode()))
            }
        except sqlite3.DatabaseError as exc:
            store._note_error(exc)
        self._family: dict[str, str] = {w: "events" for w in self._event_fed}  # worker → "rta" | "events"
        self._ev_last: dict[str, tuple[int, dict]] = {}  # worker → (latest instant, state there)

    def attach(self, tracker: Tracker, loaded_to_id: int) -> None:
        """Start applying new records to ``tracker``, built from the journal up to ``loaded_to_id`` while
        this journal already took webhooks (``serve`` listens first). Call it holding the writer lock;
        ``catch_up`` then applies every row above ``loaded_to_id``, the ones journaled meanwhile included."""
        self.tracker = tracker
        self._high = loaded_to_id
        self._local = set()

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

    def ingest_parsed(self, batch: Iterable[tuple[Parsed, int]], budget_s: float | None = None) -> Counts:
        """Store a batch of parsed envelopes in ONE transaction, then apply them in journal order.

        ``budget_s``: in several transactions instead, each of about that long (``adherence replay``
        beside a running service, whose webhooks wait for the writer): each takes as many envelopes as
        the last one wrote in its time, scaled to the budget, and the rows of the next are built between
        two, with the writer free. An envelope is never split."""
        counts = Counts()
        if self._event_fed:
            batch = [(self._refuse_event_fed(parsed), received_ms) for parsed, received_ms in batch]
        items = iter(batch)
        deflater = self.deflater
        while True:
            # rows are built before the writer lock is taken: the lock is held for SQLite and the tracker only
            work, n, last = [], 0, True
            jobs, sent, sends = ([] if deflater is not None else None), 0, 0
            for parsed, received_ms in items:
                work.append((parsed, received_ms, self._rows(parsed, received_ms, jobs)))
                if self.codec.wants_dict():  # a large batch: its later records already get the dictionary
                    with self.store.write_lock():
                        self._dictionary()
                n += len(parsed.records) + len(parsed.rejected)
                if jobs is not None and len(jobs) - sent >= DEFLATE_CHUNK:  # deflated while the next are made
                    deflater.send(self.codec, jobs[sent:])
                    sent, sends = len(jobs), sends + 1
                if budget_s is not None and n >= self._per_tx:
                    last = False
                    break
            if jobs is not None:
                deflater.send(self.codec, jobs[sent:])
                done: list[bytes] = []
                for _ in range(sends + 1):
                    done.extend(deflater.receive())
                self._deflated(work, done)
            with self.store.write_lock():
                t0 = time.perf_counter()  # from when the writer is ours
                try:
                    with self.store.write() as conn:
                        self._write(conn, work, [counts] * len(work))
                except BaseException:
                    self.names.forget()
                    raise
            if budget_s is not None:
                took = time.perf_counter() - t0
                if n >= self._per_tx or took > budget_s:  # (a batch's short tail says little)
                    self._per_tx = max(50, int(self._per_tx * min(2.0, budget_s / max(took, 1e-4))))
            if last:
                return self._counted(counts)

    def _rows(self, parsed: Parsed, received_ms: int, jobs: list | None = None) -> list:
        """[(record, its row)] of an envelope; a lone record's row keeps the body as received. ``jobs``: the
        records are not deflated here but added to ``jobs`` (see ``_deflated``)."""
        if parsed.text is not None and len(parsed.records) == 1:
            rec = parsed.records[0]
            return [(rec, self._row(rec, received_ms, parsed.text, jobs))]
        return [(rec, self._row(rec, received_ms, None, jobs)) for rec in parsed.records]

    def _row(self, rec: Record, received_ms: int, body: str | None = None, jobs: list | None = None) -> tuple:
        """A record's row, all but the interned ids (``_insert`` adds them under the writer lock). ``jobs``:
        its stored record is (format byte, index in ``jobs``), to be made whole by ``_deflated``."""
        text = _encode(rec.raw) if body is None else body
        if jobs is None:
            raw = self.codec.compress(text, rec.event_sid, rec.worker_sid, rec.at_ms, body is not None)
        else:
            head, d, data = self.codec.prepare(text, rec.event_sid, rec.worker_sid, rec.at_ms, body is not None)
            raw = (head, len(jobs))
            jobs.append((d, data))
        return (rta_key(rec.event_sid, stated_ms(rec)), rec.worker_sid, rec.at_ms, received_ms, int(rec.flagged), KIND_RTA,
                rec.activity, rec.task, reduced_channels(rec.raw.get("channels")), raw)

    @staticmethod
    def _deflated(work: list, done: list[bytes]) -> None:
        """The rows of ``work`` with their records deflated: ``done[i]`` is job ``i``'s."""
        for _, _, rows in work:
            for k, (rec, row) in enumerate(rows):
                head, i = row[-1]
                rows[k] = (rec, row[:-1] + (head + done[i],))

    def _insert(self, conn, row: tuple):
        sid, worker, at, received, flagged, kind, activity, task, chans, raw = row
        names = self.names
        return conn.execute(INSERT_ROW, (sid, names.id(conn, worker), at, received, flagged, kind,
                                         names.id(conn, activity), names.id(conn, task), names.id(conn, chans), raw))

    def _dictionary(self) -> None:
        """Under the writer lock: once enough records were seen, the compression dictionary, in a commit
        of its own (records compressed with it must never outlive it in a rollback)."""
        if self.codec.wants_dict():
            with self.store.write() as conn:
                z = self.codec.make_dict(conn)
            self.codec.adopt(z)

    def _ingest_grouped(self, parsed: Parsed, received_ms: int) -> Counts:
        """One request's envelope, written together with those of requests waiting at the same time.

        Group commit: each request queues its rows, then takes the writer lock. The first to get it
        writes every queued envelope in one transaction (journal order = queue order) and applies them;
        the others find theirs done when they get the lock, and answer. A request still answers only
        after its records are committed; under load the writer does one commit for many requests.
        """
        if self._event_fed:
            parsed = self._refuse_event_fed(parsed)
        item = _Pending(parsed, received_ms, self._rows(parsed, received_ms))
        with self._queue_lock:
            self._queue.append(item)
        with self.store.write_lock() as conn:
            if not item.done:
                with self._queue_lock:
                    items, self._queue = self._queue, []
                try:
                    self._dictionary()
                    if (len(items) == 1 and len(item.rows) == 1 and not parsed.rejected
                            and self.observed_from is not None and item.rows[0][0].at_ms >= self.observed_from):
                        # one record alone: one INSERT is its own transaction (no BEGIN/COMMIT round trips)
                        rec, row = item.rows[0]
                        if self._stored(self._insert(conn, row), item.counts):
                            self._apply([(rec, received_ms)])
                    else:
                        with self.store.write() as tx:
                            self._write(tx, [(i.parsed, i.received_ms, i.rows) for i in items],
                                        [i.counts for i in items])
                except BaseException as exc:
                    self.names.forget()
                    for i in items:
                        i.error = exc
                        i.counts = Counts()
                for i in items:
                    i.done = True
        if item.error is not None:
            raise item.error
        return self._counted(item.counts)

    def _refuse_event_fed(self, parsed: Parsed) -> Parsed:
        """Records of workers fed by TaskRouter events move to the rejected list, with the reason."""
        keep, refused = [], list(parsed.rejected)
        for rec in parsed.records:
            if rec.worker_sid in self._event_fed:
                refused.append((rec.index, rec.raw, f"records[{rec.index}]: worker {rec.worker_sid} is fed by "
                                "TaskRouter events; RTA feed records for it are refused (one source family per worker)"))
            else:
                keep.append(rec)
        return Parsed(keep, refused) if len(keep) != len(parsed.records) else parsed

    def _write(self, conn, work, counts: list[Counts]) -> None:
        """Insert the rows of ``work`` [(parsed, received_ms, [(record, row)])] and apply the new ones."""
        applied: list[tuple[Record, int]] = []
        for (parsed, received_ms, rows), c in zip(work, counts):
            for rec, row in rows:
                if self._stored(self._insert(conn, row), c):
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

    # ---- TaskRouter events -------------------------------------------------------------------

    def ingest_events(self, batch: list, received_ms: int, kept: Iterable[tuple[bytes, str, str]] = (),
                      content_type: str | None = None, remote: str | None = None) -> Counts:
        """Journal TaskRouter events (``sources.events.Event``) in ONE transaction and apply them.

        ``kept``: bodies or events that are not applied, as (body, reason, "rejected" | "ignored"),
        stored in the rejected table in the same transaction so nothing received is lost.
        """
        counts = Counts()
        with self.store.write_lock():
            self._dictionary()
            try:
                self._events_tx(batch, received_ms, kept, content_type, remote, counts)
            except BaseException:
                self.names.forget()
                self._ev_last.clear()
                raise
        return self._counted(counts)

    def _events_tx(self, batch, received_ms, kept, content_type, remote, counts: Counts) -> None:
        with self.store.write() as conn:
            for body, reason, kind in kept:
                conn.execute(
                    "INSERT INTO rejected (received_ms, reason, content_type, remote_addr, body) VALUES (?, ?, ?, ?, ?)",
                    (received_ms, (f"ignored: {reason}" if kind == "ignored" else reason)[:2000],
                     (content_type or "")[:200], remote, body),
                )
                if kind == "ignored":
                    counts.ignored += 1
                else:
                    counts.rejected += 1
                    if len(counts.errors) < 20:
                        counts.errors.append(reason)
            if batch:
                self._write_events(conn, batch, received_ms, counts, content_type, remote)

    def _family_of(self, conn, worker: str) -> str | None:
        fam = self._family.get(worker)
        if fam is None:
            wid = self.names.known(conn, worker)
            row = None if wid is None else conn.execute(
                "SELECT kind FROM journal_rows WHERE worker = ? LIMIT 1", (wid,)).fetchone()
            if row is None:
                return None
            fam = self._family[worker] = "events" if row[0] != KIND_RTA else "rta"
        return fam

    def _write_events(self, conn, batch: list, received_ms: int, counts: Counts, content_type, remote) -> None:
        top = conn.execute("SELECT MAX(id) FROM journal_rows").fetchone()[0] or 0
        if top > max(self._high, max(self._local, default=0)):
            # another process (a replay, a backfill) wrote rows this one has not caught up with: the folds
            # this process remembers may be stale, so every worker's is read back from the journal
            self._ev_last.clear()
        unique: dict[str, tr.Event] = {}
        for ev in batch:
            if ev.key in unique:
                counts.duplicates += 1
            else:
                unique[ev.key] = ev
        keys = [sid_key(k) for k in unique]
        known: set[str] = set()
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            known.update(sid_text(r[0]) for r in conn.execute(
                f"SELECT sid FROM journal_rows WHERE sid IN ({','.join('?' * len(chunk))})", chunk))
        counts.duplicates += len(known)
        by_worker: dict[str, list] = {}
        for key, ev in unique.items():
            if key not in known:
                by_worker.setdefault(ev.worker_sid, []).append(ev)
        applied: list[tuple[str, Snapshot, tuple]] = []
        for worker in sorted(by_worker):
            evs = by_worker[worker]
            if self._family_of(conn, worker) == "rta":
                reason = (f"worker {worker} is fed by the RTA feed; TaskRouter events for it are refused "
                          "(one source family per worker)")
                for ev in evs:
                    conn.execute(
                        "INSERT INTO rejected (received_ms, reason, content_type, remote_addr, body) VALUES (?, ?, ?, ?, ?)",
                        (received_ms, reason, (content_type or "")[:200], remote, _dump(ev.raw)),
                    )
                    counts.rejected += 1
                if len(counts.errors) < 20:
                    counts.errors.append(reason)
                continue
            self._family[worker] = "events"
            self._event_fed.add(worker)
            self._derive(conn, worker, evs, received_ms, counts, applied)
        if applied:
            first = min(snap.at for _, snap, _ in applied)
            if self.observed_from is None or first < self.observed_from:
                self.observed_from = first
                conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('observed_from', ?)", (str(first),))
        if self.tracker is not None:
            for worker, snap, chans in applied:
                self.tracker.apply(worker, snap, chans, received_ms)

    def _derive(self, conn, worker: str, new: list, received_ms: int, counts: Counts, applied: list) -> None:
        """Journal ``new`` events of one worker and every snapshot of it they change.

        The fold runs from the state before the earliest new event over the worker's later rows,
        instant by instant, and stops at the first instant past the new events where it meets the
        state already journaled there: from then on nothing differs. A late event costs in
        proportion to what it changes, not to the rest of the day.
        """
        new.sort(key=lambda e: e.order)
        t0 = new[0].at_ms
        cached = self._ev_last.get(worker)
        rows = None
        if cached is not None and t0 > cached[0]:
            state = cached[1]  # in order: nothing known at or after t0
        else:
            wid = self.names.id(conn, worker)
            row = conn.execute(
                "SELECT raw, sid, at_ms FROM journal_rows WHERE worker = ? AND at_ms < ? ORDER BY at_ms DESC, id DESC"
                " LIMIT 1", (wid, t0),
            ).fetchone()
            state = json.loads(self.codec.decode(conn, row[0], row[1], worker, row[2]))["state"] if row else tr.initial_state()
            # fetched in pages, never iterated while this connection inserts (a live scan could meet them)
            rows = conn.execute(
                "SELECT at_ms, flagged, sid, raw FROM journal_rows WHERE worker = ? AND at_ms >= ? ORDER BY at_ms, id",
                (wid, t0),
            )
        buffered: list = []

        def next_row():
            if not buffered and rows is not None:
                buffered.extend(reversed(rows.fetchmany(200)))
            return buffered.pop() if buffered else None

        writes: list = []
        pending = next_row()
        k, n = 0, len(new)
        last_at = t0
        converged = False
        while k < n or pending is not None:
            at = min(new[k].at_ms if k < n else pending[0], pending[0] if pending is not None else new[k].at_ms)
            known = None  # the state the journal holds at this instant (its last row's)
            group = []
            while pending is not None and pending[0] == at:
                rec = json.loads(self.codec.decode(conn, pending[3], pending[2], worker, at))
                known = rec["state"]
                if pending[2] is not None:
                    group.append(tr.from_stored(rec["source"], rec["event"], at, bool(pending[1])))
                pending = next_row()
            fresh = []
            while k < n and new[k].at_ms == at:
                fresh.append(new[k])
                k += 1
            group.extend(fresh)
            group.sort(key=lambda e: e.order)
            for ev in group:
                state = tr.apply(state, ev)
            if fresh or known != state:
                writes.append((at, fresh, state, any(e.flagged for e in group)))
            last_at = at
            if k >= n and known is not None and known == state:
                converged = True
                break
        if rows is not None:
            rows.close()
        for at, fresh, st, flagged in writes:
            activity, task, chans = tr.snapshot_of(st)
            summary = _channel_summary(chans)
            worker_view = {"sid": worker, "activity_name": st["activity"], "activity_sid": st["activity_sid"]}
            for ev in fresh or [None]:
                record = self.codec.compress(_encode({
                    "source": ev.source if ev else "derived",
                    "event": ev.raw if ev else None,
                    "after": None if ev else new[0].key,
                    "state": st,
                    "worker": worker_view,
                    "channels": chans,
                }), ev.key if ev else None, worker, at)
                cur = self._insert(conn, (sid_key(ev.key) if ev else None, worker, at, received_ms, int(flagged),
                                          KIND_EVENT if ev else KIND_DERIVED, activity, task, reduced_channels(chans),
                                          record))
                self._stored(cur, Counts())
                if ev is None:
                    counts.corrected += 1
                else:
                    counts.accepted += 1
                applied.append((worker, Snapshot(at, activity, task, flagged), summary))
        if converged:
            self._ev_last.pop(worker, None)  # the latest state is further on; read it when next needed
        else:
            self._ev_last[worker] = (last_at, state)

    def catch_up(self) -> int:
        """Apply records other processes wrote to the journal; returns how many.

        They are applied after this process's own later rows, so among records with
        exactly the same timestamp the live order may differ from a rebuild's (journal
        id) order; every other record lands where a rebuild puts it.
        """
        n = 0
        with self.store.write() as conn:
            rows = conn.execute(
                "SELECT r.id, w.s, r.at_ms, a.s, t.s, r.flagged, r.received_ms, r.kind, c.s, r.raw "
                "FROM journal_rows r JOIN journal_strings w ON w.id = r.worker"
                " JOIN journal_strings a ON a.id = r.activity JOIN journal_strings t ON t.id = r.task"
                " LEFT JOIN journal_strings c ON c.id = r.chan WHERE r.id > ? ORDER BY r.id",
                (self._high,),
            ).fetchall()
            for jid, worker, at, activity, task, flagged, received, kind, chans, raw in rows:
                if jid in self._local:
                    continue
                if chans is None:  # a row written through the view: its record as text
                    try:
                        chans = _encode(json.loads(raw).get("channels"))
                    except (ValueError, AttributeError, TypeError):
                        chans = "null"
                if kind != KIND_RTA:
                    # an event row another process wrote: this worker is event-fed, and its cached fold stale
                    self._event_fed.add(worker)
                    self._family[worker] = "events"
                    self._ev_last.pop(worker, None)
                else:
                    self._family.setdefault(worker, "rta")
                try:
                    channels = _channel_summary(json.loads(chans))
                except ValueError:
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
