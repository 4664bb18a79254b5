"""TaskRouter events in the journal: another process's rows, rebuilds, recorded files of every shape."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from adherence.cli import cli
from adherence.journal import Journal
from adherence.sources import events as tr
from adherence.sources.files import classify, parse_items

from conftest import make_engine

TWILIO = Path(__file__).resolve().parent / "fixtures" / "twilio"
W = "WK" + "c" * 32
T0 = 1795615200000  # 2026-11-25T14:00:00Z, an hour before the tests' clock


def cloudevent(n: int, at: int, kind: str, **payload) -> dict:
    return {"specversion": "1.0", "type": "com.twilio.taskrouter." + kind, "id": f"NO{n}",
            "data": {"payload": {"sid": f"EV{n:032d}", "worker_sid": W, "timestamp_ms": at, **payload}}}


def test_events_another_process_journals_are_caught_up_with_their_corrections(workdir, clock):
    engine = make_engine(workdir, clock)
    try:
        other = Journal(engine.store, None)  # e.g. `adherence replay` while the service runs
        evs = [tr.from_cloudevent(cloudevent(1, T0, "worker.activity.update", worker_activity_name="Available"), T0),
               tr.from_cloudevent(cloudevent(3, T0 + 60_000, "reservation.accepted", reservation_sid="WR1"), T0)]
        other.ingest_events(evs, T0)
        late = tr.from_cloudevent(cloudevent(2, T0 + 30_000, "worker.activity.update", worker_activity_name="Break"), T0)
        assert other.ingest_events([late], T0).corrected == 1
        assert engine.journal.catch_up() == 4
        eff = {}
        for s in engine.tracker.timeline(W):
            eff[s.at] = (s.activity, s.task)
        assert eff == {T0: ("Available", "none"), T0 + 30_000: ("Break", "none"), T0 + 60_000: ("Break", "active")}
        # the service now knows this worker is event-fed: RTA records for it are refused
        assert W in engine.journal._event_fed
    finally:
        engine.close()


def test_a_restart_rebuilds_the_same_timeline(workdir, clock):
    engine = make_engine(workdir, clock)
    client_events = [
        cloudevent(1, T0, "worker.activity.update", worker_activity_name="Available"),
        cloudevent(4, T0 + 90_000, "reservation.wrapup", reservation_sid="WR1", task_assignment_status="wrapping"),
        cloudevent(3, T0 + 60_000, "reservation.accepted", reservation_sid="WR1", task_channel_unique_name="chat"),
        cloudevent(2, T0 + 30_000, "reservation.created", reservation_sid="WR1", task_channel_unique_name="chat"),
    ]
    try:
        for ce in client_events:
            engine.journal.ingest_events([tr.from_cloudevent(ce, T0)], T0)
        live = engine.tracker.timeline(W)
        live_current = engine.tracker.current(W)
    finally:
        engine.close()
    engine = make_engine(workdir, clock)
    try:
        assert engine.tracker.timeline(W) == live
        assert engine.tracker.current(W).snapshot == live_current.snapshot
        assert engine.tracker.current(W).channels == live_current.channels
        assert live_current.snapshot.task == "wrapping" and live_current.channels[0][0] == "chat"
    finally:
        engine.close()


def test_files_of_every_shape_are_told_apart():
    page = {"events": [json.loads((TWILIO / "events-resource-worker-activity.json").read_text())],
            "meta": {"next_page_url": None}}
    assert classify(json.dumps(page).encode())[0] == "events"
    assert classify(b'{"product":"Flex","object":"WFMWorkerChange","version":1,"records":[]}')[0] == "rta"
    kind, items = classify((TWILIO / "eventstreams-test-event.json").read_bytes())
    assert kind == "events" and items[0][0] == "eventstreams"
    kind, items = classify((TWILIO / "callback-reservation-accepted.txt").read_bytes())
    assert kind == "events" and items[0][0] == "taskrouter"
    events, kept = parse_items(items, T0)
    assert len(events) == 1 and kept == []
    events, kept = parse_items(classify(json.dumps(page))[1], T0)
    assert events[0].type == "worker.activity.update"


def test_replay_of_an_events_resource_page_and_an_event_streams_export(workdir, tmp_path):
    page = tmp_path / "page.json"
    page.write_text(json.dumps({"events": [json.loads((TWILIO / "events-resource-worker-activity.json").read_text())],
                                "meta": {}}))
    export = tmp_path / "export.jsonl"
    export.write_text("\n".join(json.dumps(ce) for ce in [
        cloudevent(1, T0, "worker.activity.update", worker_activity_name="Available"),
        cloudevent(2, T0 + 1000, "task-queue.entered"),
        cloudevent(1, T0, "worker.activity.update", worker_activity_name="Available"),
    ]) + "\nnot json at all\n")
    r = CliRunner().invoke(cli, ["replay", "--quiet", "--config", str(workdir / "config.yaml"), str(page), str(export)])
    assert r.exit_code == 0, r.output
    assert "accepted 2, duplicates 1, rejected 1, ignored 1" in r.output
    assert "export.jsonl:4" in r.output


def test_rows_another_process_wrote_are_folded_in_before_catch_up(workdir, clock):
    """The service remembers each worker's latest fold; rows written meanwhile by a replay are not lost."""
    engine = make_engine(workdir, clock)
    try:
        ingest = lambda journal, n, at, **p: journal.ingest_events(
            [tr.from_cloudevent(cloudevent(n, at, **p), T0)], T0)
        ingest(engine.journal, 1, T0, kind="worker.activity.update", worker_activity_name="Available")
        other = Journal(engine.store, None)
        ingest(other, 2, T0 + 10_000, kind="reservation.accepted", reservation_sid="WR1")  # not caught up yet
        ingest(engine.journal, 3, T0 + 20_000, kind="worker.activity.update", worker_activity_name="Break")
        last = engine.store.query("SELECT activity, task FROM journal ORDER BY id DESC LIMIT 1")[0]
        assert (last["activity"], last["task"]) == ("Break", "active")  # the other process's reservation counts
    finally:
        engine.close()
