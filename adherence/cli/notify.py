"""``adherence notify``: check a channel end to end, and look at the outbox."""

from __future__ import annotations

import json
import time

import click

from ..errors import AdherenceError
from . import cli
from .common import config_option, fail, print_table


@cli.group()
def notify() -> None:
    """Notifications (webhooks, Slack, email): test a channel, list the outbox.

    Example: adherence notify test ops-webhook
    """


def _load(config):
    from ..notify.config import load_notifications

    if config.notifications is None:
        raise click.ClickException("notifications are not configured: add 'notifications: notifications.yaml' "
                                   "to config.yaml (see docs/notifications.md)")
    try:
        return load_notifications(config.notifications, tz=config.timezone, public_url=config.server_public_url)
    except AdherenceError as exc:
        raise fail(exc) from None


@notify.command("test")
@config_option
@click.argument("channel")
def test_channel(config, channel) -> None:
    """Send a sample message to CHANNEL now (nothing is written to the database).

    The sample is an "opened" alert about agent "test-agent", marked as a test
    (event "test"), so a receiver can be checked without waiting for a real
    exception. Exits non-zero with the receiver's answer when delivery fails.

    Example: adherence notify test floor-slack
    """
    from ..notify import channels as ch

    n = _load(config)
    if channel not in n.channels:
        raise click.ClickException(f"no channel {channel!r} in {config.notifications} "
                                   f"(defined: {', '.join(n.channels) or 'none'})")
    now = int(time.time() * 1000)
    start = now - 7 * 60_000
    entry = {"id": 0, "route": "test", "event": "test", "agent": "test-agent", "digest_ms": None, "payload": {
        "exception": {"id": 0, "agent": "test-agent", "worker_sid": "WK00000000000000000000000000000000",
                      "team": "Test", "rule": "offline-when-scheduled-available", "severity": "critical",
                      "scheduled_activity": "Available", "actual_activity": "Offline", "task_state": "none",
                      "start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start / 1000)), "end": None,
                      "duration_seconds": 420, "status": "open",
                      "day": time.strftime("%Y-%m-%d", time.gmtime(now / 1000))}}}
    try:
        ch.send(n.channels[channel], [entry], public_url=n.public_url, timeout_ms=n.delivery.timeout_ms, now_ms=now)
    except ch.DeliveryError as exc:
        raise click.ClickException(f"{channel}: delivery failed: {exc}") from None
    click.echo(f"{channel}: sent a test message ({n.channels[channel].type})")


@notify.command("list")
@config_option
@click.option("--status", type=click.Choice(["pending", "sent", "dead", "cancelled"]))
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def list_outbox(config, status, limit, as_json) -> None:
    """The newest outbox entries, with attempts and last error (dead-lettered ones with --status dead).

    Example: adherence notify list --status dead
    """
    from ..store import Store

    store = Store(config.database, probe=False)
    try:
        sql = "SELECT id, channel, route, event, agent, status, attempts, last_error FROM outbox"
        args: list = []
        if status:
            sql += " WHERE status = ?"
            args.append(status)
        rows = [dict(r) for r in store.reader.execute(sql + " ORDER BY id DESC LIMIT ?", [*args, limit])]
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        print_table(rows, ["id", "channel", "route", "event", "agent", "status", "attempts", "last_error"])
