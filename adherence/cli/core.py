"""Core verbs: serve, check, replay, evaluate, recompute."""

from __future__ import annotations

import gc
import ipaddress
import logging
import threading
import json
import signal
import sqlite3
import sys
from pathlib import Path

import click

from ..errors import AdherenceError, FeedError
from ..horizons import WRITE_BUDGET_S
from ..store import RESTORE_ADVICE
from . import cli
from .common import config_option, fail


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def unauthenticated_surfaces(config) -> list[str]:
    missing = []
    if not config.twilio_auth_token and config.webhook_basic is None:
        missing.append("the webhook (set TWILIO_AUTH_TOKEN or auth.webhook_basic)")
    if not config.auth_enabled:
        missing.append("the API and board (set ADHERENCE_API_TOKEN or auth.tokens)")
    return missing


def build_server(config, engine, host: str, port: int, threads: int, limits=None):
    """A waitress server around the app (port 0 picks a free port), with the limits of
    ``adherence.web.server.Limits`` against slow clients (see docs/operations.md)."""
    from ..web import create_app
    from ..web.server import make_server

    return make_server(create_app(engine=engine), host=host, port=port, threads=threads,
                       max_body_bytes=config.max_body_bytes, limits=limits)


def run_server(server, engine) -> None:
    def _stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _stop)
    try:
        server.run()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        engine.close()
        click.echo("adherence: stopped", err=True)


@cli.command()
@config_option
@click.option("--host", help="Interface to bind (default: server.host).")
@click.option("--port", type=int, help="Port (default: server.port; 0 picks a free one).")
@click.option("--threads", type=int, help="Request threads (default: server.threads).")
@click.option("--allow-unauthenticated", is_flag=True, help="Allow binding beyond loopback with no auth configured.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--front-processes", type=click.IntRange(0, 64),
              help="HTTP front processes beside the owner of the journal (default: server.front_processes; 0: one process).")
def serve(config, host, port, threads, allow_unauthenticated, log_format, front_processes) -> None:
    """Run the receiver, evaluator, API and board on a production WSGI server (waitress).

    One process with threads owns the live state and the evaluation
    scheduler. Beyond loopback it refuses to start unless the webhook and the
    API are authenticated, or --allow-unauthenticated is given.

    Example: TWILIO_AUTH_TOKEN=... ADHERENCE_API_TOKEN=... adherence serve --host 0.0.0.0
    """
    from .. import logs
    from ..engine import Engine

    logs.setup(config.log_level, log_format)
    host = host or config.server_host
    port = config.server_port if port is None else port
    threads = threads or config.server_threads
    fronts = config.server_front_processes if front_processes is None else front_processes
    missing = unauthenticated_surfaces(config)
    if missing and not _is_loopback(host) and not (allow_unauthenticated or config.allow_unauthenticated):
        raise click.ClickException(
            f"refusing to listen on {host} with no authentication for " + " and ".join(missing)
            + "; or pass --allow-unauthenticated if something in front of it authenticates"
        )
    try:
        engine = Engine(config, listen_first=True)  # bind first: live state loads in the background
        if engine.store.read_only:
            engine.store.require_writable()  # raises, naming the file: serve journals every request
    except AdherenceError as exc:
        raise fail(exc) from None
    except sqlite3.DatabaseError as exc:  # damage the start-up probe did not see, met while loading
        raise click.ClickException(f"database {config.database} is corrupted ({exc}): {RESTORE_ADVICE}") from None
    if engine.store.corruption:  # live state loads after binding: refuse now rather than serve a damaged file
        engine.close()
        raise click.ClickException(f"database {config.database} is corrupted ({engine.store.corruption}): "
                                   f"{RESTORE_ADVICE}")
    def load_then_evaluate() -> None:
        try:
            engine.load_state_now()
        except Exception:  # the server keeps journaling; /health says it is still starting
            if not engine.closed:
                logging.getLogger("adherence").exception("could not build live state from the journal")
            return
        gc.freeze()  # the millions of snapshots just built are never garbage: keep the collector off them
        engine.start_scheduler()

    shown = f"[{host}]" if ":" in host else host

    def listening(bound_port: int) -> None:
        threading.Thread(target=load_then_evaluate, name="adherence-start", daemon=True).start()
        extra = f", {fronts} front processes" if fronts else ""
        click.echo(f"adherence: listening on http://{shown}:{bound_port} (database {config.database}{extra})", err=True)
        if missing:
            click.echo("adherence: warning: no authentication for " + " and ".join(missing), err=True)

    if fronts:
        from ..web.link import run_with_fronts

        try:
            run_with_fronts(config, engine, host=host, port=port, threads=threads, processes=fronts,
                            log_format=log_format, on_listening=listening)
        except OSError as exc:
            raise click.ClickException(f"cannot listen on {shown}:{port}: {exc.strerror or exc}") from None
        finally:
            engine.close()
            click.echo("adherence: stopped", err=True)
        return
    server = build_server(config, engine, host, port, threads)
    listening(server.effective_port)
    run_server(server, engine)


@cli.command()
@config_option
@click.option("--database", "check_database", is_flag=True,
              help="Also run PRAGMA integrity_check on the database (reads every page: slow on a big file).")
def check(config, check_database) -> None:
    """Validate the configuration, schedules and rules; exit non-zero on any error.

    Reports every problem with file and line, and warnings (e.g. a scheduled
    activity no rule covers) without failing. With --database, also checks
    every page and index of the database file.

    Example: adherence check --config config.yaml --database
    """
    from ..rules import load_rules, rule_warnings
    from ..schedules import load_folder

    problems: list[str] = []
    warnings: list[str] = []
    click.echo(f"config {config.path}: ok")
    loaded = load_folder(config.schedules, config.timezone, config.time_off)
    schedule = loaded.schedule  # every file that loads, as serve would use them
    warnings += list(dict.fromkeys(str(w) for w in loaded.warnings))
    problems += [str(p) for p in loaded.problems]
    if schedule is not None:
        broken = loaded.broken
        click.echo(f"schedules {config.schedules}: " + (f"{len(broken)} file(s) in error" if broken else "ok")
                   + f" ({len(schedule.agents)} agents)")
        for st in broken:  # one line per broken file: what stays in force and whom it affects
            click.echo(f"error: {st.line()}", err=True)
    try:
        ruleset = load_rules(config.rules)
        click.echo(f"rules {config.rules}: ok ({len(ruleset.rules)} rules)")
        if schedule is not None:
            warnings += [str(w) for w in rule_warnings(ruleset, schedule.activities())]
    except AdherenceError as exc:
        problems += exc.messages
    if config.notifications is not None:
        from ..notify.config import load_notifications

        try:
            notes = load_notifications(config.notifications, tz=config.timezone, public_url=config.server_public_url)
            click.echo(f"notifications {config.notifications}: ok ({len(notes.channels)} channels, "
                       f"{len(notes.routes)} routes)")
            known = {r.name for r in ruleset.rules} if "ruleset" in locals() else None
            for route in notes.routes:
                for name in route.rules if known is not None else ():
                    if name not in known:
                        warnings.append(f"{config.notifications}: route {route.name!r} names rule {name!r}, "
                                        f"which no rule file defines")
        except AdherenceError as exc:
            problems += exc.messages
    if check_database:
        problems += _check_database(config)
    for w in warnings:
        click.echo(f"warning: {w}", err=True)
    if problems:
        for p in problems:
            click.echo(f"error: {p}", err=True)
        raise click.ClickException(f"{len(problems)} error(s)")


def _check_database(config) -> list[str]:
    """``PRAGMA integrity_check`` on the configured database, read-only: its problems, each naming the file."""
    from ..store import check_file

    if not config.database.exists():
        click.echo(f"database {config.database}: not created yet (serve creates it)")
        return []
    result = check_file(config.database)
    if result == ["ok"]:
        click.echo(f"database {config.database}: ok")
        return []
    return [f"database {config.database}: {line}" for line in result] + [
        f"database {config.database} is corrupted: {RESTORE_ADVICE}"]


def _envelopes(path: Path):
    """Yield (line number or None, raw) for each envelope: a ``.json`` file is one
    JSON value (an envelope or a list of them); any other file is JSON lines."""
    if path.suffix.lower() == ".json":
        data = path.read_bytes()
        try:
            value = json.loads(data)
        except ValueError:
            yield None, data  # rejected with the parser's message
            return
        for item in value if isinstance(value, list) else [value]:
            yield None, item
        return
    with open(path, "rb") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                yield n, line


EVENT_BATCH = 1000  # TaskRouter events a transaction in ``replay`` (RTA records go by the time a transaction takes)
DEFLATER_FROM_BYTES = 8 << 20  # ``replay`` of this much or more: a process of its own deflates (its start ~0.1 s)


@cli.command()
@config_option
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--batch", default=10_000, show_default=True,
              help="Records read before they are written (at most this many a transaction; TaskRouter events: "
                   "1,000 at most).")
@click.option("--transaction-ms", default=round(WRITE_BUDGET_S * 1000), show_default=True, type=click.IntRange(1),
              help="A transaction of records takes about this long at most (a running service's webhooks wait "
                   "for the writer meanwhile).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def replay(config, files, batch, transaction_ms, quiet) -> None:
    """Ingest recorded feeds through the same code as the webhooks.

    FILES hold one request body a line (or are JSON files: one body, or a
    list of them), in any source's format, told apart by shape: WFM RTA
    envelopes; Event Streams exports (CloudEvents, one or a JSON list a
    line); workspace callback captures (the form-encoded body, or its fields
    as a JSON object); TaskRouter Events resource instances or pages.
    Duplicates are skipped; malformed lines are kept in the rejected table
    and reported with their line number. A running service picks replayed
    records up at its next evaluation tick.

    Example: adherence replay feed.jsonl events.jsonl --config config.yaml
    """
    from ..clock import SystemClock
    from ..feed import parse_body, parse_envelope
    from ..journal import Counts, Journal
    from ..journal_format import Deflater
    from ..sources.files import RTA, classify, parse_items
    from ..store import Store

    store = Store(config.database)
    store.bulk_load()
    journal = Journal(store, None)  # journal only: this process keeps no live state
    clock = SystemClock()
    total = Counts()
    bad_lines: list[str] = []
    size = sum(f.stat().st_size for f in files)
    if size >= DEFLATER_FROM_BYTES:  # records are compressed in a process of their own (the other core)
        journal.deflater = Deflater()
    pending: list = []
    pending_records = 0
    pending_events: list = []  # TaskRouter events, journaled in batches (a late one re-derives what follows)
    pending_kept: list = []
    unshown = 0

    def flush():
        nonlocal pending, pending_records, pending_events, pending_kept
        if pending:
            total.add(journal.ingest_parsed(pending, budget_s=transaction_ms / 1000))
        if pending_events or pending_kept:
            total.add(journal.ingest_events(pending_events, clock.now_ms(), pending_kept, "application/json", "replay"))
        pending, pending_records, pending_events, pending_kept = [], 0, [], []

    # what a replay reads makes no reference cycles: the collector would only walk the records held, again
    # and again (~17 % of the time)
    gc.disable()
    try:
        with click.progressbar(length=size, label="replaying", file=sys.stderr, hidden=quiet) as bar:
            for f in files:
                for lineno, raw in _envelopes(f):
                    received = clock.now_ms()
                    where = f"{f}:{lineno}" if lineno else str(f)
                    try:
                        if isinstance(raw, (bytes, str)) and raw.lstrip()[:1] not in (b"{", b"[", "{", "["):
                            kind, value = classify(raw)  # a form-encoded callback capture
                        else:
                            # parsed once: the envelope check below takes the value
                            kind, value = classify(parse_body(raw) if isinstance(raw, (bytes, str)) else raw)
                        if kind != RTA:
                            evs, kept = parse_items(value, received)
                            pending_events.extend(evs)
                            pending_kept.extend((body, f"{where}: {reason}", k) for body, reason, k in kept)
                            bad_lines.extend(f"{where}: {reason}" for _, reason, k in kept if k == "rejected")
                            pending_records += len(value)
                            if pending_records >= min(batch, EVENT_BATCH):  # (one transaction a batch of events)
                                flush()
                            if isinstance(raw, bytes):
                                unshown += len(raw)
                            continue
                        parsed = parse_envelope(value, received)
                    except FeedError as exc:
                        body = raw if isinstance(raw, bytes) else json.dumps(raw).encode()
                        journal.reject_body(body, f"{where}: {exc}", received, "application/json", "replay")
                        bad_lines.append(f"{where}: {exc}")
                        total.rejected += 1
                        continue
                    pending.append((parsed, received))
                    pending_records += len(parsed.records) + len(parsed.rejected)
                    if pending_records >= batch:
                        flush()
                    if isinstance(raw, bytes):
                        unshown += len(raw)
                        if unshown >= 1 << 20:  # the bar moves by the megabyte: cheaper than by the line
                            bar.update(unshown)
                            unshown = 0
                flush()
            bar.update(size)
    finally:
        gc.enable()
        if journal.deflater is not None:
            journal.deflater.close()
    store.close()
    extra = "".join(f", {name} {n}" for name, n in (("ignored", total.ignored), ("corrected", total.corrected)) if n)
    click.echo(f"accepted {total.accepted}, duplicates {total.duplicates}, rejected {total.rejected}{extra}")
    for line in bad_lines[:20]:
        click.echo(f"rejected: {line}", err=True)
    if len(bad_lines) > 20:
        click.echo(f"... and {len(bad_lines) - 20} more rejected lines", err=True)


def _engine_at(config, at: str | None):
    from ..clock import FixedClock, SystemClock
    from ..engine import Engine

    clock = SystemClock()
    if at:
        try:
            clock = FixedClock(at)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--at") from None
    try:
        # no live state: the evaluator reads timelines from the journal (results are a function of it)
        engine = Engine(config, clock, load_state=False)
    except AdherenceError as exc:
        raise fail(exc) from None
    try:
        engine.store.require_writable()  # these verbs write results: say so now, not halfway
    except AdherenceError as exc:
        engine.close()
        raise fail(exc) from None
    return engine


@cli.command()
@config_option
@click.option("--at", help="Evaluate as of this ISO-8601 time (default now); records after it are ignored.")
def evaluate(config, at) -> None:
    """Run the evaluator once, as of --at (default now), and store the results.

    Example: adherence evaluate --at 2026-11-25T15:00:00Z
    """
    engine = _engine_at(config, at)
    try:
        if engine.rules.current is None or engine.schedules.current is None:
            raise click.ClickException("cannot evaluate: " + "; ".join(engine.rules.errors + engine.schedules.errors))
        stats = engine.runner.tick()
    finally:
        engine.close()
    d = stats.as_dict()
    click.echo(f"evaluated {d['agents']} agent(s) as of {d['at']} in {d['duration_ms']} ms: "
               f"{d['exceptions_written']} exception change(s), {d['days_written']} agent-day(s) updated")


@cli.command()
@config_option
@click.option("--from", "first", help="First day (YYYY-MM-DD).")
@click.option("--to", "last", help="Last day (YYYY-MM-DD).")
@click.option("--stale", is_flag=True,
              help="Only the days computed with other schedules or rules than the files now in force "
                   "(within --from/--to when given).")
@click.option("--at", help="Treat this ISO-8601 time as now (default now).")
def recompute(config, first, last, stale, at) -> None:
    """Rebuild exceptions and adherence for a range of days from the journal.

    Use it after fixing a schedule or a rule: days not yet final (yesterday
    and today) follow an edit by themselves, older days are reported stale
    until recomputed. Exceptions keep their ids and approvals when they
    still occur.

    Example: adherence recompute --from 2026-11-02 --to 2026-11-06
    (or adherence recompute --stale)
    """
    from ..timeutil import parse_date

    if not stale and not (first and last):
        raise click.UsageError("give --from and --to, or --stale")
    try:
        d1 = parse_date(first) if first else None
        d2 = parse_date(last) if last else d1
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if d1 and d2 and d1 > d2:
        raise click.BadParameter(f"--from {d1} is after --to {d2}")
    engine = _engine_at(config, at)
    try:
        if engine.rules.current is None or engine.schedules.current is None:
            raise click.ClickException("cannot recompute: " + "; ".join(engine.rules.errors + engine.schedules.errors))
        from ..retention import check_recompute

        pairs = None
        if stale:
            pairs = engine.runner.stale_days(d1, d2)
            if not pairs:
                click.echo("no stale days: every stored day matches the schedules and rules in force")
                return
            days = sorted({d for _, d in pairs})
            d1, d2 = parse_date(days[0]), parse_date(days[-1])
        try:
            check_recompute(engine, d1)
        except AdherenceError as exc:
            raise fail(exc) from None
        stats = engine.runner.recompute(d1, d2, pairs=pairs)
    finally:
        engine.close()
    d = stats.as_dict()
    what = f"{len(pairs)} stale agent-day(s) between {d1} and {d2}" if pairs else f"{d1}..{d2}"
    click.echo(f"recomputed {what} for {d['agents']} agent(s) in {d['duration_ms']} ms: "
               f"{d['exceptions_written']} exception change(s), {d['days_written']} agent-day(s) written")
