"""Issue #12 (hardening): each test reproduces one finding against a real app or server.

Signatures over URLs with %-escapes, the database file swapped or deleted under a
running writer, odd input that used to be a 500, the /login redirect and its
brute-force throttle, what /health tells a stranger, read-only and corrupted
databases.
"""

from __future__ import annotations

import hashlib
import json
from urllib.parse import urlsplit

import pytest
from twilio.request_validator import RequestValidator

from adherence.web import create_app

from conftest import load_fixture, make_engine

TOKEN = "hardening-twilio-token-5d1f"
API_TOKEN = "hardening-api-token-9c2e"


def feed_body(sid: str = "EV" + "1" * 32, worker: str = "WK" + "a" * 32) -> bytes:
    data = load_fixture("available-one-voice-call.json")
    rec = data["records"][0]
    rec["last_processed_event_sid"] = sid
    rec["worker"]["sid"] = worker
    rec["date_last_processed_event"] = "2026-11-25T14:00:00Z"
    return json.dumps(data).encode()


def twilio_signed(url: str, body: bytes) -> tuple[str, str]:
    """(URL with bodySHA256, signature) as Twilio computes them: twilio-python's own validator."""
    sep = "&" if urlsplit(url).query else "?"
    signed = f"{url}{sep}bodySHA256={hashlib.sha256(body).hexdigest()}"
    return signed, RequestValidator(TOKEN).compute_signature(signed, {})


# -- 1. signatures over the URL as registered ------------------------------------------------

ESCAPED_QUERIES = ["t=a%2Fb", "t=%2f", "t=%7E", "t=caf%C3%A9", "t=%41", "t=a+b&u=a%20b", "t=%25", "x=1&x=2", ""]


@pytest.fixture
def signed_engine(workdir, clock):
    eng = make_engine(workdir, clock, auth={"twilio_auth_token": TOKEN})
    yield eng
    eng.close()


@pytest.mark.parametrize("query", ESCAPED_QUERIES)
def test_signature_holds_for_escapes_in_the_registered_query(signed_engine, query):
    client = create_app(engine=signed_engine).test_client()
    body = feed_body()
    url = "http://localhost/webhooks/rta" + (f"?{query}" if query else "")
    signed, sig = twilio_signed(url, body)
    assert RequestValidator(TOKEN).validate(signed, body.decode(), sig)  # the test signs as Twilio would
    resp = client.post(signed.removeprefix("http://localhost"), data=body, content_type="application/json",
                       headers={"X-Twilio-Signature": sig})
    assert resp.status_code == 200, resp.get_json()
    # and the escapes are part of what is signed: the decoded form is refused
    if "%" in query:
        _, decoded_sig = twilio_signed("http://localhost/webhooks/rta?" + query.replace("%2F", "/").replace("%2f", "/"), body)
        if decoded_sig != sig:
            resp = client.post(signed.removeprefix("http://localhost"), data=body, content_type="application/json",
                               headers={"X-Twilio-Signature": decoded_sig})
            assert resp.status_code == 403


@pytest.mark.parametrize("query", ["t=a%2Fb", "t=caf%C3%A9", "t=%7E"])
def test_signature_holds_behind_a_proxy_with_escapes_in_the_query(workdir, clock, query):
    public = "https://rta.example.com/hooks/flex"
    eng = make_engine(workdir, clock, auth={"twilio_auth_token": TOKEN}, server={"public_url": public})
    try:
        client = create_app(engine=eng).test_client()
        body = feed_body()
        signed, sig = twilio_signed(f"{public}?{query}", body)
        local = "/webhooks/rta?" + urlsplit(signed).query
        resp = client.post(local, data=body, content_type="application/json", headers={"X-Twilio-Signature": sig})
        assert resp.status_code == 200, resp.get_json()
    finally:
        eng.close()
