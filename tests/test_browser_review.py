"""The day page's review tools in a real browser against a real ``adherence serve``: a period approval
changes the figures shown and withdrawing it restores them; bulk approval of selected exceptions; the
history lists both."""

from __future__ import annotations

import time
from pathlib import Path
from datetime import datetime, timedelta, timezone

import pytest
import requests

from test_browser import ANN, BEN, CAL, HISTORY_MS, TOKEN, Feed, _chromium_present, browser, server  # noqa: F401

pytestmark = [pytest.mark.browser]
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def sign_in(page, url: str) -> None:
    page.goto(url + "/login")
    page.fill("#token", TOKEN)
    page.click("#sign-in")


def test_period_approval_and_bulk_approval_change_the_figures(server, browser):  # noqa: F811
    from playwright.sync_api import expect

    expect.set_options(timeout=25_000)
    now = datetime.now(timezone.utc)
    if now.hour == 23 and now.minute >= 55 or now.hour == 0 and now.minute < 5:
        pytest.skip("the period form takes times of one UTC day; too close to midnight")
    feed = Feed(server.url)
    for w in (ANN, BEN, CAL):
        feed.send(w, "Available", ago_ms=HISTORY_MS)
    feed.send(ANN, "Offline")
    feed.send(BEN, "Offline")
    time.sleep(3.5)
    feed.send(ANN, "Available")
    feed.send(BEN, "Available")
    deadline = time.time() + 20
    while time.time() < deadline:
        rows = requests.get(server.url + "/api/exceptions?status=closed", headers=AUTH, timeout=10).json()
        if rows["total"] == 2:
            break
        time.sleep(0.5)
    assert rows["total"] == 2, rows
    day = rows["exceptions"][0]["day"]

    page = browser.new_page(viewport={"width": 1600, "height": 1200})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    sign_in(page, server.url)
    page.goto(f"{server.url}/day?date={day}")
    ann_pct = page.locator('#adherence-table tr[data-agent="ann"] .adherence-pct')
    ann_neutral = page.locator('#adherence-table tr[data-agent="ann"] .neutral-seconds')
    expect(ann_neutral).to_have_text("0:00:00")
    before = ann_pct.inner_text()
    assert before != "100.00%"

    # the interval heat-strip: a row per team, a cell per 30 minutes; the outage's cell is not all green
    cells = page.locator("#interval-strip svg .cell")
    expect(cells.first).to_be_visible()
    teams = {c.get_attribute("data-team") for c in cells.all()}
    assert teams == {"blue", "green"}
    slot = now.replace(minute=0 if now.minute < 30 else 30, second=0, microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    outage = page.locator(f'#interval-strip .cell[data-team="blue"][data-start="{slot}"]')
    outage.focus()
    expect(page.locator("#strip-detail")).to_contain_text("blue")
    expect(page.locator("#strip-detail")).to_contain_text("out 0:00:0")
    assert outage.locator("rect").get_attribute("class") in ("heat-good", "heat-mid", "heat-bad")

    # a period approval for team blue (Ann, Cal) around the outage: Ann's exception time turns neutral
    start = (now - timedelta(minutes=1)).strftime("%H:%M")
    end = (now + timedelta(minutes=2)).strftime("%H:%M")
    page.select_option("#period-scope", "team")
    page.fill("#period-target", "blue")
    page.fill("#period-start", start)
    page.fill("#period-end", end)
    page.select_option("#period-mode", "neutral")
    page.fill("#period-reason", "Flex outage")
    page.fill("#period-by", "Pat Planner")
    page.click("#period-ok")
    period_row = page.locator("#periods-table tbody tr").first
    expect(period_row).to_contain_text("team blue")
    expect(period_row.locator(".period-state")).to_have_text("in force")
    expect(ann_pct).to_have_text("100.00%")
    expect(ann_neutral).not_to_have_text("0:00:00")
    ben_pct = page.locator('#adherence-table tr[data-agent="ben"] .adherence-pct')
    assert ben_pct.inner_text() != "100.00%"  # team green: untouched
    ann_exc = page.locator("#exceptions-table tbody tr", has_text="ann")
    expect(ann_exc.locator(".approval")).to_contain_text("excused by period #")

    # withdrawing restores Ann's figure
    period_row.locator("button.withdraw-period").click()
    expect(period_row.locator(".period-state")).to_have_text("withdrawn by Pat Planner")
    expect(ann_pct).to_have_text(before)

    # bulk approval: select both exceptions, approve them in one go
    page.check("#select-all")
    expect(page.locator("#selected-count")).to_have_text("2 selected")
    page.click("#approve-selected")
    page.fill("#approval-by", "Pat Planner")
    page.fill("#approval-note", "storm")
    page.click("#approval-ok")
    expect(ann_pct).to_have_text("100.00%")
    expect(ben_pct).to_have_text("100.00%")
    expect(page.locator("#audit-table tbody tr")).to_have_count(4)  # period, its withdrawal, two approvals
    expect(page.locator('#audit-table tr[data-action="period_withdraw"]')).to_contain_text("Pat Planner")
    assert not errors, errors


def write_dst_center(folder):
    (folder / "schedules").mkdir()
    (folder / "schedules" / "roster.yaml").write_text(
        "timezone: America/New_York\nagents:\n"
        f"  ann: {{worker_sid: {ANN}, name: Ann Wall, team: blue}}\n"
        "shifts:\n  - agents: [ann]\n    days: [mon, tue, wed, thu, fri, sat, sun]\n    segments:\n"
        "      - 00:30-03:30 Available\n      - 09:00-17:00 Available\n      - 12:00-12:30 Lunch\n"
        "      - 15:00-15:15 Break\n")
    (folder / "rules").mkdir()
    import shutil

    from conftest import REPO

    shutil.copy(REPO / "rules" / "default.yaml", folder / "rules" / "default.yaml")
    config = folder / "config.yaml"
    config.write_text("database: dst.db\ntimezone: America/New_York\nschedules: schedules\nrules: rules\n"
                      "evaluation:\n  interval: 1s\nauth:\n  api_token: ${ADHERENCE_API_TOKEN}\n")
    return config


def post(url: str, n: int, at: str, activity: str, task: str | None = None) -> None:
    from adherence.timeutil import iso, parse_instant_ms

    channels = None
    if task:
        channels = [{"task_channel_name": "voice", "available": True, "capacity": 1, "available_capacity": 0,
                     "reservations": [{"sid": f"WR{n:032d}", "status": task}]}]
    env = {"product": "Flex", "object": "WFMWorkerChange", "version": 1, "records": [{
        "worker": {"sid": ANN, "activity_name": activity}, "channels": channels,
        "last_processed_event_sid": f"EV{n:032d}", "date_last_processed_event": iso(parse_instant_ms(at))}]}
    assert requests.post(url + "/webhooks/rta", json=env, timeout=10).status_code == 200


def test_an_agents_timeline_across_a_dst_day(tmp_path, browser):  # noqa: F811
    import os

    from playwright.sync_api import expect

    from servers import Server

    expect.set_options(timeout=25_000)
    srv = Server(write_dst_center(tmp_path), env={"ADHERENCE_API_TOKEN": TOKEN}).start()
    try:
        for n, (at, act, task) in enumerate([
                ("2026-11-01T00:25:00-04:00", "Available", None),
                ("2026-11-01T01:40:00-04:00", "Offline", None),       # the first 01:40 (EDT)
                ("2026-11-01T01:20:00-05:00", "Available", None),     # the second 01:20 (EST)
                ("2026-11-01T10:00:00-05:00", "Available", "accepted"),
                ("2026-11-01T10:20:00-05:00", "Available", None),
                ("2026-11-01T12:02:00-05:00", "Lunch", None),
                ("2026-11-01T12:41:00-05:00", "Available", None),
                ("2026-11-01T15:00:00-05:00", "Break", None),
                ("2026-11-01T15:15:00-05:00", "Available", None),
                ("2026-11-01T17:02:00-05:00", "Offline", None)], 1):
            post(srv.url, n, at, act, task)
        deadline = time.time() + 20
        while time.time() < deadline:
            rows = requests.get(srv.url + "/api/adherence?date=2026-11-01&agent=ann", headers=AUTH, timeout=10).json()
            if rows["total"]:
                break
            time.sleep(0.5)
        page = browser.new_page(viewport={"width": 1500, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        sign_in(page, srv.url)
        # linked from the day page
        page.goto(srv.url + "/day?date=2026-11-01")
        page.locator('#adherence-table tr[data-agent="ann"] a.agent-link').click()
        expect(page).to_have_url(srv.url + "/agents/ann?date=2026-11-01")
        expect(page.locator("#day-hours")).to_have_text("25 h")
        expect(page.locator("#tz .offset")).to_have_text(["-04:00", "-05:00"])
        expect(page.locator("svg.timeline .tick-label", has_text="01:00")).to_have_count(2)
        rows_drawn = page.locator("svg.timeline .tl-row")
        expect(rows_drawn).to_have_count(5)
        # keyboard focus on the exception across the change shows its exact local times with both offsets
        exc = page.locator('svg.timeline .tl-row[data-row="Exceptions"] .seg').first
        exc.focus()
        expect(page.locator("#detail")).to_have_text(
            "#1 offline-when-scheduled-available (critical, not approved): 01:40:00 (UTC-04:00) – 01:20:00 (UTC-05:00)")
        # hover works too
        page.locator('svg.timeline .tl-row[data-row="Task"] .seg').first.hover()
        expect(page.locator("#detail")).to_contain_text("task active: 10:00:00 (UTC-05:00) – 10:20:00 (UTC-05:00)")
        if os.environ.get("ADHERENCE_SCREENSHOT") == "1":
            exc.focus()
            page.screenshot(path=str(Path(__file__).resolve().parent.parent / "docs" / "timeline.png"), full_page=True)
        assert not errors, errors
    finally:
        srv.kill(15)


def test_a_supervisor_token_sees_only_its_team_and_is_refused_elsewhere(tmp_path, browser):  # noqa: F811
    from playwright.sync_api import expect

    from servers import Server
    from test_browser import write_center

    expect.set_options(timeout=25_000)
    config = write_center(tmp_path)
    sup = "blue-supervisor-token-0123456789"
    config.write_text(config.read_text() + "  tokens:\n    pat: {token: \"${SUP_TOKEN}\", role: supervisor, teams: [blue]}\n")
    srv = Server(config, env={"ADHERENCE_API_TOKEN": TOKEN, "SUP_TOKEN": sup}).start()
    try:
        feed = Feed(srv.url)
        for w in (ANN, BEN, CAL):
            feed.send(w, "Available", ago_ms=HISTORY_MS)
        feed.send(BEN, "Offline")
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(srv.url + "/login")
        page.fill("#token", sup)
        page.click("#sign-in")
        expect(page.locator("article.agent")).to_have_count(2)  # Ann and Cal (blue); Ben (green) is not shown
        expect(page.locator('article[data-agent="ben"]')).to_have_count(0)
        expect(page.locator('section[data-team="blue"]')).to_be_visible()
        # the day page's reads are scoped too
        today = datetime.now(timezone.utc).date().isoformat()
        page.goto(f"{srv.url}/day?date={today}")
        expect(page.locator('#adherence-table tr[data-agent="ann"]')).to_be_visible()
        expect(page.locator('#adherence-table tr[data-agent="ben"]')).to_have_count(0)
        # another team's agent page is refused
        resp = page.goto(f"{srv.url}/agents/ben?date={today}")
        assert resp.status == 403
        expect(page.locator(".error-banner")).to_contain_text("outside the scope of token 'pat'")
        # and so is the API, with the same session
        status = page.evaluate("() => fetch('/api/exceptions?team=green').then(r => r.status)")
        assert status == 403
    finally:
        srv.kill(15)


def write_big_center(folder, n: int):
    """n agents in teams of 100, scheduled Available all day (UTC) yesterday, today and tomorrow."""
    today = datetime.now(timezone.utc).date()
    lines = ["timezone: UTC", "agents:"]
    for i in range(n):
        lines.append(f"  a{i:05d}: {{worker_sid: WK{i:032d}, name: Agent {i:05d}, team: t{i // 100:03d}}}")
    lines.append("shifts:")
    for d in (-1, 0, 1):
        lines += [f"  - teams: [{', '.join(f't{k:03d}' for k in range((n + 99) // 100))}]",
                  f"    date: {(today + timedelta(days=d)).isoformat()}", "    segments:", "      - 00:00-24:00 Available"]
    (folder / "schedules").mkdir()
    (folder / "schedules" / "roster.yaml").write_text("\n".join(lines) + "\n")
    (folder / "rules").mkdir()
    (folder / "rules" / "rules.yaml").write_text(
        "rules:\n  - name: offline-when-scheduled-available\n"
        "    when:\n      scheduled: Available\n      activity: [Offline, Unknown]\n    for: 2s\n    severity: critical\n")
    config = folder / "config.yaml"
    config.write_text("database: big.db\ntimezone: UTC\nschedules: schedules\nrules: rules\n"
                      "evaluation:\n  interval: 2s\nauth:\n  api_token: ${ADHERENCE_API_TOKEN}\n")
    return config


def test_table_mode_lists_every_agent_of_a_10000_agent_center_worst_first(tmp_path, browser):  # noqa: F811
    from playwright.sync_api import expect

    from adherence.timeutil import iso
    from servers import Server

    expect.set_options(timeout=60_000)
    n = 10_000
    srv = Server(write_big_center(tmp_path, n), env={"ADHERENCE_API_TOKEN": TOKEN}).start(timeout=120)
    try:
        now = time.time_ns() // 1_000_000

        def records(items):
            return {"product": "Flex", "object": "WFMWorkerChange", "version": 1, "records": [
                {"worker": {"sid": f"WK{i:032d}", "activity_name": act}, "channels": None,
                 "last_processed_event_sid": f"EV{k:032d}", "date_last_processed_event": iso(at)}
                for k, (i, act, at) in items]}

        everyone = [(i, (i, "Available", now - HISTORY_MS)) for i in range(n)]
        assert requests.post(srv.url + "/webhooks/rta", json=records(everyone), timeout=120).status_code == 200
        # five agents go Offline, the earliest first: 7777 longest, then 42, 9999, 5000, 1
        late = [(n + j, (i, "Offline", now - (60 - 10 * j) * 1000)) for j, i in enumerate((7777, 42, 9999, 5000, 1))]
        assert requests.post(srv.url + "/webhooks/rta", json=records(late), timeout=60).status_code == 200

        page = browser.new_page(viewport={"width": 1500, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        sign_in(page, srv.url)
        page.goto(srv.url + "/")  # a large roster opens in table mode
        expect(page.locator("#table-total")).to_have_text("10,000 agents")
        expect(page.locator("#out-count")).to_have_text("✗ 5 out of adherence")
        first = page.locator("#agents-table tbody tr")
        expect(first).to_have_count(100)
        names = [first.nth(k).locator("td").nth(1).inner_text() for k in range(6)]
        assert names == ["Agent 07777", "Agent 00042", "Agent 09999", "Agent 05000", "Agent 00001", "Agent 00000"]
        expect(first.first).to_have_attribute("data-state", "out")
        expect(page.locator("#page-info")).to_have_text("1–100 of 10,000")
        # every agent is reachable: the last page ends at 10,000
        page.select_option("#page-size", "500")
        expect(page.locator("#page-info")).to_have_text("1–500 of 10,000")
        for _ in range(19):
            page.click("#next-page")
        expect(page.locator("#page-info")).to_have_text("9,501–10,000 of 10,000")
        expect(page.locator("#agents-table tbody tr")).to_have_count(500)
        # server-side filters
        page.fill("#search", "Agent 04321")
        expect(page.locator("#agents-table tbody tr")).to_have_count(1)
        expect(page.locator("#table-total")).to_have_text("1 agents")
        assert not errors, errors
    finally:
        srv.kill(15)


def test_feed_silence_banner_offers_the_silent_period(tmp_path, browser):  # noqa: F811
    from playwright.sync_api import expect

    from servers import Server
    from test_browser import write_center

    expect.set_options(timeout=25_000)
    config = write_center(tmp_path)
    config.write_text(config.read_text() + "feed:\n  silence_after: 2s\n")
    srv = Server(config, env={"ADHERENCE_API_TOKEN": TOKEN}).start()
    try:
        feed = Feed(srv.url)
        for w in (ANN, BEN, CAL):
            feed.send(w, "Available", ago_ms=HISTORY_MS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        sign_in(page, srv.url)
        page.evaluate("() => localStorage.setItem('adherence.by', 'Pat Planner')")
        page.goto(srv.url + "/")
        banner = page.locator("#feed-banner")
        expect(banner).to_be_visible()  # nothing arrives after the first records: silent after 2 s
        expect(page.locator("#feed-text")).to_contain_text("No record from Flex for")
        expect(page.locator("#feed-text")).to_contain_text("3 agents are scheduled")
        health = requests.get(srv.url + "/health", headers=AUTH, timeout=10).json()
        assert health["status"] == "degraded" and health["feed"]["silent"]
        assert requests.get(srv.url + "/api/periods", headers=AUTH, timeout=10).json()["periods"] == []  # offered only
        page.click("#feed-approve")
        expect(page.locator("#feed-error")).to_contain_text("✓ Approved as period #1")
        (period,) = requests.get(srv.url + "/api/periods", headers=AUTH, timeout=10).json()["periods"]
        assert period["scope"] == "all" and period["by"] == "Pat Planner" and period["reason"].startswith("Feed silent")
        # the board keeps polling: the banner's figures follow the feed
        first = page.locator("#feed-text").inner_text()
        feed.send(ANN, "Available")
        expect(page.locator("#feed-text")).not_to_have_text(first)
    finally:
        srv.kill(15)
