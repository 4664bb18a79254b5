"""Filling gaps from TaskRouter's own history: the Events resource.

TaskRouter keeps every workspace event for 30 days
(``GET /v1/Workspaces/{WorkspaceSid}/Events``, HTTP basic auth with the
account SID and auth token). Whatever a stopped server missed is there; the
events already journaled (from the callback or Event Streams) have the same
``EV…`` SID and are recognised as duplicates, so a backfill over any window
adds exactly what is missing, and a second run adds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterator

import requests

from ..errors import AdherenceError, FeedError
from ..journal import Counts, Journal
from .files import _dump
from . import events as tr

RETENTION_DAYS = 30  # how long TaskRouter keeps events
PAGE_SIZE = 1000
BATCH = 2000  # events per journal transaction


class BackfillError(AdherenceError):
    """The Events resource could not be read (credentials, network, an answer of another shape)."""


@dataclass
class BackfillReport:
    read: int = 0
    counts: Counts = field(default_factory=Counts)
    pages: int = 0


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_events(api_url: str, account_sid: str, auth_token: str, workspace_sid: str, start_ms: int, end_ms: int,
                timeout: float = 30.0, session: requests.Session | None = None) -> Iterator[tuple[int, dict]]:
    """(page number, event instance) for every event in [start, end], following ``meta.next_page_url``."""
    http = session or requests.Session()
    url = f"{api_url.rstrip('/')}/v1/Workspaces/{workspace_sid}/Events"
    # whole seconds: the window is widened to them (anything read twice is a recognised duplicate)
    params: dict | None = {"StartDate": _iso(start_ms), "EndDate": _iso(end_ms + 999), "PageSize": PAGE_SIZE}
    page = 0
    while url:
        try:
            resp = http.get(url, params=params, auth=(account_sid, auth_token), timeout=timeout)
        except requests.RequestException as exc:
            raise BackfillError(f"cannot read {url}: {exc}") from None
        if resp.status_code != 200:
            detail = resp.text[:300].strip()
            raise BackfillError(f"{url} answered HTTP {resp.status_code}: {detail}")
        try:
            body = resp.json()
        except ValueError:
            raise BackfillError(f"{url} did not answer JSON") from None
        items = body.get("events") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise BackfillError(f"{url} answered without an events list")
        page += 1
        for item in items:
            yield page, item
        meta = body.get("meta") if isinstance(body.get("meta"), dict) else {}
        nxt = meta.get("next_page_url")
        url, params = (nxt, None) if isinstance(nxt, str) and nxt else (None, None)


def backfill(journal: Journal, api_url: str, account_sid: str, auth_token: str, workspace_sid: str, start_ms: int,
             end_ms: int, now_ms: int, progress=None) -> BackfillReport:
    """Journal every event of [start, end] the journal lacks; what was read and added."""
    report = BackfillReport()
    batch: list = []
    kept: list = []

    def flush():
        if batch or kept:
            report.counts.add(journal.ingest_events(batch, now_ms, kept, "application/json", "backfill"))
        batch.clear()
        kept.clear()

    for page, item in read_events(api_url, account_sid, auth_token, workspace_sid, start_ms, end_ms):
        report.read += 1
        report.pages = page
        try:
            batch.append(tr.from_resource(item, now_ms))
        except tr.Ignored:
            report.counts.ignored += 1  # workflow, queue, task-only events: nothing of an agent's state
        except FeedError as exc:
            kept.append((_dump(item), f"backfill: {exc}", "rejected"))
        if len(batch) >= BATCH:
            flush()
            if progress:
                progress(report)
    flush()
    return report
