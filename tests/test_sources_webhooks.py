"""/webhooks/taskrouter and /webhooks/events: published examples, authentication, guarantees, mixing."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import pytest
from twilio.request_validator import RequestValidator

from adherence.auth import sign_json
from adherence.errors import FeedError
from adherence.sources import events as tr
from adherence.web import create_app

from conftest import load_fixture, make_engine

TWILIO = Path(__file__).resolve().parent / "fixtures" / "twilio"
TOKEN = "test-auth-token-0123456789"
W = "WK" + "a" * 32
T0 = 1764082800000  # 2025-11-25T15:00:00Z


def fixture(name: str):
    text = (TWILIO / name).read_text()
    return json.loads(text) if name.endswith(".json") else text.strip()


def callback(event_type: str, at_ms: int, sid: str, **fields) -> dict:
    return {"EventType": event_type, "Sid": sid, "AccountSid": "AC" + "0" * 32, "WorkspaceSid": "WS" + "0" * 32,
            "Timestamp": str(at_ms // 1000), "TimestampMs": str(at_ms), "WorkerSid": W, **fields}


def ev(n: int) -> str:
    return f"EV{n:032d}"


def rows(engine, sql="SELECT event_sid, at_ms, activity, task FROM journal ORDER BY id"):
    return [tuple(r) for r in engine.store.reader.execute(sql).fetchall()]


def rejected(engine):
    return [r["reason"] for r in engine.store.query("SELECT reason FROM rejected ORDER BY id")]


# ---- Twilio's published examples -----------------------------------------------------------

def test_published_callback_parses_with_the_documented_parameters():
    form = dict(parse_qsl(fixture("callback-reservation-accepted.txt")))
    e = tr.from_callback(form, received_ms=T0 + 5000)
    assert (e.type, e.worker_sid, e.at_ms, e.flagged) == ("reservation.accepted", W, T0, False)
    assert e.key.startswith("tr:cb:")  # no Sid in the documented table: keyed by its fields
    assert tr.from_callback(dict(form), T0 + 9000).key == e.key  # a retry is the same event
    state = tr.apply(tr.initial_state(), e)
    assert tr.snapshot_of(state)[:2] == ("Available", "active")
    assert tr.snapshot_of(state)[2][0]["task_channel_name"] == "voice"


def test_published_cloudevent_parses_its_envelope_and_wants_the_worker():
    ce = fixture("eventstreams-reservation-accepted.json")
    with pytest.raises(FeedError, match="no worker SID"):  # the copy we keep stops before the worker fields
        tr.from_cloudevent(ce, T0)
    ce["data"]["payload"]["worker_sid"] = W
    ce["data"]["payload"]["reservation_sid"] = "WR" + "0" * 32
    e = tr.from_cloudevent(ce, T0)
    # the CloudEvent's own type wins over the example's self-contradicting payload.eventtype
    assert (e.type, e.key, e.source) == ("reservation.accepted", "tr:EV0000000000000000000000000000001", "eventstreams")
    assert e.at_ms == 1735689600000  # payload.timestamp 2025-01-01T00:00:00.000Z
    assert tr.snapshot_of(tr.apply(tr.initial_state(), e))[1] == "active"


def test_published_events_resource_instance_parses():
    e = tr.from_resource(fixture("events-resource-worker-activity.json"), T0)
    assert (e.type, e.worker_sid, e.key) == ("worker.activity.update", "WK" + "a" * 32, "tr:EV" + "a" * 32)
    assert e.at_ms == 1423269161000  # event_date 2015-02-07T00:32:41Z
    assert tr.snapshot_of(tr.apply(tr.initial_state(), e))[:2] == ("Offline", "none")


def test_published_sink_test_event_is_kept_and_ignored(client, engine):
    r = client.post("/webhooks/events", data=json.dumps(fixture("eventstreams-test-event.json")),
                    content_type="application/json")
    assert r.status_code == 200
    assert r.get_json() == {"ok": True, "accepted": 0, "duplicates": 0, "rejected": 0, "ignored": 1}
    assert rejected(engine) == ["ignored: [0]: com.twilio.eventstreams.test-event is not a TaskRouter event"]
    assert rows(engine) == []


def test_callback_capture_replays(workdir, tmp_path):
    from click.testing import CliRunner

    from adherence.cli import cli

    capture = tmp_path / "callbacks.txt"
    capture.write_text(fixture("callback-reservation-accepted.txt") + "\n" + fixture("callback-reservation-accepted.txt") + "\n")
    r = CliRunner().invoke(cli, ["replay", "--quiet", "--config", str(workdir / "config.yaml"), str(capture)])
    assert r.exit_code == 0, r.output
    assert "accepted 1, duplicates 1, rejected 0" in r.output


# ---- the callback receiver ----------------------------------------------------------------

def test_callback_answers_204_and_journals_the_snapshot(client, engine):
    r = client.post("/webhooks/taskrouter", data=callback("worker.activity.update", T0, ev(1), WorkerActivityName="Available"))
    assert r.status_code == 204 and r.data == b"" and r.content_type == "application/json"
    r = client.post("/webhooks/taskrouter", data=callback("reservation.created", T0 + 1000, ev(2), ReservationSid="WR1",
                                                          TaskChannelUniqueName="voice"))
    assert r.status_code == 204
    assert rows(engine) == [("tr:" + ev(1), T0, "Available", "none"), ("tr:" + ev(2), T0 + 1000, "Available", "reserved")]
    assert engine.tracker.current(W).snapshot.task == "reserved"
    assert engine.tracker.current(W).channels[0][0] == "voice"


def test_callback_retry_is_a_duplicate(client, engine):
    data = callback("worker.activity.update", T0, ev(1), WorkerActivityName="Break")
    assert client.post("/webhooks/taskrouter", data=data).status_code == 204
    assert client.post("/webhooks/taskrouter", data=data).status_code == 204
    assert len(rows(engine)) == 1


def test_events_that_change_no_snapshot_are_kept_as_ignored(client, engine):
    r = client.post("/webhooks/taskrouter", data=callback("task-queue.entered", T0, ev(3)))
    assert r.status_code == 204
    assert rejected(engine) == ["ignored: task-queue.entered does not change an agent's snapshot"]
    body = engine.store.query("SELECT body FROM rejected")[0]["body"]
    assert dict(parse_qsl(body.decode()))["EventType"] == "task-queue.entered"


def test_unusable_callbacks_are_kept_with_the_reason(client, engine):
    r = client.post("/webhooks/taskrouter", data={"Foo": "bar"})
    assert r.status_code == 400 and "no EventType" in r.get_json()["error"]
    r = client.post("/webhooks/taskrouter", data=callback("reservation.accepted", T0, ev(4), WorkerSid=""))
    assert r.status_code == 204  # kept: a TaskRouter event, but one that cannot be attributed
    r = client.post("/webhooks/taskrouter", data=b'{"EventType": "x"}', content_type="application/json")
    assert r.status_code == 400
    reasons = rejected(engine)
    assert len(reasons) == 3 and "no worker SID" in reasons[1] and "form-encoded" in reasons[2]
    assert rows(engine) == []


def test_a_write_that_fails_is_a_503_so_twilio_retries(client, engine, monkeypatch):
    def broken(*a, **k):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(engine.journal, "ingest_events", broken)
    r = client.post("/webhooks/taskrouter", data=callback("worker.activity.update", T0, ev(1), WorkerActivityName="Available"))
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    r = client.post("/webhooks/events", json=[])
    assert r.status_code == 503


@pytest.fixture
def signed(workdir, clock):
    eng = make_engine(workdir, clock, auth={"twilio_auth_token": TOKEN})
    yield eng, create_app(engine=eng).test_client()
    eng.close()


def test_callback_signature_checked_with_twilios_request_validator(signed):
    engine, client = signed
    url = "http://localhost/webhooks/taskrouter"
    data = callback("worker.activity.update", T0, ev(1), WorkerActivityName="Available")
    good = RequestValidator(TOKEN).compute_signature(url, data)
    assert client.post("/webhooks/taskrouter", data=data).status_code == 401  # no signature
    assert client.post("/webhooks/taskrouter", data=data, headers={"X-Twilio-Signature": good[::-1]}).status_code == 403
    tampered = {**data, "WorkerActivityName": "Break"}
    assert client.post("/webhooks/taskrouter", data=tampered, headers={"X-Twilio-Signature": good}).status_code == 403
    assert rows(engine) == [] and rejected(engine) == []  # failed auth stores nothing
    assert client.post("/webhooks/taskrouter", data=data, headers={"X-Twilio-Signature": good}).status_code == 204
    assert len(rows(engine)) == 1


def test_a_signed_callback_that_is_kept_keeps_the_bytes_received(signed):
    # the signature check parses the form; the body kept for an ignored or rejected callback must
    # still be the request's bytes, not what is left of a consumed stream
    engine, client = signed
    url = "http://localhost/webhooks/taskrouter"
    for data in (callback("workspace.created", T0, ev(2)), {"Sid": ev(3)}):
        sig = RequestValidator(TOKEN).compute_signature(url, data)
        client.post("/webhooks/taskrouter", data=data, headers={"X-Twilio-Signature": sig})
    kept = [bytes(r["body"]) for r in engine.store.query("SELECT body FROM rejected ORDER BY id")]
    assert [dict(parse_qsl(b.decode())) for b in kept] == [callback("workspace.created", T0, ev(2)), {"Sid": ev(3)}]


def test_callback_signature_with_a_query_string_and_default_port(signed):
    engine, client = signed
    data = callback("worker.activity.update", T0, ev(1), WorkerActivityName="Available")
    sig = RequestValidator(TOKEN).compute_signature("https://localhost:443/webhooks/taskrouter?site=ny", data)
    r = client.post("/webhooks/taskrouter?site=ny", data=data, headers={"X-Twilio-Signature": sig},
                    base_url="https://localhost")
    assert r.status_code == 204


@pytest.mark.parametrize("public_url", ["https://rta.example.com/webhooks/rta", "https://rta.example.com",
                                        "https://rta.example.com/"])
def test_behind_a_proxy_every_receiver_is_signed_beside_the_public_url(workdir, clock, public_url):
    engine = make_engine(workdir, clock, auth={"twilio_auth_token": TOKEN}, server={"public_url": public_url})
    try:
        client = create_app(engine=engine).test_client()
        data = callback("worker.activity.update", T0, ev(1), WorkerActivityName="Available")
        sig = RequestValidator(TOKEN).compute_signature("https://rta.example.com/webhooks/taskrouter", data)
        assert client.post("/webhooks/taskrouter", data=data, headers={"X-Twilio-Signature": sig}).status_code == 204
    finally:
        engine.close()


def test_event_streams_signed_json(signed):
    engine, client = signed
    body = json.dumps([{"specversion": "1.0", "type": "com.twilio.taskrouter.worker.activity.update", "id": "NO1",
                        "data": {"payload": {"sid": ev(7), "worker_sid": W, "worker_activity_name": "Lunch",
                                             "timestamp": "2025-11-25T15:00:00.000Z"}}}]).encode()
    url, sig = sign_json("http://localhost/webhooks/events", body, TOKEN)
    path = url[len("http://localhost"):]
    assert client.post("/webhooks/events", data=body, content_type="application/json").status_code == 401
    r = client.post(path, data=body, content_type="application/json", headers={"X-Twilio-Signature": sig})
    assert r.status_code == 200 and r.get_json()["accepted"] == 1
    assert rows(engine) == [("tr:" + ev(7), T0, "Lunch", "none")]


def test_event_streams_basic_auth_from_the_sink_url(workdir, clock):
    engine = make_engine(workdir, clock, auth={"webhook_basic": {"username": "sink", "password": "s3cret"}})
    try:
        client = create_app(engine=engine).test_client()
        ce = {"specversion": "1.0", "type": "com.twilio.taskrouter.worker.created", "id": "NO2",
              "data": {"payload": {"sid": ev(8), "worker_sid": W, "worker_activity_name": "Offline", "timestamp": T0}}}
        cred = base64.b64encode(b"sink:s3cret").decode()
        assert client.post("/webhooks/events", json=ce).status_code == 401
        bad = base64.b64encode(b"sink:nope").decode()
        assert client.post("/webhooks/events", json=ce, headers={"Authorization": f"Basic {bad}"}).status_code == 403
        assert rows(engine) == [] and rejected(engine) == []
        r = client.post("/webhooks/events", json=ce, headers={"Authorization": f"Basic {cred}"})
        assert r.status_code == 200 and r.get_json()["accepted"] == 1
    finally:
        engine.close()


def test_event_streams_bad_json_is_400_and_kept(client, engine):
    r = client.post("/webhooks/events", data=b"[{", content_type="application/json")
    assert r.status_code == 400
    assert len(rejected(engine)) == 1


# ---- one model, late events ---------------------------------------------------------------

def test_a_late_activity_event_re_derives_what_follows(client, engine):
    post = lambda **kw: client.post("/webhooks/taskrouter", data=callback(**kw))
    post(event_type="worker.activity.update", at_ms=T0, sid=ev(1), WorkerActivityName="Available")
    post(event_type="reservation.accepted", at_ms=T0 + 60_000, sid=ev(3), ReservationSid="WR1", TaskChannelUniqueName="voice")
    post(event_type="reservation.completed", at_ms=T0 + 120_000, sid=ev(4), ReservationSid="WR1")
    post(event_type="worker.activity.update", at_ms=T0 + 180_000, sid=ev(5), WorkerActivityName="Break")
    # delivered last: the agent went Unavailable (without a reservation event saying so) before the call
    post(event_type="worker.activity.update", at_ms=T0 + 30_000, sid=ev(2), WorkerActivityName="Unavailable")
    eff = {}
    for s in engine.tracker.timeline(W):
        eff[s.at] = (s.activity, s.task)  # the last snapshot at an instant wins
    assert eff == {T0: ("Available", "none"), T0 + 30_000: ("Unavailable", "none"),
                   T0 + 60_000: ("Unavailable", "active"), T0 + 120_000: ("Unavailable", "none"),
                   T0 + 180_000: ("Break", "none")}
    corrections = rows(engine, "SELECT at_ms FROM journal WHERE event_sid IS NULL ORDER BY id")
    assert corrections == [(T0 + 60_000,), (T0 + 120_000,)]  # stops where the fold meets the journal again
    assert engine.tracker.current(W).snapshot.activity == "Break"


def test_same_events_in_any_order_give_the_same_journal_view(workdir, clock):
    import itertools

    events = [
        callback("worker.activity.update", T0, ev(1), WorkerActivityName="Available"),
        callback("reservation.created", T0 + 10, ev(2), ReservationSid="WR1", TaskChannelUniqueName="chat"),
        callback("reservation.created", T0 + 10, ev(3), ReservationSid="WR2", TaskChannelUniqueName="chat"),
        callback("reservation.accepted", T0 + 20, ev(4), ReservationSid="WR1"),
        callback("reservation.wrapup", T0 + 30, ev(5), ReservationSid="WR1", TaskAssignmentStatus="wrapping"),
        callback("reservation.rejected", T0 + 30, ev(6), ReservationSid="WR2"),
        callback("reservation.completed", T0 + 40, ev(7), ReservationSid="WR1"),
        callback("worker.activity.update", T0 + 40, ev(8), WorkerActivityName="Offline"),
    ]
    views = set()
    for i, order in enumerate(itertools.islice(itertools.permutations(events), 0, 40320, 997)):
        (workdir / "adherence.db").unlink(missing_ok=True)
        engine = make_engine(workdir, clock)
        try:
            client = create_app(engine=engine).test_client()
            for data in order:
                assert client.post("/webhooks/taskrouter", data=data).status_code == 204
            view = {}
            for s in engine.tracker.timeline(W):
                view[s.at] = (s.activity, s.task)
            views.add(tuple(sorted(view.items())))
        finally:
            engine.close()
    assert views == {((T0, ("Available", "none")), (T0 + 10, ("Available", "reserved")),
                      (T0 + 20, ("Available", "active")), (T0 + 30, ("Available", "wrapping")),
                      (T0 + 40, ("Offline", "none")))}


def test_callback_and_event_streams_carry_the_same_event_once(client, engine):
    client.post("/webhooks/taskrouter", data=callback("worker.activity.update", T0, ev(1), WorkerActivityName="Available"))
    ce = {"specversion": "1.0", "type": "com.twilio.taskrouter.worker.activity.update", "id": "NO9",
          "data": {"payload": {"sid": ev(1), "worker_sid": W, "worker_activity_name": "Available",
                               "timestamp": "2025-11-25T15:00:00.000Z"}}}
    r = client.post("/webhooks/events", json=[ce, ce])
    assert r.get_json() == {"ok": True, "accepted": 0, "duplicates": 2, "rejected": 0}
    assert len(rows(engine)) == 1


# ---- mixing sources -----------------------------------------------------------------------

def rta_body(worker=W, sid="EV" + "f" * 32):
    data = load_fixture("offline-no-tasks.json")
    data["records"][0]["last_processed_event_sid"] = sid
    data["records"][0]["worker"]["sid"] = worker
    return json.dumps(data)


def test_an_rta_fed_worker_refuses_taskrouter_events(client, engine):
    assert client.post("/webhooks/rta", data=rta_body(), content_type="application/json").get_json()["accepted"] == 1
    r = client.post("/webhooks/events", json={"specversion": "1.0", "type": "com.twilio.taskrouter.worker.created",
                                              "id": "NO3", "data": {"payload": {"sid": ev(9), "worker_sid": W}}})
    body = r.get_json()
    assert r.status_code == 200 and body["accepted"] == 0 and body["rejected"] == 1
    assert "is fed by the RTA feed" in body["errors"][0]
    assert len(rows(engine)) == 1
    # other workers are free to come from events
    other = {**callback("worker.created", T0, ev(10), WorkerActivityName="Offline"), "WorkerSid": "WK" + "b" * 32}
    assert client.post("/webhooks/taskrouter", data=other).status_code == 204
    assert len(rows(engine)) == 2


def test_an_event_fed_worker_refuses_rta_records(client, engine):
    client.post("/webhooks/taskrouter", data=callback("worker.created", T0, ev(1), WorkerActivityName="Offline"))
    r = client.post("/webhooks/rta", data=rta_body(), content_type="application/json")
    body = r.get_json()
    assert body["accepted"] == 0 and body["rejected"] == 1 and "fed by TaskRouter events" in body["errors"][0]
    # the refusal survives a restart: it is read from the journal
    engine.journal.__init__(engine.store, engine.tracker)
    body = client.post("/webhooks/rta", data=rta_body(sid="EV" + "e" * 32), content_type="application/json").get_json()
    assert body["rejected"] == 1
