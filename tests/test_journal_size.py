"""The journal's bytes on disk per record (issue #16 item 5): a guard against regressions.

~20k simulated records (the busy-day mix: status changes, reservations, ~1 % repeats) are ingested the
way ``adherence replay`` does; the file's growth (page_count * page_size, after a checkpoint) divided
by the records journaled must stay within 2x of the figure measured when the compact journal was made
(see docs/operations.md, "Journal size"). Before it: ~2,300 bytes a record.
"""

from __future__ import annotations

import json

import sqlite_utils

from adherence.feed import parse_envelope
from adherence.journal import Journal
from adherence.journal_format import raw_record
from adherence.simulate import generate
from adherence.store import Store

START = 1_795_503_600_000  # 2026-11-24T13:00Z (08:00 in New York)
MEASURED = 390  # bytes a record on disk when this guard was written (20k records of this mix)
RECORDS = 20_000
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _size(conn) -> int:
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return conn.execute("PRAGMA page_count").fetchone()[0] * conn.execute("PRAGMA page_size").fetchone()[0]


def test_journal_bytes_per_record_stay_within_2x_of_the_measured_figure(tmp_path):
    store = Store(tmp_path / "a.db")
    journal = Journal(store, None)
    before = _size(store._writer)
    sim = generate(agents=200, hours=10, seed=3, start_ms=START, tz="America/New_York")
    batch, accepted, sent = [], 0, {}
    for delivery, envelope in sim.events():
        parsed = parse_envelope(envelope, delivery, None)
        for rec in parsed.records:
            sent.setdefault(rec.event_sid, rec.raw)
        batch.append((parsed, delivery))
        if len(batch) >= 500:
            accepted += journal.ingest_parsed(batch).accepted
            batch = []
        if accepted >= RECORDS:
            break
    if batch:
        accepted += journal.ingest_parsed(batch).accepted
    assert accepted >= RECORDS
    per_record = (_size(store._writer) - before) / accepted
    print(f"journal: {per_record:.0f} bytes a record on disk ({accepted} records)")
    assert per_record <= 2 * MEASURED, f"{per_record:.0f} bytes a record; measured {MEASURED} when this was written"
    # and what is stored is still each record as received, whole (before and after the dictionary)
    conn = store._writer
    for rid, sid in conn.execute("SELECT id, event_sid FROM journal WHERE id % 37 = 1 OR id < 100").fetchall():
        assert raw_record(conn, rid, journal.codec) == _encode(sent[sid])
        assert raw_record(conn, rid) == _encode(sent[sid])  # a fresh reader (dictionary read from the file)
    store.close()


def test_an_existing_journal_migrates_to_the_compact_rows_unchanged(tmp_path):
    """0010_compact_journal: rows of the wide journal (RTA records, TaskRouter events, a correction, an
    odd SID) read the same through the view afterwards, ids kept, records whole, duplicates still found."""
    from adherence import store as store_mod

    path = tmp_path / "old.db"
    conn = store_mod.connect(path)
    before = [(n, b) for n, b in store_mod.MIGRATIONS if n < "0010"]
    db = sqlite_utils.Database(conn)
    migrations = sqlite_utils.Migrations("adherence")
    for name, body in before:
        if callable(body):
            migrations(name=name)(body)
        else:
            migrations(name=name)(lambda d, sql=body: [d.execute(x) for x in sql.split(";") if x.strip()])
    migrations.apply(db)
    sim = generate(agents=5, hours=2, seed=4, start_ms=START, tz="America/New_York")
    rows, n, seen = [], 0, set()
    for delivery, envelope in sim.events():
        for rec in parse_envelope(envelope, delivery, None).records:
            if rec.event_sid in seen:
                continue
            seen.add(rec.event_sid)
            n += 1
            rows.append((n * 3, rec.event_sid, rec.worker_sid, rec.at_ms, delivery, int(rec.flagged), rec.activity,
                         rec.task, _encode(rec.raw)))
        if n >= 300:
            break
    event = {"source": "callback", "event": {"EventType": "worker.activity.update", "Sid": "EVx"}, "after": None,
             "state": {"activity": "Break"}, "worker": {"sid": "WKev"}, "channels": []}
    derived = dict(event, source="derived", event=None, after="tr:EV" + "b" * 32)
    rows += [(5000, "tr:EV" + "a" * 32, "WKev", START, START, 0, "Break", "none", _encode(event)),
             (5001, None, "WKev", START + 1, START + 1, 1, "Break", "none", _encode(derived)),
             (5002, "EV-not-hex-\u00e9", "WKodd", START, START, 0, "Available", "none", '{"x":"\\u0001"}')]
    conn.executemany("INSERT INTO journal VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.close()

    store = Store(path)  # runs 0010
    conn = store._writer
    cols = "id, event_sid, worker_sid, at_ms, received_ms, flagged, activity, task"
    assert conn.execute(f"SELECT {cols} FROM journal ORDER BY id").fetchall() == [r[:8] for r in rows]
    for r in rows:
        assert raw_record(conn, r[0]) == r[8]
    assert conn.execute("SELECT kind FROM journal_rows WHERE id IN (5000, 5001, 5002) ORDER BY id").fetchall() == [
        (1,), (2,), (0,)]
    # a record already journaled before the migration is still a duplicate after it
    journal = Journal(store, None)
    assert journal._event_fed == {"WKev"}
    first = sim.events()
    delivery, envelope = next(first)
    counts = journal.ingest_parsed([(parse_envelope(envelope, delivery, None), delivery)])
    assert counts.accepted == 0 and counts.duplicates == len(envelope["records"])
    store.close()


def test_a_lone_record_is_stored_as_the_body_received_and_read_back_whole(tmp_path):
    """A one-record envelope is kept as received (not re-encoded); raw_record gives the record itself."""
    store = Store(tmp_path / "a.db")
    journal = Journal(store, None)
    sim = generate(agents=3, hours=1, seed=5, start_ms=START, tz="America/New_York")
    sent = {}
    for i, (delivery, envelope) in enumerate(sim.events()):
        body = json.dumps(envelope, indent=1 if i % 2 else None, ensure_ascii=bool(i % 3)).encode()
        journal.ingest_body(body, delivery, max_ahead_ms=None)
        for rec in envelope["records"]:
            sent.setdefault(rec["last_processed_event_sid"], rec)
        if i >= 200:
            break
    conn = store._writer
    kinds = set()
    for rid, sid, record in conn.execute("SELECT id, event_sid, record FROM journal").fetchall():
        assert raw_record(conn, rid) == _encode(sent[sid])
        assert json.loads(record)["channels"] is None or isinstance(json.loads(record)["channels"], list)
        kinds.add(conn.execute("SELECT raw FROM journal_rows WHERE id = ?", (rid,)).fetchone()[0][0] & 64)
    assert kinds == {0, 64}  # bodies kept whole, and records of multi-record envelopes encoded alone
    store.close()
