"""Read paths shared by the CLI reports and the HTTP API.

Filters are validated here, once, so ``report`` and ``/api`` accept and
refuse exactly the same things. All SQL is parameterised.
"""

from __future__ import annotations

import csv
import io
import sqlite3
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


def _exception_where(engine, f: Filters) -> tuple[str, list]:
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
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


EXCEPTION_ORDER = "ORDER BY start_ms DESC, id DESC"
# worker_sid last: two rows of a day, team and agent key (a roster key reused by another worker) keep one order
ADHERENCE_ORDER = "ORDER BY day DESC, team, agent, worker_sid"


def exceptions(engine, f: Filters, *, limit: int | None = None, offset: int = 0,
               with_total: bool = True) -> tuple[list[dict], int | None]:
    """Exceptions matching the filters, newest first; also the total count."""
    where, params = _exception_where(engine, f)
    conn = engine.store.reader
    total = conn.execute(f"SELECT COUNT(*) FROM exceptions{where}", params).fetchone()[0] if with_total else None
    sql = f"SELECT * FROM exceptions{where} {EXCEPTION_ORDER}"
    if limit is not None:
        sql += " LIMIT ? OFFSET ?"
        params = [*params, limit, offset]
    now = engine.clock.now_ms()
    rows = [exception_row(r, now) for r in conn.execute(sql, params)]
    from .approvals import periods_by_exception

    periods_by_exception(engine, rows)
    return rows, total


STREAM_BATCH = 1000


def _stream_connection(engine) -> sqlite3.Connection:
    """A read connection of its own for one export: its statement may stay open as long as the client reads,
    without holding this thread's reader (or the writer) in a read transaction meanwhile."""
    store = engine.store
    store.reader  # noqa: B018 - refuses (StoreUnavailable) a replaced or deleted file, as every read does
    from .store import connect_read_only

    conn = connect_read_only(store.path, getattr(store, "_immutable", False))
    conn.row_factory = sqlite3.Row
    for name, fn in (("adh_cell", _udf_cell), ("adh_iso", _udf_iso), ("adh_seconds", _udf_seconds),
                     ("adh_pct", _udf_pct)):
        conn.create_function(name, 1, fn, deterministic=True)
    return conn


def _stream(engine, sql: str, params: list) -> Iterator[list]:
    """The rows of one statement in batches, on a connection of its own, closed at the end or when the
    consumer stops (a client that goes away closes the response, which closes this generator)."""
    conn = _stream_connection(engine)
    try:
        cur = conn.execute(sql, params)
        while True:
            batch = cur.fetchmany(STREAM_BATCH)
            if not batch:
                return
            yield batch
    finally:
        conn.close()


def iter_exceptions(engine, f: Filters) -> Iterator[dict]:
    """Every matching exception as ``exceptions`` returns them, from one statement (one sort), in constant
    memory; the filters are checked (an unknown agent refused) before the first row is asked for."""
    where, params = _exception_where(engine, f)
    now = engine.clock.now_ms()
    from .approvals import periods_by_exception

    def rows() -> Iterator[dict]:
        for batch in _stream(engine, f"SELECT * FROM exceptions{where} {EXCEPTION_ORDER}", params):
            out = [exception_row(r, now) for r in batch]
            periods_by_exception(engine, out)
            yield from out

    return rows()


def adherence(engine, f: Filters, *, limit: int | None = None, offset: int = 0,
              with_total: bool = True) -> tuple[list[dict], int | None]:
    clauses, params = _where(engine, f)
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    conn = engine.store.reader
    total = conn.execute(f"SELECT COUNT(*) FROM adherence{where}", params).fetchone()[0] if with_total else None
    sql = f"SELECT * FROM adherence{where} {ADHERENCE_ORDER}"
    if limit is not None:
        sql += " LIMIT ? OFFSET ?"
        params = [*params, limit, offset]
    return [adherence_row(r) for r in conn.execute(sql, params)], total


def iter_adherence(engine, f: Filters) -> Iterator[dict]:
    """Every matching adherence row, from one statement, in constant memory."""
    clauses, params = _where(engine, f)
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""

    def rows() -> Iterator[dict]:
        for batch in _stream(engine, f"SELECT * FROM adherence{where} {ADHERENCE_ORDER}", params):
            yield from (adherence_row(r) for r in batch)

    return rows()


# -- CSV lines made by SQLite --------------------------------------------------------------------
# An export of a month is ~100k rows: formatting each cell in Python (ISO instants, seconds, the formula
# guard, quoting) cost ~40 µs a row. Here each line is one text column of the statement, made by SQLite;
# the rare cells that need the formula guard or quoting go through csv_cell and the csv module (adh_cell),
# so the bytes are those of ``csv_lines`` over the rows above (a test compares them).


def _sql_text(col: str) -> str:
    return (f"CASE WHEN {col} IS NULL THEN '' WHEN typeof({col}) != 'text' OR substr({col}, 1, 1) IN "
            f"('=', '+', '-', '@', char(9), char(13)) OR instr({col}, ',') OR instr({col}, '\"') "
            f"OR instr({col}, char(10)) OR instr({col}, char(13)) THEN adh_cell({col}) ELSE {col} END")


def _sql_int(col: str) -> str:
    return f"CASE WHEN {col} IS NULL THEN '' WHEN typeof({col}) = 'integer' THEN {col} ELSE adh_cell({col}) END"


def _sql_iso(col: str) -> str:
    return (f"CASE WHEN {col} IS NULL THEN '' WHEN typeof({col}) = 'integer' AND {col} >= 0 "
            f"AND {col} < 253402300800000 THEN strftime('%Y-%m-%dT%H:%M:%S', {col} / 1000, 'unixepoch') "
            f"|| CASE WHEN {col} % 1000 THEN printf('.%03d', {col} % 1000) ELSE '' END || 'Z' "
            f"ELSE adh_iso({col}) END")


def _sql_seconds(expr: str) -> str:
    return (f"CASE WHEN typeof({expr}) = 'integer' AND {expr} >= 0 THEN CASE WHEN {expr} % 1000 = 0 "
            f"THEN {expr} / 1000 ELSE rtrim(printf('%d.%03d', {expr} / 1000, {expr} % 1000), '0') END "
            f"ELSE adh_seconds({expr}) END")


def _sql_bool(col: str) -> str:
    return f"CASE WHEN {col} THEN 'true' ELSE 'false' END"


def _line(cells: list[str]) -> str:
    return " || ',' || ".join(f"({c})" for c in cells) + " || char(13, 10)"


def _udf_cell(v) -> str:
    """One cell as ``csv_lines`` writes it among others (alone, an empty cell would be written as "")."""
    text = csv_cell(v)
    if not text:
        return ""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow([text])
    return buf.getvalue()[:-2]


def _udf_iso(v) -> str:
    return _udf_cell(iso(v) if isinstance(v, int) else v)


def _udf_seconds(v) -> str:
    from .results import seconds

    return _udf_cell(seconds(v) if isinstance(v, int) else v)


def _udf_pct(v) -> str:
    return _udf_cell(None if v is None else round(v, 2))


# the columns in EXCEPTION_COLUMNS' and ADHERENCE_COLUMNS' order (tests/test_reads.py compares the bytes)
def _exception_line() -> str:
    t = _sql_text
    return _line([_sql_int("id"), t("agent"), t("worker_sid"), t("team"), t("rule"), t("severity"),
                  t("scheduled_activity"), t("actual_activity"), t("task_state"), _sql_iso("start_ms"),
                  _sql_iso("end_ms"), _sql_seconds("max(0, coalesce(end_ms, ?1) - start_ms)"),
                  "CASE WHEN end_ms IS NULL THEN 'open' ELSE 'closed' END", _sql_bool("approved"), t("note")])


def _adherence_line() -> str:
    t, s = _sql_text, _sql_seconds
    return _line([t("day"), t("agent"), t("worker_sid"), t("team"), s("scheduled_ms"), s("in_adherence_ms"),
                  s("out_of_adherence_ms"), s("approved_ms"), "adh_pct(adherence_percent)",
                  "adh_pct(conformance_percent)", _sql_int("exceptions"), _sql_bool("stale"), s("neutral_ms")])


def _csv_text(engine, sql: str, params: list, columns: list[str]) -> Iterator[str]:
    yield next(csv_lines((), columns))
    for batch in _stream(engine, sql, params):
        yield "".join(r[0] for r in batch)


# -- The exceptions' CSV from stored lines --------------------------------------------------------------
# Every exception has a row in ``exception_lines`` (migration 0011, kept by triggers on ``exceptions``): its
# (start, id), its day and its CSV line, or NULL where the line is made when read (an open exception, whose
# duration grows; a cell only Python writes right). The table's key is the export's order, so an export by
# date walks it backwards, reading stored text, instead of sorting and formatting the month; a NULL line is
# made from the exception's row, exactly as the statement above makes it.

def _fresh_line(alias: str) -> str:
    """The line of the exception whose id is ``{alias}.id``, made now (?1 is now)."""
    return f"(SELECT {_exception_line()} FROM exceptions WHERE id = {alias}.id)"


def _date_only(f: Filters) -> bool:
    return not (f.team or f.teams is not None or f.agent or f.rule or f.severity or f.status
                or f.approved is not None)


def _start_bounds(conn: sqlite3.Connection, f: Filters) -> tuple[int | None, int | None] | None:
    """The first and last start of the exceptions of ``f``'s days (None: no exception that day), in a few
    index seeks a day present (exceptions_day_start); no date filter: no bounds (the whole table)."""
    lo = (f.date or f.start)
    hi = (f.date or f.end)
    if lo is None and hi is None:
        return None
    params = {"lo": lo.isoformat() if lo else None, "hi": hi.isoformat() if hi else None}
    lower = "day >= :lo" if lo else "1"
    upper = "day <= :hi" if hi else "1"
    row = conn.execute(
        f"""WITH RECURSIVE d(day) AS (
                SELECT (SELECT min(day) FROM exceptions WHERE {lower} AND {upper})
                UNION ALL
                SELECT (SELECT min(day) FROM exceptions WHERE day > d.day AND {upper}) FROM d WHERE d.day IS NOT NULL)
            SELECT min((SELECT min(start_ms) FROM exceptions WHERE day = d.day)),
                   max((SELECT max(start_ms) FROM exceptions WHERE day = d.day))
            FROM d WHERE d.day IS NOT NULL""", params).fetchone()
    return row[0], row[1]


CHUNK_ROWS = 2000  # lines a chunk of the stored-lines export aims at
FIRST_WINDOW_MS = 60_000


def _stored_lines(engine, f: Filters, now: int) -> Iterator[str]:
    """The lines of an export filtered by date only, from ``exception_lines`` in its key's order.

    One statement a window of start instants, newest first, each returning its lines joined by SQLite
    (``group_concat`` over the window's rows in order): a row costs no Python object, and the thread serving
    the export takes the GIL once a chunk, not once a row. The window adapts to aim at CHUNK_ROWS lines; an
    empty one jumps to the next start below it. The windows tile [first start, last start] without overlap,
    so each row is sent once, in the order of the key."""
    yield next(csv_lines((), EXCEPTION_COLUMNS))
    conn = _stream_connection(engine)
    try:
        conn.execute("BEGIN")  # the bounds and every window read one snapshot
        bounds = _start_bounds(conn, f)
        if bounds is None:
            bounds = conn.execute("SELECT min(start_ms), max(start_ms) FROM exception_lines").fetchone()
        lo, hi = bounds
        if lo is None:
            return
        date_where, date_params = _where(engine, Filters(date=f.date, start=f.start, end=f.end))
        where = "".join(" AND " + c for c in date_where)
        # the subquery's ORDER BY holds: SQLite neither flattens a subquery with ORDER BY into an aggregate
        # nor drops it (the outer query has no ORDER BY and no join), so group_concat sees the rows in order
        sql = (f"SELECT group_concat(x, ''), count(*) FROM (SELECT coalesce(line, {_fresh_line('l')}) AS x "
               f"FROM exception_lines l WHERE start_ms >= ? AND start_ms <= ?{where} {EXCEPTION_ORDER})")
        below = "SELECT max(start_ms) FROM exception_lines WHERE start_ms < ?"
        pos, width = hi, FIRST_WINDOW_MS
        while True:
            low = max(lo, pos - width + 1)  # the window [low, pos]; the last one ends at the bounds' first start
            text, n = conn.execute(sql, [now, low, pos, *date_params]).fetchone()
            if text:
                yield text
            if low == lo:
                return
            if n:
                width = max(1, min(width * 4, width * CHUNK_ROWS // n))
                pos = low - 1
            else:  # nothing there: on from the next start below
                width *= 2
                pos = conn.execute(below, (low,)).fetchone()[0]
                if pos is None or pos < lo:
                    return
    finally:
        conn.close()


def exception_csv(engine, f: Filters) -> Iterator[str]:
    """The CSV of ``iter_exceptions`` (header, then ~1,000 lines a chunk): lines stored with the exceptions
    where there is one (``exception_lines``), else made by SQLite; by date only (or nothing), a walk of
    ``exception_lines`` in order, no sort."""
    where, params = _exception_where(engine, f)  # the filters checked before the first chunk is asked for
    now = engine.clock.now_ms()
    if _date_only(f):
        return _stored_lines(engine, f, now)
    stored = "(SELECT line FROM exception_lines l WHERE l.start_ms = exceptions.start_ms AND l.id = exceptions.id)"
    sql = f"SELECT coalesce({stored}, {_exception_line()}) FROM exceptions{where} {EXCEPTION_ORDER}"
    return _csv_text(engine, sql, [now, *params], EXCEPTION_COLUMNS)


def adherence_csv(engine, f: Filters) -> Iterator[str]:
    """The CSV of ``iter_adherence``, its lines made by SQLite."""
    clauses, params = _where(engine, f)
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    return _csv_text(engine, f"SELECT {_adherence_line()} FROM adherence{where} {ADHERENCE_ORDER}", params,
                     ADHERENCE_COLUMNS)


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


__all__ = ["Filters", "FilterError", "EXCEPTION_COLUMNS", "ADHERENCE_COLUMNS", "csv_lines", "exception_csv",
           "adherence_csv"]
