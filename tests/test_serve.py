"""A real ``adherence serve`` process answering real HTTP."""

from __future__ import annotations

import signal

import requests
from click.testing import CliRunner

from adherence.auth import sign_json
from adherence.cli import cli

from conftest import FIXTURES
from servers import Server


def test_serve_answers_a_real_signed_post(workdir):
    token = "serve-test-token"
    with Server(workdir / "config.yaml", env={"TWILIO_AUTH_TOKEN": token}) as srv:
        body = (FIXTURES / "available-one-voice-call.json").read_bytes()
        unsigned = requests.post(srv.url + "/webhooks/rta", data=body, headers={"Content-Type": "application/json"})
        assert unsigned.status_code == 401
        url, sig = sign_json(srv.url + "/webhooks/rta", body, token)
        resp = requests.post(url, data=body, headers={"Content-Type": "application/json", "X-Twilio-Signature": sig})
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"ok": True, "accepted": 1, "duplicates": 0, "rejected": 0}
        health = requests.get(srv.url + "/health").json()
        assert health["agents"] == 1 and health["database"]["ok"]
        assert "adherence_records_accepted_total 1" in requests.get(srv.url + "/metrics").text
    log = srv.log.read_text()
    assert token not in log


def test_serve_refuses_public_bind_without_auth(workdir, monkeypatch):
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("ADHERENCE_API_TOKEN", raising=False)
    result = CliRunner().invoke(cli, ["serve", "--config", str(workdir / "config.yaml"), "--host", "0.0.0.0"])
    assert result.exit_code != 0
    assert "refusing to listen on 0.0.0.0" in result.output
    assert "the webhook" in result.output and "the API" in result.output


def test_serve_stops_cleanly_on_sigterm(workdir):
    srv = Server(workdir / "config.yaml").start()
    srv.kill(signal.SIGTERM)
    assert srv.proc.returncode == 0
    assert "stopped" in srv.log.read_text()
