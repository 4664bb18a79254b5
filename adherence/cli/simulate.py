"""``adherence simulate``: a synthetic contact center, as files or as live load."""

from __future__ import annotations

import re
import time
from datetime import datetime, time as dtime
from pathlib import Path

import click

from ..clock import SystemClock
from ..simulate import FORMATS, generate, write
from ..timeutil import local_date, parse_instant_ms, to_ms, zone
from . import cli

ENDPOINTS = {"rta": "/webhooks/rta", "taskrouter": "/webhooks/taskrouter", "eventstreams": "/webhooks/events"}

_HAS_ZONE = re.compile(r"(Z|z|[+-]\d\d:?\d\d)$")


def default_start_ms(tz: str, now_ms: int) -> int:
    """Today's 08:00 in ``tz``."""
    z = zone(tz)
    day = local_date(now_ms, z)
    return to_ms(datetime.combine(day, dtime(8, 0), tzinfo=z))


def parse_start(text: str, tz: str) -> int:
    """``--start``: an ISO time (with Z or an offset; without one it is local to ``tz``) or a date (08:00 local)."""
    t = text.strip()
    z = zone(tz)
    try:
        if re.fullmatch(r"\d{4}-\d\d-\d\d", t):
            return to_ms(datetime.combine(datetime.fromisoformat(t).date(), dtime(8, 0), tzinfo=z))
        if _HAS_ZONE.search(t):
            return parse_instant_ms(t)
        return to_ms(datetime.fromisoformat(t).replace(tzinfo=z))
    except ValueError:
        raise click.BadParameter(
            f"expected an ISO-8601 time such as 2026-11-25T08:00 (local to --timezone) or "
            f"2026-11-25T13:00:00Z, or a date, got {text!r}",
            param_hint="--start",
        ) from None


@cli.command()
@click.option("--agents", type=click.IntRange(1, 100_000), default=50, show_default=True, help="Number of agents.")
@click.option("--hours", type=click.FloatRange(0, 24 * 31, min_open=True), default=10.0, show_default=True,
              help="Length of the simulated window.")
@click.option("--seed", type=int, default=1, show_default=True, help="Same seed, same output (byte for byte).")
@click.option("--start", metavar="ISO-TIME",
              help="Window start; without Z/offset it is local to --timezone; a date means 08:00. "
                   "Default: today 08:00 local.")
@click.option("--timezone", "tz", default="America/New_York", show_default=True,
              help="Time zone of the schedules (IANA name).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Write DIR/feed.jsonl, DIR/schedules/roster.yaml and DIR/config.yaml.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="rta", show_default=True,
              help="rta: WFM RTA envelopes (feed.jsonl, /webhooks/rta); taskrouter: workspace event callbacks "
                   "(callbacks.txt, one form body a line, /webhooks/taskrouter); eventstreams: Event Streams "
                   "CloudEvents (events.jsonl, a JSON list a line, /webhooks/events). The same day in each.")
@click.option("--exact", is_flag=True, help="RTA records without the real feed's information losses (first-sighting "
              "nulls, created records folded into accepted ones): then every format gives the same results.")
@click.option("--post", "post_url", metavar="URL", help="POST the bodies to a running receiver, e.g. "
              "http://127.0.0.1:8080/webhooks/rta; a URL without a path gets the endpoint matching --format.")
@click.option("--rate", type=click.FloatRange(0, min_open=True), help="Envelopes per second (default: as fast as possible).")
@click.option("--concurrency", type=click.IntRange(1, 256), default=4, show_default=True, help="Parallel connections.")
@click.option("--twilio-token", envvar="TWILIO_AUTH_TOKEN", metavar="TOKEN",
              help="Sign each request like Twilio (X-Twilio-Signature). Default: $TWILIO_AUTH_TOKEN.")
@click.option("--basic", metavar="USER:PASS", help="HTTP basic credentials for the webhook.")
@click.option("--limit", type=click.IntRange(1), help="Send at most this many envelopes.")
@click.option("--timeout", type=click.FloatRange(0, min_open=True), default=10.0, show_default=True,
              help="Seconds to wait for each answer.")
def simulate(agents, hours, seed, start, tz, fmt, exact, out, post_url, rate, concurrency, twilio_token, basic, limit,
             timeout) -> None:
    """Write a realistic synthetic Flex feed and matching schedules, or post it to a server.

    Agents in teams (tier1 voice+chat, tier2 voice, digital chat) work
    staggered 8-hour shifts with breaks and lunch; they log in (some late),
    take calls and chats through the reservation lifecycle, go on breaks
    roughly on time and log out at the end of their shift (even after the
    window ends). The feed has the real feed's imperfections: nulls,
    duplicates, late deliveries, several records in one envelope; --format
    writes the same day as TaskRouter workspace callbacks or Event Streams
    CloudEvents, with the same duplicates and late deliveries.
    With --post it is a load generator: a summary of answers and latency is
    printed, and the exit status is non-zero if any request failed.

    Example: adherence simulate --agents 50 --hours 10 --out sim && adherence replay --config sim/config.yaml sim/feed.jsonl
    """
    if not out and not post_url:
        raise click.UsageError("give --out DIR (write files), --post URL (send to a server), or both")
    try:
        zone(tz)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--timezone") from None
    start_ms = parse_start(start, tz) if start else default_start_ms(tz, SystemClock().now_ms())
    credentials = None
    if basic is not None:
        user, sep, password = basic.partition(":")
        if not sep or not user:
            raise click.BadParameter("expected USER:PASS", param_hint="--basic")
        credentials = (user, password)
    if post_url and not re.match(r"^https?://[^/]+", post_url):
        raise click.BadParameter(f"expected an http(s):// URL, got {post_url!r}", param_hint="--post")
    if post_url and re.fullmatch(r"https?://[^/?#]+/?", post_url):
        post_url = post_url.rstrip("/") + ENDPOINTS[fmt]
    try:
        sim = generate(agents, hours, seed, start_ms, tz, exact=exact)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None

    if out:
        t0 = time.perf_counter()
        try:
            stats = write(sim, out, fmt)
        except OSError as exc:
            raise click.ClickException(f"cannot write to {out}: {exc.strerror or exc}") from None
        took = time.perf_counter() - t0
        click.echo(
            f"wrote {stats.envelopes} {'envelopes' if fmt == 'rta' else 'requests'} "
            f"({stats.records} {'records' if fmt == 'rta' else 'events'}, {stats.bytes / 1e6:.1f} MB) "
            f"for {agents} agents over {hours:g} h in {took:.1f} s"
        )
        click.echo(f"  feed:      {stats.feed}")
        click.echo(f"  schedules: {stats.roster}")
        click.echo(f"  config:    {stats.config}")
        click.echo(f"next: adherence replay --config {stats.config} {stats.feed}")

    if post_url:
        from ..sim.post import post_envelopes

        summary = post_envelopes(
            (body for _delivery, body in sim.bodies(fmt)),
            post_url,
            token=twilio_token or None,
            basic=credentials,
            rate=rate,
            concurrency=concurrency,
            timeout=timeout,
            limit=limit,
            fast=True,
            fmt=fmt,
        )
        click.echo(summary.text())
        if summary.failed or summary.interrupted:
            raise click.ClickException(
                f"{summary.failed} of {summary.sent} requests failed" if summary.failed else "interrupted"
            )
