"""Period approvals and the audit history of every approval.

A period approval ("Flex outage 10:00-10:40", for one agent, a team or everyone) is an *input*, like the
approval of one exception: it is stored, never derived, and every evaluation — the live tick, ``refresh``,
``recompute`` into a fresh database — reads it when it computes a day's figures (``covering``). So a
recompute gives the same figures, and withdrawing a period (it is marked withdrawn, never deleted) restores
them the next time the affected days are computed, which ``create_period``/``withdraw_period`` do at once.

The audit table is append only: every approval, withdrawal and period approval adds a row (who, when,
what, note) and nothing ever updates or deletes one. Recompute touches exceptions and adherence rows only,
so the history survives it, including the history of an exception a recompute no longer finds.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Iterable, Iterator

from .errors import AdherenceError, NotFound
from .timeutil import iso, local_date, zone

PERIOD_MODES = ("neutral", "in")
SCOPES = ("agent", "team", "all")
MAX_PERIOD_MS = 7 * 86_400_000  # a longer "outage" is a mistake in a date, not an outage
AUDIT_COLUMNS = ["id", "at", "by", "action", "exception_id", "period_id", "agent", "worker_sid", "day", "note",
                 "detail"]


class PeriodError(AdherenceError):
    """A period approval request is invalid."""


def covering(conn: sqlite3.Connection, worker_sid: str, team: str | None, lo: int, hi: int
             ) -> list[tuple[int, int, str]]:
    """The periods in force for this agent that overlap [lo, hi), as (start, end, mode)."""
    return [
        (s, e, m)
        for s, e, m in conn.execute(
            "SELECT start_ms, end_ms, mode FROM approval_periods WHERE withdrawn_ms IS NULL AND start_ms < ? "
            "AND end_ms > ? AND (scope = 'all' OR (scope = 'agent' AND target = ?) OR (scope = 'team' AND target = ?)) "
            "ORDER BY start_ms, id",
            (hi, lo, worker_sid, team),
        )
    ]


def record(conn: sqlite3.Connection, at_ms: int, action: str, by: str | None, note: str | None, *,
           exception_id: int | None = None, period_id: int | None = None, worker_sid: str | None = None,
           agent: str | None = None, day: str | None = None, detail: dict | None = None) -> None:
    """Append one audit row (inside the caller's transaction, so history and change commit together)."""
    conn.execute(
        "INSERT INTO audit (at_ms, by, action, exception_id, period_id, worker_sid, agent, day, note, detail) "
        "VALUES (?,?,?,?,?,?,?,?,?,?)",
        (at_ms, by, action, exception_id, period_id, worker_sid, agent, day, note,
         json.dumps(detail, sort_keys=True) if detail else None),
    )


def period_row(r) -> dict:
    return {
        "id": r["id"],
        "scope": r["scope"],
        "target": r["target"],
        "start": iso(r["start_ms"]),
        "end": iso(r["end_ms"]),
        "mode": r["mode"],
        "reason": r["reason"],
        "by": r["created_by"],
        "created_at": iso(r["created_ms"]),
        "withdrawn": r["withdrawn_ms"] is not None,
        "withdrawn_by": r["withdrawn_by"],
        "withdrawn_at": iso(r["withdrawn_ms"]),
    }


def _affected(conn: sqlite3.Connection, engine, scope: str, target: str | None, start: int, end: int) -> set[str]:
    """Agents whose figures the period can change: those with an exception overlapping it."""
    sql = "SELECT DISTINCT worker_sid FROM exceptions WHERE start_ms < ? AND (end_ms IS NULL OR end_ms > ?)"
    params: list = [end, start]
    if scope == "agent":
        sql += " AND worker_sid = ?"
        params.append(target)
    workers = {w for (w,) in conn.execute(sql, params)}
    if scope == "team":
        # the team an evaluation uses is the roster's now, not the one stored with an old exception
        workers = {w for w in workers if _info(engine, w)[1] == target}
    return workers


def _info(ctx, worker_sid: str):
    """(key, team, zone) of a worker: the runner's when serving, else the schedule's (a CLI read)."""
    runner = getattr(ctx, "runner", None)
    if runner is not None:
        return runner.agent_info(worker_sid)
    sched = ctx.schedules.current
    a = sched.agent(worker_sid) if sched is not None else None
    if a is None:
        return worker_sid, None, zone(ctx.config.timezone)
    return a.key, a.team, sched.tz(a.key)


def _refresh(engine, workers: Iterable[str], from_ms: int, now: int) -> None:
    for w in sorted(workers):
        engine.runner.refresh(w, from_ms, now)


def create_period(engine, scope: str, target: str | None, start_ms: int, end_ms: int, mode: str | None,
                  reason: str, by: str | None) -> dict:
    """Store a period approval, audit it, and refresh the figures of every agent it touches."""
    mode = mode or engine.config.period_mode
    errors = []
    if scope not in SCOPES:
        errors.append(f"scope: expected one of {', '.join(SCOPES)}, got {scope!r}")
    if mode not in PERIOD_MODES:
        errors.append(f"mode: expected neutral or in, got {mode!r}")
    if end_ms <= start_ms:
        errors.append("end must be after start")
    elif end_ms - start_ms > MAX_PERIOD_MS:
        errors.append("a period approval covers at most 7 days")
    if not (reason or "").strip():
        errors.append("reason: required (what happened, e.g. 'Flex outage')")
    if scope in ("agent", "team") and not target:
        errors.append(f"{scope}: required for a period approval of one {scope}")
    if errors:
        raise PeriodError("; ".join(errors), None)
    if scope == "agent":
        from .queries import _resolve_agent

        target = _resolve_agent(engine, target)
    elif scope == "all":
        target = None
    now = engine.clock.now_ms()
    with engine.store.write() as conn:
        cur = conn.execute(
            "INSERT INTO approval_periods (scope, target, start_ms, end_ms, mode, reason, created_by, created_ms) "
            "VALUES (?,?,?,?,?,?,?,?)", (scope, target, start_ms, end_ms, mode, reason.strip(), by, now))
        pid = cur.lastrowid
        agent = _info(engine, target)[0] if scope == "agent" else None
        record(conn, now, "period_approve", by, reason.strip(), period_id=pid,
               worker_sid=target if scope == "agent" else None, agent=agent,
               detail={"scope": scope, "target": target, "start": iso(start_ms), "end": iso(end_ms), "mode": mode})
        workers = _affected(conn, engine, scope, target, start_ms, end_ms)
    _refresh(engine, workers, start_ms, now)
    return get_period(engine, pid)


def get_period(engine, pid: int) -> dict:
    r = engine.store.reader.execute("SELECT * FROM approval_periods WHERE id = ?", (pid,)).fetchone()
    if r is None:
        raise NotFound(f"no period approval with id {pid}")
    return period_row(r)


def withdraw_period(engine, pid: int, by: str | None, note: str | None = None) -> dict:
    """Mark a period approval withdrawn (kept, for the history) and restore the figures it changed."""
    now = engine.clock.now_ms()
    with engine.store.write() as conn:
        cur = conn.execute("SELECT * FROM approval_periods WHERE id = ?", (pid,))
        r = cur.fetchone()
        if r is not None:  # the writer's rows are tuples
            r = dict(zip([d[0] for d in cur.description], r))
        if r is None:
            raise NotFound(f"no period approval with id {pid}")
        if r["withdrawn_ms"] is not None:
            return period_row(r)
        conn.execute("UPDATE approval_periods SET withdrawn_ms = ?, withdrawn_by = ? WHERE id = ?", (now, by, pid))
        record(conn, now, "period_withdraw", by, note, period_id=pid,
               worker_sid=r["target"] if r["scope"] == "agent" else None,
               detail={"scope": r["scope"], "target": r["target"], "start": iso(r["start_ms"]),
                       "end": iso(r["end_ms"]), "mode": r["mode"], "reason": r["reason"]})
        workers = _affected(conn, engine, r["scope"], r["target"], r["start_ms"], r["end_ms"])
    _refresh(engine, workers, r["start_ms"], now)
    return get_period(engine, pid)


def list_periods(engine, lo_ms: int | None = None, hi_ms: int | None = None, *, worker_sid: str | None = None,
                 team: str | None = None, teams: frozenset | None = None) -> list[dict]:
    """Period approvals overlapping [lo, hi) (withdrawn ones too: the page shows what was undone).

    ``worker_sid``/``team`` keep the periods that cover that agent or team; ``teams`` (a scoped reader)
    keeps those that cover one of its teams."""
    sql = "SELECT * FROM approval_periods WHERE 1=1"
    params: list = []
    if lo_ms is not None:
        sql += " AND end_ms > ?"
        params.append(lo_ms)
    if hi_ms is not None:
        sql += " AND start_ms < ?"
        params.append(hi_ms)
    out = []
    for r in engine.store.reader.execute(sql + " ORDER BY start_ms, id", params):
        if worker_sid is not None and not (r["scope"] == "all" or (r["scope"] == "agent" and r["target"] == worker_sid)
                                           or (r["scope"] == "team" and r["target"] == team)):
            continue
        if team is not None and worker_sid is None and r["scope"] == "team" and r["target"] != team:
            continue
        if teams is not None and not _period_in_teams(engine, r, teams):
            continue
        out.append(period_row(r))
    return out


def _period_in_teams(engine, r, teams: frozenset) -> bool:
    if r["scope"] == "all":
        return True
    if r["scope"] == "team":
        return r["target"] in teams
    return _info(engine, r["target"])[1] in teams


def periods_by_exception(engine, rows: list[dict]) -> None:
    """Mark each exception row with the period approvals in force that overlap it (``excused_by``)."""
    if not rows:
        return
    periods = engine.store.reader.execute(
        "SELECT id, scope, target, start_ms, end_ms FROM approval_periods WHERE withdrawn_ms IS NULL").fetchall()
    from .timeutil import parse_instant_ms

    for row in rows:
        start = parse_instant_ms(row["start"])
        end = parse_instant_ms(row["end"]) if row["end"] else None
        row["excused_by"] = [
            p["id"] for p in periods
            if p["start_ms"] < (end if end is not None else 1 << 62) and p["end_ms"] > start
            and (p["scope"] == "all" or (p["scope"] == "agent" and p["target"] == row["worker_sid"])
                 or (p["scope"] == "team" and p["target"] == row["team"]))
        ]


# -- audit ----------------------------------------------------------------------

def audit_row(r) -> dict:
    return {
        "id": r["id"],
        "at": iso(r["at_ms"]),
        "by": r["by"],
        "action": r["action"],
        "exception_id": r["exception_id"],
        "period_id": r["period_id"],
        "agent": r["agent"],
        "worker_sid": r["worker_sid"],
        "day": r["day"],
        "note": r["note"],
        "detail": json.loads(r["detail"]) if r["detail"] else None,
    }


def audit(engine, *, exception_id: int | None = None, worker_sid: str | None = None, day: str | None = None,
          first: str | None = None, last: str | None = None, teams: frozenset | None = None,
          limit: int | None = None, offset: int = 0) -> list[dict]:
    """History rows, oldest first. A period approval of a team or everyone is shown with every agent's day
    it covers (``worker_sid`` + ``day``), so the agent's day lists it too."""
    sql, params = _audit_sql(exception_id, worker_sid, first, last)
    if limit is not None:
        sql += " LIMIT ? OFFSET ?"
        params += [limit, offset]
    rows = [audit_row(r) for r in engine.store.reader.execute(sql, params)]
    if worker_sid is not None or day is not None or teams is not None:
        rows = [r for r in rows if _audit_visible(engine, r, worker_sid, day, teams)]
    return rows


def _audit_sql(exception_id: int | None, worker_sid: str | None, first: str | None,
               last: str | None) -> tuple[str, list]:
    clauses, params = [], []
    if exception_id is not None:
        clauses.append("exception_id = ?")
        params.append(exception_id)
    if worker_sid is not None:
        clauses.append("(worker_sid = ? OR (period_id IS NOT NULL AND worker_sid IS NULL))")
        params.append(worker_sid)
    if first is not None:
        clauses.append("at_ms >= ?")
        params.append(_midnight_utc(first))
    if last is not None:
        clauses.append("at_ms < ?")
        params.append(_midnight_utc(last) + 86_400_000)
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    return f"SELECT * FROM audit{where} ORDER BY at_ms, id", params


def _audit_visible(engine, r: dict, worker_sid: str | None, day: str | None, teams: frozenset | None) -> bool:
    d = r["detail"] or {}
    if r["period_id"] is not None and r["worker_sid"] is None:
        scope, target = d.get("scope"), d.get("target")
        if worker_sid is not None:
            team = _info(engine, worker_sid)[1]
            if scope == "team" and target != team:
                return False
        if teams is not None and scope == "team" and target not in teams:
            return False
        if day is not None and worker_sid is not None:
            tz = _info(engine, worker_sid)[2]
            from .timeutil import parse_instant_ms

            s, e = parse_instant_ms(d["start"]), parse_instant_ms(d["end"])
            return local_date(s, tz).isoformat() <= day <= local_date(e - 1, tz).isoformat()
        return True
    if day is not None and r["day"] is not None and r["day"] != day:
        return False
    if teams is not None and r["worker_sid"] is not None and _info(engine, r["worker_sid"])[1] not in teams:
        return False
    return True


def _midnight_utc(day: str) -> int:
    from datetime import date, datetime

    d = date.fromisoformat(day)
    return int(datetime(d.year, d.month, d.day, tzinfo=zone("UTC")).timestamp() * 1000)


def iter_audit(engine, *, exception_id: int | None = None, worker_sid: str | None = None, day: str | None = None,
               first: str | None = None, last: str | None = None, teams: frozenset | None = None) -> Iterator[dict]:
    """The rows of ``audit`` for the CSV (``detail`` as JSON text), streamed from one statement on a connection
    of its own (queries._stream), in constant memory."""
    from .queries import _stream

    sql, params = _audit_sql(exception_id, worker_sid, first, last)
    check = worker_sid is not None or day is not None or teams is not None
    for batch in _stream(engine, sql, params):
        for raw in batch:
            r = audit_row(raw)
            if not check or _audit_visible(engine, r, worker_sid, day, teams):
                yield {**r, "detail": json.dumps(r["detail"], sort_keys=True) if r["detail"] else None}
