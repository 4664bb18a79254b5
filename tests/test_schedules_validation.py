"""Every schedule file error names file, line and what was expected; all are reported at once."""

from __future__ import annotations

import pytest

from adherence.errors import ScheduleError
from adherence.schedules import load_schedules

ALICE = "WK0123456789abcdef0123456789abcdef"
BOB = "WK1123456789abcdef0123456789abcdef"


def problems(tmp_path, files: dict[str, str], tz="America/New_York"):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ScheduleError) as err:
        load_schedules(tmp_path, tz)
    return [str(p) for p in err.value.problems], err.value.problems


def where(tmp_path, name, line):
    return f"{tmp_path / name}:{line}: "


ROSTER = f"agents:\n  alice:\n    worker_sid: {ALICE}\n    email: alice@example.com\n"


@pytest.mark.parametrize("text, line, expected", [
    (ROSTER + "shifts:\n  - agents: [alice, zed]\n    days: [mon]\n    segments: ['09:00-10:00 A']\n",
     6, "unknown agent 'zed' (expected a roster name: alice)"),
    (ROSTER + "shifts:\n  - agents: [alice]\n    days: [mon]\n    segments:\n      - 09:00-25:00 Available\n",
     9, "bad end time 25:00"),
    (ROSTER + "shifts:\n  - agents: [alice]\n    days: [mon]\n    segments:\n      - 9 to 5 Available\n",
     9, "expected a segment like '09:00-12:00 Available'"),
    (ROSTER + "shifts:\n  - agents: [alice]\n    days: [mon]\n    segments:\n      - 09:00-09:00 Available\n",
     9, "has no length"),
    (ROSTER + "    timezone: America/Gotham\n", 5, "unknown time zone 'America/Gotham'"),
    ("timezone: Mars/Base\n" + ROSTER, 1, "unknown time zone 'Mars/Base'"),
    (ROSTER + "    shift: early\n", 5, "unknown key 'shift' in agent 'alice'"),
    (ROSTER + "shifts:\n  - agents: [alice]\n    day: [mon]\n    segments: ['09:00-10:00 A']\n",
     7, "unknown key 'day' in shift"),
    (ROSTER + "holidays: []\n", 5, "unknown key 'holidays' in a schedule file (expected one of: timezone, agents"),
    (ROSTER + "shifts:\n  - agents: [alice]\n    days: [mon, funday]\n    segments: ['09:00-10:00 A']\n",
     7, "unknown day 'funday'"),
    (ROSTER + "shifts:\n  - agents: [alice]\n    date: 2026-02-30\n    segments: ['09:00-10:00 A']\n",
     7, "invalid date 2026-02-30 (expected a real date as YYYY-MM-DD)"),
    (ROSTER + "shifts:\n  - agents: [alice]\n    date: next tuesday\n    segments: ['09:00-10:00 A']\n",
     7, "shift date: expected a date as YYYY-MM-DD, got 'next tuesday'"),
    (ROSTER + "shifts:\n  - agents: [alice]\n    days: [mon]\n    from: 2026-12-01\n    until: 2026-11-01\n"
     "    segments: ['09:00-10:00 A']\n", 9, "until 2026-11-01 is before from 2026-12-01"),
    ("agents:\n  alice:\n    worker_sid: WK123\n", 3, "bad worker_sid 'WK123' (expected WK followed by 32 hex digits)"),
    ("agents:\n  alice:\n    name: Alice\n", 2, "worker_sid is required"),
    (ROSTER + "    calendar: missing.ics\n", 5, "calendar file 'missing.ics' not found"),
    (ROSTER + "shifts:\n  - agents: [alice]\n    days: [mon]\n", 6, "segments are required"),
    (ROSTER + "shifts:\n  - agents: [alice]\n    segments: ['09:00-10:00 A']\n", 6, "expected days"),
    (ROSTER + "days_off:\n  - agents: [alice]\n    dates: [2026-11-31]\n", 7, "invalid date 2026-11-31"),
    (ROSTER + "shifts:\n  - teams: [tier9]\n    days: [mon]\n    segments: ['09:00-10:00 A']\n",
     6, "unknown team 'tier9'"),
    ("agents: [alice]\n", 1, "agents: expected a mapping"),
    ("agents:\n  alice: {worker_sid: " + ALICE + "}\n  alice: {worker_sid: " + BOB + "}\n", 3, "duplicate key"),
])
def test_validation_error_names_file_line_and_expectation(tmp_path, text, line, expected):
    messages, _ = problems(tmp_path, {"s.yaml": text})
    assert any(m.startswith(where(tmp_path, "s.yaml", line)) and expected in m for m in messages), messages


def test_duplicate_worker_sid_across_files_names_both_places(tmp_path):
    messages, _ = problems(tmp_path, {
        "a.yaml": ROSTER,
        "b.yaml": f"agents:\n  bob:\n    worker_sid: {ALICE.upper().replace('WK', 'WK', 1)[:2] + ALICE[2:]}\n",
    })
    assert messages == [f"{tmp_path / 'b.yaml'}:3: duplicate worker_sid {ALICE} for 'bob' "
                        f"(already used by 'alice' at {tmp_path / 'a.yaml'}:3)"]


def test_duplicate_agent_and_email_are_errors(tmp_path):
    messages, _ = problems(tmp_path, {
        "a.yaml": ROSTER,
        "b.yaml": f"agents:\n  alice: {{worker_sid: {BOB}}}\n  bob: {{worker_sid: WK{'9' * 32}, email: ALICE@example.com}}\n",
    })
    assert any("b.yaml:2: duplicate agent 'alice'" in m for m in messages)
    assert any("b.yaml:3: duplicate email alice@example.com" in m for m in messages)


def test_overlapping_dated_shifts_are_an_error(tmp_path):
    messages, _ = problems(tmp_path, {"s.yaml": ROSTER + """shifts:
  - agents: [alice]
    date: 2026-11-25
    segments: ["09:00-17:00 Available"]
  - agents: [alice]
    date: 2026-11-25
    segments: ["16:00-18:00 Available"]
"""})
    assert messages == [f"{tmp_path / 's.yaml'}:9: dated shifts for 'alice' on 2026-11-25 overlap "
                        f"(this one and the one at {tmp_path / 's.yaml'}:6; expected one shift per time of day)"]


def test_dated_shift_on_a_day_off_is_an_error(tmp_path):
    messages, _ = problems(tmp_path, {"s.yaml": ROSTER + """shifts:
  - agents: [alice]
    date: 2026-11-25
    segments: ["09:00-17:00 Available"]
days_off:
  - agents: [alice]
    dates: [2026-11-25]
"""})
    assert len(messages) == 1 and "s.yaml:6: agent 'alice' has both a dated shift and a day off" in messages[0]


def test_all_problems_of_all_files_are_reported_at_once(tmp_path):
    messages, probs = problems(tmp_path, {
        "a.yaml": ROSTER + "shifts:\n  - agents: [zed]\n    days: [mon]\n    segments: ['25:00-26:00 A']\n",
        "b.yaml": "agents:\n  bob: {worker_sid: nope}\n",
        "c.yaml": "agents: [\n",
    })
    files = sorted({p.file.rsplit("/", 1)[-1] for p in probs})
    assert files == ["a.yaml", "b.yaml", "c.yaml"] and len(messages) == 4
    assert all(p.line for p in probs)


def test_missing_folder_and_bad_default_zone_are_clear_errors(tmp_path):
    with pytest.raises(ScheduleError, match="schedules folder not found"):
        load_schedules(tmp_path / "nope", "America/New_York")
    with pytest.raises(ScheduleError, match="unknown time zone 'Nowhere/Land'"):
        load_schedules(tmp_path, "Nowhere/Land")


def test_empty_folder_loads_with_a_warning(tmp_path):
    s = load_schedules(tmp_path, "UTC")
    assert s.agents == {} and "no schedule files" in s.warnings[0].message
