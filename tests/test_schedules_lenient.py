"""iCal quirks that real exporters produce: read the one clear way, with a warning at file:line.

And the hostile ones: a recurrence too dense to be a schedule is refused
fast, naming the file, the event and the reason, never minutes of work.
"""

from __future__ import annotations

import time
from datetime import date, timedelta

import pytest

from adherence.errors import ScheduleError
from adherence.schedules import load_folder, load_schedules
from adherence.schedules.ical import MAX_PER_DAY, MAX_PER_WINDOW
from adherence.timeutil import iso

ALICE = "WK0123456789abcdef0123456789abcdef"


def cal(*events: str) -> str:
    body = "".join(f"BEGIN:VEVENT\nUID:e{i}@x\nDTSTAMP:20261101T000000Z\n{e.strip()}\nEND:VEVENT\n"
                   for i, e in enumerate(events))
    return f"BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//test//EN\n{body}END:VCALENDAR\n"


def folder(tmp_path, text: str):
    (tmp_path / "a.ics").write_text(text)
    (tmp_path / "roster.yaml").write_text(f"agents:\n  alice: {{worker_sid: {ALICE}, calendar: a.ics}}\n")
    return tmp_path


def segs(s, d="2026-11-25"):
    return [(iso(x.start), iso(x.end), x.activity) for x in s.segments_for_day("alice", date.fromisoformat(d))]


def warnings_of(s):
    return [str(w) for w in s.warnings]


def test_dtend_and_duration_both_given_dtend_wins(tmp_path):
    s = load_schedules(folder(tmp_path, cal(
        "SUMMARY:Available\nDTSTART:20261125T140000Z\nDTEND:20261125T220000Z\nDURATION:PT1H")), "UTC")
    assert segs(s) == [("2026-11-25T14:00:00Z", "2026-11-25T22:00:00Z", "Available")]
    assert any("a.ics:10: event 'Available': has both DTEND and DURATION; DTEND is used" in w
               for w in warnings_of(s))


@pytest.mark.parametrize("start, end, want", [
    ("DTSTART:20261125T220000Z", "DTEND;VALUE=DATE:20261126", ("2026-11-25T22:00:00Z", "2026-11-26T00:00:00Z")),
    ("DTSTART;TZID=Europe/Berlin:20261125T200000", "DTEND;VALUE=DATE:20261126",
     ("2026-11-25T19:00:00Z", "2026-11-25T23:00:00Z")),
])
def test_timed_start_with_a_date_end_ends_at_that_midnight(tmp_path, start, end, want):
    s = load_schedules(folder(tmp_path, cal(f"SUMMARY:Available\n{start}\n{end}")), "UTC")
    assert segs(s) == [(*want, "Available")]
    assert any("DTSTART and DTEND mix a date and a date-time" in w and "a.ics:9" in w for w in warnings_of(s))


def test_all_day_start_with_a_timed_end_is_an_all_day_event(tmp_path):
    s = load_schedules(folder(tmp_path, cal("SUMMARY:PTO\nDTSTART;VALUE=DATE:20261125\nDTEND:20261126T000000Z")),
                       "UTC")
    assert s.time_off("alice", date(2026, 11, 25)) == "PTO" and s.time_off("alice", date(2026, 11, 26)) is None


def test_end_before_start_is_read_swapped(tmp_path):
    s = load_schedules(folder(tmp_path, cal(
        "SUMMARY:Available\nDTSTART:20261125T220000Z\nDTEND:20261125T140000Z")), "UTC")
    assert segs(s) == [("2026-11-25T14:00:00Z", "2026-11-25T22:00:00Z", "Available")]
    assert any("read with the two swapped" in w for w in warnings_of(s))


def test_an_unparsable_line_is_named_by_its_property(tmp_path):
    text = cal("SUMMARY:Available\nDTSTART:20261125T140000Z\nDTEND:20261125T220000Z\nX-APPLE-RADIUS=49.9")
    s = load_schedules(folder(tmp_path, text), "UTC")  # an unknown extension: ignored, loud
    [w] = [w for w in warnings_of(s) if "X-APPLE-RADIUS" in w]
    assert "a.ics:10: event 'Available': X-APPLE-RADIUS ignored, it cannot be read" in w and "None" not in w
    text = cal("SUMMARY:Available\nDTSTART;;VALUE=DATE-TIME:20261125T140000\nDTEND:20261125T220000Z")
    with pytest.raises(ScheduleError) as err:  # the start itself: refused, by name
        load_schedules(folder(tmp_path, text), "UTC")
    assert "a.ics:8: event 'Available': bad DTSTART: Content line could not be parsed" in str(err.value.problems[0])


def test_a_recurring_all_day_event_with_moved_occurrences_warns_once(tmp_path):
    text = cal("SUMMARY:Team day\nDTSTART;VALUE=DATE:20261102\nRRULE:FREQ=WEEKLY;COUNT=5",
               "SUMMARY:Team day\nRECURRENCE-ID;VALUE=DATE:20261109\nDTSTART;VALUE=DATE:20261110",
               "SUMMARY:Team day\nRECURRENCE-ID;VALUE=DATE:20261116\nDTSTART;VALUE=DATE:20261117")
    text = text.replace("UID:e1@x", "UID:e0@x").replace("UID:e2@x", "UID:e0@x")
    s = load_schedules(folder(tmp_path, text), "UTC")
    team = [w for w in warnings_of(s) if "Team day" in w]
    assert len(team) == 1 and "(also at lines" in team[0]


def test_rrule_with_spaces_between_values_is_read_without_them(tmp_path):
    s = load_schedules(folder(tmp_path, cal(
        "SUMMARY:Available\nDTSTART:20261123T140000Z\nDTEND:20261123T220000Z\n"
        "RRULE:FREQ=DAILY;COUNT=5;BYDAY=MO, TU, WE")), "UTC")
    assert segs(s) and segs(s, "2026-11-26") == []
    assert any("RRULE has spaces between its values" in w for w in warnings_of(s))


@pytest.mark.parametrize("rule", ["FREQ=SECONDLY", "FREQ=MINUTELY;UNTIL=20991231T000000Z",
                                  "FREQ=SECONDLY;BYHOUR=9", "FREQ=MINUTELY;BYDAY=SA;INTERVAL=2"])
def test_a_recurrence_too_dense_for_a_schedule_is_refused_fast_with_its_reason(tmp_path, rule):
    text = cal(f"SUMMARY:Available\nDTSTART:20261125T140000Z\nDURATION:PT1S\nRRULE:{rule}",
               "SUMMARY:Other\nDTSTART:20261125T140000Z\nDTEND:20261125T150000Z")
    t0 = time.monotonic()
    result = load_folder(folder(tmp_path, text), "UTC")
    assert time.monotonic() - t0 < 5
    [problem] = result.problems
    assert f"a.ics:7: event 'Available': repeats more than {MAX_PER_DAY} times within 24 hours (RRULE:FREQ=" \
        in str(problem) and str(problem).endswith(f"; a schedule has at most {MAX_PER_DAY} segments a day)")


def test_a_sparse_rule_with_many_occurrences_is_fine(tmp_path):
    text = cal("SUMMARY:Break\nDTSTART:20261125T140000Z\nDURATION:PT5M\nRRULE:FREQ=HOURLY;BYHOUR=9,11,13,15")
    s = load_schedules(folder(tmp_path, text), "UTC")
    assert len(segs(s, "2026-11-26")) == 4


def test_a_calendar_expanding_to_too_much_in_a_week_is_an_error_not_minutes_of_work(tmp_path):
    per_event = 24 * 11  # hourly, over the 11 days one week's expansion looks at
    n = MAX_PER_WINDOW // per_event + 1
    events = [f"SUMMARY:Task {i}\nDTSTART:20261101T00{i:02d}00Z\nDURATION:PT1M\nRRULE:FREQ=HOURLY"
              for i in range(n)]
    result = load_folder(folder(tmp_path, cal(*events)), "UTC")
    assert result.problems == []  # each rule alone is a possible schedule
    s = result.schedule
    t0 = time.monotonic()
    assert s.segments_for_day("alice", date(2026, 11, 25)) == []
    assert time.monotonic() - t0 < 10
    [(problem, (since, agents))] = s.expansion_problems.items()
    assert agents == {"alice"} and problem.file.endswith("a.ics")
    assert f"more than {MAX_PER_WINDOW:,}" in problem.message and "most from event 'Task" in problem.message


def test_cannot_expand_always_says_why(tmp_path):
    text = cal("SUMMARY:Available\nDTSTART:20261125T140000Z\nDTEND:20261125T150000Z\n"
               "RRULE:FREQ=WEEKLY;BYDAY=TH;UNTL=20261231")
    [problem] = load_folder(folder(tmp_path, text), "UTC").problems
    assert "cannot expand its recurrence (" in problem.message and problem.message.rstrip(")").strip()[-1] != "("


VTZ = """BEGIN:VTIMEZONE
TZID:{tzid}
BEGIN:STANDARD
DTSTART:16011104T020000
RRULE:FREQ=YEARLY;BYDAY=1SU;BYMONTH=11
TZOFFSETFROM:{dst}
TZOFFSETTO:{std}
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:16010311T020000
RRULE:FREQ=YEARLY;BYDAY=2SU;BYMONTH=3
TZOFFSETFROM:{std}
TZOFFSETTO:{dst}
END:DAYLIGHT
END:VTIMEZONE
"""


# (icalendar keeps one zone per TZID per process: each case has its own TZID)
@pytest.mark.parametrize("tzid, std, dst, want", [
    ("Eastern Standard Time", "-0500", "-0400", "2026-11-25T17:00:00Z"),
    ("US Eastern Standard Time", "-0300", "-0200", "2026-11-25T15:00:00Z"),  # not what Indianapolis says
])
def test_an_outlook_vtimezone_is_read_through_the_iana_zone_only_when_they_agree(tmp_path, tzid, std, dst, want):
    """Outlook's 1601-based VTIMEZONE made every week's expansion cost 0.2 s; the IANA zone says the same."""
    text = cal(f"SUMMARY:Available\nDTSTART;TZID={tzid}:20261102T120000\n"
               f"DTEND;TZID={tzid}:20261102T160000\nRRULE:FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR")
    text = text.replace("PRODID:-//test//EN\n", "PRODID:-//test//EN\n" + VTZ.format(tzid=tzid, std=std, dst=dst))
    s = load_schedules(folder(tmp_path, text), "UTC")
    assert segs(s)[0][0] == want  # the file's own offsets when they differ from the zone's
    tzinfo = s._plans["alice"].calendars[0].events[0].component["DTSTART"].dt.tzinfo
    assert (type(tzinfo).__name__ == "ZoneInfo") == (std == "-0500")
    t0 = time.monotonic()
    for week in range(20):
        s.segments_for_day("alice", date(2026, 1, 5) + timedelta(days=7 * week))
    assert std != "-0500" or time.monotonic() - t0 < 1
