"""Neutral time, period approvals, bulk approval and the audit history (#13 items 3, 4, 6).

Neutral time counts neither in nor out and leaves the denominator: in + out + neutral = scheduled and
adherence = in / (scheduled - neutral). A period approval is an input like an approval: the figures change
at once, withdrawing restores them, and a recompute into a fresh database gives the same figures.
"""

from __future__ import annotations

import csv
import io
import shutil
import sqlite3
from datetime import date

import pytest

from adherence.clock import FixedClock
from adherence.config import load_config
from adherence.engine import Engine
from adherence.errors import RuleError
from adherence.evaluate import day_figures
from adherence.model import Segment
from adherence.rules import load_rules
from adherence.timeutil import parse_instant_ms, zone

from conftest import REPO, Center

ANN = "WK" + "a" * 32
BOB = "WK" + "b" * 32
CAT = "WK" + "c" * 32
DAY = "2026-11-24"
NY = zone("America/New_York")
ROSTER = f"""
timezone: America/New_York
agents:
  ann: {{worker_sid: {ANN}, name: Ann Able, team: tier1}}
  bob: {{worker_sid: {BOB}, name: Bob Baker, team: tier2}}
  cat: {{worker_sid: {CAT}, name: Cat Cole, team: tier1}}
shifts:
  - agents: [ann, bob, cat]
    days: [mon, tue, wed, thu, fri, sat, sun]
    segments:
      - 09:00-17:00 Available
      - 14:00-15:00 Coaching
"""
NEUTRAL_RULES = """
allowed:
  Coaching: {activities: [Coaching], impact: neutral}
rules:
  - name: system-down
    description: Flex's own System Issue activity, not the agent's doing
    when: {scheduled: Available, activity: System Issue}
    for: 2m
    impact: neutral
"""


def T(local: str) -> int:
    return parse_instant_ms(f"{DAY}T{local}:00-05:00")


def seg(a: str, b: str, act: str = "Available") -> Segment:
    return Segment(T(a), T(b), act, date(2026, 11, 24))


# -- arithmetic ------------------------------------------------------------------


def test_neutral_arithmetic_leaves_the_denominator():
    segs = [seg("09:00", "17:00")]
    # out 10:00-10:30; neutral 10:20-10:50 (overlaps: neutral wins); approved 11:00-11:10
    ivs = [(T("10:00"), T("10:30"), False, "out"), (T("10:20"), T("10:50"), False, "neutral"),
           (T("11:00"), T("11:10"), True, "out")]
    f = day_figures(date(2026, 11, 24), NY, segs, ivs, (), T("17:00"), 0)
    assert f.scheduled_ms == 8 * 3_600_000
    assert f.neutral_ms == 30 * 60_000
    assert f.out_of_adherence_ms == 20 * 60_000
    assert f.approved_ms == 10 * 60_000
    assert f.in_adherence_ms + f.out_of_adherence_ms + f.neutral_ms == f.scheduled_ms
    assert f.adherence_percent == pytest.approx(f.in_adherence_ms * 100 / (f.scheduled_ms - f.neutral_ms))


def test_without_neutral_figures_are_what_they_were():
    segs = [seg("09:00", "17:00")]
    ivs = [(T("10:00"), T("10:30"), False), (T("11:00"), T("11:10"), True)]
    f = day_figures(date(2026, 11, 24), NY, segs, ivs, (), T("17:00"), 0)
    assert (f.out_of_adherence_ms, f.approved_ms, f.neutral_ms) == (30 * 60_000, 10 * 60_000, 0)
    assert f.in_adherence_ms == f.scheduled_ms - f.out_of_adherence_ms


@pytest.mark.parametrize("mode", ["neutral", "in"])
def test_a_period_excuses_the_exception_time_inside_it(mode):
    segs = [seg("09:00", "17:00")]
    ivs = [(T("10:00"), T("11:00"), False, "out")]
    f = day_figures(date(2026, 11, 24), NY, segs, ivs, (), T("17:00"), 0,
                    periods=[(T("10:30"), T("12:00"), mode)])
    assert f.out_of_adherence_ms == 30 * 60_000  # 10:00-10:30 is outside the period
    if mode == "neutral":
        assert (f.neutral_ms, f.approved_ms) == (30 * 60_000, 0)
    else:
        assert (f.neutral_ms, f.approved_ms) == (0, 30 * 60_000)
    assert f.in_adherence_ms + f.out_of_adherence_ms + f.neutral_ms == f.scheduled_ms


def test_neutral_scheduled_activity_and_all_neutral_day():
    segs = [seg("09:00", "10:00", "Coaching")]
    f = day_figures(date(2026, 11, 24), NY, segs, [(T("09:10"), T("09:30"), False, "out")], (), T("17:00"), 0,
                    neutral_activities=frozenset({"Coaching"}))
    assert f.neutral_ms == f.scheduled_ms and f.out_of_adherence_ms == 0
    assert f.adherence_percent is None  # nothing left to measure


def test_rule_impact_is_validated(tmp_path):
    (tmp_path / "r.yaml").write_text("rules:\n  - name: x\n    when: {activity: Offline}\n    for: 1m\n"
                                     "    impact: ignore\n")
    with pytest.raises(RuleError) as e:
        load_rules(tmp_path)
    assert "impact: expected one of out, neutral" in str(e.value)
    (tmp_path / "r.yaml").write_text(NEUTRAL_RULES)
    rs = load_rules(tmp_path)
    assert rs.rule("system-down").impact == "neutral"
    assert rs.neutral_scheduled == frozenset({"Coaching"})
    assert rs.allowed["Coaching"] == frozenset({"Coaching"})


# -- through the service -----------------------------------------------------------


def folder(tmp_path, neutral: bool = True):
    (tmp_path / "schedules").mkdir()
    (tmp_path / "schedules" / "roster.yaml").write_text(ROSTER)
    shutil.copytree(REPO / "rules", tmp_path / "rules", ignore=shutil.ignore_patterns("tests"))
    if neutral:
        (tmp_path / "rules" / "neutral.yaml").write_text(NEUTRAL_RULES)
    (tmp_path / "config.yaml").write_text("database: a.db\ntimezone: America/New_York\nschedules: schedules\n"
                                          "rules: rules\n")
    return tmp_path


def a_day(c: Center) -> None:
    for w in (ANN, BOB, CAT):
        c.send(w, T("08:55"), "Available")
    c.send(ANN, T("10:00"), "Offline")        # out 10:00-10:40
    c.send(ANN, T("10:40"), "System Issue")   # neutral 10:40-11:00
    c.send(ANN, T("11:00"), "Available")
    c.send(BOB, T("10:10"), "Offline")        # out 10:10-10:30 (another team)
    c.send(BOB, T("10:30"), "Available")
    c.tick(T("17:30"))


def test_neutral_rule_and_activity_through_the_api_and_csv(tmp_path):
    c = Center(folder(tmp_path), T("08:00"))
    a_day(c)
    day = c.day("ann", DAY)
    # scheduled 8h; Coaching 14:00-15:00 neutral, System Issue 10:40-11:00 neutral; Offline 10:00-10:40 out
    assert day["neutral_seconds"] == 80 * 60
    assert day["out_of_adherence_seconds"] == 40 * 60
    assert day["in_adherence_seconds"] == 8 * 3600 - 80 * 60 - 40 * 60
    assert day["adherence_percent"] == round((8 * 3600 - 120 * 60) * 100 / (8 * 3600 - 80 * 60), 2)
    exc = {e["rule"]: e for e in c.exceptions()}
    assert exc["system-down"]["impact"] == "neutral"
    assert exc["offline-when-scheduled-available"]["impact"] == "out"
    text = c.client.get(f"/api/adherence?date={DAY}&agent=ann&format=csv").get_data(as_text=True)
    header, row = list(csv.reader(io.StringIO(text)))
    assert header[-2:] == ["stale", "neutral_seconds"]
    assert row[-1] == str(80 * 60)
    team = c.client.get(f"/api/adherence?date={DAY}&group=team&format=csv").get_data(as_text=True)
    assert team.splitlines()[0].endswith(",exceptions,neutral_seconds")
    c.engine.close()


def figures(c: Center, agent: str) -> tuple:
    d = c.day(agent, DAY)
    return d["out_of_adherence_seconds"], d["approved_seconds"], d["neutral_seconds"], d["adherence_percent"]


def test_period_approval_changes_figures_at_once_withdrawal_restores_them(tmp_path):
    c = Center(folder(tmp_path, neutral=False), T("08:00"))
    a_day(c)
    before = {a: figures(c, a) for a in ("ann", "bob", "cat")}
    assert before["ann"][0] == 60 * 60  # 10:00-11:00 out (System Issue is not neutral without the rule)
    r = c.client.post("/api/periods", json={"team": "tier1", "start": f"{DAY}T15:00:00Z",
                                            "end": f"{DAY}T15:40:00Z", "reason": "Flex outage 10:00-10:40",
                                            "by": "sam"})
    assert r.status_code == 201, r.get_json()
    period = r.get_json()["period"]
    assert period["mode"] == "neutral" and period["scope"] == "team"
    ann = figures(c, "ann")
    assert ann[0] == 20 * 60 and ann[2] == 40 * 60  # 10:40-11:00 still out; 40 minutes neutral
    assert figures(c, "bob") == before["bob"]  # tier2: untouched
    exc = [e for e in c.exceptions() if e["rule"] == "offline-when-scheduled-available"][0]
    assert exc["excused_by"] == [period["id"]]
    listed = c.client.get(f"/api/periods?date={DAY}").get_json()["periods"]
    assert [p["id"] for p in listed] == [period["id"]]

    # a recompute into a fresh database (journal + approvals only) gives the same figures
    fresh_same(c, tmp_path)

    r = c.client.delete(f"/api/periods/{period['id']}", json={"by": "sam", "note": "not an outage after all"})
    assert r.status_code == 200 and r.get_json()["period"]["withdrawn"]
    assert figures(c, "ann") == before["ann"]
    fresh_same(c, tmp_path)

    # mode "in": the same time is approved, in adherence
    r = c.client.post("/api/periods", json={"start": f"{DAY}T15:00:00Z", "end": f"{DAY}T15:40:00Z",
                                            "reason": "outage", "by": "sam", "mode": "in"})
    assert r.status_code == 201
    ann = figures(c, "ann")
    assert ann[:3] == (20 * 60, 40 * 60, 0)
    assert figures(c, "bob")[0] == 0  # everyone: Bob's 10:10-10:30 is inside it
    fresh_same(c, tmp_path)
    c.engine.close()


def fresh_same(c: Center, tmp_path) -> None:
    cols = "worker_sid, day, scheduled_ms, in_adherence_ms, out_of_adherence_ms, approved_ms, neutral_ms"
    live = sqlite3.connect(tmp_path / "a.db")
    want = live.execute(f"SELECT {cols} FROM adherence ORDER BY worker_sid, day").fetchall()
    (tmp_path / "fresh.db").unlink(missing_ok=True)
    dst = sqlite3.connect(tmp_path / "fresh.db")
    live.backup(dst)
    live.close()
    dst.execute("DELETE FROM exceptions WHERE approved = 0")
    dst.execute("DELETE FROM adherence")
    dst.commit()
    dst.close()
    eng = Engine(load_config(tmp_path / "config.yaml", overrides={"database": "fresh.db"}),
                 FixedClock(c.clock.now_ms()), load_state=False)
    eng.runner.recompute(date(2026, 11, 23), date(2026, 11, 25), c.clock.now_ms())
    got = eng.store.reader.execute(f"SELECT {cols} FROM adherence ORDER BY worker_sid, day").fetchall()
    eng.close()
    assert [tuple(r) for r in got] == want


def test_period_requests_are_validated(tmp_path):
    c = Center(folder(tmp_path, neutral=False), T("08:00"))
    a_day(c)
    for body, needle in [
        ({"start": f"{DAY}T15:00:00Z", "end": f"{DAY}T14:00:00Z", "reason": "x"}, "end must be after start"),
        ({"start": f"{DAY}T15:00:00Z", "end": f"{DAY}T16:00:00Z"}, "reason"),
        ({"start": f"{DAY}T15:00:00Z", "end": f"{DAY}T16:00:00Z", "reason": "x", "mode": "out"}, "mode"),
        ({"start": "soon", "end": f"{DAY}T16:00:00Z", "reason": "x"}, "start"),
        ({"start": f"{DAY}T15:00:00Z", "end": f"{DAY}T16:00:00Z", "reason": "x", "agent": "nobody"}, "nobody"),
        ({"start": f"{DAY}T15:00:00Z", "end": f"{DAY}T16:00:00Z", "reason": "x", "team": "a", "agent": "ann"},
         "either"),
    ]:
        r = c.client.post("/api/periods", json=body)
        assert r.status_code == 400 and needle in r.get_json()["error"], (body, r.get_json())
    assert c.client.delete("/api/periods/999").status_code == 404
    c.engine.close()


def test_bulk_approval_and_audit_history_survive_recompute(tmp_path):
    c = Center(folder(tmp_path, neutral=False), T("08:00"))
    a_day(c)
    ids = [e["id"] for e in c.exceptions(agent="ann")] + [e["id"] for e in c.exceptions(agent="bob")]
    r = c.client.post("/api/exceptions/approve", json={"ids": ids, "by": "sam", "note": "storm"})
    assert r.status_code == 200, r.get_json()
    assert all(e["approved"] for e in r.get_json()["exceptions"])
    assert figures(c, "bob")[0] == 0 and figures(c, "ann")[0] == 0
    c.client.delete(f"/api/exceptions/{ids[0]}/approve", json={"by": "lee", "note": "was late, not storm"})
    p = c.client.post("/api/periods", json={"agent": "ann", "start": f"{DAY}T15:00:00Z",
                                            "end": f"{DAY}T15:10:00Z", "reason": "headset", "by": "sam"})
    c.client.delete(f"/api/periods/{p.get_json()['period']['id']}", json={"by": "lee"})

    def history():
        return c.client.get(f"/api/exceptions/{ids[0]}").get_json()["exception"]["history"]

    h = history()
    assert [(x["action"], x["by"], x["note"]) for x in h] == [("approve", "sam", "storm"),
                                                             ("withdraw", "lee", "was late, not storm")]
    audit_before = c.client.get(f"/api/audit?date={DAY}").get_json()["audit"]
    assert [a["action"] for a in audit_before] == ["approve"] * len(ids) + ["withdraw", "period_approve",
                                                                             "period_withdraw"]
    c.engine.runner.recompute(date(2026, 11, 23), date(2026, 11, 25))
    assert history() == h
    assert c.client.get(f"/api/audit?date={DAY}").get_json()["audit"] == audit_before
    text = c.client.get(f"/api/audit?date={DAY}&format=csv").get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(audit_before) and rows[0]["by"] == "sam" and rows[-1]["action"] == "period_withdraw"
    assert list(rows[0]) == ["id", "at", "by", "action", "exception_id", "period_id", "agent", "worker_sid", "day",
                             "note", "detail"]
    # the history is never rewritten: the table has only ever had rows added
    assert c.engine.store.reader.execute("SELECT COUNT(*) FROM audit").fetchone()[0] == len(audit_before)
    c.engine.close()


def test_rules_test_cases_check_neutral_time(tmp_path):
    from click.testing import CliRunner

    from adherence.cli import cli

    (tmp_path / "rules" / "tests").mkdir(parents=True)
    (tmp_path / "rules" / "r.yaml").write_text(
        "rules:\n  - name: offline\n    when: {scheduled: Available, activity: [Offline, Unknown]}\n    for: 5m\n"
        "  - name: system-issue\n    when: {scheduled: Available, activity: System Issue}\n    for: 2m\n"
        "    impact: neutral\n")
    case = """rule_files: [../r.yaml]
tests:
  - name: neutral time leaves the denominator
    timezone: UTC
    date: 2026-11-24
    schedule: ["09:00-17:00 Available"]
    timeline: ["08:55 Available", "10:00 System Issue", "10:20 Offline", "10:30 Available"]
    eval_time: "17:00"
    exceptions:
      - {rule: system-issue, start: "10:00", end: "10:20"}
      - {rule: offline, start: "10:20", end: "10:30"}
    adherence: {scheduled: 8h, neutral: NEUTRAL, out_of_adherence: 10m, in_adherence: 7h30m}
"""
    path = tmp_path / "rules" / "tests" / "t.yaml"
    path.write_text(case.replace("NEUTRAL", "20m"))
    assert CliRunner().invoke(cli, ["rules", "test", str(path)]).exit_code == 0
    path.write_text(case.replace("NEUTRAL", "0s"))
    out = CliRunner().invoke(cli, ["rules", "test", str(path)])
    assert out.exit_code != 0 and "neutral: expected 0s, got 20m" in out.output
