"""The board's poll at 10,000 agents: before (the card view's /api/agents) and after (table mode).

An in-process engine with a 10,000-agent roster, every agent fed (Available, some Offline and out of
adherence with open exceptions), evaluated once. Then, per request kind, the median CPU time
(``time.process_time`` of this process, which serves the request) and the bytes of the answer:

* before: ``GET /api/agents?limit=5000`` — what ``board.js`` asked for (half the center), and both pages
  (``limit=5000&offset=5000``) that a whole center needs;
* after: ``GET /api/board/table`` — the first page (100 rows, worst first) while the state is changing
  (snapshot rebuilt each poll), a page from the shared snapshot (another wall screen within the same
  second), and an unchanged page polled with its ETag (304).

Usage: python bench/board_poll.py [--agents 10000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import out_dir, table, write_section  # noqa: E402

from adherence.clock import FixedClock  # noqa: E402
from adherence.config import load_config  # noqa: E402
from adherence.engine import Engine  # noqa: E402
from adherence.timeutil import iso, parse_instant_ms  # noqa: E402
from adherence.web import create_app  # noqa: E402
import adherence.web.boardtable as boardtable  # noqa: E402

DAY = "2026-11-24"


def build(folder: Path, n: int):
    (folder / "schedules").mkdir(parents=True, exist_ok=True)
    (folder / "rules").mkdir(exist_ok=True)
    lines = ["timezone: UTC", "agents:"]
    lines += [f"  a{i:05d}: {{worker_sid: WK{i:032d}, name: Agent {i:05d}, team: t{i // 100:03d}}}" for i in range(n)]
    lines += ["shifts:", f"  - teams: [{', '.join(f't{k:03d}' for k in range((n + 99) // 100))}]",
              "    days: [mon, tue, wed, thu, fri, sat, sun]", "    segments:", "      - 08:00-18:00 Available",
              "      - 12:00-12:30 Lunch"]
    (folder / "schedules" / "roster.yaml").write_text("\n".join(lines) + "\n")
    (folder / "rules" / "rules.yaml").write_text(
        "allowed:\n  Lunch: [Lunch, Offline]\nrules:\n  - name: offline-when-scheduled-available\n"
        "    when: {scheduled: Available, activity: [Offline, Unknown]}\n    for: 5m\n    severity: critical\n")
    (folder / "config.yaml").write_text("database: poll.db\ntimezone: UTC\nschedules: schedules\nrules: rules\n")
    for p in folder.glob("poll.db*"):
        p.unlink()
    clock = FixedClock(parse_instant_ms(f"{DAY}T07:50:00Z"))
    engine = Engine(load_config(folder / "config.yaml"), clock)
    app = create_app(engine=engine)
    client = app.test_client()

    def post(items, k0):
        env = {"product": "Flex", "object": "WFMWorkerChange", "version": 1, "records": [
            {"worker": {"sid": f"WK{i:032d}", "activity_name": act}, "channels": None,
             "last_processed_event_sid": f"EV{k0 + k:032d}", "date_last_processed_event": iso(at)}
            for k, (i, act, at) in enumerate(items)]}
        assert client.post("/webhooks/rta", json=env).status_code == 200

    t0 = parse_instant_ms(f"{DAY}T07:55:00Z")
    post([(i, "Available", t0) for i in range(n)], 0)
    clock.set(parse_instant_ms(f"{DAY}T10:00:00Z"))
    post([(i, "Offline", parse_instant_ms(f"{DAY}T09:30:00Z") + i * 1000) for i in range(0, n, 20)], n)
    engine.runner.tick()
    return engine, client


def measure(client, url, repeat, headers=None, before=None):
    cpu, size, status = [], 0, None
    for _ in range(repeat):
        if before:
            before()
        c0 = time.process_time()
        r = client.get(url, headers=headers or {})
        body = r.get_data()
        cpu.append(time.process_time() - c0)
        size, status = len(body), r.status_code
    return statistics.median(cpu), size, status


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--agents", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    args = ap.parse_args()
    folder = out_dir("board_poll")
    engine, client = build(folder, args.agents)
    n = args.agents
    rows = []

    half = measure(client, "/api/agents?limit=5000", args.repeat)
    second = measure(client, "/api/agents?limit=5000&offset=5000", args.repeat)
    total = client.get("/api/agents?limit=1").get_json()["total"]
    rows.append(["before: /api/agents?limit=5000 (what board.js asked; half the center)",
                 f"{half[0] * 1000:.0f} ms", f"{half[1] / 1e6:.2f} MB", f"5,000 of {total:,}"])
    rows.append(["before: both pages (the whole center)", f"{(half[0] + second[0]) * 1000:.0f} ms",
                 f"{(half[1] + second[1]) / 1e6:.2f} MB", f"{total:,} of {total:,}"])

    snap = client.application.extensions.setdefault("adherence.table", boardtable.TableSnapshot())

    def expire():
        snap.built_at = 0.0  # the state changed: the next poll rebuilds the snapshot

    rebuilt = measure(client, "/api/board/table", args.repeat, before=expire)
    shared = measure(client, "/api/board/table?team=t007", args.repeat)
    tag = client.get("/api/board/table").headers["ETag"]
    unchanged = measure(client, "/api/board/table", args.repeat, headers={"If-None-Match": tag})
    page = client.get("/api/board/table").get_json()
    rows.append(["after: /api/board/table, snapshot rebuilt (state changed)", f"{rebuilt[0] * 1000:.0f} ms",
                 f"{rebuilt[1] / 1e3:.1f} kB", f"100 of {page['total']:,} (worst first), pages to all"])
    rows.append(["after: another screen within the snapshot's second", f"{shared[0] * 1000:.1f} ms",
                 f"{shared[1] / 1e3:.1f} kB", "100 of a team"])
    rows.append(["after: unchanged page, If-None-Match (304)", f"{unchanged[0] * 1000:.1f} ms",
                 f"{unchanged[1]} B", f"status {unchanged[2]}"])
    engine.close()
    body = (f"{n:,} agents in the roster and the feed, {n // 20:,} out of adherence with an open exception. CPU "
            "is `time.process_time` of the process serving the request (median of "
            f"{args.repeat}); size is the response body.\n\n"
            + table(["request", "CPU per poll", "bytes", "agents"], rows))
    print(body)
    if not args.no_write:
        write_section("board_poll", "Board poll at 10,000 agents (issue #13 item 8)", body)
    print(json.dumps({"before_half_ms": half[0] * 1000, "after_rebuilt_ms": rebuilt[0] * 1000}))


if __name__ == "__main__":
    main()
