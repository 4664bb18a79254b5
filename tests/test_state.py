"""Live state: timelines, out-of-order records, restart recovery, rebuild from the journal."""

from __future__ import annotations

import json
import random

from click.testing import CliRunner

from adherence.cli import cli
from adherence.state import Tracker, journal_timeline
from adherence.timeutil import iso, parse_instant_ms

from conftest import load_fixture, make_engine

WK = "WK0123456789abcdef0123456789abcdef"
T0 = parse_instant_ms("2026-11-25T14:00:00Z")


def envelope(sid, at_ms, activity, status=None, worker=WK):
    rec = load_fixture("reservation-created.json")["records"][0]
    rec["worker"]["sid"] = worker
    rec["worker"]["activity_name"] = activity
    rec["last_processed_event_sid"] = sid
    rec["date_last_processed_event"] = iso(at_ms) if at_ms is not None else None
    if status is None:
        rec["channels"] = None
    else:
        rec["channels"][0]["reservations"][0]["status"] = status
    return {"product": "Flex", "object": "WFMWorkerChange", "version": 1, "records": [rec]}


def post(client, env):
    resp = client.post("/webhooks/rta", json=env)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def test_out_of_order_record_goes_into_timeline_but_not_current(client, engine):
    post(client, envelope("EV1", T0, "Available"))
    post(client, envelope("EV3", T0 + 600_000, "Break"))
    post(client, envelope("EV2", T0 + 300_000, "Offline"))
    tl = engine.tracker.timeline(WK)
    assert [(s.at - T0, s.activity) for s in tl] == [(0, "Available"), (300_000, "Offline"), (600_000, "Break")]
    cur = engine.tracker.current(WK)
    assert cur.snapshot.activity == "Break" and cur.since_ms == T0 + 600_000


def test_task_state_and_since(client, engine):
    post(client, envelope("EV1", T0, "Available", "created"))
    post(client, envelope("EV2", T0 + 5_000, "Available", "accepted"))
    post(client, envelope("EV3", T0 + 9_000, "Available", "accepted"))
    cur = engine.tracker.current(WK)
    assert cur.snapshot.task == "active" and cur.since_ms == T0 + 5_000
    assert cur.channels[0][0] == "voice"


def test_null_timestamp_uses_receipt_time_and_is_flagged(client, engine, clock):
    post(client, envelope("EV1", None, "Available"))
    snap = engine.tracker.current(WK).snapshot
    assert snap.flagged and snap.at == clock.now_ms()


def test_restart_recovers_state(workdir, clock):
    eng = make_engine(workdir, clock)
    from adherence.web import create_app

    client = create_app(engine=eng).test_client()
    post(client, envelope("EV1", T0, "Available", "accepted"))
    post(client, envelope("EV2", T0 + 1000, "Break"))
    post(client, envelope("EV0", T0 - 1000, "Offline"))
    before = eng.tracker.timeline(WK)
    eng.close()
    eng2 = make_engine(workdir, clock)
    assert eng2.tracker.timeline(WK) == before
    cur = eng2.tracker.current(WK)
    assert cur.snapshot.activity == "Break" and cur.since_ms == T0 + 1000
    # a duplicate after restart is still a duplicate
    client2 = create_app(engine=eng2).test_client()
    assert post(client2, envelope("EV1", T0, "Available"))["duplicates"] == 1
    eng2.close()


def test_rebuild_from_journal_equals_live_timeline(client, engine):
    rng = random.Random(7)
    workers = [f"WK{w:032x}" for w in range(5)]
    sent = []
    for i in range(400):
        at = T0 + rng.randrange(0, 3_600_000) // 10 * 10  # many ties and out-of-order records
        env = envelope(f"EV{i:032x}", at, rng.choice(["Available", "Offline", "Break"]),
                       rng.choice([None, "created", "accepted", "wrapping", "completed"]), rng.choice(workers))
        sent.append(env)
        if rng.random() < 0.1:
            sent.append(env)  # duplicate
    for env in sent:
        post(client, env)
    rebuilt = Tracker()
    rebuilt.load_from_journal(engine.store.reader)
    for w in workers:
        live = engine.tracker.timeline(w)
        assert rebuilt.timeline(w) == live
        assert journal_timeline(engine.store.reader, w, None, T0 + 10**9) == live
        assert rebuilt.current(w).snapshot == engine.tracker.current(w).snapshot
        assert rebuilt.current(w).since_ms == engine.tracker.current(w).since_ms
        # the windowed read of the journal matches the windowed live read
        mid = T0 + 1_800_000
        assert journal_timeline(engine.store.reader, w, mid, T0 + 10**9) == engine.tracker.timeline(w, mid)


def test_replay_ingests_json_lines_and_json_files(workdir, tmp_path):
    lines = [json.dumps(envelope(f"EV{i}", T0 + i * 1000, "Available")) for i in range(5)]
    lines.insert(2, "{broken")
    lines.append(lines[0])  # duplicate
    feed = tmp_path / "feed.jsonl"
    feed.write_text("\n".join(lines) + "\n")
    single = tmp_path / "one.json"
    single.write_text(json.dumps(envelope("EV-single", T0, "Offline", worker="WK" + "f" * 32), indent=2))
    result = CliRunner().invoke(cli, ["replay", "--config", str(workdir / "config.yaml"), "--quiet", str(feed), str(single)])
    assert result.exit_code == 0, result.output
    assert "accepted 6, duplicates 1, rejected 1" in result.output
    assert f"{feed}:3" in result.output
    eng = make_engine(workdir, None)
    assert eng.store.reader.execute("SELECT COUNT(*) FROM journal").fetchone()[0] == 6
    assert "feed.jsonl:3" in eng.store.query("SELECT reason FROM rejected")[0]["reason"]
    eng.close()


def test_replay_equals_webhook_ingestion(workdir, tmp_path, clock):
    """The same envelopes through replay and through the webhook give the same timelines."""
    rng = random.Random(3)
    envs = [envelope(f"EV{i:032x}", T0 + rng.randrange(0, 600_000), rng.choice(["Available", "Break"]))
            for i in range(50)]
    feed = tmp_path / "feed.jsonl"
    feed.write_text("\n".join(json.dumps(e) for e in envs))
    result = CliRunner().invoke(cli, ["replay", "--config", str(workdir / "config.yaml"), "--quiet", str(feed)])
    assert result.exit_code == 0, result.output
    replayed = make_engine(workdir, clock)
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.yaml").write_text((workdir / "config.yaml").read_text().replace("schedules: schedules", f"schedules: {workdir}/schedules").replace("rules: rules", f"rules: {workdir}/rules"))
    live = make_engine(other, clock)
    from adherence.web import create_app

    client = create_app(engine=live).test_client()
    for e in envs:
        post(client, e)
    assert replayed.tracker.timeline(WK) == live.tracker.timeline(WK)
    replayed.close()
    live.close()


def test_records_replayed_by_another_process_reach_the_running_service(workdir, tmp_path, client, engine):
    post(client, envelope("EV-live-1", T0, "Available"))
    feed = tmp_path / "feed.jsonl"
    feed.write_text(json.dumps(envelope("EV-replayed", T0 + 60_000, "Break")) + "\n")
    result = CliRunner().invoke(cli, ["replay", "--config", str(workdir / "config.yaml"), "--quiet", str(feed)])
    assert result.exit_code == 0, result.output
    post(client, envelope("EV-live-2", T0 + 120_000, "Available"))
    assert [s.activity for s in engine.tracker.timeline(WK)] == ["Available", "Available"]
    assert engine.journal.catch_up() == 1
    assert [s.activity for s in engine.tracker.timeline(WK)] == ["Available", "Break", "Available"]
    assert engine.journal.catch_up() == 0
    rebuilt = Tracker()
    rebuilt.load_from_journal(engine.store.reader)
    assert rebuilt.timeline(WK) == engine.tracker.timeline(WK)


def test_a_record_from_the_future_takes_the_receipt_time(client, engine, clock):
    post(client, envelope("EV-future", clock.now_ms() + 3_600_000, "Break"))
    snap = engine.tracker.current(WK).snapshot
    assert snap.flagged and snap.at == clock.now_ms()
    post(client, envelope("EV-skew", clock.now_ms() + 60_000, "Available"))  # small skew is kept as sent
    assert engine.tracker.current(WK).snapshot.at == clock.now_ms() + 60_000


def test_evaluate_and_recompute_build_no_live_state(workdir, client, engine, monkeypatch):
    """The CLI verbs that evaluate read timelines from the journal: they never load the tracker."""
    for i in range(5):
        post(client, envelope(f"EV{i}", T0 + i * 60_000, ["Available", "Break"][i % 2]))

    def refused(*args, **kwargs):
        raise AssertionError("live state built by a verb that reads the journal")

    monkeypatch.setattr(Tracker, "load_from_journal", refused)
    monkeypatch.setattr(Tracker, "apply", refused)
    cfg = str(workdir / "config.yaml")
    result = CliRunner().invoke(cli, ["evaluate", "--config", cfg, "--at", iso(T0 + 3_600_000)])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(cli, ["recompute", "--config", cfg, "--from", "2026-11-25", "--to", "2026-11-25",
                                      "--at", iso(T0 + 3_600_000)])
    assert result.exit_code == 0, result.output
