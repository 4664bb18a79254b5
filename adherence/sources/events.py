"""TaskRouter events, whichever way they came, and the fold that turns them into snapshots.

Three shapes carry the same event:

* the Workspace event callback: form fields in CamelCase (``EventType``,
  ``Sid``, ``TimestampMs``, ``WorkerSid``, ``WorkerActivityName``,
  ``ReservationSid``, ``TaskChannelUniqueName``, ``TaskAssignmentStatus``…);
* an Event Streams CloudEvent: ``type`` ``com.twilio.taskrouter.<event>``,
  the same fields in snake_case under ``data.payload`` (or ``data``);
* a row of the Events REST resource: ``event_type``, ``event_date_ms``,
  the fields under ``event_data``.

Each becomes an ``Event`` with snake_case fields and a dedupe key built from
the TaskRouter event SID (``tr:EV…``), so the same event met through two
channels (or retried) counts once.

The fold is what the RTA feed computes on Twilio's side: the worker's
activity, and per reservation its status, so the task state follows the
feed's own rule (``feed.derive_task_state``). A snapshot at an instant is
the fold of every event of that worker up to and including that instant, in
the order (time, key); it depends only on which events are known, never on
the order they arrived in.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from ..errors import FeedError
from ..feed import EARLIEST_MS, LATEST_MS, derive_task_state
from ..model import UNKNOWN_ACTIVITY
from ..timeutil import parse_instant_ms

KEY_PREFIX = "tr:"
CLOUDEVENT_PREFIX = "com.twilio.taskrouter."

# Event types with a reservation lifecycle step: (reservation status, default task assignment status).
# None: the reservation is over and no longer counts.
_RESERVATION = {
    "reservation.created": ("pending", "reserved"),
    "reservation.accepted": ("accepted", "assigned"),
    "reservation.wrapup": ("wrapping", "wrapping"),
    "reservation.completed": None,
    "reservation.canceled": None,
    "reservation.rejected": None,
    "reservation.rescinded": None,
    "reservation.timeout": None,
    "reservation.failed": None,
}
_ACTIVITY = {"worker.created", "worker.activity.update"}
_CAPACITY = {"worker.capacity.update", "worker.channel.availability.update"}
# Task events add information only when they name the worker (a task event is about the task).
_TASK = {"task.wrapup": "wrapping", "task.completed": None, "task.canceled": None, "task.deleted": None,
         "task.system-deleted": None}
USED = frozenset(_RESERVATION) | _ACTIVITY | _CAPACITY | frozenset(_TASK) | {"worker.deleted"}
# The Events resource has named the activity change "worker.activity" (twilio-python's published example).
_ALIASES = {"worker.activity": "worker.activity.update"}


@dataclass(slots=True)
class Event:
    """One TaskRouter event about one worker."""

    key: str  # "tr:EV…": the dedupe key, the same through every channel
    type: str  # "reservation.accepted"
    worker_sid: str
    at_ms: int
    flagged: bool  # True when at_ms is the receipt time (no usable timestamp)
    source: str  # taskrouter | eventstreams | backfill
    fields: dict  # snake_case
    raw: Any  # as received: the callback's fields, the CloudEvent, the resource row

    @property
    def order(self) -> tuple[int, str]:
        return (self.at_ms, self.key)


class Ignored(Exception):
    """A well-formed event that does not change any agent's snapshot (kept, not applied)."""


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def snake(name: str) -> str:
    """``WorkerActivityName`` → ``worker_activity_name`` (the callback's names → Event Streams')."""
    return _CAMEL.sub("_", name).lower()


def _text(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None


def _instant(value: Any) -> int | None:
    """Epoch ms from epoch ms, epoch seconds (number or digits) or ISO-8601; None when unusable."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    if isinstance(value, (int, float)):
        ms = int(value) if abs(value) >= 10**11 else int(value * 1000)
    elif isinstance(value, str):
        try:
            ms = parse_instant_ms(value)
        except (ValueError, OverflowError):
            return None
    else:
        return None
    return ms if EARLIEST_MS <= ms < LATEST_MS else None


def _finish(kind: str, source: str, fields: dict, sid: str | None, fallback_id: str, times: list,
            raw: Any, received_ms: int, max_ahead_ms: int | None) -> Event:
    kind = _ALIASES.get(kind, kind)
    if kind not in USED:
        raise Ignored(f"{kind or 'an event without a type'} does not change an agent's snapshot")
    worker = _text(fields.get("worker_sid"))
    if worker is None and kind in _ACTIVITY | _CAPACITY | {"worker.deleted"}:
        rs = _text(fields.get("resource_sid"))
        worker = rs if rs and rs.startswith("WK") else None
    if worker is None:
        if kind in _TASK:
            raise Ignored(f"{kind} without a worker SID is about the task alone")
        raise FeedError(f"{kind}: no worker SID (worker_sid), the event cannot be attributed")
    if len(worker) > 64:
        raise FeedError(f"{kind}: worker_sid is too long to be a worker SID")
    at = None
    for t in times:
        at = _instant(t)
        if at is not None:
            break
    flagged = at is None or (max_ahead_ms is not None and at > received_ms + max_ahead_ms)
    if flagged:
        at = received_ms
    key = KEY_PREFIX + sid if sid and sid.startswith("EV") else KEY_PREFIX + fallback_id
    return Event(key, kind, worker, at, flagged, source, fields, raw)


def from_callback(form: dict, received_ms: int, max_ahead_ms: int | None = None) -> Event:
    """The Workspace event callback's fields (one value per name) → Event."""
    if not isinstance(form, dict) or not _text(form.get("EventType")):
        raise FeedError("not a TaskRouter event callback: no EventType field")
    fields = {snake(k): v for k, v in form.items()}
    # Without the event SID, a retry is recognised by its identical fields.
    digest = hashlib.sha1(repr(sorted(form.items())).encode("utf-8", "surrogatepass")).hexdigest()
    return _finish(form["EventType"], "taskrouter", fields, _text(form.get("Sid")), "cb:" + digest,
                   [form.get("TimestampMs"), form.get("Timestamp")], form, received_ms, max_ahead_ms)


def from_cloudevent(ce: Any, received_ms: int, max_ahead_ms: int | None = None) -> Event:
    """One Event Streams CloudEvent → Event."""
    if not isinstance(ce, dict):
        raise FeedError("expected a CloudEvent (a JSON object)")
    kind = ce.get("type")
    if not isinstance(kind, str) or not ce.get("specversion"):
        raise FeedError("not a CloudEvent: no specversion or type")
    if not kind.startswith(CLOUDEVENT_PREFIX):
        raise Ignored(f"{kind} is not a TaskRouter event")
    data = ce.get("data") if isinstance(ce.get("data"), dict) else {}
    payload = data.get("payload") if isinstance(data.get("payload"), dict) else data
    fields = dict(payload)
    sid = _text(payload.get("sid")) or _text(data.get("sid"))
    ce_id = _text(ce.get("id")) or hashlib.sha1(repr(sorted(map(str, ce.items()))).encode()).hexdigest()
    times = [payload.get("timestamp_ms"), payload.get("timestamp"), data.get("timestamp"), ce.get("time")]
    return _finish(kind[len(CLOUDEVENT_PREFIX):], "eventstreams", fields, sid, "ce:" + ce_id, times, ce,
                   received_ms, max_ahead_ms)


def from_resource(row: Any, received_ms: int, max_ahead_ms: int | None = None) -> Event:
    """One instance of the TaskRouter Events resource (``GET …/Workspaces/WS…/Events``) → Event."""
    if not isinstance(row, dict) or not _text(row.get("event_type")):
        raise FeedError("not a TaskRouter Events resource instance: no event_type")
    data = row.get("event_data") if isinstance(row.get("event_data"), dict) else {}
    fields = dict(data)
    if "resource_sid" not in fields and _text(row.get("resource_sid")):
        fields["resource_sid"] = row["resource_sid"]
    sid = _text(row.get("sid"))
    return _finish(row["event_type"], "backfill", fields, sid, "ev:" + str(sid), [row.get("event_date_ms"),
                   row.get("event_date")], row, received_ms, max_ahead_ms)


PARSERS = {"taskrouter": from_callback, "eventstreams": from_cloudevent, "backfill": from_resource}


def from_stored(source: str, raw: Any, at_ms: int, flagged: bool) -> Event:
    """An event as journaled, at the time it was journaled with (its receipt time when flagged)."""
    ev = PARSERS[source](raw, at_ms)
    ev.at_ms, ev.flagged = at_ms, flagged
    return ev


# ---- the fold ---------------------------------------------------------------------------------

def initial_state() -> dict:
    """Nothing known yet: the activity is unknown, no reservation counts."""
    return {"activity": None, "activity_sid": None, "res": {}, "caps": {}}


def apply(state: dict, ev: Event) -> dict:
    """The state after ``ev`` (a new dict; ``state`` is left as it was)."""
    f = ev.fields
    s = {"activity": state["activity"], "activity_sid": state["activity_sid"], "res": state["res"],
         "caps": state["caps"]}
    name = _text(f.get("worker_activity_name"))
    if ev.type == "worker.deleted":
        s["activity"], s["activity_sid"], s["res"] = "Offline", None, {}
        return s
    if name is not None:
        # reservation and capacity events carry the worker's activity too: it is as true at their instant
        s["activity"], s["activity_sid"] = name[:200], _text(f.get("worker_activity_sid"))
    if ev.type in _RESERVATION:
        wr = _text(f.get("reservation_sid")) or _text(f.get("resource_sid"))
        if wr is None:
            return s
        res = dict(s["res"])
        step = _RESERVATION[ev.type]
        if step is None:
            res.pop(wr, None)
        else:
            status, tas = step
            prev = res.get(wr) or [None, None, None, None]
            # [status, task assignment status, task SID, channel]: what the task state and the board read
            res[wr] = [status, _text(f.get("task_assignment_status")) or tas,
                       _text(f.get("task_sid")) or prev[2], _text(f.get("task_channel_unique_name")) or prev[3]]
        s["res"] = res
    elif ev.type in _TASK:
        task = _text(f.get("task_sid")) or _text(f.get("resource_sid"))
        to = _TASK[ev.type]
        res = {}
        for wr, r in s["res"].items():
            if r[2] != task:
                res[wr] = r
            elif to is not None:
                res[wr] = [r[0], to, r[2], r[3]]
        s["res"] = res
    elif ev.type in _CAPACITY:
        channel = _text(f.get("task_channel_unique_name"))
        if channel is not None:
            cap = {k: f[k] for k in ("worker_channel_capacity", "worker_channel_available",
                                     "worker_channel_available_capacity") if k in f}
            if cap:
                s["caps"] = {**s["caps"], channel: {**s["caps"].get(channel, {}), **cap}}
    return s


def _number(v: Any) -> int | None:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, float)):
        return int(v)
    if isinstance(v, str):
        if v.lower() in ("true", "false"):
            return int(v.lower() == "true")
        try:
            return int(float(v))
        except ValueError:
            return None
    return None


def channels(state: dict) -> list:
    """The state's channels in the RTA feed's shape (what the board and ``derive_task_state`` read)."""
    by_name: dict[str, list] = {}
    for wr in sorted(state["res"]):
        r = state["res"][wr]
        by_name.setdefault(r[3] or "unknown", []).append((wr, r))
    out = []
    for name in sorted(set(by_name) | set(state["caps"])):
        held = by_name.get(name, [])
        cap = state["caps"].get(name, {})
        out.append({
            "task_channel_name": name,
            "available": _number(cap.get("worker_channel_available")),
            "available_capacity": _number(cap.get("worker_channel_available_capacity")),
            "capacity": _number(cap.get("worker_channel_capacity")),
            "reservations": [{"sid": wr, "status": r[0], "task_assignment_status": r[1], "task_sid": r[2]}
                             for wr, r in held] or None,
        })
    return out


def snapshot_of(state: dict) -> tuple[str, str, list]:
    """(activity, task state, channels) of a state, as the RTA feed would report them."""
    chans = channels(state)
    return (state["activity"] or UNKNOWN_ACTIVITY), derive_task_state(chans), chans
