"""One simulated day, three ways in: RTA envelopes, workspace callbacks, Event Streams CloudEvents.

The TaskRouter formats arrive shuffled and with extra duplicates; each gives
the same exceptions and the same figures as the RTA feed, and a recompute
from the journal agrees with them.
"""

from __future__ import annotations

import json
import random
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from adherence.cli import cli
from adherence.clock import FixedClock
from adherence.config import load_config
from adherence.engine import Engine
from adherence.simulate import encode_body, generate
from adherence.timeutil import to_ms

TZ = "America/New_York"
START = to_ms(datetime(2026, 11, 25, 8, 0, tzinfo=ZoneInfo(TZ)))
REPO = Path(__file__).resolve().parent.parent
DAY = datetime(2026, 11, 25).date()


def _center(tmp: Path, sim, name: str) -> Path:
    d = tmp / name
    (d / "schedules").mkdir(parents=True)
    (d / "schedules" / "roster.yaml").write_text(sim.roster_yaml())
    shutil.copytree(REPO / "rules", d / "rules")
    (d / "config.yaml").write_text(f"database: adherence.db\ntimezone: {TZ}\nschedules: schedules\nrules: rules\n")
    return d


def _results(engine) -> tuple[list, list]:
    ex = engine.store.query(
        "SELECT worker_sid, rule, severity, scheduled_activity, actual_activity, task_state, start_ms, end_ms, day"
        " FROM exceptions ORDER BY worker_sid, start_ms, rule")
    ad = engine.store.query(
        "SELECT worker_sid, day, scheduled_ms, in_adherence_ms, out_of_adherence_ms, logged_in_ms,"
        " adherence_percent, conformance_percent, exceptions FROM adherence ORDER BY worker_sid, day")
    return ex, ad


def _bodies(sim, fmt: str, seed: int) -> list[str]:
    """Every request body as a line, out of order as Twilio's retries deliver them: most a little
    late, some minutes late, a few hours late; a tenth of them sent once more."""
    rng = random.Random(seed)
    timed = []
    for delivery, body in sim.bodies(fmt):
        x = rng.random()
        delay = 0 if x < 0.7 else rng.randint(0, 120_000) if x < 0.95 else rng.randint(0, 3 * 3_600_000)
        timed.append((delivery + delay, encode_body(fmt, body)))
    timed += [(t + rng.randint(0, 3_600_000), line) for t, line in rng.sample(timed, len(timed) // 10)]
    timed.sort(key=lambda x: x[0])
    return [line for _, line in timed]


NOW = START + 16 * 3_600_000  # evening: every shift over, every agent logged out


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    """The same 12 agents' day replayed in each format, each evaluated live (a tick) as of NOW."""
    tmp = tmp_path_factory.mktemp("equivalence")
    sim = generate(12, 10, 11, START, TZ, exact=True)
    out = {}
    for fmt in ("rta", "taskrouter", "eventstreams"):
        d = _center(tmp, sim, fmt)
        feed = d / "feed.txt"
        lines = [encode_body(fmt, body) for _, body in sim.bodies(fmt)] if fmt == "rta" else _bodies(sim, fmt, 5)
        feed.write_text("\n".join(lines) + "\n")
        r = CliRunner().invoke(cli, ["replay", "--quiet", "--config", str(d / "config.yaml"), str(feed)])
        assert r.exit_code == 0, r.output
        engine = Engine(load_config(d / "config.yaml"), FixedClock(NOW))
        try:
            engine.runner.tick()
            out[fmt] = {"dir": d, "replay": r.output, "live": _results(engine),
                        "timelines": {w: engine.tracker.timeline(w) for w in engine.tracker.workers()}}
        finally:
            engine.close()
    return out


def _effective(timeline) -> list[tuple]:
    """(at, activity, task) in force, the last snapshot at an instant winning, repeats folded away."""
    out: list[tuple] = []
    for s in timeline:
        if out and out[-1][0] == s.at:
            out.pop()
        if not out or out[-1][1:] != (s.activity, s.task):
            out.append((s.at, s.activity, s.task))
    return out


def test_every_format_gives_the_same_timelines(day):
    rta = {w: _effective(tl) for w, tl in day["rta"]["timelines"].items()}
    assert len(rta) == 12
    for fmt in ("taskrouter", "eventstreams"):
        other = {w: _effective(tl) for w, tl in day[fmt]["timelines"].items()}
        assert other == rta, fmt


def test_every_format_gives_the_same_exceptions_and_figures(day):
    ex, ad = day["rta"]["live"]
    assert len(ex) > 5 and len(ad) >= 11  # a real day: exceptions to compare, figures for the agents on shift
    for fmt in ("taskrouter", "eventstreams"):
        assert day[fmt]["live"][0] == ex, fmt
        assert day[fmt]["live"][1] == ad, fmt


def test_shuffled_events_were_late_and_duplicated_and_corrected(day):
    for fmt in ("taskrouter", "eventstreams"):
        text = day[fmt]["replay"]
        counts = dict(part.strip().rsplit(" ", 1) for part in text.strip().splitlines()[-1].split(","))
        assert int(counts["duplicates"]) > 0 and int(counts["rejected"]) == 0
        assert int(counts["corrected"]) > 0  # shuffling made late events re-derive later snapshots


def test_recompute_agrees_with_the_live_results(day):
    for fmt in ("rta", "taskrouter", "eventstreams"):
        engine = Engine(load_config(day[fmt]["dir"] / "config.yaml"), FixedClock(NOW))
        try:
            engine.runner.recompute(DAY - timedelta(days=1), DAY + timedelta(days=1))
            assert _results(engine) == day[fmt]["live"], fmt
        finally:
            engine.close()
    # and a fresh process rebuilds the same timelines from the journal
    engine = Engine(load_config(day["eventstreams"]["dir"] / "config.yaml"), FixedClock(NOW))
    try:
        rebuilt = {w: engine.tracker.timeline(w) for w in engine.tracker.workers()}
        assert rebuilt == day["eventstreams"]["timelines"]
    finally:
        engine.close()


def test_one_event_per_request_through_the_webhooks_in_any_order(day, tmp_path):
    """The live path: shuffled callbacks to /webhooks/taskrouter give the replayed timelines."""
    from adherence.web import create_app
    from urllib.parse import parse_qsl

    sim = generate(12, 10, 11, START, TZ, exact=True)
    d = _center(tmp_path, sim, "live")
    engine = Engine(load_config(d / "config.yaml"), FixedClock(NOW))
    try:
        client = create_app(engine=engine).test_client()
        lines = _bodies(sim, "taskrouter", 9)
        for line in lines:
            r = client.post("/webhooks/taskrouter", data=dict(parse_qsl(line)))
            assert r.status_code == 204, r.data
        got = {w: _effective(engine.tracker.timeline(w)) for w in engine.tracker.workers()}
        assert got == {w: _effective(tl) for w, tl in day["rta"]["timelines"].items()}
        engine.runner.tick()
        assert _results(engine) == day["rta"]["live"]
    finally:
        engine.close()


def test_the_default_rta_feed_loses_what_taskrouter_events_keep():
    """Without --exact the RTA format folds some created records away and nulls first sightings."""
    sim = generate(12, 10, 11, START, TZ)
    rta = sum(len(b["records"]) for _, b in sim.bodies("rta"))
    callbacks = sum(1 for _ in sim.bodies("taskrouter"))
    assert rta < callbacks
    first = {}
    for _, b in sim.bodies("rta"):
        for rec in b["records"]:
            first.setdefault(rec["worker"]["sid"], rec)
    assert any(rec["worker"]["activity_name"] is None for rec in first.values())
    assert json.dumps(next(iter(sim.bodies("taskrouter")))[1])  # plain fields, JSON-able
