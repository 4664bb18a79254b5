"""The database is pleasant to explore: the roster beside the results, views with names and ISO times."""

from __future__ import annotations

import sqlite_utils

from conftest import Center
from test_loop import ANN, T, mini  # noqa: F401  (fixture)


def test_views_join_results_with_the_roster_names(mini):
    c = Center(mini, T("2026-11-24 08:55"))
    c.send(ANN, T("2026-11-24 08:58"), "Available")
    c.send(ANN, T("2026-11-24 09:40"), "Offline")
    c.send(ANN, T("2026-11-24 09:50"), "Available")
    c.tick(T("2026-11-24 10:00"))
    c.engine.close()
    db = sqlite_utils.Database(mini / "a.db")
    assert {"exceptions_named", "adherence_named", "team_days"} <= set(db.view_names())
    agents = {r["agent"]: r for r in db["agents"].rows}
    assert agents["ann"]["name"] == "Ann" and agents["ann"]["team"] == "tier1" and agents["ann"]["in_roster"] == 1
    (exc,) = db.query("SELECT * FROM exceptions_named")
    assert (exc["agent_name"], exc["rule"], exc["start"], exc["end"], exc["duration_seconds"], exc["status"]) == (
        "Ann", "offline-when-scheduled-available", "2026-11-24T14:40:00.000Z", "2026-11-24T14:50:00.000Z", 600.0,
        "closed")
    (day,) = db.query("SELECT * FROM adherence_named")
    assert (day["agent_name"], day["scheduled_seconds"], day["out_of_adherence_seconds"], day["as_of"]) == (
        "Ann", 3600.0, 600.0, "2026-11-24T15:00:00.000Z")
    (team,) = db.query("SELECT * FROM team_days")
    assert team["team"] == "tier1" and team["adherence_percent"] == round(100 * 3000 / 3600, 2)


def test_an_agent_who_leaves_the_roster_keeps_its_name_on_old_results(mini):
    c = Center(mini, T("2026-11-24 08:55"))
    c.tick(T("2026-11-24 09:00"))
    roster = mini / "schedules" / "roster.yaml"
    text = roster.read_text()
    roster.write_text(text[:text.index("  nate:")] + text[text.index("shifts:"):text.index("  - agents: [nate]")])
    import os
    st = roster.stat()
    os.utime(roster, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    c.tick(T("2026-11-24 09:01"))
    c.engine.close()
    rows = {r["agent"]: r["in_roster"] for r in sqlite_utils.Database(mini / "a.db")["agents"].rows}
    assert rows == {"ann": 1, "nate": 0}
