"""Memory: RSS of `adherence serve` holding 10,000 live agents and a full day, after the evaluator ticked.

A simulated center of 10,000 agents (a 10-hour window from 08:00
America/New_York: today's when it has ended, else yesterday's, so every record
is in the past and within the service's in-memory horizon) is written with
`adherence simulate`, replayed into the journal with `adherence replay`, then
`adherence serve` starts on it (restoring every agent's timeline from the
journal), runs its first evaluator tick, and its resident set size is read
from /proc. For comparison: the same serve on the same roster with an empty
journal, and with ``--baseline DIR`` the same full-day serve run from another
checkout (an earlier commit, e.g. a ``git worktree``) on the same database, in
the same run. The baseline must read the same database schema.

Target: <= 300 MB.

Usage: python bench/memory.py [--agents 10000] [--hours 10] [--baseline DIR] [--reuse]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.request
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from common import REPO, free_port, out_dir, rss_mb, simulate_cmd, stop, table, verdict, write_section

TZ = "America/New_York"


def serve_and_measure(cfg: Path, code: Path = REPO, timeout: float = 900) -> dict:
    """Start `adherence serve` from the checkout ``code``; its RSS 2 s after its first tick."""
    port = free_port()
    env = dict(os.environ)
    env.pop("TWILIO_AUTH_TOKEN", None)
    env.pop("ADHERENCE_API_TOKEN", None)
    env["PYTHONPATH"] = str(code)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "adherence", "serve", "--config", str(cfg), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=str(code))
    try:
        health = None
        while time.perf_counter() - t0 < timeout:
            if proc.poll() is not None:
                raise SystemExit(f"serve exited with {proc.returncode}")
            try:
                health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).read())
            except OSError as exc:
                if getattr(exc, "code", None) == 503:  # degraded answers 503 with the same body
                    health = json.loads(exc.read())
                else:
                    health = None
            if health and (health.get("evaluator") or {}).get("last_tick"):
                break
            time.sleep(0.5)
        else:
            raise SystemExit("serve did not tick in time")
        ready = time.perf_counter() - t0
        time.sleep(2)
        rss = rss_mb(proc.pid)
        hwm = _hwm(proc.pid)
        tick = health["evaluator"]["last_tick"]
        return {"rss": rss, "hwm": hwm, "agents": health.get("agents"), "ready_s": ready,
                "tick_ms": tick.get("duration_ms"), "tick_agents": tick.get("agents")}
    finally:
        stop(proc)


def _hwm(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _fresh_db(folder: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        p = folder / f"adherence.db{suffix}"
        if p.exists():
            p.unlink()


def _window_day(hours: float) -> date:
    """Today when today's window from 08:00 has ended, else yesterday: every record in the past."""
    now = datetime.now(ZoneInfo(TZ))
    today = now.date()
    start = datetime(today.year, today.month, today.day, 8, tzinfo=ZoneInfo(TZ))
    return today if start + timedelta(hours=hours) <= now else today - timedelta(days=1)


def _git_head(code: Path) -> str:
    """The checkout's commit, and the files it changes on top of it."""
    try:
        head = subprocess.run(["git", "-C", str(code), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(code), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        return str(code)
    changed = [line[3:] for line in dirty if line.strip()]
    return head + (f" + uncommitted {', '.join(changed)}" if changed else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, default=10_000)
    ap.add_argument("--hours", type=float, default=10, help="simulated hours of feed held in memory")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--baseline", type=Path, help="another checkout: its serve measured on the same database")
    ap.add_argument("--reuse", action="store_true",
                    help="keep the database a previous run with the same arguments replayed (same day)")
    ap.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md alone")
    args = ap.parse_args()
    day = _window_day(args.hours)
    folder = out_dir(f"memory-{args.agents}x{args.hours:g}h")
    stamp = {"agents": args.agents, "hours": args.hours, "seed": args.seed, "day": day.isoformat()}
    marker = folder / "replayed.json"
    db = folder / "adherence.db"
    cfg = folder / "config.yaml"
    reused = args.reuse and marker.exists() and json.loads(marker.read_text()) == stamp and db.exists()
    if not reused:
        if folder.exists():
            shutil.rmtree(folder)
            folder.mkdir(parents=True)
        print(f"simulating {args.agents} agents x {args.hours:g} h from {day} 08:00 {TZ} ...", flush=True)
        subprocess.run([*simulate_cmd(), "--agents", str(args.agents), "--hours", str(args.hours), "--seed",
                        str(args.seed), "--timezone", TZ, "--start", day.isoformat(), "--out", str(folder)],
                       check=True, stdout=subprocess.DEVNULL, cwd=str(REPO))

    aside = [(folder / f"adherence.db{x}", folder / f"adherence.full.db{x}") for x in ("", "-wal", "-shm")]
    if reused:  # the empty service gets a database of its own
        for path, away in aside:
            if path.exists():
                path.rename(away)
    empty = serve_and_measure(cfg)
    print(f"serve, empty journal: RSS {empty['rss']:.0f} MB (peak {empty['hwm']:.0f} MB)", flush=True)
    _fresh_db(folder)

    if reused:
        for path, away in aside:
            if away.exists():
                away.rename(path)
        print(f"reusing the journal replayed before ({db})", flush=True)
    else:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "adherence", "replay", "--quiet", "--config", str(cfg),
                        str(folder / "feed.jsonl")], check=True, cwd=str(REPO))
        print(f"replayed in {time.perf_counter() - t0:.0f} s", flush=True)
        (folder / "feed.jsonl").unlink()  # large; not needed any more
        marker.write_text(json.dumps(stamp))
    conn = sqlite3.connect(str(db))
    records = conn.execute("SELECT COUNT(*) FROM journal").fetchone()[0]
    conn.close()

    runs = []
    if args.baseline:
        runs.append((f"before: {_git_head(args.baseline)}", args.baseline.resolve()))
    runs.append(((f"after: {_git_head(REPO)}" if args.baseline else "after replay + restart + first tick"), REPO))
    rows = [["roster only, empty journal", f"{args.agents:,}", "0", f"{empty['rss']:.0f}", f"{empty['hwm']:.0f}",
             "", ""]]
    full = None
    for label, code in runs:
        full = serve_and_measure(cfg, code)
        per = (full["rss"] - empty["rss"]) * 1024 * 1024 / records if records else 0
        print(f"{label}: serve, {full['agents']} agents, {records} records: RSS {full['rss']:.0f} MB "
              f"(peak {full['hwm']:.0f} MB), up and ticked in {full['ready_s']:.0f} s "
              f"(first tick {full['tick_ms']} ms); {per:.0f} B of RSS a snapshot above the empty service", flush=True)
        rows.append([label, f"{full['agents']:,}", f"{records:,}", f"{full['rss']:.0f}", f"{full['hwm']:.0f}",
                     f"{per:.0f}", f"<= 300 MB: {verdict(full['rss'] <= 300)}"])
    text = table(["`adherence serve`", "live agents", "journal records held", "RSS MB", "peak RSS MB",
                  "B/snapshot above empty", "target"], rows)
    print()
    print(text)
    if not args.no_write:
        note = (
            f"`adherence simulate --agents {args.agents} --hours {args.hours:g} --start {day}` (08:00 {TZ}; "
            f"every record in the past and within the 3-day in-memory horizon), replayed, then `adherence serve` "
            f"restarted on it; RSS from /proc 2 s after the first evaluator tick ({full['tick_agents']:,} agents, "
            f"{full['tick_ms']:,.0f} ms), {full['ready_s']:.0f} s after the start. \"B/snapshot above empty\" is "
            "(RSS - RSS of the empty service) / records held."
            + (" The rows before/after are the same database served by the two checkouts named, one after the "
               "other in this run." if args.baseline else "")
        )
        write_section("memory", "Memory", note + "\n\n" + text)


if __name__ == "__main__":
    main()
