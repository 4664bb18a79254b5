"""``adherence rules test``: run rule unit tests, like ``promtool test rules``."""

from __future__ import annotations

from pathlib import Path

import click

from ..ruletest import run_rule_tests
from . import cli
from .common import config_path_option, load_config_or_fail


@cli.group()
def rules() -> None:
    """Rule files: test them.

    Example: adherence rules test rules/tests/default.yaml
    """


@rules.command("test")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
@config_path_option("Configuration file (used to find rules/tests/ when no FILE is given).")
def test_cmd(files: tuple[Path, ...], config_path: Path) -> None:
    """Run rule tests: each case PASS or FAIL with expected vs got; exit 1 on any failure.

    With no FILE, runs every rules/tests/*.yaml (and *.yml) under the
    configuration's rules folder.

    Example: adherence rules test rules/tests/default.yaml
    """
    if not files:
        config = load_config_or_fail(config_path)
        folder = Path(config.rules) / "tests"
        files = tuple(sorted(p for p in folder.glob("*.y*ml") if p.suffix in (".yaml", ".yml")))
        if not files:
            raise click.ClickException(f"no rule test files (*.yaml) in {folder}")
    results = run_rule_tests(files)
    for case in results.cases:
        if case.passed:
            click.echo(f"PASS  {case.where}  {case.name}")
        else:
            click.secho(f"FAIL  {case.where}  {case.name}", fg="red")
            for line in case.diff:
                click.echo(f"        {line}")
    for problem in results.problems:
        click.secho(f"ERROR {problem}", fg="red", err=True)
    passed = sum(c.passed for c in results.cases)
    failed = len(results.cases) - passed
    summary = f"{passed} passed, {failed} failed"
    if results.problems:
        summary += f", {len(results.problems)} file problem(s)"
    click.echo(summary)
    if not results.ok:
        raise SystemExit(1)
