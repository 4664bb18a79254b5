"""Core verbs: serve, check, replay, evaluate, recompute."""

from __future__ import annotations

import click

from . import cli
from .common import config_option


@cli.command()
@config_option
def check(config) -> None:
    """Validate the configuration, schedules and rules; exit non-zero on any error.

    Example: adherence check --config config.yaml
    """
    click.echo(f"config {config.path}: ok")
