"""Schedules: who should be doing what, when.

Planners write YAML (a roster, weekly and dated shifts, days off), iCalendar
files and/or CSV sheets; ``load_folder`` reads a folder of them, file by
file, into a ``Schedule`` that answers "what is this agent scheduled to do
at t" (``load_schedules`` is its strict form).
See docs/schedules.md for the formats.
"""

from ..config import DEFAULT_TIME_OFF
from .loader import PATTERNS, LoadResult, ScheduleSource, load_folder, load_schedules, schedule_source
from .schedule import Schedule

__all__ = ["DEFAULT_TIME_OFF", "PATTERNS", "LoadResult", "Schedule", "ScheduleSource", "load_folder", "load_schedules",
           "schedule_source"]
