"""``adherence evaluate``, ``recompute`` and ``report`` from the command line."""

from __future__ import annotations

import csv
import io
import json

from click.testing import CliRunner

from adherence.cli import cli
from adherence.queries import ADHERENCE_COLUMNS, EXCEPTION_COLUMNS

from conftest import Center
from test_loop import ANN, T, mini  # noqa: F401  (fixture)


def feed_day(folder):
    c = Center(folder, T("2026-11-24 08:00"))
    c.send(ANN, T("2026-11-24 08:58"), "Available")
    c.send(ANN, T("2026-11-24 10:00"), "Offline")
    c.send(ANN, T("2026-11-24 10:20"), "Available")
    c.send(ANN, T("2026-11-24 12:00"), "Break")
    c.send(ANN, T("2026-11-24 12:15"), "Available")
    c.send(ANN, T("2026-11-24 17:00"), "Offline")
    c.engine.close()


def run(*args):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result


def test_evaluate_at_then_report_csv_json_table(mini):  # noqa: F811
    feed_day(mini)
    cfg = str(mini / "config.yaml")
    r = run("evaluate", "--config", cfg, "--at", "2026-11-24T23:00:00Z")
    assert r.exit_code == 0 and "evaluated" in r.output
    r = run("report", "exceptions", "--config", cfg, "--agent", "ann", "--format", "csv")
    assert r.exit_code == 0
    rows = list(csv.reader(io.StringIO(r.output)))
    assert rows[0] == EXCEPTION_COLUMNS
    assert [(x[4], x[9], x[10]) for x in rows[1:]] == [
        ("offline-when-scheduled-available", "2026-11-24T15:00:00Z", "2026-11-24T15:20:00Z")]
    r = run("report", "adherence", "--config", cfg, "--date", "2026-11-24", "--agent", "ann", "--format", "csv")
    rows = list(csv.reader(io.StringIO(r.output)))
    assert rows[0] == ADHERENCE_COLUMNS
    assert rows[1][:3] == ["2026-11-24", "ann", ANN] and rows[1][4] == "28800" and rows[1][6] == "1200"
    r = run("report", "adherence", "--config", cfg, "--team", "tier1", "--format", "json")
    (row,) = json.loads(r.output)
    assert row["adherence_percent"] == round((28800 - 1200) / 28800 * 100, 2)
    r = run("report", "exceptions", "--config", cfg, "--agent", "ann")
    assert "offline-when-scheduled-available" in r.output and "2026-11-24T15:00:00Z" in r.output


def test_evaluate_ignores_records_after_at(mini):  # noqa: F811
    feed_day(mini)
    cfg = str(mini / "config.yaml")
    run("evaluate", "--config", cfg, "--at", "2026-11-24T15:10:00Z")
    r = run("report", "exceptions", "--config", cfg, "--agent", "ann", "--format", "json")
    (exc,) = json.loads(r.output)
    assert exc["end"] is None and exc["status"] == "open"


def test_recompute_rebuilds_from_the_journal(mini):  # noqa: F811
    feed_day(mini)
    cfg = str(mini / "config.yaml")
    r = run("recompute", "--config", cfg, "--from", "2026-11-24", "--to", "2026-11-24", "--at", "2026-11-25T12:00:00Z")
    assert r.exit_code == 0, r.output
    r = run("report", "adherence", "--config", cfg, "--agent", "ann", "--date", "2026-11-24", "--format", "json")
    (row,) = json.loads(r.output)
    assert row["out_of_adherence_seconds"] == 1200 and row["scheduled_seconds"] == 28800


def test_report_errors_are_clear(mini):  # noqa: F811
    cfg = str(mini / "config.yaml")
    r = run("report", "adherence", "--config", cfg, "--date", "2026-13-01")
    assert r.exit_code != 0 and "date: expected a date as YYYY-MM-DD" in r.output
    r = run("report", "exceptions", "--config", cfg, "--agent", "nobody")
    assert r.exit_code != 0 and "unknown agent 'nobody'" in r.output
    r = run("report", "adherence", "--config", cfg, "--rule", "x")
    assert r.exit_code != 0 and "apply to exceptions only" in r.output
    r = run("recompute", "--config", cfg, "--from", "2026-11-25", "--to", "2026-11-24")
    assert r.exit_code != 0 and "after" in r.output
