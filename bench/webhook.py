"""Webhook throughput and latency: `adherence serve` beside a bare Flask endpoint, both on waitress.

1. bare:  bench/bare.py (Flask, json.loads, reply), waitress with the settings of `adherence serve`;
2. serve: `adherence serve` (one process, waitress threads, evaluator ticking every 15 s) on a
   simulated roster, unauthenticated on loopback;
both driven by wrk on loopback with bench/unique.lua (a unique event SID every request, realistic
record with a reservation). Then the journal is counted against wrk's 2xx answers.
3. signed: `adherence serve` with TWILIO_AUTH_TOKEN set, driven by the Python load generator
   (`adherence simulate --post --twilio-token`, which signs every request like Twilio; wrk's Lua
   cannot), beside the same generator unsigned against an unauthenticated serve.

Targets: serve >= 70 % of bare's requests/s; p99 < 50 ms; no errors, no non-2xx; nothing lost
(the journal holds a record for every 2xx).

Usage: python bench/webhook.py [--agents 1000] [--duration 20] [--connections 16] [--threads 8]
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
from pathlib import Path

from common import BENCH, REPO, free_port, out_dir, stop, table, verdict, write_section

TZ = "America/New_York"
TOKEN = "bench-token-0123456789abcdef"
_RUN_IDS = iter(range(int(time.time()) % 1_000_000 * 16, 1 << 24))  # unique event SIDs across wrk runs


def ensure_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        print("wrk not found: apt-get install -y wrk", flush=True)
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=True)
        wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is needed (Debian/Ubuntu: apt-get install wrk)")
    return wrk


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU of a process and its running children (serve's front processes)."""
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        kids = []
    return cpu_seconds(pid) + sum(cpu_seconds(int(k)) for k in kids)


def prepare(folder: Path, agents: int, threads: int) -> tuple[Path, Path, Path]:
    """Roster + config for `serve`, and wrk's body template and SID list."""
    from adherence.cli.simulate import default_start_ms
    from adherence.clock import SystemClock
    from adherence.sim.agent import encode_record
    from adherence.sim.world import roster_yaml
    from adherence.simulate import generate, rules_folder

    if folder.exists():
        shutil.rmtree(folder)
    (folder / "schedules").mkdir(parents=True)
    sim = generate(agents, 10, 1, default_start_ms(TZ, SystemClock().now_ms()), TZ)
    (folder / "schedules" / "roster.yaml").write_text(roster_yaml(sim.world, "bench http"), encoding="utf-8")
    (folder / "config.yaml").write_text(
        f"database: adherence.db\ntimezone: {TZ}\nschedules: schedules\nrules: {json.dumps(str(rules_folder()))}\n"
        f"evaluation:\n  interval: 15s\nserver:\n  host: 127.0.0.1\n  threads: {threads}\n"
        "auth:\n  twilio_auth_token: ${TWILIO_AUTH_TOKEN}\n",
        encoding="utf-8",
    )
    record = None
    for _, rec in sim.records():
        chans = rec["channels"] or []
        if rec["worker"]["activity_name"] == "Available" and any(c["reservations"] for c in chans):
            record = rec
            break
    text = encode_record(record)
    text = (text.replace(record["worker"]["sid"], "__WORKER__")
            .replace(record["last_processed_event_sid"], "__EVENT__")
            .replace(f'"date_last_processed_event":"{record["date_last_processed_event"]}"',
                     '"date_last_processed_event":"__TIME__"'))
    template = folder / "body.json"
    template.write_text('{"product":"Flex","object":"WFMWorkerChange","version":1,"records":[' + text + "]}\n")
    sids = folder / "sids.txt"
    sids.write_text("\n".join(a.sid for a in sim.world.agents) + "\n")
    return folder / "config.yaml", template, sids


def wait_up(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"server did not answer {url}")


def start_serve(cfg: Path, port: int, token: str | None, fronts: int = 0) -> subprocess.Popen:
    for suffix in ("", "-wal", "-shm"):
        p = cfg.parent / f"adherence.db{suffix}"
        if p.exists():
            p.unlink()
    env = dict(os.environ)
    env.pop("TWILIO_AUTH_TOKEN", None)
    env.pop("ADHERENCE_API_TOKEN", None)
    if token:
        env["TWILIO_AUTH_TOKEN"] = token
    log = open(cfg.parent / f"serve-{port}.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "adherence", "serve", "--config", str(cfg), "--port", str(port),
                             "--front-processes", str(fronts)],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    wait_up(f"http://127.0.0.1:{port}/health", proc)
    return proc


def journal_rows(cfg: Path) -> int:
    conn = sqlite3.connect(str(cfg.parent / "adherence.db"))
    try:
        return conn.execute("SELECT COUNT(*) FROM journal").fetchone()[0]
    finally:
        conn.close()


def run_wrk(wrk: str, port: int, template: Path, sids: Path, duration: int, connections: int) -> dict:
    cmd = [wrk, "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "-s", str(BENCH / "unique.lua"),
           f"http://127.0.0.1:{port}/webhooks/rta", "--", str(template), str(sids), str(next(_RUN_IDS))]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    line = next(x for x in res.stdout.splitlines() if x.startswith("BENCH_JSON "))
    d = json.loads(line[len("BENCH_JSON "):])
    d["rps"] = d["requests"] / (d["duration_us"] / 1e6)
    d["errors"] = d["connect"] + d["read"] + d["write"] + d["timeout"]
    return d


def run_post(cfg: Path, port: int, agents: int, limit: int, concurrency: int, token: str | None) -> dict:
    """`adherence simulate --post`: sent, 2xx, req/s, p50, p99; and how many distinct records it carried."""
    cmd = [sys.executable, "-m", "adherence", "simulate", "--agents", str(agents), "--hours", "10", "--seed", "2",
           "--post", f"http://127.0.0.1:{port}/webhooks/rta", "--concurrency", str(concurrency), "--limit", str(limit)]
    env = dict(os.environ)
    env.pop("TWILIO_AUTH_TOKEN", None)
    if token:
        cmd += ["--twilio-token", token]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    out = res.stdout + res.stderr
    import re

    m = re.search(r"sent (\d+) envelopes \((\d+) records\): (\d+) 2xx, (\d+) non-2xx, (\d+) errors", out)
    r = re.search(r"elapsed ([\d.]+) s, ([\d.]+) req/s, latency p50 ([\d.]+) ms, p99 ([\d.]+) ms", out)
    if not m or not r:
        raise SystemExit(f"cannot read the load generator's summary:\n{out}")
    d = {"sent": int(m[1]), "records": int(m[2]), "ok": int(m[3]), "non2xx": int(m[4]), "errors": int(m[5]),
         "elapsed": float(r[1]), "rps": float(r[2]), "p50_ms": float(r[3]), "p99_ms": float(r[4])}
    # the distinct event SIDs among those envelopes (the feed repeats ~1 % of records, as Twilio may)
    from adherence.cli.simulate import default_start_ms
    from adherence.clock import SystemClock
    from adherence.simulate import generate

    # same arguments as the CLI: default start is today 08:00 local, read again here
    sim = generate(agents, 10, 2, default_start_ms(TZ, SystemClock().now_ms()), TZ)
    seen = set()
    for i, (_, env_) in enumerate(sim.events()):
        if i >= d["sent"]:
            break
        seen.update(rec["last_processed_event_sid"] for rec in env_["records"])
    d["distinct"] = len(seen)
    return d


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, default=1000, help="roster size of the served center")
    ap.add_argument("--duration", type=int, default=20, help="seconds of each wrk run")
    ap.add_argument("--connections", type=int, default=16, help="wrk connections")
    ap.add_argument("--rounds", type=int, default=3, help="alternating bare/serve wrk runs")
    ap.add_argument("--threads", type=int, default=8, help="waitress threads (server.threads)")
    ap.add_argument("--fronts", type=int, default=2, help="front processes of the third server (--front-processes)")
    ap.add_argument("--post-limit", type=int, default=10_000, help="envelopes the Python load generator sends")
    ap.add_argument("--post-concurrency", type=int, default=8)
    ap.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md alone")
    args = ap.parse_args()
    wrk = ensure_wrk()
    folder = out_dir("http")
    cfg, template, sids = prepare(folder / "center", args.agents, args.threads)
    print(f"body: {template.stat().st_size} bytes; roster {args.agents} agents", flush=True)

    # 1 + 2. bare, `adherence serve` in one process, and `serve --front-processes N` (unauthenticated, loopback)
    # side by side, measured in alternation: on a shared machine the load of the moment moves all alike; CPU a
    # request is each server's own (the owner and its fronts together)
    cfg_f = folder / "center-fronts" / "config.yaml"
    if cfg_f.parent.exists():
        shutil.rmtree(cfg_f.parent)
    shutil.copytree(cfg.parent, cfg_f.parent)
    port_b, port_s, port_f = free_port(), free_port(), free_port()
    bare = subprocess.Popen([sys.executable, str(BENCH / "bare.py"), "--port", str(port_b), "--threads",
                             str(args.threads)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    srv = start_serve(cfg, port_s, None)
    srv_f = start_serve(cfg_f, port_f, None, args.fronts)
    bs, ss, fs = [], [], []
    try:
        time.sleep(0.5)
        wait_up_post(port_b, bare)
        for port in (port_b, port_s, port_f):
            run_wrk(wrk, port, template, sids, 3, args.connections)  # warm-up (and serve's first tick)
        time.sleep(1)
        for r in range(args.rounds):
            c0 = cpu_seconds(bare.pid)
            b = run_wrk(wrk, port_b, template, sids, args.duration, args.connections)
            b["cpu_ms"] = (cpu_seconds(bare.pid) - c0) * 1000 / max(1, b["requests"])
            bs.append(b)
            for proc, port, c, out in ((srv, port_s, cfg, ss), (srv_f, port_f, cfg_f, fs)):
                before = journal_rows(c)
                c0 = tree_cpu_seconds(proc.pid)
                x = run_wrk(wrk, port, template, sids, args.duration, args.connections)
                x["cpu_ms"] = (tree_cpu_seconds(proc.pid) - c0) * 1000 / max(1, x["requests"])
                time.sleep(2)  # answers in flight when wrk stopped
                x["stored"] = journal_rows(c) - before
                out.append(x)
            s, f = ss[-1], fs[-1]
            print(f"round {r + 1}: bare {b['rps']:,.0f} req/s ({b['cpu_ms']:.2f} ms CPU a request); serve "
                  f"{s['rps']:,.0f} req/s ({s['cpu_ms']:.2f} ms), p99 {s['p99_us'] / 1000:.1f} ms; with "
                  f"{args.fronts} fronts {f['rps']:,.0f} req/s ({f['cpu_ms']:.2f} ms), p99 {f['p99_us'] / 1000:.1f} ms; "
                  f"non-2xx {s['status']}/{f['status']}, errors {s['errors']}/{f['errors']}, journal "
                  f"+{s['stored']}/+{f['stored']} for {s['requests'] - s['status']}/{f['requests'] - f['status']} 2xx",
                  flush=True)
    finally:
        stop(bare, 30)
        stop(srv, 30)
        stop(srv_f, 30)

    def median_pair(runs):
        pairs = sorted(zip(bs, runs), key=lambda p: p[1]["rps"] / p[0]["rps"])
        return pairs[len(pairs) // 2], [x[1]["rps"] / x[0]["rps"] for x in pairs]

    def accounting(x, runs):
        ok2xx = x["requests"] - x["status"]
        lost = sum(y["requests"] - y["status"] - y["stored"] for y in runs if y["requests"] - y["status"] > y["stored"])
        extra = x["stored"] - ok2xx  # requests in flight when wrk stopped, stored but never counted by wrk
        clean = all(y["status"] == 0 and y["errors"] == 0 for y in runs)
        return ok2xx, extra, clean, lost <= 0 and 0 <= extra <= max(0, x["issued"] - x["requests"])

    (b, s), ratios = median_pair(ss)
    (b_f, f), ratios_f = median_pair(fs)
    print(f"serve: {s['rps']:,.0f} req/s, p50 {s['p50_us'] / 1000:.1f} ms, p99 {s['p99_us'] / 1000:.1f} ms; "
          f"with fronts: {f['rps']:,.0f} req/s, p50 {f['p50_us'] / 1000:.1f} ms, p99 {f['p99_us'] / 1000:.1f} ms",
          flush=True)

    # 3. Python load generator: unsigned, then signed like Twilio
    posts = {}
    for name, token, fronts in (("unsigned", None, 0), ("signed", TOKEN, 0), ("signed, fronts", TOKEN, args.fronts)):
        port = free_port()
        srv = start_serve(cfg, port, token, fronts)
        try:
            time.sleep(1)
            before = journal_rows(cfg)
            p = run_post(cfg, port, args.agents, args.post_limit, args.post_concurrency, token)
            time.sleep(1)
            p["stored"] = journal_rows(cfg) - before
        finally:
            stop(srv, 30)
        posts[name] = p
        print(f"simulate --post ({name}): {p['rps']:,.0f} req/s, p50 {p['p50_ms']:.1f} ms, p99 {p['p99_ms']:.1f} ms, "
              f"{p['ok']}/{p['sent']} 2xx, {p['records']} records ({p['distinct']} distinct), journal +{p['stored']}",
              flush=True)

    rows = [
        ["bare Flask (json.loads only), waitress", "wrk", f"{b['rps']:,.0f}", "100 %", f"{b['cpu_ms']:.2f}",
         f"{b['p50_us'] / 1000:.1f}", f"{b['p99_us'] / 1000:.1f}", f"{b['status']} / {b['errors']}", "", ""],
    ]
    for label, x, base, rs, runs in (("`adherence serve`, one process, no auth", s, b, ratios, ss),
                                     (f"`adherence serve --front-processes {args.fronts}`, no auth", f, b_f, ratios_f,
                                      fs)):
        ratio = x["rps"] / base["rps"]
        ok2xx, extra, clean, kept = accounting(x, runs)
        rows.append([
            label, "wrk", f"{x['rps']:,.0f}", f"{ratio * 100:.0f} % (rounds: {', '.join(f'{r * 100:.0f}' for r in rs)})",
            f"{x['cpu_ms']:.2f}", f"{x['p50_us'] / 1000:.1f}", f"{x['p99_us'] / 1000:.1f}",
            f"{x['status']} / {x['errors']}", f"{x['stored']:,} for {ok2xx:,} 2xx (+{extra} in flight at the stop)",
            f">= 70 %: {verdict(ratio >= 0.7)}; p99 < 50 ms: {verdict(x['p99_us'] < 50_000)}; "
            f"no errors: {verdict(clean)}; nothing lost: {verdict(kept)}"])
    for name, p in posts.items():
        exact = p["stored"] == p["distinct"] and p["ok"] == p["sent"]
        rows.append([
            f"`adherence serve{f' --front-processes {args.fronts}' if 'fronts' in name else ''}`, "
            f"{'Twilio signature required' if name != 'unsigned' else 'no auth'}",
            f"simulate --post{' --twilio-token' if name != 'unsigned' else ''}", f"{p['rps']:,.0f}", "", "",
            f"{p['p50_ms']:.1f}", f"{p['p99_ms']:.1f}", f"{p['non2xx']} / {p['errors']}",
            f"{p['stored']:,} = {p['distinct']:,} distinct records in {p['ok']:,} 2xx",
            f"p99 < 50 ms: {verdict(p['p99_ms'] < 50)}; nothing lost: {verdict(exact)}",
        ])
    text = table(["server", "load", "req/s", "vs bare", "CPU ms a request", "p50 ms", "p99 ms", "non-2xx / errors",
                  "journal", "target"],
                 rows)
    print()
    print(text)
    if not args.no_write:
        note = (
            f"Loopback, one machine: the load generator shares the {os.cpu_count()} cores with the server. "
            f"wrk: 1 thread, {args.connections} connections, {args.rounds} rounds of {args.duration} s each, bare and "
            "serve in alternation (both running throughout), after a 3 s warm-up of each; the median round's pair "
            "is shown (every round's ratio in brackets). CPU a request: the server's user+system time "
            "over the round's answers (with front processes: the owner's and the fronts' together). "
            f"`bench/unique.lua` (one {template.stat().st_size}-byte record with a reservation per request, "
            f"unique event SID, rotating over {args.agents} roster agents). Both servers: waitress, "
            f"{args.threads} threads, the settings of `adherence serve` (neither logs waitress' per-request "
            "'Task queue depth' warning); `serve` runs its evaluator "
            f"(15 s ticks) during the load. `--front-processes {args.fronts}`: that many front processes take "
            "the connections on the shared port, authenticate and forward each body over a Unix socket to the one "
            "process that journals it (adherence/web/link.py); the answer still waits for the commit. \"journal\": rows added during the measured run; wrk counts "
            "only answers received, so requests in flight when it stops are stored but not counted. "
            f"Python load generator: `adherence simulate --agents {args.agents} --post ... --concurrency "
            f"{args.post_concurrency} --limit {args.post_limit}` (the simulated feed, ~2 % multi-record "
            "envelopes and ~1 % repeated records, counted once); it needs far more CPU per request than "
            "wrk, so its req/s is bounded by the generator, not the server."
        )
        write_section("http", "Webhook (HTTP)", note + "\n\n" + text)


def wait_up_post(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    body = json.dumps({"product": "Flex", "object": "WFMWorkerChange", "version": 1, "records": []}).encode()
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"bare server exited with {proc.returncode}")
        try:
            req = urllib.request.Request(f"http://127.0.0.1:{port}/webhooks/rta", data=body,
                                         headers={"Content-Type": "application/json"})
            urllib.request.urlopen(req, timeout=2).read()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("bare server did not answer")


if __name__ == "__main__":
    main()
