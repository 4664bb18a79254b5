"""Options and helpers shared by every CLI verb."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click

from ..config import Config, load_config
from ..errors import AdherenceError


def config_path_option(help: str = "Configuration file."):
    """``--config PATH`` (default ./config.yaml, or $ADHERENCE_CONFIG) as a ``config_path`` kwarg, unloaded."""
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default="config.yaml",
        show_default=True,
        envvar="ADHERENCE_CONFIG",
        help=help,
    )


def config_option(f):
    """``--config PATH`` (default ./config.yaml), loaded into ``config`` kwarg."""

    @config_path_option()
    @functools.wraps(f)
    def wrapper(*args, config_path: Path, **kwargs):
        kwargs["config"] = load_config_or_fail(config_path)
        return f(*args, **kwargs)

    return wrapper


def format_option(choices=("table", "csv", "json"), default="table"):
    return click.option(
        "--format", "fmt", type=click.Choice(list(choices)), default=default, show_default=True, help="Output format."
    )


def load_config_or_fail(path: Path) -> Config:
    try:
        return load_config(path)
    except AdherenceError as exc:
        raise click.ClickException("invalid configuration:\n  " + "\n  ".join(exc.messages)) from None


def fail(exc: AdherenceError) -> click.ClickException:
    """Turn a domain error into a CLI error listing every problem."""
    msgs = exc.messages
    if len(msgs) == 1:
        return click.ClickException(msgs[0])
    return click.ClickException(f"{len(msgs)} problems:\n  " + "\n  ".join(msgs))


def print_table(rows: list[dict], columns: list[str]) -> None:
    """Plain aligned text table on stdout."""
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip())
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())


def print_json(data) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
