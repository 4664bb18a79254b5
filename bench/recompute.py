"""Recompute a full day for 1,000 agents.

The simulated busy day of bench/replay.py (1,000 agents, 12 h from 08:00
America/New_York on 2026-11-24) is replayed into a journal, then
`adherence recompute --from 2026-11-24 --to 2026-11-24` runs as the real CLI.
Reported: the recompute itself (the CLI's own figure) and the whole command
(start-up, loading live state from the journal, schedules and rules included).

Target: <= 10 s.

Usage: python bench/recompute.py [--agents 1000] [--hours 12]
       python bench/recompute.py --config DIR/config.yaml   (a journal replayed before, e.g. 10,000 agents
       by bench/replay.py or bench/restart.py: replaying 3.8 M records again takes many minutes)
"""

from __future__ import annotations

import argparse
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from adherence.config import load_config
from common import table, verdict, write_section
from replay import ensure_feed, replay

DAY = "2026-11-24"
AT = "2026-11-25T12:00:00Z"  # the day is over: every window closed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, default=1000)
    ap.add_argument("--hours", type=float, default=12)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--config", type=Path, help="recompute this config's database (its journal holds the day)")
    ap.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md alone")
    args = ap.parse_args()
    if args.config:
        cfg = args.config
        db = cfg.parent / load_config(cfg).database
        conn = sqlite3.connect(str(db))
        rows = conn.execute("SELECT COUNT(*) FROM journal").fetchone()[0]
        args.agents = conn.execute("SELECT COUNT(DISTINCT worker_sid) FROM journal").fetchone()[0]
        conn.close()
    else:
        folder = ensure_feed(args.agents, args.hours, args.seed)
        db = folder / "recompute.db"
        took, summary, rows, _ = replay(folder, db)
        print(f"replayed {rows} records in {took:.1f} s", flush=True)
        cfg = folder / "bench-config.yaml"  # written by replay(): database = recompute.db
    cmd = [sys.executable, "-m", "adherence", "recompute", "--config", str(cfg), "--from", DAY, "--to", DAY,
           "--at", AT]
    runs = []
    for i in range(2):  # the second run replaces the first one's results (ids kept): the steady case
        t0 = time.perf_counter()
        res = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if res.returncode:
            raise SystemExit(res.stderr)
        m = re.search(r"for (\d+) agent\(s\) in ([\d.]+) ms: (\d+) exception change\(s\), (\d+) agent-day", res.stdout)
        runs.append((wall, float(m[2]) / 1000, int(m[1]), int(m[3]), int(m[4])))
        print(f"run {i + 1}: {res.stdout.strip()} (command {wall:.1f} s)", flush=True)
    conn = sqlite3.connect(str(db))
    n_exc = conn.execute("SELECT COUNT(*) FROM exceptions").fetchone()[0]
    n_days = conn.execute("SELECT COUNT(*) FROM adherence WHERE day = ?", (DAY,)).fetchone()[0]
    conn.close()
    rows_out = []
    labels = (("first run", "second run") if args.config  # its results may be stored already
              else ("first (empty results)", "again (results replaced)"))
    for label, (wall, own, agents, changes, days) in zip(labels, runs):
        target = (f"<= 60 s whole command: {verdict(wall <= 60)}" if agents >= 10_000
                  else f"<= 10 s: {verdict(own <= 10)}")
        rows_out.append([label, f"{agents:,}", f"{own:.2f}", f"{wall:.2f}", f"{changes:,}", target])
    text = table(["recompute", "agents", "recompute s", "whole command s", "exception changes", "target"], rows_out)
    print()
    print(text)
    if not args.no_write:
        source = (f"`{args.config}` ({rows:,} records, replayed before)" if args.config else
                  f"the replay bench's day (`adherence simulate --agents {args.agents} --hours {args.hours:g} "
                  f"--seed {args.seed}`, {rows:,} records) replayed")
        note = (
            f"Journal: {source}; `adherence recompute --from {DAY} --to {DAY} "
            f"--at {AT}`. \"recompute s\" is the CLI's own figure (timelines read from the journal, evaluation, "
            "results written); \"whole command s\" adds the process's start-up (it loads no live state). "
            f"Result: {n_exc:,} exceptions, {n_days:,} agent-days."
        )
        if args.config:  # its own section: the replayed 1,000-agent run keeps "recompute"
            write_section(f"recompute-{args.agents}", f"Recompute a day, {args.agents:,} agents", note + "\n\n" + text)
        else:
            write_section("recompute", "Recompute a day", note + "\n\n" + text)


if __name__ == "__main__":
    main()
