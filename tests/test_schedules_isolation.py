"""One broken schedule file never blocks everyone: each file loads or fails on its own.

A file in error keeps its own last good version (or, at first load,
contributes nothing); every other file loads; only what depends on the
broken part fails. /health, `check`, the board and the logs name the file
and the agents it affects, one bounded line per problem.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from adherence.cli import cli
from adherence.config import load_config
from adherence.errors import ScheduleError
from adherence.schedules import load_folder, load_schedules, schedule_source

from conftest import make_engine

CALENDARS = Path(__file__).parent / "calendars"
SIDS = {name: f"WK{i:032x}" for i, name in enumerate(["alice", "bob", "carol", "dave"], start=1)}
MON = date(2026, 11, 23)


def roster(*names, calendars=None):
    calendars = calendars or {}
    out = "agents:\n"
    for n in names:
        out += f"  {n}:\n    worker_sid: {SIDS[n]}\n    email: {n}@example.com\n    team: t\n"
        if n in calendars:
            out += f"    calendar: {calendars[n]}\n"
    return out


SHIFTS = ("shifts:\n  - agents: [alice, bob, carol]\n    days: daily\n"
          "    segments: ['09:00-17:00 Available', '12:00-12:30 Lunch']\n")


def touch_later(path: Path, text: str) -> None:
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))


def folder(tmp_path, files: dict[str, str]) -> Path:
    d = tmp_path / "schedules"
    d.mkdir(exist_ok=True)
    for name, text in files.items():
        (d / name).write_text(text)
    (tmp_path / "config.yaml").write_text("timezone: America/New_York\nschedules: schedules\n")
    return d


def acts(schedule, agent, day=MON):
    return [s.activity for s in schedule.segments_for_day(agent, day)]


def test_a_broken_calendar_fails_alone_at_first_load(tmp_path):
    d = folder(tmp_path, {"roster.yaml": roster("alice", "bob", calendars={"bob": "bob.ics"}),
                          "shifts.yaml": SHIFTS.replace("alice, bob, carol", "alice"),
                          "bob.ics": (CALENDARS / "truncated.ics").read_text()})
    r = load_folder(d, "America/New_York")
    assert acts(r.schedule, "alice") == ["Available", "Lunch", "Available"]
    assert "bob" in r.schedule.agents and acts(r.schedule, "bob") == []  # known, nothing scheduled
    [broken] = r.broken
    assert broken.file.endswith("bob.ics") and broken.agents == {"bob"} and broken.in_force == "nothing"
    with pytest.raises(ScheduleError):  # the strict form (check) still refuses
        load_schedules(d, "America/New_York")


def test_a_shift_naming_an_agent_of_a_broken_roster_fails_only_for_that_agent(tmp_path):
    d = folder(tmp_path, {"a.yaml": roster("alice", "carol"),
                          "b.yaml": roster("bob").replace(SIDS["bob"], "WK-not-a-sid"),
                          "shifts.yaml": SHIFTS})
    r = load_folder(d, "America/New_York")
    assert acts(r.schedule, "alice") and acts(r.schedule, "carol") and "bob" not in r.schedule.agents
    messages = [str(p) for p in r.problems]
    assert len(messages) == 1 and "b.yaml:3: agent 'bob': bad worker_sid" in messages[0]  # no "unknown agent bob"
    assert any("agent 'bob' is defined in" in str(w) and "b.yaml" in str(w) for w in r.warnings)
    assert [st.agents for st in r.broken] == [{"bob"}]


def test_cross_file_errors_drop_only_the_entry_in_error(tmp_path):
    d = folder(tmp_path, {"roster.yaml": roster("alice", "bob"),
                          "shifts.yaml": SHIFTS.replace("alice, bob, carol", "alice, bob, zed")})
    r = load_folder(d, "America/New_York")
    assert acts(r.schedule, "alice") and acts(r.schedule, "bob")
    [st] = r.broken
    assert st.in_force == "this version, without the entries in error"
    assert "unknown agent 'zed'" in str(st.problems[0])


def test_reload_keeps_each_files_last_good_version(tmp_path):
    d = folder(tmp_path, {"roster.yaml": roster("alice", "bob"),
                          "alice.yaml": SHIFTS.replace("alice, bob, carol", "alice"),
                          "bob.yaml": SHIFTS.replace("alice, bob, carol", "bob").replace("09:00", "10:00")})
    source = schedule_source(load_config(tmp_path / "config.yaml"))
    assert source.check() and source.status()["ok"]
    touch_later(d / "bob.yaml", "shifts: [\n")  # broken
    touch_later(d / "alice.yaml", SHIFTS.replace("alice, bob, carol", "alice").replace("Lunch", "Break"))
    assert source.check() is True  # alice's edit is in force ...
    assert acts(source.current, "alice") == ["Available", "Break", "Available"]
    assert source.current.segments_for_day("bob", MON)[0].start % 86_400_000 == 15 * 3600_000  # ... bob's last good
    st = source.status()
    assert st["ok"] is False and st["files_in_error"] == 1
    [f] = st["broken_files"]
    assert f["file"].endswith("bob.yaml") and f["agents"] == ["bob"] and f["in_force"].startswith("last good")
    since = f["since"]
    assert source.agent_problem("bob")["files"] == [f["file"]] and source.agent_problem("alice") is None
    assert source.agent_problem(SIDS["bob"]) is not None
    version = source.version
    touch_later(d / "bob.yaml", "shifts: [\n  \n")  # still broken, differently: nothing new in force
    assert source.check() is False and source.version == version
    assert source.status()["broken_files"][0]["since"] == since  # broken since the first time
    touch_later(d / "bob.yaml", SHIFTS.replace("alice, bob, carol", "bob"))
    assert source.check() is True and source.status()["ok"] and source.agent_problem("bob") is None


def test_logs_say_each_problem_once_in_bounded_lines(tmp_path, caplog):
    bad = "shifts:\n" + "".join(f"  - agents: [zed{i}]\n    days: daily\n    segments: ['09:00-10:00 A']\n"
                                for i in range(60))
    bad += "  - agents: [" + "y" * 50_000 + "]\n    days: daily\n    segments: ['09:00-10:00 A']\n"
    d = folder(tmp_path, {"roster.yaml": roster("alice"), "bad.yaml": bad})
    source = schedule_source(load_config(tmp_path / "config.yaml"))
    with caplog.at_level(logging.INFO, logger="adherence"):
        source.check()
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert 1 < len(lines) <= 25 and max(len(x) for x in lines) <= 600
    assert "agents affected" in lines[0] and "more problem(s)" in lines[-1]
    caplog.clear()
    touch_later(d / "more.yaml", SHIFTS.replace("alice, bob, carol", "alice"))  # another file changes, bad.yaml does not
    with caplog.at_level(logging.INFO, logger="adherence"):
        source.check()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(str(source.status())) < 40_000


def test_check_fails_but_names_files_and_agents(tmp_path):
    folder(tmp_path, {"roster.yaml": roster("alice", "bob", calendars={"bob": "bob.ics"}),
                      "bob.ics": "garbage\n"})
    (tmp_path / "rules").mkdir()
    r = CliRunner().invoke(cli, ["check", "--config", str(tmp_path / "config.yaml")])
    assert r.exit_code != 0
    assert "bob.ics:1: not an iCalendar file" in r.output
    assert "agents affected: bob" in r.output


def test_show_works_for_an_agent_whose_files_are_fine_and_warns_once(tmp_path):
    folder(tmp_path, {"roster.yaml": roster("alice", "bob", "carol", calendars={"bob": "bob.ics", "carol": "dst.ics"}),
                      "shifts.yaml": SHIFTS.replace("alice, bob, carol", "alice"),
                      "bob.ics": (CALENDARS / "truncated.ics").read_text(),
                      "dst.ics": (CALENDARS / "realworld" / "rie_daylight_saving_time.ics").read_text()})
    cfg = str(tmp_path / "config.yaml")
    r = CliRunner().invoke(cli, ["schedule", "show", "carol", "--from", "2019-03-25", "--to", "2019-04-05",
                                 "--format", "json", "--config", cfg])
    assert r.exit_code == 0, r.output  # a perfectly good calendar, while another file is broken
    assert len(json.loads(r.stdout)) > 3 and r.stderr.count("bob.ics") == 1
    r = CliRunner().invoke(cli, ["schedule", "show", "alice", "--date", "2026-11-23", "--config", cfg])
    assert r.exit_code == 0, r.output
    assert "Lunch" in r.stdout
    assert r.stderr.count("bob.ics") == 1 and "agents affected: bob" in r.stderr
    r = CliRunner().invoke(cli, ["schedule", "show", "bob", "--date", "2026-11-23", "--config", cfg])
    assert r.exit_code == 1 and "bob.ics" in r.output and "in error" in r.output


def test_health_and_board_flag_the_agents_of_a_broken_file(workdir, clock):
    (workdir / "schedules" / "frank.ics").write_text("BEGIN:VCALENDAR\nBEGIN:VEVENT\n")  # truncated export
    engine = make_engine(workdir, clock)
    try:
        from adherence.web import create_app

        client = create_app(engine=engine).test_client()
        health = client.get("/health").get_json()
        sched = health["schedules"]
        assert health["ok"] is False and sched["ok"] is False and sched["files_in_error"] == 1
        assert sched["broken_files"][0]["agents"] == ["frank"] and sched["broken_files"][0]["in_force"] == "nothing"
        assert any("frank.ics" in e for e in sched["errors"])
        rows = {r["agent"]: r for r in client.get("/api/agents").get_json()["agents"]}
        assert rows["frank"]["schedule_problem"]["files"][0].endswith("frank.ics")
        assert rows["frank"]["schedule_problem"]["since"].endswith("Z")
        assert rows["bob"]["schedule_problem"] is None
        assert rows["bob"]["scheduled_activity"] == "Available"  # everyone else is scheduled, live
        assert engine.runner.segments("bob", clock.now_ms() - 3600_000, clock.now_ms())
    finally:
        engine.close()


def test_a_calendar_whose_owner_is_in_a_broken_roster_is_not_taken_for_a_shared_calendar(tmp_path):
    d = folder(tmp_path, {"a.yaml": roster("alice"),
                          "b.yaml": roster("bob", calendars={"bob": "bob.ics"}).replace(SIDS["bob"], "WK-bad"),
                          "bob.ics": (CALENDARS / "floating_times.ics").read_text()})
    r = load_folder(d, "America/New_York")
    assert [Path(st.file).name for st in r.broken] == ["b.yaml"]  # no "unknown agent: no ATTENDEE" in bob.ics
    assert any("calendar of agent 'bob'" in str(w) and "b.yaml" in str(w) for w in r.warnings)


MARCH = (1772323200000, 1775001600000)  # 2026-03-01 .. 2026-04-01 UTC


def test_a_broken_calendar_edit_keeps_the_calendars_last_good_version(tmp_path):
    good = (CALENDARS / "rrule_count_until.ics").read_text()
    d = folder(tmp_path, {"roster.yaml": roster("alice", "bob", calendars={"bob": "bob.ics"}),
                          "shifts.yaml": SHIFTS.replace("alice, bob, carol", "alice"),
                          "bob.ics": good})
    source = schedule_source(load_config(tmp_path / "config.yaml"))
    source.check()
    before = source.current.segments("bob", MARCH[0], MARCH[1])
    assert before
    touch_later(d / "bob.ics", good.replace("END:VCALENDAR", ""))  # a truncated save
    source.check()
    assert source.current.segments("bob", MARCH[0], MARCH[1]) == before
    [f] = source.status()["broken_files"]
    assert f["agents"] == ["bob"] and f["in_force"].startswith("last good version, read at")
    assert source.current.segments_for_day("alice", MON)


def test_a_team_with_members_in_a_broken_roster_is_not_an_unknown_team(tmp_path):
    broken = roster("bob").replace("team: t", "team: night").replace(SIDS["bob"], "WK-bad")
    d = folder(tmp_path, {"a.yaml": roster("alice"), "b.yaml": broken,
                          "shifts.yaml": "shifts:\n  - teams: [t, night]\n    days: daily\n"
                                         "    segments: ['09:00-17:00 Available']\n"})
    r = load_folder(d, "America/New_York")
    assert [Path(st.file).name for st in r.broken] == ["b.yaml"]
    assert any("team 'night' has agents in" in str(w) for w in r.warnings)
    assert acts(r.schedule, "alice") == ["Available"]


def test_a_calendar_added_after_the_roster_named_it_is_picked_up(tmp_path):
    d = folder(tmp_path, {"roster.yaml": roster("alice", "bob", calendars={"bob": "bob.ics"})})
    source = schedule_source(load_config(tmp_path / "config.yaml"))
    source.check()
    assert "calendar file 'bob.ics' not found" in " ".join(source.errors)
    (d / "bob.ics").write_text((CALENDARS / "rrule_count_until.ics").read_text())
    assert source.check() is True and source.status()["ok"], source.errors
    assert source.current.segments("bob", MARCH[0], MARCH[1])
