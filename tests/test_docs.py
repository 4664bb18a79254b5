"""Docs as contracts: every CLI verb and HTTP endpoint is documented, every command has help."""

from __future__ import annotations

import re

import click
import pytest
from click.testing import CliRunner

from adherence.cli import cli

from conftest import REPO

README = (REPO / "README.md").read_text()


def _commands(group: click.Group, prefix=()):
    for name, cmd in sorted(group.commands.items()):
        path = prefix + (name,)
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, path)
        else:
            yield path, cmd


COMMANDS = list(_commands(cli))


@pytest.mark.parametrize("path,cmd", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_is_in_the_readme_with_help_and_an_example(path, cmd):
    assert f"adherence {' '.join(path)}" in README
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0
    assert "Example:" in (cmd.help or ""), f"{' '.join(path)} has no Example: in its help"
    if path[0] not in ("rules",) and not (len(path) > 1 and path[0] == "rules"):
        assert "--config" in result.output


def test_the_design_verbs_exist():
    names = {" ".join(p) for p, _ in COMMANDS}
    for verb in ["serve", "demo", "check", "replay", "evaluate", "recompute", "report", "schedule show",
                 "rules test", "simulate"]:
        assert verb in names


def test_every_http_endpoint_is_in_the_readme(app):
    rules = [r for r in app.url_map.iter_rules() if r.endpoint != "static" and not r.rule.startswith("/static")]
    assert rules
    readme = re.sub(r"<[^>]+>", "<id>", README)
    for rule in rules:
        path = re.sub(r"<[^>]+>", "<id>", rule.rule)
        assert f"{path}`" in readme or f"{path}?" in readme or f"{path} " in readme, (
            f"{rule.rule} is not documented in README.md")


def test_readme_quick_start_is_two_commands():
    block = README.split("## Quick start", 1)[1]
    assert "pip install -e . && adherence demo" in block
    assert "pip install -c requirements/test.lock -e '.[test]' && python -m pytest" in block
    assert "python3 -m pytest" in (REPO / ".ci" / "run").read_text()
