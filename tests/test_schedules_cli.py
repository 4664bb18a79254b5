"""``adherence schedule show``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from adherence.cli import cli

REPO = Path(__file__).resolve().parent.parent


def setup(tmp_path):
    shutil.copytree(REPO / "schedules", tmp_path / "schedules")
    (tmp_path / "config.yaml").write_text("timezone: America/New_York\nschedules: schedules\n")
    return str(tmp_path / "config.yaml")


def run(*args):
    return CliRunner().invoke(cli, ["schedule", "show", *args])


def test_show_json_lists_utc_segments(tmp_path):
    cfg = setup(tmp_path)
    r = run("alice", "--date", "2026-11-25", "--format", "json", "--config", cfg)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == [
        {"start": "2026-11-25T18:00:00Z", "end": "2026-11-25T22:00:00Z", "activity": "Available"},
        {"start": "2026-11-25T22:00:00Z", "end": "2026-11-25T22:30:00Z", "activity": "Lunch"},
        {"start": "2026-11-25T22:30:00Z", "end": "2026-11-26T02:00:00Z", "activity": "Available"},
    ]


def test_show_by_worker_sid_over_a_range_as_table_with_local_and_utc(tmp_path):
    cfg = setup(tmp_path)
    r = run("WK3123456789abcdef0123456789abcdef", "--from", "2026-11-24", "--to", "2026-11-25", "--config", cfg)
    assert r.exit_code == 0, r.output
    assert "dave" in r.output and "2026-11-24 22:00 EST" in r.output and "2026-11-25T03:00:00Z" in r.output
    assert r.output.count("Lunch") == 2


def test_show_time_off_day_in_table(tmp_path):
    r = run("bob", "--date", "2026-11-27", "--config", setup(tmp_path))
    assert r.exit_code == 0 and "PTO: time off" in r.output


def test_show_default_date_is_today(tmp_path):
    r = run("erin", "--config", setup(tmp_path))
    assert r.exit_code == 0 and "America/Chicago" in r.output


def test_show_errors_are_clear_and_never_tracebacks(tmp_path):
    cfg = setup(tmp_path)
    cases = [
        (("zed", "--config", cfg), "unknown agent 'zed'"),
        (("alice", "--date", "2026-13-01", "--config", cfg), "--date: expected a date as YYYY-MM-DD"),
        (("alice", "--date", "2026-11-25", "--from", "2026-11-25", "--config", cfg), "either --date or --from"),
        (("alice", "--from", "2026-11-25", "--to", "2026-11-01", "--config", cfg), "is before"),
    ]
    for args, text in cases:
        r = run(*args)
        assert r.exit_code == 1 and text in r.output and r.exception is None or isinstance(r.exception, SystemExit)
        assert "Traceback" not in r.output
    (tmp_path / "schedules" / "roster.yaml").write_text("agents:\n  alice: {worker_sid: nope}\n")
    r = run("alice", "--config", cfg)
    assert r.exit_code == 1 and "roster.yaml:2" in r.output and "bad worker_sid" in r.output


def test_commands_have_help_with_an_example():
    for args in (["schedule", "--help"], ["schedule", "show", "--help"]):
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 0 and "Example:" in r.output
