"""The evaluation loop end to end: webhook → tick → stored exceptions and adherence.

The seed's example is pinned here, plus late records, approvals and the
agreement of live ticking with an offline recompute.
"""

from __future__ import annotations

import shutil
from datetime import date

import pytest

from adherence.queries import Filters, adherence, set_approval
from adherence.timeutil import iso, parse_instant_ms

from conftest import REPO, Center

ANN = "WK" + "a" * 32
NATE = "WK" + "b" * 32
ROSTER = f"""
timezone: America/New_York
agents:
  ann: {{worker_sid: {ANN}, name: Ann, team: tier1}}
  nate: {{worker_sid: {NATE}, name: Nate, team: nights}}
shifts:
  - agents: [ann]
    days: [mon, tue, wed, thu, fri, sat, sun]
    segments:
      - 09:00-17:00 Available
      - 12:00-12:15 Break
  - agents: [nate]
    days: [mon, tue, wed, thu, fri, sat, sun]
    segments:
      - 22:00-06:00 Available
"""


def T(local: str) -> int:
    """'2026-11-24 09:40' New York time (EST, UTC-5 in late November) → epoch ms."""
    d, t = local.split()
    return parse_instant_ms(f"{d}T{t}:00-05:00")


@pytest.fixture
def mini(tmp_path):
    (tmp_path / "schedules").mkdir()
    (tmp_path / "schedules" / "roster.yaml").write_text(ROSTER)
    shutil.copytree(REPO / "rules", tmp_path / "rules", ignore=shutil.ignore_patterns("tests"))
    (tmp_path / "config.yaml").write_text(
        "database: a.db\ntimezone: America/New_York\nschedules: schedules\nrules: rules\n")
    return tmp_path


def test_offline_four_minutes_is_grace(mini):
    c = Center(mini, T("2026-11-24 08:55"))
    c.send(ANN, T("2026-11-24 08:58"), "Available")
    c.send(ANN, T("2026-11-24 09:40"), "Offline")
    c.tick(T("2026-11-24 09:43"))
    c.send(ANN, T("2026-11-24 09:44"), "Available")
    c.tick(T("2026-11-24 09:50"))
    assert c.exceptions() == []
    day = c.day(ANN, "2026-11-24")
    assert day["out_of_adherence_seconds"] == 0 and day["adherence_percent"] == 100.0
    assert day["scheduled_seconds"] == 50 * 60 - 15 * 0  # 09:00-09:50 elapsed


def test_offline_six_minutes_is_one_exception_from_when_offline_began(mini):
    c = Center(mini, T("2026-11-24 08:55"))
    c.send(ANN, T("2026-11-24 08:58"), "Available")
    c.send(ANN, T("2026-11-24 09:40"), "Offline")
    c.tick(T("2026-11-24 09:44"))
    assert c.exceptions() == []  # still within grace
    c.tick(T("2026-11-24 09:46"))
    (exc,) = c.exceptions()
    assert exc["rule"] == "offline-when-scheduled-available" and exc["severity"] == "critical"
    assert exc["start"] == iso(T("2026-11-24 09:40")) and exc["end"] is None and exc["status"] == "open"
    assert exc["scheduled_activity"] == "Available" and exc["actual_activity"] == "Offline"
    assert exc["agent"] == "ann" and exc["team"] == "tier1"
    first_id = exc["id"]
    c.tick(T("2026-11-24 09:50"))
    (exc,) = c.exceptions(status="open")
    assert exc["id"] == first_id and exc["duration_seconds"] == 600
    c.send(ANN, T("2026-11-24 09:52"), "Available")
    c.tick(T("2026-11-24 10:00"))
    (exc,) = c.exceptions()
    assert exc["id"] == first_id and exc["status"] == "closed" and exc["end"] == iso(T("2026-11-24 09:52"))
    day = c.day(ANN, "2026-11-24")
    assert day["scheduled_seconds"] == 3600 and day["out_of_adherence_seconds"] == 12 * 60
    assert day["adherence_percent"] == round(48 / 60 * 100, 2)
    assert day["exceptions"] == 1


def test_no_show_is_out_of_adherence(mini):
    """An agent the feed never mentions is not logged in: scheduled Available → exception."""
    c = Center(mini, T("2026-11-24 08:00"))
    c.send(NATE, T("2026-11-24 08:00"), "Offline")  # monitoring starts with the first record
    c.tick(T("2026-11-24 09:30"))
    (exc,) = c.exceptions(agent="ann")
    assert exc["start"] == iso(T("2026-11-24 09:00")) and exc["actual_activity"] == "Unknown"


def test_late_record_changes_a_past_result(mini):
    c = Center(mini, T("2026-11-24 08:55"))
    c.send(ANN, T("2026-11-24 08:58"), "Available")
    c.tick(T("2026-11-24 11:00"))
    assert c.exceptions() == []
    # a record that Twilio delivered late: Ann was Offline 09:30-09:45
    c.send(ANN, T("2026-11-24 09:45"), "Available")
    c.send(ANN, T("2026-11-24 09:30"), "Offline")
    c.tick(T("2026-11-24 11:00:15".replace(":15", "")) + 15_000)
    (exc,) = c.exceptions()
    assert (exc["start"], exc["end"]) == (iso(T("2026-11-24 09:30")), iso(T("2026-11-24 09:45")))
    assert c.day(ANN, "2026-11-24")["out_of_adherence_seconds"] == 15 * 60


def test_exception_across_midnight_on_overnight_shift_belongs_to_the_start_day(mini):
    c = Center(mini, T("2026-11-24 21:00"))
    c.send(NATE, T("2026-11-24 21:55"), "Available")
    c.send(NATE, T("2026-11-24 23:50"), "Offline")
    c.tick(T("2026-11-25 00:30"))
    c.send(NATE, T("2026-11-25 00:20"), "Available")
    c.tick(T("2026-11-25 06:30"))
    (exc,) = c.exceptions(agent="nate", rule="offline-when-scheduled-available")
    assert exc["day"] == "2026-11-24"
    assert (exc["start"], exc["end"]) == (iso(T("2026-11-24 23:50")), iso(T("2026-11-25 00:20")))
    day = c.day(NATE, "2026-11-24")
    assert day["scheduled_seconds"] == 8 * 3600 and day["out_of_adherence_seconds"] == 30 * 60
    (by_date,) = c.exceptions(date="2026-11-24", agent="nate", rule="offline-when-scheduled-available")
    # staying Available after the shift is overtime, listed on the next day
    (overtime,) = c.exceptions(agent="nate", rule="available-when-unscheduled")
    assert overtime["start"] == iso(T("2026-11-25 06:00")) and overtime["day"] == "2026-11-25"
    assert by_date["id"] == exc["id"]


def test_approval_survives_recompute_and_changes_the_figures(mini):
    c = Center(mini, T("2026-11-24 08:55"))
    c.send(ANN, T("2026-11-24 08:58"), "Available")
    c.send(ANN, T("2026-11-24 10:00"), "Offline")
    c.send(ANN, T("2026-11-24 10:20"), "Available")
    c.send(ANN, T("2026-11-24 12:00"), "Break")
    c.send(ANN, T("2026-11-24 12:15"), "Available")
    c.send(ANN, T("2026-11-24 17:00"), "Offline")
    c.tick(T("2026-11-24 18:00"))
    (exc,) = c.exceptions()
    before = c.day(ANN, "2026-11-24")
    assert before["out_of_adherence_seconds"] == 1200 and before["approved_seconds"] == 0
    set_approval(c.engine, exc["id"], True, by="sam", note="doctor's appointment")
    after = c.day(ANN, "2026-11-24")
    assert after["out_of_adherence_seconds"] == 0 and after["approved_seconds"] == 1200
    assert after["adherence_percent"] == 100.0
    c.engine.runner.recompute(date(2026, 11, 24), date(2026, 11, 24))
    (again,) = c.exceptions()
    assert again["id"] == exc["id"] and again["approved"] and again["note"] == "doctor's appointment"
    assert again["approved_by"] == "sam"
    assert c.day(ANN, "2026-11-24") == after
    set_approval(c.engine, exc["id"], False)
    assert c.day(ANN, "2026-11-24")["out_of_adherence_seconds"] == 1200


def test_live_ticks_equal_recompute(mini):
    c = Center(mini, T("2026-11-24 08:00"))
    events = [("08:58", "Available", "none"), ("09:30", "Available", "active"), ("10:01", "Offline", "none"),
              ("10:09", "Available", "none"), ("12:03", "Break", "none"), ("12:22", "Available", "none"),
              ("13:00", "Unavailable", "none"), ("13:07", "Unavailable", "wrapping"), ("13:10", "Available", "none"),
              ("17:05", "Offline", "none")]
    ticks = ["09:00", "10:05", "10:07", "10:20", "12:20", "13:30", "17:30"]
    ei = 0
    for tk in ticks:
        while ei < len(events) and T(f"2026-11-24 {events[ei][0]}") <= T(f"2026-11-24 {tk}"):
            c.send(ANN, T(f"2026-11-24 {events[ei][0]}"), events[ei][1], events[ei][2])
            ei += 1
        c.tick(T(f"2026-11-24 {tk}"))
    live_exc = [(e["rule"], e["start"], e["end"]) for e in c.exceptions(agent="ann")]
    live_day = c.day(ANN, "2026-11-24")
    assert live_exc  # this day has exceptions
    # an offline recompute on a copy of the journal only
    import sqlite3

    dst = sqlite3.connect(mini / "b.db")
    c.engine.store.reader.backup(dst)
    dst.close()
    other = Center(mini, T("2026-11-24 17:30"), db="b.db")
    other.engine.store.reader.execute("SELECT 1")
    with other.engine.store.write() as conn:
        conn.execute("DELETE FROM exceptions")
        conn.execute("DELETE FROM adherence")
    other.engine.runner.recompute(date(2026, 11, 24), date(2026, 11, 24))
    assert [(e["rule"], e["start"], e["end"]) for e in other.exceptions(agent="ann")] == live_exc
    rec_day = other.day(ANN, "2026-11-24")
    assert {k: v for k, v in rec_day.items() if k != "as_of"} == {k: v for k, v in live_day.items() if k != "as_of"}


def test_after_a_stop_evaluation_resumes_where_it_stopped(mini):
    c = Center(mini, T("2026-11-20 08:00"))
    c.send(ANN, T("2026-11-20 08:58"), "Available")
    c.tick(T("2026-11-20 12:00"))
    c.engine.close()
    # the service was down for four days; Ann stayed Available (a record at each shift start)
    later = Center(mini, T("2026-11-24 08:00"))
    for d in ("21", "22", "23"):
        later.send(ANN, T(f"2026-11-{d} 08:59"), "Available")
    later.tick(T("2026-11-24 08:00"))
    days = [r["date"] for r in adherence(later.engine, Filters.parse({"agent": ANN}, allowed=["agent"]))[0]]
    assert {"2026-11-20", "2026-11-21", "2026-11-22", "2026-11-23"} <= set(days)


def test_a_25_hour_day_counts_logged_in_time_from_its_first_hour(mini):
    """On the night clocks fall back the day is 25 h long: a tick late that day still sees its first hour."""
    edt = lambda hm: parse_instant_ms(f"2026-11-01T{hm}:00-04:00")  # noqa: E731
    est = lambda hm: parse_instant_ms(f"2026-11-01T{hm}:00-05:00")  # noqa: E731
    c = Center(mini, edt("00:00"))
    c.send(NATE, edt("00:00"), "Offline")  # monitoring starts
    for at, act in [("00:01", "Available"), ("00:04", "Offline"), ("00:10", "Available"), ("00:50", "Offline")]:
        c.send(ANN, edt(at), act)
    c.tick(edt("00:30"))
    c.send(ANN, est("08:58"), "Available")
    c.send(ANN, est("17:00"), "Offline")
    c.tick(est("23:20"))
    c.tick(est("23:40"))
    c.tick(est("23:59"))
    row = c.day(ANN, "2026-11-01")
    assert row["logged_in_seconds"] == (3 + 40) * 60 + (8 * 60 + 2) * 60


def test_an_open_exception_updates_the_days_figures_every_minute(mini):
    c = Center(mini, T("2026-11-24 08:55"))
    c.send(ANN, T("2026-11-24 08:58"), "Available")
    c.send(ANN, T("2026-11-24 09:40"), "Offline")
    c.tick(T("2026-11-24 09:46"))
    assert c.day(ANN, "2026-11-24")["out_of_adherence_seconds"] == 6 * 60
    c.tick(T("2026-11-24 09:47"))
    assert c.day(ANN, "2026-11-24")["out_of_adherence_seconds"] == 7 * 60
