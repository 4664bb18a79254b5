"""Roles and scoped access (#13 item 7): named tokens with a role and a team scope that filters every read
path (JSON, CSV, the board's data, the agent page) and refuses changes outside it; auth.api_token stays admin."""

from __future__ import annotations

import csv
import io

import pytest

from adherence.config import load_config
from adherence.errors import ConfigError
from adherence.web.api import SESSION_COOKIE

import test_neutral_periods as np_
from conftest import Center

API = "admin-token-0123456789abcdef"
VIEW = "viewer-token-0123456789abcdef"
SUP = "tier1-supervisor-token-0123456789"
BOSS = "boss-token-0123456789abcdef012"
TOKENS = """auth:
  api_token: ${ADHERENCE_API_TOKEN}
  tokens:
    wall: {token: "${VIEW_TOKEN}", role: viewer}
    sam: {token: "${SUP_TOKEN}", role: supervisor, teams: [tier1]}
    boss: {token: "${BOSS_TOKEN}", role: admin}
    unset: {token: "${NOT_SET_ANYWHERE}", role: admin}
"""
DAY = np_.DAY


@pytest.fixture
def center(tmp_path, monkeypatch):
    for var, value in (("ADHERENCE_API_TOKEN", API), ("VIEW_TOKEN", VIEW), ("SUP_TOKEN", SUP), ("BOSS_TOKEN", BOSS)):
        monkeypatch.setenv(var, value)
    folder = np_.folder(tmp_path, neutral=False)
    (folder / "config.yaml").write_text((folder / "config.yaml").read_text() + TOKENS)
    c = Center(folder, np_.T("08:00"))
    c.client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {API}"
    np_.a_day(c)
    yield c
    c.engine.close()


def get(c, url, token):
    return c.client.get(url, headers={"Authorization": f"Bearer {token}"})


def post(c, url, token, body, method="POST"):
    return c.client.open(url, method=method, json=body, headers={"Authorization": f"Bearer {token}"})


def csv_rows(resp):
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return list(csv.DictReader(io.StringIO(resp.get_data(as_text=True))))


def test_config_tokens_are_validated(tmp_path, monkeypatch):
    monkeypatch.setenv("T", "x" * 20)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("auth:\n  tokens:\n    a: {token: '${T}', role: root}\n")
    with pytest.raises(ConfigError, match="role: expected one of viewer, supervisor, admin"):
        load_config(cfg)
    cfg.write_text("auth:\n  tokens:\n    a: {token: short, role: viewer}\n")
    with pytest.raises(ConfigError, match="at least 16 characters"):
        load_config(cfg)
    cfg.write_text("auth:\n  tokens:\n    a: {token: '${T}', role: supervisor, teams: [tier1]}\n    b: {token: '${UNSET_X}', role: admin}\n")
    config = load_config(cfg)
    assert [(t.name, t.role, t.teams) for t in config.tokens] == [("a", "supervisor", frozenset({"tier1"}))]
    assert config.auth_enabled


def test_a_scoped_token_sees_only_its_team_on_every_read_path(center):
    c = center
    assert {a["team"] for a in get(c, "/api/agents", API).get_json()["agents"]} == {"tier1", "tier2"}
    agents = get(c, "/api/agents", SUP).get_json()
    assert {a["team"] for a in agents["agents"]} == {"tier1"} and agents["teams"] == ["tier1"]
    assert get(c, "/api/agents?team=tier2", SUP).status_code == 403
    assert {a["team"] for a in get(c, "/api/board/table", SUP).get_json()["agents"]} == {"tier1"}
    assert get(c, "/api/board/table", SUP).get_json()["teams"] == ["tier1"]
    assert get(c, "/api/board/table?team=tier2", SUP).status_code == 403

    exc = get(c, f"/api/exceptions?date={DAY}", SUP).get_json()["exceptions"]
    assert exc and {e["team"] for e in exc} == {"tier1"}
    assert {r["team"] for r in csv_rows(get(c, f"/api/exceptions?date={DAY}&format=csv", SUP))} == {"tier1"}
    assert {r["team"] for r in get(c, f"/api/adherence?date={DAY}", SUP).get_json()["adherence"]} == {"tier1"}
    assert {r["team"] for r in csv_rows(get(c, f"/api/adherence?date={DAY}&format=csv", SUP))} == {"tier1"}
    assert [r["team"] for r in csv_rows(get(c, f"/api/adherence?date={DAY}&group=team&format=csv", SUP))] == ["tier1"]
    assert {r["team"] for r in csv_rows(get(c, f"/api/intervals?date={DAY}&format=csv", SUP))} == {"tier1"}
    assert {r["team"] for r in get(c, f"/api/intervals?date={DAY}&group=team", SUP).get_json()["intervals"]} == {"tier1"}
    assert get(c, f"/api/exceptions?date={DAY}&team=tier2", SUP).status_code == 403
    assert get(c, f"/api/adherence?date={DAY}&agent=bob", SUP).get_json()["adherence"] == []

    bob_exc = get(c, f"/api/exceptions?date={DAY}&agent=bob", API).get_json()["exceptions"][0]
    assert get(c, f"/api/exceptions/{bob_exc['id']}", SUP).status_code == 403
    assert get(c, f"/api/agents/bob/timeline?date={DAY}", SUP).status_code == 403
    assert get(c, f"/api/agents/ann/timeline?date={DAY}", SUP).status_code == 200
    assert get(c, f"/agents/bob?date={DAY}", SUP).status_code == 403

    # the audit and the periods: another team's are not shown
    assert post(c, "/api/periods", BOSS, {"team": "tier2", "start": f"{DAY}T15:00:00Z", "end": f"{DAY}T15:30:00Z",
                                          "reason": "tier2 outage"}).status_code == 201
    assert get(c, f"/api/periods?date={DAY}", SUP).get_json()["periods"] == []
    assert get(c, f"/api/audit?date={DAY}", SUP).get_json()["audit"] == []
    assert csv_rows(get(c, f"/api/audit?date={DAY}&format=csv", SUP)) == []
    assert len(get(c, f"/api/audit?date={DAY}", VIEW).get_json()["audit"]) == 1  # unscoped viewer sees it
    # notification views, which do not filter by team: one exception's or agent's are checked, lists refused
    assert get(c, "/api/notifications", SUP).status_code == 403
    assert get(c, "/api/notifications/audit", SUP).status_code == 403
    assert post(c, f"/api/exceptions/{bob_exc['id']}/ack", SUP, {}).status_code == 403
    assert post(c, "/api/agents/bob/snooze", SUP, {"minutes": 15}).status_code == 403


def test_writes_follow_the_role_and_the_scope(center):
    c = center
    ann = get(c, f"/api/exceptions?date={DAY}&agent=ann", API).get_json()["exceptions"][0]
    bob = get(c, f"/api/exceptions?date={DAY}&agent=bob", API).get_json()["exceptions"][0]
    r = post(c, f"/api/exceptions/{ann['id']}/approve", VIEW, {"by": "wall"})
    assert r.status_code == 403 and "may only read" in r.get_json()["error"]
    r = post(c, f"/api/exceptions/{bob['id']}/approve", SUP, {})
    assert r.status_code == 403 and "outside the scope of token 'sam'" in r.get_json()["error"]
    assert post(c, "/api/exceptions/approve", SUP, {"ids": [ann["id"], bob["id"]]}).status_code == 403
    assert not get(c, f"/api/exceptions/{ann['id']}", API).get_json()["exception"]["approved"]  # nothing changed
    # in scope: by defaults to the token's name; a request may say more
    r = post(c, f"/api/exceptions/{ann['id']}/approve", SUP, {})
    assert r.status_code == 200 and r.get_json()["exception"]["approved_by"] == "sam"
    r = post(c, f"/api/exceptions/{ann['id']}/approve", SUP, {"by": "Sam Supervisor"})
    assert r.get_json()["exception"]["approved_by"] == "Sam Supervisor"
    assert [h["by"] for h in get(c, f"/api/exceptions/{ann['id']}", SUP).get_json()["exception"]["history"]] == [
        "sam", "Sam Supervisor"]
    # periods: everyone is refused to a scoped token; its own team is fine
    span = {"start": f"{DAY}T15:00:00Z", "end": f"{DAY}T15:30:00Z", "reason": "outage"}
    assert post(c, "/api/periods", SUP, span).status_code == 403
    assert post(c, "/api/periods", SUP, {**span, "team": "tier2"}).status_code == 403
    assert post(c, "/api/periods", SUP, {**span, "agent": "bob"}).status_code == 403
    mine = post(c, "/api/periods", SUP, {**span, "team": "tier1"})
    assert mine.status_code == 201 and mine.get_json()["period"]["by"] == "sam"
    everyone = post(c, "/api/periods", BOSS, span).get_json()["period"]
    assert post(c, f"/api/periods/{everyone['id']}", SUP, {}, method="DELETE").status_code == 403
    assert post(c, f"/api/periods/{mine.get_json()['period']['id']}", SUP, {}, method="DELETE").status_code == 200
    # the single api_token still works as admin (by required, as before)
    assert post(c, f"/api/exceptions/{bob['id']}/approve", API, {}).status_code == 400
    assert post(c, f"/api/exceptions/{bob['id']}/approve", API, {"by": "ops"}).status_code == 200


def test_the_board_login_takes_any_token_and_the_session_keeps_its_scope(center):
    c = center
    client = c.app.test_client()
    assert client.get("/api/agents").status_code == 401
    r = client.post("/login", data={"token": SUP, "next": "/"})
    assert r.status_code == 302
    cookie = client.get_cookie(SESSION_COOKIE)
    assert cookie is not None and SUP not in cookie.value and cookie.value.startswith("v2.sam.")
    assert {a["team"] for a in client.get("/api/agents").get_json()["agents"]} == {"tier1"}
    assert client.get(f"/agents/bob?date={DAY}").status_code == 403
    assert client.get(f"/agents/ann?date={DAY}").status_code == 200
    # a forged name in the cookie is refused
    client.set_cookie(SESSION_COOKIE, cookie.value.replace("v2.sam.", "v2.boss."))
    assert client.get("/api/agents").status_code == 401
    admin = c.app.test_client()
    admin.post("/login", data={"token": API, "next": "/"})
    assert admin.get_cookie(SESSION_COOKIE).value.startswith("v1.")
    assert {a["team"] for a in admin.get("/api/agents").get_json()["agents"]} == {"tier1", "tier2"}
