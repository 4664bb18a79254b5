"""Evaluator tick for 1,000 / 10,000 / 50,000 agents mid-shift.

For each size: a simulated center (bench/center.py) is fed up to mid-shift
(13:00 local; shifts started 08:00-10:00), then

  (a) the first full tick after a start: every agent evaluated from
      yesterday's midnight (no checkpoints yet);
  (b) steady-state ticks: the records of the next 15 s go through the real
      ingestion path, then a tick 15 s later; three such steps, the median
      is reported.

Target: 10,000 agents <= 200 ms for the steady-state tick; cost grows
linearly (ms per agent roughly constant).

Usage: python bench/tick.py [--agents 1000,10000,50000] [--distinct 10000]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time

from common import Timer, out_dir, table, verdict, write_section
from center import Center

STEP_MS = 15_000
MID_H = 5  # hours after the window start (08:00 local) = 13:00 local, mid-shift for everyone


def run(n: int, distinct: int, steps: int) -> dict:
    with Timer() as setup:
        c = Center(n, out_dir(f"tick-{n}"), distinct=distinct)
        mid = c.start_ms + MID_H * 3_600_000
        filled = c.fill_until(mid)
    gc.collect()
    runner = c.engine.runner
    c0 = time.process_time()
    with Timer() as first:
        s1 = runner.tick(mid)
    first_cpu = time.process_time() - c0
    steady, steady_cpu, fed, touched = [], [], [], []
    t = mid
    for _ in range(steps):
        t += STEP_MS
        fed.append(c.feed_until(t))
        t0, c0 = time.perf_counter(), time.process_time()
        st = runner.tick(t)
        steady.append(time.perf_counter() - t0)
        steady_cpu.append(time.process_time() - c0)
        touched.append(st.agents)
    c.close()
    return {
        "n": n,
        "setup_s": setup.s,
        "records": filled,
        "first_ms": first.s * 1000,
        "first_cpu_ms": first_cpu * 1000,
        "steady_cpu_ms": statistics.median(steady_cpu) * 1000,
        "first_agents": s1.agents,
        "first_exc": s1.exceptions_written,
        "steady_ms": statistics.median(steady) * 1000,
        "steady_all": [round(x * 1000) for x in steady],
        "fed": fed,
        "touched": touched,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", default="1000,10000,50000", help="comma-separated sizes")
    ap.add_argument("--distinct", type=int, default=2_000, help="agents simulated; larger sizes clone them")
    ap.add_argument("--steps", type=int, default=3, help="steady-state steps of 15 s")
    ap.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md alone")
    args = ap.parse_args()
    sizes = [int(x) for x in args.agents.split(",") if x.strip()]
    results = []
    for n in sizes:
        print(f"== {n} agents", flush=True)
        r = run(n, args.distinct, args.steps)
        print(f"   set-up {r['setup_s']:.1f} s ({r['records']} records), first tick {r['first_ms']:.0f} ms "
              f"({r['first_cpu_ms']:.0f} ms CPU), steady {r['steady_all']} ms (median CPU {r['steady_cpu_ms']:.0f} ms; "
              f"records fed {r['fed']}, agents evaluated {r['touched']})", flush=True)
        results.append(r)
    rows = []
    for r in results:
        target = ""
        if r["n"] == 10_000:
            target = f"<= 200 ms steady: {verdict(r['steady_ms'] <= 200)}"
        rows.append([
            f"{r['n']:,}", f"{r['records']:,}", f"{r['first_ms']:,.0f} ({r['first_cpu_ms']:,.0f})",
            f"{r['first_ms'] / r['n'] * 1000:.0f}",
            f"{r['steady_ms']:,.0f} ({r['steady_cpu_ms']:,.0f})", f"{r['steady_ms'] / r['n'] * 1000:.1f}",
            f"{statistics.mean(r['fed']):,.0f}", f"{statistics.mean(r['touched']):,.0f}", target,
        ])
    headers = ["agents", "records held", "first tick ms (CPU)", "µs/agent", "steady tick ms (CPU)", "µs/agent",
               "records per 15 s", "agents evaluated", "target"]
    text = table(headers, rows)
    print()
    print(text)
    if not args.no_write:
        note = (
            "State: `adherence.simulate` center (10 h window from 08:00 America/New_York, shifts starting "
            "08:00-10:00) fed to 13:00 local, mid-shift. (a) first tick after a start: every agent evaluated "
            "from yesterday's midnight; (b) steady state: the next 15 s of records through "
            "`Journal.ingest_parsed`, then a tick 15 s later (median of "
            f"{args.steps} steps; the tick alone is timed; in brackets the process's CPU time, which other work on "
            "a shared machine does not inflate). Above {args.distinct:,} agents the extra agents are "
            "clones of simulated ones (own roster key, worker SID and event SIDs)."
        )
        write_section("tick", "Evaluator tick", note + "\n\n" + text)


if __name__ == "__main__":
    main()
