"""Live agent state: each agent's current state and timeline of snapshots.

The journal is the durable truth; this is its in-memory index. Records are
applied in journal order (under the writer lock), and a rebuild replays the
journal in the same order through the same ``apply``, so a rebuilt timeline
equals the live one. A record older than the agent's latest snapshot is
inserted at its place in the timeline (the results for that period change)
but does not become the current state. Equal timestamps keep receipt order.

Memory: a 10,000-agent center holds millions of snapshots (a busy 10-hour day
is ~3.8 M). A timeline is therefore two arrays per agent, the times (8 bytes
each) and a state number (2 bytes; 4 past 65,536 distinct states), where a
state is one (activity, task, flagged) triple from a table all agents share.
``timeline`` builds ``Snapshot`` tuples only for the range asked.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import threading
from array import array
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter
from typing import Iterable

from .feed import _channel_summary
from .model import Snapshot

_intern = sys.intern
_new = tuple.__new__  # Snapshot(...) without the Python-level __new__: C all the way when building many


@dataclass(slots=True)
class Current:
    """What the board shows for an agent right now."""

    snapshot: Snapshot
    channels: tuple
    received_ms: int
    since_ms: int  # when the current activity (and task state) began, as far as the timeline knows


class _Timeline:
    """One agent's snapshots in time order: ``at[i]`` and state number ``st[i]``."""

    __slots__ = ("at", "st")

    def __init__(self) -> None:
        self.at = array("q")
        self.st = array("H")


class _States:
    """The (activity, task, flagged) triples seen, numbered in order of first sight (shared by all agents).

    Append-only, so a number read under the tracker's lock stays valid after it is released."""

    __slots__ = ("ids", "activity", "task", "flagged", "kind", "snapshot")

    def __init__(self) -> None:
        self.ids: dict[tuple[str, str, bool], int] = {}
        self.activity: list[str] = []
        self.task: list[str] = []
        self.flagged: list[bool] = []
        self.kind: list[int] = []  # number of the (activity, task) pair: what "since" compares
        self.snapshot: list[Snapshot] = []  # the state at instant 0, for building one snapshot

    def number(self, activity: str, task: str, flagged: bool) -> int:
        key = (activity, task, flagged)
        n = self.ids.get(key)
        if n is None:
            activity, task = _intern(activity), _intern(task)
            n = self.ids[key] = len(self.activity)
            self.activity.append(activity)
            self.task.append(task)
            self.flagged.append(flagged)
            other = self.ids.get((activity, task, not flagged))
            self.kind.append(n if other is None else self.kind[other])
            self.snapshot.append(Snapshot(0, activity, task, flagged))
        return n

    def snapshots(self, times: array, states: array) -> list[Snapshot]:
        """Snapshots from parallel slices of times and state numbers."""
        n = len(times)
        if n == 0:
            return []
        if n == 1:
            return [self.snapshot[states[0]]._replace(at=times[0])]
        pick = itemgetter(*states)
        return list(map(_new, repeat(Snapshot, n),
                        zip(times.tolist(), pick(self.activity), pick(self.task), pick(self.flagged))))


def _since(tl: _Timeline, kind: list[int]) -> int:
    """When the last snapshot's (activity, task) began: the first of the run of them at the end."""
    st = tl.st
    i = len(st) - 1
    last = kind[st[i]]
    while i > 0 and kind[st[i - 1]] == last:
        i -= 1
    return tl.at[i]


class Tracker:
    """Timelines and current state of every agent seen in the feed."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._timelines: dict[str, _Timeline] = {}
        self._current: dict[str, Current] = {}
        self._states = _States()
        self.applied = 0

    def apply(self, worker_sid: str, snap: Snapshot, channels: tuple = (), received_ms: int = 0) -> bool:
        """Insert a snapshot; True when it became the agent's current state."""
        worker_sid = _intern(worker_sid)
        at = snap.at
        with self._lock:
            self.applied += 1
            states = self._states
            n = states.number(snap.activity, snap.task, bool(snap.flagged))
            tl = self._timelines.get(worker_sid)
            if tl is None:
                tl = self._timelines[worker_sid] = _Timeline()
            times = tl.at
            if n > 0xFFFF and tl.st.typecode == "H":
                tl.st = array("I", tl.st)
            if not times or at >= times[-1]:
                times.append(at)
                tl.st.append(n)
                snap = states.snapshot[n]._replace(at=at)  # its strings interned, shared with the table
                cur = self._current.get(worker_sid)
                if cur and cur.snapshot.activity == snap.activity and cur.snapshot.task == snap.task:
                    since = cur.since_ms
                else:
                    since = at
                self._current[worker_sid] = Current(snap, channels, received_ms, since)
                return True
            i = bisect_right(times, at)
            times.insert(i, at)
            tl.st.insert(i, n)
            self._current[worker_sid].since_ms = _since(tl, states.kind)
            return False

    def workers(self) -> list[str]:
        with self._lock:
            return list(self._timelines)

    def current(self, worker_sid: str) -> Current | None:
        with self._lock:
            return self._current.get(worker_sid)

    def all_current(self) -> dict[str, Current]:
        with self._lock:
            return dict(self._current)

    def repeats(self, worker_sid: str, at_ms: int, activity: str, task: str) -> bool:
        """True when the snapshot at ``at_ms`` (the only one at that instant) has the same activity and task
        as the one before it: a record that changes nothing an evaluation reads (a channel's capacity, a
        reservation of the same task state). False whenever that cannot be told from memory: no snapshot
        before it held, none or several at that instant."""
        with self._lock:
            tl = self._timelines.get(worker_sid)
            if tl is None:
                return False
            times = tl.at
            i = bisect_left(times, at_ms)
            if i == 0 or bisect_right(times, at_ms, i) != i + 1:  # none before, or not exactly one at at_ms
                return False
            states = self._states
            here, before = tl.st[i], tl.st[i - 1]
            return (states.activity[here] == states.activity[before] == activity
                    and states.task[here] == states.task[before] == task)

    def held(self) -> int:
        """How many snapshots are held in memory, all agents."""
        with self._lock:
            return sum(len(tl.at) for tl in self._timelines.values())

    def timeline(self, worker_sid: str, start_ms: int | None = None, end_ms: int | None = None) -> list[Snapshot]:
        """Snapshots in force during [start, end]: the one before start, then all up to end."""
        with self._lock:
            tl = self._timelines.get(worker_sid)
            if not tl:
                return []
            times = tl.at
            lo = 0
            if start_ms is not None:
                lo = max(0, bisect_right(times, start_ms) - 1)
            hi = len(times) if end_ms is None else bisect_right(times, end_ms)
            times, states = times[lo:hi], tl.st[lo:hi]
        return self._states.snapshots(times, states)

    def trim(self, before_ms: int) -> int:
        """Forget snapshots no longer needed in memory (the journal keeps them); returns how many."""
        dropped = 0
        with self._lock:
            for tl in self._timelines.values():
                i = bisect_right(tl.at, before_ms) - 1
                if i > 0:
                    del tl.at[:i]
                    del tl.st[:i]
                    dropped += i
        return dropped

    def load_from_journal(self, conn: sqlite3.Connection, since_ms: int | None = None,
                          up_to_id: int | None = None) -> int:
        """Rebuild from the journal in journal order (rows up to ``up_to_id``, when given: the rest is
        caught up afterwards). Returns the number of rows applied."""
        rows: Iterable
        top = (1 << 62) if up_to_id is None else up_to_id
        if since_ms is None:
            rows = conn.execute(
                "SELECT id, worker_sid, at_ms, activity, task, flagged, received_ms FROM journal WHERE id <= ? "
                "ORDER BY id", (top,)
            )
        else:
            rows = conn.execute(
                """
                SELECT id, worker_sid, at_ms, activity, task, flagged, received_ms FROM journal
                WHERE id <= :top AND (at_ms >= :since
                   OR id IN (SELECT id FROM (SELECT id, ROW_NUMBER() OVER (
                              PARTITION BY worker_sid ORDER BY at_ms DESC, id DESC) AS rn
                              FROM journal WHERE at_ms < :since AND id <= :top) WHERE rn = 1))
                ORDER BY id
                """,
                {"since": since_ms, "top": top},
            )
        n = 0
        latest_id: dict[str, int] = {}
        for jid, worker, at, activity, task, flagged, received in rows:
            snap = Snapshot(at, activity, task, bool(flagged))
            if self.apply(worker, snap, (), received):
                latest_id[worker] = jid
            n += 1
        # channels of the current state come from the raw record
        ids = list(latest_id.values())
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            q = f"SELECT worker_sid, record FROM journal WHERE id IN ({','.join('?' * len(chunk))})"
            for worker, record in conn.execute(q, chunk):
                try:
                    channels = _channel_summary(json.loads(record).get("channels"))
                except (ValueError, AttributeError):
                    channels = ()
                with self._lock:
                    cur = self._current.get(worker)
                    if cur:
                        cur.channels = channels
        return n


def journal_timeline(conn: sqlite3.Connection, worker_sid: str, start_ms: int | None, end_ms: int) -> list[Snapshot]:
    """The same timeline as ``Tracker.timeline`` but read from the journal (for recompute)."""
    cols = "at_ms, activity, task, flagged"
    rows = []
    if start_ms is not None:
        rows = conn.execute(
            f"SELECT {cols} FROM journal WHERE worker_sid = ? AND at_ms <= ? ORDER BY at_ms DESC, id DESC LIMIT 1",
            (worker_sid, start_ms),
        ).fetchall()
        rows += conn.execute(
            f"SELECT {cols} FROM journal WHERE worker_sid = ? AND at_ms > ? AND at_ms <= ? ORDER BY at_ms, id",
            (worker_sid, start_ms, end_ms),
        ).fetchall()
    else:
        rows = conn.execute(
            f"SELECT {cols} FROM journal WHERE worker_sid = ? AND at_ms <= ? ORDER BY at_ms, id", (worker_sid, end_ms)
        ).fetchall()
    return [Snapshot(at, act, task, bool(fl)) for at, act, task, fl in rows]
