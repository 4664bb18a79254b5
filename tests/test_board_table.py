"""The board's table mode (#13 item 8): every agent, worst first, filtered and paged by the server, with an
ETag so an unchanged page costs a 304."""

from __future__ import annotations

import pytest

import adherence.web.boardtable as boardtable
import test_neutral_periods as np_
from conftest import Center


@pytest.fixture
def c(tmp_path, monkeypatch):
    monkeypatch.setattr(boardtable, "SNAPSHOT_MS", 0)  # every request sees the state of now
    center = Center(np_.folder(tmp_path, neutral=False), np_.T("08:00"))
    for w in (np_.ANN, np_.BOB, np_.CAT):
        center.send(w, np_.T("08:55"), "Available")
    center.send(np_.CAT, np_.T("10:00"), "Offline")   # out longest
    center.send(np_.BOB, np_.T("10:20"), "Offline")   # out for less
    center.tick(np_.T("10:40"))
    yield center
    center.engine.close()


def test_worst_first_filters_paging_and_etag(c):
    r = c.client.get("/api/board/table")
    d = r.get_json()
    assert [a["agent"] for a in d["agents"]] == ["cat", "bob", "ann"]
    assert d["total"] == 3 and d["out_of_adherence_count"] == 2 and d["teams"] == ["tier1", "tier2"]
    cat = d["agents"][0]
    assert cat["out_since"] == "2026-11-24T15:00:00Z" and cat["since"] == "2026-11-24T15:00:00Z"
    assert cat["activity"] == "Offline" and cat["scheduled_activity"] == "Available" and cat["in_adherence"] is False
    assert d["agents"][2]["out_since"] is None and d["agents"][2]["today_percent"] == 100.0
    tag = r.headers["ETag"]
    again = c.client.get("/api/board/table", headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.data == b""
    # a change moves the cursor: the same request gets the new page
    c.send(np_.BOB, np_.T("10:41"), "Available")
    c.tick(np_.T("10:41"))
    fresh = c.client.get("/api/board/table", headers={"If-None-Match": tag})
    assert fresh.status_code == 200 and [a["agent"] for a in fresh.get_json()["agents"]][0] == "cat"
    assert fresh.get_json()["out_of_adherence_count"] == 1
    # server-side filters and paging
    assert [a["agent"] for a in c.client.get("/api/board/table?team=tier1").get_json()["agents"]] == ["cat", "ann"]
    assert [a["agent"] for a in c.client.get("/api/board/table?out_of_adherence=true").get_json()["agents"]] == ["cat"]
    assert [a["agent"] for a in c.client.get("/api/board/table?q=bak").get_json()["agents"]] == ["bob"]
    page = c.client.get("/api/board/table?sort=name&limit=2&offset=2").get_json()
    assert [a["agent"] for a in page["agents"]] == ["cat"] and page["next"] is None
    page1 = c.client.get("/api/board/table?sort=name&limit=2").get_json()
    assert [a["agent"] for a in page1["agents"]] == ["ann", "bob"] and "offset=2" in page1["next"]
    for bad in ("sort=x", "limit=0", "out_of_adherence=maybe", "colour=red"):
        assert c.client.get("/api/board/table?" + bad).status_code == 400


def test_board_opens_in_table_mode_for_a_large_roster(c, monkeypatch):
    import adherence.web.board as board

    assert "agents-table" not in c.client.get("/").get_data(as_text=True)
    assert "agents-table" in c.client.get("/?view=table").get_data(as_text=True)
    monkeypatch.setattr(board, "CARDS_UP_TO", 2)
    html = c.client.get("/").get_data(as_text=True)
    assert "agents-table" in html and "/static/table.js" in html
    assert "agents-table" not in c.client.get("/?view=cards").get_data(as_text=True)
