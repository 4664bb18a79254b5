"""Restart with a full day in the journal: how soon Twilio's webhooks are answered, and how honest /health is.

A simulated center (`adherence simulate`, a 10-hour window from 08:00 America/New_York that has ended,
so every record is in the past) is replayed into the journal; then `adherence serve` is started on it
and watched from outside while it loads every agent's timeline and runs its first tick:

  accept     seconds from the start until the port accepts a TCP connection;
  webhook    seconds until a signed-off single-record webhook is answered 2xx (the journal takes it);
  tick       seconds until /health reports the first tick;
  honest     /health never said "ok" before that first tick (it says "starting", HTTP 503);
  p99        latency of webhooks posted back to back by one client from the first answer until the
             first tick had run (the webhook must not wait for the load or the tick).

The journal of `bench/memory.py` (same agents and hours) is reused when it is there, since replaying a
10,000-agent day takes many minutes; else this script simulates and replays its own.

Targets (issue #16): port accepts webhooks <= 2 s whatever the journal's size; /health "starting" until
the first tick; webhook p99 < 50 ms meanwhile.

Usage: python bench/restart.py [--agents 10000] [--hours 10]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import REPO, free_port, out_dir, simulate_cmd, stop, table, verdict, write_section
from memory import TZ, _window_day


def journal(agents: int, hours: float, seed: int = 1) -> tuple[Path, int]:
    """A config whose database holds the replayed day (bench/memory.py's when present)."""
    day = _window_day(hours)
    stamp = {"agents": agents, "hours": hours, "seed": seed, "day": day.isoformat()}
    for name in (f"memory-{agents}x{hours:g}h", f"restart-{agents}x{hours:g}h"):
        folder = out_dir(name)
        marker = folder / "replayed.json"
        if marker.exists() and json.loads(marker.read_text()) == stamp and (folder / "adherence.db").exists():
            break
    else:
        shutil.rmtree(folder)
        folder.mkdir(parents=True)
        print(f"simulating {agents} agents x {hours:g} h from {day} 08:00 {TZ} and replaying ...", flush=True)
        subprocess.run([*simulate_cmd(), "--agents", str(agents), "--hours", str(hours), "--seed", str(seed),
                        "--timezone", TZ, "--start", day.isoformat(), "--out", str(folder)],
                       check=True, stdout=subprocess.DEVNULL, cwd=str(REPO))
        subprocess.run([sys.executable, "-m", "adherence", "replay", "--quiet", "--config",
                        str(folder / "config.yaml"), str(folder / "feed.jsonl")], check=True, cwd=str(REPO))
        (folder / "feed.jsonl").unlink()
        marker.write_text(json.dumps(stamp))
    conn = sqlite3.connect(str(folder / "adherence.db"))
    records = conn.execute("SELECT COUNT(*) FROM journal").fetchone()[0]
    worker = conn.execute("SELECT worker_sid FROM journal ORDER BY id DESC LIMIT 1").fetchone()[0]
    conn.close()
    (folder / "worker.txt").write_text(worker)
    return folder / "config.yaml", records


def _record(n: int, worker: str) -> bytes:
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return json.dumps({"product": "Flex", "object": "WFMWorkerChange", "version": 1, "records": [{
        "worker": {"sid": worker, "activity_name": "Available"}, "channels": None,
        "last_processed_event_sid": f"EVrestart{os.getpid():08d}{n:017d}", "date_last_processed_event": at}]}
    ).encode()


def _health(port: int) -> dict | None:
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/health")
        r = c.getresponse()
        body = json.loads(r.read())
        c.close()
        body["_code"] = r.status
        return body
    except (OSError, ValueError):
        return None


def measure(cfg: Path, worker: str, timeout: float = 900) -> dict:
    port = free_port()
    env = dict(os.environ)
    env.pop("TWILIO_AUTH_TOKEN", None)
    env.pop("ADHERENCE_API_TOKEN", None)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "adherence", "serve", "--config", str(cfg), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=str(REPO))
    out: dict = {"accept": None, "webhook": None, "tick": None, "said_ok_early": False, "states": []}
    lat: list[float] = []
    try:
        while out["accept"] is None:  # the port
            if proc.poll() is not None or time.perf_counter() - t0 > timeout:
                raise SystemExit("serve exited or never listened")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                out["accept"] = time.perf_counter() - t0
            except OSError:
                time.sleep(0.01)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        n = 0
        next_health = 0.0
        while time.perf_counter() - t0 < timeout:
            n += 1
            body = _record(n, worker)
            s = time.perf_counter()
            conn.request("POST", "/webhooks/rta", body=body, headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            e = time.perf_counter()
            if 200 <= r.status < 300:
                lat.append(e - s)
                if out["webhook"] is None:
                    out["webhook"] = e - t0
            if e >= next_health:  # /health every 200 ms, on its own connection
                next_health = e + 0.2
                h = _health(port)
                if h is not None:
                    status = h.get("status")
                    if not out["states"] or out["states"][-1][1] != status:
                        out["states"].append((round(e - t0, 1), status, h["_code"]))
                    ticked = (h.get("evaluator") or {}).get("last_tick")
                    if status == "ok" and not ticked:
                        out["said_ok_early"] = True
                    if ticked:
                        out["tick"] = e - t0
                        break
        conn.close()
    finally:
        stop(proc)
    lat.sort()
    out["requests"] = len(lat)
    out["p50_ms"] = statistics.median(lat) * 1000 if lat else None
    out["p99_ms"] = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000 if lat else None
    out["max_ms"] = lat[-1] * 1000 if lat else None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, default=10_000)
    ap.add_argument("--hours", type=float, default=10)
    ap.add_argument("--config", type=Path,
                    help="serve this config's database instead (a journal replayed before, e.g. by bench/replay.py)")
    ap.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md alone")
    args = ap.parse_args()
    if args.config:
        cfg = args.config
        conn = sqlite3.connect(str(cfg.parent / "adherence.db"))
        records = conn.execute("SELECT COUNT(*) FROM journal").fetchone()[0]
        worker = conn.execute("SELECT worker_sid FROM journal ORDER BY id DESC LIMIT 1").fetchone()[0]
        conn.close()
    else:
        cfg, records = journal(args.agents, args.hours)
        worker = (cfg.parent / "worker.txt").read_text()
    r = measure(cfg, worker)
    print(json.dumps(r, indent=1), flush=True)
    ok = (r["webhook"] is not None and r["webhook"] <= 2 and not r["said_ok_early"] and r["tick"] is not None
          and r["p99_ms"] is not None and r["p99_ms"] < 50)
    rows = [[f"{args.agents:,}", f"{records:,}", f"{r['accept']:.2f}", f"{r['webhook']:.2f}",
             f"{r['tick']:.1f}" if r["tick"] else "none", "no" if r["said_ok_early"] else "yes",
             f"{r['requests']:,}", f"{r['p50_ms']:.1f} / {r['p99_ms']:.1f} / {r['max_ms']:.0f}",
             f"webhook <= 2 s, honest, p99 < 50 ms: {verdict(ok)}"]]
    text = table(["agents", "journal records", "port accepts s", "first webhook 2xx s", "first tick s",
                  "/health honest", "webhooks meanwhile", "p50 / p99 / max ms", "target"], rows)
    states = " → ".join(f"{s} ({c}) at {t} s" for t, s, c in r["states"])
    print(text)
    if not args.no_write:
        note = (f"`adherence serve` restarted on a journal holding a replayed `simulate --agents {args.agents} "
                f"--hours {args.hours:g}` day" + (f" (`{args.config.parent.name}`)" if args.config else "")
                + "; one client posts single-record webhooks back to back from the first "
                f"accepted connection until /health reports the first tick. /health said: {states}.")
        write_section("restart", "Restart with a full day in the journal", note + "\n\n" + text)


if __name__ == "__main__":
    main()
