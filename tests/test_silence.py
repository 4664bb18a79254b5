"""Feed silence (#13 item 5): no record at all for feed.silence_after while agents are scheduled degrades
/health, shows in /metrics and in the board's data, and offers the silent period as a period approval that
is applied only when someone approves it."""

from __future__ import annotations

import test_neutral_periods as np_
from conftest import Center


def center(tmp_path) -> Center:
    folder = np_.folder(tmp_path, neutral=False)
    (folder / "config.yaml").write_text((folder / "config.yaml").read_text() + "feed:\n  silence_after: 5m\n")
    c = Center(folder, np_.T("08:00"))
    for w in (np_.ANN, np_.BOB, np_.CAT):
        c.send(w, np_.T("08:55"), "Available")
    c.send(np_.ANN, np_.T("10:00"), "Offline")  # the last record before Flex goes quiet
    return c


def test_silence_degrades_health_metrics_and_board_data_and_is_offered_not_applied(tmp_path):
    c = center(tmp_path)
    c.tick(np_.T("10:04"))
    assert c.client.get("/health").get_json()["feed"]["silent"] is False  # 4 minutes: not yet
    c.tick(np_.T("10:40"))
    health = c.client.get("/health").get_json()
    assert health["ok"] is False and health["status"] == "degraded"
    feed = health["feed"]
    assert feed["silent"] and feed["silent_seconds"] == 40 * 60 and feed["scheduled_agents"] == 3
    assert feed["last_record_at"] == "2026-11-24T15:00:00Z"
    assert feed["offer"]["start"] == "2026-11-24T15:00:00Z" and feed["offer"]["end"] == "2026-11-24T15:40:00Z"
    metrics = c.client.get("/metrics").get_data(as_text=True)
    assert "adherence_feed_silent 1" in metrics and "adherence_feed_silence_seconds 2400" in metrics
    board = c.client.get("/api/agents").get_json()
    assert board["feed"]["silent"] and board["feed"]["offer"] == feed["offer"]
    # nothing was excused on its own
    assert c.engine.store.reader.execute("SELECT COUNT(*) FROM approval_periods").fetchone()[0] == 0
    out_before = c.day("ann", np_.DAY)["out_of_adherence_seconds"]
    assert out_before == 40 * 60
    # one click: the offer as it is, posted as a period approval
    r = c.client.post("/api/periods", json={**{k: feed["offer"][k] for k in ("start", "end", "reason")}, "by": "sam"})
    assert r.status_code == 201
    day = c.day("ann", np_.DAY)
    assert day["out_of_adherence_seconds"] == 0 and day["neutral_seconds"] == 40 * 60
    # a record arrives: the feed is talking again
    c.send(np_.ANN, np_.T("10:41"), "Available")
    assert c.client.get("/health").get_json()["feed"]["silent"] is False
    assert "adherence_feed_silent 0" in c.client.get("/metrics").get_data(as_text=True)
    c.engine.close()


def test_no_silence_when_nobody_is_scheduled(tmp_path):
    c = center(tmp_path)
    c.send(np_.ANN, np_.T("17:10"), "Offline")
    c.tick(np_.T("20:00"))  # three hours without a record, but the shift ended at 17:00
    feed = c.client.get("/health").get_json()["feed"]
    assert feed["silent"] is False and feed["scheduled_agents"] == 0 and feed["offer"] is None
    c.engine.close()
