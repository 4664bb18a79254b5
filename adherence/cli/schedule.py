"""``adherence schedule show``: an agent's resolved segments."""

from __future__ import annotations

from datetime import date, timedelta

import click

from ..clock import SystemClock
from ..errors import AdherenceError
from ..schedules import load_schedules
from ..timeutil import format_duration, from_ms, iso, local_date, parse_date
from . import cli
from .common import config_option, fail, print_json, print_table

MAX_DAYS = 366


@cli.group()
def schedule() -> None:
    """Inspect the schedules (schedules/*.yaml and *.ics).

    Example: adherence schedule show alice --date 2026-11-25
    """


def _date_arg(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        return parse_date(value)
    except ValueError as exc:
        raise click.ClickException(f"{name}: {exc}") from None


@schedule.command("show")
@click.argument("agent")
@click.option("--date", "on", help="Day to show (YYYY-MM-DD, agent's local date). Default: today.")
@click.option("--from", "start", help="First day of a range (YYYY-MM-DD).")
@click.option("--to", "end", help="Last day of a range, inclusive (YYYY-MM-DD).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="Output format.")
@config_option
def show(agent: str, on: str | None, start: str | None, end: str | None, fmt: str, config) -> None:
    """Show AGENT's resolved segments (AGENT is the roster name or worker SID).

    A shift belongs to the local date it starts on. JSON is a list of
    {"start", "end", "activity"} in UTC.

    Example: adherence schedule show alice --from 2026-11-23 --to 2026-11-27 --format json
    """
    if on and (start or end):
        raise click.ClickException("give either --date or --from/--to, not both")
    try:
        sched = load_schedules(config.schedules, config.timezone, config.time_off)
    except AdherenceError as exc:
        raise fail(exc) from None
    found = sched.agent(agent)
    if found is None:
        known = ", ".join(sorted(sched.agents)) or "none"
        raise click.ClickException(f"unknown agent {agent!r} (expected a roster name or worker SID: {known})")
    tz = sched.tz(found.key)
    first = _date_arg(on, "--date") or _date_arg(start, "--from")
    last = _date_arg(on, "--date") or _date_arg(end, "--to")
    if first is None and last is None:
        first = last = local_date(SystemClock().now_ms(), tz)
    first = first or last
    last = last or first
    if last < first:
        raise click.ClickException(f"--to {last} is before --from {first}")
    if (last - first).days >= MAX_DAYS:
        raise click.ClickException(f"at most {MAX_DAYS} days at a time")
    for w in sched.warnings:
        click.echo(f"warning: {w}", err=True)

    rows, segments = [], []
    d = first
    while d <= last:
        segs = sched.segments_for_day(found.key, d)
        segments.extend(segs)
        off = sched.time_off(found.key, d)
        if off and fmt == "table":
            rows.append({"day": d.isoformat(), "activity": f"({off}: time off)"})
        for s in segs:
            ls, le = from_ms(s.start).astimezone(tz), from_ms(s.end).astimezone(tz)
            rows.append({
                "day": s.day.isoformat(),
                "local start": ls.strftime("%Y-%m-%d %H:%M %Z"),
                "local end": le.strftime("%H:%M %Z") if le.date() == ls.date() else le.strftime("%Y-%m-%d %H:%M %Z"),
                "utc start": iso(s.start),
                "utc end": iso(s.end),
                "length": format_duration(s.end - s.start),
                "activity": s.activity,
            })
        d += timedelta(days=1)
    if fmt == "json":
        print_json([{"start": iso(s.start), "end": iso(s.end), "activity": s.activity} for s in segments])
        return
    click.echo(f"{found.key} ({found.worker_sid}), time zone {found.timezone}, {first}"
               + (f" to {last}" if last != first else ""))
    if not rows:
        click.echo("no scheduled segments")
        return
    print_table(rows, ["day", "local start", "local end", "utc start", "utc end", "length", "activity"])
