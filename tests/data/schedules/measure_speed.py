"""Quick measurement (not a test): "scheduled activity of every agent now" for 10,000 agents.

    python tests/data/schedules/measure_speed.py [AGENTS] [ICAL_SHARE]

Builds a temporary folder with AGENTS agents (default 10,000): most on YAML
weekly shifts (several teams and zones, breaks laid over), ICAL_SHARE
(default 0.2) with their own Outlook-style recurring .ics. Then times the
load, the first evaluator tick (cold: every agent's week expanded), and
following ticks 15 s apart (warm: cache hits).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from adherence.schedules import load_schedules
from adherence.timeutil import parse_instant_ms

ZONES = ["America/New_York", "America/Chicago", "America/Los_Angeles", "Europe/London"]
ICS = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//measure//EN
BEGIN:VEVENT
UID:shift-{i}
DTSTART;TZID=Eastern Standard Time:20260105T{h:02d}0000
DTEND;TZID=Eastern Standard Time:20260105T{e:02d}0000
RRULE:FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR
SUMMARY:Available
END:VEVENT
BEGIN:VEVENT
UID:lunch-{i}
DTSTART;TZID=Eastern Standard Time:20260105T{l:02d}0000
DURATION:PT30M
RRULE:FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR
SUMMARY:Lunch
END:VEVENT
END:VCALENDAR
"""


def build(folder: Path, n: int, ical_share: float) -> None:
    n_ical = int(n * ical_share)
    roster = ["agents:"]
    for i in range(n):
        roster.append(f"  a{i}: {{worker_sid: WK{i:032x}, team: t{i % 20}, timezone: {ZONES[i % len(ZONES)]}"
                      + (f", calendar: cal/a{i}.ics}}" if i < n_ical else "}"))
        if i < n_ical:
            h = 6 + i % 10
            (folder / "cal").mkdir(exist_ok=True)
            (folder / "cal" / f"a{i}.ics").write_text(ICS.format(i=i, h=h, e=h + 8, l=h + 4))
    (folder / "roster.yaml").write_text("\n".join(roster) + "\n")
    shifts = ["shifts:"]
    for t in range(20):
        start = 6 + t % 12
        shifts += [f"  - teams: [t{t}]", "    days: mon-fri", "    segments:",
                   f"      - {start:02d}:00-{(start + 8) % 24:02d}:00 Available",
                   f"      - {start + 2:02d}:00-{start + 2:02d}:15 Break",
                   f"      - {start + 4:02d}:00-{start + 4:02d}:30 Lunch"]
    (folder / "shifts.yaml").write_text("\n".join(shifts) + "\n")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    share = float(sys.argv[2]) if len(sys.argv) > 2 else 0.2
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        build(folder, n, share)
        t0 = time.perf_counter()
        sched = load_schedules(folder, "America/New_York")
        t1 = time.perf_counter()
        print(f"load {n} agents ({int(n * share)} with .ics): {t1 - t0:.2f} s")
        keys = list(sched.agents)
        now = parse_instant_ms("2026-11-25T15:07:00Z")

        def tick(t):
            start = time.perf_counter()
            busy = sum(1 for k in keys if sched.at(k, t) is not None)
            return time.perf_counter() - start, busy

        cold, busy = tick(now)
        print(f"first tick (cold, expands each agent's week): {cold * 1000:.0f} ms, {busy} agents scheduled")
        warm = []
        for i in range(1, 41):
            warm.append(tick(now + i * 15_000)[0])
        warm.sort()
        print(f"later ticks, 15 s apart (warm): median {warm[len(warm) // 2] * 1000:.1f} ms, "
              f"max {warm[-1] * 1000:.1f} ms for {n} agents")
        hour = tick(now + 3600_000)[0]
        print(f"tick one hour later (segments changed, same week): {hour * 1000:.1f} ms")


if __name__ == "__main__":
    main()
