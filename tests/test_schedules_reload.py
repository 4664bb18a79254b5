"""Hot reload: a broken edit is reported and the last good schedule stays in force."""

from __future__ import annotations

import os
import shutil
from datetime import date
from pathlib import Path

from adherence.config import load_config
from adherence.schedules import schedule_source

ALICE = "WK0123456789abcdef0123456789abcdef"
GOOD = f"""agents:
  alice: {{worker_sid: {ALICE}}}
shifts:
  - agents: [alice]
    days: daily
    segments: ["09:00-17:00 Available"]
"""


def touch_later(path: Path, text: str) -> None:
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))  # a visible mtime change


def config_for(tmp_path):
    (tmp_path / "schedules").mkdir()
    (tmp_path / "config.yaml").write_text("timezone: America/New_York\nschedules: schedules\n")
    return load_config(tmp_path / "config.yaml")


def test_broken_edit_keeps_last_good_schedule_and_reports_the_error(tmp_path, caplog):
    cfg = config_for(tmp_path)
    f = tmp_path / "schedules" / "team.yaml"
    f.write_text(GOOD)
    source = schedule_source(cfg)
    assert source.check() is True
    good = source.current
    assert good.segments_for_day("alice", date(2026, 11, 23))

    touch_later(f, GOOD.replace("09:00-17:00", "09:00-27:00"))
    assert source.check() is False
    assert source.current is good
    assert source.status()["ok"] is False
    assert any("team.yaml:6" in e and "bad end time 27:00" in e for e in source.errors)

    touch_later(f, GOOD.replace("09:00-17:00", "10:00-18:00"))
    assert source.check() is True and source.errors == []
    assert source.current.segments_for_day("alice", date(2026, 11, 23))[0].activity == "Available"
    assert source.current is not good and source.version == 2


def test_unchanged_folder_is_not_reloaded_and_new_ics_is_picked_up(tmp_path):
    cfg = config_for(tmp_path)
    (tmp_path / "schedules" / "team.yaml").write_text(
        GOOD.replace("{worker_sid:", "{email: alice@example.com, worker_sid:")
        + "  - agents: [bob]\n    days: [mon]\n    segments: ['09:00-10:00 Available']\n"
        + "days_off: []\n")
    (tmp_path / "schedules" / "bob.yaml").write_text(
        f"agents:\n  bob: {{worker_sid: WK{'1' * 32}, email: bob@example.com}}\n")
    source = schedule_source(cfg)
    assert source.check() is True and source.check() is False
    shutil.copy(Path(__file__).parent / "calendars" / "attendee_calendar.ics", tmp_path / "schedules" / "meet.ics")
    assert source.check() is True
    assert "Meeting" in source.current.activities()


def test_calendar_outside_the_folder_is_watched_too(tmp_path):
    cfg = config_for(tmp_path)
    outside = tmp_path / "alice.ics"
    shutil.copy(Path(__file__).parent / "calendars" / "floating_times.ics", outside)
    (tmp_path / "schedules" / "team.yaml").write_text(
        f"agents:\n  alice: {{worker_sid: {ALICE}, calendar: ../alice.ics}}\n")
    source = schedule_source(cfg)
    assert source.check() is True
    source.check()  # the first load learns about ../alice.ics; from now on it is watched
    assert source.check() is False
    touch_later(outside, "garbage\n")
    assert source.check() is False and "not an iCalendar file" in source.errors[0]
