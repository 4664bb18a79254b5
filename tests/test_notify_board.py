"""Snooze and acknowledge from the board and the agent's day (issue #14): the state the pages show, who is
offered and allowed the controls (roles, team scopes, the session cookie's JSON rule), and the history they
write in the supervisor audit table (which a recompute leaves alone)."""

from __future__ import annotations

from datetime import date

import pytest

from adherence.timeutil import iso
from adherence.web.api import SESSION_COOKIE

from conftest import Center
from test_access import API, BOSS, SUP, TOKENS, VIEW
from test_notify import ANN, BOB, N, T, folder, hook, hook_channel  # noqa: F401  (hook: the fixture)

DAY = "2026-11-24"


def _center(tmp_path, monkeypatch, hook, notifications: bool = True) -> N:
    for var, value in (("ADHERENCE_API_TOKEN", API), ("VIEW_TOKEN", VIEW), ("SUP_TOKEN", SUP), ("BOSS_TOKEN", BOSS)):
        monkeypatch.setenv(var, value)
    folder(tmp_path, """
        - name: all
          channel: hook
          remind_every: 10m
    """, hook_channel(hook.url))
    cfg = tmp_path / "config.yaml"
    text = cfg.read_text() + TOKENS
    if not notifications:
        text = text.replace("notifications: notifications.yaml\n", "")
    cfg.write_text(text)
    c = N(tmp_path, T("08:55")) if notifications else Center(tmp_path, T("08:55"))
    c.client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {API}"
    return c


def as_(c, token, url, body=None, method=None):
    headers = {"Authorization": f"Bearer {token}"}
    if body is None and method is None:
        return c.client.get(url, headers=headers)
    return c.client.open(url, method=method or "POST", json=body, headers=headers)


@pytest.fixture
def c(tmp_path, monkeypatch, hook):
    center = _center(tmp_path, monkeypatch, hook)
    center.send(ANN, T("09:05"), "Offline")
    center.send(BOB, T("09:05"), "Offline")
    center.tick(T("09:15"))
    yield center
    center.engine.close()


def _exc(c, agent: str) -> dict:
    (e,) = c.client.get(f"/api/exceptions?agent={agent}&date={DAY}").get_json()["exceptions"]
    return e


def test_snooze_and_ack_are_in_the_audit_history_and_the_state_and_survive_recompute(c):
    ann = _exc(c, "ann")
    # a named supervisor need not say who: the token's name is recorded, as for approvals
    r = as_(c, SUP, "/api/agents/ann/snooze", {"minutes": 30, "note": "in a coaching session"})
    assert r.status_code == 200 and r.get_json()["snooze"]["until"] == iso(T("09:45"))
    r = as_(c, SUP, f"/api/exceptions/{ann['id']}/ack", {"note": "on the phone with her"})
    assert r.status_code == 200 and r.get_json()["acknowledged"]["by"] == "sam"

    state = as_(c, SUP, f"/api/notifications/state?date={DAY}").get_json()
    assert state["can_write"] and state["configured"] and state["named"]
    assert state["agents"] == [{"agent": "ann", "worker_sid": ANN, "until": iso(T("09:45")), "by": "sam"}]
    (e,) = state["exceptions"]
    assert e["exception_id"] == ann["id"] and e["open"] and e["snoozed_until"] is None
    assert e["acknowledged"]["by"] == "sam" and e["acknowledged"]["note"] == "on the phone with her"

    # one history: the supervisor audit table, with who, when, until and the note
    audit = c.client.get(f"/api/audit?date={DAY}").get_json()["audit"]
    assert [(a["action"], a["by"], a["agent"], a["day"], a["note"]) for a in audit] == [
        ("snooze", "sam", "ann", DAY, "in a coaching session"),
        ("ack", "sam", "ann", DAY, "on the phone with her")]
    assert audit[0]["detail"] == {"minutes": 30, "until": iso(T("09:45"))} and audit[0]["at"] == iso(T("09:15"))
    assert audit[1]["exception_id"] == ann["id"]
    history = c.client.get(f"/api/exceptions/{ann['id']}").get_json()["exception"]["history"]
    assert [h["action"] for h in history] == ["ack"]
    assert [a["action"] for a in c.client.get("/api/notifications/audit").get_json()["audit"]] == ["ack", "snooze"]

    # ending the snooze and withdrawing the acknowledgement are history too
    c.clock.set(T("09:20"))
    assert as_(c, SUP, "/api/agents/ann/snooze", {"minutes": 0}).status_code == 200
    assert as_(c, SUP, f"/api/exceptions/{ann['id']}/ack", {}, method="DELETE").status_code == 200
    assert as_(c, SUP, f"/api/exceptions/{ann['id']}/ack", {"note": "again"}).status_code == 200
    before = c.client.get(f"/api/audit?date={DAY}").get_json()["audit"]
    assert [a["action"] for a in before] == ["snooze", "ack", "unsnooze", "unack", "ack"]

    # a recompute rewrites exceptions and figures, never the history (nor the acknowledgement it keeps)
    c.engine.runner.recompute(date(2026, 11, 24), date(2026, 11, 24))
    assert c.client.get(f"/api/audit?date={DAY}").get_json()["audit"] == before
    state = as_(c, SUP, "/api/notifications/state").get_json()
    assert state["agents"] == [] and state["exceptions"][0]["acknowledged"]["note"] == "again"

    # the agent's day shows it: the history with the snooze's end, the acknowledgement with who
    html = as_(c, SUP, f"/agents/ann?date={DAY}").get_data(as_text=True)
    assert "snooze until " + iso(T("09:45")) in html
    assert 'data-action="unsnooze"' in html and 'data-action="ack"' in html
    assert "👁 acknowledged by sam: again" in html
    assert "Alerts about Ann are not snoozed." in html


def test_controls_are_offered_and_allowed_by_role_and_team_only(c):
    ann, bob = _exc(c, "ann"), _exc(c, "bob")
    assert as_(c, API, "/api/agents/bob/snooze", {"minutes": 15, "by": "ops"}).status_code == 200

    # the viewer sees the state, is offered nothing and may change nothing
    state = as_(c, VIEW, "/api/notifications/state").get_json()
    assert not state["can_write"] and [a["agent"] for a in state["agents"]] == ["bob"]
    assert as_(c, VIEW, "/api/agents/ann/snooze", {"minutes": 15, "by": "wall"}).status_code == 403
    assert as_(c, VIEW, f"/api/exceptions/{ann['id']}/ack", {"by": "wall"}).status_code == 403
    html = as_(c, VIEW, f"/agents/bob?date={DAY}").get_data(as_text=True)
    assert "Alerts about Bob are snoozed until 09:30 (UTC-05:00) by ops." in html
    assert 'id="snooze-agent"' not in html and 'class="ack"' not in html

    # the tier1 supervisor: bob (tier2) is neither shown nor changeable
    state = as_(c, SUP, "/api/notifications/state").get_json()
    assert state["can_write"] and state["agents"] == []
    assert as_(c, SUP, "/api/agents/bob/snooze", {"minutes": 15}).status_code == 403
    assert as_(c, SUP, f"/api/exceptions/{bob['id']}/ack", {}).status_code == 403
    assert as_(c, SUP, f"/api/exceptions/{bob['id']}/snooze", {"minutes": 15}).status_code == 403
    assert as_(c, SUP, f"/agents/bob?date={DAY}").status_code == 403
    html = as_(c, SUP, f"/agents/ann?date={DAY}").get_data(as_text=True)
    assert 'id="snooze-agent"' in html and f'class="ack" data-id="{ann["id"]}"' in html
    as_(c, API, f"/api/exceptions/{bob['id']}/ack", {"by": "ops"})
    assert as_(c, SUP, "/api/notifications/state").get_json()["exceptions"] == []  # bob's ack: another team

    # the single api_token has no name: it must say who
    r = as_(c, API, "/api/agents/ann/snooze", {"minutes": 15})
    assert r.status_code == 400 and "by" in r.get_json()["error"]
    # in steps, up to the maximum
    assert as_(c, SUP, "/api/agents/ann/snooze", {"minutes": 20}).status_code == 400
    assert as_(c, SUP, "/api/agents/ann/snooze", {"minutes": 1440}).status_code == 400
    assert as_(c, SUP, "/api/agents/ann/snooze", {"minutes": 1425}).status_code == 200

    # the board's session: a change must be JSON (a cross-site form cannot send it)
    board = c.app.test_client()
    board.post("/login", data={"token": SUP, "next": "/"})
    assert board.get_cookie(SESSION_COOKIE) is not None
    assert board.post("/api/agents/ann/snooze", data={"minutes": "15"}).status_code == 403
    r = board.post("/api/agents/ann/snooze", json={"minutes": 15})
    assert r.status_code == 200
    audit = c.client.get(f"/api/audit?date={DAY}").get_json()["audit"]
    assert [(a["action"], a["by"]) for a in audit][-1] == ("snooze", "sam")


def test_the_table_rows_carry_the_open_exceptions_to_acknowledge(c):
    ann = _exc(c, "ann")
    rows = {r["agent"]: r for r in c.client.get("/api/board/table").get_json()["agents"]}
    assert rows["ann"]["open_exception_ids"] == [ann["id"]]
    pages = {p: c.client.get(p).get_data(as_text=True) for p in ("/?view=table", "/?view=cards", f"/day?date={DAY}")}
    assert all("notify.js" in html for html in pages.values())


def test_without_notifications_nothing_is_offered(tmp_path, monkeypatch, hook):
    c = _center(tmp_path, monkeypatch, hook, notifications=False)
    try:
        c.send(ANN, T("09:05"), "Offline")
        c.tick(T("09:15"))
        state = c.client.get("/api/notifications/state").get_json()
        assert state["configured"] is False and state["can_write"] is False and state["agents"] == []
        html = c.client.get(f"/agents/ann?date={DAY}").get_data(as_text=True)
        assert 'id="agent-alerts"' not in html and "<th>Alerts</th>" not in html
        assert "exc-snooze" not in html
        assert c.client.post("/api/agents/ann/snooze", json={"minutes": 15, "by": "x"}).status_code == 409
    finally:
        c.engine.close()


def test_the_agent_day_offers_a_snooze_per_exception_to_who_may(c):
    ann = _exc(c, "ann")
    button = (f'<button type="button" class="snooze exc-snooze" data-id="{ann["id"]}" '
              f'aria-label="Snooze alerts of exception #{ann["id"]}">')
    html = as_(c, SUP, f"/agents/ann?date={DAY}").get_data(as_text=True)
    assert button + "🔕 Snooze…</button>" in html and "snoozed until" not in html

    r = as_(c, SUP, f"/api/exceptions/{ann['id']}/snooze", {"minutes": 45})
    assert r.status_code == 200 and r.get_json()["snooze"]["until"] == iso(T("10:00"))
    state = as_(c, SUP, "/api/notifications/state").get_json()
    assert state["agents"] == []
    assert [(e["exception_id"], e["snoozed_until"], e["snoozed_by"]) for e in state["exceptions"]] == [
        (ann["id"], iso(T("10:00")), "sam")]
    html = as_(c, SUP, f"/agents/ann?date={DAY}").get_data(as_text=True)
    assert '<span class="notify-badge snoozed">🔕 snoozed until 10:00 (UTC-05:00) by sam</span>' in html
    assert button + "Snooze…</button>" in html and "Alerts about Ann are not snoozed." in html

    # the viewer sees the snooze, is offered no button; without notifications there is no column at all
    html = as_(c, VIEW, f"/agents/ann?date={DAY}").get_data(as_text=True)
    assert "🔕 snoozed until 10:00 (UTC-05:00) by sam" in html and "exc-snooze" not in html
    # a closed exception that is not snoozed offers none
    c.send(ANN, T("09:20"), "Available")
    c.tick(T("09:25"))
    assert as_(c, SUP, f"/api/exceptions/{ann['id']}/snooze", {"minutes": 0}).status_code == 200
    assert _exc(c, "ann")["status"] != "open"
    html = as_(c, SUP, f"/agents/ann?date={DAY}").get_data(as_text=True)
    assert 'id="snooze-agent"' in html and "exc-snooze" not in html
