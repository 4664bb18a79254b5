"""``adherence report``: exceptions and adherence from the command line."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import click

from ..errors import AdherenceError
from ..rules import SEVERITIES
from ..queries import (ADHERENCE_COLUMNS, EXCEPTION_COLUMNS, Filters, adherence_csv, csv_lines, exception_csv,
                       iter_adherence, iter_exceptions)
from . import cli
from .common import config_option, fail, format_option, print_json, print_table


def read_context(config):
    """What the read queries need, without loading live state: store, schedules, clock."""
    from ..clock import SystemClock
    from ..schedules import schedule_source
    from ..store import Store

    schedules = schedule_source(config)
    schedules.check()
    store = Store(config.database)
    store.require_sound()  # a damaged file would fail halfway through the report, with a traceback
    return SimpleNamespace(store=store, schedules=schedules, clock=SystemClock(), config=config)


@cli.command()
@config_option
@click.argument("what", type=click.Choice(["exceptions", "adherence", "intervals"]))
@click.option("--date", help="One day (YYYY-MM-DD).")
@click.option("--from", "first", help="First day (YYYY-MM-DD).")
@click.option("--to", "last", help="Last day (YYYY-MM-DD).")
@click.option("--team", help="Only this team.")
@click.option("--agent", help="Only this agent (roster key or worker SID).")
@click.option("--rule", help="Exceptions of this rule only.")
@click.option("--severity", type=click.Choice(SEVERITIES), help="Exceptions of this severity only.")
@click.option("--status", type=click.Choice(["open", "closed"]), help="Open or closed exceptions only.")
@click.option("--size", type=click.Choice(["15m", "30m", "60m"]), default="30m", show_default=True,
              help="Intervals: their length, in local time.")
@click.option("--group", type=click.Choice(["agent", "team"]), default="agent", show_default=True,
              help="Intervals: per agent or summed per team.")
@format_option()
def report(config, what, date, first, last, team, agent, rule, severity, status, size, group, fmt) -> None:
    """Print exceptions, per-agent-per-day adherence or interval adherence as a table, CSV or JSON.

    The CSV columns are the same as the API's (see README, "CSV columns"). ``intervals`` cuts each day into
    --size intervals of local time (the same as GET /api/intervals); they add up to the day's figures.

    Example: adherence report adherence --date 2026-11-25 --team tier1 --format csv > tier1.csv
    """
    args = {"date": date, "from": first, "to": last, "team": team, "agent": agent}
    if what == "exceptions":
        args.update(rule=rule, severity=severity, status=status)
    elif rule or severity or status:
        raise click.UsageError("--rule, --severity and --status apply to exceptions only")
    try:
        ctx = read_context(config)
    except AdherenceError as exc:
        raise fail(exc) from None
    try:
        filters = Filters.parse(args, allowed=args.keys())
        if what == "intervals":
            _intervals(ctx, filters, size, group, fmt)
            return
        if fmt == "csv":  # one statement streamed, its lines made by SQLite (the API's export)
            for chunk in (exception_csv if what == "exceptions" else adherence_csv)(ctx, filters):
                sys.stdout.write(chunk)
            return
        rows = iter_exceptions(ctx, filters) if what == "exceptions" else iter_adherence(ctx, filters)
        columns = EXCEPTION_COLUMNS if what == "exceptions" else ADHERENCE_COLUMNS
        if fmt == "json":
            print_json(list(rows))
        else:
            rows = list(rows)
            if not rows:
                click.echo(f"no {what} match")
                return
            shown = columns if what == "adherence" else [c for c in columns if c not in ("worker_sid", "note")]
            print_table(rows, shown)
    except AdherenceError as exc:
        raise fail(exc) from None
    finally:
        ctx.store.close()


def _intervals(ctx, filters, size, group, fmt) -> None:
    from ..intervals import INTERVAL_COLUMNS, TEAM_INTERVAL_COLUMNS, agent_intervals, parse_size, public, team_intervals

    if not (filters.date or filters.start or filters.end or filters.agent):
        raise click.UsageError("give --date (or --from/--to, or --agent): intervals are computed per day")
    rows = agent_intervals(ctx, filters, parse_size(size))
    rows, columns = (team_intervals(rows), TEAM_INTERVAL_COLUMNS) if group == "team" else (public(rows), INTERVAL_COLUMNS)
    if fmt == "csv":
        for line in csv_lines(rows, columns):
            sys.stdout.write(line)
    elif fmt == "json":
        print_json(rows)
    elif not rows:
        click.echo("no intervals match")
    else:
        print_table(rows, [c for c in columns if c not in ("worker_sid", "end", "stale")])
