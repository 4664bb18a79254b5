"""POST /webhooks/rta: authentication, limits, rejected bodies, counts, concurrency."""

from __future__ import annotations

import base64
import json
import threading
from urllib.parse import urlencode

import pytest
from twilio.request_validator import RequestValidator

from adherence.auth import sign_json
from adherence.web import create_app

from conftest import load_fixture, make_engine

TOKEN = "test-auth-token-0123456789"


def body_of(name="offline-no-tasks.json", sid="EV00000000000000000000000000000001", **rec):
    data = load_fixture(name)
    data["records"][0]["last_processed_event_sid"] = sid
    data["records"][0].update(rec)
    return json.dumps(data).encode()


def journal_count(engine):
    return engine.store.reader.execute("SELECT COUNT(*) FROM journal").fetchone()[0]


def rejected_rows(engine):
    return engine.store.query("SELECT reason, body FROM rejected ORDER BY id")


@pytest.fixture
def signed(workdir, clock):
    eng = make_engine(workdir, clock, auth={"twilio_auth_token": TOKEN})
    app = create_app(engine=eng)
    yield eng, app.test_client()
    eng.close()


def twilio_sign(url: str, body: bytes) -> tuple[str, str]:
    """Sign like Twilio, using twilio's own validator to compute the signature."""
    import hashlib

    v = RequestValidator(TOKEN)
    full = f"{url}?{urlencode({'bodySHA256': hashlib.sha256(body).hexdigest()})}"
    return full, v.compute_signature(full, {})


def test_accepts_fixture_and_answers_counts(client, engine):
    resp = client.post("/webhooks/rta", data=body_of(), content_type="application/json")
    assert resp.status_code == 200
    assert resp.get_json() == {"ok": True, "accepted": 1, "duplicates": 0, "rejected": 0}
    assert journal_count(engine) == 1
    cur = engine.tracker.current("WKxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")
    assert cur.snapshot.activity == "Offline"


def test_duplicate_event_sid_is_acknowledged_and_stored_once(client, engine):
    for _ in range(3):
        resp = client.post("/webhooks/rta", data=body_of(), content_type="application/json")
        assert resp.status_code == 200
    assert resp.get_json()["duplicates"] == 1
    assert journal_count(engine) == 1
    assert len(engine.tracker.timeline("WKxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")) == 1


def test_signed_request_is_accepted(signed):
    engine, client = signed
    body = body_of()
    url, sig = twilio_sign("http://localhost/webhooks/rta", body)
    assert RequestValidator(TOKEN).validate(url, body.decode(), sig)
    resp = client.post(url, data=body, content_type="application/json", headers={"X-Twilio-Signature": sig})
    assert resp.status_code == 200, resp.get_json()
    assert journal_count(engine) == 1


def test_signature_made_with_default_port_is_accepted(signed):
    engine, client = signed
    body = body_of()
    url, _ = twilio_sign("http://localhost/webhooks/rta", body)
    sig = RequestValidator(TOKEN).compute_signature(url.replace("localhost", "localhost:80"), {})
    resp = client.post(url, data=body, content_type="application/json", headers={"X-Twilio-Signature": sig})
    assert resp.status_code == 200


def test_our_signer_interoperates_with_twilios_validator():
    body = body_of()
    url, sig = sign_json("https://user:pw@rta.example.com/webhooks/rta", body, TOKEN)
    assert RequestValidator(TOKEN).validate(url.replace("user:pw@", ""), body.decode(), sig)


@pytest.mark.parametrize("case", ["forged", "tampered-body", "missing-signature", "missing-bodySHA256", "wrong-token"])
def test_forged_or_tampered_requests_store_nothing(signed, case):
    engine, client = signed
    body = body_of()
    url, sig = twilio_sign("http://localhost/webhooks/rta", body)
    headers = {"X-Twilio-Signature": sig}
    if case == "forged":
        headers["X-Twilio-Signature"] = base64.b64encode(b"x" * 20).decode()
    elif case == "tampered-body":
        body = body_of(sid="EV99999999999999999999999999999999")
    elif case == "missing-signature":
        headers = {}
    elif case == "missing-bodySHA256":
        url = "http://localhost/webhooks/rta"
        headers["X-Twilio-Signature"] = RequestValidator(TOKEN).compute_signature(url, {})
    elif case == "wrong-token":
        headers["X-Twilio-Signature"] = RequestValidator("other").compute_signature(url, {})
    resp = client.post(url, data=body, content_type="application/json", headers=headers)
    assert resp.status_code == (401 if case == "missing-signature" else 403)
    assert resp.get_json()["ok"] is False
    assert journal_count(engine) == 0 and rejected_rows(engine) == []


def test_public_url_behind_a_proxy(workdir, clock):
    eng = make_engine(workdir, clock, auth={"twilio_auth_token": TOKEN},
                      server={"public_url": "https://rta.example.com/hooks/flex"})
    client = create_app(engine=eng).test_client()
    body = body_of()
    url, sig = twilio_sign("https://rta.example.com/hooks/flex", body)
    query = url.split("?", 1)[1]
    resp = client.post(f"/webhooks/rta?{query}", data=body, content_type="application/json",
                       headers={"X-Twilio-Signature": sig})
    assert resp.status_code == 200
    # signed for the internal URL instead: refused
    url2, sig2 = twilio_sign("http://localhost/webhooks/rta", body)
    resp = client.post(url2, data=body, content_type="application/json", headers={"X-Twilio-Signature": sig2})
    assert resp.status_code == 403
    eng.close()


def basic(user, pw):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()}


def test_basic_auth(workdir, clock):
    eng = make_engine(workdir, clock, auth={"webhook_basic": {"username": "flex", "password": "s3cret"}})
    client = create_app(engine=eng).test_client()
    assert client.post("/webhooks/rta", data=body_of()).status_code == 401
    assert client.post("/webhooks/rta", data=body_of(), headers=basic("flex", "nope")).status_code == 403
    assert journal_count(eng) == 0
    resp = client.post("/webhooks/rta", data=body_of(), headers=basic("flex", "s3cret"))
    assert resp.status_code == 200 and journal_count(eng) == 1
    eng.close()


def test_oversized_body_is_413(workdir, clock):
    eng = make_engine(workdir, clock, server={"max_body_bytes": 1000})
    client = create_app(engine=eng).test_client()
    resp = client.post("/webhooks/rta", data=b"{" + b" " * 2000 + b"}", content_type="application/json")
    assert resp.status_code == 413
    assert "too large" in resp.get_json()["error"]
    assert journal_count(eng) == 0
    eng.close()


@pytest.mark.parametrize(
    "body,fragment",
    [
        (b"{not json", "malformed JSON"),
        (json.dumps({"product": "Flex", "object": "Other", "version": 1, "records": []}).encode(), "object: expected"),
        (b"", "empty body"),
    ],
)
def test_malformed_body_is_400_and_kept(client, engine, body, fragment):
    resp = client.post("/webhooks/rta", data=body, content_type="application/json")
    assert resp.status_code == 400
    assert fragment in resp.get_json()["error"]
    rows = rejected_rows(engine)
    assert len(rows) == 1 and fragment in rows[0]["reason"] and rows[0]["body"] == body
    assert journal_count(engine) == 0


def test_unattributable_record_is_counted_and_kept(client, engine):
    data = load_fixture("offline-no-tasks.json")
    bad = json.loads(json.dumps(data["records"][0]))
    bad["worker"]["sid"] = None
    data["records"].append(bad)
    resp = client.post("/webhooks/rta", json=data)
    assert resp.status_code == 200
    assert resp.get_json()["accepted"] == 1 and resp.get_json()["rejected"] == 1
    rows = rejected_rows(engine)
    assert rows[0]["reason"] == "records[1].worker.sid: missing"
    assert json.loads(rows[0]["body"])["worker"]["sid"] is None


def test_concurrent_posts_lose_nothing(client, engine):
    n_threads, per_thread = 8, 40
    errors = []

    def post(t):
        for i in range(per_thread):
            resp = client.post("/webhooks/rta", data=body_of(sid=f"EV{t:04d}{i:028d}"))
            if resp.status_code != 200:
                errors.append(resp.status_code)

    threads = [threading.Thread(target=post, args=(t,)) for t in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert journal_count(engine) == n_threads * per_thread


def test_health_reports_ok(client):
    resp = client.get("/health")
    assert resp.status_code == 200
    data = resp.get_json()
    assert data["database"]["ok"] and data["schedules"]["ok"] and data["rules"]["ok"]


def test_metrics_count_records(client):
    client.post("/webhooks/rta", data=body_of())
    client.post("/webhooks/rta", data=body_of())
    text = client.get("/metrics").get_data(as_text=True)
    assert "# TYPE adherence_records_accepted_total counter" in text
    assert "adherence_records_duplicate_total" in text
