"""Resolution: overlapping raw segments → non-overlapping scheduled segments.

Pure functions over plain tuples, no time zones except to date a chain.

A *raw* segment is what a file says: ``Raw(start, end, activity, day, source,
order)``. Where raws overlap, the shorter one wins (a break laid over a
shift); at equal length the one listed later (higher ``order``) wins.
Lengths are counted in UTC milliseconds, so a 22:00-06:00 shift on a DST
night is 7 or 9 hours long, not 8.

``day`` is the shift's date for YAML shifts, or None for iCal events; those
get the local date on which their *chain* starts (a chain is a maximal run
of touching or overlapping resolved segments).
"""

from __future__ import annotations

import heapq
from datetime import date
from typing import Callable, NamedTuple

from ..model import Segment


class Raw(NamedTuple):
    """One segment as written in a file, before resolution."""

    start: int
    end: int
    activity: str
    day: date | None  # None: date it by its chain (iCal)
    source: str
    order: tuple  # later listed = larger


def resolve(raws: list[Raw], date_of: Callable[[int], date]) -> list[Segment]:
    """Resolve overlaps, merge touching pieces of one activity, assign days.

    ``date_of(ms)`` gives the agent-local date of an instant.
    """
    raws = [r for r in raws if r.end > r.start]
    if not raws:
        return []
    # rank: position when sorted by order (later listed = higher rank)
    ranked = sorted(range(len(raws)), key=lambda i: raws[i].order)
    rank = [0] * len(raws)
    for pos, i in enumerate(ranked):
        rank[i] = pos
    by_start = sorted(range(len(raws)), key=lambda i: raws[i].start)
    bounds = sorted({r.start for r in raws} | {r.end for r in raws})

    pieces: list[list] = []  # [start, end, raw index]
    active: list[tuple] = []  # heap of (length, -rank, end, index)
    nxt = 0
    for a, b in zip(bounds, bounds[1:]):
        while nxt < len(by_start) and raws[by_start[nxt]].start <= a:
            i = by_start[nxt]
            r = raws[i]
            heapq.heappush(active, (r.end - r.start, -rank[i], r.end, i))
            nxt += 1
        while active and active[0][2] <= a:  # ended: drop lazily from the top
            heapq.heappop(active)
        if not active:
            continue
        # the heap top may still hide ended entries below it; only the top matters
        i = active[0][3]
        if pieces and pieces[-1][1] == a and pieces[-1][2] == i:
            pieces[-1][1] = b
        else:
            pieces.append([a, b, i])

    # merge touching pieces of the same activity and the same (shift) day
    merged: list[list] = []
    for a, b, i in pieces:
        r = raws[i]
        if merged:
            m = merged[-1]
            mr = raws[m[2]]
            if m[1] == a and mr.activity == r.activity and mr.day == r.day:
                m[1] = b
                continue
        merged.append([a, b, i])

    # date the iCal pieces by their chain
    out: list[Segment] = []
    chain_day: date | None = None
    chain_end: int | None = None
    for a, b, i in merged:
        r = raws[i]
        if chain_end is None or a > chain_end:
            chain_day = r.day if r.day is not None else date_of(a)
        chain_end = b if chain_end is None else max(chain_end, b)
        out.append(Segment(a, b, r.activity, r.day if r.day is not None else chain_day, r.source))
    return out
