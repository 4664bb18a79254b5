"""The ``adherence`` command line: one click group, one module per area.

Each submodule registers its verbs on ``cli``; errors become
``click.ClickException`` here at the edge, never a traceback.
"""

from __future__ import annotations

import click

from .. import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="adherence")
def cli() -> None:
    """Adherence: real-time schedule adherence for Twilio Flex.

    Example: adherence serve --config config.yaml
    """


def main() -> None:
    cli()


# Register the verbs (imported for their side effect on ``cli``).
from . import backfill, core, demo, notify, ops, results, rules, schedule, simulate, timeline  # noqa: E402,F401
