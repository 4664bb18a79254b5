"""Write the resolved schedule back out as CSV or iCalendar.

Planners keep schedules in spreadsheets and calendars; exporting what
Adherence understood lets them check it in the tool they know and edit it
there. The output reads back to the same segments: resolved segments never
overlap, so the "shorter wins" rule has nothing to decide on the way back.

CSV rows are written per shift day in time order, with local wall-clock
times and the agent's zone, so the day a segment belongs to survives the
round trip (a row starting earlier than its shift's first row is read as
after midnight, the same rule the writer relies on). iCalendar events are
written in UTC, which is exact whatever the zone.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta, timezone

import icalendar

from ..timeutil import from_ms
from .schedule import Schedule

CSV_HEADER = ("agent", "date", "start", "end", "activity", "timezone")


def _days(first: date, last: date):
    d = first
    while d <= last:
        yield d
        d += timedelta(days=1)


def to_csv(schedule: Schedule, agents: list[str], first: date, last: date) -> str:
    """The resolved segments of ``agents`` on the shift days ``first``..``last``, as a CSV schedule."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(CSV_HEADER)
    for key in agents:
        tz = schedule.tz(key)
        tzname = str(tz.key)
        for d in _days(first, last):
            off = schedule.time_off(key, d)
            if off:
                w.writerow((key, d.isoformat(), "", "", off, tzname))
            for s in schedule.segments_for_day(key, d):
                ls, le = from_ms(s.start).astimezone(tz), from_ms(s.end).astimezone(tz)
                end = le.strftime("%H:%M")
                if le.date() > ls.date() and end == "00:00":
                    end = "24:00"
                w.writerow((key, s.day.isoformat(), ls.strftime("%H:%M"), end, s.activity, tzname))
    return out.getvalue()


def to_ics(schedule: Schedule, agents: list[str], first: date, last: date, stamp: datetime | None = None,
           time_off: tuple[str, ...] = ("Day Off",)) -> str:
    """The same segments as an iCalendar file: one event per segment, ATTENDEE naming its agent.

    A calendar's all-day event is time off only under a time-off name, so a day off
    with another reason ("Dentist") is written under the first time-off name, with
    the reason as its DESCRIPTION.
    """
    stamp = stamp or datetime.now(timezone.utc).replace(microsecond=0)
    names = {str(n).strip().lower() for n in time_off}
    fallback = next((n for n in time_off if str(n).strip().lower() == "day off"), time_off[0] if time_off else "Day Off")
    cal = icalendar.Calendar()
    cal.add("VERSION", "2.0")
    cal.add("PRODID", "-//adherence//schedule export//EN")
    for key in agents:
        agent = schedule.agents.get(key)
        email = agent.email if agent else None
        for d in _days(first, last):
            off = schedule.time_off(key, d)
            if off:
                ev = icalendar.Event()
                ev.add("UID", f"{key}-{d.isoformat()}-off@adherence")
                ev.add("DTSTAMP", stamp)
                ev.add("DTSTART", d)
                ev.add("DTEND", d + timedelta(days=1))
                if off.strip().lower() in names:
                    ev.add("SUMMARY", off)
                else:
                    ev.add("SUMMARY", fallback)
                    ev.add("DESCRIPTION", off)
                if email:
                    ev.add("ATTENDEE", f"mailto:{email}")
                cal.add_component(ev)
            for i, s in enumerate(schedule.segments_for_day(key, d)):
                ev = icalendar.Event()
                ev.add("UID", f"{key}-{d.isoformat()}-{i}@adherence")
                ev.add("DTSTAMP", stamp)
                ev.add("DTSTART", from_ms(s.start))
                ev.add("DTEND", from_ms(s.end))
                ev.add("SUMMARY", s.activity)
                if email:
                    ev.add("ATTENDEE", f"mailto:{email}")
                cal.add_component(ev)
    return cal.to_ical().decode()
