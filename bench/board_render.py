"""The board at 10,000 agents in a real browser: time until the first page of the table is drawn.

A real ``adherence serve`` (subprocess, loopback) holds n agents scheduled all day, each fed one record
(five of them Offline); headless Chromium (Debian's, through Playwright) signs in and opens ``/``, which a
roster this large opens in table mode. Measured per load, from navigation to the first 100 rows (worst
first) in the DOM, and for the card view (``/?view=cards``) until the first card is drawn; the median of
``--repeat`` loads is reported.

Target (issue #13): the board usable at 10,000 agents.

Usage: python bench/board_render.py [--agents 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import requests

from adherence.timeutil import iso
from common import out_dir, table, write_section

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TOKEN = "board-render-bench-token"


def write_center(folder, n: int):
    today = datetime.now(timezone.utc).date()
    lines = ["timezone: UTC", "agents:"]
    lines += [f"  a{i:05d}: {{worker_sid: WK{i:032d}, name: Agent {i:05d}, team: t{i // 100:03d}}}" for i in range(n)]
    lines.append("shifts:")
    teams = ", ".join(f"t{k:03d}" for k in range((n + 99) // 100))
    for d in (-1, 0, 1):
        lines += [f"  - teams: [{teams}]", f"    date: {(today + timedelta(days=d)).isoformat()}", "    segments:",
                  "      - 00:00-24:00 Available"]
    for sub in ("schedules", "rules"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    (folder / "schedules" / "roster.yaml").write_text("\n".join(lines) + "\n")
    (folder / "rules" / "rules.yaml").write_text(
        "rules:\n  - name: offline-when-scheduled-available\n    when:\n      scheduled: Available\n"
        "      activity: [Offline, Unknown]\n    for: 2s\n    severity: critical\n")
    config = folder / "config.yaml"
    config.write_text("database: big.db\ntimezone: UTC\nschedules: schedules\nrules: rules\n"
                      "evaluation:\n  interval: 2s\nauth:\n  api_token: ${ADHERENCE_API_TOKEN}\n")
    return config


def start_server(config):
    log = open(str(config) + ".log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "adherence", "serve", "--config", str(config), "--port", "0"],
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "ADHERENCE_API_TOKEN": TOKEN})
    deadline = time.time() + 180
    while time.time() < deadline:
        m = re.search(rb"listening on (http://\S+)", open(str(config) + ".log", "rb").read())
        if m:
            url = m.group(1).decode()
            while time.time() < deadline:
                try:
                    if requests.get(url + "/health", timeout=5).json().get("status") != "starting":
                        return proc, url
                except requests.ConnectionError:
                    pass
                time.sleep(0.2)
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


def main() -> None:
    from playwright.sync_api import expect, sync_playwright

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    n = args.agents
    folder = out_dir(f"board-render-{n}")
    for p in folder.glob("big.db*"):
        p.unlink()
    proc, url = start_server(write_center(folder, n))
    try:
        now = time.time_ns() // 1_000_000
        recs = [{"worker": {"sid": f"WK{i:032d}", "activity_name": "Offline" if i % 2000 == 7 else "Available"},
                 "channels": None, "last_processed_event_sid": f"EV{i:032d}",
                 "date_last_processed_event": iso(now - 3_600_000)} for i in range(n)]
        env = {"product": "Flex", "object": "WFMWorkerChange", "version": 1, "records": recs}
        assert requests.post(url + "/webhooks/rta", json=env, timeout=120).status_code == 200
        time.sleep(5)  # a few ticks: the evaluation has run for everyone
        expect.set_options(timeout=60_000)
        results = {"table": [], "cards": []}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1500, "height": 1000})
            page.goto(url + "/login")
            page.fill("#token", TOKEN)
            page.click("#sign-in")
            page.wait_for_load_state("networkidle")
            for view, path, ready in (("table", "/", "#agents-table tbody tr >> nth=99"),
                                      ("cards", "/?view=cards", ".cards .agent >> nth=0")):
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    page.goto(url + path)
                    page.locator(ready).wait_for(state="attached")
                    results[view].append(time.perf_counter() - t0)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    rows = [[view, f"{n:,}", f"{statistics.median(ts) * 1000:,.0f}", ", ".join(f"{t * 1000:,.0f}" for t in ts)]
            for view, ts in results.items()]
    text = table(["view", "agents", "first render ms (median)", "each load ms"], rows)
    print(text)
    if not args.no_write:
        note = (f"A real `adherence serve` with {n:,} agents scheduled all day, one record each (five Offline); "
                "headless Chromium signs in and loads the board: time from navigation until the first 100 table "
                "rows (table mode, the default at this size) or the first card (card view) are in the DOM.")
        write_section("board-render", "The board in a browser at 10,000 agents", note + "\n\n" + text)


if __name__ == "__main__":
    main()
