"""The live board in a real browser against a real ``adherence serve``.

Headless Chromium (Debian's, driven by Playwright's sync API) signs in with
the API token, watches an agent fed through the webhook turn out of adherence
when it goes Offline for longer than the rule's ``for``, and approves the
exception from the day page, which changes the adherence figure shown.

``ADHERENCE_SCREENSHOT=1`` also saves the board to docs/board.png.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

from adherence.timeutil import iso

from servers import Server

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DOCS = Path(__file__).resolve().parent.parent / "docs"
TOKEN = "wall-screen-token-0123456789"
ANN = "WK" + "a1" * 16
BEN = "WK" + "b2" * 16
CAL = "WK" + "c3" * 16
OFFLINE_FOR_S = 5
HISTORY_MS = 2 * 3600_000  # the first records say the agents have been Available for two hours

pytestmark = [pytest.mark.browser]


@pytest.fixture(autouse=True)
def _chromium_present():
    """Outside CI a missing browser skips, saying why; in CI (which installs it) it is a failure."""
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is not installed (apt-get install chromium; .ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def write_center(folder: Path) -> Path:
    """A roster scheduled Available all of yesterday, today and tomorrow (UTC), a 2s rule, a 1s loop."""
    today = datetime.now(timezone.utc).date()
    days = [today + timedelta(days=d) for d in (-1, 0, 1)]
    shifts = "".join(
        f"  - agents: [ann, ben, cal]\n    date: {d.isoformat()}\n    segments:\n      - 00:00-24:00 Available\n"
        for d in days
    )
    (folder / "schedules").mkdir()
    (folder / "schedules" / "roster.yaml").write_text(
        "timezone: UTC\nagents:\n"
        f"  ann: {{worker_sid: {ANN}, name: Ann Wall, team: blue}}\n"
        f"  ben: {{worker_sid: {BEN}, name: Ben Board, team: green}}\n"
        f"  cal: {{worker_sid: {CAL}, name: Cal Screen, team: blue}}\n"
        "shifts:\n" + shifts
    )
    (folder / "rules").mkdir()
    (folder / "rules" / "rules.yaml").write_text(
        "allowed:\n  Available: [Available]\n"
        "rules:\n"
        "  - name: offline-when-scheduled-available\n"
        "    description: Scheduled to take contacts but logged out\n"
        "    when:\n      scheduled: Available\n      activity: [Offline, Unknown]\n"
        "    for: 2s\n    severity: critical\n"
    )
    config = folder / "config.yaml"
    config.write_text(
        "database: board.db\ntimezone: UTC\nschedules: schedules\nrules: rules\n"
        "evaluation:\n  interval: 1s\n"
        "auth:\n  api_token: ${ADHERENCE_API_TOKEN}\n"
    )
    return config


class Feed:
    """Posts Flex RTA records to the real server's webhook, stamped with the real time."""

    def __init__(self, url: str):
        self.url = url + "/webhooks/rta"
        self.n = 0

    def send(self, worker: str, activity: str, task: str | None = None, ago_ms: int = 0) -> int:
        self.n += 1
        at = time.time_ns() // 1_000_000 - ago_ms
        channels = None
        if task:
            channels = [{"task_channel_name": "voice", "available": True, "capacity": 1, "available_capacity": 0,
                         "reservations": [{"sid": f"WR{self.n:032d}", "status": task}]}]
        env = {"product": "Flex", "object": "WFMWorkerChange", "version": 1, "records": [{
            "worker": {"sid": worker, "activity_name": activity}, "channels": channels,
            "last_processed_event_sid": f"EV{self.n:032d}", "date_last_processed_event": iso(at)}]}
        resp = requests.post(self.url, json=env, timeout=10)
        assert resp.status_code == 200, resp.text
        return at


@pytest.fixture
def server(tmp_path):
    srv = Server(write_center(tmp_path), env={"ADHERENCE_API_TOKEN": TOKEN}).start()
    yield srv
    srv.kill(15)


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def test_live_board_turns_red_and_an_approval_changes_the_figure(server, browser):
    from playwright.sync_api import expect

    expect.set_options(timeout=25_000)
    feed = Feed(server.url)
    feed.send(ANN, "Available", ago_ms=HISTORY_MS)
    feed.send(BEN, "Available", ago_ms=HISTORY_MS)
    feed.send(CAL, "Available", ago_ms=HISTORY_MS)
    feed.send(BEN, "Available", task="accepted", ago_ms=95_000)

    page = browser.new_page(viewport={"width": 1600, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)

    # the board asks for the token once, then keeps an HttpOnly cookie
    page.goto(server.url + "/")
    expect(page).to_have_url(server.url + "/login?next=/")
    page.fill("#token", TOKEN)
    page.click("#sign-in")
    expect(page).to_have_url(server.url + "/")
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "adherence_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and TOKEN not in cookie["value"]

    # the fed agent is on the board, in adherence, grouped under its team
    ann = page.locator('article[data-agent="ann"]')
    expect(ann).to_have_attribute("data-state", "in")
    expect(ann.locator(".badge")).to_have_text("✓ In adherence")
    expect(ann.locator(".activity")).to_have_text("Available · no task")
    expect(ann.locator(".scheduled")).to_have_text("Available")
    expect(page.locator('section[data-team="blue"] article[data-agent="ann"]')).to_be_visible()
    expect(page.locator('article[data-agent="ben"] .activity')).to_have_text("Available · task active")

    # Offline for longer than the rule's 2s: red, labelled, with the open exception and its running time
    offline_at = feed.send(ANN, "Offline")
    expect(ann).to_have_attribute("data-state", "out")
    expect(ann.locator(".badge")).to_have_text("✗ Out of adherence")
    expect(ann.locator(".agent-exceptions")).to_contain_text("offline-when-scheduled-available")
    panel = page.locator("#open-exceptions li").first
    expect(panel).to_contain_text("Ann Wall")
    expect(panel).to_contain_text("offline-when-scheduled-available (critical)")
    assert "255, 107, 107" in ann.evaluate("n => getComputedStyle(n).borderTopColor")  # the red border
    expect(page.locator("#out-count")).to_have_text("✗ 1 out of adherence")
    # the "only out of adherence" filter leaves just her
    page.check("#out-filter")
    expect(page.locator("article.agent")).to_have_count(1)
    if os.environ.get("ADHERENCE_SCREENSHOT") == "1":
        page.uncheck("#out-filter")
        expect(page.locator("article.agent")).to_have_count(3)
        page.evaluate("document.activeElement.blur()")
        page.wait_for_timeout(1500)  # let the timers tick past a whole second
        page.screenshot(path=str(DOCS / "board.png"))
    else:
        page.uncheck("#out-filter")

    # back to Available after a while: the exception closes, the board turns back
    time.sleep(max(0.0, OFFLINE_FOR_S - (time.time() - offline_at / 1000)))
    feed.send(ANN, "Available")
    expect(ann).to_have_attribute("data-state", "in")
    expect(ann.locator(".agent-exceptions")).to_have_count(0)

    # the day page: the exception is listed; approving it changes the adherence figure
    auth = {"Authorization": f"Bearer {TOKEN}"}
    (exc,) = requests.get(server.url + "/api/exceptions?agent=ann", headers=auth, timeout=10).json()["exceptions"]
    assert exc["status"] == "closed" and exc["duration_seconds"] >= OFFLINE_FOR_S
    page.goto(f"{server.url}/day?date={exc['day']}")
    row = page.locator(f'#exceptions-table tr[data-id="{exc["id"]}"]')
    expect(row).to_contain_text("offline-when-scheduled-available")
    pct = page.locator('#adherence-table tr[data-agent="ann"] .adherence-pct')
    expect(page.locator('#adherence-table tr[data-agent="ann"] .approved-seconds')).to_have_text("0:00:00")
    before = pct.inner_text()
    assert before.endswith("%") and before != "100.00%"
    expect(page.locator("#team-chart svg .bar-value").first).to_be_visible()

    row.locator("button.approve").click()
    expect(page.locator("#approval-dialog")).to_be_visible()
    page.fill("#approval-by", "Pat Planner")
    page.fill("#approval-note", "system outage, told to log off")
    page.click("#approval-ok")
    expect(row.locator(".approval")).to_have_text("✓ Approved by Pat Planner: system outage, told to log off")
    expect(pct).to_have_text("100.00%")
    expect(page.locator('#adherence-table tr[data-agent="ann"] .out-seconds')).to_have_text("0:00:00")

    # withdrawing puts the figure back
    row.locator("button.withdraw").click()
    page.click("#approval-ok")
    expect(row.locator(".approval")).to_have_text("Not approved")
    expect(pct).not_to_have_text("100.00%")

    # the CSV download link serves the exceptions with the fixed header (with the session cookie)
    href = page.locator("#csv-exceptions").get_attribute("href")
    csv_text = page.evaluate("url => fetch(url).then(r => r.text())", href)
    assert csv_text.startswith("id,agent,worker_sid,team,rule,severity,scheduled_activity,actual_activity,")
    assert not errors, errors
