"""The board's table mode for a large center: one compact row per agent, sorted, filtered and paged by the
server, with a cheap poll.

``/api/agents`` builds a rich object per agent (channels, every open exception, the day's figures) and at
10,000 agents costs a second or more of CPU and megabytes per poll — per wall screen. Here:

* One snapshot of every agent's row is built at most once per ``SNAPSHOT_MS`` and shared by every client;
  it reads only what a row shows (the tracker's current state, one grouped query for open exceptions, one
  for today's percentages, the segment in force) and caches the roster's per-agent facts per schedule
  version.
* Each row carries instants, not durations (``since``, ``out_since``): the browser counts the seconds, so a
  row changes only when the agent's state does.
* The snapshot's ``cursor`` moves only when some row changed (rows are compared with the previous
  snapshot). A page's ETag is the cursor with the request's filters, sort, page and the caller's scope:
  an unchanged page is a ``304`` with no body and no sorting done.
"""

from __future__ import annotations

import hashlib
import threading
import time

from ..timeutil import iso, local_date

SNAPSHOT_MS = 1000
SORTS = ("out", "name", "team", "state", "pct")


class TableSnapshot:
    def __init__(self):
        self.lock = threading.Lock()
        self.built_at = 0.0
        self.rows: list[dict] = []
        self.cursor = 0
        self._info: dict = {}
        self._info_key = None

    def _roster_info(self, engine) -> dict:
        """worker SID → (key, name, team, zone), recomputed when the schedules change."""
        sched = engine.schedules.current
        key = (id(sched), engine.schedules.version)
        if key != self._info_key:
            info = {}
            if sched is not None:
                for a in sched.agents.values():
                    info[a.worker_sid] = (a.key, a.name or a.key, a.team, sched.tz(a.key))
            self._info, self._info_key = info, key
        return self._info

    def get(self, engine) -> tuple[int, list[dict]]:
        with self.lock:
            if time.monotonic() - self.built_at >= SNAPSHOT_MS / 1000:
                rows = build_rows(engine, self._roster_info(engine))
                if rows != self.rows:
                    self.cursor += 1
                    self.rows = rows
                self.built_at = time.monotonic()
            return self.cursor, self.rows


def build_rows(engine, info: dict) -> list[dict]:
    now = engine.clock.now_ms()
    sched = engine.schedules.current
    current = engine.tracker.all_current()
    conn = engine.store.reader
    default_tz = None
    sids = dict.fromkeys(info)
    for sid in current:
        sids.setdefault(sid, None)
    opened: dict[str, tuple] = {}
    for sid, n, out_since, ids in conn.execute(
            "SELECT worker_sid, COUNT(*), MIN(CASE WHEN approved = 0 THEN start_ms END), GROUP_CONCAT(id) "
            "FROM exceptions WHERE end_ms IS NULL GROUP BY worker_sid"):
        opened[sid] = (n, out_since, sorted(int(i) for i in ids.split(",")))
    days: dict = {}
    rows = []
    for sid in sids:
        meta = info.get(sid)
        if meta is None:
            if default_tz is None:
                from ..timeutil import zone

                default_tz = zone(engine.config.timezone)
            key, name, team, tz = sid, sid, None, default_tz
        else:
            key, name, team, tz = meta
        day = days.get(tz)
        if day is None:
            day = days[tz] = local_date(now, tz).isoformat()
        cur = current.get(sid)
        seg = sched.at(key, now) if meta is not None and sched is not None else None
        n, out_since, ids = opened.get(sid, (0, None, []))
        rows.append({
            "agent": key, "name": name, "team": team, "worker_sid": sid,
            "activity": cur.snapshot.activity if cur else None,
            "task_state": cur.snapshot.task if cur else None,
            "since": cur.since_ms if cur else None,
            "scheduled_activity": seg.activity if seg else None,
            "scheduled_until": seg.end if seg else None,
            "in_adherence": out_since is None,
            "out_since": out_since,
            "open_exceptions": n,
            "open_exception_ids": ids,  # what the row's "acknowledge" acknowledges
            "day": day,
            "today_percent": None,
        })
    by_key: dict[tuple, dict] = {(r["worker_sid"], r["day"]): r for r in rows}
    wanted = sorted({r["day"] for r in rows})
    if wanted:
        for sid, d, pct in conn.execute(
                f"SELECT worker_sid, day, adherence_percent FROM adherence WHERE day IN ({','.join('?' * len(wanted))})",
                wanted):
            r = by_key.get((sid, d))
            if r is not None:
                r["today_percent"] = None if pct is None else round(pct, 2)
    return rows


def public_row(r: dict) -> dict:
    """A row as sent: instants as ISO text (the browser counts the seconds)."""
    return {**r, "since": iso(r["since"]), "out_since": iso(r["out_since"]),
            "scheduled_until": iso(r["scheduled_until"])}


def _sort_key(sort: str):
    big = 1 << 62
    if sort == "out":  # longest out of adherence first, then those out of schedule... then by name
        return lambda r: (r["out_since"] is None, r["out_since"] or big, r["open_exceptions"] == 0,
                          (r["team"] or "").lower(), str(r["name"]).lower(), r["worker_sid"])
    if sort == "pct":
        return lambda r: (r["today_percent"] is None, r["today_percent"] if r["today_percent"] is not None else 0,
                          str(r["name"]).lower(), r["worker_sid"])
    if sort == "state":
        return lambda r: (r["activity"] is None, r["activity"] or "", r["since"] or big, str(r["name"]).lower())
    if sort == "team":
        return lambda r: (r["team"] is None, (r["team"] or "").lower(), str(r["name"]).lower(), r["worker_sid"])
    return lambda r: (str(r["name"]).lower(), r["worker_sid"])


def select(rows: list[dict], *, teams: frozenset | None, team: str | None, q: str | None,
           out_only: bool | None, sort: str) -> list[dict]:
    """The caller's rows (scope), filtered and sorted."""
    if teams is not None:
        rows = [r for r in rows if r["team"] in teams]
    if team:
        rows = [r for r in rows if r["team"] == team]
    if q:
        needle = q.lower()
        rows = [r for r in rows if needle in str(r["name"]).lower() or needle in r["agent"].lower()
                or needle in r["worker_sid"].lower()]
    if out_only is not None:
        rows = [r for r in rows if (not r["in_adherence"]) == out_only]
    return sorted(rows, key=_sort_key(sort))


def etag(cursor: int, parts: tuple) -> str:
    return '"' + hashlib.sha1(repr((cursor, parts)).encode()).hexdigest()[:20] + '"'
