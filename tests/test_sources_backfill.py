"""``adherence backfill``: a server stopped for a while misses events; TaskRouter's history fills the gap.

Twilio is played by a loopback HTTP server answering ``GET /v1/Workspaces/WS…/Events`` with the
documented shape (``{"events": [...], "meta": {"next_page_url": ...}}``, basic auth with the
account SID and auth token, ``StartDate``/``EndDate``/``PageSize``, pages by ``PageToken``).
"""

from __future__ import annotations

import base64
import json
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner

from adherence.cli import cli
from adherence.clock import FixedClock
from adherence.config import load_config
from adherence.engine import Engine
from adherence.sim.post import post_envelopes
from adherence.simulate import encode_body, generate
from adherence.sources.events import snake
from adherence.timeutil import iso, parse_instant_ms

from servers import Server

TZ = "America/New_York"
START = 1795611600000  # 2026-11-25T08:00 in New York
REPO = Path(__file__).resolve().parent.parent


def _center(tmp: Path, sim, name: str) -> Path:
    import shutil

    d = tmp / name
    (d / "schedules").mkdir(parents=True)
    (d / "schedules" / "roster.yaml").write_text(sim.roster_yaml())
    shutil.copytree(REPO / "rules", d / "rules")
    (d / "config.yaml").write_text(f"database: adherence.db\ntimezone: {TZ}\nschedules: schedules\nrules: rules\n")
    return d


def _effective(timeline) -> list[tuple]:
    """(at, activity, task) in force, the last snapshot at an instant winning, repeats folded away."""
    out: list[tuple] = []
    for s in timeline:
        if out and out[-1][0] == s.at:
            out.pop()
        if not out or out[-1][1:] != (s.activity, s.task):
            out.append((s.at, s.activity, s.task))
    return out

ACCOUNT, TOKEN = "AC" + "1" * 32, "backfill-token-0123456789"


def resource_instance(fields: dict) -> dict:
    """A callback's fields as the Events resource shows the same event."""
    at = int(fields["TimestampMs"])
    skip = {"Sid", "EventType", "AccountSid", "Timestamp", "TimestampMs", "ResourceType", "ResourceSid"}
    return {
        "account_sid": fields["AccountSid"],
        "actor_sid": fields["WorkspaceSid"],
        "actor_type": "workspace",
        "description": f"{fields['EventType']} for {fields['WorkerSid']}",
        "event_data": {snake(k): v for k, v in fields.items() if k not in skip},
        "event_date": datetime.fromtimestamp(at / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "event_date_ms": at,
        "event_type": fields["EventType"],
        "resource_sid": fields["ResourceSid"],
        "resource_type": fields["ResourceType"].lower(),
        "sid": fields["Sid"],
        "source": "twilio",
        "workspace_sid": fields["WorkspaceSid"],
    }


class Twilio:
    """The Events resource of one workspace, on loopback."""

    def __init__(self, workspace: str, events: list[dict], page_size_cap: int = 250):
        self.workspace, self.events, self.cap = workspace, sorted(events, key=lambda e: e["event_date_ms"]), page_size_cap
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                outer.requests.append(self.path)
                expected = "Basic " + base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
                if self.headers.get("Authorization") != expected:
                    return self._send(401, {"code": 20003, "message": "Authenticate", "status": 401})
                parts = urlsplit(self.path)
                if parts.path != f"/v1/Workspaces/{outer.workspace}/Events":
                    return self._send(404, {"code": 20404, "message": "not found", "status": 404})
                q = {k: v[0] for k, v in parse_qs(parts.query).items()}
                start = parse_instant_ms(q["StartDate"])
                end = parse_instant_ms(q["EndDate"]) + 999  # whole seconds, inclusive
                size = min(int(q.get("PageSize", 50)), outer.cap)
                chosen = [e for e in outer.events if start <= e["event_date_ms"] <= end]
                offset = int(q.get("PageToken", 0))
                page = chosen[offset : offset + size]
                more = offset + size < len(chosen)
                base = f"http://127.0.0.1:{outer.port}{parts.path}"
                nxt = (f"{base}?StartDate={q['StartDate']}&EndDate={q['EndDate']}&PageSize={size}"
                       f"&PageToken={offset + size}") if more else None
                self._send(200, {"events": page, "meta": {"page_size": size, "key": "events", "next_page_url": nxt,
                                                         "url": base, "first_page_url": base, "previous_page_url": None}})

            def _send(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def _config(d: Path, port: int) -> None:
    (d / "config.yaml").write_text(
        f"database: adherence.db\ntimezone: {TZ}\nschedules: schedules\nrules: rules\n"
        "auth:\n  twilio_auth_token: ${TWILIO_AUTH_TOKEN}\n"
        f"twilio:\n  account_sid: ${{TWILIO_ACCOUNT_SID}}\n  workspace_sid: ${{TWILIO_WORKSPACE_SID}}\n"
        f"  api_url: http://127.0.0.1:{port}\n")


@pytest.mark.slow
def test_backfill_fills_the_gap_a_stopped_server_left(tmp_path, monkeypatch):
    sim = generate(6, 10, 21, START, TZ, exact=True)
    bodies = list(sim.bodies("taskrouter"))
    gap_from, gap_to = START + 3 * 3_600_000, START + 4 * 3_600_000 + 1500  # the server is down for an hour
    instances = [resource_instance(f) for _, f in bodies]
    missed = {f["Sid"] for d, f in bodies if gap_from <= d < gap_to}
    before = [f for d, f in bodies if d < gap_from]
    after = [f for d, f in bodies if d >= gap_to]

    # the whole day, as it would have been journaled without downtime
    full = _center(tmp_path, sim, "full")
    (full / "all.txt").write_text("\n".join(encode_body("taskrouter", f) for _, f in bodies) + "\n")
    r = CliRunner().invoke(cli, ["replay", "--quiet", "--config", str(full / "config.yaml"), str(full / "all.txt")])
    assert r.exit_code == 0, r.output

    d = _center(tmp_path, sim, "live")
    env = {"TWILIO_AUTH_TOKEN": TOKEN, "TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_WORKSPACE_SID": sim.world.workspace_sid}
    with Twilio(sim.world.workspace_sid, instances) as twilio:
        _config(d, twilio.port)
        for part in (before, after):  # stopped in between: every callback of the gap is lost
            with Server(d / "config.yaml", env=env) as server:
                summary = post_envelopes(part, server.url + "/webhooks/taskrouter", token=TOKEN, concurrency=2,
                                         fmt="taskrouter")
                assert summary.failed == 0 and summary.statuses == {204: len(part)}, summary.text()
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        args = ["backfill", "--config", str(d / "config.yaml"), "--from", iso(gap_from - 60_000), "--to", iso(gap_to + 60_000)]
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 0, r.output
        unique_missed = len(missed - {f["Sid"] for f in before + after})
        assert f"added {unique_missed} event(s) of 6 worker(s)" in r.output, r.output
        assert unique_missed > 100
        assert all("PageSize=1000" in p or "PageToken=" in p for p in twilio.requests)
        assert len(twilio.requests) > 1  # followed next_page_url

        again = CliRunner().invoke(cli, args)
        assert "added 0 event(s)" in again.output, again.output

    now = START + 16 * 3_600_000
    views = {}
    for name in ("full", "live"):
        engine = Engine(load_config(tmp_path / name / "config.yaml"), FixedClock(now))
        try:
            engine.runner.tick()
            views[name] = ({w: _effective(engine.tracker.timeline(w)) for w in engine.tracker.workers()},
                           engine.store.query("SELECT worker_sid, rule, start_ms, end_ms FROM exceptions ORDER BY 1, 3, 2"),
                           engine.store.query("SELECT worker_sid, day, in_adherence_ms, out_of_adherence_ms FROM adherence ORDER BY 1, 2"))
        finally:
            engine.close()
    assert views["live"] == views["full"]


def test_backfill_says_what_is_missing_and_reports_twilio_errors(workdir, monkeypatch):
    r = CliRunner().invoke(cli, ["backfill", "--config", str(workdir / "config.yaml"), "--from", "2026-11-25", "--to", "2026-11-25"])
    assert r.exit_code != 0
    assert "twilio.account_sid" in r.output and "twilio.workspace_sid" in r.output and "auth.twilio_auth_token" in r.output
    with Twilio("WS" + "9" * 32, []) as twilio:
        _config(workdir, twilio.port)
        monkeypatch.setenv("TWILIO_ACCOUNT_SID", ACCOUNT)
        monkeypatch.setenv("TWILIO_WORKSPACE_SID", "WS" + "9" * 32)
        monkeypatch.setenv("TWILIO_AUTH_TOKEN", "wrong")
        r = CliRunner().invoke(cli, ["backfill", "--config", str(workdir / "config.yaml"), "--from", "2026-11-25", "--to", "2026-11-25"])
        assert r.exit_code != 0 and "HTTP 401" in r.output
        monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)
        r = CliRunner().invoke(cli, ["backfill", "--config", str(workdir / "config.yaml"), "--from", "2026-11-25T10:00", "--to", "2026-11-25T09:00"])
        assert r.exit_code != 0 and "is after" in r.output
        r = CliRunner().invoke(cli, ["backfill", "--config", str(workdir / "config.yaml"), "--from", "2026-11-25", "--to", "2026-11-25"])
        assert r.exit_code == 0, r.output
        assert "read 0 events" in r.output and "added 0 event(s)" in r.output
        assert "StartDate=2026-11-25T00%3A00%3A00Z" in twilio.requests[-1]
