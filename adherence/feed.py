"""The Flex WFM Real-Time Adherence feed: envelope and records.

Parsing is null-tolerant by design: Twilio sends nulls for anything it does
not know yet (see docs/rta-feed.md), so a null never rejects a record. Only
two things make a record unusable: it is not an object, or it has no worker
SID (nothing to attribute it to). Everything else degrades to "unknown" and
is noted, so the record is still journaled and applied.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import FeedError, Problem
from .model import UNKNOWN_ACTIVITY
from .timeutil import parse_instant_ms

PRODUCT, OBJECT, VERSION = "Flex", "WFMWorkerChange", 1
MAX_RECORDS = 10_000  # per envelope
# Plausible record times; anything outside is a broken clock or a forged record.
EARLIEST_MS, LATEST_MS = 946_684_800_000, 4_102_444_800_000  # 2000-01-01, 2100-01-01 UTC

# Reservation status → task state. Terminal statuses count as no task.
_STATUS_STATE = {
    "accepted": "active",
    "wrapping": "wrapping",
    "created": "reserved",
    "pending": "reserved",
    "completed": "none",
    "canceled": "none",
    "cancelled": "none",
    "rejected": "none",
    "rescinded": "none",
    "timeout": "none",
}
# Task assignment status → task state, used when the reservation status is
# missing or unknown, and to see wrap-up/closure the reservation status lags.
_ASSIGNMENT_STATE = {
    "assigned": "active",
    "wrapping": "wrapping",
    "reserved": "reserved",
    "pending": "reserved",
    "completed": "none",
    "canceled": "none",
}
_RANK = {"active": 3, "wrapping": 2, "reserved": 1, "none": 0}
_BY_RANK = {v: k for k, v in _RANK.items()}


def reservation_state(res: Any) -> str:
    """Task state of one reservation (``none`` for terminal or unreadable ones)."""
    if not isinstance(res, dict):
        return "none"
    status = res.get("status")
    assignment = res.get("task_assignment_status")
    state = _STATUS_STATE.get(status.lower()) if isinstance(status, str) else None
    task = _ASSIGNMENT_STATE.get(assignment.lower()) if isinstance(assignment, str) else None
    if state is None:
        return task or "none"
    if state == "active" and task in ("wrapping", "none"):
        # accepted reservation whose task is already in wrap-up or closed
        return task
    return state


def derive_task_state(channels: Any) -> str:
    """active > wrapping > reserved > none, across every channel's reservations."""
    best = 0
    if isinstance(channels, list):
        for ch in channels:
            if not isinstance(ch, dict):
                continue
            reservations = ch.get("reservations")
            if not isinstance(reservations, list):
                continue
            for res in reservations:
                best = max(best, _RANK[reservation_state(res)])
                if best == 3:
                    return "active"
    return _BY_RANK[best]


def _channel_summary(channels: Any) -> tuple:
    """Compact per-channel view for the live board: (name, available, free %, capacity, task state)."""
    out = []
    if isinstance(channels, list):
        for ch in channels:
            if not isinstance(ch, dict):
                continue
            name = ch.get("task_channel_name")
            reservations = ch.get("reservations")
            out.append(
                (
                    name if isinstance(name, str) else None,
                    ch.get("available") if isinstance(ch.get("available"), (int, bool)) else None,
                    ch.get("available_capacity") if isinstance(ch.get("available_capacity"), (int, float)) else None,
                    ch.get("capacity") if isinstance(ch.get("capacity"), (int, float)) else None,
                    derive_task_state([ch]),
                    len(reservations) if isinstance(reservations, list) else 0,
                )
            )
    return tuple(out)


@dataclass(slots=True)
class Record:
    """One usable feed record: an agent's complete status at an instant."""

    index: int  # position in the envelope's records list
    worker_sid: str
    event_sid: str | None
    at_ms: int  # date_last_processed_event, or the receipt time when unusable
    flagged: bool  # True when at_ms is the receipt time
    activity: str
    task: str
    raw: dict
    notes: list[str] = field(default_factory=list)

    @property
    def channels(self) -> tuple:
        return _channel_summary(self.raw.get("channels"))


@dataclass(slots=True)
class Parsed:
    """An envelope split into usable records and rejected ones (with reasons)."""

    records: list[Record]
    rejected: list[tuple[int, Any, str]]  # (index, raw record, reason)
    # the body as received when it is one usable record's envelope: the journal stores it, not a re-encoding
    text: str | None = None


class Envelope(dict):
    """A decoded JSON object body that keeps the text it was decoded from."""

    __slots__ = ("text",)


def parse_body(body: bytes | str) -> Any:
    """Bytes → JSON value, or FeedError saying why not."""
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FeedError(f"body is not UTF-8 (byte {exc.start})") from None
    if not body.strip():
        raise FeedError("empty body: expected a JSON WFMWorkerChange envelope")
    try:
        value = json.loads(body)
    except json.JSONDecodeError as exc:
        raise FeedError(f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise FeedError("malformed JSON: nested too deeply") from None
    except ValueError:  # a number with more digits than Python converts
        raise FeedError("malformed JSON: a number with too many digits") from None
    if _SURROGATE_ESCAPE.search(body):
        where = _lone_surrogate(value)
        if where is not None:
            # it could not be stored as text (UTF-8 has no lone surrogates)
            raise FeedError(f"malformed JSON: a \\u escape is half a UTF-16 surrogate pair, at {where}")
    if type(value) is dict:
        value = Envelope(value)
        value.text = body
    return value


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _lone_surrogate(value: Any) -> str | None:
    """Path of the first key or string holding a lone surrogate, else None (iterative: any depth)."""
    stack: list[tuple[Any, str]] = [(value, "$")]
    while stack:
        v, path = stack.pop()
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return path
        elif isinstance(v, dict):
            for k, item in v.items():
                try:
                    k.encode("utf-8")
                except UnicodeEncodeError:
                    return path
                stack.append((item, f"{path}.{k}"))
        elif isinstance(v, list):
            stack.extend((item, f"{path}[{i}]") for i, item in enumerate(v))
    return None


def check_envelope(data: Any) -> list:
    """Validate the envelope; return its records list or raise FeedError naming every problem."""
    if not isinstance(data, dict):
        raise FeedError(problems=[Problem(f"expected a JSON object (the envelope), got {_kind(data)}", path="$")])
    problems = []
    if data.get("product") != PRODUCT:
        problems.append(Problem(f"expected {PRODUCT!r}, got {data.get('product')!r}", path="product"))
    if data.get("object") != OBJECT:
        problems.append(Problem(f"expected {OBJECT!r}, got {data.get('object')!r}", path="object"))
    version = data.get("version")
    if isinstance(version, bool) or version != VERSION:
        problems.append(Problem(f"expected {VERSION}, got {version!r}", path="version"))
    records = data.get("records")
    if not isinstance(records, list):
        problems.append(Problem(f"expected a list of records, got {_kind(records)}", path="records"))
    elif len(records) > MAX_RECORDS:
        # Flex folds a handful of changes into one event; a huge list would hold the writer for seconds
        problems.append(Problem(f"{len(records)} records in one envelope (at most {MAX_RECORDS})", path="records"))
    if problems:
        raise FeedError(problems=problems)
    return records


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(type(v), "a number")


def _text(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None


class _Where:
    """``records[i]``, formatted only when a note or an error needs it (most records need none)."""

    __slots__ = ("index",)

    def __init__(self, index: int):
        self.index = index

    def __format__(self, spec: str) -> str:
        return f"records[{self.index}]"

    __str__ = __repr__ = lambda self: f"records[{self.index}]"


_DAY_MS: dict[str, int] = {}  # "2026-11-24" → epoch ms of its UTC midnight


def _instant_ms(text: Any) -> int:
    """``parse_instant_ms``, with a fast path for the feed's usual form ``2026-11-24T13:00:00.014Z``.

    Same result for every input: anything not exactly in that form (or out of range) goes the long way.
    """
    if (type(text) is str and len(text) == 24 and text[23] == "Z" and text[10] == "T" and text[19] == "."
            and text[4] == "-" and text[7] == "-" and text[13] == ":" and text[16] == ":" and text.isascii()):
        hh, mm, ss, fff = text[11:13], text[14:16], text[17:19], text[20:23]
        if hh.isdigit() and mm.isdigit() and ss.isdigit() and fff.isdigit():
            h, m, sec = int(hh), int(mm), int(ss)
            if h < 24 and m < 60 and sec < 60:
                day = _DAY_MS.get(text[:10])
                if day is None:
                    day = parse_instant_ms(text[:10] + "T00:00:00Z")  # ValueError for an impossible date
                    if len(_DAY_MS) < 10_000:
                        _DAY_MS[text[:10]] = day
                return day + ((h * 60 + m) * 60 + sec) * 1000 + int(fff)
    return parse_instant_ms(text)


def parse_record(index: int, raw: Any, received_ms: int, max_ahead_ms: int | None = None) -> Record:
    """One record → Record, or FeedError with the field path when it cannot be attributed."""
    where = _Where(index)
    if not isinstance(raw, dict):
        raise FeedError(problems=[Problem(f"expected an object, got {_kind(raw)}", path=str(where))])
    worker = raw.get("worker")
    if worker is None:
        raise FeedError(problems=[Problem("missing", path=f"{where}.worker")])
    if not isinstance(worker, dict):
        raise FeedError(problems=[Problem(f"expected an object, got {_kind(worker)}", path=f"{where}.worker")])
    sid = worker.get("sid")
    if sid is None or sid == "":
        raise FeedError(problems=[Problem("missing", path=f"{where}.worker.sid")])
    if not isinstance(sid, str):
        raise FeedError(problems=[Problem(f"expected a string, got {_kind(sid)}", path=f"{where}.worker.sid")])
    if len(sid) > 64:
        raise FeedError(problems=[Problem("too long to be a worker SID", path=f"{where}.worker.sid")])
    notes: list[str] = []
    at_raw = raw.get("date_last_processed_event")
    flagged = False
    at_ms = received_ms
    if at_raw is None:
        flagged = True
        notes.append(f"{where}.date_last_processed_event: null, using receipt time")
    else:
        try:
            at_ms = _instant_ms(at_raw)
        except (ValueError, OverflowError):
            flagged = True
            notes.append(f"{where}.date_last_processed_event: not an ISO-8601 time, using receipt time")
        else:
            if not EARLIEST_MS <= at_ms < LATEST_MS:
                # year 1 or 9999 would send the evaluator over millennia of days
                at_ms, flagged = received_ms, True
                notes.append(f"{where}.date_last_processed_event: outside 2000-2100, using receipt time")
            elif max_ahead_ms is not None and at_ms > received_ms + max_ahead_ms:
                # from the future: a wrong clock upstream must not become the agent's current state
                at_ms, flagged = received_ms, True
                notes.append(f"{where}.date_last_processed_event: ahead of the receipt time, using receipt time")
    activity = worker.get("activity_name")
    if not isinstance(activity, str) or not activity.strip():
        if activity is not None:
            notes.append(f"{where}.worker.activity_name: expected a string")
        activity = UNKNOWN_ACTIVITY
    event_sid = raw.get("last_processed_event_sid")
    if not isinstance(event_sid, str) or not event_sid:
        if event_sid is not None:
            notes.append(f"{where}.last_processed_event_sid: expected a string")
        event_sid = None
        notes.append(f"{where}.last_processed_event_sid: missing, record cannot be deduplicated")
    channels = raw.get("channels")
    if channels is not None and not isinstance(channels, list):
        notes.append(f"{where}.channels: expected a list or null")
    return Record(index, sid, event_sid, at_ms, flagged, activity[:200], derive_task_state(channels), raw, notes)


def parse_envelope(data: Any, received_ms: int, max_ahead_ms: int | None = None) -> Parsed:
    """Validated envelope → usable records + rejected records. Raises FeedError for a bad envelope.

    ``max_ahead_ms``: a record dated further than this after its receipt takes
    the receipt time (the live webhook sets it; a replay of recorded or
    simulated data does not).
    """
    records = check_envelope(data)
    ok: list[Record] = []
    rejected: list[tuple[int, Any, str]] = []
    for i, raw in enumerate(records):
        try:
            ok.append(parse_record(i, raw, received_ms, max_ahead_ms))
        except FeedError as exc:
            rejected.append((i, raw, str(exc)))
    return Parsed(ok, rejected, getattr(data, "text", None) if len(ok) == 1 and not rejected else None)
