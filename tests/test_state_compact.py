"""The compact tracker (times and interned state numbers in arrays) against the list of snapshots it replaced.

The reference below is the tracker as it was: one ``Snapshot`` per record in a Python list per agent. After
any sequence of in-order, late and equal-time records, trims, and a rebuild from a journal, both must give
the same timelines (whole and for any range), the same current state and the same ``since``.

The memory guard measures (tracemalloc) what ~100k snapshots of a busy day cost in the tracker.
"""

from __future__ import annotations

import gc
import json
import sqlite3
import tracemalloc
from bisect import bisect_right
from dataclasses import dataclass
from operator import attrgetter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adherence.model import TASK_STATES, Snapshot
from adherence.state import Tracker

_at = attrgetter("at")


@dataclass
class RefCurrent:
    snapshot: Snapshot
    channels: tuple
    received_ms: int
    since_ms: int


class Reference:
    """The list-based tracker (adherence/state.py before the compact timeline), without its locking."""

    def __init__(self) -> None:
        self.timelines: dict[str, list[Snapshot]] = {}
        self.current: dict[str, RefCurrent] = {}

    def apply(self, worker, snap, channels=(), received_ms=0) -> bool:
        tl = self.timelines.setdefault(worker, [])
        if not tl or snap.at >= tl[-1].at:
            tl.append(snap)
            cur = self.current.get(worker)
            if cur and cur.snapshot.activity == snap.activity and cur.snapshot.task == snap.task:
                since = cur.since_ms
            else:
                since = snap.at
            self.current[worker] = RefCurrent(snap, channels, received_ms, since)
            return True
        tl.insert(bisect_right(tl, snap.at, key=_at), snap)
        last = tl[-1]
        since = last.at
        for s in reversed(tl):
            if s.activity != last.activity or s.task != last.task:
                break
            since = s.at
        self.current[worker].since_ms = since
        return False

    def timeline(self, worker, start=None, end=None):
        tl = self.timelines.get(worker)
        if not tl:
            return []
        lo = 0 if start is None else max(0, bisect_right(tl, start, key=_at) - 1)
        hi = len(tl) if end is None else bisect_right(tl, end, key=_at)
        return tl[lo:hi]

    def trim(self, before):
        dropped = 0
        for tl in self.timelines.values():
            i = bisect_right(tl, before, key=_at) - 1
            if i > 0:
                del tl[:i]
                dropped += i
        return dropped


WORKERS = ["WKa", "WKb", "WKc"]
ACTIVITIES = ["Available", "Break", "Offline", "Lunch", "Unknown"]

records = st.tuples(
    st.sampled_from(WORKERS),
    st.integers(0, 40).map(lambda x: 1_000_000 + 1_000 * x),  # few distinct instants: many equal times
    st.sampled_from(ACTIVITIES),
    st.sampled_from(TASK_STATES),
    st.booleans(),
)
ops = st.lists(
    st.one_of(
        records.map(lambda r: ("apply", r)),
        st.integers(990_000, 1_045_000).map(lambda t: ("trim", t)),
    ),
    max_size=80,
)
instants = st.one_of(st.none(), st.integers(990_000, 1_045_000))


def _same(tracker: Tracker, ref: Reference, queries) -> None:
    assert sorted(tracker.workers()) == sorted(ref.timelines)
    assert tracker.held() == sum(len(tl) for tl in ref.timelines.values())
    for w in WORKERS:
        got = tracker.timeline(w)
        assert got == ref.timeline(w)
        assert all(type(s) is Snapshot for s in got)
        assert [tuple(s) for s in got] == [tuple(s) for s in ref.timeline(w)]
        for start, end in queries:
            assert tracker.timeline(w, start, end) == ref.timeline(w, start, end), (w, start, end)
        tl = ref.timeline(w)
        for s in tl:  # Tracker.repeats: the one snapshot at that instant repeats the one before it
            for act, task in ((s.activity, s.task), ("Lunch", s.task), (s.activity, "none")):
                assert tracker.repeats(w, s.at, act, task) == _repeats(tl, s.at, act, task), (w, s, act, task)
        cur, rc = tracker.current(w), ref.current.get(w)
        if rc is None:
            assert cur is None
        else:
            assert (cur.snapshot, cur.channels, cur.received_ms, cur.since_ms) == (
                rc.snapshot, rc.channels, rc.received_ms, rc.since_ms)


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(ops=ops, queries=st.lists(st.tuples(instants, instants), max_size=4), since=instants)
def test_compact_tracker_equals_the_list_of_snapshots(ops, queries, since):
    tracker, ref = Tracker(), Reference()
    journal = []  # what the journal would hold, in receipt order
    for i, (kind, arg) in enumerate(ops):
        if kind == "apply":
            w, at, act, task, flagged = arg
            snap = Snapshot(at, act, task, flagged)
            chans = (("voice", i),)
            assert tracker.apply(w, snap, chans, i) == ref.apply(w, snap, chans, i)
            journal.append((i + 1, w, at, act, task, flagged, i))
        else:
            assert tracker.trim(arg) == ref.trim(arg)
    _same(tracker, ref, queries)

    # a rebuild from the journal: rows from ``since`` on, plus each worker's last one before it
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE journal (id INTEGER PRIMARY KEY, worker_sid TEXT, at_ms INTEGER, activity TEXT, "
                  "task TEXT, flagged INTEGER, received_ms INTEGER, record TEXT)")
    conn.executemany("INSERT INTO journal VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     [(*row, json.dumps({"channels": None})) for row in journal])
    rebuilt, expected = Tracker(), Reference()
    assert rebuilt.load_from_journal(conn, since) == len(_selected(journal, since))
    for jid, w, at, act, task, flagged, received in _selected(journal, since):
        expected.apply(w, Snapshot(at, act, task, flagged), (), received)
    _same(rebuilt, expected, queries)
    if since is None and all(kind == "apply" for kind, _ in ops):
        for w in WORKERS:  # a whole rebuild is the live tracker (channels aside: the records say none)
            assert rebuilt.timeline(w) == tracker.timeline(w)
            assert (rebuilt.current(w) is None) == (tracker.current(w) is None)
            if tracker.current(w):
                assert rebuilt.current(w).snapshot == tracker.current(w).snapshot
                assert rebuilt.current(w).since_ms == tracker.current(w).since_ms


def _repeats(tl, at, activity, task):
    here = [i for i, s in enumerate(tl) if s.at == at]
    if len(here) != 1 or here[0] == 0:
        return False
    s, before = tl[here[0]], tl[here[0] - 1]
    return s.activity == before.activity == activity and s.task == before.task == task


def _selected(journal, since):
    if since is None:
        return journal
    last_before = {}
    for row in journal:
        if row[2] < since and (row[1] not in last_before or (row[2], row[0]) >= (last_before[row[1]][2],
                                                                                    last_before[row[1]][0])):
            last_before[row[1]] = row
    keep = {r[0] for r in last_before.values()}
    return [r for r in journal if r[2] >= since or r[0] in keep]


def test_late_records_at_equal_instants_keep_receipt_order():
    t = Tracker()
    t.apply("WK", Snapshot(100, "Available", "none"))
    t.apply("WK", Snapshot(300, "Break", "none"))
    t.apply("WK", Snapshot(200, "Lunch", "none"))
    t.apply("WK", Snapshot(200, "Offline", "none"))
    t.apply("WK", Snapshot(300, "Available", "active"))
    assert [(s.at, s.activity) for s in t.timeline("WK")] == [
        (100, "Available"), (200, "Lunch"), (200, "Offline"), (300, "Break"), (300, "Available")]
    assert t.timeline("WK", 250, 300) == [Snapshot(200, "Offline", "none"), Snapshot(300, "Break", "none"),
                                          Snapshot(300, "Available", "active")]
    assert t.timeline("WK", 200, 200) == [Snapshot(200, "Offline", "none")]


def test_more_distinct_states_than_two_bytes_hold():
    t = Tracker()
    for i in range(70_000):
        t.apply("WK", Snapshot(i, f"custom-{i}", "none"))
    t.apply("WK2", Snapshot(5, "custom-69999", "none"))
    assert t.timeline("WK", 69_998) == [Snapshot(69_998, "custom-69998", "none"),
                                        Snapshot(69_999, "custom-69999", "none")]
    assert t.timeline("WK", None, 1) == [Snapshot(0, "custom-0", "none"), Snapshot(1, "custom-1", "none")]
    assert t.timeline("WK2") == [Snapshot(5, "custom-69999", "none")]


# ---------------------------------------------------------------------------------------- memory guard

# What the compact tracker measured when it was built (adherence 2026-12, CPython 3.11): ~11 bytes a
# snapshot (8 for the time, 2 for the state number, arrays' growth slack, per-agent objects). The list of
# namedtuples before it measured 88.5 here (~130-150 of RSS in a serve). The guard fails at twice the figure.
BYTES_PER_SNAPSHOT = 11.5


def _busy_day(agents: int, per_agent: int):
    """Records of a busy day: per agent ``per_agent`` records ~90 s apart, one in 50 arriving late."""
    acts = ["Available", "Break", "Lunch", "Offline", "Training", "Meeting", "Unknown"]
    out = []
    t0 = 1_764_000_000_000
    for a in range(agents):
        w = f"WK{a:032x}"
        for i in range(per_agent):
            at = t0 + i * 90_000 + (a * 7919 + i * 104_729) % 60_000
            if i % 50 == 49:
                at -= 400_000  # late: inserted at its place
            out.append((w, Snapshot(at, acts[(a + i) % 7 if i % 3 else 0], TASK_STATES[(a * i) % 4], i % 97 == 0)))
    return out


def measure_bytes_per_snapshot(agents: int = 250, per_agent: int = 400) -> float:
    day = _busy_day(agents, per_agent)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracker = Tracker()
        for w, snap in day:
            tracker.apply(w, snap, (), 0)
        del w, snap
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert tracker.held() == len(day)
    return held / len(day)


def test_memory_guard_bytes_per_snapshot():
    per = measure_bytes_per_snapshot()  # 100,000 snapshots, 250 agents
    print(f"tracker: {per:.1f} bytes a snapshot held (guard {2 * BYTES_PER_SNAPSHOT:.0f})")
    assert per <= 2 * BYTES_PER_SNAPSHOT, f"{per:.1f} bytes a snapshot, more than twice {BYTES_PER_SNAPSHOT}"
