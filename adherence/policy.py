"""The evaluation policy: everything that decides what a stored result *is*.

Pure: no clock, no database, no lock. Given the journal's timeline (through a
reader function), the schedule, the rules, the monitoring start and "now", it
says which exceptions an agent has, which days' figures a change touches and
with what logged-in time, and when to look at the agent again. The live tick,
``adherence evaluate``, ``recompute``, ``rules test`` and the tests all call
``evaluate_worker``; the runner only loads inputs, calls, and stores.

Semantics (README "Semantics worth knowing", docs/rules.md):

* Monitoring starts at the first record the journal ever held (``monitoring_from``).
  Before it nothing is known and nothing is counted; from it on an agent the
  feed has not mentioned yet is ``Unknown`` (not logged in), so a rostered
  agent who never logs in is out of adherence on every scheduled day since
  monitoring began, whether or not any process was running that day.
* An exception's start is where its condition began, however long ago: the
  timeline is read further back until a moment where no condition held.
* A day's figures are a function of the day's segments (clipped to
  monitoring start and to "now"), its exceptions (with their approvals) and
  the logged-in time within the day's window.
"""

from __future__ import annotations

import hashlib
import zlib
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from typing import Callable, Iterable, Mapping, Sequence
from zoneinfo import ZoneInfo

from .evaluate import Occurrence, SortedTimeline, day_window, evaluate_agent, logged_in_ms
from .horizons import DAY_MS, LIVE_DAYS, LOOKBACK_MS, MAX_STALENESS_MS, OPEN_REFRESH_MS
from .model import UNKNOWN_ACTIVITY, Segment, Snapshot
from .rules import RuleSet
from .timeutil import local_date, local_midnight_ms

# What an agent's timeline says from monitoring start until the feed first mentions the agent.
ORIGIN = Snapshot(0, UNKNOWN_ACTIVITY, "none", True)

# reader(lo, hi): the snapshots in force during [lo, hi] — the last one at or before lo, then every one
# up to hi — in time order (the tracker's ``timeline`` and ``state.journal_timeline`` both are).
TimelineReader = Callable[[int, int], Sequence[Snapshot]]


@dataclass(frozen=True)
class DayResult:
    """One day the evaluation touched: what its figures are computed from (with the stored approvals)."""

    day: date
    segments: list[Segment]  # the agent's segments of days D-1..D+1, clipped to monitoring start
    window: tuple[int, int]  # [w0, w1): where the day counts logged-in time
    logged_in_ms: int  # logged-in time within the window, up to now
    schedule_version: str
    # the evaluation covered the whole window (started at or before it): every exception of the day was
    # re-derived with the rules in force, so the row may carry their versions (else it keeps its own)
    complete: bool = True
    # a day not yet final: every schedule or rule edit re-evaluates it whole, so a row it did not have yet
    # was computed with the files in force
    live: bool = True


@dataclass(frozen=True)
class Evaluation:
    """One agent evaluated over [start, now]: what to store and when to look again."""

    worker_sid: str
    occurrences: list[Occurrence]  # every exception that is open or ends after ``replace_from``
    replace_from: int  # stored exceptions ending after this instant (or open) are replaced
    store_until: int | None  # ... and starting at or before this one (recompute of a day range)
    days: list[DayResult]
    next_check_ms: int | None  # when the result can change with no new input (None: never)
    segments: Sequence[Segment] = ()  # the schedule it was evaluated against (an exception's day comes from it)
    # where the earliest exception still open at the evaluation's end began (None: none open), for
    # ``look_from`` next time
    holding_since: int | None = None

    def logged_in_counted(self, now_ms: int) -> dict[int, tuple[int, int]]:
        """What a later evaluation of the same timeline may pass as ``logged_in_known``."""
        return {d.window[0]: (max(d.window[0], min(d.window[1], now_ms)), d.logged_in_ms) for d in self.days}


def rules_version(ruleset: RuleSet | None) -> str:
    """A short digest of what the rules *mean* (not where they are written)."""
    if ruleset is None:
        return "-"
    parts = [repr(sorted((k, sorted(v)) for k, v in ruleset.allowed.items()))]
    for r in ruleset.rules:
        conds = sorted((c.field, c.mode, repr(sorted(map(str, c.values or ())))) for c in r.conditions)
        # impact only when not the default: adding the key must not make every stored day stale
        parts.append(repr((r.name, conds, r.for_ms, r.severity) + ((r.impact,) if r.impact != "out" else ())))
    if ruleset.neutral_scheduled:
        parts.append(repr(("neutral", sorted(ruleset.neutral_scheduled))))
    return hashlib.sha1("\n".join(parts).encode()).hexdigest()[:16]


def schedule_version(segments: Iterable[Segment]) -> str:
    """A short digest of the segments a day's results depend on (those of days D-1..D+1)."""
    return _schedule_digest(tuple(sorted(segments)))


@lru_cache(maxsize=65_536)
def _schedule_digest(segments: tuple[Segment, ...]) -> str:
    # cached: every evaluation of an agent digests the same few segments again (a steady tick evaluates
    # ~1,500 agents); the key is the segments themselves, so an edited schedule is a new key
    text = ";".join(f"{s.start},{s.end},{s.activity},{s.day}" for s in segments)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def monitored(segments: Iterable[Segment], monitoring_from: int | None) -> list[Segment]:
    """The segments as counted: scheduled time before monitoring began is cut off (nobody knows it)."""
    if monitoring_from is None:
        return list(segments)
    return [s if s.start >= monitoring_from else s._replace(start=monitoring_from)
            for s in segments if s.end > monitoring_from]


def day_segments(segments: Sequence[Segment], day: date) -> list[Segment]:
    one = timedelta(days=1)
    return [s for s in segments if day - one <= s.day <= day + one]


@lru_cache(maxsize=1024)  # one "now" and a few zones per tick: every agent of a tick asks the same
def live_from_ms(now_ms: int, tz: ZoneInfo) -> int:
    """Where the days that are not yet final begin: a schedule or rule edit re-evaluates from here."""
    return local_midnight_ms(local_date(now_ms, tz) - timedelta(days=LIVE_DAYS), tz)


def timeline_from(read: TimelineReader, lo: int, now_ms: int, monitoring_from: int) -> tuple[SortedTimeline, bool]:
    """The timeline from ``lo`` with the monitoring origin in place; True when it is complete from
    monitoring start (an earlier read could not add anything)."""
    raw = read(lo, now_ms)
    first = bisect_left(raw, monitoring_from, key=_at) if raw and raw[0].at < monitoring_from else 0
    tl = SortedTimeline()
    if not raw or first >= len(raw) or raw[first].at > lo or lo <= monitoring_from:
        # nothing recorded at or before lo: the agent was Unknown from monitoring start until its first record
        tl.append(ORIGIN._replace(at=monitoring_from))
        tl += raw[first:] if first else raw
        return tl, True
    tl += raw[first:] if first else raw
    return tl, False


def _at(s: Snapshot) -> int:
    return s.at


def list_reader(timeline: Iterable[Snapshot]) -> TimelineReader:
    """A reader over a timeline held in a list (``rules test`` cases, tests): the same answers the
    journal would give for those snapshots (equal instants keep their listed order)."""
    snaps = sorted(timeline, key=_at)

    def read(lo: int, hi: int) -> list[Snapshot]:
        first = max(0, bisect_right(snaps, lo, key=_at) - 1)
        return snaps[first:bisect_right(snaps, hi, key=_at)]

    return read


def evaluate_worker(
    read: TimelineReader,
    worker_sid: str,
    segments: Sequence[Segment],
    ruleset: RuleSet,
    team: str | None,
    tz: ZoneInfo,
    monitoring_from: int | None,
    start_ms: int,
    now_ms: int,
    *,
    day_range: tuple[date, date] | None = None,
    store_until: int | None = None,
    floor_ms: int | None = None,
    logged_in_known: Mapping[int, tuple[int, int]] | None = None,
    look_from: int | None = None,
) -> Evaluation:
    """Evaluate one agent over [start, now], as if evaluated from monitoring start.

    ``segments`` must cover [start - 3 days, now + 2 days]. ``floor_ms`` is where the journal stops being
    complete (a retention purge): the look-back never reads below it. ``day_range`` and ``store_until``
    restrict what is returned to a recompute's days.

    ``logged_in_known`` maps a day window's start ``w0`` to ``(t, ms)``: the logged-in time over [w0, t)
    of this same timeline, counted by an earlier evaluation (``Evaluation.logged_in_counted``). It is used
    only where ``t <= start_ms`` (nothing before ``start_ms`` changed since), and then the day's logged-in time is
    ``ms`` plus what [t, now) adds (``logged_in_ms`` is additive), so a steady evaluation reads minutes of
    timeline instead of the whole day. The figures are the same with or without it.

    ``look_from`` is where to begin reading (an earlier evaluation's ``holding_since``: an exception was
    open from there), instead of reading the look-back, finding the condition held all through it, and reading
    further back. Only a cost: the reading still goes back until a moment where no condition held.
    """
    # One millisecond earlier: an exception that *ends* exactly where the change is (a late record closing
    # it) is re-derived and replaced too.
    start = min(start_ms, now_ms) - 1
    if monitoring_from is None or monitoring_from > now_ms:
        # nothing is known yet; once monitoring has begun, everything is to be evaluated
        return Evaluation(worker_sid, [], start, store_until, [], monitoring_from, segments)

    # the days whose window intersects [start, now] (and monitoring): their figures are rewritten.
    # Scheduled time before monitoring began is not counted: nobody knows what happened.
    fig_segs = monitored(segments, monitoring_from)
    plans = []
    d = local_date(max(start, 0), tz) - timedelta(days=1)
    last = local_date(now_ms, tz)
    if day_range is not None:
        d, last = max(d, day_range[0]), min(last, day_range[1])
    while d <= last:
        around = day_segments(fig_segs, d)
        w0, w1 = day_window(d, tz, around)
        if w1 > monitoring_from and w1 >= start and w0 <= now_ms:
            plans.append((d, around, w0, w1))
        d += timedelta(days=1)

    # Where each day's logged-in count starts: its window's start, or where an earlier count of this same
    # timeline stopped (valid when nothing before ``start`` changed since).
    known = logged_in_known or {}
    counts = []
    for _, _, w0, w1 in plans:
        t, ms = known.get(w0, (w0, 0))
        # [w0, t) holds no change when nothing changed before ``start + 1`` (``start_ms``): a record dated
        # exactly ``t`` changes [t, ...) only (the agent's last evaluated instant comes back as ``start_ms``
        # when it is only due a refresh)
        if not w0 <= t <= min(start + 1, w1, now_ms):
            t, ms = w0, 0
        counts.append((t, ms))

    # Read the timeline from the look-back (and every day's count); further back while a condition already
    # held there, so an exception running at ``start`` keeps its true start however old it is.
    lo = min([start - LOOKBACK_MS] + [t for t, _ in counts])
    if look_from is not None and monitoring_from <= look_from < lo:
        lo = look_from
    if floor_ms is not None:
        lo = max(lo, min(floor_ms, start))
    while True:
        # a day past now too: a record dated ahead of now (possible by a few minutes, and for --at) is
        # ignored by the evaluation but says when to look again
        timeline, complete = timeline_from(read, lo, now_ms + DAY_MS, monitoring_from)
        result = evaluate_agent(timeline, segments, ruleset, team, start, now_ms)
        if complete or result.rewound_to >= timeline[0].at:
            break
        if floor_ms is not None and lo <= floor_ms:
            break  # the journal holds nothing older: as exact as what retention kept
        lo = max(monitoring_from, timeline[0].at - max(DAY_MS, 2 * (start - lo)))
        if floor_ms is not None:
            lo = max(lo, floor_ms)

    occurrences = result.occurrences
    if store_until is not None:
        occurrences = [o for o in occurrences if o.start <= store_until]

    next_check = result.next_check_ms
    ahead = bisect_right(timeline, now_ms, key=_at)
    if ahead < len(timeline):
        next_check = timeline[ahead].at if next_check is None else min(next_check, timeline[ahead].at)
    if any(o.end is None for o in occurrences):
        # an open exception grows every second: its day's figures are refreshed every minute
        due = now_ms + OPEN_REFRESH_MS
        next_check = due if next_check is None else min(next_check, due)
    days = []
    live_from = live_from_ms(now_ms, tz)
    for (d, around, w0, w1), (t, ms) in zip(plans, counts):
        days.append(DayResult(d, around, (w0, w1), ms + logged_in_ms(timeline, t, min(w1, now_ms)),
                              schedule_version(around), start < max(w0, monitoring_from), w1 > live_from))
        if w1 > now_ms:
            next_check = w1 if next_check is None else min(next_check, w1)
            if w0 <= now_ms and any(s.day == d for s in around):
                # logged-in and scheduled time still growing: refresh every MAX_STALENESS_MS, each agent at
                # its own phase so 10,000 agents don't all come due in the same tick
                phase = zlib.crc32(worker_sid.encode()) % MAX_STALENESS_MS
                stale = now_ms + MAX_STALENESS_MS - (now_ms - phase) % MAX_STALENESS_MS
                next_check = min(next_check, stale)
    holding = [o.start for o in result.occurrences if o.end is None]
    return Evaluation(worker_sid, occurrences, start, store_until, days, next_check, segments,
                      min(holding) if holding else None)


def plan_work(
    now_ms: int,
    workers: Iterable[str],
    evaluated_to: dict[str, int],
    changes: dict[str, int],
    next_checks: dict[str, int | None],
    monitoring_from: int | None,
    reevaluate_from: dict[str, int] | None = None,
) -> dict[str, int]:
    """Which agents a tick evaluates, each from which instant.

    ``evaluated_to``: how far each agent's stored results reach (the database's record, so a fresh process
    starts where the last one stopped). ``changes``: the earliest instant of each agent's journal rows
    not yet reflected in stored results. ``next_checks``: this process's cache of when an agent's result
    changes with no input (absent: unknown, so the agent is looked at). An agent never evaluated starts at
    monitoring start: a no-show is counted from the first day monitored.
    """
    if monitoring_from is None:
        return {}
    reevaluate_from = reevaluate_from or {}
    work: dict[str, int] = {}
    for w in set(workers) | set(changes) | set(reevaluate_from):
        cp = evaluated_to.get(w)
        if cp is None:
            start = monitoring_from
        else:
            candidates = []
            if w in changes:
                candidates.append(changes[w])
            if w in reevaluate_from:
                candidates.append(reevaluate_from[w])
            nxt = next_checks.get(w, cp)
            if nxt is not None and nxt <= now_ms:
                candidates.append(cp)
            if not candidates:
                continue
            start = min(candidates)
        work[w] = max(min(start, now_ms), monitoring_from)
    return work
