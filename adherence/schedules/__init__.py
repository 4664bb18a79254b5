"""Schedules: who should be doing what, when.

Planners write YAML (a roster, weekly and dated shifts, days off) and/or
iCalendar files; ``load_schedules`` reads a folder of them into a
``Schedule`` that answers "what is this agent scheduled to do at t".
See docs/schedules.md for the formats.
"""

from ..config import DEFAULT_TIME_OFF
from .loader import PATTERNS, load_schedules, schedule_source
from .schedule import Schedule

__all__ = ["DEFAULT_TIME_OFF", "PATTERNS", "Schedule", "load_schedules", "schedule_source"]
