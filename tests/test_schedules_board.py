"""The board marks the agents whose schedule file is broken, in a real browser, while the others stay scheduled."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from servers import Server

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]

pytestmark = [pytest.mark.browser]


@pytest.fixture(autouse=True)
def _chromium_present():
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is not installed (apt-get install chromium; .ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def test_board_marks_agents_of_a_broken_schedule_file(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    (tmp_path / "schedules").mkdir()
    (tmp_path / "schedules" / "roster.yaml").write_text(
        "timezone: UTC\nagents:\n"
        f"  ann: {{worker_sid: WK{'a1' * 16}, name: Ann Wall, team: blue}}\n"
        f"  ben: {{worker_sid: WK{'b2' * 16}, name: Ben Board, team: blue, calendar: ben.ics}}\n"
        "shifts:\n  - agents: [ann]\n    days: daily\n    segments: ['00:00-24:00 Available']\n")
    (tmp_path / "schedules" / "ben.ics").write_text("BEGIN:VCALENDAR\nBEGIN:VEVENT\n")  # a cut-off download
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "rules.yaml").write_text(
        "rules:\n  - name: offline\n    when: {scheduled: Available, activity: Offline}\n    for: 1m\n")
    config = tmp_path / "config.yaml"
    config.write_text("database: b.db\ntimezone: UTC\nschedules: schedules\nrules: rules\n")
    srv = Server(config).start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page()
            page.goto(srv.url + "/")
            ben = page.locator('article[data-agent="ben"]')
            expect(ben.locator(".schedule-problem")).to_have_text(
                re.compile(r"^⚠ schedule file broken since \d\d:\d\d$"), timeout=20_000)
            ann = page.locator('article[data-agent="ann"]')
            expect(ann.locator(".scheduled")).to_have_text("Available")
            expect(ann.locator(".schedule-problem")).to_have_count(0)
            browser.close()
    finally:
        srv.kill(15)
