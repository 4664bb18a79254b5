"""The RTA dedup key in time order (``journal_format.rta_key``, migration ``0012_journal_time_keys``).

A record's key is its stated event time, then its event SID: commits append to the index. A duplicate
is still found exactly, whatever time the row itself took: a redelivery of a record dated ahead of its
receipt (the row takes the receipt time) or with no usable date is the same record, the same key.
"""

from __future__ import annotations

import json

import sqlite_utils

from adherence.feed import parse_envelope
from adherence.journal import Journal
from adherence.journal_format import (INSERT_ROW, KIND_RTA, TIME_KEY, Codec, Interner, raw_record,
                                      reduced_channels, rta_key, sid_key, sid_text)
from adherence.store import Store

START = 1_795_503_600_000  # 2026-11-24T13:00Z
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _iso(ms: int) -> str:
    from adherence.journal_format import iso_ms

    return iso_ms(ms)


def _record(n: int, at: str | None, worker: str = "WK" + "1" * 32) -> dict:
    return {"worker": {"sid": worker, "activity_name": "Available"}, "channels": [],
            "last_processed_event_sid": f"EV{n:032x}", "date_last_processed_event": at}


def _body(*records) -> bytes:
    return json.dumps(_envelope(*records)).encode()


def _envelope(*records) -> dict:
    return {"product": "Flex", "object": "WFMWorkerChange", "version": 1, "records": list(records)}


def test_a_redelivery_is_a_duplicate_whatever_time_its_row_took(tmp_path):
    store = Store(tmp_path / "a.db")
    journal = Journal(store, None)
    ahead = _record(1, _iso(START + 3_600_000))  # an hour ahead of its receipt: the row takes the receipt time
    undated = _record(2, None)
    garbled = _record(3, "yesterday-ish")
    plain = _record(4, _iso(START - 1000))
    odd = dict(_record(5, _iso(START)), last_processed_event_sid="EV-not-hex")
    for i, rec in enumerate((ahead, undated, garbled, plain, odd)):
        assert journal.ingest_body(_body(rec), START + i).accepted == 1
    # redelivered later, alone and in envelopes of several: every one a duplicate. The last delivery is
    # past the first one's date: the record is no longer ahead, its row would take its own date
    for received in (START + 10_000, START + 3_600_000, START + 7_200_000):
        for rec in (ahead, undated, garbled, plain, odd):
            c = journal.ingest_body(_body(rec), received)
            assert (c.accepted, c.duplicates) == (0, 1), (rec, received)
        c = journal.ingest_body(_body(ahead, undated, garbled, plain, odd), received)
        assert (c.accepted, c.duplicates) == (0, 5)
    conn = store._writer
    rows = conn.execute("SELECT id, event_sid, at_ms, flagged FROM journal ORDER BY id").fetchall()
    assert [r[1] for r in rows] == [r["last_processed_event_sid"] for r in (ahead, undated, garbled, plain, odd)]
    assert [(r[2], r[3]) for r in rows] == [(START, 1), (START + 1, 1), (START + 2, 1), (START - 1000, 0), (START, 0)]
    for (rid, *_), rec in zip(rows, (ahead, undated, garbled, plain, odd)):
        assert raw_record(conn, rid) == _encode(rec)
    keys = [k for (k,) in conn.execute("SELECT sid FROM journal_rows ORDER BY id")]
    assert keys[:4] == [TIME_KEY + t.to_bytes(6, "big") + sid_key(r["last_processed_event_sid"])
                        for t, r in ((START + 3_600_000, ahead), (0, undated), (0, garbled), (START - 1000, plain))]
    assert keys[4] == "EV-not-hex"  # not the usual form: kept as text, as before
    store.close()


def test_keys_follow_the_records_time_and_read_back_as_the_sid():
    sid = "EV" + "0123456789abcdef" * 2
    keys = [rta_key(sid, START + d) for d in (0, 1, 1000, 86_400_000)]
    assert keys == sorted(keys) and len(set(keys)) == 4
    assert [sid_text(k) for k in keys] == [sid] * 4
    assert rta_key(sid, None) == rta_key(sid, -5) == rta_key(sid, 1 << 60) == TIME_KEY + bytes(6) + sid_key(sid)
    assert sid_text(rta_key("tr:" + sid, START)) == "tr:" + sid
    assert rta_key(None, START) is None


def test_an_existing_journal_takes_the_time_keys_unchanged(tmp_path):
    """0012: rows keyed by SID alone (as 0010 made them) are keyed again; the view reads the same, records
    whole, and a redelivery of any of them (a flagged one included) is still a duplicate."""
    from adherence import store as store_mod

    path = tmp_path / "old.db"
    conn = store_mod.connect(path)
    db = sqlite_utils.Database(conn)
    migrations = sqlite_utils.Migrations("adherence")
    for name, body in store_mod.MIGRATIONS:
        if name >= "0012":
            continue
        if callable(body):
            migrations(name=name)(body)
        else:
            migrations(name=name)(lambda d, sql=body: [d.execute(x) for x in sql.split(";") if x.strip()])
    migrations.apply(db)
    records = [(_record(n, _iso(START + n * 1000), worker=f"WK{n % 3:032x}"), START + n * 1000) for n in range(1, 40)]
    records.append((_record(90, _iso(START + 3_600_000)), START + 50_000))  # ahead: flagged, at its receipt
    records.append((_record(91, None), START + 60_000))
    codec, names = Codec(), Interner()
    conn.execute("BEGIN")
    for rec, received in records:
        (r,) = parse_envelope(_envelope(rec), received, 5 * 60_000).records
        text = _encode(rec)
        conn.execute(INSERT_ROW, (sid_key(r.event_sid), names.id(conn, r.worker_sid), r.at_ms, received,
                                  int(r.flagged), KIND_RTA, names.id(conn, r.activity), names.id(conn, r.task),
                                  names.id(conn, reduced_channels(rec["channels"])),
                                  codec.compress(text, r.event_sid, r.worker_sid, r.at_ms)))
    conn.execute("COMMIT")
    cols = "id, event_sid, worker_sid, at_ms, received_ms, flagged, activity, task, record"
    before = conn.execute(f"SELECT {cols} FROM journal ORDER BY id").fetchall()
    assert before[-2][5] == 1 and before[-2][3] == START + 50_000
    conn.close()

    store = Store(path)  # runs 0012
    conn = store._writer
    assert conn.execute(f"SELECT {cols} FROM journal ORDER BY id").fetchall() == before
    for (rid, *_), (rec, _) in zip(before, records):
        assert raw_record(conn, rid) == _encode(rec)
    keys = [bytes(k) for (k,) in conn.execute("SELECT sid FROM journal_rows ORDER BY id")]
    assert all(k[:1] == TIME_KEY for k in keys)
    assert keys[-2] == rta_key("EV" + f"{90:032x}", START + 3_600_000)  # the stated time, read from the record
    assert keys[-1] == rta_key("EV" + f"{91:032x}", None)
    assert keys[:-2] == sorted(keys[:-2])
    journal = Journal(store, None)
    for rec, received in records:
        c = journal.ingest_body(_body(rec), received + 123_456)
        assert (c.accepted, c.duplicates) == (0, 1), rec
    assert journal.ingest_body(_body(_record(99, _iso(START))), START).accepted == 1
    store.close()


def test_records_deflated_in_a_process_of_their_own_are_stored_byte_for_byte_the_same(tmp_path):
    """``adherence replay`` deflates in a child process (journal_format.Deflater): the rows, dictionaries
    included, are exactly what the journal writes compressing in-process, and read back whole."""
    from adherence.journal_format import Deflater
    from adherence.simulate import generate

    sim = generate(agents=30, hours=3, seed=7, start_ms=START, tz="America/New_York")
    deliveries = []
    for delivery, envelope in sim.events():
        deliveries.append((delivery, json.dumps(envelope).encode() if len(deliveries) % 2 else envelope))
        if len(deliveries) >= 3000:
            break

    def run(name, deflater):
        from adherence.feed import parse_body

        store = Store(tmp_path / name)
        journal = Journal(store, None)
        journal.deflater = deflater
        batch = []
        for delivery, body in deliveries:
            batch.append((parse_envelope(parse_body(body) if isinstance(body, bytes) else body, delivery), delivery))
            if len(batch) >= 700:
                journal.ingest_parsed(batch, budget_s=0.002)
                batch = []
        journal.ingest_parsed(batch, budget_s=0.002)
        conn = store._writer
        rows = conn.execute("SELECT * FROM journal_rows ORDER BY id").fetchall()
        dicts = conn.execute("SELECT * FROM journal_dicts ORDER BY id").fetchall()
        records = [raw_record(conn, rid) for (rid,) in conn.execute("SELECT id FROM journal_rows ORDER BY id")]
        store.close()
        return rows, dicts, records

    deflater = Deflater()
    try:
        apart = run("apart.db", deflater)
    finally:
        deflater.close()
    here = run("here.db", None)
    assert len(here[1]) == 1  # a dictionary was made on the way (records before it and after)
    assert apart == here
    assert len(here[0]) > 2500 and all(r is not None for r in here[2])
