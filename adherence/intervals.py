"""Interval adherence: each agent's (and team's) day cut into 15, 30 or 60-minute intervals of local time.

The intervals are cut from the same sets of instants the day's figures total (``evaluate.day_sets``), with
the same inputs — the day's segments (clipped to monitoring start), the stored exceptions and approvals, the
period approvals, the neutral activities — as of the stored row's ``as_of``. So an agent's intervals of one
day add up, to the millisecond, to that day's stored figures (a row computed with other files than those in
force is marked ``stale`` and may not).

Intervals start at local midnight and step by real elapsed time; every zone's offsets are whole quarter
hours, so the boundaries stay on the local quarter-hour grid across a DST change (an autumn day has two
intervals labelled 01:00). A team's interval is keyed by its UTC start: the agents of one zone share them.
"""

from __future__ import annotations

from datetime import date, timedelta

from .approvals import covering
from .evaluate import _intersect, _total, day_sets, day_window
from .policy import day_segments, monitored
from .queries import Filters, _where
from .results import seconds
from .timeline import agent_info, local_text, offset_text
from .timeutil import iso, local_midnight_ms

SIZES = {"15m": 15, "30m": 30, "60m": 60, "1h": 60}
INTERVAL_COLUMNS = [
    "date", "agent", "worker_sid", "team", "start", "end", "local_start", "utc_offset", "scheduled_seconds",
    "in_adherence_seconds", "out_of_adherence_seconds", "neutral_seconds", "approved_seconds", "adherence_percent",
    "stale",
]
TEAM_INTERVAL_COLUMNS = [
    "date", "team", "agents", "start", "end", "local_start", "utc_offset", "scheduled_seconds", "in_adherence_seconds",
    "out_of_adherence_seconds", "neutral_seconds", "approved_seconds", "adherence_percent",
]


def parse_size(text: str | None) -> int:
    """``15m``/``30m``/``60m`` (``1h``) → milliseconds; anything else is refused (ValueError)."""
    minutes = SIZES.get((text or "30m").strip())
    if minutes is None:
        raise ValueError(f"size: expected 15m, 30m or 60m, got {text!r}")
    return minutes * 60_000


def _neutral_activities(ctx) -> frozenset:
    rules = getattr(ctx, "rules", None)
    if rules is not None and rules.current is not None:
        return rules.current.neutral_scheduled
    from .rules import load_rules

    try:
        return load_rules(ctx.config.rules).neutral_scheduled
    except Exception:  # the CLI reads without a valid rule set: nothing is neutral by activity
        return frozenset()


def _pct(inn: int, sched: int, neutral: int) -> float | None:
    counted = sched - neutral
    return round(inn * 100 / counted, 2) if counted else None


def agent_intervals(ctx, f: Filters, size_ms: int) -> list[dict]:
    """Per agent and interval, for the stored agent-days matching the filters (day, team, agent)."""
    clauses, params = _where(ctx, f)
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    conn = ctx.store.reader
    days = conn.execute(f"SELECT worker_sid, day, agent, team, as_of_ms, stale FROM adherence{where} "
                        "ORDER BY day, team, agent", params).fetchall()
    value = ctx.store.get_meta("observed_from")
    monitoring_from = int(value) if value is not None else None
    neutral_acts = _neutral_activities(ctx)
    sched = ctx.schedules.current
    one = timedelta(days=1)
    out: list[dict] = []
    for row in days:
        sid, day = row["worker_sid"], date.fromisoformat(row["day"])
        key, team, tz, _ = agent_info(ctx, sid)
        lo = local_midnight_ms(day - 2 * one, tz)
        segs = sched.segments(key, lo, local_midnight_ms(day + 3 * one, tz)) \
            if sched is not None and sched.agent(key) is not None else []
        around = day_segments(monitored(segs, monitoring_from), day)
        w0, w1 = day_window(day, tz, around)
        excs = [(s, e, bool(a), imp) for s, e, a, imp in conn.execute(
            "SELECT start_ms, end_ms, approved, impact FROM exceptions WHERE worker_sid = ? AND start_ms < ? "
            "AND (end_ms IS NULL OR end_ms > ?) ORDER BY start_ms", (sid, w1, w0))]
        sets = day_sets(day, around, excs, row["as_of_ms"], periods=covering(conn, sid, team, w0, w1),
                        neutral_activities=neutral_acts)
        if not sets.scheduled:
            continue
        t = local_midnight_ms(day, tz)
        end = sets.scheduled[-1][1]
        while t < end:
            bucket = [(t, t + size_ms)]
            s_ms = _total(_intersect(sets.scheduled, bucket))
            if s_ms:
                o = _total(_intersect(sets.out, bucket))
                n = _total(_intersect(sets.neutral, bucket))
                a = _total(_intersect(sets.approved, bucket))
                out.append({
                    "date": row["day"], "agent": row["agent"], "worker_sid": sid, "team": row["team"],
                    "start": iso(t), "end": iso(t + size_ms), "local_start": local_text(t, tz, seconds=False),
                    "utc_offset": "UTC" + offset_text(t, tz),  # "-05:00" alone reads as a formula to a spreadsheet
                    "scheduled_seconds": seconds(s_ms), "in_adherence_seconds": seconds(s_ms - o - n),
                    "out_of_adherence_seconds": seconds(o), "neutral_seconds": seconds(n),
                    "approved_seconds": seconds(a), "adherence_percent": _pct(s_ms - o - n, s_ms, n),
                    "stale": bool(row["stale"]),
                    "_ms": (s_ms, s_ms - o - n, o, n, a),
                })
            t += size_ms
    return out


def team_intervals(rows: list[dict]) -> list[dict]:
    """Sums of the agents' intervals per team, day and interval (keyed by the interval's UTC start)."""
    acc: dict[tuple, dict] = {}
    for r in rows:
        k = (r["date"], r["team"], r["start"])
        t = acc.get(k)
        if t is None:
            t = acc[k] = {"date": r["date"], "team": r["team"], "agents": 0, "start": r["start"], "end": r["end"],
                          "local_start": r["local_start"], "utc_offset": r["utc_offset"], "_ms": [0, 0, 0, 0, 0]}
        t["agents"] += 1
        for i, v in enumerate(r["_ms"]):
            t["_ms"][i] += v
    out = []
    for k in sorted(acc, key=lambda k: (k[0], k[1] is None, k[1] or "", k[2])):
        t = acc[k]
        s_ms, i_ms, o, n, a = t.pop("_ms")
        out.append({**t, "scheduled_seconds": seconds(s_ms), "in_adherence_seconds": seconds(i_ms),
                    "out_of_adherence_seconds": seconds(o), "neutral_seconds": seconds(n),
                    "approved_seconds": seconds(a), "adherence_percent": _pct(i_ms, s_ms, n)})
    return out


def public(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "_ms"} for r in rows]
