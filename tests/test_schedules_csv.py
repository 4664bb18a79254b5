"""CSV schedules: the same validation (file:line) and resolution rules as YAML, and export round trips."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from click.testing import CliRunner

from adherence.cli import cli
from adherence.errors import ScheduleError
from adherence.schedules import load_schedules
from adherence.timeutil import iso

ALICE = "WK0123456789abcdef0123456789abcdef"
BOB = "WK1123456789abcdef0123456789abcdef"
ROSTER = f"""timezone: America/New_York
agents:
  alice: {{worker_sid: {ALICE}, email: alice@example.com, team: t1}}
  bob: {{worker_sid: {BOB}, email: bob@example.com, team: t1, timezone: Europe/London}}
"""
HEADER = "agent,date,start,end,activity\n"


def spans(segs):
    return [(iso(s.start), iso(s.end), s.activity, s.day.isoformat()) for s in segs]


def load(path, files: dict[str, str]):
    path.mkdir(exist_ok=True)
    for name, text in files.items():
        (path / name).write_text(text)
    return load_schedules(path, "America/New_York")


def days(first: str, n: int):
    d = date.fromisoformat(first)
    return [d + timedelta(days=i) for i in range(n)]


# each case: the same schedule as YAML dated shifts and as CSV rows
CASES = {
    "break laid over a shift": (
        "  - agents: [alice]\n    date: 2026-11-25\n    segments: ['09:00-17:00 Available', '12:00-12:30 Lunch']\n",
        "alice,2026-11-25,09:00,17:00,Available\nalice,2026-11-25,12:00,12:30,Lunch\n"),
    "overnight with a break after midnight": (
        "  - agents: [alice]\n    date: 2026-11-25\n    segments: ['22:00-06:00 Available', '02:00-02:30 Lunch']\n",
        "alice,2026-11-25,22:00,06:00,Available\nalice,2026-11-25,02:00,02:30,Lunch\n"),
    "spring-forward night lasts 7 hours": (
        "  - agents: [alice]\n    date: 2026-03-07\n    segments: ['22:00-06:00 Available']\n",
        "alice,2026-03-07,22:00,06:00,Available\n"),
    "fall-back night lasts 9 hours": (
        "  - agents: [alice]\n    date: 2026-10-31\n    segments: ['22:00-06:00 Available']\n",
        "alice,2026-10-31,22:00,06:00,Available\n"),
    "agent in another zone, 24:00 end": (
        "  - agents: [bob]\n    date: 2026-11-25\n    segments: ['16:00-24:00 Available']\n",
        "bob,2026-11-25,16:00,24:00,Available\n"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_csv_resolves_exactly_like_the_same_yaml(tmp_path, name):
    yaml_part, csv_part = CASES[name]
    y = load(tmp_path / "y", {"r.yaml": ROSTER + "shifts:\n" + yaml_part})
    c = load(tmp_path / "c", {"r.yaml": ROSTER, "s.csv": HEADER + csv_part})
    for agent in ("alice", "bob"):
        for d in days("2026-03-06", 3) + days("2026-10-30", 3) + days("2026-11-24", 3):
            assert spans(c.segments_for_day(agent, d)) == spans(y.segments_for_day(agent, d)), (agent, d)
    assert any(y.segments_for_day(a, d) for a in ("alice", "bob") for d in days("2026-03-06", 900))


def test_dst_lengths_are_real_elapsed_time(tmp_path):
    c = load(tmp_path, {"r.yaml": ROSTER, "s.csv": HEADER + CASES["spring-forward night lasts 7 hours"][1]
                        + CASES["fall-back night lasts 9 hours"][1]})
    [spring] = c.segments_for_day("alice", date(2026, 3, 7))
    [fall] = c.segments_for_day("alice", date(2026, 10, 31))
    assert (spring.end - spring.start, fall.end - fall.start) == (7 * 3600_000, 9 * 3600_000)


def test_csv_date_replaces_weekly_yaml_and_shorter_wins(tmp_path):
    weekly = "shifts:\n  - agents: [alice]\n    days: daily\n    segments: ['09:00-17:00 Available']\n"
    s = load(tmp_path, {"r.yaml": ROSTER + weekly,
                        "s.csv": HEADER + "alice,2026-11-25,13:00,21:00,Available\nalice,2026-11-25,17:00,17:30,Lunch\n"})
    assert spans(s.segments_for_day("alice", date(2026, 11, 25))) == [
        ("2026-11-25T18:00:00Z", "2026-11-25T22:00:00Z", "Available", "2026-11-25"),
        ("2026-11-25T22:00:00Z", "2026-11-25T22:30:00Z", "Lunch", "2026-11-25"),
        ("2026-11-25T22:30:00Z", "2026-11-26T02:00:00Z", "Available", "2026-11-25"),
    ]
    assert spans(s.segments_for_day("alice", date(2026, 11, 24)))[0][0] == "2026-11-24T14:00:00Z"  # weekly stays


def test_agent_by_email_or_sid_timezone_column_day_off_bom_and_semicolons(tmp_path):
    text = ("\ufeffAgent;Date;Start;End;Activity;Timezone;Comment\n"
            f"ALICE@example.com;2026-11-25;09:00;10:00;Available;;first\n"
            f"{BOB};2026-11-25;09:00;10:00;Available;America/New_York;\n"
            "alice;2026-11-26;;;PTO;;\n")
    s = load(tmp_path, {"r.yaml": ROSTER, "s.csv": text})
    assert spans(s.segments_for_day("alice", date(2026, 11, 25)))[0][:2] == ("2026-11-25T14:00:00Z",
                                                                             "2026-11-25T15:00:00Z")
    assert spans(s.segments_for_day("bob", date(2026, 11, 25)))[0][:2] == ("2026-11-25T14:00:00Z",
                                                                           "2026-11-25T15:00:00Z")
    assert s.time_off("alice", date(2026, 11, 26)) == "PTO"
    assert any("columns ignored: comment" in str(w) for w in s.warnings)


@pytest.mark.parametrize("row, expected", [
    ("zed,2026-11-25,09:00,10:00,Available", "shift: unknown agent 'zed' (expected a roster name, email or worker"),
    ("alice,2026-11-31,09:00,10:00,Available", "date: expected a date as YYYY-MM-DD"),
    ("alice,2026-11-25,09:00,25:00,Available", "bad end time 25:00"),
    ("alice,2026-11-25,9am,10:00,Available", "expected a time as HH:MM, got '9am'"),
    ("alice,2026-11-25,09:00,09:00,Available", "has no length"),
    ("alice,2026-11-25,09:00,10:00,", "activity is empty"),
    ("alice,2026-11-25,09:00,,Available", "end is empty (expected HH:MM; leave both empty for a day off)"),
    ("alice,2026-11-25,09:00,10:00,Available,Mars/Base", "unknown time zone 'Mars/Base'"),
    ("alice,2026-11-25,09:00:30,10:00,Available", "has seconds"),
])
def test_validation_names_file_line_and_expectation(tmp_path, row, expected):
    header = HEADER.replace("activity", "activity,timezone") if row.count(",") == 5 else HEADER
    with pytest.raises(ScheduleError) as err:
        load(tmp_path, {"r.yaml": ROSTER, "s.csv": header + "alice,2026-11-24,09:00,10:00,Available\n" + row + "\n"})
    messages = [str(p) for p in err.value.problems]
    assert any(m.startswith(f"{tmp_path / 's.csv'}:3: ") and expected in m for m in messages), messages


def test_header_problems_and_overlaps_with_yaml_dated_shifts(tmp_path):
    with pytest.raises(ScheduleError, match=r"s.csv:1: header is missing start, end"):
        load(tmp_path / "a", {"r.yaml": ROSTER, "s.csv": "agent,date,activity\n"})
    dated = "shifts:\n  - agents: [alice]\n    date: 2026-11-25\n    segments: ['09:00-17:00 Available']\n"
    with pytest.raises(ScheduleError, match="dated shifts for 'alice' on 2026-11-25 overlap"):
        load(tmp_path / "b", {"r.yaml": ROSTER + dated, "s.csv": HEADER + "alice,2026-11-25,16:00,18:00,Available\n"})


def export(cfg, *args):
    r = CliRunner().invoke(cli, ["schedule", "export", *args, "--config", str(cfg)])
    assert r.exit_code == 0, r.output
    return r.stdout


def test_export_round_trips_as_csv_and_ics(tmp_path):
    """The repository's example schedules (YAML + a calendar), exported and read back: the same segments."""
    import shutil
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent / "schedules"
    src = tmp_path / "src"
    shutil.copytree(repo, src / "schedules")
    (src / "config.yaml").write_text("timezone: America/New_York\nschedules: schedules\n")
    # a day off with a reason that is not a time-off name must survive too
    shifts = src / "schedules" / "shifts.yaml"
    shifts.write_text(shifts.read_text() + "  - agents: [carol]\n    dates: [2026-11-20]\n    reason: Dentist\n")
    original = load_schedules(src / "schedules", "America/New_York")
    assert original.time_off("carol", date(2026, 11, 20)) == "Dentist"
    first, n = "2026-10-26", 42  # across the fall-back weekend, overnight shifts, days off, dated shifts
    rng = ["--from", first, "--to", (date.fromisoformat(first) + timedelta(days=n - 1)).isoformat()]
    csv_text = export(src / "config.yaml", *rng)
    ics_text = export(src / "config.yaml", *rng, "--format", "ics")
    roster = (repo / "roster.yaml").read_text().replace("calendar: frank.ics", "")
    for name, text in (("export.csv", csv_text), ("export.ics", ics_text)):
        back = load_schedules(_folder(tmp_path / name, roster, name, text), "America/New_York")
        for agent in original.agents:
            for d in days(first, n):
                want = spans(original.segments_for_day(agent, d))
                got = spans(back.segments_for_day(agent, d))
                if name.endswith(".ics"):  # a calendar dates a run of touching events by its start
                    want, got = [w[:3] for w in want], [g[:3] for g in got]
                assert got == want, (name, agent, d)
                want_off = original.time_off(agent, d)
                if name.endswith(".ics") and want_off == "Dentist":
                    want_off = "Day Off"  # a calendar's time off goes by the time-off names (reason in DESCRIPTION)
                assert back.time_off(agent, d) == want_off, (name, agent, d)
    assert csv_text.count("\n") > 100


def _folder(path, roster, name, text):
    path.mkdir()
    (path / "roster.yaml").write_text(roster)
    (path / name).write_text(text)
    return path
