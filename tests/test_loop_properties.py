"""Property: live ticking at random instants, then a final tick, equals a recompute.

Random schedules, rules and timelines (delivered out of order, with
duplicates) go through the real webhook; the evaluator ticks at random
instants. A recompute of the same day from a copy of the journal alone must
give the same exceptions and the same figures.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from datetime import date
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import Center
from test_loop import ANN, T

ACTIVITIES = ["Available", "Offline", "Break", "Unavailable", "Lunch"]
TASKS = ["none", "active", "wrapping", "reserved"]
DAY0 = T("2026-11-24 00:00")
MIN = 60_000
STATS: list[int] = []


@st.composite
def scenario(draw):
    # schedule: 1-4 segments on 2026-11-24 (may overlap: the shorter wins)
    segs = []
    for _ in range(draw(st.integers(1, 4))):
        start = draw(st.integers(6 * 60, 20 * 60))
        length = draw(st.integers(5, 8 * 60))
        end = min(start + length, 23 * 60 + 59)
        act = draw(st.sampled_from(["Available", "Break", "Lunch", "Meeting"]))
        segs.append(f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d} {act}")
    rules = []
    for i in range(draw(st.integers(1, 3))):
        when = {}
        if draw(st.booleans()):
            when["scheduled"] = draw(st.sampled_from(["Available", "any", "none", "Break", "[Available, Lunch]"]))
        when["activity"] = draw(st.sampled_from(["Offline", "not-allowed", "{not: [Available]}", "[Break, Offline]"]))
        if draw(st.booleans()):
            when["task"] = draw(st.sampled_from(["none", "active", "{not: [none]}"]))
        rules.append((f"r{i}", when, draw(st.sampled_from(["0s", "90s", "5m", "20m"]))))
    n = draw(st.integers(1, 25))
    events = [(draw(st.integers(5 * 60, 23 * 60)) * MIN + draw(st.integers(0, 59_999)),
               draw(st.sampled_from(ACTIVITIES)), draw(st.sampled_from(TASKS))) for _ in range(n)]
    order = draw(st.permutations(range(n)))
    delays = [draw(st.integers(0, 90)) * MIN for _ in range(n)]  # delivery delay: late records
    ticks = sorted(draw(st.lists(st.integers(5 * 60, 24 * 60 + 120), min_size=1, max_size=8)))
    dup = draw(st.sets(st.integers(0, n - 1), max_size=3))
    return segs, rules, events, order, delays, ticks, dup


def write_inputs(folder: Path, segs, rules) -> None:
    (folder / "schedules").mkdir()
    seg_lines = "\n".join(f"      - {s}" for s in segs)
    (folder / "schedules" / "roster.yaml").write_text(
        f"timezone: America/New_York\nagents:\n  ann: {{worker_sid: {ANN}, team: tier1}}\n"
        f"shifts:\n  - agents: [ann]\n    date: 2026-11-24\n    segments:\n{seg_lines}\n")
    (folder / "rules").mkdir()
    lines = ["allowed:\n  Available: [Available]\n  Lunch: [Lunch, Break]\n  Meeting: [Meeting, Unavailable]", "rules:"]
    for name, when, dur in rules:
        lines.append(f"  - name: {name}\n    for: {dur}\n    severity: warning\n    when:")
        lines += [f"      {k}: {v}" for k, v in when.items()]
    (folder / "rules" / "r.yaml").write_text("\n".join(lines) + "\n")
    (folder / "config.yaml").write_text(
        "database: live.db\ntimezone: America/New_York\nschedules: schedules\nrules: rules\n")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(scenario())
def test_live_ticking_equals_recompute(case):
    segs, rules, events, order, delays, ticks, dup = case
    folder = Path(tempfile.mkdtemp())
    try:
        write_inputs(folder, segs, rules)
        live = Center(folder, DAY0)
        # deliveries: (delivery time, event index), late ones after their event time
        deliveries = sorted(((events[i][0] + delays[i], i) for i in order), key=lambda d: d[0])
        deliveries += [(events[i][0] + delays[i] + MIN, i) for i in dup]
        deliveries.sort(key=lambda d: d[0])
        tick_times = [DAY0 + t * MIN for t in ticks]
        di = 0
        sids = {}
        for tt in tick_times:
            while di < len(deliveries) and deliveries[di][0] <= tt:
                i = deliveries[di][1]
                at, act, task = events[i]
                live.n = sids.setdefault(i, len(sids) + 1) - 1  # same event SID for a duplicate
                live.send(ANN, DAY0 + at, act, task)
                di += 1
            live.tick(tt)
        while di < len(deliveries):
            i = deliveries[di][1]
            at, act, task = events[i]
            live.n = sids.setdefault(i, len(sids) + 1) - 1
            live.send(ANN, DAY0 + at, act, task)
            di += 1
        final = T("2026-11-26 12:00")  # after every day window (a shift may run into the next day)
        live.tick(final)
        live_exc = [(e["rule"], e["start"], e["end"], e["scheduled_activity"], e["actual_activity"], e["task_state"])
                    for e in live.exceptions()]
        live_days = {r["date"]: {k: v for k, v in r.items() if k != "as_of"}
                     for r in _days(live)}
        dst = sqlite3.connect(folder / "copy.db")
        live.engine.store.reader.backup(dst)
        dst.execute("DELETE FROM exceptions")
        dst.execute("DELETE FROM adherence")
        dst.commit()
        dst.close()
        live.engine.close()
        again = Center(folder, final, db="copy.db")
        again.engine.runner.recompute(date(2026, 11, 23), date(2026, 11, 26))
        rec_exc = [(e["rule"], e["start"], e["end"], e["scheduled_activity"], e["actual_activity"], e["task_state"])
                   for e in again.exceptions()]
        rec_days = {r["date"]: {k: v for k, v in r.items() if k != "as_of"} for r in _days(again)}
        again.engine.close()
        STATS.append(len(live_exc))
        assert rec_exc == live_exc
        assert rec_days == live_days
        for row in live_days.values():
            assert 0 <= row["out_of_adherence_seconds"] <= row["scheduled_seconds"]
            if row["adherence_percent"] is not None:
                assert 0 <= row["adherence_percent"] <= 100
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _days(center):
    from adherence.queries import Filters, adherence

    rows, _ = adherence(center.engine, Filters())
    return rows


def test_the_property_saw_exceptions():
    """Guard against a vacuous property: most generated days must have exceptions."""
    if not STATS:
        test_live_ticking_equals_recompute()
    assert sum(1 for n in STATS if n) >= len(STATS) // 3, STATS
