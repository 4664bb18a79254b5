"""Operations verbs: purge."""

from __future__ import annotations

import click

from ..errors import AdherenceError
from . import cli
from .common import config_option, fail


@cli.command()
@config_option
@click.option("--days", type=click.IntRange(min=1), help="Keep this many days (default: retention.journal_days).")
@click.option("--vacuum", is_flag=True, help="Then VACUUM: give freed space back to the file system (locks the database while it runs).")
def purge(config, days, vacuum) -> None:
    """Delete journal and rejected rows older than N days; stored results stay.

    Each agent's last state before the horizon is kept, and the rows the
    evaluator may still read (from the day before yesterday on) are never
    deleted. Days before the horizon can no longer be recomputed. Safe while
    ``serve`` runs (small batches); ``--vacuum`` is best run off-peak.

    Example: adherence purge --days 90 --config config.yaml
    """
    from ..engine import Engine
    from ..retention import purge_journal
    from ..retention import vacuum as do_vacuum

    if days is None and not config.retention_journal_days:
        raise click.UsageError("no --days given and retention.journal_days is not set in the configuration")
    try:
        engine = Engine(config, load_state=False)
    except AdherenceError as exc:
        raise fail(exc) from None
    try:
        engine.store.require_writable()
        stats = purge_journal(engine, days)
        if vacuum:
            do_vacuum(engine)
            stats.vacuumed = True
    except AdherenceError as exc:
        raise fail(exc) from None
    finally:
        engine.close()
    d = stats.as_dict()
    click.echo(f"purged {d['journal_deleted']} journal row(s) and {d['rejected_deleted']} rejected row(s) "
               f"older than {d['horizon']} in {d['duration_ms']} ms" + (", vacuumed" if vacuum else ""))
