"""YAML schedules: roster, weekly and dated shifts, days off, zones, DST."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from adherence.model import Agent
from adherence.schedules import load_schedules
from adherence.timeutil import iso, parse_instant_ms

ALICE = "WK0123456789abcdef0123456789abcdef"
BOB = "WK1123456789abcdef0123456789abcdef"
REPO_SCHEDULES = Path(__file__).resolve().parent.parent / "schedules"


def load(tmp_path, text, tz="America/New_York", name="s.yaml"):
    (tmp_path / name).write_text(text)
    return load_schedules(tmp_path, tz)


def spans(segs):
    return [(iso(s.start), iso(s.end), s.activity) for s in segs]


ROSTER = f"""
agents:
  alice:
    worker_sid: {ALICE}
    name: Alice Example
    email: Alice@Example.com
    team: tier1
  bob:
    worker_sid: {BOB}
    team: tier2
    timezone: Europe/London
"""


def test_roster_fills_agents_with_effective_zone_and_finds_by_sid(tmp_path):
    s = load(tmp_path, ROSTER)
    assert s.agents["alice"] == Agent("alice", ALICE, "Alice Example", "alice@example.com", "tier1",
                                      "America/New_York", None)
    assert s.agents["bob"].timezone == "Europe/London"
    assert s.agent(BOB).key == "bob" and s.agent("alice").key == "alice" and s.agent("nobody") is None
    assert str(s.tz("bob")) == "Europe/London" and str(s.tz("unknown")) == "America/New_York"


def test_file_timezone_is_the_default_for_its_agents(tmp_path):
    s = load(tmp_path, "timezone: Asia/Tokyo\n" + ROSTER)
    assert s.agents["alice"].timezone == "Asia/Tokyo" and s.agents["bob"].timezone == "Europe/London"


def test_weekly_shift_with_break_laid_over_it(tmp_path):
    s = load(tmp_path, ROSTER + """
shifts:
  - agents: [alice]
    days: mon-fri
    segments:
      - 09:00-17:00 Available
      - 12:00-12:15 Break
""")
    assert spans(s.segments_for_day("alice", date(2026, 11, 23))) == [
        ("2026-11-23T14:00:00Z", "2026-11-23T17:00:00Z", "Available"),
        ("2026-11-23T17:00:00Z", "2026-11-23T17:15:00Z", "Break"),
        ("2026-11-23T17:15:00Z", "2026-11-23T22:00:00Z", "Available"),
    ]
    assert s.segments_for_day("alice", date(2026, 11, 28)) == []  # Saturday
    assert s.activities() == {"Available", "Break"}
    seg = s.segments_for_day("alice", date(2026, 11, 23))[1]
    assert seg.source.endswith("s.yaml:18") and seg.day == date(2026, 11, 23)


def test_from_until_bound_a_weekly_shift(tmp_path):
    s = load(tmp_path, ROSTER + """
shifts:
  - agents: [alice]
    days: [mon, wed]
    from: 2026-11-04
    until: 2026-11-09
    segments: ["09:00-17:00 Available"]
""")
    got = s.segments("alice", parse_instant_ms("2026-11-01T00:00Z"), parse_instant_ms("2026-11-20T00:00Z"))
    assert [x.day.isoformat() for x in got] == ["2026-11-04", "2026-11-09"]


def test_dated_shift_replaces_the_weekly_shifts_that_day(tmp_path):
    s = load(tmp_path, ROSTER + """
shifts:
  - agents: [alice, bob]
    days: weekdays
    segments: ["09:00-17:00 Available"]
  - agents: [alice]
    date: 2026-11-25
    segments: ["22:00-06:00 Available", "02:00-02:30 Lunch"]
""")
    assert spans(s.segments_for_day("alice", date(2026, 11, 25))) == [
        ("2026-11-26T03:00:00Z", "2026-11-26T07:00:00Z", "Available"),
        ("2026-11-26T07:00:00Z", "2026-11-26T07:30:00Z", "Lunch"),
        ("2026-11-26T07:30:00Z", "2026-11-26T11:00:00Z", "Available"),
    ]
    assert len(s.segments_for_day("bob", date(2026, 11, 25))) == 1  # bob keeps his weekly shift
    assert s.segments_for_day("alice", date(2026, 11, 26))[0].day == date(2026, 11, 26)


def test_days_off_by_date_range_and_team(tmp_path):
    s = load(tmp_path, ROSTER + """
shifts:
  - teams: [tier1, tier2]
    days: daily
    segments: ["09:00-17:00 Available"]
days_off:
  - agents: [alice]
    dates: [2026-11-26]
    reason: Holiday
  - teams: [tier2]
    from: 2026-11-27
    until: 2026-11-28
""")
    assert s.segments_for_day("alice", date(2026, 11, 26)) == []
    assert s.time_off("alice", date(2026, 11, 26)) == "Holiday"
    assert s.time_off("bob", date(2026, 11, 28)) == "Day Off" and s.segments_for_day("bob", date(2026, 11, 28)) == []
    assert len(s.segments_for_day("bob", date(2026, 11, 26))) == 1


def test_agent_zone_applies_to_shift_times(tmp_path):
    s = load(tmp_path, ROSTER + """
shifts:
  - agents: [alice, bob]
    days: [mon]
    segments: ["09:00-10:00 Meeting"]
""")
    assert spans(s.segments_for_day("bob", date(2026, 11, 23))) == [
        ("2026-11-23T09:00:00Z", "2026-11-23T10:00:00Z", "Meeting")]
    assert spans(s.segments_for_day("alice", date(2026, 11, 23))) == [
        ("2026-11-23T14:00:00Z", "2026-11-23T15:00:00Z", "Meeting")]


DST = ROSTER + """
shifts:
  - agents: [alice]
    days: daily
    segments: ["09:00-17:00 Available"]
  - agents: [bob]
    days: daily
    segments: ["22:00-06:00 Available"]
"""


def test_dst_spring_forward_day_and_overnight_shift_in_yaml(tmp_path):
    s = load(tmp_path, DST.replace("timezone: Europe/London", "timezone: America/New_York"))
    night = s.segments_for_day("bob", date(2026, 3, 7))
    assert spans(night) == [("2026-03-08T03:00:00Z", "2026-03-08T10:00:00Z", "Available")]  # 7 hours
    assert spans(s.segments_for_day("alice", date(2026, 3, 8))) == [
        ("2026-03-08T13:00:00Z", "2026-03-08T21:00:00Z", "Available")]
    assert spans(s.segments_for_day("alice", date(2026, 3, 7))) == [
        ("2026-03-07T14:00:00Z", "2026-03-07T22:00:00Z", "Available")]


def test_dst_fall_back_day_and_overnight_shift_in_yaml(tmp_path):
    s = load(tmp_path, DST.replace("timezone: Europe/London", "timezone: America/New_York"))
    night = s.segments_for_day("bob", date(2026, 10, 31))[0]
    assert night.end - night.start == 9 * 3600_000
    assert (iso(night.start), iso(night.end)) == ("2026-11-01T02:00:00Z", "2026-11-01T11:00:00Z")
    assert spans(s.segments_for_day("alice", date(2026, 11, 1))) == [
        ("2026-11-01T14:00:00Z", "2026-11-01T22:00:00Z", "Available")]


def test_at_returns_segment_in_force_or_none(tmp_path):
    s = load(tmp_path, DST)
    assert s.at("alice", parse_instant_ms("2026-11-23T15:00Z")).activity == "Available"
    assert s.at("alice", parse_instant_ms("2026-11-23T22:00Z")) is None  # end is exclusive
    # an overnight segment from the day before, across a week boundary (Sunday night → Monday)
    seg = s.at("bob", parse_instant_ms("2026-11-23T03:00Z"))
    assert seg.day == date(2026, 11, 22) and seg.activity == "Available"
    assert s.at("nobody", 0) is None


def test_segments_are_not_clipped_and_include_overlapping_ones(tmp_path):
    s = load(tmp_path, DST)
    got = s.segments("bob", parse_instant_ms("2026-11-23T05:00Z"), parse_instant_ms("2026-11-23T05:01Z"))
    assert spans(got) == [("2026-11-22T22:00:00Z", "2026-11-23T06:00:00Z", "Available")]
    assert s.segments("nobody", 0, 10**13) == []


def test_repo_example_schedules_load_cleanly():
    s = load_schedules(REPO_SCHEDULES, "America/New_York")
    assert len(s.agents) == 6 and {a.team for a in s.agents.values()} == {"tier1", "tier2"}
    assert s.warnings == []
    assert s.segments_for_day("frank", date(2026, 11, 23))  # from frank.ics
    assert s.time_off("bob", date(2026, 11, 27)) == "PTO"
