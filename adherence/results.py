"""Stored results: exceptions and per-agent-per-day adherence.

Exception ids are stable: when an agent is re-evaluated, each newly
computed exception takes over the id (and the approval) of the stored
exception of the same rule whose interval it overlaps, so an exception
keeps its id as it grows from open to closed, when a late record moves its
start, and across recomputes. Approvals therefore survive recompute.
"""

from __future__ import annotations

import bisect
import logging
import sqlite3
from datetime import date
from typing import Iterable, Sequence
from zoneinfo import ZoneInfo

from .timeutil import iso, local_date

log = logging.getLogger(__name__)

EXCEPTION_COLUMNS = [
    "id", "agent", "worker_sid", "team", "rule", "severity", "scheduled_activity", "actual_activity",
    "task_state", "start", "end", "duration_seconds", "status", "approved", "note",
]
ADHERENCE_COLUMNS = [
    "date", "agent", "worker_sid", "team", "scheduled_seconds", "in_adherence_seconds",
    "out_of_adherence_seconds", "approved_seconds", "adherence_percent", "conformance_percent", "exceptions",
    # appended after the contract's columns: computed with other schedules or rules than the files in force
    "stale",
    # appended: scheduled time that counts neither in nor out (neutral rules, period approvals)
    "neutral_seconds",
]


def _overlaps(s1: int, e1: int | None, s2: int, e2: int | None) -> bool:
    inf = 1 << 62
    return s1 <= (inf if e2 is None else e2) and s2 <= (inf if e1 is None else e1)


def exception_day(start_ms: int, segments: Sequence, tz: ZoneInfo) -> date:
    """The day an exception belongs to: its segment's shift day, else the local date of its start."""
    i = bisect.bisect_right([s.start for s in segments], start_ms) - 1
    if i >= 0 and segments[i].start <= start_ms < segments[i].end:
        return segments[i].day
    return local_date(start_ms, tz)


def _stored(exc_id: int, worker_sid: str, occ, day: str, agent: str, team: str | None) -> dict:
    return {"id": exc_id, "worker_sid": worker_sid, "agent": agent, "team": team, "rule": occ.rule,
            "severity": occ.severity, "scheduled_activity": occ.scheduled_activity,
            "actual_activity": occ.actual_activity, "task_state": occ.task_state, "start_ms": occ.start,
            "end_ms": occ.end, "day": day}


class ExceptionWriter:
    """Replaces an agent's stored exceptions over a window by newly computed ones, keeping ids."""

    def __init__(self, now_ms: int, listener=None):
        self.now_ms = now_ms
        self.written = 0
        # told of every real change (ids inserted or updated, rows deleted) inside the same transaction:
        # the notification outbox is written there, so an alert is never lost or doubled by a crash
        self.listener = listener

    def replace(self, conn: sqlite3.Connection, worker_sid: str, agent: str, team: str | None, tz: ZoneInfo,
                segments: Sequence, occurrences: Iterable, start_ms: int, store_until: int | None = None) -> None:
        sql = ("SELECT id, rule, start_ms, end_ms, severity, scheduled_activity, actual_activity, task_state, day, "
               "agent, team, impact, approved FROM exceptions WHERE worker_sid = ? AND (end_ms IS NULL OR end_ms > ?)")
        params: list = [worker_sid, start_ms]
        if store_until is not None:
            sql += " AND start_ms <= ?"
            params.append(store_until)
        old = conn.execute(sql + " ORDER BY start_ms, id", params).fetchall()
        used: set[int] = set()
        changed: dict[int, dict] = {}  # id → the row as now stored (the listener need not read it back)
        deleted: dict[int, dict] = {}
        segs = sorted(segments, key=lambda s: s.start)
        for occ in occurrences:
            match = None
            best = None
            for row in old:
                if row[0] in used or row[1] != occ.rule or not _overlaps(row[2], row[3], occ.start, occ.end):
                    continue
                dist = abs(row[2] - occ.start)
                if best is None or dist < best:
                    match, best = row, dist
            day = exception_day(occ.start, segs, tz).isoformat()
            values = (occ.start, occ.end, occ.severity, occ.scheduled_activity, occ.actual_activity,
                      occ.task_state, day, agent, team, occ.impact)
            if match is not None:
                used.add(match[0])
                if tuple(match[2:12]) != values:
                    conn.execute(
                        "UPDATE exceptions SET start_ms=?, end_ms=?, severity=?, scheduled_activity=?, "
                        "actual_activity=?, task_state=?, day=?, agent=?, team=?, impact=?, updated_ms=? WHERE id=?",
                        (*values, self.now_ms, match[0]),
                    )
                    self.written += 1
                    if self.listener is not None:
                        changed[match[0]] = _stored(match[0], worker_sid, occ, day, agent, team)
            else:
                new_id = conn.execute(
                    "INSERT INTO exceptions (start_ms, end_ms, severity, scheduled_activity, actual_activity, "
                    "task_state, day, agent, team, impact, worker_sid, rule, updated_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (*values, worker_sid, occ.rule, self.now_ms),
                ).lastrowid
                self.written += 1
                if self.listener is not None:
                    changed[new_id] = _stored(new_id, worker_sid, occ, day, agent, team)
        for row in old:
            if row[0] not in used:
                if row[12]:
                    log.warning("approved exception %s (%s, %s) no longer occurs; its approval is dropped",
                                row[0], worker_sid, row[1])
                conn.execute("DELETE FROM exceptions WHERE id = ?", (row[0],))
                self.written += 1
                deleted[row[0]] = {"id": row[0], "worker_sid": worker_sid, "rule": row[1], "start_ms": row[2],
                                   "end_ms": row[3], "severity": row[4], "scheduled_activity": row[5],
                                   "actual_activity": row[6], "task_state": row[7], "day": row[8],
                                   "agent": row[9], "team": row[10]}
        if self.listener is not None and (changed or deleted):
            self.listener(conn, changed, deleted, self.now_ms)

    @staticmethod
    def intervals(conn: sqlite3.Connection, worker_sid: str, w0: int, w1: int) -> list[tuple[int, int | None, bool, str]]:
        return [
            (s, e, bool(a), impact)
            for s, e, a, impact in conn.execute(
                "SELECT start_ms, end_ms, approved, impact FROM exceptions WHERE worker_sid = ? AND start_ms < ? "
                "AND (end_ms IS NULL OR end_ms > ?) ORDER BY start_ms",
                (worker_sid, w1, w0),
            )
        ]


def save_day(conn: sqlite3.Connection, worker_sid: str, agent: str, team: str | None, f, as_of_ms: int,
             rules_version: str | None = None, schedule_version: str | None = None, overwrite: bool = True) -> None:
    """Upsert one agent-day; a day with nothing scheduled and no exception keeps no row.

    The row records the versions of the rules and of the day's segments it was computed with, so a later
    edit can tell which days no longer match the files in force (``stale``)."""
    day = f.day.isoformat()
    if f.scheduled_ms == 0 and f.exceptions == 0:
        conn.execute("DELETE FROM adherence WHERE worker_sid = ? AND day = ?", (worker_sid, day))
        return
    conn.execute(
        "INSERT INTO adherence (worker_sid, day, agent, team, scheduled_ms, in_adherence_ms, "
        "out_of_adherence_ms, approved_ms, logged_in_ms, adherence_percent, conformance_percent, exceptions, as_of_ms, "
        "rules_version, schedule_version, stale, neutral_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,0,?) "
        "ON CONFLICT (worker_sid, day) DO UPDATE SET agent = excluded.agent, team = excluded.team, "
        "scheduled_ms = excluded.scheduled_ms, in_adherence_ms = excluded.in_adherence_ms, "
        "out_of_adherence_ms = excluded.out_of_adherence_ms, approved_ms = excluded.approved_ms, "
        "logged_in_ms = excluded.logged_in_ms, adherence_percent = excluded.adherence_percent, "
        "conformance_percent = excluded.conformance_percent, exceptions = excluded.exceptions, "
        "as_of_ms = excluded.as_of_ms, neutral_ms = excluded.neutral_ms, "
        # an evaluation that covered only part of the day (not ``overwrite``) keeps what the row was computed with
        "rules_version = CASE WHEN ? THEN excluded.rules_version "
        "ELSE coalesce(adherence.rules_version, excluded.rules_version) END, "
        "schedule_version = CASE WHEN ? THEN excluded.schedule_version "
        "ELSE coalesce(adherence.schedule_version, excluded.schedule_version) END, "
        "stale = CASE WHEN ? THEN 0 ELSE adherence.stale END",
        (worker_sid, day, agent, team, f.scheduled_ms, f.in_adherence_ms, f.out_of_adherence_ms, f.approved_ms,
         f.logged_in_ms, f.adherence_percent, f.conformance_percent, f.exceptions, as_of_ms, rules_version,
         schedule_version, f.neutral_ms, overwrite and rules_version is not None,
         overwrite and rules_version is not None, overwrite and rules_version is not None),
    )


# -- reading -------------------------------------------------------------------

def seconds(ms: int) -> int | float:
    """Exact seconds: whole numbers stay integers, else milliseconds as decimals."""
    return ms // 1000 if ms % 1000 == 0 else round(ms / 1000, 3)


def _pct(v: float | None) -> float | None:
    return None if v is None else round(v, 2)


def exception_row(r: sqlite3.Row | dict, now_ms: int) -> dict:
    end = r["end_ms"]
    dur_end = now_ms if end is None else end
    return {
        "id": r["id"],
        "agent": r["agent"],
        "worker_sid": r["worker_sid"],
        "team": r["team"],
        "rule": r["rule"],
        "severity": r["severity"],
        "scheduled_activity": r["scheduled_activity"],
        "actual_activity": r["actual_activity"],
        "task_state": r["task_state"],
        "start": iso(r["start_ms"]),
        "end": iso(end),
        "duration_seconds": seconds(max(0, dur_end - r["start_ms"])),
        "status": "open" if end is None else "closed",
        "approved": bool(r["approved"]),
        "note": r["note"],
        "day": r["day"],
        "approved_by": r["approved_by"],
        "approved_at": iso(r["approved_at_ms"]),
        "impact": r["impact"],
    }


def adherence_row(r: sqlite3.Row | dict) -> dict:
    return {
        "date": r["day"],
        "agent": r["agent"],
        "worker_sid": r["worker_sid"],
        "team": r["team"],
        "scheduled_seconds": seconds(r["scheduled_ms"]),
        "in_adherence_seconds": seconds(r["in_adherence_ms"]),
        "out_of_adherence_seconds": seconds(r["out_of_adherence_ms"]),
        "approved_seconds": seconds(r["approved_ms"]),
        "adherence_percent": _pct(r["adherence_percent"]),
        "conformance_percent": _pct(r["conformance_percent"]),
        "exceptions": r["exceptions"],
        "stale": bool(r["stale"]),
        "neutral_seconds": seconds(r["neutral_ms"]),
        "logged_in_seconds": seconds(r["logged_in_ms"]),
        "as_of": iso(r["as_of_ms"]),
    }
