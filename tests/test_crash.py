"""Crash safety: ``kill -9`` in the middle of the feed loses nothing that was acknowledged.

A real ``adherence serve`` (evaluating every second) receives a simulated
contact center's feed, "now-ish" (the last few hours). Half-way through it
is killed with SIGKILL and restarted, and the feed resumes from the first
envelope not acknowledged (as Twilio retries). Then:

1. every record that got a 200 before the kill is in the journal, and the
   journal holds each event exactly once at the end;
2. the restarted server's live state equals a rebuild from the journal;
3. once the restarted evaluator has ticked, its stored exceptions and
   adherence equal ``adherence recompute`` of the same days, as of the same
   instant, on a copy of the database.
"""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import threading
import time
from datetime import timedelta

import pytest
import requests
from click.testing import CliRunner

from adherence.cli import cli
from adherence.feed import parse_envelope
from adherence.simulate import generate, rules_folder
from adherence.state import Tracker
from adherence.timeutil import iso, local_date, parse_instant_ms, zone

from servers import Server

TZ = "America/New_York"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def results(db_path, first_day: str, last_day: str):
    conn = sqlite3.connect(db_path)
    exc = conn.execute(
        "SELECT worker_sid, rule, start_ms, end_ms, day, severity, scheduled_activity, actual_activity, task_state"
        " FROM exceptions WHERE day BETWEEN ? AND ? ORDER BY worker_sid, start_ms, rule", (first_day, last_day)
    ).fetchall()
    days = conn.execute(
        "SELECT worker_sid, day, agent, team, scheduled_ms, in_adherence_ms, out_of_adherence_ms, approved_ms,"
        " logged_in_ms, adherence_percent, conformance_percent, exceptions"
        " FROM adherence WHERE day BETWEEN ? AND ? ORDER BY worker_sid, day", (first_day, last_day)
    ).fetchall()
    conn.close()
    return exc, days


class Poster(threading.Thread):
    """Posts envelopes in order; remembers which got a 200; stops at the first connection failure."""

    def __init__(self, url: str, envelopes: list[bytes], start: int = 0, stop_after: int | None = None):
        super().__init__(daemon=True)
        self.url, self.envelopes, self.next, self.stop_after = url, envelopes, start, stop_after
        self.acked: list[int] = []
        self.failed_at: int | None = None
        self.statuses: dict[int, int] = {}

    def run(self) -> None:
        session = requests.Session()
        while self.next < len(self.envelopes):
            if self.stop_after is not None and len(self.acked) >= self.stop_after:
                return
            try:
                resp = session.post(self.url, data=self.envelopes[self.next],
                                    headers={"Content-Type": "application/json"}, timeout=10)
            except requests.RequestException:
                self.failed_at = self.next
                return
            self.statuses[resp.status_code] = self.statuses.get(resp.status_code, 0) + 1
            if resp.status_code != 200:
                self.failed_at = self.next
                return
            self.acked.append(self.next)
            self.next += 1


def test_kill_9_mid_stream_loses_nothing_and_results_equal_recompute(tmp_path):
    now = int(time.time() * 1000)
    sim = generate(agents=8, hours=3, seed=17, start_ms=now - 3 * 3_600_000, tz=TZ)
    (tmp_path / "schedules").mkdir()
    (tmp_path / "schedules" / "roster.yaml").write_text(sim.roster_yaml())
    (tmp_path / "config.yaml").write_text(
        f"database: a.db\ntimezone: {TZ}\nschedules: schedules\nrules: {json.dumps(str(rules_folder()))}\n"
        "evaluation:\n  interval: 1s\n")
    envelopes = [json.dumps(env).encode() for _, env in sim.events()]
    records = [[r.event_sid for r in parse_envelope(json.loads(b), now).records] for b in envelopes]
    assert all(sid for sids in records for sid in sids)
    db = tmp_path / "a.db"

    # -- first run: killed with SIGKILL half-way through the stream --------------------------
    srv = Server(tmp_path / "config.yaml").start()
    poster = Poster(srv.url + "/webhooks/rta", envelopes)
    poster.start()
    deadline = time.time() + 30
    while len(poster.acked) < len(envelopes) // 2 and time.time() < deadline and poster.is_alive():
        time.sleep(0.005)
    srv.kill(signal.SIGKILL)
    poster.join(10)
    assert srv.proc.returncode == -signal.SIGKILL
    assert len(poster.acked) >= len(envelopes) // 2 and poster.failed_at is not None, \
        (len(poster.acked), poster.statuses)
    assert set(poster.statuses) == {200}
    acked_sids = {sid for i in poster.acked for sid in records[i]}

    conn = sqlite3.connect(db)
    journaled = {r[0] for r in conn.execute("SELECT event_sid FROM journal")}
    conn.close()
    assert acked_sids <= journaled, f"{len(acked_sids - journaled)} acknowledged record(s) lost"

    # -- restart; the feed resumes at the first envelope not acknowledged -----------------------
    srv = Server(tmp_path / "config.yaml").start()
    try:
        rest = Poster(srv.url + "/webhooks/rta", envelopes, start=poster.failed_at)
        rest.run()
        assert rest.next == len(envelopes) and set(rest.statuses) == {200}, rest.statuses
        conn = sqlite3.connect(db)
        count, distinct = conn.execute("SELECT COUNT(*), COUNT(DISTINCT event_sid) FROM journal").fetchone()
        conn.close()
        assert count == distinct == len({sid for sids in records for sid in sids})

        # live state == a rebuild from the journal
        agents = requests.get(srv.url + "/api/agents", timeout=10).json()["agents"]
        conn = sqlite3.connect(db)
        rebuilt = Tracker()
        rebuilt.load_from_journal(conn)
        conn.close()
        live = {a["worker_sid"]: (a["activity"], a["task_state"], a["last_record_at"], a["since"])
                for a in agents if a["seen"]}
        expected = {w: (c.snapshot.activity, c.snapshot.task, iso(c.snapshot.at), iso(c.since_ms))
                    for w, c in rebuilt.all_current().items()}
        assert live == expected

        # wait for the restarted evaluator to tick after the last record
        posted_all = int(time.time() * 1000)
        deadline = time.time() + 20
        while time.time() < deadline:
            tick = requests.get(srv.url + "/health", timeout=10).json()["evaluator"]["last_tick"]
            if tick and parse_instant_ms(tick["at"]) > posted_all + 1000:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the restarted evaluator did not tick")
    finally:
        srv.kill(signal.SIGTERM)
    assert srv.proc.returncode == 0
    assert "database is locked" not in srv.log.read_text()

    # -- recompute the same days on a copy of the database --------------------------------------
    conn = sqlite3.connect(db)
    meta = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('last_tick', 'last_tick_ms')").fetchall())
    as_of = [r[0] for r in conn.execute("SELECT DISTINCT as_of_ms FROM adherence")]
    conn.close()
    last_tick = int(meta["last_tick_ms"]) if "last_tick_ms" in meta else parse_instant_ms(meta["last_tick"])
    tz = zone(TZ)
    first, last = str(local_date(sim.start_ms, tz) - timedelta(days=1)), str(local_date(last_tick, tz))
    live_exc, live_days = results(db, first, last)
    assert live_days and len(live_days) >= 8 and live_exc

    def recomputed(at_ms: int, n: int):
        folder = tmp_path / f"copy{n}"
        folder.mkdir()
        src, dst = sqlite3.connect(db), sqlite3.connect(folder / "a.db")
        src.backup(dst)
        src.close()
        dst.execute("DELETE FROM exceptions")
        dst.execute("DELETE FROM adherence")
        dst.commit()
        dst.close()
        shutil.copytree(tmp_path / "schedules", folder / "schedules")
        shutil.copy(tmp_path / "config.yaml", folder / "config.yaml")
        out = CliRunner().invoke(cli, ["recompute", "--config", str(folder / "config.yaml"), "--from", first,
                                       "--to", last, "--at", iso(at_ms)])
        assert out.exit_code == 0, out.output
        return results(folder / "a.db", first, last)

    # exceptions (rule, start, end, ...) as of the last tick
    assert recomputed(last_tick, 0)[0] == live_exc
    # a day's figures are stored as of the tick that last refreshed them (at most 5 minutes back while
    # nothing changes): each equals the recompute as of that instant
    assert len(as_of) <= 5, as_of
    for n, at in enumerate(as_of, 1):
        conn = sqlite3.connect(db)
        keys = set(conn.execute("SELECT worker_sid, day FROM adherence WHERE as_of_ms = ?", (at,)).fetchall())
        conn.close()
        again = {r[:2]: r for r in recomputed(at, n)[1]}
        for row in live_days:
            if row[:2] in keys:
                assert again.get(row[:2]) == row
