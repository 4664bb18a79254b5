"""The evaluation loop's body: load inputs, call the policy, store outputs.

Everything that decides what a result *is* lives in ``policy`` (pure). This
module does I/O only, and what it keeps between ticks is a cache:

* The database records how far stored results reach: ``evaluated_through_id``
  (every journal row up to that id is reflected), each agent's
  ``evaluated_to`` instant (table ``evaluation``), the monitoring start and
  rules version they were computed with. They are written in the same
  transaction as the results that make them true, so any process — ``serve``
  after a restart or a ``kill -9``, ``adherence evaluate``, ``recompute`` —
  starts from what is stored, never from what another process remembered.
* A tick computes with no lock held and writes agents' results in short
  transactions, so webhooks never wait for the evaluator.
* Each agent is evaluated from the earliest instant its inputs changed:
  journal rows above the watermark (any age: late records, a replay by
  another process, records older than monitoring start), its own
  ``next_check`` (a pending condition reaching ``for``, a segment or day
  boundary), a schedule or rule edit (days not yet final), or, for an agent
  never evaluated, monitoring start.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from types import EllipsisType
from zoneinfo import ZoneInfo

from .evaluate import day_figures, day_window
from .explore import sync_roster
from .horizons import DAY_MS, MEMORY_HORIZON_MS, WRITE_BUDGET_S, WRITE_CHUNK_AGENTS
from .metrics import METRICS
from .policy import (Evaluation, day_segments, evaluate_worker, live_from_ms, monitored, plan_work, rules_version,
                     schedule_version)
from .approvals import covering
from .results import ExceptionWriter, save_day
from .state import journal_timeline
from .timeutil import iso, local_date, local_midnight_ms, zone

log = logging.getLogger(__name__)

WATERMARK = "evaluated_through_id"
RESULTS_ORIGIN = "results_monitoring_from"
RESULTS_RULES = "results_rules_version"
LAST_TICK = "last_tick_ms"
# A tick looks at the journal's new rows one by one (to skip those that repeat an agent's state) when there
# are at most this many; more (a first tick after a replay) are only grouped by agent.
REPEATS_CHECKED = 50_000


@dataclass
class TickStats:
    at_ms: int
    agents: int = 0
    exceptions_written: int = 0
    days_written: int = 0
    duration_s: float = 0.0
    longest_write_s: float = 0.0
    reloaded: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "at": iso(self.at_ms),
            "agents": self.agents,
            "exceptions_written": self.exceptions_written,
            "days_written": self.days_written,
            "duration_ms": round(self.duration_s * 1000, 1),
            "longest_write_ms": round(self.longest_write_s * 1000, 1),
            "reloaded": self.reloaded,
        }


class Runner:
    """Evaluates agents and stores results; one evaluation at a time per process."""

    def __init__(self, *, store, tracker, journal, schedules, rules, clock, default_tz: str,
                 interval_ms: int, memory_from_ms: int | None, scheduler_running=lambda: False):
        self.store = store
        self.tracker = tracker
        self.journal = journal
        self.schedules = schedules
        self.rules = rules
        self.clock = clock
        self.default_tz = default_tz
        self.interval_ms = interval_ms
        # the tracker holds every snapshot from here on (None: nothing in memory, read the journal)
        self.memory_from_ms = memory_from_ms
        self._scheduler_running = scheduler_running
        self._lock = threading.Lock()
        # set by Engine.close: a tick in progress stops between agents (what it committed stays valid; the
        # evaluation record is written only with a tick's last chunk, so the next process redoes the rest)
        self.stopping = threading.Event()
        # caches (losing them costs time, never changes a figure)
        self._evaluated_to: dict[str, int] | None = None  # the database's ``evaluation`` table
        self._next_check: dict[str, int | None] = {}
        self._counted: dict[str, dict[int, tuple[int, int]]] = {}  # see _logged_in_counts
        self._counted_for: tuple | None = None
        # where each agent's open exception began at its last evaluation: where the next one starts reading
        # (only a cost: the policy still reads back until no condition held)
        self._holding_since: dict[str, int | None] = {}
        self._versions: tuple | None = None
        self._last_trim_ms = 0
        self.last_tick: TickStats | None = None
        self.last_error: str | None = None
        # told of every exception change inside the write transaction (the notification outbox)
        self.exception_listener = None

    # -- inputs -------------------------------------------------------------
    def agent_info(self, worker_sid: str) -> tuple[str, str | None, ZoneInfo]:
        """(agent key, team, zone) for a worker: roster entry, or the SID and the default zone."""
        sched = self.schedules.current
        agent = sched.agent(worker_sid) if sched is not None else None
        if agent is None:
            return worker_sid, None, zone(self.default_tz)
        return agent.key, agent.team, sched.tz(agent.key)

    def segments(self, agent_key: str, start_ms: int, end_ms: int):
        sched = self.schedules.current
        if sched is None or sched.agent(agent_key) is None:
            return []
        return sched.segments(agent_key, start_ms, end_ms)

    def _roster_workers(self) -> set[str]:
        sched = self.schedules.current
        return {a.worker_sid for a in sched.agents.values()} if sched is not None else set()

    def _reader(self, worker_sid: str, from_journal: bool, conn=None):
        conn = conn if conn is not None else self.store.reader
        mem = self.memory_from_ms
        tracker = self.tracker

        def read(lo: int, hi: int):
            if from_journal or tracker is None or mem is None or lo < mem:
                return journal_timeline(conn, worker_sid, lo, hi)
            return tracker.timeline(worker_sid, lo, hi)

        return read

    def _monitoring_from(self) -> int | None:
        value = self.store.get_meta("observed_from")
        return int(value) if value is not None else None

    def _floor(self) -> int | None:
        value = self.store.get_meta("purged_before")
        return int(value) if value is not None else None

    # -- the unit of work ---------------------------------------------------
    def evaluate(self, worker_sid: str, start_ms: int, now_ms: int, monitoring_from: int | None, *,
                 from_journal: bool = False, day_range: tuple[date, date] | None = None,
                 store_until: int | None = None, floor_ms: int | None | EllipsisType = ...,
                 conn=None, logged_in_known=None, look_from: int | None = None) -> Evaluation:
        """Compute one agent's results (no lock held, nothing written). A tick passes what it read once
        for all its agents (``floor_ms``, ``conn``; ``...``: read it here) and the logged-in counts and
        reading starts it keeps between ticks."""
        key, team, tz = self.agent_info(worker_sid)
        lo = min(start_ms, now_ms) - 3 * DAY_MS
        segs = self.segments(key, lo, now_ms + 2 * DAY_MS)
        ev = evaluate_worker(self._reader(worker_sid, from_journal, conn), worker_sid, segs, self.rules.current,
                             team, tz, monitoring_from, start_ms, now_ms, day_range=day_range,
                             store_until=store_until, floor_ms=self._floor() if floor_ms is ... else floor_ms,
                             logged_in_known=logged_in_known, look_from=look_from)
        if ev.occurrences and ev.occurrences[0].start < lo + DAY_MS:
            # an exception that began long ago: its day is read from the segments around its start
            ev = replace(ev, segments=self.segments(key, ev.occurrences[0].start - 2 * DAY_MS, now_ms + 2 * DAY_MS))
        return ev

    def _store(self, conn, writer: ExceptionWriter, ev: Evaluation, now_ms: int, rules_ver: str) -> int:
        """Write one agent's evaluation (inside the caller's transaction). Returns days written."""
        key, team, tz = self.agent_info(ev.worker_sid)
        writer.replace(conn, ev.worker_sid, key, team, tz, ev.segments, ev.occurrences, ev.replace_from,
                       ev.store_until)
        for d in ev.days:
            w0, w1 = d.window
            intervals = writer.intervals(conn, ev.worker_sid, w0, w1)
            figures = day_figures(d.day, tz, d.segments, intervals, (), now_ms, d.logged_in_ms,
                                  periods=covering(conn, ev.worker_sid, team, w0, w1),
                                  neutral_activities=self.rules.current.neutral_scheduled)
            if d.complete:
                save_day(conn, ev.worker_sid, key, team, figures, now_ms, rules_ver, d.schedule_version)
            elif d.live:  # keeps the versions it had; a new row was computed with the files in force
                save_day(conn, ev.worker_sid, key, team, figures, now_ms, rules_ver, d.schedule_version,
                         overwrite=False)
            else:  # keeps the versions it had; a new row of an older day cannot vouch for the rest of the day
                save_day(conn, ev.worker_sid, key, team, figures, now_ms)
        return len(ev.days)

    def _write(self, evaluations: list[Evaluation], now_ms: int, stats: TickStats, *, record: bool,
               meta: dict | None = None) -> None:
        """Store evaluations in transactions of at most ``WRITE_BUDGET_S`` of work each (webhooks wait for
        the writer); ``meta`` goes with the last, so the evaluation record is never ahead of the results."""
        rules_ver = rules_version(self.rules.current)
        i, n = 0, len(evaluations)
        while True:
            with self.store.write() as conn:
                t0 = time.perf_counter()  # from when the writer is ours: waiting for it holds nobody up
                writer = ExceptionWriter(now_ms, self.exception_listener)
                first = i
                while i < n:
                    stats.days_written += self._store(conn, writer, evaluations[i], now_ms, rules_ver)
                    i += 1
                    if time.perf_counter() - t0 > WRITE_BUDGET_S:
                        break
                if record and i > first:
                    conn.executemany(
                        "INSERT INTO evaluation (worker_sid, evaluated_to_ms) VALUES (?, ?) ON CONFLICT(worker_sid) "
                        "DO UPDATE SET evaluated_to_ms = excluded.evaluated_to_ms",
                        [(ev.worker_sid, now_ms) for ev in evaluations[first:i]])
                if i >= n:
                    for k, v in (meta or {}).items():
                        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (k, str(v)))
                stats.exceptions_written += writer.written
            stats.longest_write_s = max(stats.longest_write_s, time.perf_counter() - t0)
            if i >= n:
                return

    def _load_evaluated_to(self) -> dict[str, int]:
        if self._evaluated_to is None:
            self._evaluated_to = dict(self.store.reader.execute("SELECT worker_sid, evaluated_to_ms FROM evaluation"))
        return self._evaluated_to

    def _changes(self) -> tuple[dict[str, int], int, list | None]:
        """Journal rows not yet reflected in stored results: (worker → earliest instant, highest id, the rows
        themselves when there are few enough to look at one by one, else None)."""
        mark = int(self.store.get_meta(WATERMARK) or 0)
        changes, high = {}, mark
        rows = self.store.reader.execute(
            "SELECT id, worker_sid, at_ms, activity, task FROM journal WHERE id > ? ORDER BY id LIMIT ?",
            (mark, REPEATS_CHECKED + 1)).fetchall()
        if len(rows) <= REPEATS_CHECKED:
            for jid, worker, at, _, _ in rows:
                if at < changes.get(worker, at + 1):
                    changes[worker] = at
                high = max(high, jid)
            return changes, high, rows
        for worker, first, top in self.store.reader.execute(
                "SELECT worker_sid, MIN(at_ms), MAX(id) FROM journal WHERE id > ? GROUP BY worker_sid", (mark,)):
            changes[worker] = first
            high = max(high, top)
        return changes, high, None

    def _without_repeats(self, changes: dict[str, int], rows: list | None) -> dict[str, int]:
        """``changes`` less the rows that repeat the agent's state before them (Flex sends a record for every
        channel or reservation change; two thirds of a busy feed's records change neither activity nor task
        state). Such a row changes nothing an evaluation reads, so the agent's stored results, each exact as
        of its ``as_of``, stay exact and are refreshed on the agent's usual schedule. Told from live state
        (which holds every row up to the watermark once caught up), so only in a process that keeps it."""
        if rows is None or self.tracker is None or self.memory_from_ms is None:
            return changes
        out: dict[str, int] = {}
        repeats = self.tracker.repeats
        floor = self.memory_from_ms
        for _, worker, at, activity, task in rows:
            if at >= floor and repeats(worker, at, activity, task):
                continue
            if at < out.get(worker, at + 1):
                out[worker] = at
        return out

    def _reload_reach(self, now_ms: int, workers, monitoring_from: int | None) -> dict[str, int]:
        """After a schedule or rule edit (or at a process's first tick): which agents' days that are not yet
        final were computed with other inputs, and from where to re-evaluate them."""
        out: dict[str, int] = {}
        if monitoring_from is None:
            return out
        rules_ver = rules_version(self.rules.current)
        rules_changed = self.store.get_meta(RESULTS_RULES) not in (None, rules_ver)
        stored = {}
        for w, day, ver in self.store.reader.execute(
                "SELECT worker_sid, day, schedule_version FROM adherence WHERE day >= ?",
                ((local_date(now_ms, zone("UTC")) - timedelta(days=3)).isoformat(),)):
            stored[(w, day)] = ver
        for w in workers:
            _yield_gil()
            if self.stopping.is_set():
                raise _Stopped()
            key, _, tz = self.agent_info(w)
            live = max(live_from_ms(now_ms, tz), monitoring_from)
            if rules_changed:
                out[w] = live
                continue
            first_day = local_date(live, tz)
            segs = self.segments(key, live - 2 * DAY_MS, now_ms + 2 * DAY_MS)
            d = first_day
            while d <= local_date(now_ms, tz):
                around = monitored(day_segments(segs, d), monitoring_from)
                have = stored.get((w, d.isoformat()))
                if have is None and not any(s.day == d for s in around):
                    d += timedelta(days=1)
                    continue
                if have != schedule_version(around):
                    out[w] = max(day_window(d, tz, around)[0], monitoring_from)
                    break
                d += timedelta(days=1)
        return out

    def stale_days(self, first: date | None = None, last: date | None = None) -> set[tuple[str, str]]:
        """Stored (worker, day) rows computed with other rules or other segments than the files now in force."""
        rules_ver = rules_version(self.rules.current)
        monitoring_from = self._monitoring_from()
        sql = "SELECT worker_sid, day, rules_version, schedule_version FROM adherence"
        args: list = []
        if first is not None:
            sql += " WHERE day >= ? AND day <= ?"
            args = [first.isoformat(), (last or first).isoformat()]
        by_worker: dict[str, list] = {}
        for w, day, rv, sv in self.store.reader.execute(sql + " ORDER BY worker_sid, day", args):
            by_worker.setdefault(w, []).append((date.fromisoformat(day), rv, sv))
        out = set()
        one = timedelta(days=1)
        for w, rows in by_worker.items():
            _yield_gil()
            if self.stopping.is_set():
                raise _Stopped()
            key, _, tz = self.agent_info(w)
            segs = self.segments(key, local_midnight_ms(rows[0][0] - 2 * one, tz),
                                 local_midnight_ms(rows[-1][0] + 3 * one, tz))
            segs = monitored(segs, monitoring_from)
            for d, rv, sv in rows:
                if rv != rules_ver or sv != schedule_version(day_segments(segs, d)):
                    out.add((w, d.isoformat()))
        return out

    def mark_stale(self) -> int:
        """Record in each stored day whether it still matches the files in force (read by the API, CSV,
        board and ``report``; ``recompute --stale`` brings the stale ones up to date)."""
        stale = self.stale_days()
        with self.store.write() as conn:
            conn.execute("UPDATE adherence SET stale = 0 WHERE stale = 1")
        pairs = sorted(stale)
        for i in range(0, len(pairs), 500):
            with self.store.write() as conn:
                conn.executemany("UPDATE adherence SET stale = 1 WHERE worker_sid = ? AND day = ?", pairs[i:i + 500])
        if stale:
            log.warning("%d stored agent-day(s) were computed with other schedules or rules than the files now "
                        "in force; 'adherence recompute --stale' brings them up to date", len(stale),
                        extra={"event": "stale_days"})
        return len(stale)

    # -- the tick -----------------------------------------------------------
    def tick(self, now_ms: int | None = None) -> TickStats:
        """Bring stored results up to ``now`` (default: the clock) for every agent whose inputs changed."""
        try:
            return self._tick(now_ms)
        except _Stopped:
            log.info("evaluation stopped for shutdown; the next start covers the rest")
            return TickStats(self.clock.now_ms() if now_ms is None else now_ms)

    def _tick(self, now_ms: int | None) -> TickStats:
        with self._lock:
            t0 = time.perf_counter()
            now = self.clock.now_ms() if now_ms is None else now_ms
            stats = TickStats(now)
            if self.schedules.check():
                stats.reloaded.append("schedules")
            if self.rules.check():
                stats.reloaded.append("rules")
            if self.rules.current is None:
                raise RuntimeError("no valid rules loaded: " + "; ".join(self.rules.errors))
            changes, high, rows = self._changes()
            if self.journal is not None and self.tracker is not None:
                self.journal.catch_up()  # rows other processes wrote, up to at least ``high``, into memory
                changes = self._without_repeats(changes, rows)
            monitoring_from = self._monitoring_from()
            evaluated_to = self._load_evaluated_to()
            workers = self._roster_workers() | set(evaluated_to) | set(changes)
            reevaluate: dict[str, int] = {}
            stored_origin = self.store.get_meta(RESULTS_ORIGIN)
            if monitoring_from is not None and stored_origin is not None and int(stored_origin) != monitoring_from:
                # a record older than every other moved monitoring start: every timeline changed from there
                reevaluate = {w: min(monitoring_from, int(stored_origin)) for w in workers}
            versions = (self.schedules.version, self.rules.version)
            if versions != self._versions:
                sync_roster(self.store, self.schedules.current)  # names and teams beside the results
                for w, at in self._reload_reach(now, workers, monitoring_from).items():
                    reevaluate[w] = min(at, reevaluate.get(w, at))
                self._versions = versions
            work = plan_work(now, workers, evaluated_to, changes, self._next_check, monitoring_from, reevaluate)
            meta = {WATERMARK: high, LAST_TICK: now, RESULTS_RULES: rules_version(self.rules.current)}
            if monitoring_from is not None:
                meta[RESULTS_ORIGIN] = monitoring_from
            items = sorted(work.items())
            floor = self._floor()
            conn = self.store.reader
            counted = self._logged_in_counts(monitoring_from, floor)
            holding = self._holding_since
            for i in range(0, len(items), WRITE_CHUNK_AGENTS):
                chunk = []
                for w, start in items[i:i + WRITE_CHUNK_AGENTS]:
                    ev = self.evaluate(w, start, now, monitoring_from, floor_ms=floor, conn=conn,
                                       logged_in_known=counted.get(w), look_from=holding.get(w))
                    counted[w] = ev.logged_in_counted(now)
                    holding[w] = ev.holding_since
                    chunk.append(ev)
                    _yield_gil()
                    if self.stopping.is_set():
                        raise _Stopped()
                last = i + WRITE_CHUNK_AGENTS >= len(items)
                self._write(chunk, now, stats, record=True, meta=meta if last else None)
                for ev in chunk:
                    evaluated_to[ev.worker_sid] = now
                    self._next_check[ev.worker_sid] = ev.next_check_ms
            if not items:
                self._write([], now, stats, record=False, meta=meta)
            stats.agents = len(items)
            if stats.reloaded or self.last_tick is None:
                self.mark_stale()  # older days keep what they were computed with, and say so
            self._trim(now)
            stats.duration_s = time.perf_counter() - t0
            self.last_tick = stats
            self.last_error = None
            METRICS.inc("adherence_ticks_total")
            METRICS.set("adherence_tick_duration_seconds", stats.duration_s)
            METRICS.set("adherence_tick_agents", stats.agents)
            return stats

    def _logged_in_counts(self, monitoring_from: int | None, floor: int | None) -> dict:
        """Each agent's logged-in counts from its last evaluation in this process (a cache: the policy uses
        one only where nothing before the new evaluation's start changed, and the figures are the same
        without it). Forgotten when monitoring start or the retention floor moves: both change timelines
        without a journal row above the watermark to say where."""
        if self._counted_for != (monitoring_from, floor):
            self._counted = {}
            self._counted_for = (monitoring_from, floor)
        return self._counted

    def _trim(self, now: int) -> None:
        if self.tracker is None or self.memory_from_ms is None or now - self._last_trim_ms <= 3_600_000:
            return
        horizon = now - MEMORY_HORIZON_MS
        if horizon > self.memory_from_ms:
            self.tracker.trim(horizon)
            self.memory_from_ms = horizon
        self._last_trim_ms = now

    # -- recompute ----------------------------------------------------------
    def recompute(self, first: date, last: date, now_ms: int | None = None, workers: set[str] | None = None,
                  pairs: set[tuple[str, str]] | None = None) -> TickStats:
        """Rebuild exceptions and adherence of days [first, last] from the journal.

        ``pairs`` restricts it to those (worker, day) rows (``recompute --stale``).
        """
        with self._lock:
            t0 = time.perf_counter()
            now = self.clock.now_ms() if now_ms is None else now_ms
            stats = TickStats(now)
            self.schedules.check()
            self.rules.check()
            if self.rules.current is None:
                raise RuntimeError("no valid rules loaded: " + "; ".join(self.rules.errors))
            monitoring_from = self._monitoring_from()
            if pairs is not None:
                targets = sorted({w for w, _ in pairs})
            else:
                targets = sorted(workers or (self._roster_workers() | set(journal_workers(self.store.reader))))
            for i in range(0, len(targets), WRITE_CHUNK_AGENTS):
                chunk = []
                for w in targets[i:i + WRITE_CHUNK_AGENTS]:
                    days = sorted(date.fromisoformat(d) for x, d in pairs if x == w) if pairs else [first, last]
                    for d1, d2 in _runs(days) if pairs else [(first, last)]:
                        ev = self._recompute_one(w, d1, d2, now, monitoring_from)
                        if ev is not None:
                            chunk.append(ev)
                self._write(chunk, now, stats, record=False)
                stats.agents += len({ev.worker_sid for ev in chunk})
            stats.duration_s = time.perf_counter() - t0
            return stats

    def _recompute_one(self, w: str, first: date, last: date, now: int, monitoring_from) -> Evaluation | None:
        key, _, tz = self.agent_info(w)
        segs = self.segments(key, local_midnight_ms(first - timedelta(days=2), tz),
                             local_midnight_ms(last + timedelta(days=3), tz))
        start = day_window(first, tz, day_segments(segs, first))[0]
        end = day_window(last, tz, day_segments(segs, last))[1]
        if start > now:
            return None
        return self.evaluate(w, start, now, monitoring_from, from_journal=True, day_range=(first, last),
                             store_until=end)

    def refresh(self, worker_sid: str, from_ms: int, now_ms: int | None = None) -> None:
        """Re-evaluate one agent from ``from_ms`` now (an approval changed its figures)."""
        with self._lock:
            now = self.clock.now_ms() if now_ms is None else now_ms
            if self.rules.current is None:
                return
            ev = self.evaluate(worker_sid, min(from_ms, now), now, self._monitoring_from())
            self._write([ev], now, TickStats(now), record=False)

    def status(self) -> dict:
        t = self.last_tick
        interval = self.interval_ms
        out: dict = {"ok": self.last_error is None, "interval_seconds": interval / 1000, "last_error": self.last_error}
        if t is not None:
            lag = max(0, self.clock.now_ms() - t.at_ms) / 1000
            out.update({"last_tick": t.as_dict(), "lag_seconds": round(lag, 3)})
            # stalled: nothing finished for a while. Counted from the last tick's end, not its start: a long
            # tick (a first one after a restart, reaching back days) has not stalled the moment it ends
            idle = lag - t.duration_s
            if idle > 3 * interval / 1000 + 30 and self._scheduler_running():
                out["ok"] = False
                out["last_error"] = out["last_error"] or f"no tick for {idle:.0f}s"
        else:
            out.update({"last_tick": None, "lag_seconds": None})
        return out


class _Stopped(Exception):
    """The process is shutting down: leave the tick between two agents."""


_last_yield = [0.0]


def _yield_gil(every_s: float = 0.002) -> None:
    """Between two agents, after 2 ms of work: hand the GIL to a request waiting for it now rather than at
    the interpreter's next 5 ms switch. (Yielding after every agent cost a steady tick more than its work:
    a ``sleep(0)`` is a trip through the OS scheduler.)"""
    now = time.perf_counter()
    if now - _last_yield[0] >= every_s:
        time.sleep(0)
        _last_yield[0] = time.perf_counter()


def _runs(days: list[date]) -> list[tuple[date, date]]:
    """Consecutive days grouped into [first, last] ranges."""
    out: list[list[date]] = []
    for d in days:
        if out and d - out[-1][1] <= timedelta(days=1):
            out[-1][1] = max(out[-1][1], d)
        else:
            out.append([d, d])
    return [(a, b) for a, b in out]


def journal_workers(conn) -> list[str]:
    return [r[0] for r in conn.execute("SELECT DISTINCT worker_sid FROM journal")]
