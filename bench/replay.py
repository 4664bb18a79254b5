"""Replay throughput: `adherence replay` on a simulated busy day, beside the floor.

The FLOOR is the least any replay must do, measured in the same run on the
same file: read each line, parse it with `json`, and insert each record
(serialised again, compact) into a one-column SQLite table in WAL mode with
synchronous=NORMAL, 1,000 records a transaction. `adherence replay` does that
plus validation, task-state derivation, de-duplication, indexes and the live
state; it runs as the real CLI in a subprocess (start-up included).

Target: replay takes <= 2x the floor's time.

Usage: python bench/replay.py [--agents 1000] [--hours 12] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from common import out_dir, simulate_cmd, table, verdict, write_section


def ensure_feed(agents: int, hours: float, seed: int) -> Path:
    d = out_dir(f"replay-{agents}x{hours:g}h-s{seed}")
    feed = d / "feed.jsonl"
    if not feed.exists():
        print(f"simulating {agents} agents x {hours:g} h ...", flush=True)
        subprocess.run([*simulate_cmd(), "--agents", str(agents), "--hours", str(hours), "--seed", str(seed),
                        "--start", "2026-11-24", "--out", str(d)], check=True)
    return d


def _fresh(db: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        try:
            os.remove(str(db) + suffix)
        except FileNotFoundError:
            pass


def floor(feed: Path, db: Path) -> tuple[int, float]:
    """json.loads each line + insert the raw record, WAL, 1,000 a transaction."""
    _fresh(db)
    conn = sqlite3.connect(str(db), isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE journal (id INTEGER PRIMARY KEY, record TEXT NOT NULL)")
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    n = 0
    t0 = time.perf_counter()
    conn.execute("BEGIN")
    with open(feed, "rb") as fh:
        for line in fh:
            for rec in json.loads(line)["records"]:
                conn.execute("INSERT INTO journal (record) VALUES (?)", (dumps(rec),))
                n += 1
                if n % 1000 == 0:
                    conn.execute("COMMIT")
                    conn.execute("BEGIN")
    conn.execute("COMMIT")
    took = time.perf_counter() - t0
    conn.close()
    return n, took


def replay(folder: Path, db: Path) -> tuple[float, str, int]:
    _fresh(db)
    cfg = folder / "config.yaml"
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    cmd = [sys.executable, "-m", "adherence", "replay", "--quiet", "--config", str(cfg), str(folder / "feed.jsonl")]
    # the config names adherence.db beside it; point it at our file instead
    override = folder / "bench-config.yaml"
    text = cfg.read_text().replace("database: adherence.db", f"database: {db.name}")
    override.write_text(text)
    cmd[cmd.index(str(cfg))] = str(override)
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    took = time.perf_counter() - t0
    if res.returncode:
        raise SystemExit(f"replay failed: {res.stderr}")
    count = sqlite3.connect(str(db)).execute("SELECT COUNT(*) FROM journal").fetchone()[0]
    return took, res.stdout.strip(), count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, default=1000)
    ap.add_argument("--hours", type=float, default=12)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=2, help="runs of each; the best is kept")
    ap.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md alone")
    args = ap.parse_args()
    folder = ensure_feed(args.agents, args.hours, args.seed)
    feed = folder / "feed.jsonl"
    size_mb = feed.stat().st_size / 1e6
    with open(feed, "rb") as fh:  # warm the page cache: both sides read a cached file
        while fh.read(1 << 24):
            pass
    floors, replays = [], []
    for i in range(args.repeat):
        n, f = floor(feed, folder / "floor.db")
        floors.append(f)
        print(f"floor  #{i + 1}: {n} records in {f:.2f} s ({n / f:,.0f} records/s)", flush=True)
        r, summary, count = replay(folder, folder / "replay.db")
        replays.append(r)
        print(f"replay #{i + 1}: {r:.2f} s ({n / r:,.0f} records/s): {summary}; journal rows {count}", flush=True)
    f, r = min(floors), min(replays)
    ratio = r / f
    rows = [
        ["floor (json + SQLite WAL insert, 1,000/txn)", f"{f:.2f}", f"{n / f:,.0f}", "1.00", ""],
        ["`adherence replay` (subprocess, start-up included)", f"{r:.2f}", f"{n / r:,.0f}", f"{ratio:.2f}",
         f"<= 2.00x floor: {verdict(ratio <= 2.0)}"],
    ]
    text = table(["run", "seconds", "records/s", "x floor", "target"], rows)
    print()
    print(text)
    if not args.no_write:
        note = (
            f"Feed: `adherence simulate --agents {args.agents} --hours {args.hours:g} --seed {args.seed}` "
            f"({n:,} records, {size_mb:,.0f} MB of JSON lines, ~1% duplicates), read from the page cache. "
            f"Best of {args.repeat} runs each; {summary}."
        )
        write_section("replay", "Replay", note + "\n\n" + text)


if __name__ == "__main__":
    main()
