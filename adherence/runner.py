"""The evaluation loop's body: load inputs, call the pure evaluator, store outputs.

A tick costs in proportion to what changed. Each agent has a checkpoint
(the "now" it was last evaluated to); a tick re-evaluates only agents that
received records (from the earliest affected instant, so a late record of
any age rewrites the results of the day it belongs to), agents whose
result can change with no input (a pending condition reaching its ``for``,
a segment or day boundary, an open exception growing), and agents never
evaluated yet. ``recompute`` runs the very same ``evaluate_worker`` over
journal timelines, which is why the live loop and a recompute agree.
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from bisect import bisect_left
from operator import attrgetter
from dataclasses import dataclass, field
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from .evaluate import SortedTimeline, day_figures, day_window, evaluate_agent, logged_in_ms
from .metrics import METRICS
from .model import UNKNOWN_ACTIVITY, Snapshot
from .results import ExceptionWriter, save_day
from .state import journal_timeline
from .timeutil import iso, local_date, local_midnight_ms, zone

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
# How far back timelines and segments are given to the evaluator so that an
# exception already running at the evaluation start keeps its true start.
LOOKBACK_MS = DAY_MS
# Rows of agents who are in a segment but had no change are refreshed at least this often.
MAX_STALENESS_MS = 15 * 60_000
# After a stop, evaluation resumes from the last stored tick, at most this far back.
MAX_CATCH_UP_DAYS = 14
# Agents with an open exception have their day's figures refreshed at least this often.
OPEN_REFRESH_MS = 60_000
# Agents per write transaction, so webhooks never wait long for the writer.
CHUNK = 400
# From the start of monitoring until the feed first mentions an agent, the agent is not logged in.
ORIGIN = Snapshot(0, UNKNOWN_ACTIVITY, "none", True)
_AT = attrgetter("at")


@dataclass
class TickStats:
    at_ms: int
    agents: int = 0
    exceptions_written: int = 0
    days_written: int = 0
    duration_s: float = 0.0
    reloaded: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "at": iso(self.at_ms),
            "agents": self.agents,
            "exceptions_written": self.exceptions_written,
            "days_written": self.days_written,
            "duration_ms": round(self.duration_s * 1000, 1),
            "reloaded": self.reloaded,
        }


class Runner:
    def __init__(self, engine):
        self.engine = engine
        self._lock = threading.Lock()  # one tick at a time, whatever calls it
        self._checkpoint: dict[str, int] = {}
        # (worker, day) → (window start, counted up to, logged-in ms): see _logged_in
        self._logged: dict[tuple[str, date], tuple[int, int, int]] = {}
        self._origin_snap = ORIGIN
        self._next_check: dict[str, int] = {}
        self._versions = (None, None)
        self.last_tick: TickStats | None = None
        last = engine.store.get_meta("last_tick_ms")
        self._resume_from: int | None = int(last) if last else None
        # the tracker holds every snapshot from here on; earlier periods are read from the journal
        self.memory_from_ms: int = engine.memory_from_ms
        self._last_trim_ms = 0
        self.last_error: str | None = None

    # -- inputs -------------------------------------------------------------
    def _schedule(self):
        return self.engine.schedules.current

    def _rules(self):
        return self.engine.rules.current

    def agent_info(self, worker_sid: str) -> tuple[str, str | None, ZoneInfo]:
        """(agent key, team, zone) for a worker: roster entry, or the SID and the default zone."""
        sched = self._schedule()
        agent = sched.agent(worker_sid) if sched is not None else None
        if agent is None:
            return worker_sid, None, zone(self.engine.config.timezone)
        return agent.key, agent.team, sched.tz(agent.key)

    def known_workers(self) -> set[str]:
        workers = set(self.engine.tracker.workers())
        sched = self._schedule()
        if sched is not None:
            workers.update(a.worker_sid for a in sched.agents.values())
        return workers

    def segments(self, agent_key: str, start_ms: int, end_ms: int):
        sched = self._schedule()
        if sched is None or sched.agent(agent_key) is None:
            return []
        return sched.segments(agent_key, start_ms, end_ms)

    # -- the unit of work ---------------------------------------------------
    def evaluate_worker(self, conn, writer: ExceptionWriter, worker_sid: str, start_ms: int, now_ms: int,
                        *, from_journal: bool = False, store_until: int | None = None,
                        day_range: tuple[date, date] | None = None) -> tuple[int, int | None]:
        """Evaluate one agent over [start, now], store exceptions and the touched days.

        Returns (days written, next instant this agent must be looked at again).
        """
        rules = self._rules()
        key, team, tz = self.agent_info(worker_sid)
        # One millisecond earlier: an exception that *ends* exactly where the
        # change is (a late record closing it) is re-derived and replaced too.
        changed_from = start_ms  # nothing in the timeline before this instant changed since the last evaluation
        start_ms -= 1
        origin = self.engine.journal.observed_from
        segs = self.segments(key, start_ms - LOOKBACK_MS - 2 * DAY_MS, now_ms + 2 * DAY_MS)

        # the days whose window intersects [start, now]: their figures are rewritten
        days = []
        if origin is not None:  # nothing observed yet: no day has figures
            # scheduled time before monitoring began is not counted: nobody knows what happened
            fig_segs = [s if s.start >= origin else s._replace(start=origin) for s in segs if s.end > origin]
            d = local_date(max(start_ms, 0), tz) - timedelta(days=1)
            last = local_date(now_ms, tz)
            if day_range is not None:
                d, last = max(d, day_range[0]), min(last, day_range[1])
            one = timedelta(days=1)
            while d <= last:
                before, after = d - one, d + one
                around = [s for s in fig_segs if before <= s.day <= after]
                w0, w1 = day_window(d, tz, around)
                if w1 > origin and w1 >= start_ms and w0 <= now_ms:
                    days.append((d, around, w0, w1))
                d += timedelta(days=1)

        # the timeline must cover the lookback of the evaluation and every day window
        lo = min([start_ms - LOOKBACK_MS] + [w0 for _, _, w0, _ in days])
        if from_journal or lo < self.memory_from_ms:
            timeline = journal_timeline(conn, worker_sid, lo, now_ms)
        else:
            timeline = self.engine.tracker.timeline(worker_sid, lo, now_ms)
        # timelines are in time order: drop what precedes the origin with one bisect and a slice,
        # and tell the evaluator it need not check the order again
        if origin is not None and origin <= now_ms:
            first = bisect_left(timeline, origin, key=_AT)
            if self._origin_snap.at != origin:
                self._origin_snap = ORIGIN._replace(at=origin)
            sorted_tl = SortedTimeline((self._origin_snap,))
            sorted_tl += timeline if first == 0 else timeline[first:]
            timeline = sorted_tl
        else:
            timeline = SortedTimeline(timeline)

        result = evaluate_agent(timeline, segs, rules, team, start_ms, now_ms)
        occurrences = result.occurrences
        if store_until is not None:
            occurrences = [o for o in occurrences if o.start <= store_until]
        writer.replace(conn, worker_sid, key, team, tz, segs, occurrences, start_ms, store_until)

        next_check = result.next_check_ms
        if any(o.end is None for o in occurrences):
            # an open exception grows every second: its day's figures are refreshed every minute
            due = now_ms + OPEN_REFRESH_MS
            next_check = due if next_check is None else min(next_check, due)
        for d, around, w0, w1 in days:
            intervals = writer.intervals(conn, worker_sid, w0, w1)
            logged = self._logged_in(worker_sid, d, w0, min(w1, now_ms), changed_from, timeline, from_journal)
            save_day(conn, worker_sid, key, team, day_figures(d, tz, around, intervals, timeline, now_ms, logged),
                     now_ms)
            if w1 > now_ms:
                next_check = w1 if next_check is None else min(next_check, w1)
                if w0 <= now_ms and any(s.day == d for s in around):
                    # logged-in and scheduled time still growing: refresh every MAX_STALENESS_MS, each
                    # agent at its own phase so 10,000 agents don't all come due in the same tick
                    phase = zlib.crc32(worker_sid.encode()) % MAX_STALENESS_MS
                    stale = now_ms + MAX_STALENESS_MS - (now_ms - phase) % MAX_STALENESS_MS
                    next_check = min(next_check, stale)
        return len(days), next_check

    def _logged_in(self, worker_sid: str, day: date, w0: int, upto: int, changed_from: int, timeline,
                   from_journal: bool) -> int:
        """Logged-in ms of the day window [w0, upto): what was counted up to the last evaluation, plus since.

        The count over [w0, t) depends only on snapshots before t, so it is reused while nothing before t
        changed (every change marks the agent dirty from its instant, which is where ``changed_from``
        comes from). A recompute counts from scratch.
        """
        if from_journal:
            return logged_in_ms(timeline, w0, upto)
        k = (worker_sid, day)
        memo = self._logged.get(k)
        if memo is not None and memo[0] == w0 and memo[1] <= changed_from and memo[1] <= upto:
            total = memo[2] + logged_in_ms(timeline, memo[1], upto)
        else:
            total = logged_in_ms(timeline, w0, upto)
        self._logged[k] = (w0, upto, total)
        return total

    def _initial_start(self, worker_sid: str, now_ms: int) -> int:
        """Where an agent's first evaluation in this process starts.

        Yesterday's local midnight (an overnight shift may still run), or
        earlier when the service was down: from the last tick stored before
        the stop (at most ``MAX_CATCH_UP_DAYS`` back), so no day is skipped.
        """
        _, _, tz = self.agent_info(worker_sid)
        start = local_midnight_ms(local_date(now_ms, tz) - timedelta(days=1), tz)
        if self._resume_from is not None:
            start = min(start, max(self._resume_from, now_ms - MAX_CATCH_UP_DAYS * DAY_MS))
        return start

    # -- the tick -----------------------------------------------------------
    def tick(self, now_ms: int | None = None) -> TickStats:
        with self._lock:
            t0 = time.perf_counter()
            now = self.engine.clock.now_ms() if now_ms is None else now_ms
            stats = TickStats(now)
            if self.engine.schedules.check():
                stats.reloaded.append("schedules")
            if self.engine.rules.check():
                stats.reloaded.append("rules")
            if self._rules() is None:
                raise RuntimeError("no valid rules loaded: " + "; ".join(self.engine.rules.errors))
            versions = (self.engine.schedules.version, self.engine.rules.version)
            if versions != self._versions:
                # new schedules or rules: re-evaluate everyone from yesterday on
                self._checkpoint.clear()
                self._logged.clear()
                self._next_check.clear()
                self._versions = versions
            self.engine.journal.catch_up()  # records a replay wrote while we run
            dirty = self.engine.tracker.drain_dirty()
            work: dict[str, int] = {}
            for w in self.known_workers():
                cp = self._checkpoint.get(w)
                if cp is None:
                    work[w] = self._initial_start(w, now)
                elif w in dirty:
                    work[w] = min(cp, dirty[w])
                elif self._next_check.get(w, now + 1) <= now:
                    work[w] = cp
            for w, at in dirty.items():  # records newer than the checkpoint-less start still count
                if w in work:
                    work[w] = min(work[w], at)
            store = self.engine.store
            items = sorted(work.items())
            for i in range(0, len(items), CHUNK):
                with store.write() as conn:
                    writer = ExceptionWriter(now)
                    for w, start in items[i : i + CHUNK]:
                        start = min(start, now)
                        days, nxt = self.evaluate_worker(conn, writer, w, start, now)
                        stats.days_written += days
                        self._checkpoint[w] = now
                        if nxt is None:
                            self._next_check.pop(w, None)
                        else:
                            self._next_check[w] = nxt
                    stats.exceptions_written += writer.written
            stats.agents = len(items)
            if now - self._last_trim_ms > 3_600_000:
                from .engine import MEMORY_HORIZON_MS

                horizon = now - MEMORY_HORIZON_MS
                if horizon > self.memory_from_ms:
                    self.engine.tracker.trim(horizon)
                    self.memory_from_ms = horizon
                self._logged = {k: v for k, v in self._logged.items() if v[1] > now - 2 * DAY_MS}
                self._last_trim_ms = now
            stats.duration_s = time.perf_counter() - t0
            self.last_tick = stats
            self.last_error = None
            METRICS.inc("adherence_ticks_total")
            METRICS.set("adherence_tick_duration_seconds", stats.duration_s)
            METRICS.set("adherence_tick_agents", stats.agents)
            store.set_meta("last_tick_ms", str(now))
            return stats

    # -- recompute ----------------------------------------------------------
    def recompute(self, first: date, last: date, now_ms: int | None = None, workers: set[str] | None = None) -> TickStats:
        """Rebuild exceptions and adherence of days [first, last] from the journal."""
        with self._lock:
            t0 = time.perf_counter()
            now = self.engine.clock.now_ms() if now_ms is None else now_ms
            stats = TickStats(now)
            self.engine.schedules.check()
            self.engine.rules.check()
            if self._rules() is None:
                raise RuntimeError("no valid rules loaded: " + "; ".join(self.engine.rules.errors))
            from .retention import check_recompute

            check_recompute(self.engine, first)  # the journal must still hold the days asked for
            targets = workers or (self.known_workers() | set(journal_workers(self.engine.store.reader)))
            store = self.engine.store
            items = sorted(targets)
            for i in range(0, len(items), CHUNK):
                with store.write() as conn:
                    writer = ExceptionWriter(now)
                    for w in items[i : i + CHUNK]:
                        _, _, tz = self.agent_info(w)
                        key = self.agent_info(w)[0]
                        segs = self.segments(key, local_midnight_ms(first - timedelta(days=2), tz),
                                             local_midnight_ms(last + timedelta(days=3), tz))
                        start = day_window(first, tz, [s for s in segs if first - timedelta(days=1) <= s.day <= first + timedelta(days=1)])[0]
                        end = day_window(last, tz, [s for s in segs if last - timedelta(days=1) <= s.day <= last + timedelta(days=1)])[1]
                        if start > now:
                            continue
                        days, _ = self.evaluate_worker(conn, writer, w, start, now, from_journal=True, store_until=end,
                                                      day_range=(first, last))
                        stats.days_written += days
                        stats.agents += 1
                    stats.exceptions_written += writer.written
            # the live checkpoints are still valid: results are the same function of the same inputs
            stats.duration_s = time.perf_counter() - t0
            return stats

    def refresh_days(self, worker_sid: str, from_ms: int, now_ms: int | None = None) -> None:
        """Re-evaluate one agent from ``from_ms`` now (after an approval changed its figures)."""
        with self._lock:
            now = self.engine.clock.now_ms() if now_ms is None else now_ms
            if self._rules() is None:
                return
            with self.engine.store.write() as conn:
                self.evaluate_worker(conn, ExceptionWriter(now), worker_sid, min(from_ms, now), now)

    def status(self) -> dict:
        t = self.last_tick
        interval = self.engine.config.evaluation_interval_ms
        out: dict = {"ok": self.last_error is None, "interval_seconds": interval / 1000, "last_error": self.last_error}
        if t is not None:
            lag = max(0, self.engine.clock.now_ms() - t.at_ms) / 1000
            out.update({"last_tick": t.as_dict(), "lag_seconds": round(lag, 3)})
            if lag > 3 * interval / 1000 + 30 and self.engine.scheduler is not None:
                out["ok"] = False
                out["last_error"] = out["last_error"] or f"no tick for {lag:.0f}s"
        else:
            out.update({"last_tick": None, "lag_seconds": None})
        return out


def journal_workers(conn) -> list[str]:
    return [r[0] for r in conn.execute("SELECT DISTINCT worker_sid FROM journal")]
