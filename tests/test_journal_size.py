"""The journal's bytes on disk per record (issue #16 item 5): a guard against regressions.

~20k simulated records (the busy-day mix: status changes, reservations, ~1 % repeats) are ingested the
way ``adherence replay`` does; the file's growth (page_count * page_size, after a checkpoint) divided
by the records journaled must stay within 2x of the figure measured when the compact journal was made
(see docs/operations.md, "Journal size"). Before it: ~2,300 bytes a record.
"""

from __future__ import annotations

import json

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
