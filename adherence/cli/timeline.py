"""``adherence timeline``: an agent's day as text (the same data as the page and the JSON)."""

from __future__ import annotations

import click

from ..errors import AdherenceError
from . import cli
from .common import config_option, fail, format_option, print_json
from .results import read_context


@cli.command()
@config_option
@click.argument("agent")
@click.option("--date", "day", help="The agent-local day (YYYY-MM-DD); default today in the configured zone.")
@format_option(("text", "json"), "text")
def timeline(config, agent, day, fmt) -> None:
    """Print an agent's day: scheduled segments, activity, task state, exceptions (rule, severity, approved or
    not), period approvals, figures and history, in the agent's local time with its UTC offset.

    Example: adherence timeline alice --date 2026-11-25
    """
    from ..queries import _resolve_agent
    from ..timeline import agent_day, render_text
    from ..timeutil import local_date, parse_date, zone

    try:
        ctx = read_context(config)
    except AdherenceError as exc:
        raise fail(exc) from None
    try:
        try:
            d = parse_date(day) if day else local_date(ctx.clock.now_ms(), zone(config.timezone))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--date") from None
        t = agent_day(ctx, _resolve_agent(ctx, agent), d)
        if fmt == "json":
            print_json(t)
        else:
            click.echo(render_text(t), nl=False)
    except AdherenceError as exc:
        raise fail(exc) from None
    finally:
        ctx.store.close()
