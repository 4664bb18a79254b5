"""``serve`` listens at once, whatever the journal's size: webhooks are journaled while live state loads,
``/health`` says "starting" until live state is built and the first evaluation has run, and nothing posted
meanwhile is lost or left out of live state."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest
import requests

from adherence.store import Store
from adherence.timeutil import iso

from servers import Server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
ROWS = 400_000


def big_journal(db, now_ms: int) -> None:
    """A journal of ROWS records over the last two hours for 2,000 workers, written straight into SQLite."""
    Store(db).close()  # the schema
    conn = sqlite3.connect(db)
    rows = ((f"EVbig{i:027d}", f"WK{i % 2000:032x}", now_ms - 7_200_000 + i * 7_200_000 // ROWS, now_ms,
             "Available" if i % 3 else "Offline", "none", "{}") for i in range(ROWS))
    conn.executemany("INSERT INTO journal (event_sid, worker_sid, at_ms, received_ms, activity, task, record) "
                     "VALUES (?,?,?,?,?,?,?)", rows)
    conn.execute("INSERT INTO meta VALUES ('observed_from', ?)", (str(now_ms - 7_200_000),))
    conn.commit()
    conn.close()


def test_serve_listens_at_once_and_says_starting_while_it_loads(tmp_path):
    (tmp_path / "schedules").mkdir()
    (tmp_path / "schedules" / "roster.yaml").write_text("timezone: UTC\nagents: {}\n")
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(
        "rules:\n  - name: offline\n    when: {activity: Offline}\n    for: 1m\n    severity: info\n")
    (tmp_path / "config.yaml").write_text(
        "database: a.db\ntimezone: UTC\nschedules: schedules\nrules: rules\nevaluation:\n  interval: 1s\n")
    now = int(time.time() * 1000)
    big_journal(tmp_path / "a.db", now)
    server = Server(tmp_path / "config.yaml")
    server.wait_ready = False
    t0 = time.monotonic()
    server.start()
    try:
        accepted_after = time.monotonic() - t0
        first = requests.get(server.url + "/health", timeout=5)
        assert first.status_code == 503 and first.json()["status"] == "starting"
        assert first.headers["Retry-After"]
        assert requests.get(server.url + "/api/agents", timeout=5).status_code == 503
        # a webhook posted while state loads is journaled at once (the journal is the truth)
        late_worker = "WK" + "f" * 32
        env = {"product": "Flex", "object": "WFMWorkerChange", "version": 1, "records": [{
            "worker": {"sid": late_worker, "activity_name": "Available"}, "channels": None,
            "last_processed_event_sid": "EV" + "9" * 32, "date_last_processed_event": iso(now)}]}
        posted = requests.post(server.url + "/webhooks/rta", data=json.dumps(env),
                               headers={"Content-Type": "application/json"}, timeout=5)
        assert posted.status_code == 200 and posted.json()["accepted"] == 1
        deadline = time.monotonic() + 90
        while requests.get(server.url + "/health", timeout=5).json()["status"] == "starting":
            assert time.monotonic() < deadline, "still starting after 90 s"
            time.sleep(0.02)
        # not "ok" in the gap between the load and the first tick (the board would show nobody out)
        metrics = requests.get(server.url + "/metrics", timeout=5).text
        ticks = [line for line in metrics.splitlines() if line.startswith("adherence_ticks_total ")]
        assert ticks and float(ticks[0].split()[1]) >= 1, "health said ok before the first tick"
        agents = requests.get(server.url + "/api/agents", params={"limit": 5000}, timeout=10).json()
        sids = {a["worker_sid"] for a in agents["agents"]}
        assert agents["total"] == 2001 and late_worker in sids
    finally:
        server.kill(15)
    assert accepted_after < 5, f"the port opened after {accepted_after:.1f} s"


def test_schedules_and_rules_load_after_binding_not_before(tmp_path, monkeypatch):
    """A 10,000-agent roster takes seconds to parse: the listen-first engine reads schedules and rules in
    its background load, so nothing delays the port; webhooks need neither."""
    import adherence.engine as engine_mod
    from adherence.config import load_config

    (tmp_path / "schedules").mkdir()
    (tmp_path / "schedules" / "roster.yaml").write_text("timezone: UTC\nagents: {}\n")
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(
        "rules:\n  - name: offline\n    when: {activity: Offline}\n    for: 1m\n    severity: info\n")
    (tmp_path / "config.yaml").write_text("database: a.db\ntimezone: UTC\nschedules: schedules\nrules: rules\n")
    loads = []
    real = engine_mod.schedule_source

    def counting(config):
        source = real(config)
        check = source.check
        source.check = lambda: loads.append(1) or check()
        return source

    monkeypatch.setattr(engine_mod, "schedule_source", counting)
    eng = engine_mod.Engine(load_config(tmp_path / "config.yaml"), listen_first=True)
    try:
        assert loads == [] and eng.schedules.current is None
        assert eng.starting()
        eng.load_state_now()
        assert loads == [1] and eng.schedules.current is not None and eng.rules.current is not None
        assert eng.starting() == "starting: the first evaluation has not finished"
        eng.runner.tick()
        assert eng.starting() is None
    finally:
        eng.close()
