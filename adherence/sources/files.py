"""Recorded feeds of every source, for ``adherence replay``.

A file may hold any of the formats, one request body (or export line) at a
time, and they are told apart by their shape rather than by the file's
name, so a capture can be replayed as it was saved:

* a WFM RTA envelope (``{"product": "Flex", ...}``);
* an Event Streams CloudEvent, or a JSON list of them (one webhook request);
* a Workspace event callback: its form-encoded body as received
  (``EventType=...&Sid=...``), or its fields as a JSON object;
* an instance of the TaskRouter Events resource, or a page of them
  (``{"events": [...], "meta": {...}}``), as ``adherence backfill`` reads them.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from ..errors import FeedError
from . import events as tr

RTA, EVENTS = "rta", "events"


def classify(raw: Any) -> tuple[str, Any]:
    """A line (bytes) or a parsed JSON value → ("rta", envelope value) or ("events", [(parser, item)]).

    Raises FeedError when it is none of the formats (the caller keeps it as rejected).
    """
    if isinstance(raw, (bytes, str)):
        text = raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else raw
        stripped = text.strip()
        if stripped[:1] in ("{", "["):
            try:
                value = json.loads(stripped)
            except ValueError as exc:
                raise FeedError(f"malformed JSON: {exc}") from None
        elif "EventType=" in stripped:
            return EVENTS, [("taskrouter", dict(parse_qsl(stripped, keep_blank_values=True)))]
        else:
            raise FeedError("neither JSON nor a form-encoded TaskRouter event callback")
    else:
        value = raw
    if isinstance(value, dict):
        if "product" in value or "records" in value:
            return RTA, value
        if "specversion" in value:
            return EVENTS, [("eventstreams", value)]
        if "EventType" in value:
            return EVENTS, [("taskrouter", {k: v for k, v in value.items() if isinstance(v, str)})]
        if "event_type" in value:
            return EVENTS, [("backfill", value)]
        if isinstance(value.get("events"), list):
            return EVENTS, [("backfill", item) for item in value["events"]]
        raise FeedError("not an RTA envelope, a CloudEvent, a callback or a TaskRouter Events resource instance")
    if isinstance(value, list) and value and all(isinstance(v, dict) and "specversion" in v for v in value):
        return EVENTS, [("eventstreams", v) for v in value]
    raise FeedError(f"expected a JSON object or a list of CloudEvents, got {type(value).__name__}")


def parse_items(items: list[tuple[str, Any]], received_ms: int) -> tuple[list, list]:
    """[(parser, item)] → (events, kept) as ``Journal.ingest_events`` takes them."""
    out, kept = [], []
    for source, item in items:
        try:
            out.append(tr.PARSERS[source](item, received_ms))
        except tr.Ignored as exc:
            kept.append((_dump(item), str(exc), "ignored"))
        except FeedError as exc:
            kept.append((_dump(item), str(exc), "rejected"))
    return out, kept


def _dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")
