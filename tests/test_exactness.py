"""Results are a function of the journal, the schedules, the rules and the approvals — whichever process
computed them, after any restart, crash, reload or replay (issue #11's eight findings, one test each).

Each test compares what the evaluating process stored with ``recompute`` of the same days into a fresh
copy of the database (``assert_equals_recompute``), to the millisecond.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from adherence.cli import cli
from adherence.config import load_config
from adherence.engine import Engine
from adherence.clock import FixedClock
from adherence.horizons import DAY_MS
from adherence.timeutil import iso, parse_instant_ms

from conftest import REPO, Center

ANN = "WK" + "a" * 32  # logs in, sometimes goes Offline
BOB = "WK" + "b" * 32  # rostered, never logs in
CAT = "WK" + "c" * 32
ROSTER = f"""
timezone: America/New_York
agents:
  ann: {{worker_sid: {ANN}, name: Ann, team: tier1}}
  bob: {{worker_sid: {BOB}, name: Bob, team: tier1}}
  cat: {{worker_sid: {CAT}, name: Cat, team: tier2}}
shifts:
  - agents: [ann, bob, cat]
    days: [mon, tue, wed, thu, fri, sat, sun]
    segments:
      - 09:00-17:00 Available
      - 12:00-12:30 Lunch
"""


def T(local: str) -> int:
    """'2026-11-16 09:40' New York time (EST, UTC-5) → epoch ms."""
    d, t = local.split()
    return parse_instant_ms(f"{d}T{t}:00-05:00")


@pytest.fixture
def folder(tmp_path) -> Path:
    (tmp_path / "schedules").mkdir()
    (tmp_path / "schedules" / "roster.yaml").write_text(ROSTER)
    shutil.copytree(REPO / "rules", tmp_path / "rules", ignore=shutil.ignore_patterns("tests"))
    (tmp_path / "config.yaml").write_text(
        "database: live.db\ntimezone: America/New_York\nschedules: schedules\nrules: rules\n")
    return tmp_path


def envelope(n: int, worker: str, at: int, activity: str) -> dict:
    return {"product": "Flex", "object": "WFMWorkerChange", "version": 1, "records": [{
        "worker": {"sid": worker, "activity_name": activity}, "channels": None,
        "last_processed_event_sid": f"EV{n:032d}", "date_last_processed_event": iso(at)}]}


def engine(folder: Path, now: int, db: str = "live.db", load_state: bool = True) -> Engine:
    return Engine(load_config(folder / "config.yaml", overrides={"database": db}), FixedClock(now),
                  load_state=load_state)


def stored(db: Path, with_ids: bool = False):
    """Exceptions and day figures (``as_of`` left out: a final day's figures do not depend on it, and the
    scenarios compare days in progress only right after a tick that evaluated every agent)."""
    conn = sqlite3.connect(db)
    cols = "worker_sid, rule, start_ms, end_ms, day, severity, scheduled_activity, actual_activity, task_state, approved"
    exc = conn.execute(f"SELECT {'id, ' if with_ids else ''}{cols} FROM exceptions "
                       "ORDER BY worker_sid, start_ms, rule").fetchall()
    days = conn.execute(
        "SELECT worker_sid, day, agent, team, scheduled_ms, in_adherence_ms, out_of_adherence_ms, approved_ms,"
        " logged_in_ms, adherence_percent, conformance_percent, exceptions FROM adherence "
        "ORDER BY worker_sid, day").fetchall()
    conn.close()
    return exc, days


def recomputed(folder: Path, live_db: Path, first: date, last: date, now: int, keep_results: bool = False):
    """Recompute [first, last] as of ``now`` on a copy of the live database (results wiped unless kept)."""
    copy = folder / f"copy-{now}-{int(keep_results)}.db"
    src = sqlite3.connect(live_db)
    dst = sqlite3.connect(copy)
    src.backup(dst)
    src.close()
    if not keep_results:
        dst.execute("DELETE FROM exceptions")
        dst.execute("DELETE FROM adherence")
        dst.commit()
    dst.close()
    eng = engine(folder, now, db=copy.name, load_state=False)
    eng.runner.recompute(first, last, now)
    eng.close()
    return copy


def assert_equals_recompute(folder: Path, live_db: Path, first: date, last: date, now: int) -> None:
    """Stored results equal a recompute into a fresh database, and a recompute in place changes nothing
    (exception ids included)."""
    fresh = recomputed(folder, live_db, first, last, now)
    assert stored(live_db) == stored(fresh)
    in_place = recomputed(folder, live_db, first, last, now, keep_results=True)
    assert stored(live_db, with_ids=True) == stored(in_place, with_ids=True)


def a_week(folder: Path) -> list[dict]:
    """Six days of feed from 2026-11-16: Ann works, goes Offline 10:00-10:30 each day; Bob never logs in;
    Cat logs in on the first day only and never logs out."""
    envs, n = [], 0
    for d in range(16, 22):
        day = f"2026-11-{d}"
        for at, act in ((T(f"{day} 08:55"), "Available"), (T(f"{day} 10:00"), "Offline"),
                        (T(f"{day} 10:30"), "Available"), (T(f"{day} 17:05"), "Offline")):
            n += 1
            envs.append(envelope(n, ANN, at, act))
    envs.append(envelope(n + 1, CAT, T("2026-11-16 08:50"), "Available"))
    return envs


def replay(folder: Path, envs: list[dict]) -> None:
    path = folder / "feed.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in envs))
    out = CliRunner().invoke(cli, ["replay", "--config", str(folder / "config.yaml"), str(path)])
    assert out.exit_code == 0, out.output


def evaluate_at(folder: Path, at: int) -> None:
    out = CliRunner().invoke(cli, ["evaluate", "--config", str(folder / "config.yaml"), "--at", iso(at)])
    assert out.exit_code == 0, out.output


def test_1_fresh_process_after_a_replay_evaluates_every_day_since_monitoring_began(folder):
    replay(folder, a_week(folder))
    now = T("2026-11-22 12:00")
    evaluate_at(folder, now)
    exc, days = stored(folder / "live.db")
    by = {(w, d): dict(zip(("agent", "team", "scheduled", "in", "out", "approved", "logged_in", "adherence",
                             "conformance", "exceptions", "as_of"), row)) for w, d, *row in days}
    for d in range(16, 22):
        day = f"2026-11-{d}"
        bob = by[(BOB, day)]
        assert (bob["adherence"], bob["logged_in"]) == (0.0, 0), f"a no-show is 0 %, never logged in ({day})"
        assert bob["exceptions"] == 3  # 09:00-12:00 and 12:30-17:00 offline, lunch not taken
        assert any(e[0] == BOB and e[4] == day and e[1] == "offline-when-scheduled-available" for e in exc)
        ann = by[(ANN, day)]
        assert ann["exceptions"] == 2  # Offline 10:00-10:30, Available through lunch 12:00-12:30 ...
        assert ann["out"] == 60 * 60_000  # ... an hour out of adherence, consistent with them
    assert_equals_recompute(folder, folder / "live.db", date(2026, 11, 15), date(2026, 11, 22), now)


def test_2_a_late_record_for_an_older_day_changes_everything_it_touches(folder):
    replay(folder, a_week(folder))
    now = T("2026-11-22 12:00")
    evaluate_at(folder, now)
    # a record from four days ago arrives late: Ann was Offline from 16:20 on 2026-11-18
    replay(folder, [envelope(999, ANN, T("2026-11-18 16:20"), "Offline")])
    evaluate_at(folder, now + 60_000)
    exc, days = stored(folder / "live.db")
    late = [e for e in exc if e[0] == ANN and e[4] == "2026-11-18"]
    assert [(e[2], e[3]) for e in late] == [(T("2026-11-18 10:00"), T("2026-11-18 10:30")),
                                            (T("2026-11-18 12:00"), T("2026-11-18 12:30")),
                                            (T("2026-11-18 16:20"), T("2026-11-18 17:00"))]
    row = next(r for r in days if r[0] == ANN and r[1] == "2026-11-18")
    assert row[6] == (30 + 30 + 40) * 60_000 and row[11] == 3  # out of adherence, exceptions
    assert_equals_recompute(folder, folder / "live.db", date(2026, 11, 15), date(2026, 11, 22), now + 60_000)


def test_3_a_crash_in_the_middle_of_a_tick_then_a_fresh_process_equals_recompute(folder, monkeypatch):
    import adherence.runner as runner_mod

    c = Center(folder, T("2026-11-16 08:00"))
    for env in a_week(folder)[:8]:
        rec = env["records"][0]
        c.send(rec["worker"]["sid"], parse_instant_ms(rec["date_last_processed_event"]), rec["worker"]["activity_name"])
    c.tick(T("2026-11-17 11:00"))
    for env in a_week(folder)[8:16]:
        rec = env["records"][0]
        c.send(rec["worker"]["sid"], parse_instant_ms(rec["date_last_processed_event"]), rec["worker"]["activity_name"])
    # the process dies after writing the first agent's results of a tick (one agent a transaction)
    monkeypatch.setattr(runner_mod, "WRITE_CHUNK_AGENTS", 1)
    real_write, calls = c.engine.runner._write, []

    def dying_write(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise SystemExit("kill -9")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(c.engine.runner, "_write", dying_write)
    with pytest.raises(SystemExit):
        c.tick(T("2026-11-19 12:00"))
    c.engine.close()
    monkeypatch.setattr(runner_mod, "WRITE_CHUNK_AGENTS", 200)
    now = T("2026-11-19 12:05")
    after = engine(folder, now)
    after.runner.tick()
    after.close()
    assert_equals_recompute(folder, folder / "live.db", date(2026, 11, 15), date(2026, 11, 19), now)


def test_4_a_clean_restart_keeps_the_true_start_of_an_exception_older_than_memory(folder):
    # a worker with no schedule logged in on the 16th and never logged out: available-when-unscheduled
    stray = "WK" + "d" * 32
    c = Center(folder, T("2026-11-16 08:00"))
    c.send(stray, T("2026-11-16 08:50"), "Available")
    for hours in range(12, 5 * 24, 6):  # the service runs for five days, then stops cleanly
        at = T("2026-11-16 08:00") + hours * 3_600_000
        c.send(stray, at - 60_000, "Available", "active" if hours % 12 else "none")  # calls come and go
        c.tick(at)
    (open_exc,) = [e for e in c.exceptions(agent=stray) if e["rule"] == "available-when-unscheduled"]
    assert open_exc["start"] == iso(T("2026-11-16 08:50")) and open_exc["end"] is None
    c.engine.close()
    now = T("2026-11-21 08:30")  # started again: the exception began beyond the in-memory horizon
    later = engine(folder, now)
    later.runner.tick()
    rows = later.store.query("SELECT id, start_ms FROM exceptions WHERE worker_sid = ? AND rule = ?",
                             (stray, "available-when-unscheduled"))
    later.close()
    assert (rows[0]["id"], rows[0]["start_ms"]) == (open_exc["id"], parse_instant_ms(open_exc["start"]))
    assert_equals_recompute(folder, folder / "live.db", date(2026, 11, 15), date(2026, 11, 21), now)


def test_5_a_rule_edit_after_a_restart_reaches_only_days_not_yet_final(folder):
    replay(folder, a_week(folder))
    now = T("2026-11-21 18:00")
    evaluate_at(folder, now)
    before = stored(folder / "live.db")
    rules = folder / "rules" / "default.yaml"
    rules.write_text(rules.read_text().replace("for: 5m", "for: 45m"))  # Ann's 30 minutes are grace now
    eng = engine(folder, now + 60_000)
    stats = eng.runner.tick()
    stale = eng.runner.stale_days()
    eng.close()
    exc, days = stored(folder / "live.db")
    ann_exc_days = sorted(e[4] for e in exc if e[0] == ANN and e[1] == "offline-when-scheduled-available")
    # yesterday and today follow the edit; older days keep what they were computed with, reported stale
    assert ann_exc_days == ["2026-11-16", "2026-11-17", "2026-11-18", "2026-11-19"]
    assert [r for r in before[1] if r[1] < "2026-11-20"] == [r for r in days if r[1] < "2026-11-20"]
    assert {d for _, d in stale} == {"2026-11-16", "2026-11-17", "2026-11-18", "2026-11-19"}
    assert stats.agents <= 3
    cfg = str(folder / "config.yaml")
    report = CliRunner().invoke(cli, ["report", "adherence", "--config", cfg, "--format", "json"])
    assert {(r["date"], r["stale"]) for r in json.loads(report.output) if r["agent"] == "ann"} == {
        ("2026-11-16", True), ("2026-11-17", True), ("2026-11-18", True), ("2026-11-19", True),
        ("2026-11-20", False), ("2026-11-21", False)}
    csv_out = CliRunner().invoke(cli, ["report", "adherence", "--config", cfg, "--format", "csv", "--agent", "ann",
                                       "--date", "2026-11-16"]).output.splitlines()
    header = csv_out[0].split(",")
    assert header.index("stale") > header.index("exceptions")  # appended after the contract's columns
    assert csv_out[1].split(",")[header.index("stale")] == "true"
    out = CliRunner().invoke(cli, ["recompute", "--config", str(folder / "config.yaml"), "--stale",
                                   "--at", iso(now + 120_000)])
    assert out.exit_code == 0, out.output
    exc, days = stored(folder / "live.db")
    assert not [e for e in exc if e[0] == ANN and e[1] == "offline-when-scheduled-available"]
    eng = engine(folder, now + 120_000, load_state=False)
    assert eng.runner.stale_days() == set()
    eng.close()


def test_6_a_record_older_than_every_other_re_evaluates_every_agent(folder):
    c = Center(folder, T("2026-11-17 08:00"))
    c.send(ANN, T("2026-11-17 11:00"), "Available")  # monitoring starts at 11:00
    c.tick(T("2026-11-17 18:00"))
    assert c.day(BOB, "2026-11-17")["scheduled_seconds"] == 6 * 3600
    # a late record from the day before moves monitoring start a day earlier: Bob's 17th is counted from
    # 09:00, and his 16th exists now
    c.send(CAT, T("2026-11-16 08:50"), "Available")
    c.tick(T("2026-11-17 18:01"))
    assert c.day(BOB, "2026-11-17")["scheduled_seconds"] == 8 * 3600
    assert c.day(BOB, "2026-11-16")["adherence_percent"] == 0.0
    c.engine.close()
    assert_equals_recompute(folder, folder / "live.db", date(2026, 11, 15), date(2026, 11, 17), T("2026-11-17 18:01"))


def test_7_rules_test_counts_a_no_show_as_the_engine_does(tmp_path):
    from adherence.ruletest import run_rule_tests

    case = tmp_path / "noshow.yaml"
    case.write_text(f"""
rule_files: [{REPO / 'rules' / 'default.yaml'}]
tests:
  - name: a rostered agent who never logs in
    date: 2026-11-16
    timezone: America/New_York
    schedule:
      - 09:00-17:00 Available
    timeline: []
    eval_time: "17:30"
    exceptions:
      - {{rule: offline-when-scheduled-available, start: "09:00", end: "17:00"}}
    adherence: {{adherence_percent: 0, conformance_percent: 0}}
""")
    results = run_rule_tests([case])
    assert results.ok, [r.diff for r in results.failed]


def test_8_a_tick_computes_without_holding_the_writer(folder, monkeypatch):
    """While the evaluator computes, a webhook is answered (the tick holds the writer only to write)."""
    c = Center(folder, T("2026-11-16 08:00"))
    c.send(ANN, T("2026-11-16 08:50"), "Available")
    computing, answered = threading.Event(), threading.Event()
    real = c.engine.runner.evaluate

    def slow_evaluate(*args, **kwargs):
        computing.set()
        assert answered.wait(10), "the webhook waited for the evaluator"
        return real(*args, **kwargs)

    monkeypatch.setattr(c.engine.runner, "evaluate", slow_evaluate)
    errors = []

    def tick():
        try:
            c.engine.runner.tick(T("2026-11-16 10:00"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    t = threading.Thread(target=tick)
    t.start()
    assert computing.wait(10)
    env = envelope(777, BOB, T("2026-11-16 09:59"), "Available")
    resp = c.app.test_client().post("/webhooks/rta", json=env)
    assert resp.status_code == 200
    answered.set()
    t.join(10)
    assert not errors
    stats = c.engine.runner.last_tick
    assert stats.longest_write_s < 0.1
    c.engine.close()


def test_9_a_late_record_inside_what_the_last_tick_counted_changes_logged_in_time(folder):
    """Ticks keep each agent's logged-in count of the day and add only what came since; a record dated
    before the last tick (late, or sent by another process) must make the day counted again from where it
    changes, whether it lands minutes or hours before that tick, or exactly on it."""
    c = Center(folder, T("2026-11-16 08:00"))
    c.send(ANN, T("2026-11-16 08:55"), "Available")
    for minute in range(0, 180, 5):  # a tick every 5 minutes, 09:00-12:00
        c.tick(T("2026-11-16 09:00") + minute * 60_000)
    last = T("2026-11-16 11:55")
    c.tick(last)
    c.send(ANN, last - 3 * 60_000, "Offline")        # 3 minutes before the last tick, Offline ...
    c.send(ANN, last - 60_000, "Available")          # ... for 2 minutes
    c.tick(T("2026-11-16 12:00"))
    assert c.day("ann", "2026-11-16")["logged_in_seconds"] == (3 * 60 + 5 - 2) * 60
    c.send(ANN, T("2026-11-16 10:00"), "Offline")    # two hours late: Offline 10:00-10:10
    c.send(ANN, T("2026-11-16 10:10"), "Available")
    c.tick(T("2026-11-16 12:05"))
    assert c.day("ann", "2026-11-16")["logged_in_seconds"] == (3 * 60 + 10 - 2 - 10) * 60
    c.send(ANN, T("2026-11-16 12:05"), "Offline")    # exactly on the last tick
    now = T("2026-11-16 12:10")
    c.tick(now)
    # 08:55 → 12:05 logged in, less Offline 10:00-10:10 and 11:52-11:54
    assert c.day("ann", "2026-11-16")["logged_in_seconds"] == (3 * 60 + 10 - 10 - 2) * 60
    c.engine.close()
    assert_equals_recompute(folder, folder / "live.db", date(2026, 11, 15), date(2026, 11, 16), now)


def test_10_a_record_that_repeats_the_agents_state_is_not_evaluated_until_something_changes(folder):
    """Flex sends a record for every channel or reservation change; one that repeats the agent's activity and
    task state changes no result, so the tick leaves the agent alone (until its usual refresh). A record
    arriving later between it and the state before it (so that the repeat now marks a change) is evaluated
    from its own instant, which covers the repeat: results still equal a recompute."""
    c = Center(folder, T("2026-11-16 08:00"))
    runner = c.engine.runner
    evaluated = []
    real = runner.evaluate
    runner.evaluate = lambda w, start, *a, **k: evaluated.append((w, start)) or real(w, start, *a, **k)

    def tick(at):
        evaluated.clear()
        c.tick(at)
        return dict(evaluated)

    c.send(ANN, T("2026-11-16 08:55"), "Available")
    c.send(CAT, T("2026-11-16 08:55"), "Available")
    tick(T("2026-11-16 09:00"))  # each agent is next due at its own phase: Ann 09:09:45, Cat 09:01:54 and 09:16:54
    c.send(ANN, T("2026-11-16 09:01") + 30_000, "Available")  # a repeat
    assert ANN not in tick(T("2026-11-16 09:02"))
    c.send(ANN, T("2026-11-16 09:03"), "Offline")  # a change
    assert tick(T("2026-11-16 09:04"))[ANN] == T("2026-11-16 09:03")
    c.send(CAT, T("2026-11-16 09:05"), "Available")  # a repeat ...
    assert CAT not in tick(T("2026-11-16 09:06"))
    c.send(CAT, T("2026-11-16 09:04") + 30_000, "Offline")  # ... that a late record turns into a change
    c.send(ANN, T("2026-11-16 09:07"), "Offline")  # a repeat
    ran = tick(T("2026-11-16 09:07") + 30_000)
    assert ran[CAT] == T("2026-11-16 09:04") + 30_000 and ANN not in ran
    now = T("2026-11-16 09:50")
    tick(now)  # every agent refreshed since (at most 15 minutes apart), all as of now: compare whole days
    c.engine.close()
    assert_equals_recompute(folder, folder / "live.db", date(2026, 11, 15), date(2026, 11, 16), now)
