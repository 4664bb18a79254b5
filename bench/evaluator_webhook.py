"""Webhook latency while the evaluator works: a first tick of 10,000 agents, and a reload tick.

A simulated center (bench/center.py) is held by an in-process engine served by waitress on loopback
(8 threads), fed to mid-shift. A poster thread sends single-record envelopes (new event SIDs, agents of the
roster) back to back over 4 keep-alive connections, and records each answer's latency, in three phases:

  idle      no evaluation running (the baseline of the same run);
  first     during the first tick after a start (every agent evaluated from monitoring start);
  reload    during the tick after a rule edit (every agent's days not yet final re-evaluated).

The tick computes with no lock held and writes results in short transactions; the longest time it held
the writer is reported from the tick's own stats.

Targets: webhook p99 < 50 ms during the first and the reload tick; the writer never held > 100 ms at once.

Usage: python bench/evaluator_webhook.py [--agents 10000] [--distinct 2000]
"""

from __future__ import annotations

import argparse
import gc
import http.client
import json
import shutil
import threading
import time
from pathlib import Path
from types import SimpleNamespace

from waitress.server import create_server

from adherence.rules import rule_source
from adherence.timeutil import iso
from adherence.web import create_app
from center import Center
from common import Timer, out_dir, table, verdict, write_section

MID_H = 5


class Poster(threading.Thread):
    """Posts single-record envelopes until stopped; keeps (sent_at, latency_s, status)."""

    def __init__(self, port: int, workers: list[str], at_ms: int, tag: str):
        super().__init__(daemon=True)
        self.port, self.workers, self.at_ms, self.tag = port, workers, at_ms, tag
        self.samples: list[tuple[float, float, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        n = 0
        while not self.stop.is_set():
            n += 1
            w = self.workers[n % len(self.workers)]
            body = json.dumps({"product": "Flex", "object": "WFMWorkerChange", "version": 1, "records": [{
                "worker": {"sid": w, "activity_name": "Available"}, "channels": None,
                "last_processed_event_sid": f"EV{self.tag}{n:028d}",
                "date_last_processed_event": iso(self.at_ms + n)}]}).encode()
            t0 = time.perf_counter()
            conn.request("POST", "/webhooks/rta", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            self.samples.append((t0, time.perf_counter() - t0, resp.status))
        conn.close()


def percentile(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else float("nan")


def phase(port: int, workers: list[str], at_ms: int, tag: str, work) -> dict:
    posters = [Poster(port, workers, at_ms, f"{tag}{i}") for i in range(4)]
    for p in posters:
        p.start()
    time.sleep(0.3)
    t0 = time.perf_counter()
    stats = work()
    t1 = time.perf_counter()
    for p in posters:
        p.stop.set()
    for p in posters:
        p.join()
    lat = [s[1] * 1000 for p in posters for s in p.samples if t0 <= s[0] <= t1]
    bad = sum(1 for p in posters for s in p.samples if s[2] != 200)
    return {"s": t1 - t0, "n": len(lat), "p50": percentile(lat, 50), "p99": percentile(lat, 99),
            "max": max(lat) if lat else float("nan"), "errors": bad, "stats": stats}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, default=10_000)
    ap.add_argument("--distinct", type=int, default=2_000)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    with Timer() as setup:
        c = Center(args.agents, out_dir(f"evaluator-webhook-{args.agents}"), distinct=args.distinct)
        mid = c.start_ms + MID_H * 3_600_000
        c.fill_until(mid)
    app = create_app(engine=c.engine)
    server = create_server(app, host="127.0.0.1", port=0, threads=8)
    port = server.effective_port
    threading.Thread(target=server.run, daemon=True).start()
    rules_dir = Path(c.folder) / "rules"
    shutil.copytree(c.engine.config.rules, rules_dir, ignore=shutil.ignore_patterns("tests"))
    c.engine.rules = c.engine.runner.rules = rule_source(SimpleNamespace(rules=rules_dir))
    c.engine.rules.check()
    workers = [a.worker_sid for a in c.engine.schedules.current.agents.values()]
    runner = c.engine.runner
    gc.freeze()  # as serve does once live state is loaded
    c.engine.store.start_checkpointer()  # as serve does (with its scheduler)
    print(f"set-up {setup.s:.1f} s; serving on {port}", flush=True)

    results = {"idle": phase(port, workers, mid, "i", lambda: time.sleep(3) or None)}
    print("idle", {k: v for k, v in results["idle"].items() if k != "stats"}, flush=True)
    results["first"] = phase(port, workers, mid + 1000, "f", lambda: runner.tick(mid + 1000))
    print("first", {k: v for k, v in results["first"].items() if k != "stats"}, results["first"]["stats"].as_dict(),
          flush=True)
    rules = rules_dir / "default.yaml"  # a copy: the repository's rules are never edited
    rules.write_text(rules.read_text().replace("for: 5m", "for: 6m"))

    def reload_tick():
        return runner.tick(mid + 60_000)

    results["reload"] = phase(port, workers, mid + 60_000, "r", reload_tick)
    print("reload", {k: v for k, v in results["reload"].items() if k != "stats"},
          results["reload"]["stats"].as_dict(), flush=True)
    server.close()
    c.close()

    rows = []
    for name in ("idle", "first", "reload"):
        r = results[name]
        st = r["stats"]
        target = ""
        if name != "idle":
            ok = r["p99"] < 50 and st.longest_write_s <= 0.1 and r["errors"] == 0
            target = f"p99 < 50 ms, writer <= 100 ms: {verdict(ok)}"
        rows.append([name, f"{r['s']:.1f}", f"{r['n']:,}", f"{r['p50']:.1f}", f"{r['p99']:.1f}", f"{r['max']:.1f}",
                     str(r["errors"]), f"{st.agents:,}" if st else "", f"{st.longest_write_s * 1000:.0f}" if st else "",
                     target])
    text = table(["phase", "seconds", "requests", "p50 ms", "p99 ms", "max ms", "non-200", "agents evaluated",
                  "longest writer hold ms", "target"], rows)
    print()
    print(text)
    if not args.no_write:
        note = (f"{args.agents:,} agents (`bench/center.py`, {args.distinct:,} simulated, the rest clones) fed to "
                "13:00 local, served by waitress (8 threads) on loopback; 4 keep-alive connections post "
                "single-record envelopes back to back during each phase. Latency is the client's, per request.")
        write_section("evaluator-webhook", "Webhook latency while the evaluator works", note + "\n\n" + text)


if __name__ == "__main__":
    main()
