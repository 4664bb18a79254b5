"""Read paths shared by the CLI reports and the HTTP API.

Filters are validated here, once, so ``report`` and ``/api`` accept and
refuse exactly the same things. All SQL is parameterised.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date
from typing import Iterable, Iterator

from .errors import AdherenceError, NotFound
from .rules import SEVERITIES
from .results import ADHERENCE_COLUMNS, EXCEPTION_COLUMNS, adherence_row, exception_row
from .timeutil import iso, parse_date


class FilterError(AdherenceError):
    """A report filter is invalid."""




@dataclass
class Filters:
    date: date | None = None
    start: date | None = None  # from
    end: date | None = None  # to
    team: str | None = None
    agent: str | None = None
    rule: str | None = None
    severity: str | None = None
    status: str | None = None
    approved: bool | None = None
    teams: frozenset | None = None  # the caller's team scope (access.Principal.teams): None sees every team

    @classmethod
    def parse(cls, args: dict, *, allowed: Iterable[str]) -> "Filters":
        allowed = set(allowed)
        f = cls()
        errors = []
        for key, value in args.items():
            if value is None or value == "":
                continue
            if key not in allowed:
                errors.append(f"unknown filter {key!r} (expected one of: {', '.join(sorted(allowed))})")
                continue
            try:
                if key in ("date", "from", "to"):
                    setattr(f, {"from": "start", "to": "end"}.get(key, key), parse_date(value))
                elif key == "severity":
                    if value not in SEVERITIES:
                        raise ValueError(f"expected one of {', '.join(SEVERITIES)}, got {value!r}")
                    f.severity = value
                elif key == "status":
                    if value not in ("open", "closed"):
                        raise ValueError(f"expected open or closed, got {value!r}")
                    f.status = value
                elif key == "approved":
                    if str(value).lower() not in ("true", "false", "1", "0", "yes", "no"):
                        raise ValueError(f"expected true or false, got {value!r}")
                    f.approved = str(value).lower() in ("true", "1", "yes")
                else:
                    setattr(f, key, str(value))
            except ValueError as exc:
                errors.append(f"{key}: {exc}")
        if f.date and (f.start or f.end):
            errors.append("give either date or from/to, not both")
        if f.start and f.end and f.start > f.end:
            errors.append(f"from ({f.start}) is after to ({f.end})")
        if errors:
            raise FilterError("; ".join(errors), None)
        return f


def _resolve_agent(engine, agent: str) -> str:
    """Roster key or worker SID → worker SID; unknown → NotFound."""
    sched = engine.schedules.current
    if sched is not None:
        a = sched.agent(agent)
        if a is not None:
            return a.worker_sid
    row = engine.store.reader.execute("SELECT 1 FROM journal WHERE worker_sid = ? LIMIT 1", (agent,)).fetchone()
    if row is None:
        row = engine.store.reader.execute("SELECT 1 FROM adherence WHERE worker_sid = ? OR agent = ? LIMIT 1",
                                          (agent, agent)).fetchone()
        if row is None:
            raise NotFound(f"unknown agent {agent!r} (not in the roster and never seen in the feed)")
    return agent


def _where(engine, f: Filters, *, day_col: str = "day") -> tuple[str, list]:
    clauses, params = [], []
    if f.date:
        clauses.append(f"{day_col} = ?")
        params.append(f.date.isoformat())
    if f.start:
        clauses.append(f"{day_col} >= ?")
        params.append(f.start.isoformat())
    if f.end:
        clauses.append(f"{day_col} <= ?")
        params.append(f.end.isoformat())
    if f.team:
        clauses.append("team = ?")
        params.append(f.team)
    if f.teams is not None:
        clauses.append(f"team IN ({','.join('?' * len(f.teams))})")
        params.extend(sorted(f.teams))
    if f.agent:
        clauses.append("worker_sid = ?")
        params.append(_resolve_agent(engine, f.agent))
    return clauses, params


def exceptions(engine, f: Filters, *, limit: int | None = None, offset: int = 0,
               with_total: bool = True) -> tuple[list[dict], int | None]:
    """Exceptions matching the filters, newest first; also the total count."""
    clauses, params = _where(engine, f)
    if f.rule:
        clauses.append("rule = ?")
        params.append(f.rule)
    if f.severity:
        clauses.append("severity = ?")
        params.append(f.severity)
    if f.status == "open":
        clauses.append("end_ms IS NULL")
    elif f.status == "closed":
        clauses.append("end_ms IS NOT NULL")
    if f.approved is not None:
        clauses.append("approved = ?")
        params.append(int(f.approved))
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    conn = engine.store.reader
    total = conn.execute(f"SELECT COUNT(*) FROM exceptions{where}", params).fetchone()[0] if with_total else None
    sql = f"SELECT * FROM exceptions{where} ORDER BY start_ms DESC, id DESC"
    if limit is not None:
        sql += " LIMIT ? OFFSET ?"
        params = [*params, limit, offset]
    now = engine.clock.now_ms()
    rows = [exception_row(r, now) for r in conn.execute(sql, params)]
    from .approvals import periods_by_exception

    periods_by_exception(engine, rows)
    return rows, total


def _all_pages(query, engine, f: Filters, page: int = 1000) -> Iterator[dict]:
    """Every matching row, a page at a time: a CSV of any size without holding it in memory."""
    offset = 0
    while True:
        rows, _ = query(engine, f, limit=page, offset=offset, with_total=False)
        yield from rows
        if len(rows) < page:
            return
        offset += page


def iter_exceptions(engine, f: Filters) -> Iterator[dict]:
    return _all_pages(exceptions, engine, f)


def adherence(engine, f: Filters, *, limit: int | None = None, offset: int = 0,
              with_total: bool = True) -> tuple[list[dict], int | None]:
    clauses, params = _where(engine, f)
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    conn = engine.store.reader
    total = conn.execute(f"SELECT COUNT(*) FROM adherence{where}", params).fetchone()[0] if with_total else None
    sql = f"SELECT * FROM adherence{where} ORDER BY day DESC, team, agent"
    if limit is not None:
        sql += " LIMIT ? OFFSET ?"
        params = [*params, limit, offset]
    return [adherence_row(r) for r in conn.execute(sql, params)], total


def iter_adherence(engine, f: Filters) -> Iterator[dict]:
    return _all_pages(adherence, engine, f)


def adherence_by_team(engine, f: Filters) -> list[dict]:
    """Per team and day: sums of the agents' seconds and the resulting percentages."""
    clauses, params = _where(engine, f)
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    rows = engine.store.reader.execute(
        f"""SELECT day, team, COUNT(*) AS agents, SUM(scheduled_ms) AS s, SUM(in_adherence_ms) AS i,
                   SUM(out_of_adherence_ms) AS o, SUM(approved_ms) AS a, SUM(logged_in_ms) AS l,
                   SUM(exceptions) AS e, SUM(neutral_ms) AS n
            FROM adherence{where} GROUP BY day, team ORDER BY day DESC, team""",
        params,
    ).fetchall()
    from .results import seconds

    out = []
    for r in rows:
        s = r["s"] or 0
        counted = s - (r["n"] or 0)
        out.append({
            "date": r["day"],
            "team": r["team"],
            "agents": r["agents"],
            "scheduled_seconds": seconds(s),
            "in_adherence_seconds": seconds(r["i"] or 0),
            "out_of_adherence_seconds": seconds(r["o"] or 0),
            "approved_seconds": seconds(r["a"] or 0),
            "adherence_percent": round((r["i"] or 0) / counted * 100, 2) if counted else None,
            "conformance_percent": round((r["l"] or 0) / s * 100, 2) if s else None,
            "exceptions": r["e"] or 0,
            "neutral_seconds": seconds(r["n"] or 0),
        })
    return out


def open_exceptions(engine, worker_sids: Iterable[str] | None = None) -> dict[str, list[dict]]:
    """Open exceptions per worker SID, longest running first (for the live board)."""
    sql = "SELECT * FROM exceptions WHERE end_ms IS NULL"
    params: list = []
    if worker_sids is not None:
        sids = list(worker_sids)
        if not sids:
            return {}
        sql += f" AND worker_sid IN ({','.join('?' * len(sids))})"
        params = sids
    now = engine.clock.now_ms()
    out: dict[str, list[dict]] = {}
    for r in engine.store.reader.execute(sql + " ORDER BY start_ms, id", params):
        out.setdefault(r["worker_sid"], []).append(exception_row(r, now))
    return out


def adherence_days(engine, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], dict]:
    """Adherence rows for given (worker SID, ISO day) pairs, keyed by the pair (for the live board)."""
    pairs = list(pairs)
    out: dict[tuple[str, str], dict] = {}
    conn = engine.store.reader
    for i in range(0, len(pairs), 400):
        chunk = pairs[i : i + 400]
        where = " OR ".join(["(worker_sid = ? AND day = ?)"] * len(chunk))
        params = [v for pair in chunk for v in pair]
        for r in conn.execute(f"SELECT * FROM adherence WHERE {where}", params):
            out[(r["worker_sid"], r["day"])] = adherence_row(r)
    return out


def get_exception(engine, exc_id: int, *, history: bool = False) -> dict:
    r = engine.store.reader.execute("SELECT * FROM exceptions WHERE id = ?", (exc_id,)).fetchone()
    if r is None:
        raise NotFound(f"no exception with id {exc_id}")
    row = exception_row(r, engine.clock.now_ms())
    from .approvals import audit, periods_by_exception

    periods_by_exception(engine, [row])
    if history:
        row["history"] = audit(engine, exception_id=exc_id)
    return row


def set_approval(engine, exc_id: int, approved: bool, by: str | None = None, note: str | None = None,
                 *, refresh: bool = True) -> dict:
    """Approve (excuse) or withdraw the approval of an exception, then refresh the agent's figures.

    The change and its audit row commit together: there is no approval without its history."""
    from .approvals import record

    now = engine.clock.now_ms()
    with engine.store.write() as conn:
        row = conn.execute("SELECT worker_sid, start_ms, agent, day, rule, end_ms FROM exceptions WHERE id = ?",
                           (exc_id,)).fetchone()
        if row is None:
            raise NotFound(f"no exception with id {exc_id}")
        record(conn, now, "approve" if approved else "withdraw", by, note, exception_id=exc_id, worker_sid=row[0],
               agent=row[2], day=row[3], detail={"rule": row[4], "start": iso(row[1]), "end": iso(row[5])})
        if approved:
            conn.execute(
                "UPDATE exceptions SET approved = 1, approved_by = ?, approved_at_ms = ?, note = ?, updated_ms = ? WHERE id = ?",
                (by, now, note, now, exc_id),
            )
        else:
            conn.execute(
                "UPDATE exceptions SET approved = 0, approved_by = NULL, approved_at_ms = NULL, note = ?, updated_ms = ? "
                "WHERE id = ?",
                (note, now, exc_id),
            )
    if refresh:
        engine.runner.refresh(row[0], row[1], now)
    return get_exception(engine, exc_id)


MAX_BULK = 1000


def approve_many(engine, ids: list[int], by: str | None, note: str | None) -> list[dict]:
    """Approve several exceptions (the day page's "approve selected"): each audited, each agent refreshed once,
    from its earliest approved exception."""
    if not ids:
        raise FilterError("ids: at least one exception id", None)
    if len(ids) > MAX_BULK:
        raise FilterError(f"ids: at most {MAX_BULK} at once", None)
    for exc_id in ids:
        get_exception(engine, exc_id)  # every id known before anything changes
    earliest: dict[str, int] = {}
    rows = []
    for exc_id in ids:
        r = set_approval(engine, exc_id, True, by, note, refresh=False)
        start = engine.store.reader.execute("SELECT start_ms FROM exceptions WHERE id = ?", (exc_id,)).fetchone()[0]
        earliest[r["worker_sid"]] = min(start, earliest.get(r["worker_sid"], start))
        rows.append(r)
    now = engine.clock.now_ms()
    for w, start in sorted(earliest.items()):
        engine.runner.refresh(w, start, now)
    return [get_exception(engine, r["id"]) for r in rows]


_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(v) -> str:
    """A CSV cell, neutralised against formula injection in spreadsheets."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    s = str(v)
    if s and s[0] in _FORMULA and not _is_number(s):
        return "'" + s
    return s


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def csv_lines(rows: Iterable[dict], columns: list[str]) -> Iterator[str]:
    """Header then one line per row, generated lazily (streamed responses)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(columns)
    yield buf.getvalue()
    for row in rows:
        buf.seek(0)
        buf.truncate()
        w.writerow([csv_cell(row.get(c)) for c in columns])
        yield buf.getvalue()


__all__ = ["Filters", "FilterError", "EXCEPTION_COLUMNS", "ADHERENCE_COLUMNS", "csv_lines"]
