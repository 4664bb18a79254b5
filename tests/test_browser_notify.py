"""Snooze and acknowledge in a real browser against a real ``adherence serve`` with notifications on.

A named supervisor signs in, snoozes an agent from her card on the live board, acknowledges her open
exception there, ends the snooze from the table view, withdraws the acknowledgement and snoozes again from
the agent's day, and acknowledges from the day page; she also snoozes single exceptions from a card, the
day page and the agent's day. Every step is checked through the API. A viewer signed in on the same board
is offered none of it. Chromium at /usr/bin/chromium, as tests/test_browser.py (under
CI=true a missing browser fails).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest
import requests

from notify_helpers import SECRET, Receiver
from servers import Server
from test_browser import ANN, BEN, CAL, HISTORY_MS, Feed, _chromium_present, browser, write_center  # noqa: F401

pytestmark = [pytest.mark.browser]

SUP = "supervisor-token-0123456789abcdef"
VIEW = "viewer-token-0123456789abcdef00"
ADMIN = "admin-token-0123456789abcdef0000"


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def server(tmp_path, receiver):
    config = write_center(tmp_path)
    (tmp_path / "notifications.yaml").write_text(
        "channels:\n  hook:\n    type: webhook\n    url: " + receiver.url + "\n    secret: ${HOOK_SECRET}\n"
        "routes:\n  - name: all\n    channel: hook\n    remind_every: 15m\n")
    config.write_text(config.read_text().replace(
        "auth:\n  api_token: ${ADHERENCE_API_TOKEN}\n",
        "notifications: notifications.yaml\n"
        "auth:\n  api_token: ${ADHERENCE_API_TOKEN}\n  tokens:\n"
        "    sam: {token: \"${SUP_TOKEN}\", role: supervisor}\n"
        "    wall: {token: \"${VIEW_TOKEN}\", role: viewer}\n"))
    srv = Server(config, env={"ADHERENCE_API_TOKEN": ADMIN, "SUP_TOKEN": SUP, "VIEW_TOKEN": VIEW,
                              "HOOK_SECRET": SECRET}).start()
    yield srv
    srv.kill(15)


def sign_in(browser, server, token):
    context = browser.new_context(viewport={"width": 1600, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.goto(server.url + "/login?next=/%3Fview%3Dcards")
    page.fill("#token", token)
    page.click("#sign-in")
    return page, errors


def api_state(server) -> dict:
    r = requests.get(server.url + "/api/notifications/state", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def go_offline(server, *workers):
    """Every agent Available for two hours, then ``workers`` Offline now: each opens an exception."""
    feed = Feed(server.url)
    for worker in (ANN, BEN, CAL):
        feed.send(worker, "Available", ago_ms=HISTORY_MS)
    for worker in workers:
        feed.send(worker, "Offline")


def _at(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def wait_for(check, timeout=20.0):
    deadline = time.time() + timeout
    while True:
        value = check()
        if value or time.time() > deadline:
            return value
        time.sleep(0.2)


def test_supervisor_snoozes_and_acknowledges_from_the_board_and_the_agent_day(server, browser, receiver):
    from playwright.sync_api import expect

    expect.set_options(timeout=25_000)
    go_offline(server, ANN)
    page, errors = sign_in(browser, server, SUP)
    ann = page.locator('article[data-agent="ann"]')
    expect(ann).to_have_attribute("data-state", "out")
    exc_item = ann.locator(".agent-exceptions li").first
    expect(exc_item.locator("button.ack")).to_be_visible()

    # snooze her from her card: 45 minutes, the name remembered for the history
    before = datetime.now(timezone.utc).timestamp()
    ann.locator("div.notify button.snooze").click()
    expect(page.locator("#notify-dialog")).to_be_visible()
    page.select_option("#notify-minutes", "45")
    page.fill("#notify-by", "Sam Super")
    page.fill("#notify-note", "coaching")
    page.click("#notify-ok")
    expect(ann.locator(".notify-badge.snoozed")).to_contain_text("snoozed until")
    (snooze,) = api_state(server)["agents"]
    until = _at(snooze["until"])
    assert snooze["agent"] == "ann" and snooze["by"] == "Sam Super"
    assert before + 45 * 60 - 5 <= until <= time.time() + 45 * 60 + 5

    # acknowledge her open exception from the card
    exc_id = int(exc_item.get_attribute("data-id"))
    exc_item.locator("button.ack").click()
    page.fill("#notify-note", "on the phone with her")
    page.click("#notify-ok")
    expect(exc_item.locator(".notify-badge.acked")).to_contain_text("acknowledged by Sam Super: on the phone with her")
    (acked,) = [e for e in api_state(server)["exceptions"] if e["exception_id"] == exc_id]
    assert acked["acknowledged"]["by"] == "Sam Super" and acked["open"]
    expect(page.locator(f'#open-exceptions li[data-id="{exc_id}"] .notify-badge')).to_contain_text("acknowledged")

    # the table view: the row says so; end the snooze from there
    page.goto(server.url + "/?view=table")
    row = page.locator('#agents-table tr[data-agent="ann"]')
    expect(row.locator(".notify-badge.snoozed")).to_be_visible()
    expect(row.locator(".notify-badge.acked")).to_have_text("👁 1 of 1 acknowledged")
    row.locator("button.snooze").click()
    page.select_option("#notify-minutes", "0")
    page.click("#notify-ok")
    expect(row.locator(".notify-badge.snoozed")).to_have_count(0)
    assert api_state(server)["agents"] == []

    # the agent's day: the history lists all of it; withdraw the acknowledgement, snooze again for 15 minutes
    day = datetime.now(timezone.utc).date().isoformat()
    page.goto(f"{server.url}/agents/ann?date={day}")
    history = page.locator("#agent-history")
    for action in ("snooze", "ack", "unsnooze"):
        expect(history.locator(f'tr[data-action="{action}"]')).to_have_count(1)
    expect(history.locator('tr[data-action="snooze"]')).to_contain_text("until")
    page.locator(f'#agent-exceptions button.unack[data-id="{exc_id}"]').click()
    expect(page.locator(f'#agent-exceptions button.ack[data-id="{exc_id}"]')).to_be_visible()
    assert not [e for e in api_state(server)["exceptions"] if e["acknowledged"]]
    page.click("#snooze-agent")
    page.select_option("#notify-minutes", "15")
    page.click("#notify-ok")
    expect(page.locator("#agent-snooze")).to_contain_text("snoozed until")
    (snooze,) = api_state(server)["agents"]
    assert snooze["by"] == "Sam Super"

    # the day page: acknowledge from the exceptions table; the history says who did what
    page.goto(f"{server.url}/day?date={day}")
    exc_row = page.locator(f'#exceptions-table tr[data-id="{exc_id}"]')
    exc_row.locator("button.ack").click()
    page.click("#notify-ok")
    expect(exc_row.locator(".notify-badge.acked")).to_contain_text("acknowledged by Sam Super")
    assert [e["acknowledged"]["by"] for e in api_state(server)["exceptions"] if e["acknowledged"]] == ["Sam Super"]
    expect(page.locator('#audit-table tr[data-action="snooze"]')).to_have_count(2)
    expect(page.locator('#audit-table tr[data-action="unack"]')).to_contain_text("withdrew an acknowledgement")
    audit = requests.get(f"{server.url}/api/audit?date={day}", headers={"Authorization": f"Bearer {ADMIN}"},
                         timeout=10).json()["audit"]
    assert [a["action"] for a in audit] == ["snooze", "ack", "unsnooze", "unack", "snooze", "ack"]
    assert {a["by"] for a in audit} == {"Sam Super"}
    assert not errors, errors

    # a viewer on the same board sees the state and is offered nothing
    wall, wall_errors = sign_in(browser, server, VIEW)
    card = wall.locator('article[data-agent="ann"]')
    expect(card.locator(".notify-badge.snoozed")).to_be_visible()
    expect(card.locator(".agent-exceptions .notify-badge.acked")).to_be_visible()
    assert card.locator("button.snooze").count() == 0 and card.locator("button.ack").count() == 0
    wall.goto(f"{server.url}/agents/ann?date={day}")
    expect(wall.locator("#agent-snooze")).to_contain_text("snoozed until")
    assert wall.locator("#snooze-agent").count() == 0 and wall.locator("#agent-exceptions button").count() == 0
    wall.goto(f"{server.url}/day?date={day}")
    expect(wall.locator(f'#exceptions-table tr[data-id="{exc_id}"] .notify-badge.acked')).to_be_visible()
    assert wall.locator("#exceptions-table button.ack, #exceptions-table button.unack").count() == 0
    assert not wall_errors, wall_errors


def snoozed_exceptions(server) -> dict[int, dict]:
    return {e["exception_id"]: e for e in api_state(server)["exceptions"] if e["snoozed_until"]}


def test_supervisor_snoozes_single_exceptions_from_the_board_the_day_page_and_the_agent_day(server, browser, receiver):
    from playwright.sync_api import expect

    expect.set_options(timeout=25_000)
    go_offline(server, ANN, BEN)
    page, errors = sign_in(browser, server, SUP)
    ann, ben = page.locator('article[data-agent="ann"]'), page.locator('article[data-agent="ben"]')
    ann_item, ben_item = ann.locator(".agent-exceptions li").first, ben.locator(".agent-exceptions li").first
    expect(ann_item.locator("button.exc-snooze")).to_be_visible()
    expect(ben_item.locator("button.exc-snooze")).to_be_visible()
    ann_id, ben_id = int(ann_item.get_attribute("data-id")), int(ben_item.get_attribute("data-id"))
    assert ann_id != ben_id
    expect(ann_item.locator("button.exc-snooze")).to_have_attribute("aria-label",
                                                                   f"Snooze alerts of exception #{ann_id}")
    panel = page.locator(f'#open-exceptions li[data-id="{ann_id}"]')
    expect(panel.get_by_role("button", name=f"Snooze alerts of exception #{ann_id}")).to_be_visible()

    # ann's exception from her card, 30 minutes: that exception only, not ann, not ben's
    before = time.time()
    ann_item.locator("button.exc-snooze").click()
    expect(page.locator("#notify-title")).to_have_text(f"Snooze alerts of exception #{ann_id}")
    page.select_option("#notify-minutes", "30")
    page.fill("#notify-by", "Sam Super")
    page.click("#notify-ok")
    expect(ann_item.locator(".notify-badge.snoozed")).to_contain_text("snoozed until")
    expect(ann_item.locator(".notify-badge.snoozed")).to_contain_text("by Sam Super")
    expect(panel.locator(".notify-badge.snoozed")).to_contain_text("by Sam Super")
    expect(ben_item.locator(".notify-badge")).to_have_count(0)
    state = api_state(server)
    assert state["agents"] == []
    (snoozed,) = snoozed_exceptions(server).values()
    assert snoozed["exception_id"] == ann_id and snoozed["agent"] == "ann" and snoozed["snoozed_by"] == "Sam Super"
    assert before + 30 * 60 - 5 <= _at(snoozed["snoozed_until"]) <= time.time() + 30 * 60 + 5

    # the day page: ann's shows its snooze; snooze ben's for an hour there, then end ann's
    day = datetime.now(timezone.utc).date().isoformat()
    page.goto(f"{server.url}/day?date={day}")
    ann_row = page.locator(f'#exceptions-table tr[data-id="{ann_id}"]')
    ben_row = page.locator(f'#exceptions-table tr[data-id="{ben_id}"]')
    expect(ann_row.locator(".notify-badge.snoozed")).to_contain_text("by Sam Super")
    before = time.time()
    ben_row.get_by_role("button", name=f"Snooze alerts of exception #{ben_id}").click()
    page.select_option("#notify-minutes", "60")
    page.click("#notify-ok")
    expect(ben_row.locator(".notify-badge.snoozed")).to_contain_text("snoozed until")
    snoozed = snoozed_exceptions(server)
    assert sorted(snoozed) == sorted([ann_id, ben_id]) and api_state(server)["agents"] == []
    assert before + 60 * 60 - 5 <= _at(snoozed[ben_id]["snoozed_until"]) <= time.time() + 60 * 60 + 5
    assert snoozed[ben_id]["snoozed_by"] == "Sam Super"
    ann_row.locator("button.exc-snooze").click()
    expect(page.locator("#notify-minutes")).to_have_value("0")  # "End the snooze now" is offered first
    page.click("#notify-ok")
    expect(ann_row.locator(".notify-badge.snoozed")).to_have_count(0)
    assert sorted(snoozed_exceptions(server)) == [ben_id]

    # the agent's day (drawn on the server): snooze ann's exception again, 15 minutes
    page.goto(f"{server.url}/agents/ann?date={day}")
    before = time.time()
    page.get_by_role("button", name=f"Snooze alerts of exception #{ann_id}").click()
    page.select_option("#notify-minutes", "15")
    page.click("#notify-ok")
    expect(page.locator(f'#agent-exceptions tr[data-id="{ann_id}"] .notify-badge.snoozed')).to_contain_text(
        "by Sam Super")
    snoozed = snoozed_exceptions(server)
    assert sorted(snoozed) == sorted([ann_id, ben_id])
    assert before + 15 * 60 - 5 <= _at(snoozed[ann_id]["snoozed_until"]) <= time.time() + 15 * 60 + 5
    audit = requests.get(f"{server.url}/api/audit?date={day}", headers={"Authorization": f"Bearer {ADMIN}"},
                         timeout=10).json()["audit"]
    assert [(a["action"], a["exception_id"]) for a in audit] == [
        ("snooze", ann_id), ("snooze", ben_id), ("unsnooze", ann_id), ("snooze", ann_id)]
    assert not errors, errors

    # a viewer sees the snoozes and is offered no exception snooze anywhere
    wall, wall_errors = sign_in(browser, server, VIEW)
    card = wall.locator('article[data-agent="ben"]')
    expect(card.locator(".agent-exceptions .notify-badge.snoozed")).to_contain_text("by Sam Super")
    assert wall.locator("button.exc-snooze").count() == 0
    assert wall.locator("#open-exceptions button").count() == 0
    wall.goto(f"{server.url}/day?date={day}")
    expect(wall.locator(f'#exceptions-table tr[data-id="{ben_id}"] .notify-badge.snoozed')).to_be_visible()
    assert wall.locator("#exceptions-table button.exc-snooze").count() == 0
    wall.goto(f"{server.url}/agents/ann?date={day}")
    expect(wall.locator(f'#agent-exceptions tr[data-id="{ann_id}"] .notify-badge.snoozed')).to_be_visible()
    assert wall.locator("#agent-exceptions button").count() == 0
    assert not wall_errors, wall_errors
