"""The day page's review tools in a real browser against a real ``adherence serve``: a period approval
changes the figures shown and withdrawing it restores them; bulk approval of selected exceptions; the
history lists both."""

from __future__ import annotations

import time
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
