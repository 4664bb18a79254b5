"""``adherence schedule show`` and ``export``: an agent's resolved segments, and the whole schedule as a file."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import click

from ..clock import SystemClock
from ..schedules import load_folder
from ..schedules.loader import LoadResult
from ..timeutil import format_duration, from_ms, iso, local_date, parse_date, zone
from . import cli
from .common import config_option, print_json, print_table

MAX_DAYS = 366


@cli.group()
def schedule() -> None:
    """Inspect and export the schedules (schedules/*.yaml, *.ics and *.csv).

    Example: adherence schedule show alice --date 2026-11-25
    """


def _date_arg(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        return parse_date(value)
    except ValueError as exc:
        raise click.ClickException(f"{name}: {exc}") from None


def _load(config) -> LoadResult:
    """Every file that loads, as the service would use them; the others are reported, not fatal."""
    result = load_folder(config.schedules, config.timezone, config.time_off)
    if result.schedule is None:
        raise click.ClickException("; ".join(str(p) for p in result.problems))
    return result


def _warn(result: LoadResult, agents: set[str] | None = None, files: set[str] | None = None) -> None:
    """What concerns the agents shown, in full, once each; everything else in one line.

    In a folder of hundreds of calendars, one agent's `schedule show` must not
    scroll away under every other file's warnings.
    """
    others = 0
    for w in dict.fromkeys(result.warnings):
        if files is None or w.file in files:
            click.echo(f"warning: {w}", err=True)
        else:
            others += 1
    elsewhere = []
    for st in result.broken:
        if agents is not None and st.agents & agents:
            click.echo(f"error: {st.line()}", err=True)
            for p in st.problems[:10]:
                click.echo(f"error: {p}", err=True)
        else:
            elsewhere.append(st)
    if 0 < len(elsewhere) <= 5:
        for st in elsewhere:
            click.echo(f"warning: {st.line()}", err=True)
    elif elsewhere:
        names = ", ".join(st.file for st in elsewhere[:3]) + (", ..." if len(elsewhere) > 3 else "")
        click.echo(f"warning: {len(elsewhere)} other schedule file(s) in error ({names}); their agents keep their "
                   "last good version or nothing ('adherence check' lists every problem)", err=True)
    if others:
        click.echo(f"warning: {others} warning(s) about other files ('adherence check' lists them)", err=True)


def _files_of(sched, key: str) -> set[str]:
    plan = sched._plans.get(key)
    if plan is None:
        return set()
    out = {cal.file for cal in plan.calendars} | {s.file for s, _ in plan.weekly}
    out |= {s.file for shifts in plan.dated.values() for s, _ in shifts}
    return out


def _range(on, start, end, tz) -> tuple[date, date]:
    if on and (start or end):
        raise click.ClickException("give either --date or --from/--to, not both")
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
    return first, last


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
    {"start", "end", "activity"} in UTC. Files in error elsewhere in the
    folder are warned about; the command fails only when one of them
    concerns AGENT.

    Example: adherence schedule show alice --from 2026-11-23 --to 2026-11-27 --format json
    """
    result = _load(config)
    sched = result.schedule
    found = sched.agent(agent)
    if found is None:
        _warn(result, {agent})
        known = ", ".join(sorted(sched.agents)[:20]) + (", ..." if len(sched.agents) > 20 else "") or "none"
        raise click.ClickException(f"unknown agent {agent!r} (expected a roster name or worker SID: {known})")
    tz = sched.tz(found.key)
    first, last = _range(on, start, end, tz)
    mine = {found.key, found.worker_sid}
    _warn(result, mine, _files_of(sched, found.key))

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
    for problem in sched.expansion_problems:
        if sched.expansion_problems[problem][1] & mine:
            click.echo(f"error: {problem}", err=True)
    broken_for_me = any(st.agents & mine for st in result.broken) or any(
        agents & mine for _, agents in sched.expansion_problems.values())
    if fmt == "json":
        print_json([{"start": iso(s.start), "end": iso(s.end), "activity": s.activity} for s in segments])
    else:
        click.echo(f"{found.key} ({found.worker_sid}), time zone {found.timezone}, {first}"
                   + (f" to {last}" if last != first else ""))
        if not rows:
            click.echo("no scheduled segments")
        else:
            print_table(rows, ["day", "local start", "local end", "utc start", "utc end", "length", "activity"])
    if broken_for_me:
        raise click.ClickException(f"a schedule file of {found.key} is in error: what is shown may be "
                                   "incomplete (see the errors above)")


@schedule.command("export")
@click.argument("agents", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(["csv", "ics"]), default="csv", show_default=True,
              help="csv: agent,date,start,end,activity,timezone rows; ics: one event per segment.")
@click.option("--date", "on", help="One day (YYYY-MM-DD, agents' local dates). Default: today.")
@click.option("--from", "start", help="First day (YYYY-MM-DD).")
@click.option("--to", "end", help="Last day, inclusive (YYYY-MM-DD).")
@click.option("--team", help="Only the agents of this team.")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file instead of standard output.")
@config_option
def export(agents: tuple[str, ...], fmt: str, on, start, end, team, out: Path | None, config) -> None:
    """Write the resolved schedule of AGENTS (default: everyone) as CSV or iCalendar.

    The file reads back to the same segments: put an exported CSV in the
    schedules folder (with the roster, without the files it came from) and
    `schedule show` gives what it gave before. Times are local to each agent
    in CSV and UTC in iCalendar.

    Example: adherence schedule export --from 2026-11-23 --to 2026-11-29 --format csv --out week48.csv
    """
    from ..schedules.export import to_csv, to_ics

    result = _load(config)
    sched = result.schedule
    keys: list[str] = []
    for a in agents:
        found = sched.agent(a)
        if found is None:
            raise click.ClickException(f"unknown agent {a!r} (expected a roster name or worker SID)")
        keys.append(found.key)
    if not agents:
        keys = sorted(sched.agents)
    if team:
        keys = [k for k in keys if sched.agents[k].team == team]
        if not keys:
            raise click.ClickException(f"no agent in team {team!r}")
    first, last = _range(on, start, end, zone(config.timezone))
    if fmt == "ics" and len(keys) > 1:
        missing = [k for k in keys if not sched.agents[k].email]
        if missing:
            raise click.ClickException(
                f"an iCalendar file for several agents names them by ATTENDEE email, and {', '.join(missing[:10])} "
                "have none: add email: to their roster entries, or export one agent at a time")
    _warn(result, set(keys) | {sched.agents[k].worker_sid for k in keys},
          set().union(*(_files_of(sched, k) for k in keys)) if keys else set())
    text = to_csv(sched, keys, first, last) if fmt == "csv" else \
        to_ics(sched, keys, first, last, time_off=tuple(config.time_off))
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        click.echo(f"wrote {out} ({len(keys)} agent(s), {first} to {last})", err=True)
