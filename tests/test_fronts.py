"""``serve`` with front processes (server.front_processes): the same answers, journal and counts as one
process; the fronts relay everything else; they are kept running and stop with the owner."""

from __future__ import annotations

import base64
import json
import os
import signal
import sqlite3
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests
from twilio.request_validator import RequestValidator

from adherence.auth import sign_json
from adherence.config import load_config

from conftest import load_fixture
from servers import Server

TOKEN = "front-test-token-5d1c"
API = "front-api-token-77e0"
BASIC = ("flex", "front-basic-pw-19af")
W = "WK" + "a" * 32
NOW_MS = int(time.time() * 1000)  # one instant for every body: both servers get the same bytes
NOW_ISO = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(NOW_MS / 1000))


def make_center(folder: Path) -> Path:
    folder.mkdir()
    (folder / "schedules").mkdir()
    (folder / "schedules" / "roster.yaml").write_text("timezone: UTC\nagents: {}\n")
    (folder / "rules").mkdir()
    (folder / "rules" / "r.yaml").write_text(
        "rules:\n  - name: offline\n    when: {activity: Offline}\n    for: 1m\n    severity: info\n")
    (folder / "config.yaml").write_text(
        "database: a.db\ntimezone: UTC\nschedules: schedules\nrules: rules\nevaluation:\n  interval: 1s\n"
        "auth:\n  twilio_auth_token: ${FRONT_TEST_TWILIO}\n  api_token: ${FRONT_TEST_API}\n"
        f"  webhook_basic: {{username: {BASIC[0]}, password: {BASIC[1]}}}\n")
    return folder / "config.yaml"


ENV = {"FRONT_TEST_TWILIO": TOKEN, "FRONT_TEST_API": API}


def rta_body(sid: str, activity: str = "Available") -> bytes:
    data = load_fixture("available-one-voice-call.json")
    rec = data["records"][0]
    rec["last_processed_event_sid"] = sid
    rec["worker"]["activity_name"] = activity
    rec["date_last_processed_event"] = NOW_ISO
    return json.dumps(data).encode()


def callback(sid: str, event_type: str = "worker.activity.update", **fields) -> dict:
    return {"EventType": event_type, "Sid": sid, "AccountSid": "AC" + "0" * 32, "WorkspaceSid": "WS" + "0" * 32,
            "Timestamp": str(NOW_MS // 1000), "TimestampMs": str(NOW_MS), "WorkerSid": W, **fields}


def basic(user=BASIC[0], pw=BASIC[1]) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()}


def exchanges(url: str) -> list[tuple[str, requests.Response]]:
    """The same requests, whichever server: every receiver, every refusal, the relayed surfaces."""
    out = []
    s = requests.Session()

    def json_post(label, path, body, sign=True, auth=True, extra=None):
        headers = {"Content-Type": "application/json", **(basic() if auth else {})}
        if sign:
            target, sig = sign_json(url + path, body, TOKEN)
            headers["X-Twilio-Signature"] = sig
        else:
            target = url + path
        headers.update(extra or {})
        out.append((label, s.post(target, data=body, headers=headers, timeout=10)))

    def form_post(label, data, sign=True):
        headers = {**basic()}
        if sign:
            headers["X-Twilio-Signature"] = RequestValidator(TOKEN).compute_signature(url + "/webhooks/taskrouter", data)
        out.append((label, s.post(url + "/webhooks/taskrouter", data=urlencode(data),
                                  headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
                                  timeout=10)))

    json_post("rta new", "/webhooks/rta", rta_body("EV" + "1" * 32))
    json_post("rta again (duplicate)", "/webhooks/rta", rta_body("EV" + "1" * 32))
    json_post("rta second", "/webhooks/rta", rta_body("EV" + "2" * 32, "Break"))
    json_post("rta not json", "/webhooks/rta", b"{not json")
    json_post("rta not an envelope", "/webhooks/rta", b'{"records": 5}')
    json_post("rta unsigned", "/webhooks/rta", rta_body("EV" + "3" * 32), sign=False)
    json_post("rta no basic", "/webhooks/rta", rta_body("EV" + "3" * 32), auth=False)
    out.append(("rta wrong basic", s.post(url + "/webhooks/rta", data=rta_body("EV" + "4" * 32),
                                          headers={"Content-Type": "application/json", **basic(pw="nope")},
                                          timeout=10)))
    json_post("rta bad signature", "/webhooks/rta", rta_body("EV" + "5" * 32),
              extra={"X-Twilio-Signature": "AAAA"})
    form_post("taskrouter activity", callback("EV" + "6" * 32, WorkerActivityName="Lunch"))
    form_post("taskrouter ignored", callback("EV" + "7" * 32, "workspace.created"))
    form_post("taskrouter no type", {"Sid": "EV" + "8" * 32})
    form_post("taskrouter unsigned", callback("EV" + "9" * 32, WorkerActivityName="Lunch"), sign=False)
    ce = [{"specversion": "1.0", "type": "com.twilio.taskrouter.worker.activity.update", "id": "NO1",
           "data": {"payload": {"sid": "EV" + "a" * 32, "worker_sid": "WK" + "b" * 32,
                                "worker_activity_name": "Available",
                                "timestamp": NOW_ISO}}}]
    json_post("events list", "/webhooks/events", json.dumps(ce).encode())
    json_post("events not json", "/webhooks/events", b"[")
    out.append(("GET a receiver", s.get(url + "/webhooks/rta", timeout=10)))
    out.append(("no such page", s.get(url + "/no/such/page?x=1", timeout=10)))
    out.append(("api without token", s.get(url + "/api/agents", timeout=10)))
    out.append(("api with token", s.get(url + "/api/agents", headers={"Authorization": f"Bearer {API}"},
                                        timeout=10)))
    out.append(("api bad post", s.post(url + "/api/periods", data=b'{"kind": 5}',
                                       headers={"Authorization": f"Bearer {API}",
                                                "Content-Type": "application/json"}, timeout=10)))
    out.append(("csv export", s.get(url + "/api/exceptions", params={"format": "csv"},
                                    headers={"Authorization": f"Bearer {API}"}, timeout=10)))
    return out


def _comparable(resp: requests.Response):
    ctype = resp.headers.get("Content-Type", "")
    body = resp.content
    if ctype.startswith("application/json") and body:
        body = resp.json()
        if isinstance(body, dict) and "agents" in body:  # the live view: its clock fields differ
            body = (body["total"], sorted((a["worker_sid"], a["activity"]) for a in body["agents"]))
    keep = {k: resp.headers[k] for k in ("Content-Type", "WWW-Authenticate", "Retry-After", "Allow")
            if k in resp.headers}
    return resp.status_code, keep, body


def _metric(text: str, line_start: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.split()[-1])
    return 0.0


def journal_of(db: Path):
    conn = sqlite3.connect(db)
    try:
        # not at_ms: a callback's time may be its receipt's
        j = conn.execute("SELECT event_sid, worker_sid, activity, task FROM journal ORDER BY id").fetchall()
        r = conn.execute("SELECT reason, body FROM rejected ORDER BY id").fetchall()
        return j, r
    finally:
        conn.close()


@pytest.fixture
def two_centers(tmp_path):
    return make_center(tmp_path / "one"), make_center(tmp_path / "fronts")


def test_fronts_answer_journal_and_count_as_one_process(two_centers):
    one_cfg, fronts_cfg = two_centers
    with Server(one_cfg, env=ENV) as one, Server(fronts_cfg, env=ENV, args=["--front-processes", "2"]) as fronts:
        a, b = exchanges(one.url), exchanges(fronts.url)
        for (label, ra), (_, rb) in zip(a, b):
            assert _comparable(ra) == _comparable(rb), label
        statuses = [r.status_code for _, r in a]
        assert statuses.count(200) >= 4 and 401 in statuses and 403 in statuses and 204 in statuses
        assert {r.status_code for label, r in a if label.startswith("rta not")} == {400}
        time.sleep(1.6)  # a front sends its counts every second
        wanted = ['adherence_webhook_requests_total{status="200"}', 'adherence_webhook_requests_total{status="204"}',
                  'adherence_webhook_requests_total{status="400"}', 'adherence_webhook_requests_total{status="401"}',
                  'adherence_webhook_requests_total{status="403"}',
                  'adherence_auth_failures_total{surface="webhook"}', "adherence_webhook_duration_seconds_count"]
        m1 = requests.get(one.url + "/metrics", timeout=10).text
        m2 = requests.get(fronts.url + "/metrics", timeout=10).text
        assert [_metric(m1, w) for w in wanted] == [_metric(m2, w) for w in wanted]
        assert _metric(m2, "adherence_webhook_duration_seconds_count") >= 15
        health = requests.get(fronts.url + "/health", headers={"Authorization": f"Bearer {API}"}, timeout=10).json()
        assert health["fronts"] == {"configured": 2, "running": 2, "restarts": 0}
    ja, jb = journal_of(one_cfg.parent / "a.db"), journal_of(fronts_cfg.parent / "a.db")
    assert ja == jb and len(ja[0]) == 4, ja[0]
    assert len(ja[1]) >= 4 and all(body for _, body in ja[1])  # kept bodies are the bytes received


def test_the_relay_passes_the_clients_address_and_drops_a_forged_one(tmp_path):
    cfg = make_center(tmp_path / "c")
    with Server(cfg, env=ENV, args=["--front-processes", "1", "--log-format", "json"]) as server:
        r = requests.get(server.url + "/api/agents", headers={"Authorization": "Bearer wrong",
                                                              "X-Forwarded-For": "6.6.6.6"}, timeout=10)
        assert r.status_code in (401, 403)
        time.sleep(0.3)
    lines = [json.loads(x) for x in server.log.read_text().splitlines() if x.startswith("{")]
    refused = [x for x in lines if x.get("event") == "api_auth_failed"]
    assert refused and refused[-1]["remote"] == "127.0.0.1"
    assert TOKEN not in server.log.read_text() and API not in server.log.read_text()


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def _all_gone(pids: list[int], why: str) -> None:
    deadline = time.monotonic() + 15
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in pids), why


def test_a_front_that_dies_is_started_again_and_all_stop_with_the_owner(tmp_path):
    cfg = make_center(tmp_path / "c")
    server = Server(cfg, env=ENV, args=["--front-processes", "2"]).start()
    try:
        kids = _children(server.proc.pid)
        assert len(kids) == 2
        os.kill(kids[0], signal.SIGKILL)
        deadline = time.monotonic() + 20
        ok = 0
        while time.monotonic() < deadline:
            body = rta_body(f"EV{ok:032x}")
            target, sig = sign_json(server.url + "/webhooks/rta", body, TOKEN)
            r = requests.post(target, data=body, timeout=10,
                              headers={"Content-Type": "application/json", "X-Twilio-Signature": sig, **basic()})
            assert r.status_code == 200, r.text  # the other front answers meanwhile
            ok += 1
            health = requests.get(server.url + "/health", headers={"Authorization": f"Bearer {API}"},
                                  timeout=10).json()
            if health["fronts"] == {"configured": 2, "running": 2, "restarts": 1}:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the killed front was not started again")
        kids = _children(server.proc.pid)
        assert len(kids) == 2
    finally:
        server.kill(signal.SIGTERM)
    assert server.proc.returncode == 0
    _all_gone(kids, "a front outlived the owner")


def test_fronts_stop_when_the_owner_is_killed(tmp_path):
    cfg = make_center(tmp_path / "c")
    server = Server(cfg, env=ENV, args=["--front-processes", "2"]).start()
    kids = _children(server.proc.pid)
    assert len(kids) == 2
    server.kill(signal.SIGKILL)
    _all_gone(kids, "a front outlived a killed owner")


def test_front_processes_setting_is_checked(tmp_path):
    cfg = make_center(tmp_path / "c")
    text = cfg.read_text()
    cfg.write_text(text.replace("evaluation:", "server:\n  front_processes: 2\nevaluation:"))
    assert load_config(cfg).server_front_processes == 2
    cfg.write_text(text.replace("evaluation:", "server:\n  front_processes: -1\nevaluation:"))
    with pytest.raises(Exception, match="front_processes"):
        load_config(cfg)
