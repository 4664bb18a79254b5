"""Feed model: envelope checks, null tolerance, task state derivation, field paths."""

from __future__ import annotations

import copy
import json

import pytest

from adherence.errors import FeedError
from adherence.feed import derive_task_state, parse_body, parse_envelope, reservation_state
from adherence.timeutil import parse_instant_ms

from conftest import fixture_paths, load_fixture

RECEIVED = parse_instant_ms("2026-11-25T15:00:00Z")

EXPECTED = {
    "available-multitasking.json": ("Available", "active", "2021-06-06T12:26:18.104Z"),
    "available-one-voice-call.json": ("Available", "active", "2021-06-06T11:10:00.561Z"),
    "offline-no-tasks.json": ("Offline", "none", "2021-06-06T10:52:04.383Z"),
    "reservation-created.json": ("Available", "reserved", "2021-06-06T11:09:09.240Z"),
}


@pytest.mark.parametrize("path", fixture_paths(), ids=lambda p: p.name)
def test_each_published_fixture_parses(path):
    parsed = parse_envelope(parse_body(path.read_bytes()), RECEIVED)
    assert parsed.rejected == []
    (rec,) = parsed.records
    activity, task, at = EXPECTED[path.name]
    assert (rec.activity, rec.task, rec.at_ms, rec.flagged) == (activity, task, parse_instant_ms(at), False)
    assert rec.worker_sid.startswith("WK") and rec.event_sid.startswith("EV")


def test_multitasking_fixture_channel_summary():
    rec = parse_envelope(load_fixture("available-multitasking.json"), RECEIVED).records[0]
    assert [(c[0], c[2], c[3], c[4]) for c in rec.channels] == [("voice", 0, 1, "active"), ("chat", 75, 4, "active")]


def _res(status, assignment=None):
    return {"status": status, "task_assignment_status": assignment}


@pytest.mark.parametrize(
    "reservations,expected",
    [
        ([], "none"),
        ([_res("accepted", "assigned")], "active"),
        ([_res("wrapping", "wrapping")], "wrapping"),
        ([_res("accepted", "wrapping")], "wrapping"),
        ([_res("created", "reserved")], "reserved"),
        ([_res("pending", "reserved")], "reserved"),
        ([_res(s, "canceled") for s in ("completed", "canceled", "rejected", "rescinded", "timeout")], "none"),
        ([_res("created"), _res("wrapping")], "wrapping"),
        ([_res("wrapping"), _res("accepted")], "active"),
        ([_res(None, "assigned")], "active"),
        ([_res("something-new", None)], "none"),
        ([None, 5, "x"], "none"),
    ],
)
def test_task_state_precedence(reservations, expected):
    channels = [{"reservations": reservations}]
    assert derive_task_state(channels) == expected


def test_task_state_across_channels_takes_highest():
    channels = [{"reservations": [_res("created")]}, {"reservations": None}, {"reservations": [_res("accepted")]}]
    assert derive_task_state(channels) == "active"
    assert reservation_state(None) == "none"


def _paths(obj, prefix=()):
    """Every path to a field in a JSON value."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield prefix + (i,)
            yield from _paths(v, prefix + (i,))


@pytest.mark.parametrize("path", fixture_paths(), ids=lambda p: p.name)
def test_null_in_every_optional_field_is_tolerated(path):
    base = json.loads(path.read_text())
    rec_paths = [p for p in _paths(base["records"][0]) if p not in (("worker",), ("worker", "sid"))]
    assert rec_paths
    for p in rec_paths:
        data = copy.deepcopy(base)
        target = data["records"][0]
        for k in p[:-1]:
            target = target[k]
        target[p[-1]] = None
        parsed = parse_envelope(data, RECEIVED)
        assert len(parsed.records) == 1, p
        rec = parsed.records[0]
        if p == ("date_last_processed_event",):
            assert rec.flagged and rec.at_ms == RECEIVED
        if p == ("worker", "activity_name"):
            assert rec.activity == "Unknown"


def test_record_without_worker_sid_is_rejected_with_its_path():
    data = load_fixture("offline-no-tasks.json")
    good = copy.deepcopy(data["records"][0])
    bad = copy.deepcopy(good)
    bad["worker"]["sid"] = None
    data["records"] = [good, good, bad, "nonsense"]
    parsed = parse_envelope(data, RECEIVED)
    assert len(parsed.records) == 2
    assert [(i, reason) for i, _, reason in parsed.rejected] == [
        (2, "records[2].worker.sid: missing"),
        (3, "records[3]: expected an object, got a string"),
    ]


def test_bad_timestamp_falls_back_to_receipt_time_and_is_flagged():
    data = load_fixture("offline-no-tasks.json")
    data["records"][0]["date_last_processed_event"] = "yesterday"
    rec = parse_envelope(data, RECEIVED).records[0]
    assert rec.flagged and rec.at_ms == RECEIVED
    assert any("date_last_processed_event" in n for n in rec.notes)


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda d: d.update(product="Other"), "product: expected 'Flex', got 'Other'"),
        (lambda d: d.update(object=None), "object: expected 'WFMWorkerChange', got None"),
        (lambda d: d.update(version=2), "version: expected 1, got 2"),
        (lambda d: d.update(version=True), "version: expected 1, got True"),
        (lambda d: d.update(records={}), "records: expected a list of records, got an object"),
        (lambda d: d.pop("records"), "records: expected a list of records, got null"),
    ],
)
def test_bad_envelope_is_refused_naming_the_field(mutate, message):
    data = load_fixture("offline-no-tasks.json")
    mutate(data)
    with pytest.raises(FeedError) as err:
        parse_envelope(data, RECEIVED)
    assert message in str(err.value)


@pytest.mark.parametrize(
    "body,message",
    [
        (b"", "empty body"),
        (b"{not json", "malformed JSON at line 1 column 2"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[1, 2]", "expected a JSON object (the envelope), got a list"),
        (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
    ],
)
def test_unusable_bodies_say_what_is_wrong(body, message):
    with pytest.raises(FeedError) as err:
        parse_envelope(parse_body(body), RECEIVED)
    assert message in str(err.value)


def test_an_envelope_with_too_many_records_is_refused():
    data = load_fixture("offline-no-tasks.json")
    data["records"] = data["records"] * 10_001
    with pytest.raises(FeedError) as err:
        parse_envelope(data, RECEIVED)
    assert "records: 10001 records in one envelope (at most 10000)" in str(err.value)
