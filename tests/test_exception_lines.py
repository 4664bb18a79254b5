"""Stored CSV lines (migration 0011, issue #16): ``exception_lines`` holds one row a exception, kept by triggers.

* For every exception, the stored line is NULL (made when read: open, or a cell only Python writes right) or
  exactly the line made fresh from the row, through every writer: inserts, the engine's ticks and
  recomputes, approvals and their withdrawal, notes, deletes, a direct UPDATE of any column (a property
  test over arbitrary cell values), and the migration's fill of an existing database.
* Exports by date (the walk of ``exception_lines``) are the old bytes, for days whose exceptions start on
  another date, open exceptions, half-open ranges and empty ones.
"""

from __future__ import annotations

import random
import sqlite3
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adherence import queries as q
from adherence import store as store_mod
from adherence.queries import EXCEPTION_COLUMNS, Filters, csv_lines, exception_csv, exceptions, set_approval

from test_api import ANN, BOB, T, build_center, make_folder
from test_reads import TRICKY, fill


@pytest.fixture
def center(tmp_path):
    c = build_center(make_folder(tmp_path))
    yield c
    c.engine.close()


def _udf_conn(conn: sqlite3.Connection) -> sqlite3.Connection:
    for name, fn in (("adh_cell", q._udf_cell), ("adh_iso", q._udf_iso), ("adh_seconds", q._udf_seconds),
                     ("adh_pct", q._udf_pct)):
        conn.create_function(name, 1, fn, deterministic=True)
    return conn


def check_lines(conn: sqlite3.Connection, now: int = 0) -> tuple[int, int]:
    """Every exception has its row in exception_lines, and a stored line is the line made fresh.
    Returns (closed exceptions, stored lines)."""
    _udf_conn(conn)
    keys = set(conn.execute("SELECT start_ms, id, day FROM exceptions").fetchall())
    assert set(conn.execute("SELECT start_ms, id, day FROM exception_lines").fetchall()) == keys
    closed = stored = 0
    for exc_id, end, line, fresh in conn.execute(
            f"SELECT e.id, e.end_ms, l.line, (SELECT {q._exception_line()} FROM exceptions WHERE id = e.id) "
            "FROM exceptions e JOIN exception_lines l ON l.id = e.id AND l.start_ms = e.start_ms", (now,)):
        if end is None:
            assert line is None, exc_id
            continue
        closed += 1
        if line is not None:
            stored += 1
            assert line == fresh, (exc_id, line, fresh)
    return closed, stored


def old_export(c, f: Filters) -> str:
    return "".join(csv_lines(exceptions(c.engine, f)[0], EXCEPTION_COLUMNS))


def test_engine_writes_keep_the_lines(center):
    """Ticks (an exception opens, then closes), approvals, withdrawal with a note, a recompute."""
    c = center
    conn = c.engine.store.reader
    closed, stored = check_lines(conn, c.clock.now_ms())
    assert closed == stored >= 1  # Ann's closed exception is stored; Bob's open one is not
    c.send(BOB, T("11:40"), "Available")
    c.tick(T("11:45"))
    closed2, stored2 = check_lines(conn, c.clock.now_ms())
    assert closed2 == stored2 == closed + 1  # Bob's closed
    ids = [r[0] for r in conn.execute("SELECT id FROM exceptions ORDER BY id")]
    set_approval(c.engine, ids[0], True, by="sup", note="doctor, \"urgent\"\nsecond line")
    assert check_lines(conn, c.clock.now_ms()) == (closed2, stored2)
    assert '"doctor, ""urgent""\nsecond line"' in conn.execute("SELECT line FROM exception_lines WHERE id = ?",
                                                                 (ids[0],)).fetchone()[0]
    set_approval(c.engine, ids[0], False, by="sup", note="=HYPERLINK()")  # the formula guard: made when read
    assert conn.execute("SELECT line FROM exception_lines WHERE id = ?", (ids[0],)).fetchone()[0] is None
    check_lines(conn, c.clock.now_ms())
    resp = c.client.post(f"/api/exceptions/{ids[-1]}/approve", json={"by": "sup", "note": "ok"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    check_lines(conn, c.clock.now_ms())
    c.engine.runner.recompute(date(2026, 11, 23), date(2026, 11, 25), c.clock.now_ms())
    check_lines(conn, c.clock.now_ms())
    f = Filters()
    assert "".join(exception_csv(c.engine, f)) == old_export(c, f)


def test_direct_writes_keep_the_lines(center):
    """Any connection writing the table (a script, the sqlite3 shell) keeps the lines: inserts, updates of
    each column the line shows, of the key (start, id), deletes."""
    c = center
    fill(c, n_agents=20, days=3)
    with c.engine.store.write() as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM exceptions ORDER BY id")]
        rnd = random.Random(3)
        for col in store_mod.EXCEPTION_LINE_COLUMNS:
            if col == "id":
                continue
            for exc_id in rnd.sample(ids, 5):
                value = {"start_ms": T("09:00") + rnd.randint(0, 10**7), "end_ms": rnd.choice([None, T("12:00")]),
                         "approved": rnd.randint(0, 1), "day": "2026-11-2" + str(rnd.randint(0, 9))}.get(
                    col, rnd.choice(TRICKY + ["plain", None]))
                try:
                    conn.execute(f"UPDATE exceptions SET {col} = ? WHERE id = ?", (value, exc_id))
                except sqlite3.IntegrityError:  # NOT NULL columns
                    pass
        conn.execute("UPDATE exceptions SET id = id + 100000 WHERE id = ?", (ids[0],))
        conn.execute("DELETE FROM exceptions WHERE id IN (?, ?)", (ids[1], ids[2]))
        conn.execute("UPDATE exceptions SET updated_ms = updated_ms + 1")  # not shown: no change needed
    closed, stored = check_lines(c.engine.store.reader, c.clock.now_ms())
    assert 0 < stored < closed  # some lines are plain, some need Python (formula guard)
    for filters in ({}, {"from": "2026-11-20", "to": "2026-11-22"}, {"date": "2026-11-24"}, {"team": "t1"}):
        f = Filters.parse(filters, allowed=filters.keys())
        assert "".join(exception_csv(c.engine, f)) == old_export(c, f), filters


CELL = st.one_of(st.none(), st.text(max_size=12), st.sampled_from(TRICKY), st.integers(-5, 5),
                 st.floats(allow_nan=False, allow_infinity=False, width=32), st.binary(max_size=4))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cells=st.lists(st.tuples(CELL, CELL, CELL, CELL, CELL, CELL, CELL, st.integers(0, 1)), min_size=1,
                      max_size=6),
       starts=st.lists(st.tuples(st.integers(-10**3, 3 * 10**12), st.one_of(st.none(), st.integers(-10**4, 10**8)),
                                 st.sampled_from([0, 1, 2, "1", 0.5])), min_size=1, max_size=6))
def test_stored_line_is_the_fresh_line_for_any_cells(tmp_path_factory, cells, starts):
    """Property: whatever the cells hold (text with quotes, commas, newlines, NUL, formula starts; numbers,
    floats, blobs, NULL), a stored line is the line made fresh, and the export is the old bytes."""
    folder = make_folder(tmp_path_factory.mktemp("cells"))
    c = build_center(folder)
    try:
        with c.engine.store.write() as conn:
            for i, ((agent, team, rule, sched, actual, task, note, appr), (start, dur, approved)) in enumerate(
                    zip(cells, starts * len(cells))):
                end = None if dur is None else start + dur
                conn.execute(
                    "INSERT INTO exceptions (worker_sid, agent, team, rule, severity, scheduled_activity, "
                    "actual_activity, task_state, start_ms, end_ms, day, approved, note, updated_ms) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,0)",
                    (f"WK{i}", "x" if agent is None else agent, team, "r" if rule is None else rule, "warning",
                     sched, actual, task, start, end, "2026-11-24", approved if appr else appr, note))
            conn.execute("UPDATE exceptions SET note = agent WHERE id % 2 = 0")
        check_lines(c.engine.store.reader, c.clock.now_ms())
        for filters in ({}, {"date": "2026-11-24"}):
            f = Filters.parse(filters, allowed=filters.keys())
            assert "".join(exception_csv(c.engine, f)) == old_export(c, f)
    finally:
        c.engine.close()


def test_export_by_date_where_days_and_starts_disagree(center):
    """An exception's day is its shift's: a night shift's exception starts the next date, an early shift's
    the date before. The walk is bounded by the first and last start of the range's days (a few seeks), so
    those rows are in, and the rows of other days inside those bounds are out."""
    c = center
    day_ms = 86_400_000
    with c.engine.store.write() as conn:
        rnd = random.Random(11)
        for i in range(300):
            d = rnd.randint(18, 28)
            start = T("00:00") + (d - 24) * day_ms + rnd.randint(-2 * day_ms, 3 * day_ms)
            end = rnd.choice([None, start + rnd.randint(0, 9_000_000)])
            conn.execute(
                "INSERT INTO exceptions (worker_sid, agent, team, rule, severity, start_ms, end_ms, day, approved, "
                "note, updated_ms) VALUES (?,?,?,?,?,?,?,?,?,?,0)",
                (ANN, "ann", "tier1", "r", "warning", start, end, f"2026-11-{d:02d}", rnd.randint(0, 1),
                 rnd.choice([None, "a,b", "fine", "-x"])))
    for filters in ({"date": "2026-11-21"}, {"from": "2026-11-20", "to": "2026-11-22"}, {"from": "2026-11-25"},
                    {"to": "2026-11-19"}, {"from": "2026-11-18", "to": "2026-11-28"}, {"date": "2026-10-01"},
                    {"from": "2026-12-01"}, {}):
        f = Filters.parse(filters, allowed=filters.keys())
        want = old_export(c, f)
        assert "".join(exception_csv(c.engine, f)) == want, filters
        query = "&".join(f"{k}={v}" for k, v in filters.items())
        assert c.client.get(f"/api/exceptions?format=csv&{query}").get_data(as_text=True) == want


def test_export_by_date_walks_the_lines_in_windows(center, monkeypatch):
    """No sort and no LIMIT/OFFSET: statements on exception_lines' key, one window each, whatever the size."""
    c = center
    fill(c, n_agents=40, days=3)
    f = Filters.parse({"from": "2026-11-20", "to": "2026-11-22"}, allowed=("from", "to"))
    want = old_export(c, f)
    for rows in (1, 7, 10_000):
        monkeypatch.setattr(q, "CHUNK_ROWS", rows)
        statements = []
        real = q._stream_connection

        def traced(engine, real=real):
            conn = real(engine)
            conn.set_trace_callback(statements.append)
            return conn

        monkeypatch.setattr(q, "_stream_connection", traced)
        chunks = list(exception_csv(c.engine, f))
        monkeypatch.setattr(q, "_stream_connection", real)
        assert "".join(chunks) == want
        walks = [s for s in statements if "FROM exception_lines l WHERE start_ms >" in s]
        assert walks and not [s for s in statements if "LIMIT" in s or "OFFSET" in s]
        if rows == 1:
            assert len(chunks) > 10
    sql = walks[0]
    conn = q._stream_connection(c.engine)
    plan = " | ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql))
    conn.close()
    assert "TEMP B-TREE" not in plan and "PRIMARY KEY" in plan, plan


def test_migration_fills_the_lines_of_an_existing_database(tmp_path, monkeypatch):
    """A database written before 0011: the migration adds a line for every exception, as made fresh."""
    path = tmp_path / "old.db"
    monkeypatch.setattr(store_mod, "MIGRATIONS", [m for m in store_mod.MIGRATIONS if m[0] < "0011"])
    conn = store_mod.connect(path)
    store_mod.migrate(conn)
    rnd = random.Random(5)
    with conn:
        conn.execute("BEGIN")
        for i in range(200):
            start = 1_795_000_000_000 + rnd.randint(0, 10**9)
            conn.execute(
                "INSERT INTO exceptions (worker_sid, agent, team, rule, severity, start_ms, end_ms, day, approved, "
                "note, updated_ms) VALUES (?,?,?,?,?,?,?,?,?,?,0)",
                (f"WK{i % 7}", rnd.choice(TRICKY), rnd.choice(["t", None, "a,b"]), "r", "warning", start,
                 rnd.choice([None, start + rnd.randint(0, 10**7)]), "2026-11-24", rnd.randint(0, 1),
                 rnd.choice([None] + TRICKY)))
    monkeypatch.undo()
    assert "0011_exception_lines" in store_mod.migrate(conn)
    closed, stored = check_lines(conn)
    assert 0 < stored < closed
    plan = " | ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN SELECT min(start_ms) FROM exceptions "
                                                 "WHERE day = '2026-11-24'"))
    assert "exceptions_day_start" in plan, plan
    conn.close()
