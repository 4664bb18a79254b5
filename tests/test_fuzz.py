"""Hostile and broken input: the feed parser, the webhook, and the planners' files.

Hypothesis throws random JSON, nulls and wrong types in every field, huge
arrays, deep nesting, long strings, invalid UTF-8 and wrong content types at
the receiver. The promise: the answer is 200 or a 4xx with a JSON message,
never a 500 or an exception; whatever passed authentication is kept (a
journal row per accepted record, a rejected row per unusable record or
body); and the evaluator still ticks afterwards. Garbled YAML and .ics files
give an AdherenceError with messages, never a traceback, and a hot reload
keeps the last good version in force.
"""

from __future__ import annotations

import copy
import io
import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adherence.auth import sign_json
from adherence.clock import FixedClock
from adherence.config import Config, load_config
from adherence.engine import Engine
from adherence.errors import AdherenceError, FeedError
from adherence.feed import Parsed, Record, parse_body, parse_envelope, parse_record
from adherence.rules import load_rules, rule_source
from adherence.schedules import load_schedules, schedule_source
from adherence.web import create_app

from conftest import REPO, fixture_paths

NOW = "2026-11-25T15:00:00Z"
TOKEN = "fuzz-token-3f9a1c"
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- strategies -----------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.text(st.characters(min_codepoint=0xD7F0, max_codepoint=0xE010), max_size=3),  # lone surrogates
    st.sampled_from(["", "Available", "Offline", "accepted", "wrapping", "2026-11-25T14:00:00Z",
                     "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "WK" + "a" * 32, "x" * 5000]),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=5), st.dictionaries(st.text(max_size=12), children, max_size=5)),
    max_leaves=25,
)
BASE_RECORDS = [rec for p in fixture_paths() for rec in json.loads(p.read_text())["records"]]


def _paths(value, prefix=()):
    """Every path to a value inside a JSON structure (dict keys and list indexes)."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


def _set(obj, path, value):
    if not path:
        return value
    target = obj
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return obj


@st.composite
def mutated_records(draw):
    """A published example record with some fields replaced by nulls or values of the wrong type."""
    rec = copy.deepcopy(draw(st.sampled_from(BASE_RECORDS)))
    rec["last_processed_event_sid"] = "EV" + draw(st.text("0123456789abcdef", min_size=32, max_size=32))
    paths = list(_paths(rec))[1:]
    for _ in range(draw(st.integers(0, 4))):
        path = draw(st.sampled_from(paths))
        try:
            rec = _set(rec, path, draw(st.one_of(st.none(), json_values)))
        except (KeyError, IndexError, TypeError):
            pass  # the path went away with an earlier mutation
    return rec


@st.composite
def envelopes(draw):
    env = {"product": "Flex", "object": "WFMWorkerChange", "version": 1,
           "records": draw(st.lists(st.one_of(mutated_records(), json_values), max_size=4))}
    if draw(st.integers(0, 9)) == 0:  # now and then a broken envelope
        key = draw(st.sampled_from(["product", "object", "version", "records"]))
        env[key] = draw(json_values)
    return env


bodies = st.one_of(
    envelopes().map(lambda e: json.dumps(e).encode()),
    envelopes().map(lambda e: json.dumps(e, ensure_ascii=False).encode("utf-8", "surrogatepass")),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
    st.text(max_size=200).map(lambda t: t.encode("utf-8")),
    st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 3000).map(lambda n: b'{"records":' * n + b"1" + b"}" * n),
    st.sampled_from([b"", b"null", b"[]", b"{}", b'"x"', b"NaN", b"\xff\xfe{}", b"{\"a\": \"\xc3\x28\"}"]),
)
content_types = st.sampled_from([
    "application/json", "application/json; charset=utf-8", "application/json; charset=latin-1", "text/plain",
    "application/x-www-form-urlencoded", "multipart/form-data; boundary=xyz", "", "garbage/", None,
])


# -- the parser -------------------------------------------------------------------


@FAST
@given(st.binary(max_size=300))
def test_parse_body_takes_any_bytes(body):
    try:
        parse_body(body)
    except FeedError as exc:
        assert str(exc)


@FAST
@given(json_values)
def test_parse_envelope_takes_any_json(value):
    try:
        parsed = parse_envelope(value, 1)
    except FeedError as exc:
        assert exc.messages and all(m for m in exc.messages)
        return
    assert isinstance(parsed, Parsed)
    assert len(parsed.records) + len(parsed.rejected) == len(value["records"])


@settings(max_examples=150, deadline=None)
@given(st.one_of(mutated_records(), json_values))
def test_parse_record_with_nulls_and_wrong_types(raw):
    try:
        rec = parse_record(0, raw, 1_700_000_000_000)
    except FeedError as exc:
        # only an unattributable record is refused, with the field named
        assert "records[0]" in str(exc)
        worker = raw.get("worker") if isinstance(raw, dict) else None
        assert not (isinstance(worker, dict) and isinstance(worker.get("sid"), str) and 0 < len(worker["sid"]) <= 64)
        return
    assert isinstance(rec, Record)
    assert isinstance(rec.worker_sid, str) and rec.worker_sid
    assert isinstance(rec.activity, str) and 0 < len(rec.activity) <= 200
    assert rec.task in ("active", "wrapping", "reserved", "none")
    assert isinstance(rec.at_ms, int) and (rec.flagged or 946_684_800_000 <= rec.at_ms < 4_102_444_800_000)
    assert rec.event_sid is None or isinstance(rec.event_sid, str)
    assert isinstance(rec.channels, tuple)


@pytest.mark.parametrize("body,fragment", [
    (b'{"version": 1, "records": [' + b"1" * 5000 + b"]}", "too many digits"),
    (b'{"a": "\\ud800"}', "surrogate"),
    (b'{"\\udc00": 1}', "surrogate"),
    (b"[" * 200_000, "nested too deeply"),
    (b"\xc3\x28", "not UTF-8"),
], ids=["long-number", "lone-surrogate", "surrogate-key", "deep", "bad-utf8"])
def test_parse_body_pinned_cases(body, fragment):
    with pytest.raises(FeedError, match=fragment):
        parse_body(body)


def test_implausible_record_time_uses_receipt_time():
    for at in ("0001-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "9999-12-31T23:59:59Z"):
        rec = parse_record(0, {"worker": {"sid": "WK1"}, "date_last_processed_event": at}, 1_790_000_000_000)
        assert rec.flagged and rec.at_ms == 1_790_000_000_000 and "outside" in rec.notes[0]


# -- the webhook --------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    shutil.copytree(REPO / "schedules", folder / "schedules")
    shutil.copytree(REPO / "rules", folder / "rules")
    cfg = load_config(None, overrides={"database": str(folder / "a.db"), "schedules": str(folder / "schedules"),
                                       "rules": str(folder / "rules"), "timezone": "America/New_York"})
    engine = Engine(cfg, FixedClock(NOW))
    yield engine, create_app(engine=engine).test_client()
    engine.close()


@pytest.fixture(scope="module")
def signed_app(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz-signed")
    cfg = load_config(None, overrides={"database": str(folder / "a.db"), "schedules": str(REPO / "schedules"),
                                       "rules": str(REPO / "rules"), "auth": {"twilio_auth_token": TOKEN}})
    engine = Engine(cfg, FixedClock(NOW))
    yield engine, create_app(engine=engine).test_client()
    engine.close()


def _counts(engine):
    conn = engine.store.reader
    return (conn.execute("SELECT COUNT(*) FROM journal").fetchone()[0],
            conn.execute("SELECT COUNT(*) FROM rejected").fetchone()[0])


def raw_body(body: bytes, content_type: str | None) -> dict:
    """Test-client arguments that send exactly these bytes (an empty multipart body stays empty)."""
    kwargs = {"input_stream": io.BytesIO(body), "content_length": len(body)}
    if content_type is not None:
        kwargs["content_type"] = content_type
    return kwargs


def _check_answer(resp):
    assert resp.status_code == 200 or 400 <= resp.status_code < 500, (resp.status_code, resp.get_data()[:300])
    assert resp.mimetype == "application/json"
    data = resp.get_json()
    if resp.status_code == 200:
        assert data["ok"] is True
    else:
        assert data["ok"] is False and isinstance(data["error"], str) and data["error"]
        assert data["status"] == resp.status_code and data["errors"]
    return data


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=bodies, content_type=content_types)
def test_webhook_answers_200_or_4xx_and_keeps_everything(fuzz_app, body, content_type):
    engine, client = fuzz_app
    journal0, rejected0 = _counts(engine)
    resp = client.post("/webhooks/rta", **raw_body(body, content_type))
    data = _check_answer(resp)
    journal1, rejected1 = _counts(engine)
    if resp.status_code == 200:
        assert journal1 - journal0 == data["accepted"]
        assert rejected1 - rejected0 == data["rejected"]
    else:
        assert resp.status_code == 400
        assert journal1 == journal0 and rejected1 == rejected0 + 1
        row = engine.store.reader.execute("SELECT body, reason FROM rejected ORDER BY id DESC LIMIT 1").fetchone()
        assert bytes(row[0]) == body and row[1] in data["error"]


def test_the_evaluator_survives_the_fuzzed_journal(fuzz_app):
    """Runs after the fuzzing above (same module database): every kept record can be evaluated."""
    engine, client = fuzz_app
    for at in ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", None, 12, "garbage"):
        rec = copy.deepcopy(BASE_RECORDS[0])
        rec["date_last_processed_event"] = at
        rec["last_processed_event_sid"] = f"EVpinned{at}"
        env = {"product": "Flex", "object": "WFMWorkerChange", "version": 1, "records": [rec]}
        assert client.post("/webhooks/rta", json=env).status_code == 200
    stats = engine.runner.tick()
    engine.clock.set("2026-11-25T15:05:00Z")
    engine.runner.tick()
    assert stats.agents >= 1
    # a restart rebuilds the same live state from what was kept
    from adherence.state import Tracker

    rebuilt = Tracker()
    rebuilt.load_from_journal(engine.store.reader)
    assert {w: c.snapshot for w, c in rebuilt.all_current().items()} == \
        {w: c.snapshot for w, c in engine.tracker.all_current().items()}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=bodies, content_type=content_types, tamper=st.booleans())
def test_signed_webhook_fuzz(signed_app, body, content_type, tamper):
    engine, client = signed_app
    journal0, rejected0 = _counts(engine)
    url, sig = sign_json("http://localhost/webhooks/rta", body, TOKEN)
    if tamper:
        sig = sig[::-1]
    resp = client.post(url, headers={"X-Twilio-Signature": sig}, **raw_body(body, content_type))
    _check_answer(resp)
    if resp.status_code in (401, 403):
        assert _counts(engine) == (journal0, rejected0)  # refused: nothing stored


@pytest.mark.parametrize("n", [20_000, 200_000])
def test_huge_records_array(fuzz_app, n):
    engine, client = fuzz_app
    journal0, rejected0 = _counts(engine)
    body = json.dumps({"product": "Flex", "object": "WFMWorkerChange", "version": 1, "records": [None] * n}).encode()
    resp = client.post("/webhooks/rta", data=body, content_type="application/json")
    if len(body) > engine.config.max_body_bytes:
        assert resp.status_code == 413 and _counts(engine) == (journal0, rejected0)
    else:
        # more records than an envelope may hold: refused whole, the body kept once in the rejected table
        assert resp.status_code == 400 and "records in one envelope" in resp.get_json()["error"]
        assert _counts(engine) == (journal0, rejected0 + 1)


def test_many_unusable_records_are_each_kept(fuzz_app):
    engine, client = fuzz_app
    journal0, rejected0 = _counts(engine)
    n = 5_000
    body = json.dumps({"product": "Flex", "object": "WFMWorkerChange", "version": 1, "records": [None] * n}).encode()
    resp = client.post("/webhooks/rta", data=body, content_type="application/json")
    assert resp.status_code == 200 and resp.get_json()["rejected"] == n
    assert len(resp.get_json()["errors"]) == 20  # the answer stays small
    assert _counts(engine) == (journal0, rejected0 + n)


def test_long_strings_and_wrong_methods(fuzz_app):
    engine, client = fuzz_app
    rec = copy.deepcopy(BASE_RECORDS[0])
    rec["worker"]["sid"] = "WKlong" + "0" * 28
    rec["worker"]["activity_name"] = "A" * 1_000_000
    rec["last_processed_event_sid"] = "EV" + "9" * 100_000
    resp = client.post("/webhooks/rta", json={"product": "Flex", "object": "WFMWorkerChange", "version": 1,
                                              "records": [rec]})
    assert resp.status_code == 200 and resp.get_json()["accepted"] == 1
    assert engine.tracker.current(rec["worker"]["sid"]).snapshot.activity == "A" * 200
    long_sid = copy.deepcopy(rec)
    long_sid["worker"]["sid"] = "WK" + "x" * 10_000
    resp = client.post("/webhooks/rta", json={"product": "Flex", "object": "WFMWorkerChange", "version": 1,
                                              "records": [long_sid]})
    assert resp.get_json()["rejected"] == 1 and "too long" in resp.get_json()["errors"][0]
    for method in ("get", "put", "delete", "patch"):
        resp = getattr(client, method)("/webhooks/rta")
        assert resp.status_code == 405 and resp.get_json()["ok"] is False


# -- config, schedule and rule files ---------------------------------------------------

GOOD_SCHEDULE = (REPO / "schedules" / "roster.yaml").read_text()
GOOD_SHIFTS = (REPO / "schedules" / "shifts.yaml").read_text()
GOOD_RULES = (REPO / "rules" / "default.yaml").read_text()
GOOD_CONFIG = (
    "database: a.db\ntimezone: America/New_York\nschedules: schedules\nrules: rules\n"
    "evaluation:\n  interval: 15s\nserver:\n  host: 127.0.0.1\n  port: 8080\n  threads: 4\n"
    "auth:\n  twilio_auth_token: ${TWILIO_AUTH_TOKEN}\n  webhook_basic: {username: a, password: b}\n"
    "retention:\n  journal_days: 30\ntime_off: [PTO]\nlog_level: INFO\n"
)
ICS_FILES = sorted((REPO / "tests" / "calendars").glob("*.ics")) \
    + sorted((REPO / "schedules").glob("*.ics"))


@st.composite
def garbled_yaml(draw, good: str):
    """A good file with wrong types in some fields, truncated, or with random bytes spliced in."""
    how = draw(st.sampled_from(["retype", "retype", "truncate", "splice", "random"]))
    if how == "retype":
        data = yaml.safe_load(good)
        paths = list(_paths(data))
        for _ in range(draw(st.integers(1, 3))):
            path = draw(st.sampled_from(paths))
            try:
                data = _set(data, path, draw(json_values))
            except (KeyError, IndexError, TypeError):
                pass
        return yaml.safe_dump(data, allow_unicode=True).encode("utf-8", "surrogatepass")
    raw = good.encode()
    if how == "truncate":
        return raw[: draw(st.integers(0, len(raw)))]
    if how == "splice":
        at = draw(st.integers(0, len(raw)))
        return raw[:at] + draw(st.binary(min_size=1, max_size=20)) + raw[at + draw(st.integers(0, 20)):]
    return draw(st.binary(max_size=200))


def _only_adherence_errors(fn):
    try:
        return fn()
    except AdherenceError as exc:
        assert exc.messages and all(isinstance(m, str) and m for m in exc.messages)
        return None


@FAST
@given(garbled_yaml(GOOD_CONFIG))
def test_garbled_config_gives_config_errors(tmp_path_factory, content):
    folder = tmp_path_factory.mktemp("cfg")
    (folder / "config.yaml").write_bytes(content)
    cfg = _only_adherence_errors(lambda: load_config(folder / "config.yaml"))
    assert cfg is None or isinstance(cfg, Config)


@FAST
@given(which=st.sampled_from(["roster", "shifts"]), content=st.data())
def test_garbled_schedule_yaml_gives_schedule_errors(tmp_path_factory, which, content):
    folder = tmp_path_factory.mktemp("sched")
    (folder / "roster.yaml").write_text(GOOD_SCHEDULE)
    (folder / "shifts.yaml").write_text(GOOD_SHIFTS)
    good = GOOD_SCHEDULE if which == "roster" else GOOD_SHIFTS
    (folder / f"{which}.yaml").write_bytes(content.draw(garbled_yaml(good)))
    _only_adherence_errors(lambda: load_schedules(folder, "America/New_York"))


@FAST
@given(source=st.sampled_from(ICS_FILES), data=st.data())
def test_garbled_ics_gives_schedule_errors(tmp_path_factory, source, data):
    folder = tmp_path_factory.mktemp("ics")
    raw = source.read_bytes()
    how = data.draw(st.sampled_from(["truncate", "splice", "random", "drop-line"]))
    if how == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    elif how == "splice":
        at = data.draw(st.integers(0, len(raw)))
        raw = raw[:at] + data.draw(st.binary(min_size=1, max_size=30)) + raw[at:]
    elif how == "random":
        raw = b"BEGIN:VCALENDAR\r\n" + data.draw(st.binary(max_size=200)) + b"\r\nEND:VCALENDAR\r\n"
    else:
        lines = raw.splitlines(keepends=True)
        del lines[data.draw(st.integers(0, max(0, len(lines) - 1)))]
        raw = b"".join(lines)
    (folder / "cal.ics").write_bytes(raw)
    (folder / "roster.yaml").write_text(
        "agents:\n  frank: {worker_sid: WK0123456789abcdef0123456789abcdef, calendar: cal.ics}\n")
    schedule = _only_adherence_errors(lambda: load_schedules(folder, "America/New_York"))
    if schedule is not None:  # a calendar that loads can be queried
        from datetime import date

        _only_adherence_errors(lambda: schedule.segments_for_day("frank", date(2026, 11, 24)))


GOOGLE_ICS = REPO / "tests" / "calendars" / "google_x_wr_timezone_utc.ics"
ICS_ROSTER = "agents:\n  frank: {worker_sid: WK0123456789abcdef0123456789abcdef, calendar: cal.ics}\n"


def _broken_date(prop: str) -> str:
    """The Google export with a malformed date value (a letter in the year) in its first ``prop``."""
    lines = GOOGLE_ICS.read_text().splitlines(keepends=True)
    i = next(i for i, line in enumerate(lines) if line.startswith(prop) and "2026" in line)
    lines[i] = lines[i].replace("2026", "2J26", 1)
    return "".join(lines)


@pytest.mark.parametrize("prop", ["DTSTART", "DTEND"])
def test_malformed_ics_date_value_is_a_schedule_error(tmp_path, prop):
    (tmp_path / "cal.ics").write_text(_broken_date(prop))
    (tmp_path / "roster.yaml").write_text(ICS_ROSTER)
    with pytest.raises(AdherenceError, match=prop):
        load_schedules(tmp_path, "America/New_York")


def test_a_broken_calendar_on_reload_keeps_the_last_good_schedule(tmp_path):
    (tmp_path / "schedules").mkdir()
    (tmp_path / "schedules" / "roster.yaml").write_text(ICS_ROSTER)
    ics = tmp_path / "schedules" / "cal.ics"
    shutil.copy(GOOGLE_ICS, ics)
    cfg = load_config(None, overrides={"schedules": str(tmp_path / "schedules"), "timezone": "America/New_York"})
    source = schedule_source(cfg)
    assert source.check() is True
    good = source.current
    _touch_later(ics, _broken_date("DTSTART").encode())
    assert source.check() is False
    assert source.current is good and source.status()["ok"] is False
    assert any("DTSTART" in e for e in source.errors)


def test_a_loader_crash_keeps_the_last_good_version(caplog):
    """Whatever a loader raises (a bug, not a planner's mistake), the last good version stays and /health says why."""
    from adherence.reload import Reloadable

    state = {"fp": 1, "fail": False}

    def loader():
        if state["fail"]:
            raise KeyError("bug in a loader")
        return object()

    source = Reloadable("schedules", loader, lambda: (state["fp"],))
    assert source.check() is True
    good = source.current
    state.update(fp=2, fail=True)
    assert source.check() is False  # no exception escapes into the tick or the startup
    assert source.current is good and source.status()["ok"] is False
    assert "KeyError" in source.errors[0] and "bug in a loader" in source.errors[0]
    assert any(getattr(r, "event", None) == "reload_failed" and r.exc_info for r in caplog.records)
    state.update(fp=3, fail=False)
    assert source.check() is True and source.errors == [] and source.version == 2


@FAST
@given(garbled_yaml(GOOD_RULES))
def test_garbled_rules_give_rule_errors(tmp_path_factory, content):
    folder = tmp_path_factory.mktemp("rules")
    (folder / "default.yaml").write_bytes(content)
    _only_adherence_errors(lambda: load_rules(folder))


def _touch_later(path: Path, content: bytes) -> None:
    path.write_bytes(content)
    st_ = path.stat()
    os.utime(path, ns=(st_.st_atime_ns, st_.st_mtime_ns + 2_000_000_000 * (1 + st_.st_mtime_ns % 7)))


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_broken_edits_keep_the_last_good_version(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("reload")
    shutil.copytree(REPO / "schedules", folder / "schedules")
    shutil.copytree(REPO / "rules", folder / "rules", ignore=shutil.ignore_patterns("tests"))
    cfg = load_config(None, overrides={"schedules": str(folder / "schedules"), "rules": str(folder / "rules"),
                                       "timezone": "America/New_York"})
    for source, path, good in ((schedule_source(cfg), folder / "schedules" / "shifts.yaml", GOOD_SHIFTS),
                               (rule_source(cfg), folder / "rules" / "default.yaml", GOOD_RULES)):
        assert source.check() is True
        last_good = source.current
        content = data.draw(garbled_yaml(good))
        _touch_later(path, content)
        swapped = source.check()
        if swapped:  # the garbling happened to leave a valid file
            assert not source.errors
            continue
        assert source.current is last_good and source.version == 1
        assert source.errors and source.status()["ok"] is False
