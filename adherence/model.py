"""The engine's shared value types.

Times are integer epoch milliseconds (UTC) everywhere inside the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import NamedTuple

TASK_STATES = ("active", "wrapping", "reserved", "none")
UNKNOWN_ACTIVITY = "Unknown"
LOGGED_OUT = frozenset({"Offline", UNKNOWN_ACTIVITY})


class Snapshot(NamedTuple):
    """An agent's actual state, effective from ``at`` until the next snapshot."""

    at: int  # epoch ms (date_last_processed_event, or receipt time when that is null)
    activity: str  # TaskRouter activity name; "Unknown" when null
    task: str  # one of TASK_STATES
    flagged: bool = False  # True when ``at`` fell back to the receipt time

    # Kept small on purpose: the tracker holds millions of these (10,000 agents
    # × a day of records). The event SID and channels live in the journal.


class Segment(NamedTuple):
    """One resolved stretch of scheduled activity: [start, end) in epoch ms."""

    start: int
    end: int
    activity: str
    day: date  # the local date (agent's zone) on which the segment's shift starts
    source: str = ""  # "file:line" it came from, for explanations


@dataclass(frozen=True)
class Agent:
    """A roster entry. ``key`` is the planner's name for the agent (``alice``)."""

    key: str
    worker_sid: str
    name: str | None = None
    email: str | None = None
    team: str | None = None
    timezone: str = "UTC"
    calendar: str | None = None
