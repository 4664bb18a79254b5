"""An agent's day on one time axis: scheduled segments, actual activity, task state, exceptions, period
approvals, the day's figures and its approval history.

One function (``agent_day``) serves the page (``/agents/<agent>``), the JSON (``/api/agents/<agent>/timeline``)
and the CLI (``adherence timeline``), so the three never disagree. It reads only what is stored (journal,
exceptions, adherence rows, periods, audit) and the schedule in force: it works from ``serve`` and from a
CLI process alike.

The axis is the day's window (``evaluate.day_window``): local midnight to the next local midnight — 23 hours
on the spring DST day, 25 on the autumn one — stretched to the day's own segments (an overnight shift) and
never over the neighbouring days' segments. Every instant is shown in the agent's local time with its UTC
offset, and the offsets in force are listed, so a DST change inside the day is visible.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone as dt_timezone
from zoneinfo import ZoneInfo

from .approvals import audit, list_periods, periods_by_exception
from .evaluate import day_window
from .policy import day_segments
from .results import adherence_row, exception_row
from .state import journal_timeline
from .timeutil import iso, zone

HOUR_MS = 3_600_000


def agent_info(ctx, worker_sid: str) -> tuple[str, str | None, ZoneInfo, str | None]:
    """(key, team, zone, name) from the schedule in force; an agent not in the roster keeps its SID."""
    sched = ctx.schedules.current
    a = sched.agent(worker_sid) if sched is not None else None
    if a is None:
        return worker_sid, None, zone(ctx.config.timezone), None
    return a.key, a.team, sched.tz(a.key), a.name


def offset_text(ms: int, tz: ZoneInfo) -> str:
    off = datetime.fromtimestamp(ms / 1000, tz).utcoffset() or timedelta(0)
    minutes = int(off.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def local_text(ms: int, tz: ZoneInfo, seconds: bool = True) -> str:
    """``14:05:09`` local; the date too when it is not the shown day (an overnight shift)."""
    dt = datetime.fromtimestamp(ms / 1000, tz)
    return dt.strftime("%H:%M:%S" if seconds else "%H:%M")


def _local_iso(ms: int, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(ms / 1000, tz).isoformat(timespec="milliseconds")


def _runs(snaps, lo: int, hi: int, key) -> list[dict]:
    """Consecutive snapshots with the same value merged into [start, end) runs, clipped to [lo, hi)."""
    out: list[dict] = []
    for i, s in enumerate(snaps):
        a = max(s.at, lo)
        b = min(snaps[i + 1].at if i + 1 < len(snaps) else hi, hi)
        if b <= a:
            continue
        v = key(s)
        if out and out[-1]["value"] == v and out[-1]["end_ms"] == a:
            out[-1]["end_ms"] = b
        else:
            out.append({"value": v, "start_ms": a, "end_ms": b})
    return out


def agent_day(ctx, worker_sid: str, day: date) -> dict:
    """Everything about one agent's day, times in UTC (``start``) and local (``start_local``, with offset)."""
    key, team, tz, name = agent_info(ctx, worker_sid)
    now = ctx.clock.now_ms()
    sched = ctx.schedules.current
    lo_guess = int(datetime(day.year, day.month, day.day, tzinfo=dt_timezone.utc).timestamp() * 1000) - 2 * 86_400_000
    segs = []
    if sched is not None and sched.agent(key) is not None:
        segs = sched.segments(key, lo_guess, lo_guess + 5 * 86_400_000)
    around = day_segments(segs, day)
    w0, w1 = day_window(day, tz, around)
    upto = min(w1, now)

    def span(a: int, b: int | None) -> dict:
        return {"start": iso(a), "end": iso(b), "start_local": _local_iso(a, tz),
                "end_local": None if b is None else _local_iso(b, tz)}

    scheduled = [{"activity": s.activity, **span(s.start, s.end)}
                 for s in sorted(around, key=lambda s: s.start) if s.end > w0 and s.start < w1]
    snaps = journal_timeline(ctx.store.reader, worker_sid, w0, upto) if upto > w0 else []
    activity = [{"activity": r["value"], **span(r["start_ms"], r["end_ms"])}
                for r in _runs(snaps, w0, upto, lambda s: s.activity)]
    task = [{"task_state": r["value"], **span(r["start_ms"], r["end_ms"])}
            for r in _runs(snaps, w0, upto, lambda s: s.task)]

    exc = [exception_row(r, now) for r in ctx.store.reader.execute(
        "SELECT * FROM exceptions WHERE worker_sid = ? AND start_ms < ? AND (end_ms IS NULL OR end_ms > ?) "
        "ORDER BY start_ms, id", (worker_sid, w1, w0))]
    periods_by_exception(ctx, exc)
    for e in exc:
        e["start_local"] = _local_iso(_ms(e["start"]), tz)
        e["end_local"] = _local_iso(_ms(e["end"]), tz) if e["end"] else None

    row = ctx.store.reader.execute("SELECT * FROM adherence WHERE worker_sid = ? AND day = ?",
                                   (worker_sid, day.isoformat())).fetchone()
    offsets = []
    t = w0
    while t < w1:  # transitions fall on whole hours from local midnight
        off = offset_text(t, tz)
        if not offsets or offsets[-1]["offset"] != off:
            offsets.append({"from": iso(t), "offset": off})
        t += HOUR_MS
    ticks = []
    t = w0 + (-w0) % HOUR_MS  # whole UTC hours are whole local hours in every zone with whole-hour offsets
    while t <= w1:
        ticks.append({"at": iso(t), "label": local_text(t, tz, seconds=False)})
        t += HOUR_MS
    return {
        "agent": key,
        "name": name or key,
        "worker_sid": worker_sid,
        "team": team,
        "timezone": tz.key,
        "date": day.isoformat(),
        "start": iso(w0),
        "end": iso(w1),
        "start_local": _local_iso(w0, tz),
        "end_local": _local_iso(w1, tz),
        "hours": round((w1 - w0) / HOUR_MS, 3),
        "utc_offsets": offsets,
        "ticks": ticks,
        "as_of": iso(now),
        "scheduled": scheduled,
        "activity": activity,
        "task": task,
        "exceptions": exc,
        "periods": list_periods(ctx, w0, w1, worker_sid=worker_sid, team=team),
        "figures": adherence_row(row) if row is not None else None,
        "history": audit(ctx, worker_sid=worker_sid, day=day.isoformat()),
    }


def _ms(text: str) -> int:
    from .timeutil import parse_instant_ms

    return parse_instant_ms(text)


def render_text(t: dict) -> str:
    """The CLI's rendering: one section per row of the page, local times with the UTC offset."""
    tz = ZoneInfo(t["timezone"])
    offsets = ", ".join(f"{o['offset']} from {local_text(_ms(o['from']), tz, False)}" for o in t["utc_offsets"])
    lines = [f"{t['name']} ({t['agent']}, {t['worker_sid']}, team {t['team'] or '-'}) — {t['date']}",
             f"{t['timezone']}, UTC{offsets if len(t['utc_offsets']) > 1 else t['utc_offsets'][0]['offset']}; "
             f"day window {local_text(_ms(t['start']), tz)}–{local_text(_ms(t['end']), tz)} ({t['hours']:g} h)"]

    def when(x: dict) -> str:
        a = local_text(_ms(x["start"]), tz)
        b = "open" if not x["end"] else local_text(_ms(x["end"]), tz)
        return f"{a}–{b}"

    def section(title: str, rows: list[str]) -> None:
        lines.append("")
        lines.append(title)
        lines.extend("  " + r for r in rows) if rows else lines.append("  (none)")

    section("Scheduled", [f"{when(s)}  {s['activity']}" for s in t["scheduled"]])
    section("Activity", [f"{when(s)}  {s['activity']}" for s in t["activity"]])
    section("Task", [f"{when(s)}  {s['task_state']}" for s in t["task"] if s["task_state"] != "none"])
    section("Exceptions", [
        f"{when(e)}  #{e['id']} {e['rule']} ({e['severity']}{', neutral' if e.get('impact') == 'neutral' else ''})  "
        + ("approved" + (f" by {e['approved_by']}" if e["approved_by"] else "") if e["approved"]
           else f"excused by period #{', #'.join(map(str, e['excused_by']))}" if e.get("excused_by") else "not approved")
        for e in t["exceptions"]])
    section("Period approvals", [
        f"{when(p)}  #{p['id']} {p['scope']} {p['target'] or ''} {p['mode']}: {p['reason']}"
        + (" (withdrawn)" if p["withdrawn"] else "") for p in t["periods"]])
    f = t["figures"]
    if f:
        section("Figures", [
            f"scheduled {f['scheduled_seconds']}s, in {f['in_adherence_seconds']}s, out {f['out_of_adherence_seconds']}s, "
            f"approved {f['approved_seconds']}s, neutral {f['neutral_seconds']}s; adherence "
            + ("-" if f["adherence_percent"] is None else f"{f['adherence_percent']}%")
            + (" (stale)" if f["stale"] else "")])
    section("History", [f"{local_text(_ms(h['at']), tz)}  {h['by'] or '?'} {h['action']}"
                        + (f" #{h['exception_id']}" if h["exception_id"] else f" period #{h['period_id']}")
                        + (f": {h['note']}" if h["note"] else "") for h in t["history"]])
    return "\n".join(lines) + "\n"
