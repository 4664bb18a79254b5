"""A roster of real-world calendar exports, one per agent: bad files fail alone, good ones load.

The corpus (tests/calendars/realworld/, see its README) comes from the test
suites of icalendar and recurring-ical-events. Each refused file is listed
here with the reason, so a change in what is accepted is a visible decision.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import pytest
import recurring_ical_events
import x_wr_timezone

from adherence.schedules import load_folder
from adherence.timeutil import to_ms

CORPUS = Path(__file__).parent / "calendars" / "realworld"
TZ = "Europe/Berlin"

# file → what the refusal says (each cannot be read as a schedule, see docs/schedules.md)
REFUSED = {
    "ical_broken_dtstart.ics": "bad DTSTART: Expected datetime",
    "ical_broken_ical.ics": "bad DTSTART: Content line could not be parsed",
    "ical_fuzz_testcase_invalid_month.ics": "not an iCalendar file",
    "ical_invalid_duration.ics": "bad DURATION: Impractical iCalendar duration",
    "ical_issue_104_broken_calendar.ics": "not a valid iCalendar file: ValueError: Content line",
    "ical_issue_1081_invalid_rrule_freq.ics": "bad RRULE: Expected frequency",
    "ical_issue_1633_rdate_with_dates_and_tzid.ics": "event has no SUMMARY",
    "ical_issue_168_input.ics": "event has no SUMMARY",
    "ical_issue_722_missing_timezones.ics": "DTSTART is missing",
    "ical_multiple_timezones.ics": "event has no SUMMARY",
    "ical_pacific_fiji.ics": "DTSTART is missing",
    "ical_parsing_error_in_UTC_offset.ics": "Offset must be less than 24 hours",
    "ical_rfc_7529.ics": "RRULE uses RSCALE=CHINESE",
    "ical_timezone_rdate.ics": "bad SUMMARY: Content line could not be parsed",
    "rie_bad_rrule_missing_until_event.ics": "cannot expand its recurrence (BadRuleStringFormat: UNTIL parameter is",
}
# accepted with a warning: the reading taken, as recurring-ical-events takes it
MENDED = {
    "rie_recurring_events_moved.ics": "has both DTEND and DURATION; DTEND is used",
    "rie_issue_132_swapped_start_and_end.ics": "read with the two swapped",
    "rie_end_before_start_event.ics": "read with the two swapped",
    "rie_issue_201_mixed_datetime_and_date.ics": "DTSTART and DTEND mix a date and a date-time",
    "ical_issue_165_missing_event.ics": "RRULE has spaces between its values",
    "ical_issue_313_globally_unique_tzid.ics": "is a globally unique TZID; guessing it means 'America/New_York'",
}
DST = ["rie_daylight_saving_time.ics", "rie_issue_48_daylight_aware_repeats.ics", "rie_issue_48_dst.ics",
       "rie_x_wr_timezone_simple_events_issue_59.ics", "rie_issue_86_x_wr_timezone_without_time_zone_in_dt.ics"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("realworld")
    files = sorted(CORPUS.glob("*.ics"))
    lines = ["agents:"]
    owner = {}
    for i, f in enumerate(files):
        shutil.copy(f, folder / f.name)
        key = f"a{i:03d}"
        owner[f.name] = key
        lines.append(f"  {key}: {{worker_sid: WK{i:032x}, email: {key}@example.com, calendar: {f.name}}}")
    (folder / "roster.yaml").write_text("\n".join(lines) + "\n")
    return folder, owner, load_folder(folder, TZ)


def test_corpus_is_big_enough_to_mean_something():
    assert len(list(CORPUS.glob("*.ics"))) >= 50


def test_bad_files_fail_alone_and_say_why(corpus):
    folder, owner, result = corpus
    broken = {Path(st.file).name: st for st in result.broken}
    assert set(broken) == set(REFUSED)
    for name, st in broken.items():
        assert any(REFUSED[name] in p.message for p in st.problems), (name, [str(p) for p in st.problems])
        assert st.agents == {owner[name]} and st.in_force == "nothing"
        assert all(p.file and len(str(p)) < 600 for p in st.problems)
    sched = result.schedule
    assert len(sched.agents) == len(owner)  # every agent is known, whatever their calendar
    for name, key in owner.items():  # every good calendar is in force for its agent
        assert bool(sched._plans[key].calendars) == (name not in REFUSED), name


def test_mended_quirks_are_warned_with_file_and_line_once(corpus):
    folder, owner, result = corpus
    text = [str(w) for w in result.warnings]
    assert len(text) == len(set(text))
    for name, what in MENDED.items():
        assert any(name in w and what in w for w in text), (name, [w for w in text if name in w])
    assert not any("bad None" in w or "a property ignored" in w for w in text)


def _library(path: Path, start: datetime, end: datetime, tz: ZoneInfo):
    """The timed occurrences as recurring-ical-events gives them (Google's X-WR-TIMEZONE applied first)."""
    cal = x_wr_timezone.to_standard(icalendar.Calendar.from_ical(path.read_bytes()))
    out = []
    for occ in recurring_ical_events.of(cal).between(start, end):
        s, e = occ["DTSTART"].dt, occ.get("DTEND", occ["DTSTART"]).dt
        if not isinstance(s, datetime) or str(occ.get("STATUS", "")).upper() == "CANCELLED":
            continue
        s, e = (d if d.tzinfo else d.replace(tzinfo=tz) for d in (s, e))
        if e > s:
            out.append((to_ms(s), to_ms(e), str(occ["SUMMARY"]).strip()))
    return sorted(out)


@pytest.mark.parametrize("name", DST)
def test_dst_exports_expand_as_recurring_ical_events_expands_them(corpus, name):
    folder, owner, result = corpus
    tz = ZoneInfo(TZ)
    cal = icalendar.Calendar.from_ical((CORPUS / name).read_bytes())
    starts = [ev["DTSTART"].dt for ev in cal.walk("VEVENT")]
    first = min((d if isinstance(d, datetime) else datetime(d.year, d.month, d.day)).replace(tzinfo=None)
                for d in starts)
    start = datetime(first.year, first.month, first.day, tzinfo=tz) - timedelta(days=1)
    end = start + timedelta(days=400)  # a spring and an autumn change, whatever the start
    want = _library(CORPUS / name, start, end, tz)
    assert want, "the library finds occurrences in this span"
    lo, hi = to_ms(start), to_ms(end)
    got = [(x.start, x.end, x.activity) for x in result.schedule.segments(owner[name], lo, hi)
           if x.start >= lo and x.end <= hi]
    inner = [w for w in want if w[0] >= lo and w[1] <= hi]
    assert _union(got) == _union(inner)  # scheduled exactly when the library says something happens
    for s, e, what in got:  # and each piece is the shortest occurrence there (the resolution rule)
        mid = (s + e) // 2
        covering = [w for w in inner if w[0] <= mid < w[1]]
        shortest = min(w[1] - w[0] for w in covering)
        assert what in {w[2] for w in covering if w[1] - w[0] == shortest}, (s, e, what)


def _union(intervals):
    out: list[list[int]] = []
    for s, e, *_ in sorted(intervals):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return out
