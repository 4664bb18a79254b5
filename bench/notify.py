"""Notification burst: 1,000 exceptions opening in one tick of a 10,000-agent center, delivered to a webhook.

A simulated center (bench/center.py) is fed to mid-shift and evaluated once. Then a notification route
(every exception of the rule ``bench-burst``, to a signed webhook) is switched on and 1,000 agents
move to the activity that rule watches; the next tick opens their 1,000 exceptions and, in the same
transactions, writes 1,000 outbox entries. The sender threads deliver them to a receiver in another
process on loopback, which checks every HMAC signature.

Meanwhile 4 keep-alive connections post feed records to the service's webhook (waitress, 8 threads), as
in bench/evaluator_webhook.py, and their latency is recorded from the tick's start until the last alert
is delivered.

Targets: every alert delivered (exactly once, each signature valid); webhook p99 < 50 ms meanwhile.

Usage: python bench/notify.py [--agents 10000] [--burst 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from pathlib import Path

from waitress.server import create_server

from adherence.feed import parse_envelope
from adherence.notify.config import notification_source
from adherence.notify.outbox import Notifier
from adherence.notify.sender import Sender
from adherence.rules import rule_source
from adherence.scheduler import _tick as scheduled_tick
from adherence.timeutil import iso
from adherence.web import create_app
from center import Center
from common import Timer, out_dir, table, verdict, write_section
from evaluator_webhook import MID_H, Poster, percentile

SECRET = "bench-secret-0123456789abcdef"
RECEIVER = """
import hashlib, hmac, json, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
SECRET = sys.argv[1].encode()
seen, bad, dup, last = set(), 0, 0, [0.0]
lock = threading.Lock()
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        global bad, dup
        body = self.rfile.read(int(self.headers["Content-Length"]))
        ts = self.headers["X-Adherence-Timestamp"]
        mac = "v1=" + hmac.new(SECRET, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        with lock:
            if not hmac.compare_digest(mac, self.headers["X-Adherence-Signature"]) or abs(time.time() - int(ts)) > 300:
                bad += 1
            else:
                d = self.headers["X-Adherence-Delivery"]
                dup += d in seen
                seen.add(d)
                last[0] = time.time()
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def do_GET(self):
        with lock:
            out = json.dumps({"received": len(seen), "bad": bad, "duplicates": dup, "last": last[0]}).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(out))); self.end_headers()
        self.wfile.write(out)
    def log_message(self, *a): pass
s = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"""
BURST_RULE = """
rules:
  - name: bench-burst
    description: the bench's burst (an activity only the bench uses)
    when: {activity: [BenchAway]}
    for: 1m
    severity: critical
"""


def receiver_counts(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
        return json.loads(r.read())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, default=10_000)
    ap.add_argument("--distinct", type=int, default=2_000)
    ap.add_argument("--burst", type=int, default=1_000)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--no-control", action="store_true", help="skip the baseline run")
    ap.add_argument("--control", action="store_true",
                    help="the same tick with notifications off (no outbox, no sender): the webhook's baseline")
    args = ap.parse_args()
    control = None
    if not args.control and not args.no_control:
        # the baseline first, in its own process: the same center, the same tick, notifications off
        out = subprocess.run([sys.executable, __file__, "--control", "--agents", str(args.agents), "--distinct",
                              str(args.distinct), "--burst", str(args.burst)], capture_output=True, text=True,
                             check=True).stdout
        control = json.loads(out.split("CONTROL ", 1)[1].splitlines()[0])
        print("control:", control, flush=True)
    recv = subprocess.Popen([sys.executable, "-c", RECEIVER, SECRET], stdout=subprocess.PIPE, text=True)
    rport = int(recv.stdout.readline())
    folder = out_dir(f"notify-{args.agents}")
    with Timer() as setup:
        c = Center(args.agents, folder, distinct=args.distinct)
        mid = c.start_ms + MID_H * 3_600_000
        c.fill_until(mid)
        eng = c.engine
        # the repository's rules plus the burst's rule, in the bench's own folder
        rules = folder / "rules"
        shutil.rmtree(rules, ignore_errors=True)
        shutil.copytree(eng.config.rules, rules, ignore=shutil.ignore_patterns("tests"))
        (rules / "bench.yaml").write_text(BURST_RULE)
        eng.config.rules = rules
        eng.rules = eng.runner.rules = rule_source(eng.config)
        eng.rules.check()
        first = eng.runner.tick(mid)  # the center's own exceptions, before notifications are on
    print(f"set-up {setup.s:.1f} s (first tick {first.duration_s:.1f} s, {first.agents} agents)", flush=True)
    os.environ["BENCH_HOOK_SECRET"] = SECRET
    (folder / "notifications.yaml").write_text(textwrap.dedent(f"""\
        channels:
          hook:
            type: webhook
            url: http://127.0.0.1:{rport}/alerts
            secret: ${{BENCH_HOOK_SECRET}}
        routes:
          - name: burst
            channel: hook
            rules: [bench-burst]
        """))
    eng.config.notifications = folder / "notifications.yaml"
    source = notification_source(eng.config)
    source.check()
    if not args.control:
        eng.notifier = Notifier(eng.store, source, eng.clock)
        eng.runner.exception_listener = eng.notifier.on_exceptions
    app = create_app(engine=eng)
    server = create_server(app, host="127.0.0.1", port=0, threads=8)
    port = server.effective_port
    threading.Thread(target=server.run, daemon=True).start()
    workers = [a.worker_sid for a in eng.schedules.current.agents.values()]
    burst, rest = workers[:args.burst], workers[args.burst:]
    at = mid + 1000
    pending = []
    for i, w in enumerate(burst):
        env = {"product": "Flex", "object": "WFMWorkerChange", "version": 1, "records": [{
            "worker": {"sid": w, "activity_name": "BenchAway"}, "channels": None,
            "last_processed_event_sid": f"EVburst{i:027d}", "date_last_processed_event": iso(at)}]}
        pending.append((parse_envelope(env, at), at))
    eng.journal.ingest_parsed(pending)
    sender = Sender(eng.notifier) if not args.control else None
    if sender is not None:
        sender.start()
    posters = [Poster(port, rest, mid + 3_000, f"n{i}") for i in range(4)]
    for p in posters:
        p.start()
    time.sleep(0.5)
    load = os.getloadavg()[0]  # the machine is shared: say how busy it was
    t0 = time.perf_counter()
    wall0 = time.time()
    c.clock.set(mid + 120_000)  # the sender reads the engine's clock: entries are due from the tick's instant
    scheduled_tick(eng)  # as serve runs it: the tick, then the notifier's pass (the sender waits for the tick)
    stats = eng.runner.last_tick
    t_tick = time.perf_counter() - t0
    n_out = eng.store.reader.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    deadline = time.time() + 300
    while time.time() < deadline and not args.control:
        got = receiver_counts(rport)
        if got["received"] >= n_out:
            break
        time.sleep(0.05)
    t_all = time.perf_counter() - t0
    for p in posters:
        p.stop.set()
    for p in posters:
        p.join()
    got = receiver_counts(rport)
    delivered_s = got["last"] - wall0
    lat = [s[1] * 1000 for p in posters for s in p.samples if t0 <= s[0] <= t0 + t_all]
    # by phase: requests sent while the tick ran, and after it while the sender delivered
    in_tick = [s[1] * 1000 for p in posters for s in p.samples if t0 <= s[0] <= t0 + t_tick]
    after = [s[1] * 1000 for p in posters for s in p.samples if t0 + t_tick < s[0] <= t0 + t_all]
    bad_status = sum(1 for p in posters for s in p.samples if s[2] != 200)
    statuses = dict(eng.store.reader.execute("SELECT status, COUNT(*) FROM outbox GROUP BY status").fetchall())
    if sender is not None:
        sender.stop()
    server.close()
    c.close()
    recv.terminate()
    p99 = percentile(lat, 99)

    def p99_of(xs: list[float]) -> str:
        return f"{percentile(xs, 99):.1f} ({len(xs):,})" if xs else ""

    ok = got["received"] == n_out == args.burst and got["bad"] == 0 and got["duplicates"] == 0
    rows = [[f"{args.agents:,}", f"{args.burst:,}", f"{load:.1f}", f"{stats.agents:,}", f"{t_tick:.2f}", f"{n_out:,}",
             f"{got['received']:,}", str(got["bad"]), str(got["duplicates"]), f"{delivered_s:.2f}",
             f"{len(lat):,}", f"{percentile(lat, 50):.1f}", f"{p99:.1f}", p99_of(in_tick), p99_of(after),
             f"{max(lat) if lat else 0:.1f}",
             f"{stats.longest_write_s * 1000:.0f}", str(bad_status), f"all delivered once, signed: {verdict(ok)}; p99 < 50 ms: {verdict(p99 < 50)}"]]
    headers = ["agents", "burst", "load (1 min)", "agents evaluated", "tick s", "outbox entries", "delivered",
               "bad signatures", "duplicates", "tick start → last delivered s", "webhook requests", "p50 ms",
               "p99 ms", "p99 ms during the tick (requests)", "p99 ms after it, while delivering (requests)",
               "max ms", "writer hold ms", "non-200", "target"]
    text = table(headers, rows)
    print(text)
    print("outbox:", statuses, "tick:", stats.as_dict())
    if args.control:
        print("CONTROL " + json.dumps({"tick_s": t_tick, "agents": stats.agents, "n": len(lat),
                                       "p50": percentile(lat, 50), "p99": p99, "max": max(lat) if lat else 0,
                                       "longest_write_ms": stats.longest_write_s * 1000, "load": load}), flush=True)
        return
    ctl = control or {}
    if ctl:
        rows.append([f"{args.agents:,}", "notifications off", f"{ctl['load']:.1f}", f"{ctl['agents']:,}",
                     f"{ctl['tick_s']:.2f}", "", "", "", "", "", f"{ctl['n']:,}", f"{ctl['p50']:.1f}",
                     f"{ctl['p99']:.1f}", f"{ctl['p99']:.1f} ({ctl['n']:,})", "", f"{ctl['max']:.1f}",
                     f"{ctl['longest_write_ms']:.0f}", "", "the same tick without notifications (baseline)"])
        text = table(headers, rows)
        print(text)
    if not args.no_write:
        note = (f"{args.agents:,} agents (`bench/center.py`, {args.distinct:,} simulated, the rest clones) fed to "
                "13:00 local and evaluated once; then a route for rule `bench-burst` to a signed webhook is switched "
                f"on and {args.burst:,} agents move to that rule's activity. The next tick (run as `serve` runs it: "
                "`scheduler._tick`, the tick then the notifier's pass) opens their exceptions (outbox entries in "
                "the same transactions); the sender, which holds back while a tick runs, delivers them to a "
                "receiver process on loopback that checks each signature. Meanwhile 4 keep-alive connections post feed records to the "
                "service's webhook (waitress, 8 threads); latency is the client's, from the tick's start to the last "
                "delivery, also split into requests sent during the tick and after it. `load (1 min)`: the machine's "
                "load average when the measured tick began (2 cores; above 2, other work was running). The second row is the same tick in a separate run with notifications off (no outbox, no "
                "sender): what the center's evaluation alone costs the webhook on the same machine at the same time.")
        write_section("notify", "Notification burst: 1,000 alerts in one tick", note + "\n\n" + text)


if __name__ == "__main__":
    main()
