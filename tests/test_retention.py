"""Retention: ``purge_journal`` bounds the journal and never changes a result.

A simulated contact center runs for days on a fixed clock through the real
ingestion path and the real evaluator. Purging then (1) leaves the stored
results as they were, (2) lets a restarted engine evaluating the same
instant reproduce them exactly, (3) makes ``recompute`` refuse days whose
records are gone, with a message, while the earliest recomputable day still
recomputes to the same figures, and (4) keeps the journal bounded on a long
run.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta

import pytest
from click.testing import CliRunner

import adherence.cli.ops  # noqa: F401  (registers ``purge``)
from adherence.cli import cli
from adherence.clock import FixedClock
from adherence.config import load_config
from adherence.engine import Engine
from adherence.retention import DAY_MS, earliest_recomputable_day, purge_journal, purged_before_ms
from adherence.simulate import generate, rules_folder
from adherence.timeutil import iso, parse_instant_ms

TZ = "America/New_York"
START = parse_instant_ms("2026-11-16T05:00:00Z")  # local midnight, Monday
TICK_MS = 15 * 60_000


def make_center(tmp_path, agents: int, days: int, seed: int = 7, retention: int | None = None):
    sim = generate(agents=agents, hours=24 * days, seed=seed, start_ms=START, tz=TZ)
    (tmp_path / "schedules").mkdir(exist_ok=True)
    (tmp_path / "schedules" / "roster.yaml").write_text(sim.roster_yaml())
    text = f"database: a.db\ntimezone: {TZ}\nschedules: schedules\nrules: {json.dumps(str(rules_folder()))}\n"
    if retention:
        text += f"retention:\n  journal_days: {retention}\n"
    (tmp_path / "config.yaml").write_text(text)
    return sim


def open_engine(tmp_path, at_ms: int, db: str = "a.db") -> Engine:
    cfg = load_config(tmp_path / "config.yaml", overrides={"database": db})
    return Engine(cfg, FixedClock(at_ms))


def feed(engine: Engine, events, until_ms: int | None = None, tick_ms: int | None = None, on_tick=None):
    """Deliver envelopes at their delivery time; tick (and call on_tick) every ``tick_ms``."""
    next_tick = None
    for delivery, env in events:
        if until_ms is not None and delivery > until_ms:
            break
        if tick_ms:
            next_tick = next_tick or (delivery // tick_ms + 1) * tick_ms
            while delivery >= next_tick:
                engine.clock.set(next_tick)
                engine.runner.tick()
                if on_tick:
                    on_tick(next_tick)
                next_tick += tick_ms
        engine.clock.set(delivery)
        engine.journal.ingest_body(json.dumps(env).encode(), delivery)


def results(engine: Engine) -> tuple[list, list]:
    conn = engine.store.reader
    exc = conn.execute(
        "SELECT worker_sid, rule, start_ms, end_ms, day, approved FROM exceptions ORDER BY worker_sid, start_ms, rule"
    ).fetchall()
    days = conn.execute(
        "SELECT worker_sid, day, scheduled_ms, in_adherence_ms, out_of_adherence_ms, approved_ms, logged_in_ms,"
        " adherence_percent, conformance_percent, exceptions FROM adherence ORDER BY worker_sid, day"
    ).fetchall()
    return [tuple(r) for r in exc], [tuple(r) for r in days]


def count(engine: Engine, table: str) -> int:
    return engine.store.reader.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def test_purge_keeps_results_and_a_restart_reproduces_them(tmp_path):
    sim = make_center(tmp_path, agents=4, days=5)
    end = START + 5 * DAY_MS - 3 * 3_600_000  # Friday, 21:00 local
    eng = open_engine(tmp_path, START)
    feed(eng, sim.events(), until_ms=end, tick_ms=TICK_MS)
    eng.clock.set(end)
    eng.runner.tick()
    # some rejected bodies, old and new
    with eng.store.write() as conn:
        for at in (START + DAY_MS, end - 3_600_000):
            conn.execute("INSERT INTO rejected (received_ms, reason, body) VALUES (?, 'test', x'00')", (at,))
    before = results(eng)
    assert before[0] and len(before[1]) >= 4 * 4  # exceptions, and figures for every agent-day
    rows_before = count(eng, "journal")

    stats = purge_journal(eng, 1)
    assert stats.journal_deleted > rows_before // 6, stats  # Monday, minus each agent's last row
    assert stats.rejected_deleted == 1 and count(eng, "rejected") == 1
    # the horizon is clamped to what the evaluator may still read (3 local days back)
    assert stats.horizon_ms == parse_instant_ms("2026-11-17T05:00:00Z") == purged_before_ms(eng.store)
    assert results(eng) == before  # stored results untouched
    # each agent's state at the horizon is still there
    carriers = eng.store.reader.execute(
        "SELECT COUNT(DISTINCT worker_sid) FROM journal WHERE at_ms < ?", (stats.horizon_ms,)).fetchone()[0]
    assert carriers == 4
    assert purge_journal(eng, 1).journal_deleted == 0  # idempotent
    eng.close()

    # a restart at the same instant re-evaluates yesterday and today from the purged journal
    again = open_engine(tmp_path, end)
    again.runner.tick()
    assert results(again) == before
    again.close()


def test_recompute_refuses_purged_days_and_still_recomputes_kept_ones(tmp_path):
    sim = make_center(tmp_path, agents=3, days=6)
    end = START + 6 * DAY_MS - 4 * 3_600_000
    eng = open_engine(tmp_path, START)
    feed(eng, sim.events(), until_ms=end, tick_ms=TICK_MS)
    eng.clock.set(end)
    eng.runner.tick()
    before_exc, before_days = results(eng)
    purge_journal(eng, 1)
    first_ok = earliest_recomputable_day(eng)
    assert first_ok is not None
    eng.close()

    runner = CliRunner()
    cfg = str(tmp_path / "config.yaml")
    refused_day = first_ok - timedelta(days=1)
    out = runner.invoke(cli, ["recompute", "--config", cfg, "--from", str(refused_day), "--to", str(first_ok),
                              "--at", iso(end)])
    assert out.exit_code != 0
    assert f"cannot recompute {refused_day}" in out.output and "purged" in out.output
    assert f"earliest day that can be recomputed is {first_ok}" in out.output
    assert "Traceback" not in out.output

    out = runner.invoke(cli, ["recompute", "--config", cfg, "--from", str(first_ok), "--to", str(first_ok),
                              "--at", iso(end)])
    assert out.exit_code == 0, out.output
    eng = open_engine(tmp_path, end)
    after_exc, after_days = results(eng)
    eng.close()
    assert after_exc == before_exc and after_days == before_days


def test_journal_stays_bounded_on_a_long_run(tmp_path):
    """8 simulated days, retention 1 day, purged every 6 hours: rows and pages stop growing."""
    sim = make_center(tmp_path, agents=8, days=8, seed=11, retention=1)
    eng = open_engine(tmp_path, START)
    samples: list[tuple[int, int, int]] = []  # (day, rows, pages in use)

    def every_6h(at):
        if (at - START) % (6 * 3_600_000) == 0:
            eng.runner.tick()  # a purge keeps what is not evaluated yet: evaluate first, as the service does
            purge_journal(eng)
            eng.store._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            if (at - START) % DAY_MS == 0:
                pages = eng.store.reader.execute("PRAGMA page_count").fetchone()[0]
                samples.append(((at - START) // DAY_MS, count(eng, "journal"), pages))

    # evaluation every 6 hours, then a purge (results are tested above)
    feed_with_purge(eng, sim.events(), every_6h)
    eng.close()
    by_day = {d: (rows, pages) for d, rows, pages in samples}
    assert max(by_day) >= 7
    steady_rows = [rows for d, (rows, _) in by_day.items() if d >= 4]
    steady_pages = [pages for d, (_, pages) in by_day.items() if d >= 4]
    total = sum(len(e["records"]) for _, e in sim.events())
    # bounded: four days' worth at most (1 day + the evaluator's floor), never the whole run
    assert max(steady_rows) < total * 0.6
    assert max(steady_rows) <= 1.3 * min(steady_rows) + 100
    # freed pages are reused: the file does not keep growing
    assert max(steady_pages) <= 1.3 * steady_pages[0]


def feed_with_purge(engine, events, on_hour):
    next_hour = None
    for delivery, env in events:
        next_hour = next_hour or (delivery // 3_600_000 + 1) * 3_600_000
        while delivery >= next_hour:
            engine.clock.set(next_hour)
            on_hour(next_hour)
            next_hour += 3_600_000
        engine.clock.set(delivery)
        engine.journal.ingest_body(json.dumps(env).encode(), delivery)


def test_purge_cli(tmp_path):
    sim = make_center(tmp_path, agents=2, days=5)
    eng = open_engine(tmp_path, START)
    feed(eng, sim.events())
    eng.close()
    con = sqlite3.connect(tmp_path / "a.db")
    n0 = con.execute("SELECT COUNT(*) FROM journal").fetchone()[0]
    con.close()
    runner = CliRunner()
    cfg = str(tmp_path / "config.yaml")
    out = runner.invoke(cli, ["purge", "--config", cfg])
    assert out.exit_code != 0 and "retention.journal_days is not set" in out.output
    out = runner.invoke(cli, ["purge", "--config", cfg, "--days", "0"])
    assert out.exit_code != 0 and "Traceback" not in out.output
    # nothing is evaluated yet: a purge keeps every row the evaluation has still to read
    out = runner.invoke(cli, ["purge", "--config", cfg, "--days", "1"])
    assert out.exit_code == 0, out.output
    con = sqlite3.connect(tmp_path / "a.db")
    assert con.execute("SELECT COUNT(*) FROM journal").fetchone()[0] == n0
    con.close()
    assert runner.invoke(cli, ["evaluate", "--config", cfg]).exit_code == 0
    # the simulated week is long past by the system clock: everything but each agent's last row goes
    out = runner.invoke(cli, ["purge", "--config", cfg, "--days", "1", "--vacuum"])
    assert out.exit_code == 0, out.output
    assert "purged" in out.output and "vacuumed" in out.output
    con = sqlite3.connect(tmp_path / "a.db")
    assert con.execute("SELECT COUNT(*) FROM journal").fetchone()[0] == 2 < n0
    assert con.execute("SELECT COUNT(DISTINCT worker_sid) FROM journal").fetchone()[0] == 2
    con.close()


def test_no_retention_configured_purges_nothing(tmp_path):
    make_center(tmp_path, agents=1, days=1)
    eng = open_engine(tmp_path, START)
    assert purge_journal(eng).journal_deleted == 0 and purged_before_ms(eng.store) is None
    with pytest.raises(Exception, match="at least 1"):
        purge_journal(eng, -3)
    eng.close()


def test_purge_after_a_stop_keeps_what_the_catch_up_will_read(tmp_path):
    """The service stopped 6 days ago: its restart evaluates from then, so a purge now keeps those days."""
    make_center(tmp_path, agents=1, days=1)
    eng = open_engine(tmp_path, START + 10 * DAY_MS)
    with eng.store.write() as conn:  # the service stopped after evaluating up to day 4
        conn.execute("INSERT INTO evaluation VALUES ('WK1', ?)", (START + 4 * DAY_MS,))
    stats = purge_journal(eng, 1)
    assert stats.horizon_ms <= START + 4 * DAY_MS - 2 * DAY_MS
    with eng.store.write() as conn:  # running: the usual floor
        conn.execute("UPDATE evaluation SET evaluated_to_ms = ?", (START + 10 * DAY_MS - 60_000,))
    # three days before the evaluated-to instant (a minute before the usual local-midnight floor)
    assert purge_journal(eng, 1).horizon_ms == START + 10 * DAY_MS - 60_000 - 3 * DAY_MS
    eng.close()
