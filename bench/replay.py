"""Replay throughput and the journal's size: `adherence replay` on a simulated busy day, beside the floor.

The FLOOR is the least any replay must do, measured in the same run on the
same file: read each line, parse it with `json`, and insert each record
(serialised again, compact) into a one-column SQLite table in WAL mode with
synchronous=NORMAL, 1,000 records a transaction. `adherence replay` does that
plus validation, task-state derivation, de-duplication, indexes, interning and
compression; it runs as the real CLI in a subprocess (start-up included), with
its defaults: transactions of ~40 ms each (--transaction-ms), compression in a
child process of its own (its CPU is in the process's, not in the wall time).

Also measured on the replayed file: bytes on disk per record (page_count * page_size after a
checkpoint, over the records journaled) and bytes the replay process wrote (its rusage block
output: WAL and database pages, checkpoints included) against the database's growth.

Targets: replay takes <= 2x the floor's time, and is no slower per record at the largest size
than at the smallest; <= 500 bytes a record on disk; bytes written <= 5x the database's growth.

Usage: python bench/replay.py [--agents 1000,10000] [--hours 10] [--repeat 2]
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


# What the runs say, kept with the script (it rewrites its sections whole). Figures of earlier runs are quoted.
REPLAY_NOTE = """\
Before the changes of 2026-12-02 evening (same machine, quiet, 18:45 UTC): replay 42.0 s against a 14.2 s
floor (2.96x). What changed: records are deflated in a child process (`journal_format.Deflater`: ~30 µs a
record, ~11 s of CPU for this day, done on the second core while the main process parses and writes; the
process's CPU stays about what it was), the cyclic collector is off while a replay reads (it spent ~17 % of
the time walking the records held; nothing a replay makes has cycles), and the time-ordered dedup key (see
"Journal size") made commits cheaper. py-spy of the main process now (first 120 MB of the feed): JSON
decoding ~15 %, building the reduced channel list ~12 %, SQLite inserts ~8 %, substitution and the
key ~6 %, sending records to the child ~3 %. The wall time needs the second core: in a trial run at 19:48 UTC the same
code took 23.96 s (1.75x the floor's 13.7 s) on the quiet machine, then 33.6 s (2.5x) once other sessions'
work started. 10,000 agents were not re-run with this code
(~20 min for floor and replay); the run of 17:17 UTC with the code before: floor 412.3 s, replay 709.4 s
(1.72x, floor measured at a busy time)."""

SIZE_NOTE = """\
Bytes written, before (18:45 UTC): 2,155 MB for the 1,000-agent day with 1,000 records a transaction
(14.8x the growth; 46,221 MB, 32.1x, at 10,000 agents, 17:17 UTC). Two causes, two changes. The event-SID
index took each record at a random place, so each commit rewrote about one index page a record: an RTA
record's key is now its stated event time (6 bytes), then its SID (migration `0012_journal_time_keys`;
+17 bytes a record), so commits append to it; a redelivery is still found whatever time its row took
(a clamped or missing date: the key uses the date as written, not the row's time). That alone: 2,155 ->
1,000 MB (6.6x). And transactions are now ~40 ms each (`--transaction-ms`, the evaluator's write budget,
so a running service's webhooks never wait longer) instead of 1,000 records: a few thousand records a
commit here (1,000 took ~16 ms, commit included, early in the day). What remains is the worker+time index: a commit rewrites one leaf page of each agent it holds, so
the ratio grows with agents over records a commit (a faster or quieter machine fits more records in 40 ms).
At 10,000 agents expect it above 5x with the default (not re-measured: ~20 min); `--transaction-ms 200`
(webhooks of a running service wait up to that) or a replay with the service stopped
(`--transaction-ms 10000`) writes less."""


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


def replay(folder: Path, db: Path, batch: int | None = None, tx_ms: int | None = None) -> tuple[float, str, int, int]:
    """(seconds, the CLI's summary, journal rows, bytes the process wrote to storage)."""
    _fresh(db)
    cfg = folder / "config.yaml"
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    # the config names adherence.db beside it; point it at our file instead
    override = folder / "bench-config.yaml"
    override.write_text(cfg.read_text().replace("database: adherence.db", f"database: {db.name}"))
    cmd = [sys.executable, "-m", "adherence", "replay", "--quiet", "--config", str(override), str(folder / "feed.jsonl"),
           *(["--batch", str(batch)] if batch else []), *(["--transaction-ms", str(tx_ms)] if tx_ms else [])]
    t0 = time.perf_counter()
    errfile = folder / "replay.stderr"
    with open(errfile, "w") as errs:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errs, text=True, env=env)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)  # the child's own rusage: its block output
        proc.returncode = os.waitstatus_to_exitcode(status)
    took = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"replay failed: {errfile.read_text()}")
    written = usage.ru_oublock * 512
    count = sqlite3.connect(str(db)).execute("SELECT COUNT(*) FROM journal").fetchone()[0]
    return took, out.strip(), count, written


def db_bytes(db: Path) -> int:
    conn = sqlite3.connect(str(db))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    n = conn.execute("PRAGMA page_count").fetchone()[0] * conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    return n


def empty_db_bytes(folder: Path) -> int:
    """The size of a fresh database (the schema): subtracted from the replayed file's size."""
    from adherence.store import Store

    db = folder / "empty.db"
    _fresh(db)
    Store(db).close()
    return db_bytes(db)


def measure(agents: int, hours: float, seed: int, repeat: int, big_batch: int) -> dict:
    folder = ensure_feed(agents, hours, seed)
    feed = folder / "feed.jsonl"
    with open(feed, "rb") as fh:  # warm the page cache: both sides read a cached file
        while fh.read(1 << 24):
            pass
    floors, replays = [], []
    for i in range(repeat):
        n, f = floor(feed, folder / "floor.db")
        floors.append(f)
        print(f"{agents} agents: floor  #{i + 1}: {n} records in {f:.2f} s ({n / f:,.0f} records/s)", flush=True)
        r, summary, count, written = replay(folder, folder / "replay.db")
        replays.append(r)
        print(f"{agents} agents: replay #{i + 1}: {r:.2f} s ({n / r:,.0f} records/s): {summary}; journal rows {count}; "
              f"{written / 1e6:,.0f} MB written", flush=True)
    growth = db_bytes(folder / "replay.db") - empty_db_bytes(folder)
    big = None
    if big_batch:
        t, _, c, w = replay(folder, folder / "replay-batch.db", big_batch, 600_000)  # one transaction a batch
        g = db_bytes(folder / "replay-batch.db") - empty_db_bytes(folder)
        big = {"batch": big_batch, "replay": t, "count": c, "written": w, "growth": g}
        print(f"{agents} agents: replay --batch {big_batch} --transaction-ms 600000: {t:.2f} s ({n / t:,.0f} records/s); {w / 1e6:,.0f} MB written",
              flush=True)
        os.remove(folder / "replay-batch.db")
    return {"big": big, "agents": agents, "hours": hours, "seed": seed, "n": n, "count": count, "floor": min(floors),
            "replay": min(replays), "summary": summary, "growth": growth, "written": written,
            "floor_bytes": db_bytes(folder / "floor.db"), "feed_mb": feed.stat().st_size / 1e6, "repeat": repeat}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", default="1000", help="comma-separated sizes, e.g. 1000,10000")
    ap.add_argument("--hours", type=float, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=2, help="runs of each (the best is kept); 1 above 2,000 agents")
    ap.add_argument("--big-batch", type=int, default=20_000,
                    help="also replay once with N records a transaction (--batch N, no time limit) for its bytes "
                         "written; 0: not")
    ap.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md alone")
    args = ap.parse_args()
    sizes = [int(a) for a in args.agents.split(",")]
    # (above 2,000 agents one run of each, and no second replay: the 10k-agent day takes ~20 min a replay here)
    results = [measure(a, args.hours, args.seed, args.repeat if a <= 2000 else 1, args.big_batch if a <= 2000 else 0)
               for a in sizes]
    base = results[0]["n"] / results[0]["replay"]
    rows, size_rows = [], []
    for m in results:
        n, f, r = m["n"], m["floor"], m["replay"]
        ratio = r / f
        per_rec = n / r
        target = f"<= 2.00x floor: {verdict(ratio <= 2.0)}"
        if m is not results[0]:
            target += f"; records/s >= the {results[0]['agents']:,}-agent run's: {verdict(per_rec >= base * 0.97)}"
        rows.append([f"{m['agents']:,}", f"{n:,}", f"{f:.1f}", f"{n / f:,.0f}", f"{r:.1f}", f"{per_rec:,.0f}",
                     f"{ratio:.2f}", target])
        bpr = m["growth"] / m["count"]
        wr = m["written"] / m["growth"] if m["growth"] > 0 else float("nan")
        size_rows.append([f"{m['agents']:,}", "default (~40 ms a transaction)", f"{m['count']:,}", f"{m['growth'] / 1e6:,.0f}",
                          f"{bpr:,.0f}", f"{m['floor_bytes'] / m['n']:,.0f}", f"{r:.1f}", f"{m['written'] / 1e6:,.0f}",
                          f"{wr:.1f}", f"<= 500 B: {verdict(bpr <= 500)}; written <= 5x: {verdict(wr <= 5)}"])
        big = m["big"]
        if big:
            bpr, wr = big["growth"] / big["count"], big["written"] / big["growth"]
            size_rows.append([f"{m['agents']:,}", f"{big['batch']:,} a transaction", f"{big['count']:,}", f"{big['growth'] / 1e6:,.0f}",
                              f"{bpr:,.0f}", "", f"{big['replay']:.1f}", f"{big['written'] / 1e6:,.0f}", f"{wr:.1f}",
                              f"<= 500 B: {verdict(bpr <= 500)}; written <= 5x: {verdict(wr <= 5)}"])
    text = table(["agents", "records", "floor s", "floor rec/s", "replay s", "replay rec/s", "x floor", "target"], rows)
    size_text = table(["agents", "replay --batch", "records journaled", "database growth MB", "bytes a record",
                       "floor's bytes a record", "replay s", "MB written by replay", "written / growth", "target"],
                      size_rows)
    print()
    print(text)
    print()
    print(size_text)
    if not args.no_write:
        feeds = "; ".join(
            f"`adherence simulate --agents {m['agents']} --hours {m['hours']:g} --seed {m['seed']}` ({m['n']:,} records, "
            f"{m['feed_mb']:,.0f} MB of JSON lines, best of {m['repeat']}: {m['summary']})" for m in results)
        note = (f"Feeds: {feeds}. Read from the page cache; ~1 % of records are repeats (duplicates). "
                "`adherence replay` runs as the CLI in a subprocess (start-up included).")
        write_section("replay", "Replay", note + "\n\n" + text + "\n\n" + REPLAY_NOTE)
        size_note = (
            "The replayed databases above. \"bytes a record\": the file's growth (page_count x page_size after a "
            "checkpoint, less an empty database's) over the records journaled: rows, the three indexes, interned "
            "strings and the compression dictionary. \"floor\" is the bench floor's one-column table of the records "
            "as JSON text, for scale. \"written\": the replay process's block output (rusage `ru_oublock` x 512: "
            "WAL frames and checkpoints into the database file).")
        write_section("journal-size", "Journal size", size_note + "\n\n" + size_text + "\n\n" + SIZE_NOTE)


if __name__ == "__main__":
    main()
