"""Live agent state: each agent's current state and timeline of snapshots.

The journal is the durable truth; this is its in-memory index. Records are
applied in journal order (under the writer lock), and a rebuild replays the
journal in the same order through the same ``apply``, so a rebuilt timeline
equals the live one. A record older than the agent's latest snapshot is
inserted at its place in the timeline (the results for that period change)
but does not become the current state. Equal timestamps keep receipt order.
"""

from __future__ import annotations

import bisect
import json
import operator
import sqlite3
import sys
import threading
from dataclasses import dataclass
from typing import Iterable

from .feed import _channel_summary
from .model import Snapshot

_intern = sys.intern


@dataclass
class Current:
    """What the board shows for an agent right now."""

    snapshot: Snapshot
    channels: tuple
    received_ms: int
    since_ms: int  # when the current activity (and task state) began, as far as the timeline knows


def _since(timeline: list[Snapshot]) -> int:
    last = timeline[-1]
    since = last.at
    for snap in reversed(timeline):
        if snap.activity != last.activity or snap.task != last.task:
            break
        since = snap.at
    return since


class Tracker:
    """Timelines and current state of every agent seen in the feed."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._timelines: dict[str, list[Snapshot]] = {}
        self._current: dict[str, Current] = {}
        self.applied = 0

    def apply(self, worker_sid: str, snap: Snapshot, channels: tuple = (), received_ms: int = 0) -> bool:
        """Insert a snapshot; True when it became the agent's current state."""
        worker_sid = _intern(worker_sid)
        snap = snap._replace(activity=_intern(snap.activity), task=_intern(snap.task))
        with self._lock:
            self.applied += 1
            tl = self._timelines.get(worker_sid)
            if tl is None:
                tl = self._timelines[worker_sid] = []
            if not tl or snap.at >= tl[-1].at:
                tl.append(snap)
                is_current = True
            else:
                tl.insert(bisect.bisect_right(tl, snap.at, key=_at), snap)
                is_current = False
            if is_current:
                cur = self._current.get(worker_sid)
                if cur and cur.snapshot.activity == snap.activity and cur.snapshot.task == snap.task:
                    since = cur.since_ms
                else:
                    since = snap.at
                self._current[worker_sid] = Current(snap, channels, received_ms, since)
            else:
                cur = self._current[worker_sid]
                cur.since_ms = _since(tl)
            return is_current

    def workers(self) -> list[str]:
        with self._lock:
            return list(self._timelines)

    def current(self, worker_sid: str) -> Current | None:
        with self._lock:
            return self._current.get(worker_sid)

    def all_current(self) -> dict[str, Current]:
        with self._lock:
            return dict(self._current)

    def timeline(self, worker_sid: str, start_ms: int | None = None, end_ms: int | None = None) -> list[Snapshot]:
        """Snapshots in force during [start, end]: the one before start, then all up to end."""
        with self._lock:
            tl = self._timelines.get(worker_sid)
            if not tl:
                return []
            lo = 0
            if start_ms is not None:
                lo = max(0, bisect.bisect_right(tl, start_ms, key=_at) - 1)
            hi = len(tl) if end_ms is None else bisect.bisect_right(tl, end_ms, key=_at)
            return tl[lo:hi]

    def trim(self, before_ms: int) -> int:
        """Forget snapshots no longer needed in memory (the journal keeps them); returns how many."""
        dropped = 0
        with self._lock:
            for tl in self._timelines.values():
                i = bisect.bisect_right(tl, before_ms, key=_at) - 1
                if i > 0:
                    del tl[:i]
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


_at = operator.attrgetter("at")  # a timeline's sort key (C-level: bisecting calls it often)


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
