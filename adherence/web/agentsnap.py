"""``/api/agents`` served from one shared, incrementally kept snapshot.

The card board polls ``/api/agents`` every few seconds from every screen; building every agent's row from
scratch (roster facts, the segment in force, open exceptions, today's figures, JSON encoding) cost ~0.5 s of
CPU at 10,000 agents. Here each agent's row is kept as JSON text and re-encoded only when something it shows
changed:

* roster facts (key, name, team, zone, schedule problem) and the row order: once per schedules version;
* the live state: agents whose tracker ``Current`` changed (the tracker's ``applied`` counter says whether
  anything did);
* the segment in force: kept until it ends (or, unscheduled, until the next segment starts);
* open exceptions and today's figures: re-read when a tick ran, an audit row was written (approvals,
  period approvals), the set of open exceptions changed, or 15 s passed; only agents whose rows differ are
  re-encoded.

The two clock-derived numbers of a row (``seconds_in_state`` and an open exception's ``duration_seconds``)
are holes in the kept text, filled per request from the instant they count from, so every answer is exact
at its ``now`` without re-encoding a row. ``cursor`` moves whenever some row changed for another reason than
the clock; the ETag (weak: the counters move with ``now``) is the cursor with the request's filters, page and
the caller's scope, so an unchanged board is a ``304``.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from dataclasses import dataclass, field

from ..results import seconds
from ..timeutil import iso, local_date, zone

DB_MAX_AGE_MS = 15_000  # open exceptions and today's figures are re-read at least this often (clock time)
UNSCHEDULED_HORIZON_MS = 6 * 3_600_000
_HOLE = "\x00hole:" + uuid.uuid4().hex  # a value no feed or roster can hold: where a counter goes
_HOLE_JSON = json.dumps(_HOLE)
_DUMPS = json.JSONEncoder(ensure_ascii=True, separators=(",", ":")).encode
_TODAY = "\x00today"
_TODAY_TAIL = ',"today":' + json.dumps(_TODAY) + "}"
TODAY_FIELDS = ("date", "scheduled_seconds", "in_adherence_seconds", "out_of_adherence_seconds", "approved_seconds",
                "adherence_percent", "conformance_percent", "exceptions", "neutral_seconds")


def _json_number(v) -> str:
    return "null" if v is None else repr(v)


def _today_json(r: tuple) -> bytes:
    """Today's figures of an adherence row (worker_sid, day, scheduled_ms, in, out, approved, adherence %,
    conformance %, exceptions, neutral_ms) as ``adherence_row`` gives them, in JSON."""
    _sid, day, scheduled, inn, out, approved, adh, conf, exceptions, neutral = r
    values = (seconds(scheduled), seconds(inn), seconds(out), seconds(approved),
              None if adh is None else round(adh, 2), None if conf is None else round(conf, 2),  # as results._pct
              exceptions, seconds(neutral))
    return ('{"date":' + json.dumps(day) + "," + ",".join(
        f'"{k}":{_json_number(v)}' for k, v in zip(TODAY_FIELDS[1:], values)) + "}").encode("ascii")


def _channels(channels: tuple) -> list[dict]:
    out = []
    for ch in channels or ():
        name, available, free, capacity, task, reservations = (*ch, None, None, None, None, None, None)[:6]
        out.append({"name": name, "available": None if available is None else bool(available),
                    "available_capacity": free, "capacity": capacity, "task_state": task,
                    "reservations": reservations or 0})
    return out


@dataclass
class Row:
    sid: str
    agent: str
    team: str | None
    order: tuple
    slots: list = field(default_factory=list)  # the row's JSON (ASCII bytes) cut at its holes, None at each hole
    live: list = field(default_factory=list)  # the same up to '"today":' (what changes rarely)
    today: bytes = b"null"  # today's figures as JSON
    kinds: list = field(default_factory=list)  # per hole: 0 = seconds_in_state, 1 = an open exception's duration
    bases: list = field(default_factory=list)  # per hole: the instant it counts from
    in_adherence: bool = True
    inputs: tuple = field(default=())


class AgentsSnapshot:
    """Every agent's row as the board shows it, kept per change; one per app (``app.extensions``)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.cursor = 0
        self._static_key = None
        self._static: dict[str, tuple] = {}  # sid -> (key, name, team, tz, tzname, in_roster, problem)
        self._rows: dict[str, Row] = {}
        self._order: list[Row] = []
        self._order_dirty = True
        self._applied = None
        self._cur: dict[str, tuple] = {}  # sid -> (Current, since_ms) last seen
        self._cur_obj: dict = {}  # sid -> Current last seen (compared by identity first)
        self._cur_since: dict[str, int] = {}
        self._teams: list[str] = []
        self._segs: dict[str, tuple] = {}  # sid -> (segment, valid until)
        self._seg_expiry = 0
        self._days: dict = {}  # zone -> local ISO day
        self._zones: set | None = None  # the zones of the agents kept
        self._db_key = None
        self._db_at = None
        self._open: dict[str, tuple] = {}
        self._figs: dict[tuple, tuple] = {}
        self._fig_days: list = []
        self._fig_full_at = None
        self._fig_as_of = None
        self._last_now = None
        self._selections: dict = {}
        self._pages: dict = {}

    # -- keeping the rows --------------------------------------------------------------------------

    def refresh(self, engine, now: int) -> None:
        """Bring every row up to ``now`` (call with the lock held)."""
        changed: set[str] = set()
        full = False
        sched = engine.schedules.current
        static_key = (id(sched), getattr(engine.schedules, "version", None), id(engine.runner))
        if static_key != self._static_key:
            self._load_static(engine, sched)
            self._static_key = static_key
            full = True
        if self._last_now is not None and now < self._last_now:
            full = True  # the clock went back (tests, a corrected clock): nothing kept is known to hold
        self._last_now = now

        tracker = engine.tracker
        applied = getattr(tracker, "applied", None)
        if full or applied is None or applied != self._applied:
            current = tracker.all_current()
            prev, since = self._cur_obj, self._cur_since
            moved = [sid for sid, cur in current.items() if prev.get(sid) is not cur or since.get(sid) != cur.since_ms]
            for sid in moved:
                cur, old = current[sid], prev.get(sid)
                if old is None or since.get(sid) != cur.since_ms or old.snapshot != cur.snapshot \
                        or old.channels != cur.channels:
                    changed.add(sid)
                prev[sid], since[sid] = cur, cur.since_ms
                self._cur[sid] = (cur, cur.since_ms)
                if sid not in self._static:
                    self._static[sid] = self._stray(engine, sid)
                    self._order_dirty = True
                    self._zones = None
            if len(prev) != len(current):
                for sid in [s for s in prev if s not in current]:
                    del prev[sid], since[sid], self._cur[sid]
                    changed.add(sid)
            self._applied = applied

        days_changed = self._load_days(now)
        if days_changed:
            full = True
        if self._db_stale(engine, now) or full:
            changed |= self._load_db(engine, now)

        if full:
            self._segs = {}
            self._seg_expiry = 0
        if now >= self._seg_expiry:
            changed |= self._load_segments(sched, now)

        sids = self._static.keys() if full else changed
        rows_changed = False
        for sid in list(sids):
            if sid not in self._static:
                continue
            if self._encode(engine, sid):
                rows_changed = True
        if self._order_dirty:
            self._order = sorted(self._rows.values(), key=lambda r: r.order)
            self._teams = sorted({r.team for r in self._order if r.team})
            self._order_dirty = False
            rows_changed = True
        if rows_changed:
            self.cursor += 1
            self._selections = {}

    def _load_static(self, engine, sched) -> None:
        problem = getattr(engine.schedules, "agent_problem", None)
        static = {}
        if sched is not None:
            for a in sched.agents.values():
                tz = sched.tz(a.key)
                static[a.worker_sid] = (a.key, a.name or a.key, a.team, tz, str(tz.key), True,
                                        problem(a.key) if problem else None)
        for sid in self._cur:
            if sid not in static:
                static[sid] = None
        self._static = static
        for sid, v in static.items():
            if v is None:
                static[sid] = self._stray(engine, sid)
        self._rows = {}
        self._order_dirty = True
        self._zones = None

    def _stray(self, engine, sid: str) -> tuple:
        """A worker seen in the feed but not in the roster."""
        key, team, tz = engine.runner.agent_info(sid)
        problem = getattr(engine.schedules, "agent_problem", None)
        in_roster = False
        sched = engine.schedules.current
        if sched is not None and sched.agent(sid) is not None:
            in_roster = True
        return (key, key, team, tz, str(tz.key), in_roster, problem(sid) if problem else None)

    def _load_days(self, now: int) -> bool:
        if self._zones is None:
            self._zones = {v[3] for v in self._static.values()}
        days = {tz: local_date(now, tz).isoformat() for tz in self._zones}
        if days != self._days:
            self._days = days
            return True
        return False

    def _db_stale(self, engine, now: int) -> bool:
        conn = engine.store.reader
        last_tick = conn.execute("SELECT value FROM meta WHERE key = 'last_tick_ms'").fetchone()
        audit = conn.execute("SELECT MAX(id) FROM audit").fetchone()
        opened = conn.execute("SELECT COUNT(*), MAX(id), TOTAL(id), MAX(updated_ms) FROM exceptions "
                              "WHERE end_ms IS NULL").fetchone()
        key = (last_tick[0] if last_tick else None, audit[0], tuple(opened), id(engine.runner.last_tick))
        if key != self._db_key or self._db_at is None or not 0 <= now - self._db_at < DB_MAX_AGE_MS:
            self._db_key = key
            return True
        return False

    def _load_db(self, engine, now: int) -> set[str]:
        conn = engine.store.reader
        self._db_at = now
        changed: set[str] = set()
        opened: dict[str, list] = {}
        for r in conn.execute("SELECT worker_sid, id, rule, severity, start_ms, approved, scheduled_activity, "
                              "actual_activity, task_state FROM exceptions WHERE end_ms IS NULL "
                              "ORDER BY start_ms, id"):
            opened.setdefault(r[0], []).append(tuple(r)[1:])
        new_open = {sid: tuple(v) for sid, v in opened.items()}
        for sid in set(new_open) | set(self._open):
            if new_open.get(sid) != self._open.get(sid):
                changed.add(sid)
        self._open = new_open
        wanted = sorted(set(self._days.values()))
        # Rows written since the last read (as_of_ms: when each was computed) unless the days changed or a
        # minute passed: then every row of the days, and rows gone are noticed too.
        full = wanted != self._fig_days or self._fig_full_at is None or not 0 <= now - self._fig_full_at < 60_000
        figs: dict[tuple, tuple] = {} if full else self._figs
        since = None if full else self._fig_as_of
        if wanted:
            cur = conn.cursor()
            cur.row_factory = None  # plain tuples: compared with the last read as they come
            cur.execute(f"SELECT worker_sid, day, scheduled_ms, in_adherence_ms, out_of_adherence_ms, approved_ms, "
                        f"adherence_percent, conformance_percent, exceptions, neutral_ms, as_of_ms FROM adherence "
                        f"WHERE day IN ({','.join('?' * len(wanted))})"
                        + ("" if since is None else " AND as_of_ms >= ?"), [*wanted, *([] if since is None else [since])])
            old_figs = self._figs
            high = self._fig_as_of if not full else None
            for r in cur:
                k = (r[0], r[1])
                high = r[10] if high is None else max(high, r[10])
                r = r[:10]
                old = old_figs.get(k)
                if old is not None and old[0] == r:
                    figs[k] = old
                else:
                    figs[k] = (r, _today_json(r))
                    changed.add(k[0])
            self._fig_as_of = high
        if full:
            for k in self._figs:
                if k not in figs:
                    changed.add(k[0])
            self._fig_days, self._fig_full_at = wanted, now
        self._figs = figs
        return changed

    def _load_segments(self, sched, now: int) -> set[str]:
        changed: set[str] = set()
        expiry = now + UNSCHEDULED_HORIZON_MS
        for sid, st in self._static.items():
            if not st[5] or sched is None:
                continue
            kept = self._segs.get(sid)
            if kept is not None and now < kept[1]:
                expiry = min(expiry, kept[1])
                continue
            key = st[0]
            seg = sched.at(key, now)
            if seg is not None:
                until = seg.end
            else:
                until = now + UNSCHEDULED_HORIZON_MS
                for s in sched.segments(key, now, until):
                    if s.start > now:
                        until = min(until, s.start)
            if kept is None or kept[0] != seg:
                changed.add(sid)
            self._segs[sid] = (seg, until)
            expiry = min(expiry, until)
        self._seg_expiry = expiry
        return changed

    def _encode(self, engine, sid: str) -> bool:
        key, name, team, tz, tzname, in_roster, problem = self._static[sid]
        kept = self._cur.get(sid)
        cur = kept[0] if kept else None
        seg = self._segs.get(sid, (None, 0))[0] if in_roster else None
        day = self._days.get(tz) or local_date(self._last_now, tz).isoformat()
        opened = self._open.get(sid, ())
        fig = self._figs.get((sid, day))
        today = b"null" if fig is None else fig[1]
        cur_sig = None if cur is None else (cur.snapshot, cur.channels, kept[1])
        inputs = (cur_sig, seg, opened, day)
        row = self._rows.get(sid)
        if row is not None and row.inputs == inputs:
            if row.today is today:
                return False
            row.today = today  # only today's figures moved (every tick): the rest of the row is kept
            row.slots = [*row.live[:-1], row.live[-1] + today + b"}"]
            return True
        holes = []
        if cur is not None:
            holes.append((0, kept[1]))
        for e in opened:
            holes.append((1, e[3]))
        doc = {
            "agent": key,
            "name": name,
            "worker_sid": sid,
            "team": team,
            "timezone": tzname,
            "in_roster": in_roster,
            "seen": cur is not None,
            "activity": cur.snapshot.activity if cur else None,
            "task_state": cur.snapshot.task if cur else None,
            "channels": _channels(cur.channels) if cur else [],
            "since": iso(kept[1]) if cur else None,
            "seconds_in_state": _HOLE if cur else None,
            "last_record_at": iso(cur.snapshot.at) if cur else None,
            "scheduled_activity": seg.activity if seg else None,
            "scheduled_until": iso(seg.end) if seg else None,
            "schedule_problem": problem,
            "in_adherence": not any(not e[4] for e in opened),
            "open_exceptions": [
                {"id": e[0], "rule": e[1], "severity": e[2], "start": iso(e[3]), "duration_seconds": _HOLE,
                 "approved": bool(e[4]), "scheduled_activity": e[5], "actual_activity": e[6], "task_state": e[7]}
                for e in opened
            ],
            "today": _TODAY,  # last: cut off below, today's JSON is kept apart (it changes every tick)
        }
        live: list = []
        text = _DUMPS(doc)
        assert text.endswith(_TODAY_TAIL)
        for i, part in enumerate(text[:-len(_TODAY_TAIL) + len(',"today":')].split(_HOLE_JSON)):
            if i:
                live.append(None)
            live.append(part.encode("ascii"))
        if row is None:
            row = Row(sid, key, team, (team is None, team or "", str(name).lower(), sid))
            self._rows[sid] = row
            self._order_dirty = True
        row.live, row.today, row.in_adherence, row.inputs = live, today, doc["in_adherence"], inputs
        row.slots = [*live[:-1], live[-1] + today + b"}"]
        row.kinds, row.bases = [k for k, _b in holes], [b for _k, b in holes]
        return True

    # -- answering ---------------------------------------------------------------------------------

    def select(self, scope: tuple | None, team: str | None, agent: str | None,
               out: bool | None) -> tuple[list[Row], list[str], bool]:
        """The caller's rows (scope: sorted team names, then filters), the teams in scope, and whether
        ``agent`` is known."""
        key = (scope, team, agent, out)
        hit = self._selections.get(key)
        if hit is None:
            rows = self._order if scope is None else [r for r in self._order if r.team in scope]
            teams = self._teams if scope is None else [t for t in self._teams if t in scope]
            known = agent is None or any(agent in (r.agent, r.sid) for r in rows)
            if team:
                rows = [r for r in rows if r.team == team]
            if agent:
                rows = [r for r in rows if agent in (r.agent, r.sid)]
            if out is not None:
                rows = [r for r in rows if r.in_adherence != out]
            hit = self._selections[key] = (rows, teams, known)
        return hit

    def page(self, selection: tuple, rows: list[Row], offset: int, limit: int) -> Page:
        """The page's layout: kept per selection, updated in place for the rows that changed."""
        key = (selection, offset, limit)
        hit = self._pages.get(key)
        chosen = rows[offset:offset + limit]
        if hit is None or (hit[0] != self.cursor and not hit[1].update(chosen)):
            hit = (self.cursor, Page(chosen))
            if len(self._pages) > 64:
                self._pages.clear()
        self._pages[key] = (self.cursor, hit[1])
        return hit[1]


class Page:
    """A page of rows laid out once: the rows' JSON parts (bytes) with a slot per hole. When some rows change
    and the page keeps the same rows in the same order, only those rows' parts are replaced (``update``)."""

    def __init__(self, rows: list[Row]):
        template: list = []
        kinds: list[int] = []
        bases: list[int] = []
        starts: list[int] = []  # per row: where its parts start in the template
        add, more = template.append, template.extend
        for r in rows:
            add(b",")
            starts.append(len(template))
            more(r.slots)
            kinds += r.kinds
            bases += r.bases
        if template:
            template[0] = b""
        self.rows = rows
        self.used = [r.slots for r in rows]  # the parts each row had when laid out
        self.starts = starts
        self.template = template
        self.slots = [i for i, x in enumerate(template) if x is None]
        self.simple = not any(kinds)  # only seconds_in_state holes: one comprehension fills them
        self.kinds = kinds
        self.bases = bases

    def update(self, rows: list[Row]) -> bool:
        """Take the rows' new parts in place; False when the rows or a row's shape changed (lay out again)."""
        if len(rows) != len(self.rows) or any(a is not b for a, b in zip(rows, self.rows)):
            return False
        used, moved = self.used, []
        for i, r in enumerate(rows):
            if r.slots is not used[i]:
                if len(r.slots) != len(used[i]):
                    return False
                moved.append(i)
        if not moved:
            return True
        hole_of = None
        for i in moved:
            r = rows[i]
            start = self.starts[i]
            self.template[start:start + len(r.slots)] = r.slots
            if r.kinds or r.bases:
                if hole_of is None:  # the first hole of each row (only needed when some row has holes)
                    hole_of, n = [], 0
                    for row_slots in used:
                        hole_of.append(n)
                        n += (len(row_slots) - 1) // 2
                h = hole_of[i]
                self.kinds[h:h + len(r.kinds)] = r.kinds
                self.bases[h:h + len(r.bases)] = r.bases
            used[i] = r.slots
        self.simple = not any(self.kinds)
        return True

    def body(self, now: int, head: bytes, tail: bytes) -> bytes:
        """``head`` + the rows, their clock holes filled for ``now`` + ``tail``."""
        if self.simple:
            values = [b"%d" % max(0, (now - b) // 1000) for b in self.bases]
        else:
            values = [b"%d" % max(0, (now - b) // 1000) if k == 0 else _duration(now - b)
                      for k, b in zip(self.kinds, self.bases)]
        out = self.template.copy()
        for i, v in zip(self.slots, values):
            out[i] = v
        return head + b"".join(out) + tail


def _duration(ms: int) -> bytes:
    v = seconds(max(0, ms))
    return b"%d" % v if isinstance(v, int) else repr(v).encode()


def etag(cursor: int, parts: tuple) -> str:
    return hashlib.sha1(repr((cursor, parts)).encode()).hexdigest()[:24]


def snapshot(app) -> AgentsSnapshot:
    return app.extensions.setdefault("adherence.agents", AgentsSnapshot())


def local_today(engine, now: int) -> str:
    return local_date(now, zone(engine.config.timezone)).isoformat()
