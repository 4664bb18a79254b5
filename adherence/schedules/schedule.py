"""The resolved schedule: who should be doing what, when.

Built once per load by ``load_schedules`` and never changed afterwards (a
reload builds a new one). Segments are computed lazily per agent per week
(Monday to Sunday, local dates) and cached, so asking "what is every agent
scheduled to do now" each evaluator tick is a dictionary look-up and a
bisect per agent; calendars are expanded once per agent per week.
"""

from __future__ import annotations

import logging
import threading
import time
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from ..errors import Problem
from ..model import Agent, Segment
from ..timeutil import from_ms, to_ms
from .ical import AgentCalendar
from .resolve import Raw, resolve
from .yamlfmt import ShiftSpec

log = logging.getLogger(__name__)

_MONDAY = date(1970, 1, 5)
_PAD = 2  # days of context around a week: shifts and chains up to 2 days long resolve the same in every week
MAX_WEEKS_CACHED = 16  # per agent


@dataclass
class _AgentPlan:
    """Everything the files say about one agent, before expansion."""

    tz: ZoneInfo
    weekly: list[tuple[ShiftSpec, int]] = field(default_factory=list)  # (shift, file index)
    dated: dict[date, list[tuple[ShiftSpec, int]]] = field(default_factory=dict)
    days_off: dict[date, str] = field(default_factory=dict)
    calendars: list[AgentCalendar] = field(default_factory=list)


@dataclass
class _Week:
    starts: list[int]
    segments: list[Segment]
    time_off: dict[date, str]


def _week_of(day: date) -> int:
    return (day - _MONDAY).days // 7


class Schedule:
    """Roster plus resolved segments, with lazy per-agent, per-week expansion."""

    def __init__(self, agents: dict[str, Agent], plans: dict[str, _AgentPlan], default_tz: str,
                 activities: set[str], warnings: list[Problem], files: list[str]):
        self.agents = agents
        self.warnings = warnings
        self.files = files  # every file read, for reload fingerprints
        self.default_tz = default_tz
        # calendar failures seen at query time: problem → (first seen, agents it hit); logged once each
        self.expansion_problems: dict[Problem, tuple[float, set[str]]] = {}
        self._plans = plans
        self._default_zone = ZoneInfo(default_tz)
        self._by_sid = {a.worker_sid: k for k, a in agents.items()}
        self._by_sid_lower = {a.worker_sid.lower(): k for k, a in agents.items()}
        self._activities = frozenset(activities)
        self._cache: dict[str, dict[int, _Week]] = {}
        self._last: dict[str, Segment] = {}
        self._lock = threading.Lock()

    # -- roster -------------------------------------------------------------
    def agent(self, key_or_sid: str) -> Agent | None:
        """The roster entry for a roster key or a worker SID, or None."""
        if key_or_sid in self.agents:
            return self.agents[key_or_sid]
        key = self._by_sid.get(key_or_sid) or self._by_sid_lower.get(str(key_or_sid).lower())
        return self.agents.get(key) if key else None

    def tz(self, agent_key: str) -> ZoneInfo:
        """The agent's zone (the config's default zone for agents not in the roster)."""
        plan = self._plans.get(agent_key)
        return plan.tz if plan else self._default_zone

    def activities(self) -> set[str]:
        """Every scheduled activity name the files use (time off excluded)."""
        return set(self._activities)

    # -- segments -----------------------------------------------------------
    def segments(self, agent_key: str, start_ms: int, end_ms: int) -> list[Segment]:
        """Resolved segments intersecting [start_ms, end_ms), sorted, not clipped."""
        plan = self._plans.get(agent_key)
        if plan is None or end_ms <= start_ms:
            return []
        first = _week_of(self._local_date(start_ms, plan.tz) - timedelta(days=_PAD))
        last = _week_of(self._local_date(end_ms - 1, plan.tz))
        out = []
        for w in range(first, last + 1):
            for s in self._week(agent_key, plan, w).segments:
                if s.end > start_ms and s.start < end_ms:
                    out.append(s)
        out.sort()
        return out

    def segments_for_day(self, agent_key: str, day: date) -> list[Segment]:
        """Resolved segments of the shift(s) starting on ``day`` (agent-local date)."""
        plan = self._plans.get(agent_key)
        if plan is None:
            return []
        return [s for s in self._week(agent_key, plan, _week_of(day)).segments if s.day == day]

    def at(self, agent_key: str, t_ms: int) -> Segment | None:
        """The segment in force at ``t_ms``, or None (unscheduled)."""
        last = self._last.get(agent_key)
        if last is not None and last.start <= t_ms < last.end:
            return last
        plan = self._plans.get(agent_key)
        if plan is None:
            return None
        day = self._local_date(t_ms, plan.tz)
        w_now = _week_of(day)
        w_before = _week_of(day - timedelta(days=_PAD))
        for w in (w_now, w_before) if w_before != w_now else (w_now,):
            week = self._week(agent_key, plan, w)
            i = bisect_right(week.starts, t_ms) - 1
            if i >= 0:
                s = week.segments[i]
                if s.start <= t_ms < s.end:
                    self._last[agent_key] = s
                    return s
        return None

    def time_off(self, agent_key: str, day: date) -> str | None:
        """The time-off name for ``day`` (a YAML day off or an all-day iCal event), or None."""
        plan = self._plans.get(agent_key)
        if plan is None:
            return None
        return self._week(agent_key, plan, _week_of(day)).time_off.get(day)

    # -- expansion ----------------------------------------------------------
    @staticmethod
    def _local_date(ms: int, tz: ZoneInfo) -> date:
        return from_ms(ms).astimezone(tz).date()

    def _week(self, key: str, plan: _AgentPlan, w: int) -> _Week:
        weeks = self._cache.get(key)
        if weeks is not None:
            hit = weeks.get(w)
            if hit is not None:
                return hit
        week = self._expand(key, plan, w)
        with self._lock:
            weeks = self._cache.setdefault(key, {})
            weeks[w] = week
            while len(weeks) > MAX_WEEKS_CACHED:
                weeks.pop(next(iter(weeks)))
        return week

    def _expansion_problem(self, key: str, problem: Problem) -> None:
        with self._lock:
            first = problem not in self.expansion_problems
            self.expansion_problems.setdefault(problem, (time.time(), set()))[1].add(key)
        if first:
            log.error("schedules: %s (agent %s)", problem, key, extra={"event": "schedule_expansion_failed"})

    def _expand(self, key: str, plan: _AgentPlan, w: int) -> _Week:
        tz = plan.tz
        d0 = _MONDAY + timedelta(days=7 * w)
        lo, hi = d0 - timedelta(days=_PAD), d0 + timedelta(days=7 + _PAD)
        raws: list[Raw] = []
        off: dict[date, str] = {}
        d = lo
        while d < hi:
            if d in plan.days_off:
                off[d] = plan.days_off[d]
            else:
                shifts = plan.dated.get(d)
                if shifts is None:
                    shifts = [(s, f) for s, f in plan.weekly
                              if d.weekday() in s.days and (s.start is None or s.start <= d)
                              and (s.until is None or d <= s.until)]
                for shift, findex in shifts:
                    for seg in shift.segments:
                        stz = seg.tz or tz
                        raws.append(Raw(_local_ms(d, seg.start_min, stz), _local_ms(d, seg.end_min, stz),
                                        seg.activity, d, f"{shift.file}:{seg.line}", (findex, seg.line, 0)))
            d += timedelta(days=1)
        if plan.calendars:
            span_start = datetime(lo.year, lo.month, lo.day, tzinfo=tz)
            span_end = datetime(hi.year, hi.month, hi.day, tzinfo=tz)
            for cal in plan.calendars:
                for occ in cal.occurrences(span_start, span_end, lambda p: self._expansion_problem(key, p)):
                    ev = occ.event
                    if occ.start is None:
                        for day in occ.days:
                            off.setdefault(day, ev.summary)
                    else:
                        raws.append(Raw(occ.start, occ.end, ev.summary, None, ev.source,
                                        (cal.file_index, ev.line or 0, ev.index)))
        resolved = resolve(raws, lambda ms: self._local_date(ms, tz))
        end = d0 + timedelta(days=7)
        segs = [s for s in resolved if d0 <= s.day < end and s.day not in off]
        return _Week([s.start for s in segs], segs, {k: v for k, v in off.items() if d0 <= k < end})


def _local_ms(day: date, minutes: int, tz: ZoneInfo) -> int:
    """Wall-clock ``minutes`` after local midnight of ``day`` (may run into later days) → epoch ms."""
    days, m = divmod(minutes, 1440)
    d = day + timedelta(days=days) if days else day
    return to_ms(datetime(d.year, d.month, d.day, m // 60, m % 60, tzinfo=tz))
