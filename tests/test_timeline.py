"""An agent's day (#13 item 1): the JSON, the page and the CLI show the same rows on one local time axis,
and a DST day is 25 (or 23) hours with both UTC offsets shown."""

from __future__ import annotations

import json
import shutil

from click.testing import CliRunner

from adherence.cli import cli
from adherence.timeutil import parse_instant_ms

from conftest import REPO, Center

ANN = "WK" + "a" * 32
BOB = "WK" + "b" * 32
ROSTER = f"""
timezone: America/New_York
agents:
  ann: {{worker_sid: {ANN}, name: Ann Able, team: tier1}}
  bob: {{worker_sid: {BOB}, name: Bob Baker, team: tier2}}
shifts:
  - agents: [ann, bob]
    days: [mon, tue, wed, thu, fri, sat, sun]
    segments:
      - 00:30-03:30 Available
      - 09:00-17:00 Available
      - 12:00-12:30 Lunch
"""
FALL = "2026-11-01"  # New York leaves DST at 02:00 EDT: the day has 25 hours
SPRING = "2026-03-08"  # New York enters DST at 02:00 EST: the day has 23 hours


def folder(tmp_path):
    (tmp_path / "schedules").mkdir()
    (tmp_path / "schedules" / "roster.yaml").write_text(ROSTER)
    shutil.copytree(REPO / "rules", tmp_path / "rules", ignore=shutil.ignore_patterns("tests"))
    (tmp_path / "config.yaml").write_text("database: a.db\ntimezone: America/New_York\nschedules: schedules\n"
                                          "rules: rules\n")
    return tmp_path


def fall_day(tmp_path) -> Center:
    c = Center(folder(tmp_path), parse_instant_ms("2026-10-31T20:00:00-04:00"))
    c.send(ANN, parse_instant_ms("2026-11-01T00:25:00-04:00"), "Available")
    c.send(ANN, parse_instant_ms("2026-11-01T01:40:00-04:00"), "Offline")   # the first 01:40 (EDT)
    c.send(ANN, parse_instant_ms("2026-11-01T01:20:00-05:00"), "Available")  # the second 01:20 (EST)
    c.send(ANN, parse_instant_ms("2026-11-01T10:00:00-05:00"), "Available", task="active")
    c.send(ANN, parse_instant_ms("2026-11-01T10:20:00-05:00"), "Available")
    c.send(ANN, parse_instant_ms("2026-11-01T17:05:00-05:00"), "Offline")
    c.tick(parse_instant_ms("2026-11-02T09:00:00-05:00"))
    return c


def test_a_fall_dst_day_is_25_hours_with_both_offsets(tmp_path):
    c = fall_day(tmp_path)
    r = c.client.get(f"/api/agents/ann/timeline?date={FALL}")
    assert r.status_code == 200
    t = r.get_json()
    assert t["hours"] == 25
    assert [o["offset"] for o in t["utc_offsets"]] == ["-04:00", "-05:00"]
    assert t["start_local"].startswith("2026-11-01T00:00:00") and t["end_local"].startswith("2026-11-02T00:00:00")
    labels = [k["label"] for k in t["ticks"]]
    assert len(labels) == 26 and labels.count("01:00") == 2  # 01:00 EDT, then 01:00 EST
    assert [s["activity"] for s in t["scheduled"]] == ["Available", "Available", "Lunch", "Available"]
    assert [a["activity"] for a in t["activity"]] == ["Available", "Offline", "Available", "Offline"]
    assert [(x["task_state"], x["start_local"][11:19]) for x in t["task"] if x["task_state"] != "none"] == [
        ("active", "10:00:00")]
    (exc,) = [e for e in t["exceptions"] if e["rule"] == "offline-when-scheduled-available"]
    # 01:40 EDT to 01:20 EST is 40 minutes of real time across the change
    assert (exc["start_local"], exc["end_local"]) == ("2026-11-01T01:40:00.000-04:00", "2026-11-01T01:20:00.000-05:00")
    assert exc["duration_seconds"] == 40 * 60 and exc["approved"] is False
    # and Available through the 30-minute Lunch (activity-not-allowed)
    assert t["figures"]["date"] == FALL and t["figures"]["out_of_adherence_seconds"] == 70 * 60

    # the page draws the same rows, every bar focusable with its exact local times and offset
    html = c.client.get(f"/agents/ann?date={FALL}").get_data(as_text=True)
    assert 'id="day-hours">25 h<' in html
    assert '<span class="offset">-04:00</span> → <span class="offset">-05:00</span>' in html
    assert ('aria-label="#%d offline-when-scheduled-available (critical, not approved): 01:40:00 (UTC-04:00) – '
            '01:20:00 (UTC-05:00)"' % exc["id"]) in html
    assert html.count('class="seg" tabindex="0"') == (len(t["scheduled"]) + len(t["activity"]) + 1
                                                       + len(t["exceptions"]))
    c.engine.close()

    # the CLI renders it as text
    out = CliRunner().invoke(cli, ["timeline", "ann", "--date", FALL, "--config", str(tmp_path / "config.yaml")])
    assert out.exit_code == 0, out.output
    assert "America/New_York, UTC-04:00 from 00:00, -05:00 from 01:00" in out.output
    assert "(25 h)" in out.output
    assert f"01:40:00–01:20:00  #{exc['id']} offline-when-scheduled-available (critical)  not approved" in out.output
    js = CliRunner().invoke(cli, ["timeline", "ann", "--date", FALL, "--format", "json",
                                  "--config", str(tmp_path / "config.yaml")])
    assert json.loads(js.output)["exceptions"][0]["id"] == exc["id"]


def test_a_spring_dst_day_is_23_hours(tmp_path):
    c = Center(folder(tmp_path), parse_instant_ms("2026-03-07T20:00:00-05:00"))
    c.send(BOB, parse_instant_ms("2026-03-08T00:20:00-05:00"), "Available")
    c.tick(parse_instant_ms("2026-03-09T09:00:00-04:00"))
    t = c.client.get(f"/api/agents/bob/timeline?date={SPRING}").get_json()
    assert t["hours"] == 23
    assert [o["offset"] for o in t["utc_offsets"]] == ["-05:00", "-04:00"]
    assert "02:00" not in [k["label"] for k in t["ticks"]]  # 02:00 never happens that night
    c.engine.close()


def test_timeline_errors(tmp_path):
    c = fall_day(tmp_path)
    assert c.client.get("/api/agents/zed/timeline").status_code == 404
    assert c.client.get("/api/agents/ann/timeline?date=2026-13-01").status_code == 400
    assert c.client.get("/api/agents/ann/timeline?day=2026-11-01").status_code == 400
    assert c.client.get("/agents/zed").status_code == 404
    assert c.client.get("/agents/ann?date=nope").status_code == 400
    c.engine.close()
