"""Rule unit tests (``adherence rules test``): shipped tests pass, failures diff, bad files give file:line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from adherence.cli import cli
from adherence.ruletest import run_rule_tests

REPO = Path(__file__).resolve().parent.parent
SHIPPED = sorted((REPO / "rules" / "tests").glob("*.y*ml"))


def write(folder: Path, name: str, text: str) -> Path:
    p = folder / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return p


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_rule_tests_pass(path):
    results = run_rule_tests([path])
    assert results.problems == []
    assert results.cases, "a shipped test file with no cases"
    for case in results.cases:
        assert case.passed, f"{case.where} {case.name}\n" + "\n".join(case.diff)


def test_shipped_rule_tests_exist():
    assert SHIPPED


RULES = """
allowed:
  Lunch: [Lunch, Break]
rules:
  - name: offline
    when: {scheduled: Available, activity: Offline}
    for: 5m
    severity: critical
"""

CASE = """
rule_files: [rules/*.yaml]
tests:
  - name: six minutes offline
    timezone: Europe/Paris
    team: tier1
    date: 2026-11-02
    schedule:
      - 09:00-17:00 Available
    timeline:
      - 09:00 Available
      - 09:10 Offline
      - {at: 09:16, activity: Available, task: active}
    eval_time: 17:00
    exceptions:
      - {rule: offline, start: "09:10", end: "09:16", severity: critical}
    adherence:
      scheduled: 8h
      out_of_adherence_seconds: 360
      adherence_percent: 98.75
      exceptions: 1
"""


@pytest.fixture
def folder(tmp_path):
    write(tmp_path, "rules/r.yaml", RULES)
    return tmp_path


def test_passing_case(folder):
    f = write(folder, "t.yaml", CASE)
    results = run_rule_tests([f])
    assert results.ok and results.problems == []
    (case,) = results.cases
    assert case.passed and case.name == "six minutes offline" and case.where == f"{f}:3"


def test_failing_case_shows_expected_and_got(folder):
    f = write(
        folder,
        "t.yaml",
        CASE.replace('end: "09:16"', "end: open").replace("adherence_percent: 98.75", "adherence_percent: 99"),
    )
    results = run_rule_tests([f])
    assert not results.ok
    (case,) = results.failed
    text = "\n".join(case.diff)
    assert "exceptions:\n  expected:\n    offline  09:10 → open\n  got:\n    offline  09:10 → 09:16" in text
    assert "adherence_percent: expected 99, got 98.75" in text


def test_failing_detail_fields_and_durations(folder):
    f = write(
        folder,
        "t.yaml",
        CASE.replace("severity: critical}", "severity: warning, actual_activity: Offline}").replace(
            "scheduled: 8h", "scheduled: 7h"
        ),
    )
    (case,) = run_rule_tests([f]).cases
    assert case.diff == [
        "exception offline  09:10 → 09:16: severity expected 'warning', got 'critical'",
        "scheduled: expected 7h00m, got 8h00m",
    ]


def test_no_exceptions_expected_when_omitted(folder):
    text = CASE[: CASE.index("    exceptions:")]
    f = write(folder, "t.yaml", text)
    (case,) = run_rule_tests([f]).cases
    assert not case.passed
    assert case.diff[:3] == ["exceptions:", "  expected:", "    (none)"]


def test_overnight_times_and_iso(folder):
    f = write(
        folder,
        "t.yaml",
        """
        rule_files: [rules/r.yaml]
        tests:
          - name: overnight
            timezone: America/New_York
            date: 2026-11-02
            schedule:
              2026-11-02: ["22:00-06:00 Available"]
            timeline:
              - 22:00 Available
              - 2026-11-02T23:50:00-05:00 Offline
              - 2026-11-03 00:20 Available
            eval_time: 2026-11-03T12:00:00Z
            exceptions:
              - {rule: offline, start: "23:50", end: 2026-11-03 00:20}
            adherence: {scheduled: 8h, out_of_adherence: 30m, logged_in: 7h30m}
        """,
    )
    results = run_rule_tests([f])
    assert results.ok, [c.diff for c in results.cases] + [str(p) for p in results.problems]


def test_invalid_test_file_reports_every_problem_with_line(folder):
    f = write(
        folder,
        "t.yaml",
        """
        rule_files: [rules/r.yaml, nope.yaml]
        extra: 1
        tests:
          - name: bad
            timezone: Mars/Olympus
            date: 2026-11-02
            schedule:
              - 9 to 5 Available
              - 09:00-10:00 Available
              - 09:30-11:00 Lunch
            timeline:
              - 09:00 Available busy extra
              - Offline
              - {at: "09:10", activity: Offline, task: idle}
            eval_time: "25:00"
            exceptions:
              - {rule: offline, start: "09:10"}
              - {rule: offline, start: "09:10", end: open, colour: red}
            adherence: {scheduled: 8 hours, bogus: 1, adherence_percent: high}
            approve: [offline]
            surprise: true
          - name: no date
            eval_time: "10:00"
        """,
    )
    results = run_rule_tests([f])
    assert results.cases == [] and not results.ok
    got = {(p.line, p.message.split(":")[0]) for p in results.problems}
    assert all(p.file == str(f) for p in results.problems)
    lines = sorted(p.line for p in results.problems)
    text = "\n".join(str(p) for p in results.problems)
    for line, fragment in [
        (1, "'nope.yaml' not found"),
        (2, "unknown key 'extra'"),
        (5, "unknown time zone"),
        (8, "expected \"HH:MM-HH:MM Activity\""),
        (10, "Lunch overlaps Available"),
        (13, "expected \"TIME Activity"),
        (14, "unknown task state 'idle'"),
        (15, "not a time of day"),
        (17, "missing 'end'"),
        (18, "unknown key 'colour'"),
        (19, "adherence.scheduled"),
        (19, "adherence.bogus: unknown figure"),
        (19, "adherence.adherence_percent"),
        (20, "approve"),
        (21, "surprise: unknown key"),
        (22, "date: missing"),
    ]:
        assert f"{f}:{line}: " in text and any(
            p.line == line and fragment in p.message for p in results.problems
        ), (line, fragment, text)
    assert lines and got


def test_timeline_line_with_unknown_last_word_is_part_of_the_activity(folder):
    f = write(
        folder,
        "t.yaml",
        """
        rule_files: [rules/r.yaml]
        tests:
          - name: multi-word activity
            date: 2026-11-02
            schedule: ["09:00-17:00 Available"]
            timeline: ["09:00 Available", "09:10 Time Off", "09:20 Offline wrapping"]
            eval_time: "09:30"
            exceptions: [{rule: offline, start: "09:20", end: open, task_state: wrapping}]
        """,
    )
    results = run_rule_tests([f])
    assert results.ok, [c.diff for c in results.cases] + [str(p) for p in results.problems]


def test_unknown_rule_in_expectations_and_broken_rule_files(folder):
    f = write(folder, "t.yaml", CASE.replace("{rule: offline,", "{rule: ofline,"))
    (p,) = run_rule_tests([f]).problems
    assert p.line == 15 and "no rule named 'ofline'" in p.message
    write(folder, "rules/r.yaml", RULES.replace("for: 5m", "for: soon"))
    results = run_rule_tests([write(folder, "t.yaml", CASE)])
    text = [str(p) for p in results.problems]
    assert text[0].endswith("t.yaml:1: rule_files: the rules do not load:")
    assert "r.yaml:6: rule 'offline': for:" in text[1]


def test_yaml_syntax_error_and_missing_file(folder):
    f = write(folder, "t.yaml", "tests: [\n")
    (p,) = run_rule_tests([f]).problems
    assert p.file == str(f) and p.line and "invalid YAML" in p.message
    (p,) = run_rule_tests([folder / "missing.yaml"]).problems
    assert "not found" in p.message


# --------------------------------------------------------------------------- CLI


def test_cli_pass_and_fail(folder):
    good = write(folder, "good.yaml", CASE)
    bad = write(folder, "bad.yaml", CASE.replace("adherence_percent: 98.75", "adherence_percent: 50"))
    runner = CliRunner()
    r = runner.invoke(cli, ["rules", "test", str(good)])
    assert r.exit_code == 0, r.output
    assert f"PASS  {good}:3  six minutes offline" in r.output and "1 passed, 0 failed" in r.output
    r = runner.invoke(cli, ["rules", "test", str(good), str(bad)])
    assert r.exit_code == 1
    assert f"FAIL  {bad}:3  six minutes offline" in r.output
    assert "adherence_percent: expected 50, got 98.75" in r.output
    assert "1 passed, 1 failed" in r.output


def test_cli_invalid_file_is_an_error_not_a_traceback(folder):
    f = write(folder, "t.yaml", "tests: 3\n")
    r = CliRunner().invoke(cli, ["rules", "test", str(f)])
    assert r.exit_code == 1
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert f"{f}:1: rule_files" in r.output and "Traceback" not in r.output


def test_cli_defaults_to_the_configured_rules_tests_folder(folder):
    write(folder, "rules/tests/a.yaml", CASE.replace("rules/*.yaml", "../r.yaml"))
    write(folder, "config.yaml", "rules: rules\n")
    r = CliRunner().invoke(cli, ["rules", "test", "--config", str(folder / "config.yaml")])
    assert r.exit_code == 0, r.output
    assert "1 passed, 0 failed" in r.output
    (folder / "rules/tests/a.yaml").unlink()
    r = CliRunner().invoke(cli, ["rules", "test", "--config", str(folder / "config.yaml")])
    assert r.exit_code == 1 and "no rule test files" in r.output


def test_cli_runs_the_shipped_tests():
    r = CliRunner().invoke(cli, ["rules", "test", "--config", str(REPO / "config.yaml")])
    assert r.exit_code == 0, r.output
    assert " 0 failed" in r.output


def test_cli_help_has_an_example():
    r = CliRunner().invoke(cli, ["rules", "test", "--help"])
    assert r.exit_code == 0 and "Example: adherence rules test" in r.output
