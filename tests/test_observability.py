"""Observability: /health tells the truth, /metrics is valid Prometheus text, logs are structured.

- a broken schedule or rule edit shows on /health (``ok: false``, the file
  and line) while the last good version stays in force;
- the evaluator's lag grows when no tick happens, and /health turns
  unhealthy once the scheduler has missed several ticks;
- /metrics parses as the Prometheus text format and its counters move with
  records accepted, duplicates, rejected records and bodies, and ticks;
- rejected requests are logged as JSON lines with ``event`` and ``remote``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from datetime import date

import pytest
from prometheus_client.parser import text_string_to_metric_families

from adherence.logs import JsonFormatter
from adherence.metrics import Metrics
from adherence.web import create_app

from conftest import load_fixture, make_engine

ALICE_SHIFT_BROKEN = "09:00-27:00"
def parse_prometheus(text: str) -> dict[str, dict]:
    """/metrics read by prometheus_client's own parser (it raises on anything malformed).

    Returns {sample name: {"type": family type, "help": ..., "samples": {sorted labels: value}}},
    keyed by sample name so a histogram's ``_bucket``/``_sum``/``_count`` and a counter's
    ``_total`` are each found under the name a query would use.
    """
    assert text.endswith("\n"), "the exposition must end with a newline"
    families: dict[str, dict] = {}
    for fam in text_string_to_metric_families(text):
        for sample in fam.samples:
            entry = families.setdefault(sample.name, {"type": fam.type, "help": fam.documentation, "samples": {}})
            key = tuple(sorted(sample.labels.items()))
            assert key not in entry["samples"], f"duplicate sample {sample.name}{key}"
            if fam.type == "counter":
                assert sample.value >= 0 and not math.isnan(sample.value), sample
            entry["samples"][key] = sample.value
    return families


def value(families, name, **labels) -> float:
    return families.get(name, {"samples": {}})["samples"].get(tuple(sorted(labels.items())), 0.0)


def touch_later(path, text: str) -> None:
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))


def body(sid: str, worker: str = "WK" + "e" * 32, at: str = "2026-11-25T14:00:00Z") -> bytes:
    data = load_fixture("available-one-voice-call.json")
    rec = data["records"][0]
    rec["last_processed_event_sid"] = sid
    rec["worker"]["sid"] = worker
    rec["date_last_processed_event"] = at
    return json.dumps(data).encode()


# -- /health ----------------------------------------------------------------------------


def test_health_reports_a_broken_schedule_edit_while_the_last_good_one_stays(engine, client, workdir):
    engine.runner.tick()
    good = engine.schedules.current
    key = next(iter(good.agents))
    health = client.get("/health").get_json()
    assert health["ok"] is True and health["schedules"]["ok"] and health["schedules"]["version"] == 1

    shifts = workdir / "schedules" / "shifts.yaml"
    text = shifts.read_text()
    first_range = re.search(r"- (\d\d:\d\d-\d\d:\d\d) Available", text).group(1)
    touch_later(shifts, text.replace(f"- {first_range} Available", f"- {ALICE_SHIFT_BROKEN} Available", 1))
    stats = engine.runner.tick()  # the tick notices the edit
    assert "schedules" not in stats.reloaded
    resp = client.get("/health")
    health = resp.get_json()
    assert resp.status_code == 200  # the service is up: degraded, not down
    assert health["ok"] is False and health["status"] == "degraded"
    assert health["schedules"]["ok"] is False and health["schedules"]["version"] == 1
    assert any("shifts.yaml:" in e and "27:00" in e for e in health["schedules"]["errors"]), health["schedules"]
    assert engine.schedules.current is good  # still in force
    assert engine.runner.segments(key, 0, 2**41) == good.segments(key, 0, 2**41)

    touch_later(shifts, text)  # fixed
    assert "schedules" in engine.runner.tick().reloaded
    health = client.get("/health").get_json()
    assert health["ok"] is True and health["schedules"]["version"] == 2 and health["schedules"]["errors"] == []


def test_health_reports_a_broken_rule_edit(engine, client, workdir):
    engine.runner.tick()
    rules = workdir / "rules" / "default.yaml"
    touch_later(rules, rules.read_text().replace("for: 5m", "for: five minutes", 1))
    engine.runner.tick()  # still ticks, with the last good rules
    health = client.get("/health").get_json()
    assert health["ok"] is False and health["rules"]["ok"] is False
    assert any("default.yaml:" in e for e in health["rules"]["errors"])
    assert health["evaluator"]["ok"] is True and engine.rules.current is not None


def test_lag_grows_when_no_tick_happens(engine, client, clock):
    assert client.get("/health").get_json()["evaluator"]["lag_seconds"] is None  # never ticked
    engine.runner.tick()
    assert client.get("/health").get_json()["evaluator"]["lag_seconds"] == 0
    lags = []
    for minutes in (1, 2, 5):
        clock.advance(60_000 * minutes)
        lags.append(client.get("/health").get_json()["evaluator"]["lag_seconds"])
    assert lags == [60, 180, 480]


def test_health_turns_unhealthy_when_the_scheduler_stops_ticking(engine, client, clock):
    engine.start_scheduler()  # ticks at once on the fixed clock, then every 15 s of real time
    try:
        for _ in range(200):
            if engine.runner.last_tick is not None:
                break
            import time

            time.sleep(0.02)
        assert engine.runner.last_tick is not None
        ev = client.get("/health").get_json()["evaluator"]
        assert ev["ok"] is True and ev["last_tick"]["at"].startswith("2026-11-25T15:00:00")
        clock.advance(10 * 60_000)  # ten minutes with no tick: 3 intervals + 30 s is the limit
        health = client.get("/health").get_json()
        assert health["ok"] is False and health["evaluator"]["ok"] is False
        assert health["evaluator"]["lag_seconds"] == 600 and "no tick for 600s" in health["evaluator"]["last_error"]
    finally:
        engine.stop_scheduler()


def test_health_reports_a_failing_tick(engine, client, monkeypatch):
    from adherence import scheduler

    def broken(*a, **k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(engine.runner, "tick", broken)
    with pytest.raises(RuntimeError):
        scheduler._tick(engine)
    health = client.get("/health").get_json()
    assert health["ok"] is False and "disk on fire" in health["evaluator"]["last_error"]


def test_health_is_503_when_the_database_is_gone(engine, client):
    engine.store.close()
    resp = client.get("/health")
    assert resp.status_code == 503
    assert resp.get_json()["database"]["ok"] is False and resp.get_json()["ok"] is False


# -- /metrics ---------------------------------------------------------------------------------


def test_metrics_are_valid_prometheus_text_and_count(engine, client):
    before = parse_prometheus(client.get("/metrics").get_data(as_text=True))
    client.post("/webhooks/rta", data=body("EV" + "1" * 32), content_type="application/json")
    client.post("/webhooks/rta", data=body("EV" + "1" * 32), content_type="application/json")  # duplicate
    unattributable = json.loads(body("EV" + "2" * 32))
    unattributable["records"][0]["worker"] = None
    client.post("/webhooks/rta", json=unattributable)
    client.post("/webhooks/rta", data=b"{broken", content_type="application/json")
    engine.runner.tick()
    resp = client.get("/metrics")
    assert resp.status_code == 200 and resp.mimetype == "text/plain"
    assert "version=0.0.4" in resp.headers["Content-Type"]
    after = parse_prometheus(resp.get_data(as_text=True))

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("adherence_records_accepted_total") == 1
    assert delta("adherence_records_duplicate_total") == 1
    assert delta("adherence_records_rejected_total") == 1
    assert delta("adherence_rejected_bodies_total") == 1
    assert delta("adherence_webhook_requests_total", status="200") == 3
    assert delta("adherence_webhook_requests_total", status="400") == 1
    assert delta("adherence_ticks_total") == 1
    for name, kind in (("adherence_records_accepted_total", "counter"),
                       ("adherence_tick_duration_seconds_count", "histogram"),
                       ("adherence_webhook_duration_seconds_bucket", "histogram"),
                       ("adherence_live_agents", "gauge"), ("adherence_webhook_requests_total", "counter")):
        assert after[name]["type"] == kind and after[name]["help"]
    assert delta("adherence_tick_duration_seconds_count") == 1
    assert 0 < delta("adherence_tick_duration_seconds_sum") < 60
    assert delta("adherence_webhook_duration_seconds_count") == 4
    assert value(after, "adherence_live_agents") == len(engine.tracker.workers()) >= 1


def test_metrics_render_escapes_label_values():
    m = Metrics()
    m.inc("adherence_webhook_requests_total", status='4"0\\0\n')
    m.set("adherence_tick_duration_seconds", 0.000123)
    fams = parse_prometheus(m.render())
    assert value(fams, "adherence_webhook_requests_total", status='4"0\\0\n') == 1
    assert value(fams, "adherence_tick_duration_seconds_sum") == 0.000123


def test_auth_failures_are_counted(workdir, clock):
    eng = make_engine(workdir, clock, auth={"twilio_auth_token": "t0k3n", "api_token": "api-t0k3n"})
    client = create_app(engine=eng).test_client()
    before = parse_prometheus(client.get("/metrics").get_data(as_text=True))
    client.post("/webhooks/rta", data=body("EV" + "3" * 32))
    client.get("/api/agents")
    after = parse_prometheus(client.get("/metrics").get_data(as_text=True))
    assert value(after, "adherence_auth_failures_total", surface="webhook") - \
        value(before, "adherence_auth_failures_total", surface="webhook") == 1
    assert value(after, "adherence_webhook_requests_total", status="401") - \
        value(before, "adherence_webhook_requests_total", status="401") == 1
    eng.close()


# -- structured logs ---------------------------------------------------------------------------


def test_rejected_requests_are_logged_as_json_with_event_and_remote(workdir, clock, caplog):
    eng = make_engine(workdir, clock, auth={"webhook_basic": {"username": "flex", "password": "pw"}})
    client = create_app(engine=eng).test_client()
    caplog.set_level(logging.INFO)
    client.post("/webhooks/rta", data=body("EV" + "4" * 32), environ_base={"REMOTE_ADDR": "203.0.113.9"})
    import base64

    auth = {"Authorization": "Basic " + base64.b64encode(b"flex:pw").decode()}
    client.post("/webhooks/rta", data=b"not json", headers=auth, environ_base={"REMOTE_ADDR": "203.0.113.10"})
    lines = [json.loads(JsonFormatter().format(r)) for r in caplog.records]
    by_event = {line.get("event"): line for line in lines if line.get("event")}
    refused = by_event["webhook_auth_failed"]
    assert refused["remote"] == "203.0.113.9" and refused["status"] == 401 and refused["level"] == "warning"
    assert refused["logger"] == "adherence.web.webhooks" and "missing basic credentials" in refused["message"]
    rejected = by_event["feed_rejected"]
    assert rejected["remote"] == "203.0.113.10" and rejected["bytes"] == len(b"not json")
    assert "malformed JSON" in rejected["message"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", rejected["ts"])
    eng.close()


def test_json_formatter_keeps_exceptions_and_odd_values():
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom %s", ("\ud800",), None)
    record.event = "odd"
    record.when = date(2026, 11, 25)
    try:
        raise ValueError("inner")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    line = json.loads(JsonFormatter().format(record))
    assert line["event"] == "odd" and line["when"] == "2026-11-25" and "ValueError: inner" in line["exc"]


def test_a_long_tick_is_not_a_stalled_evaluator(engine, client, clock):
    """A first tick after a restart may reach back days and take minutes: the moment it ends the evaluator is
    up to date, not stalled (bench/restart.py saw /health degraded for "no tick for 160s" right after one)."""
    engine.start_scheduler()
    try:
        for _ in range(200):
            if engine.runner.last_tick is not None:
                break
            import time

            time.sleep(0.02)
        engine.runner.last_tick.duration_s = 160.0  # as if it had taken 160 s
        clock.advance(165_000)  # and ended 5 s ago
        health = client.get("/health").get_json()
        assert health["evaluator"]["ok"] is True and health["evaluator"]["lag_seconds"] == 165
        clock.advance(10 * 60_000)  # then ten minutes with no tick
        ev = client.get("/health").get_json()["evaluator"]
        assert ev["ok"] is False and "no tick for 605s" in ev["last_error"]
    finally:
        engine.stop_scheduler()
