"""Cheap reads (issue #16 item 6): ``/api/agents`` from a shared snapshot, CSV exports from one statement.

* ``/api/agents`` answers exactly what the reference ``agents_now`` builds, through every kind of change
  (a webhook, the clock crossing a segment boundary, a tick, an approval), pages with ``next`` until every
  agent was sent, and answers an unchanged board with ``304``.
* The CSV exports (lines made by SQLite) are byte for byte the ``csv_lines`` of the rows, tricky cells
  included (formula guard, quoting, decimals, empty values), and run one statement, not one per page.
"""

from __future__ import annotations

import json
import random
import sqlite3

import pytest

from adherence.queries import (ADHERENCE_COLUMNS, EXCEPTION_COLUMNS, Filters, adherence, adherence_csv, csv_lines,
                               exception_csv, exceptions, iter_adherence, iter_exceptions)
from adherence.web.api import agents_now

from test_api import ANN, BOB, CAT, STRAY, T, build_center, make_folder


@pytest.fixture
def center(tmp_path):
    c = build_center(make_folder(tmp_path))
    yield c
    c.engine.close()


def reference(c) -> list[dict]:
    with c.app.app_context():
        rows, _ = agents_now(c.engine)
    return json.loads(json.dumps(rows))


def served(c, query: str = "") -> dict:
    resp = c.client.get("/api/agents" + query)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()


def test_agents_match_the_reference_through_changes(center):
    c = center
    assert served(c)["agents"] == reference(c)
    c.send(CAT, T("11:31"), "Offline")  # a webhook
    assert served(c)["agents"] == reference(c)
    c.clock.set(T("12:05"))  # into the break: the scheduled activity changes without any record
    body = served(c)
    assert body["agents"] == reference(c) and body["now"] == "2026-11-24T17:05:00Z"
    assert {a["agent"]: a["scheduled_activity"] for a in body["agents"]}["ann"] == "Break"
    c.tick(T("12:20"))  # a tick: exceptions open, today's figures move
    assert served(c)["agents"] == reference(c)
    bob = next(a for a in served(c)["agents"] if a["agent"] == "bob")
    exc = bob["open_exceptions"][0]["id"]
    assert c.client.post(f"/api/exceptions/{exc}/approve", json={"by": "lead"}).status_code == 200
    assert served(c)["agents"] == reference(c)
    c.clock.set(T("12:20") + 1_234)  # counters exact to the millisecond of "now"
    assert served(c)["agents"] == reference(c)
    c.clock.set(T("09:30"))  # the clock going back is not trusted to keep anything
    assert served(c)["agents"] == reference(c)


def test_agents_filters_match_the_reference(center):
    c = center
    ref = reference(c)
    assert [a["agent"] for a in served(c, "?out_of_adherence=true")["agents"]] == \
        [a["agent"] for a in ref if not a["in_adherence"]]
    assert served(c, "?team=tier1")["agents"] == [a for a in ref if a["team"] == "tier1"]
    assert served(c, "?agent=" + BOB)["agents"] == [a for a in ref if a["worker_sid"] == BOB]
    assert served(c, "?agent=" + STRAY)["agents"] == [a for a in ref if a["worker_sid"] == STRAY]


def test_agents_pages_say_so_and_reach_every_agent(center):
    c = center
    got, url = [], "/api/agents?limit=1"
    while url:
        body = c.client.get(url).get_json()
        assert body["total"] == 4 and body["limit"] == 1
        got += body["agents"]
        url = body["next"]
    assert got == reference(c)
    whole = served(c, "?limit=100000")
    assert whole["next"] is None and len(whole["agents"]) == whole["total"] == 4


def test_agents_etag_304_until_something_changes(center):
    c = center
    first = c.client.get("/api/agents")
    tag = first.headers["ETag"]
    assert tag.startswith('W/"')
    again = c.client.get("/api/agents", headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.get_data() == b"" and again.headers["ETag"] == tag
    other = c.client.get("/api/agents?team=tier1", headers={"If-None-Match": tag})
    assert other.status_code == 200  # another selection, another tag
    c.send(ANN, T("11:40"), "Offline")
    changed = c.client.get("/api/agents", headers={"If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["ETag"] != tag
    assert changed.get_json()["cursor"] > first.get_json()["cursor"]


def test_agents_snapshot_shared_but_scoped(tmp_path, monkeypatch):
    """Two tokens scoped to different teams read the same snapshot and see only their teams."""
    folder = make_folder(tmp_path)
    cfg = folder / "config.yaml"
    cfg.write_text(cfg.read_text() + "auth:\n  tokens:\n"
                   "    one: {token: '${T1}', role: viewer, teams: [tier1]}\n"
                   "    two: {token: '${T2}', role: viewer, teams: [tier2]}\n")
    monkeypatch.setenv("T1", "t" * 20)
    monkeypatch.setenv("T2", "u" * 20)
    c = build_center(folder)
    try:
        ref = reference(c)
        one = c.client.get("/api/agents", headers={"Authorization": "Bearer " + "t" * 20})
        two = c.client.get("/api/agents", headers={"Authorization": "Bearer " + "u" * 20})
        assert one.get_json()["agents"] == [a for a in ref if a["team"] == "tier1"]
        assert two.get_json()["agents"] == [a for a in ref if a["team"] == "tier2"]
        assert one.get_json()["teams"] == ["tier1"] and two.get_json()["teams"] == ["tier2"]
        assert one.headers["ETag"] != two.headers["ETag"]
        peek = c.client.get("/api/agents", headers={"Authorization": "Bearer " + "u" * 20,
                                                    "If-None-Match": one.headers["ETag"]})
        assert peek.status_code == 200 and peek.get_json()["agents"] == two.get_json()["agents"]
        assert c.client.get("/api/agents?agent=ann", headers={"Authorization": "Bearer " + "u" * 20}).status_code == 400
    finally:
        c.engine.close()


# -- CSV ----------------------------------------------------------------------------------------------

TRICKY = ["=SUM(A1)", "+1", "-1", "-1.5", "-x", "@me", "\tTab", "\rCR", "a,b", 'say "hi"', "two\nlines",
          "plain", "", " lead space", "1e5", "-inf", "nan", "Zoë", "50%", "%d %s", "'quoted", "+", "-"]


def fill(c, n_agents: int = 12, days: int = 3, seed: int = 7) -> None:
    """Exceptions and adherence rows written straight into the store, with tricky cells."""
    rnd = random.Random(seed)
    now = c.clock.now_ms()
    base = T("00:00")
    with c.engine.store.write() as conn:
        for d in range(days):
            day = f"2026-11-{20 + d:02d}"
            for i in range(n_agents):
                sid = f"WK{i:032d}"
                agent = rnd.choice(TRICKY + [f"agent{i}"] * 10)
                team = rnd.choice(["t1", "t2", None, "=cmd", "a,b"])
                for k in range(rnd.randint(0, 4)):
                    start = base + (d - 4) * 86_400_000 + rnd.randint(0, 86_399_999)
                    start -= start % rnd.choice([1, 1000, 60_000])
                    end = rnd.choice([None, start + rnd.randint(0, 7_200_000), start + 60_000 * rnd.randint(0, 9)])
                    conn.execute(
                        "INSERT INTO exceptions (worker_sid, agent, team, rule, severity, scheduled_activity, "
                        "actual_activity, task_state, start_ms, end_ms, day, approved, note, updated_ms) "
                        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        (sid, agent, team, rnd.choice(["offline", "-rule", "r,1"]), "warning",
                         rnd.choice([None, "Available", "=x"]), rnd.choice(["Offline", "+y", None]),
                         rnd.choice(["none", None]), start, end, day, rnd.randint(0, 1),
                         rnd.choice([None] + TRICKY), now))
                ms = [rnd.choice([0, 1000, 1500, 1234, 999, 3_600_000, 12_345_678]) for _ in range(6)]
                conn.execute(
                    "INSERT OR REPLACE INTO adherence (worker_sid, day, agent, team, scheduled_ms, in_adherence_ms, "
                    "out_of_adherence_ms, approved_ms, logged_in_ms, adherence_percent, conformance_percent, "
                    "exceptions, as_of_ms, stale, neutral_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (sid, day, agent, team, *ms[:5], rnd.choice([None, 100.0, 33.333333, 66.666666, 0.005, 12.345]),
                     rnd.choice([None, 99.995, 50.0, 1 / 3 * 100]), rnd.randint(0, 5), now, rnd.randint(0, 1),
                     ms[5]))


def old_csv(rows, columns) -> str:
    return "".join(csv_lines(rows, columns))


@pytest.mark.parametrize("filters", [
    {}, {"date": "2026-11-21"}, {"from": "2026-11-20", "to": "2026-11-21"}, {"team": "t1"}, {"agent": ANN},
    {"status": "open"}, {"status": "closed", "approved": "true"}, {"rule": "-rule"},
])
def test_exception_csv_is_the_rows_csv(center, filters):
    c = center
    fill(c)
    f = Filters.parse(filters, allowed=filters.keys())
    rows, total = exceptions(c.engine, f)
    want = old_csv(rows, EXCEPTION_COLUMNS)
    assert "".join(exception_csv(c.engine, f)) == want
    assert old_csv(iter_exceptions(c.engine, f), EXCEPTION_COLUMNS) == want
    assert list(iter_exceptions(c.engine, f)) == rows
    query = "&".join(f"{k}={v}" for k, v in filters.items())
    assert c.client.get(f"/api/exceptions?format=csv&{query}").get_data(as_text=True) == want
    assert want.count("\r\n") >= total + 1


@pytest.mark.parametrize("filters", [{}, {"date": "2026-11-22"}, {"team": "t2"}, {"agent": CAT}])
def test_adherence_csv_is_the_rows_csv(center, filters):
    c = center
    fill(c)
    f = Filters.parse(filters, allowed=filters.keys())
    rows, _ = adherence(c.engine, f)
    want = old_csv(rows, ADHERENCE_COLUMNS)
    assert "".join(adherence_csv(c.engine, f)) == want
    assert list(iter_adherence(c.engine, f)) == rows
    query = "&".join(f"{k}={v}" for k, v in filters.items())
    assert c.client.get(f"/api/adherence?format=csv&{query}").get_data(as_text=True) == want


def test_csv_streams_in_batches_from_one_statement(center, monkeypatch):
    """An export filtered by more than dates (by date alone: tests/test_exception_lines.py)."""
    import adherence.queries as q

    c = center
    fill(c, n_agents=30, days=3)
    f = Filters(severity="warning")
    want = old_csv(exceptions(c.engine, f)[0], EXCEPTION_COLUMNS)
    monkeypatch.setattr(q, "STREAM_BATCH", 7)
    statements = []
    real = q._stream_connection

    def traced(engine):
        conn = real(engine)
        conn.set_trace_callback(statements.append)
        return conn

    monkeypatch.setattr(q, "_stream_connection", traced)
    chunks = list(exception_csv(c.engine, f))
    assert "".join(chunks) == want and len(chunks) > 3
    assert [s for s in statements if "FROM exceptions" in s and "LIMIT" not in s and "OFFSET" not in s]
    assert len([s for s in statements if "FROM exceptions" in s]) == 1


def test_csv_stream_closes_its_connection_when_the_client_leaves(center, monkeypatch):
    import adherence.queries as q

    c = center
    fill(c, n_agents=30)
    opened = []
    real = q._stream_connection
    monkeypatch.setattr(q, "STREAM_BATCH", 2)
    monkeypatch.setattr(q, "_stream_connection", lambda e: opened.append(real(e)) or opened[-1])
    gen = exception_csv(c.engine, Filters())
    next(gen), next(gen)
    gen.close()
    with pytest.raises(sqlite3.ProgrammingError):
        opened[0].execute("SELECT 1")


def test_export_of_one_agent_uses_the_index_in_order(center):
    """The agent's export walks exceptions_worker_start backwards: no sort at all."""
    from adherence.queries import EXCEPTION_ORDER, _exception_where

    c = center
    where, params = _exception_where(c.engine, Filters(agent=ANN, start=None))
    plan = " | ".join(r[3] for r in c.engine.store.reader.execute(
        f"EXPLAIN QUERY PLAN SELECT * FROM exceptions{where} {EXCEPTION_ORDER}", params))
    assert "exceptions_worker_start" in plan and "TEMP B-TREE" not in plan, plan


def test_unknown_agent_refused_before_the_stream(center):
    resp = center.client.get("/api/exceptions?format=csv&agent=nobody")
    assert resp.status_code == 400 and "unknown agent" in resp.get_json()["error"]
    resp = center.client.get("/api/adherence?format=csv&agent=nobody")
    assert resp.status_code == 400


def test_header_only_when_nothing_matches(center):
    text = center.client.get("/api/exceptions?format=csv&date=2020-01-01").get_data(as_text=True)
    assert text == ",".join(EXCEPTION_COLUMNS) + "\r\n"



def test_audit_csv_streams_the_same_rows(center):
    """/api/audit?format=csv: streamed from one statement, the rows and order of ``audit``."""
    from adherence.approvals import AUDIT_COLUMNS, audit

    c = center
    bob = next(a for a in served(c)["agents"] if a["agent"] == "bob")
    exc = bob["open_exceptions"][0]["id"]
    assert c.client.post(f"/api/exceptions/{exc}/approve", json={"by": "lead", "note": "=cmd, \"x\""}).status_code == 200
    assert c.client.post(f"/api/exceptions/{exc}/unapprove", json={"by": "lead"}).status_code == 200
    assert c.client.post("/api/periods", json={"team": "tier1", "start": "2026-11-24T15:00:00Z",
                                                "end": "2026-11-24T15:30:00Z", "reason": "outage", "by": "lead"}
                         ).status_code == 201
    for query, kw in (("", {}), ("&agent=ann", {"worker_sid": ANN}), ("&date=2026-11-24", {"first": "2026-11-24",
                                                                                            "last": "2026-11-24"})):
        rows = [{**r, "detail": json.dumps(r["detail"], sort_keys=True) if r["detail"] else None}
                for r in audit(c.engine, teams=None, **kw)]
        want = old_csv(rows, AUDIT_COLUMNS)
        assert want.count("\r\n") > 1
        assert c.client.get("/api/audit?format=csv" + query).get_data(as_text=True) == want
