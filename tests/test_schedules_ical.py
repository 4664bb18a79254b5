"""iCal schedules: one small calendar per RFC 5545 feature, plus realistic exports."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest

from adherence.errors import ScheduleError
from adherence.schedules import load_schedules
from adherence.timeutil import iso, parse_instant_ms

CALENDARS = Path(__file__).parent / "calendars"
ALICE = "WK0123456789abcdef0123456789abcdef"
BOB = "WK1123456789abcdef0123456789abcdef"
CAROL = "WK2123456789abcdef0123456789abcdef"


def owned(tmp_path, name, tz="America/New_York"):
    """A folder where alice's roster entry names the calendar ``name``."""
    shutil.copy(CALENDARS / name, tmp_path / name)
    (tmp_path / "roster.yaml").write_text(
        f"agents:\n  alice:\n    worker_sid: {ALICE}\n    email: alice@example.com\n    calendar: {name}\n"
    )
    return load_schedules(tmp_path, tz)


def attendee_based(tmp_path, name):
    shutil.copy(CALENDARS / name, tmp_path / name)
    (tmp_path / "roster.yaml").write_text(
        "agents:\n"
        f"  alice: {{worker_sid: {ALICE}, email: alice@example.com}}\n"
        f"  bob: {{worker_sid: {BOB}, email: bob@example.com}}\n"
        f"  carol: {{worker_sid: {CAROL}, email: carol@example.com, timezone: Europe/Berlin}}\n"
    )
    return load_schedules(tmp_path, "America/New_York")


def spans(segs):
    return [(iso(s.start), iso(s.end), s.activity) for s in segs]


def day(s, agent, d):
    return spans(s.segments_for_day(agent, date.fromisoformat(d)))


def test_rrule_count_and_until_stop_the_series(tmp_path):
    s = owned(tmp_path, "rrule_count_until.ics")
    got = spans(s.segments("alice", parse_instant_ms("2026-03-01T00:00Z"), parse_instant_ms("2026-03-31T00:00Z")))
    assert [g[0][:10] for g in got if g[2] == "Available"] == ["2026-03-02", "2026-03-03", "2026-03-04"]
    # UNTIL 2026-03-16T13:00Z includes the Monday 16th 08:00 EDT (12:00Z) occurrence, nothing after
    assert [g[0] for g in got if g[2] == "Training"] == [
        "2026-03-09T12:00:00Z", "2026-03-11T12:00:00Z", "2026-03-16T12:00:00Z"]


def test_rdate_adds_and_exdate_removes_occurrences(tmp_path):
    s = owned(tmp_path, "rdate_exdate.ics")
    got = s.segments("alice", parse_instant_ms("2026-03-01T00:00Z"), parse_instant_ms("2026-03-10T00:00Z"))
    assert [seg.day.isoformat() for seg in got] == ["2026-03-02", "2026-03-03", "2026-03-05", "2026-03-06",
                                                    "2026-03-07"]


def test_recurrence_id_override_moves_and_resizes_single_occurrences(tmp_path):
    s = owned(tmp_path, "recurrence_id_override.ics")
    assert day(s, "alice", "2026-03-02") == [("2026-03-02T14:00:00Z", "2026-03-02T22:00:00Z", "Available")]
    assert day(s, "alice", "2026-03-03") == [("2026-03-03T16:00:00Z", "2026-03-04T00:00:00Z", "Available")]  # moved
    assert day(s, "alice", "2026-03-04") == [("2026-03-04T14:00:00Z", "2026-03-04T18:00:00Z", "Available")]  # resized
    assert day(s, "alice", "2026-03-05") == [("2026-03-05T14:00:00Z", "2026-03-05T22:00:00Z", "Available")]


def test_duration_instead_of_dtend_and_break_laid_over(tmp_path):
    s = owned(tmp_path, "duration_instead_of_dtend.ics")
    assert day(s, "alice", "2026-03-02") == [
        ("2026-03-02T14:00:00Z", "2026-03-02T17:00:00Z", "Available"),
        ("2026-03-02T17:00:00Z", "2026-03-02T17:15:00Z", "Break"),
        ("2026-03-02T17:15:00Z", "2026-03-02T21:30:00Z", "Available"),
    ]
    assert day(s, "alice", "2026-03-03") == [("2026-03-03T14:00:00Z", "2026-03-03T21:30:00Z", "Available")]


def test_floating_times_take_the_agents_zone(tmp_path):
    ny = owned(tmp_path, "floating_times.ics")
    assert day(ny, "alice", "2026-03-02") == [("2026-03-02T14:00:00Z", "2026-03-02T22:00:00Z", "Available")]
    (tmp_path / "roster.yaml").write_text(
        f"agents:\n  alice:\n    worker_sid: {ALICE}\n    timezone: Europe/Paris\n    calendar: floating_times.ics\n")
    paris = load_schedules(tmp_path, "America/New_York")
    assert day(paris, "alice", "2026-03-02") == [("2026-03-02T08:00:00Z", "2026-03-02T16:00:00Z", "Available")]


def test_cancelled_occurrences_and_events_are_dropped(tmp_path):
    s = owned(tmp_path, "cancelled_occurrence.ics")
    got = s.segments("alice", parse_instant_ms("2026-03-01T00:00Z"), parse_instant_ms("2026-03-06T00:00Z"))
    assert [(seg.day.isoformat(), seg.activity) for seg in got] == [
        ("2026-03-02", "Available"), ("2026-03-04", "Available")]
    assert "Meeting" not in s.activities()


def test_all_day_time_off_clears_the_day_and_other_all_day_events_warn(tmp_path):
    s = owned(tmp_path, "all_day_time_off.ics")
    assert day(s, "alice", "2026-03-03") == [] and day(s, "alice", "2026-03-04") == []
    assert s.time_off("alice", date(2026, 3, 3)) == "PTO"
    assert s.time_off("alice", date(2026, 3, 5)) is None
    assert len(day(s, "alice", "2026-03-05")) == 1
    assert len(s.warnings) == 1 and "Team birthday" in s.warnings[0].message
    assert s.warnings[0].line == 40 and s.warnings[0].file.endswith("all_day_time_off.ics")
    assert "PTO" not in s.activities()


def test_attendee_emails_assign_events_and_overrides_can_drop_an_attendee(tmp_path):
    s = attendee_based(tmp_path, "attendee_calendar.ics")
    alice = s.segments("alice", parse_instant_ms("2026-03-02T00:00Z"), parse_instant_ms("2026-03-05T00:00Z"))
    bob = s.segments("bob", parse_instant_ms("2026-03-02T00:00Z"), parse_instant_ms("2026-03-05T00:00Z"))
    # alice: the stand-up every day, but not the shift she declined
    assert [(iso(x.start), x.activity) for x in alice] == [
        ("2026-03-02T14:30:00Z", "Meeting"), ("2026-03-03T14:30:00Z", "Meeting"), ("2026-03-04T14:30:00Z", "Meeting")]
    # bob: his shift with the stand-up laid over it, except on the 3rd, whose override no longer lists him
    assert [x.activity for x in bob if x.day == date(2026, 3, 2)] == ["Available", "Meeting", "Available"]
    assert [x.activity for x in bob if x.day == date(2026, 3, 3)] == ["Available"]


def test_dst_spring_forward_day_and_overnight_shift(tmp_path):
    s = owned(tmp_path, "dst_day_and_overnight.ics")
    night = s.segments_for_day("alice", date(2026, 3, 7))[-1]
    assert (iso(night.start), iso(night.end)) == ("2026-03-08T03:00:00Z", "2026-03-08T10:00:00Z")
    assert night.end - night.start == 7 * 3600_000
    assert day(s, "alice", "2026-03-08") == [("2026-03-08T13:00:00Z", "2026-03-08T21:00:00Z", "Available")]


def test_dst_fall_back_day_and_overnight_shift(tmp_path):
    s = owned(tmp_path, "dst_day_and_overnight.ics")
    night = s.segments_for_day("alice", date(2026, 10, 31))[-1]
    assert (iso(night.start), iso(night.end), night.activity) == (
        "2026-11-01T02:00:00Z", "2026-11-01T11:00:00Z", "Night")
    assert night.end - night.start == 9 * 3600_000
    assert day(s, "alice", "2026-11-01") == [("2026-11-01T14:00:00Z", "2026-11-01T22:00:00Z", "Available")]


def test_google_export_uses_x_wr_timezone_and_vtimezone(tmp_path):
    s = owned(tmp_path, "google_export.ics")
    # the UTC-written lunch recurs at 12:00 New York time on both sides of the DST change
    assert ("2026-10-26T16:00:00Z", "2026-10-26T16:30:00Z", "Lunch") in day(s, "alice", "2026-10-26")
    assert ("2026-11-02T17:00:00Z", "2026-11-02T17:30:00Z", "Lunch") in day(s, "alice", "2026-11-02")
    assert ("2026-11-04T19:00:00Z", "2026-11-04T20:00:00Z", "Training") in day(s, "alice", "2026-11-04")
    assert s.time_off("alice", date(2026, 11, 11)) == "Holiday" and day(s, "alice", "2026-11-11") == []


def test_google_x_wr_timezone_keeps_local_hour_of_utc_recurrences(tmp_path):
    s = owned(tmp_path, "google_x_wr_timezone_utc.ics", tz="Europe/London")
    assert day(s, "alice", "2026-10-26")[0][:2] == ("2026-10-26T13:00:00Z", "2026-10-26T21:00:00Z")
    assert day(s, "alice", "2026-11-02")[0][:2] == ("2026-11-02T14:00:00Z", "2026-11-02T22:00:00Z")
    # a floating time in a calendar with X-WR-TIMEZONE is that zone's, not the agent's
    assert day(s, "alice", "2026-10-27") == [("2026-10-27T13:00:00Z", "2026-10-27T14:00:00Z", "Meeting")]


def test_outlook_export_with_windows_zone_names(tmp_path):
    s = owned(tmp_path, "outlook_export.ics")
    assert day(s, "alice", "2026-10-28") == [
        ("2026-10-28T13:00:00Z", "2026-10-28T17:00:00Z", "Available"),
        ("2026-10-28T17:00:00Z", "2026-10-28T18:00:00Z", "Meeting"),  # 18:00 W. Europe Standard Time
        ("2026-10-28T18:00:00Z", "2026-10-28T21:00:00Z", "Available"),
    ]
    assert day(s, "alice", "2026-11-02") == [("2026-11-02T14:00:00Z", "2026-11-02T22:00:00Z", "Available")]
    assert day(s, "alice", "2026-11-26") == [] and s.time_off("alice", date(2026, 11, 26)) == "Holiday"
    assert day(s, "alice", "2027-01-01") == []  # after UNTIL


def test_outlook_windows_zone_without_vtimezone_overnight_over_fall_back(tmp_path):
    s = owned(tmp_path, "outlook_windows_zone_no_vtimezone.ics")
    night = s.segments_for_day("alice", date(2026, 10, 31))
    assert spans(night) == [("2026-11-01T02:00:00Z", "2026-11-01T11:00:00Z", "Available")]


def test_thunderbird_export_with_exdate_in_utc_and_moved_occurrence(tmp_path):
    s = owned(tmp_path, "thunderbird_export.ics")
    assert day(s, "alice", "2026-10-28") == [("2026-10-28T14:30:00Z", "2026-10-28T14:45:00Z", "Break")]
    assert day(s, "alice", "2026-10-30")[0] == ("2026-10-30T11:00:00Z", "2026-10-30T14:30:00Z", "Available")
    assert s.warnings == []


def test_nextcloud_export_assigns_by_attendee_in_berlin_time(tmp_path):
    s = attendee_based(tmp_path, "nextcloud_export.ics")
    assert day(s, "carol", "2026-10-26") == [
        ("2026-10-26T07:00:00Z", "2026-10-26T11:00:00Z", "Available"),
        ("2026-10-26T11:00:00Z", "2026-10-26T11:45:00Z", "Lunch"),
        ("2026-10-26T11:45:00Z", "2026-10-26T15:30:00Z", "Available"),
    ]
    assert s.segments("alice", 0, parse_instant_ms("2027-01-01T00:00Z")) == []


def test_globally_unique_tzid_loads_with_a_schedule_warning(tmp_path):
    s = owned(tmp_path, "globally_unique_tzid.ics")
    assert day(s, "alice", "2026-03-02") == [("2026-03-02T14:00:00Z", "2026-03-02T22:00:00Z", "Available")]
    assert any("globally unique" in w.message for w in s.warnings)


def test_ical_segment_source_names_file_and_line(tmp_path):
    s = owned(tmp_path, "rrule_count_until.ics")
    seg = s.segments_for_day("alice", date(2026, 3, 2))[0]
    assert seg.source.endswith("rrule_count_until.ics:27")  # the SUMMARY line of the VEVENT


@pytest.mark.parametrize("name, expected", [
    ("unknown_tzid.ics", ["unknown_tzid.ics:8: event 'Available': unknown time zone 'Mars/Olympus_Mons' in DTSTART",
                          "unknown_tzid.ics:9:"]),
    ("bad_rrule.ics", ["bad_rrule.ics:17: event 'Available': bad RRULE"]),
    ("not_a_calendar.ics", ["not_a_calendar.ics:1: not an iCalendar file"]),
    ("truncated.ics", ["truncated.ics:1: not a valid iCalendar file"]),
    ("missing_summary_and_end_before_start.ics", [
        "missing_summary_and_end_before_start.ics:7: event has no SUMMARY",
        # (line 15's DTEND before DTSTART is read swapped, with a warning: see test_schedules_lenient.py)
        "missing_summary_and_end_before_start.ics:21: event 'Available': bad DTSTART"]),
])
def test_broken_calendars_are_refused_with_file_and_line(tmp_path, name, expected):
    with pytest.raises(ScheduleError) as err:
        owned(tmp_path, name)
    messages = err.value.messages
    assert len(messages) == len(expected)
    for m, e in zip(messages, expected):
        assert e in m


def test_calendar_naming_no_roster_agent_is_an_unknown_agent_error(tmp_path):
    shutil.copy(CALENDARS / "attendee_calendar.ics", tmp_path / "team.ics")
    (tmp_path / "roster.yaml").write_text(f"agents:\n  zed: {{worker_sid: {ALICE}, email: zed@example.com}}\n")
    with pytest.raises(ScheduleError) as err:
        load_schedules(tmp_path, "America/New_York")
    assert any("team.ics:" in m and "unknown agent" in m and "mailto:alice@example.com" in m
               for m in err.value.messages)


def test_every_shipped_test_calendar_loads_or_is_refused_cleanly(tmp_path):
    for path in sorted(CALENDARS.glob("*.ics")):
        folder = tmp_path / path.stem
        folder.mkdir()
        try:
            owned(folder, path.name)
        except ScheduleError as exc:
            assert exc.problems and all(p.file for p in exc.problems)


def test_guessed_zone_warning_comes_back_on_every_load(tmp_path):
    """icalendar warns once per process; a hot reload or a second `check` must still tell the planner."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = owned(tmp_path / "a", "globally_unique_tzid.ics")
    second = owned(tmp_path / "b", "globally_unique_tzid.ics")
    for s in (first, second):
        assert any("globally unique" in w.message for w in s.warnings)


def test_guessed_zone_warning_even_when_icalendar_guessed_earlier_in_the_process(tmp_path):
    import warnings

    import icalendar

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # icalendar guesses (and caches) the zone here, silently
        cal = icalendar.Calendar.from_ical((CALENDARS / "globally_unique_tzid.ics").read_bytes())
        _ = cal.walk("VEVENT")[0]["DTSTART"].dt
    s = owned(tmp_path, "globally_unique_tzid.ics")
    assert any("globally unique" in w.message and "'America/New_York'" in w.message for w in s.warnings)
