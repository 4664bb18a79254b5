"""/metrics through prometheus_client (issue #10): exact counters, histograms, state read at scrape time."""

from __future__ import annotations

import json

from prometheus_client.parser import text_string_to_metric_families

from adherence.metrics import METRICS
from adherence.web import create_app

from conftest import load_fixture


def scrape(client) -> dict[str, dict]:
    resp = client.get("/metrics")
    assert resp.status_code == 200 and "version=0.0.4" in resp.headers["Content-Type"]
    out: dict[str, dict] = {}
    for fam in text_string_to_metric_families(resp.get_data(as_text=True)):
        for s in fam.samples:
            out.setdefault(s.name, {"type": fam.type, "samples": {}})["samples"][tuple(sorted(s.labels.items()))] = s.value
    return out


def sample(fams, name, **labels):
    return fams[name]["samples"].get(tuple(sorted(labels.items())))


def test_counters_stay_exact_past_a_million(client):
    before = sample(scrape(client), "adherence_records_duplicate_total") or 0
    METRICS.inc("adherence_records_duplicate_total", 1_234_567)
    text = client.get("/metrics").get_data(as_text=True)
    assert "1.23457e+06" not in text  # the old exposition rounded to 6 digits: rate() saw steps of 10
    after = sample(scrape(client), "adherence_records_duplicate_total")
    assert after - before == 1_234_567


def test_latency_and_tick_duration_are_histograms(engine, client):
    data = load_fixture("available-one-voice-call.json")
    data["records"][0]["date_last_processed_event"] = "2026-11-25T14:59:00Z"
    before = scrape(client)
    assert client.post("/webhooks/rta", data=json.dumps(data), content_type="application/json").status_code == 200
    engine.runner.tick()
    fams = scrape(client)
    for name in ("adherence_webhook_duration_seconds", "adherence_tick_duration_seconds"):
        assert fams[name + "_bucket"]["type"] == "histogram"
        assert sample(fams, name + "_count") - (sample(before, name + "_count") or 0) == 1
        assert sample(fams, name + "_bucket", le="+Inf") == sample(fams, name + "_count")
    # state read at scrape time: the newest record's age, the database's files, the process
    assert 0 <= sample(fams, "adherence_feed_last_record_age_seconds") < 5
    assert sample(fams, "adherence_database_wal_bytes") >= 0
    assert sample(fams, "adherence_disk_free_bytes") > 0
    assert sample(fams, "adherence_database_writable") == 1
    assert sample(fams, "process_resident_memory_bytes") > 0


def test_open_exceptions_are_counted_by_severity(engine, client):
    with engine.store.write() as conn:
        for severity in ("warning", "warning", "critical"):
            conn.execute(
                "INSERT INTO exceptions (worker_sid, agent, rule, severity, start_ms, day, updated_ms) "
                "VALUES ('WK1', 'alice', 'late', ?, 0, '2026-11-25', 0)", (severity,))
        conn.execute("INSERT INTO exceptions (worker_sid, agent, rule, severity, start_ms, end_ms, day, updated_ms) "
                     "VALUES ('WK1', 'alice', 'late', 'critical', 0, 1, '2026-11-25', 0)")  # closed: not counted
    fams = scrape(client)
    assert sample(fams, "adherence_open_exceptions", severity="warning") == 2
    assert sample(fams, "adherence_open_exceptions", severity="critical") == 1


def test_each_app_has_its_own_registry(engine):
    # the library's global registry refuses a second metric of one name; many apps in one process work
    for _ in range(3):
        assert create_app(engine=engine).test_client().get("/metrics").status_code == 200


def test_an_undeclared_metric_is_exposed_not_an_error(client):
    # another module counting something new must never turn its request into a 500
    METRICS.inc("adherence_test_only_things_total", 3, kind="x")
    fams = scrape(client)
    assert sample(fams, "adherence_test_only_things_total", kind="x") >= 3
