"""The pure evaluator: (timeline, schedule, rules, now) → exceptions and adherence.

No clock, no database, no Flask — like Prometheus' ``Eval(ts)``, the time is
*given*. The live loop and an offline recompute call the same functions with
the same inputs and get the same answers.

Conditions are evaluated exactly on the piecewise-constant intervals that
snapshot times and segment boundaries cut the time line into (millisecond
precision), never by sampling. Per rule, a *run* is a maximal stretch during
which its condition holds; a run at least ``for`` long is an exception.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import compress, islice
from functools import lru_cache
from operator import attrgetter, le, not_, sub
from typing import Sequence
from zoneinfo import ZoneInfo

from .model import LOGGED_OUT, Segment, Snapshot
from .rules import RuleSet
from .timeutil import local_midnight_ms

_AT = attrgetter("at")
_ACTIVITY = attrgetter("activity")
_LOGGED_OUT_HAS = LOGGED_OUT.__contains__
_midnight_ms = lru_cache(maxsize=16384)(local_midnight_ms)  # pure: (date, zone) → instant
_INF = float("inf")


@dataclass(frozen=True)
class Occurrence:
    """One exception: ``rule`` held from ``start`` to ``end`` (None while it still holds)."""

    rule: str
    severity: str
    start: int
    end: int | None
    scheduled_activity: str | None  # at ``start``
    actual_activity: str  # at ``start``
    task_state: str  # at ``start``
    impact: str = "out"  # the rule's: "neutral" time counts neither in nor out of adherence


@dataclass(frozen=True)
class AgentResult:
    """Exceptions for one agent, and when to look again if nothing new arrives."""

    occurrences: list[Occurrence]
    next_check_ms: int | None  # earliest instant > now at which the result can change without new input
    # where the evaluation began: the latest instant <= start at which no condition held (-inf when the
    # timeline has none). Before the timeline's first snapshot nothing is known, so a rewind that reaches
    # it means the caller must read the timeline from further back (``policy.evaluate_worker`` does).
    rewound_to: float = 0


# --------------------------------------------------------------------------- schedule as a step function


def flatten_segments(segments: Sequence[Segment]) -> list[Segment]:
    """Segments sorted, empty ones dropped, overlaps resolved (the later-starting one wins).

    Resolved schedules never overlap, so this is normally a sort and a check.
    """
    segs = sorted((s for s in segments if s.end > s.start), key=lambda s: (s.start, s.end))
    if all(a.end <= b.start for a, b in zip(segs, segs[1:])):
        return segs
    # Rare path: cut at every boundary; in each piece the covering segment that starts last wins.
    cuts = sorted({s.start for s in segs} | {s.end for s in segs})
    out: list[Segment] = []
    for a, b in zip(cuts, cuts[1:]):
        winner = None
        for s in segs:  # sorted by start: the last covering one wins
            if s.start <= a and s.end >= b:
                winner = s
        if winner is None:
            continue
        if out and out[-1].end == a and _same(out[-1], winner):
            out[-1] = out[-1]._replace(end=b)
        else:
            out.append(winner._replace(start=a, end=b))
    return out


def _same(a: Segment, b: Segment) -> bool:
    return a.activity == b.activity and a.day == b.day and a.source == b.source


def _schedule_steps(segs: list[Segment]) -> tuple[list[int], list[str | None]]:
    """Flattened segments → change points: at ``times[i]`` the scheduled activity becomes ``values[i]``."""
    times: list[int] = []
    values: list[str | None] = []
    prev_end = None
    for s in segs:
        if prev_end is not None and prev_end < s.start:
            times.append(prev_end)
            values.append(None)
        if times and times[-1] == s.start:
            values[-1] = s.activity
        else:
            times.append(s.start)
            values.append(s.activity)
        prev_end = s.end
    if prev_end is not None:
        times.append(prev_end)
        values.append(None)
    return times, values


class SortedTimeline(list):
    """A timeline its maker knows to be in time order (the tracker's and the journal's are).

    The evaluator then uses it as it is instead of copying and checking it.
    """

    __slots__ = ()


def _sorted_snapshots(timeline: Sequence[Snapshot]) -> list[Snapshot]:
    if type(timeline) is SortedTimeline:
        return timeline
    snaps = list(timeline)
    if not all(map(le, map(_AT, snaps), map(_AT, islice(snaps, 1, None)))):
        snaps.sort(key=_AT)  # stable: of two snapshots at the same instant the later listed wins
    return snaps


# --------------------------------------------------------------------------- exceptions


def evaluate_agent(
    timeline: Sequence[Snapshot],
    segments: Sequence[Segment],
    ruleset: RuleSet,
    team: str | None,
    start_ms: int,
    now_ms: int,
) -> AgentResult:
    """Every exception intersecting [start_ms, now_ms], as if evaluated from the beginning.

    The evaluation rewinds from ``start_ms`` to the latest instant at which no
    rule's condition holds, so an exception already running at ``start_ms``
    keeps its true start. Snapshots and segments after ``now_ms`` are ignored
    (except that the next segment boundary after ``now_ms`` sets
    ``next_check_ms``). An exception "intersects" when it starts at or before
    ``now_ms`` and is open or ends after ``start_ms``.
    """
    rules = ruleset.rules
    steps_t, steps_v = _schedule_steps(flatten_segments(segments))
    m_all = len(steps_t)
    m = bisect_right(steps_t, now_ms)  # schedule changes at or before now
    next_boundary = steps_t[m] if m < m_all else None
    if not rules:
        return AgentResult([], next_boundary, min(start_ms, now_ms))

    snaps = _sorted_snapshots(timeline)
    # bisect on the snapshots themselves: a timeline is touched only where the evaluation looks
    n = bisect_right(snaps, now_ms, key=_AT)  # snapshots at or before now
    table = ruleset.mask_table(team)
    mask_of = ruleset.mask
    s0 = min(start_ms, now_ms)

    def mask_at(t: int) -> int:
        j = bisect_right(snaps, t, 0, n, key=_AT) - 1
        if j < 0:
            return 0  # before the first snapshot nothing is known and nothing holds
        k = bisect_right(steps_t, t, 0, m) - 1
        sched = steps_v[k] if k >= 0 else None
        snap = snaps[j]
        return mask_of(team, sched, snap.activity, snap.task)

    # ---- rewind: the latest breakpoint <= s0 from which no condition holds
    r: float = s0
    if mask_at(s0):
        r = -_INF
        j = bisect_right(snaps, s0, 0, n, key=_AT) - 1
        k = bisect_right(steps_t, s0, 0, m) - 1
        while j >= 0 or k >= 0:
            ta = snaps[j].at if j >= 0 else -_INF
            tb = steps_t[k] if k >= 0 else -_INF
            t = ta if ta >= tb else tb
            if ta == t:
                j -= 1
            if tb == t:
                k -= 1
            if not mask_at(t):
                r = t
                break

    # ---- forward sweep from r over merged breakpoints
    if r == -_INF:
        i, q = 0, 0
        act = task = None
        sched = None
    else:
        i = bisect_right(snaps, r, 0, n, key=_AT)
        q = bisect_right(steps_t, r, 0, m)
        act = snaps[i - 1].activity if i > 0 else None
        task = snaps[i - 1].task if i > 0 else None
        sched = steps_v[q - 1] if q > 0 else None

    nrules = len(rules)
    for_ms = [rule.for_ms for rule in rules]
    run_start = [0] * nrules
    run_state: list = [None] * nrules
    found: list[tuple[int, int, int | None, tuple]] = []  # (start, rule index, end, state at start)
    prev = 0
    while True:
        ta = snaps[i].at if i < n else _INF
        tb = steps_t[q] if q < m else _INF
        if ta <= tb:
            if ta == _INF:
                break
            t = ta
            snap = snaps[i]
            i += 1
            while i < n and snaps[i].at == t:
                snap = snaps[i]
                i += 1
            act = snap.activity
            task = snap.task
            if tb == t:
                sched = steps_v[q]
                q += 1
        else:
            t = tb
            sched = steps_v[q]
            q += 1
        if act is None:
            continue
        key = (sched, act, task)
        mask = table.get(key)
        if mask is None:
            mask = mask_of(team, sched, act, task)
        if mask == prev:
            continue
        stopped = prev & ~mask
        while stopped:
            low = stopped & -stopped
            idx = low.bit_length() - 1
            stopped ^= low
            st = run_start[idx]
            if t - st >= for_ms[idx] and t > s0:
                found.append((st, idx, t, run_state[idx]))
        started = mask & ~prev
        while started:
            low = started & -started
            idx = low.bit_length() - 1
            started ^= low
            run_start[idx] = t
            run_state[idx] = key
        prev = mask

    next_check = next_boundary
    holding = prev
    while holding:
        low = holding & -holding
        idx = low.bit_length() - 1
        holding ^= low
        st = run_start[idx]
        due = st + for_ms[idx]
        if now_ms >= due:
            found.append((st, idx, None, run_state[idx]))
        elif next_check is None or due < next_check:
            next_check = due

    found.sort(key=lambda f: (f[0], f[1]))
    occurrences = [
        Occurrence(
            rule=rules[idx].name,
            severity=rules[idx].severity,
            start=st,
            end=end,
            scheduled_activity=state[0],
            actual_activity=state[1],
            task_state=state[2],
            impact=rules[idx].impact,
        )
        for st, idx, end, state in found
    ]
    return AgentResult(occurrences, next_check, r)


# --------------------------------------------------------------------------- adherence arithmetic


@dataclass(frozen=True)
class DayFigures:
    """Adherence and conformance for one agent and one local day."""

    day: date
    scheduled_ms: int
    in_adherence_ms: int
    out_of_adherence_ms: int
    approved_ms: int
    logged_in_ms: int
    adherence_percent: float | None
    conformance_percent: float | None
    exceptions: int
    neutral_ms: int = 0  # scheduled time that counts neither in nor out (left out of the denominator)


def _union(intervals) -> list[tuple[int, int]]:
    """Sorted, merged, non-empty [a, b) intervals."""
    out: list[list[int]] = []
    for a, b in sorted(iv for iv in intervals if iv[1] > iv[0]):
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1][1] = b
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def _intersect(xs: list[tuple[int, int]], ys: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Intersection of two merged interval lists."""
    out = []
    i = j = 0
    while i < len(xs) and j < len(ys):
        a = max(xs[i][0], ys[j][0])
        b = min(xs[i][1], ys[j][1])
        if a < b:
            out.append((a, b))
        if xs[i][1] < ys[j][1]:
            i += 1
        else:
            j += 1
    return out


def _subtract(xs: list[tuple[int, int]], ys: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """xs minus ys, both merged interval lists."""
    out = []
    j = 0
    for a, b in xs:
        while j < len(ys) and ys[j][1] <= a:
            j += 1
        k = j
        while a < b and k < len(ys) and ys[k][0] < b:
            if ys[k][0] > a:
                out.append((a, ys[k][0]))
            a = max(a, ys[k][1])
            k += 1
        if a < b:
            out.append((a, b))
    return out


def _total(xs) -> int:
    return sum(b - a for a, b in xs)


def day_window(day: date, tz: ZoneInfo, segments: Sequence[Segment]) -> tuple[int, int]:
    """The instants [start, end) over which day ``day`` counts logged-in time.

    From min(local midnight, first segment start of the day) to max(next local
    midnight, last segment end of the day), but not overlapping the previous
    day's last segment or the next day's first segment. ``segments`` are the
    agent's segments of days D-1..D+1.
    """
    lo = _midnight_ms(day, tz)
    hi = _midnight_ms(day + timedelta(days=1), tz)
    mine = [s for s in segments if s.day == day and s.end > s.start]
    if mine:
        lo = min(lo, min(s.start for s in mine))
        hi = max(hi, max(s.end for s in mine))
    before = [s.end for s in segments if s.day < day and s.end > s.start]
    after = [s.start for s in segments if s.day > day and s.end > s.start]
    if before:
        lo = max(lo, max(before))
    if after:
        hi = min(hi, min(after))
    return lo, max(lo, hi)


def logged_in_ms(timeline: Sequence[Snapshot], lo: int, hi: int) -> int:
    """Milliseconds of [lo, hi) during which the agent was logged in (activity not Offline/Unknown).

    Additive: for lo <= t <= hi, logged_in_ms(lo, hi) = logged_in_ms(lo, t) + logged_in_ms(t, hi).
    """
    if hi <= lo:
        return 0
    snaps = _sorted_snapshots(timeline)
    # the snapshots in force during [lo, hi): from the last one at or before lo to the last before hi;
    # each lasts until the next one (the last until hi), the first counts from lo at the earliest
    first = max(0, bisect_right(snaps, lo, key=_AT) - 1)
    stop = bisect_left(snaps, hi, key=_AT)
    if first >= stop:
        return 0
    live = snaps[first:stop]
    starts = list(map(_AT, live))
    ends = starts[1:]
    ends.append(hi)
    if starts[0] < lo:
        starts[0] = lo
    logged = map(not_, map(_LOGGED_OUT_HAS, map(_ACTIVITY, live)))
    return sum(compress(map(sub, ends, starts), logged))


@dataclass(frozen=True)
class DaySets:
    """Where in time each kind of a day's scheduled time lies (merged interval lists; disjoint except that
    ``scheduled`` covers the other three, and in adherence is ``scheduled`` minus out and neutral)."""

    scheduled: list[tuple[int, int]]
    out: list[tuple[int, int]]
    neutral: list[tuple[int, int]]
    approved: list[tuple[int, int]]


def day_sets(
    day: date,
    segments: Sequence[Segment],
    intervals: Sequence[tuple],
    as_of_ms: int,
    *,
    periods: Sequence[tuple[int, int, str]] = (),
    neutral_activities: frozenset = frozenset(),
) -> DaySets:
    """The day's arithmetic as sets of instants (``day_figures`` totals them; interval reports cut them), so
    any partition of the day adds up exactly to the day's figures. Arguments as for ``day_figures``."""
    sched = _union((s.start, min(s.end, as_of_ms)) for s in segments if s.day == day)

    def clip(a: int, b: int | None) -> tuple[int, int]:
        return a, min(as_of_ms if b is None else b, as_of_ms)

    def impact(iv) -> str:
        return iv[3] if len(iv) > 3 else "out"

    counted = [iv for iv in intervals if impact(iv) != "neutral"]
    not_approved = _union(clip(iv[0], iv[1]) for iv in counted if not iv[2])
    every = _union(clip(iv[0], iv[1]) for iv in counted)
    neutral_parts = [clip(iv[0], iv[1]) for iv in intervals if impact(iv) == "neutral"]
    if neutral_activities:
        neutral_parts += [(s.start, min(s.end, as_of_ms)) for s in segments
                          if s.day == day and s.activity in neutral_activities]
    if periods:
        excused = _union((a, b) for a, b, _ in periods)
        neutral_parts += _intersect(every, _union((a, b) for a, b, mode in periods if mode == "neutral"))
        not_approved = _subtract(not_approved, excused)
    neutral_iv = _intersect(_union(neutral_parts), sched)
    out_iv = _subtract(_intersect(not_approved, sched), neutral_iv)
    approved_iv = _subtract(_subtract(_intersect(every, sched), neutral_iv), out_iv)
    return DaySets(sched, out_iv, neutral_iv, approved_iv)


def day_figures(
    day: date,
    tz: ZoneInfo,
    segments: Sequence[Segment],
    intervals: Sequence[tuple[int, int | None, bool]],
    timeline: Sequence[Snapshot],
    as_of_ms: int,
    logged_in: int | None = None,
    *,
    periods: Sequence[tuple[int, int, str]] = (),
    neutral_activities: frozenset = frozenset(),
) -> DayFigures:
    """Adherence figures for ``day`` as of ``as_of_ms``.

    ``intervals`` are the agent's exceptions as (start, end or None while open,
    approved[, impact]). Only time before ``as_of_ms`` counts. ``logged_in``, when given,
    is ``logged_in_ms`` over the day's window up to ``as_of_ms``, already known
    to the caller (the live loop adds up what it counted before).

    ``periods`` are the period approvals covering the agent, as (start, end, mode): the exception time
    inside one is excused, as neutral time (mode "neutral") or as approved, in-adherence time (mode "in").
    Scheduled time of an activity in ``neutral_activities`` is neutral whatever happens. Neutral wins over
    out, out over approved: every scheduled millisecond is exactly one of in, out or neutral, so
    in + out + neutral = scheduled, and adherence = in / (scheduled - neutral).
    """
    sets = day_sets(day, segments, intervals, as_of_ms, periods=periods, neutral_activities=neutral_activities)
    sched = sets.scheduled
    scheduled = _total(sched)
    neutral = _total(sets.neutral)
    out = _total(sets.out)
    approved = _total(sets.approved)

    def clip(a: int, b: int | None) -> tuple[int, int]:
        return a, min(as_of_ms if b is None else b, as_of_ms)

    count = 0
    for a, b, *_ in intervals:
        a, b = clip(a, b)
        if b > a:
            hit = any(max(a, x) < min(b, y) for x, y in sched)
        else:
            hit = a == b and any(x <= a < y for x, y in sched)
        count += hit

    if logged_in is None:
        lo, hi = day_window(day, tz, segments)
        logged_in = logged_in_ms(timeline, lo, min(hi, as_of_ms))

    in_adh = scheduled - out - neutral
    counted_ms = scheduled - neutral
    return DayFigures(
        day=day,
        scheduled_ms=scheduled,
        in_adherence_ms=in_adh,
        out_of_adherence_ms=out,
        approved_ms=approved,
        logged_in_ms=logged_in,
        adherence_percent=(in_adh * 100.0 / counted_ms) if counted_ms else None,
        conformance_percent=(logged_in * 100.0 / scheduled) if scheduled else None,
        exceptions=count,
        neutral_ms=neutral,
    )
