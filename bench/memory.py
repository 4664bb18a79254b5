"""Memory: RSS of `adherence serve` holding 10,000 live agents, after the evaluator ticked.

A simulated center of 10,000 agents (this morning from 08:00 America/New_York,
so the records are within the service's in-memory horizon) is written with
`adherence simulate`, replayed into the journal with `adherence replay`, then
`adherence serve` starts on it (restoring every agent's timeline from the
journal), runs its first evaluator tick, and its resident set size is read
from /proc. For comparison: the same serve on the same roster with an empty
journal.

Target: <= 300 MB.

Usage: python bench/memory.py [--agents 10000] [--hours 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from common import out_dir, rss_mb, simulate_cmd, table, verdict, write_section

TZ = "America/New_York"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_and_measure(cfg: Path, timeout: float = 600) -> dict:
    port = free_port()
    env = dict(os.environ)
    env.pop("TWILIO_AUTH_TOKEN", None)
    env.pop("ADHERENCE_API_TOKEN", None)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "adherence", "serve", "--config", str(cfg), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
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
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, default=10_000)
    ap.add_argument("--hours", type=float, default=3, help="simulated hours of feed held in memory")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md alone")
    args = ap.parse_args()
    folder = out_dir(f"memory-{args.agents}x{args.hours:g}h")
    if folder.exists():
        shutil.rmtree(folder)
    print(f"simulating {args.agents} agents x {args.hours:g} h from today 08:00 {TZ} ...", flush=True)
    subprocess.run([*simulate_cmd(), "--agents", str(args.agents), "--hours", str(args.hours), "--seed",
                    str(args.seed), "--timezone", TZ, "--out", str(folder)], check=True, stdout=subprocess.DEVNULL)
    cfg = folder / "config.yaml"

    empty = serve_and_measure(cfg)
    print(f"serve, empty journal: RSS {empty['rss']:.0f} MB (peak {empty['hwm']:.0f} MB)", flush=True)

    _fresh_db(folder)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "adherence", "replay", "--quiet", "--config", str(cfg),
                    str(folder / "feed.jsonl")], check=True)
    print(f"replayed in {time.perf_counter() - t0:.0f} s", flush=True)
    conn = sqlite3.connect(str(folder / "adherence.db"))
    records = conn.execute("SELECT COUNT(*) FROM journal").fetchone()[0]
    conn.close()
    (folder / "feed.jsonl").unlink()  # large; not needed any more

    full = serve_and_measure(cfg)
    print(f"serve, {full['agents']} agents, {records} records: RSS {full['rss']:.0f} MB (peak {full['hwm']:.0f} MB), "
          f"up and ticked in {full['ready_s']:.0f} s (first tick {full['tick_ms']} ms)", flush=True)
    per = (full["rss"] - empty["rss"]) * 1024 * 1024 / records if records else 0
    rows = [
        ["roster only, empty journal", f"{args.agents:,}", "0", f"{empty['rss']:.0f}", f"{empty['hwm']:.0f}", ""],
        ["after replay + restart + first tick", f"{full['agents']:,}", f"{records:,}", f"{full['rss']:.0f}",
         f"{full['hwm']:.0f}", f"<= 300 MB: {verdict(full['rss'] <= 300)}"],
    ]
    text = table(["`adherence serve`", "live agents", "journal records held", "RSS MB", "peak RSS MB", "target"],
                 rows)
    print()
    print(text)
    if not args.no_write:
        note = (
            f"`adherence simulate --agents {args.agents} --hours {args.hours:g}` from today 08:00 {TZ} "
            f"(everything within the 3-day in-memory horizon), replayed, then `adherence serve` restarted on it; "
            f"RSS from /proc 2 s after the first evaluator tick ({full['tick_agents']:,} agents, "
            f"{full['tick_ms']:,.0f} ms), {full['ready_s']:.0f} s after the start. About {per:.0f} bytes of RSS per "
            "snapshot held above the empty service: a whole day per agent (~40 records an hour on shift) adds "
            "in proportion."
        )
        write_section("memory", "Memory", note + "\n\n" + text)


if __name__ == "__main__":
    main()
