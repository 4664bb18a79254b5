"""``adherence backfill``: fill the journal's gaps from TaskRouter's event history."""

from __future__ import annotations

import re
import sys
from datetime import datetime, time as dtime, timezone

import click

from . import cli
from .common import config_option


def _instant(text: str, param: str, end: bool = False) -> int:
    """An ISO time (UTC without a zone) or a date (its start; for --to, its end)."""
    from ..timeutil import parse_instant_ms

    t = text.strip()
    try:
        if re.fullmatch(r"\d{4}-\d\d-\d\d", t):
            day = datetime.fromisoformat(t).date()
            ms = int(datetime.combine(day, dtime(0, 0), tzinfo=timezone.utc).timestamp() * 1000)
            return ms + 86_400_000 - 1 if end else ms
        if not re.search(r"(Z|z|[+-]\d\d:?\d\d)$", t):
            t += "Z"
        return parse_instant_ms(t)
    except ValueError:
        raise click.BadParameter(f"expected an ISO-8601 time (UTC unless it says otherwise) or a date, got {text!r}",
                                 param_hint=param) from None


@cli.command()
@config_option
@click.option("--from", "first", required=True, metavar="TIME", help="Start of the gap: ISO time (UTC) or date.")
@click.option("--to", "last", required=True, metavar="TIME", help="End of the gap: ISO time (UTC) or date (its end).")
def backfill(config, first, last) -> None:
    """Journal the TaskRouter events of a period the journal is missing (after downtime).

    Reads the workspace's Events resource (TaskRouter keeps 30 days) with
    twilio.account_sid, twilio.workspace_sid and auth.twilio_auth_token;
    events already journaled (from the callback or Event Streams) are
    recognised by their EV SID and skipped. Says what it added. A running
    service picks the events up at its next tick.

    Example: TWILIO_ACCOUNT_SID=AC... TWILIO_WORKSPACE_SID=WS... TWILIO_AUTH_TOKEN=... adherence backfill --from 2026-11-25T13:00:00Z --to 2026-11-25T15:30:00Z
    """
    from ..clock import SystemClock
    from ..journal import Journal
    from ..sources.backfill import RETENTION_DAYS, BackfillError, backfill as run
    from ..store import Store

    start, end = _instant(first, "--from"), _instant(last, "--to", end=True)
    if start > end:
        raise click.BadParameter(f"--from {first} is after --to {last}")
    missing = [name for name, value in (("twilio.account_sid", config.twilio_account_sid),
                                        ("twilio.workspace_sid", config.twilio_workspace_sid),
                                        ("auth.twilio_auth_token", config.twilio_auth_token)) if not value]
    if missing:
        raise click.ClickException(
            "backfill needs " + ", ".join(missing) + " (set them in config.yaml from the environment, e.g. "
            "twilio: {account_sid: ${TWILIO_ACCOUNT_SID}, workspace_sid: ${TWILIO_WORKSPACE_SID}})")
    now = SystemClock().now_ms()
    if start < now - RETENTION_DAYS * 86_400_000:
        click.echo(f"warning: TaskRouter keeps events for {RETENTION_DAYS} days; earlier ones are gone", err=True)
    store = Store(config.database)
    try:
        journal = Journal(store, None)  # journal only: the running service applies the rows at its next tick
        progress = (lambda r: click.echo(f"  read {r.read} events ({r.pages} pages)", err=True)) \
            if sys.stderr.isatty() else None
        try:
            report = run(journal, config.twilio_api_url or "https://taskrouter.twilio.com", config.twilio_account_sid,
                         config.twilio_auth_token, config.twilio_workspace_sid, start, end, now, progress)
        except BackfillError as exc:
            raise click.ClickException(str(exc)) from None
        workers = store.reader.execute(
            "SELECT COUNT(DISTINCT worker_sid) FROM journal WHERE received_ms = ? AND event_sid IS NOT NULL", (now,)
        ).fetchone()[0]
    finally:
        store.close()
    c = report.counts
    click.echo(f"read {report.read} events from {report.pages} page(s) of the Events resource")
    click.echo(f"added {c.accepted} event(s) of {workers} worker(s); already journaled {c.duplicates}; "
               f"ignored {c.ignored} (no agent state in them); re-derived {c.corrected} snapshot(s); "
               f"rejected {c.rejected}")
    for e in c.errors[:10]:
        click.echo(f"rejected: {e}", err=True)
