"""Interval adherence (#13 item 2): per agent and team, per 15/30/60-minute interval of local time; the
intervals of a day add up exactly to the day's figures, with neutral time, approvals and period approvals."""

from __future__ import annotations

import csv
import io

import pytest
from click.testing import CliRunner

from adherence.cli import cli
from adherence.timeutil import parse_instant_ms

import test_neutral_periods as np_
import test_timeline as tl
from conftest import Center

KEYS = ("scheduled_seconds", "in_adherence_seconds", "out_of_adherence_seconds", "neutral_seconds",
        "approved_seconds")


def busy_day(tmp_path) -> Center:
    c = Center(np_.folder(tmp_path), np_.T("08:00"))
    np_.a_day(c)
    ann_offline = [e for e in c.exceptions() if e["rule"] == "offline-when-scheduled-available"][0]
    c.client.post(f"/api/exceptions/{ann_offline['id']}/approve", json={"by": "sam"})
    c.client.post("/api/periods", json={"team": "tier2", "start": f"{np_.DAY}T15:15:00Z",
                                        "end": f"{np_.DAY}T15:25:00Z", "reason": "outage", "by": "sam"})
    c.client.post("/api/periods", json={"agent": "cat", "start": f"{np_.DAY}T16:00:00Z",
                                        "end": f"{np_.DAY}T16:05:00Z", "reason": "x", "by": "sam", "mode": "in"})
    c.send(np_.CAT, np_.T("16:55"), "Offline")  # still offline when the day is read (an open exception)
    c.tick(np_.T("17:30"))
    return c


def _sum(rows, key):
    return round(sum(r[key] for r in rows), 3)


@pytest.mark.parametrize("size", ["15m", "30m", "60m"])
def test_intervals_add_up_exactly_to_the_days_figures(tmp_path, size):
    c = busy_day(tmp_path)
    days = c.client.get(f"/api/adherence?date={np_.DAY}").get_json()["adherence"]
    rows = c.client.get(f"/api/intervals?date={np_.DAY}&size={size}&limit=100000").get_json()["intervals"]
    assert {r["agent"] for r in rows} == {d["agent"] for d in days}
    for d in days:
        mine = [r for r in rows if r["agent"] == d["agent"]]
        for key in KEYS:
            assert _sum(mine, key) == d[key], (d["agent"], key)
        assert all(r["local_start"][3:] in {"15m": ("00", "15", "30", "45"), "30m": ("00", "30"),
                                            "60m": ("00",)}[size] for r in mine)
        # every interval: in + out + neutral = scheduled
        assert all(r["in_adherence_seconds"] + r["out_of_adherence_seconds"] + r["neutral_seconds"]
                   == r["scheduled_seconds"] for r in mine)
    assert any(r["neutral_seconds"] for r in rows) and any(r["approved_seconds"] for r in rows)
    teams = c.client.get(f"/api/intervals?date={np_.DAY}&size={size}&group=team&limit=100000").get_json()["intervals"]
    by_team = c.client.get(f"/api/adherence?date={np_.DAY}&group=team").get_json()["adherence"]
    for t in by_team:
        mine = [r for r in teams if r["team"] == t["team"]]
        for key in KEYS:
            assert _sum(mine, key) == t[key], (t["team"], key)
    c.engine.close()


def test_interval_csv_cli_and_errors(tmp_path):
    c = busy_day(tmp_path)
    text = c.client.get(f"/api/intervals?date={np_.DAY}&size=60m&team=tier1&format=csv").get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == ["date", "agent", "worker_sid", "team", "start", "end", "local_start", "utc_offset",
                             "scheduled_seconds", "in_adherence_seconds", "out_of_adherence_seconds",
                             "neutral_seconds", "approved_seconds", "adherence_percent", "stale"]
    assert {r["team"] for r in rows} == {"tier1"} and rows[0]["local_start"] == "09:00"
    assert rows[0]["utc_offset"] == "UTC-05:00"
    for bad, needle in [("size=20m", "size"), ("", "give date"), ("date=2026-11-24&group=x", "group"),
                        ("date=2026-11-24&agent=zed", "zed")]:
        r = c.client.get("/api/intervals?" + bad)
        assert r.status_code == 400 and needle in r.get_json()["error"], bad
    c.engine.close()
    out = CliRunner().invoke(cli, ["report", "intervals", "--date", np_.DAY, "--size", "60m", "--group", "team",
                                   "--format", "csv", "--config", str(tmp_path / "config.yaml")])
    assert out.exit_code == 0, out.output
    assert out.output.splitlines()[0].startswith("date,team,agents,start,end,local_start")
    table = CliRunner().invoke(cli, ["report", "intervals", "--date", np_.DAY, "--agent", "ann",
                                     "--config", str(tmp_path / "config.yaml")])
    assert table.exit_code == 0 and "09:00" in table.output and "09:30" in table.output


def test_a_fall_dst_day_has_two_intervals_at_one_oclock(tmp_path):
    c = tl.fall_day(tmp_path)
    rows = c.client.get(f"/api/intervals?date={tl.FALL}&agent=ann&size=60m").get_json()["intervals"]
    night = [(r["local_start"], r["utc_offset"]) for r in rows if r["start"] < "2026-11-01T09:00:00Z"]
    assert night == [("00:00", "UTC-04:00"), ("01:00", "UTC-04:00"), ("01:00", "UTC-05:00"), ("02:00", "UTC-05:00"),
                     ("03:00", "UTC-05:00")]
    day = c.day("ann", tl.FALL)
    for key in KEYS:
        assert _sum(rows, key) == day[key]
    c.engine.close()
