"""Rule files: loading, validation (every problem with file:line), semantics, warnings, hot reload."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from adherence.errors import RuleError
from adherence.rules import load_rules, rule_source, rule_warnings

REPO = Path(__file__).resolve().parent.parent


def write(folder: Path, name: str, text: str) -> Path:
    p = folder / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return p


def problems_of(*args) -> list:
    with pytest.raises(RuleError) as info:
        load_rules(*args)
    return info.value.problems


GOOD = """
allowed:
  Lunch: [Break, Lunch]
  Meeting: [Unavailable, Meeting]
rules:
  - name: offline
    description: Offline when scheduled
    when:
      scheduled: Available
      activity: Offline
    for: 5m
    severity: critical
    labels: {team_lead: bob}
  - name: not-allowed
    when:
      scheduled: any
      activity: not-allowed
      task: none
    for: 2m
    severity: warning
"""


def test_shipped_default_rules_load():
    rs = load_rules(REPO / "rules")
    assert {r.name for r in rs.rules} >= {"offline-when-scheduled-available", "activity-not-allowed"}
    assert rs.allowed["Lunch"] >= {"Lunch", "Break"}
    assert all(f.endswith((".yaml", ".yml")) and "/tests/" not in f for f in rs.files)


def test_load_folder(tmp_path):
    write(tmp_path, "a.yaml", GOOD)
    rs = load_rules(tmp_path)
    offline = rs.rule("offline")
    assert offline.for_ms == 300_000
    assert offline.severity == "critical"
    assert offline.labels == {"team_lead": "bob"}
    assert offline.file == str(tmp_path / "a.yaml") and offline.line == 5
    assert rs.allowed == {"Lunch": frozenset({"Break", "Lunch"}), "Meeting": frozenset({"Unavailable", "Meeting"})}
    assert rs.rule("not-allowed").severity == "warning"


def test_for_zero_and_default_severity(tmp_path):
    write(tmp_path, "a.yaml", "rules:\n  - name: x\n    when: {activity: Offline}\n    for: 0s\n")
    r = load_rules(tmp_path).rule("x")
    assert r.for_ms == 0 and r.severity == "warning" and r.description == "" and r.labels == {}


def test_folder_loads_yaml_and_yml_but_not_tests_subfolder(tmp_path):
    write(tmp_path, "a.yaml", GOOD)
    write(tmp_path, "b.yml", "rules:\n  - name: b\n    when: {activity: Break}\n    for: 1m\n")
    write(tmp_path, "tests/t.yaml", "rule_files: [../a.yaml]\ntests: [\n")  # broken, must be ignored
    write(tmp_path, "notes.txt", "not a rule file")
    rs = load_rules(tmp_path)
    assert [r.name for r in rs.rules] == ["offline", "not-allowed", "b"]
    assert len(rs.files) == 2


def test_every_problem_is_reported_with_file_and_line(tmp_path):
    f = write(
        tmp_path,
        "bad.yaml",
        """
        allowed:
          Lunch: [Break, Lunch]
        rulez: []
        rules:
          - name: one
            when:
              scheduled: Available
              activty: Offline
            for: 5 minutes
            severity: urgent
          - name: two
            when:
              task: busy
            for: 1m
            colour: red
          - name: one
            when: {activity: Offline}
            for: 1m
        """,
    )
    probs = problems_of(tmp_path)
    found = {(p.line, p.message.split(" (")[0]) for p in probs}
    assert all(p.file == str(f) for p in probs)
    assert all(p.line for p in probs)
    msgs = "\n".join(str(p) for p in probs)
    assert f"{f}:3: unknown key 'rulez'" in msgs
    assert f"{f}:8: rule 'one': unknown condition 'activty'" in msgs
    assert f"{f}:9: rule 'one': for: expected a duration" in msgs
    assert f"{f}:10: rule 'one': severity: expected one of info, warning, critical, got 'urgent'" in msgs
    assert f"{f}:13: rule 'two': when.task: unknown task state 'busy'" in msgs
    assert f"{f}:15: unknown rule key 'colour'" in msgs
    # one problem per mistake (the invalid first 'one' is not registered, so no duplicate report)
    assert len(found) == len(probs) == 6


def test_duplicate_rule_name_names_both_places(tmp_path):
    a = write(tmp_path, "a.yaml", "rules:\n  - name: x\n    when: {activity: Offline}\n    for: 1m\n")
    b = write(tmp_path, "b.yaml", "rules:\n  - name: y\n    when: {activity: Break}\n    for: 1m\n  - name: x\n    when: {activity: Break}\n    for: 1m\n")
    (p,) = problems_of(tmp_path)
    assert p.file == str(b) and p.line == 5
    assert f"{a}:2" in p.message and "duplicate rule name 'x'" in p.message


def test_allowed_conflict_across_files(tmp_path):
    a = write(tmp_path, "a.yaml", "allowed:\n  Lunch: [Lunch]\nrules:\n  - name: x\n    when: {activity: Offline}\n    for: 1m\n")
    b = write(tmp_path, "b.yaml", "allowed:\n  Break: [Break]\n  Lunch: [Break]\n")
    (p,) = problems_of(tmp_path)
    assert (p.file, p.line) == (str(b), 3)
    assert f"{a}:2" in p.message


def test_allowed_maps_merge(tmp_path):
    write(tmp_path, "a.yaml", "allowed:\n  Lunch: [Lunch]\nrules:\n  - name: x\n    when: {activity: Offline}\n    for: 1m\n")
    write(tmp_path, "b.yaml", "allowed:\n  Break: [Break, Lunch]\n")
    rs = load_rules(tmp_path)
    assert rs.allowed == {"Lunch": frozenset({"Lunch"}), "Break": frozenset({"Break", "Lunch"})}


@pytest.mark.parametrize(
    "text, line, fragment",
    [
        ("rules: []\n", 1, "rules: expected a non-empty list"),
        ("rules:\n", 1, "rules: expected a non-empty list"),
        ("", 1, "empty rule file"),
        ("- name: x\n", 1, "expected a mapping"),
        ("allowed: {Lunch: [Lunch]}\n", None, "no rules defined"),
        ("rules:\n  - name: x\n    for: 1m\n", 2, "missing `when:`"),
        ("rules:\n  - name: x\n    when: {activity: Offline}\n", 2, "missing `for:`"),
        ("rules:\n  - when: {activity: Offline}\n    for: 1m\n", 2, "needs a `name:`"),
        ("rules:\n  - name: x\n    when: {}\n    for: 1m\n", 3, "when: expected a mapping of conditions"),
        ("rules:\n  - name: x\n    when: {activity: Offline}\n    for: 300\n", 4, "for: expected a duration"),
        ("rules:\n  - name: x\n    when: {activity: Offline}\n    for: -5m\n", 4, "for: expected a duration"),
        ("rules:\n  - name: x\n    when: {task: [active, idle]}\n    for: 1m\n", 3, "unknown task state 'idle'"),
        ("rules:\n  - name: x\n    when: {scheduled: not-allowed}\n    for: 1m\n", 3, "not-allowed applies only to `activity`"),
        ("rules:\n  - name: x\n    when: {activity: none}\n    for: 1m\n", 3, "never none"),
        ("rules:\n  - name: x\n    when: {activity: [Offline, any]}\n    for: 1m\n", 3, "cannot be inside a list"),
        ("rules:\n  - name: x\n    when: {activity: []}\n    for: 1m\n", 3, "empty list never matches"),
        ("rules:\n  - name: x\n    when: {activity: {is: Offline}}\n    for: 1m\n", 3, "expected {not: [...]}"),
        ("rules:\n  - name: x\n    when: {activity: Off}\n    for: 1m\n", 3, "quote it"),
        ("rules:\n  - name: x\n    when: {activity: Offline}\n    for: 1m\n    labels: [a]\n", 5, "labels: expected"),
        ("allowed:\n  Lunch: Lunch: x\n", 2, "invalid YAML"),
        ("allowed:\n  Lunch: []\nrules:\n  - name: x\n    when: {activity: Offline}\n    for: 1m\n", 2, "allowed.Lunch"),
        ("rules:\n  - name: x\n    name: y\n", 3, "duplicate key 'name'"),
    ],
)
def test_validation_messages(tmp_path, text, line, fragment):
    write(tmp_path, "r.yaml", text)
    probs = problems_of(tmp_path)
    assert any(fragment in p.message for p in probs), [str(p) for p in probs]
    p = next(p for p in probs if fragment in p.message)
    if line is not None:
        assert p.line == line, str(p)
        assert p.file == str(tmp_path / "r.yaml")


def test_missing_folder_and_empty_folder(tmp_path):
    assert "not found" in problems_of(tmp_path / "nope")[0].message
    (tmp_path / "empty").mkdir()
    assert "no rule files" in problems_of(tmp_path / "empty")[0].message


def test_load_list_of_files(tmp_path):
    a = write(tmp_path, "a.yaml", GOOD)
    assert len(load_rules([a]).rules) == 2
    assert "not found" in problems_of([a, tmp_path / "missing.yaml"])[0].message


# --------------------------------------------------------------------------- semantics of conditions


def rule_with(tmp_path, when: str, allowed: str = ""):
    write(tmp_path, "r.yaml", f"{allowed}rules:\n  - name: r\n    when: {when}\n    for: 1m\n")
    rs = load_rules(tmp_path)
    r = rs.rule("r")
    return lambda sched, act, task="none", team=None: r.holds(sched, act, task, team, rs.allowed)


def test_omitted_and_any_match_everything(tmp_path):
    h = rule_with(tmp_path, "{activity: Offline}")
    assert h(None, "Offline") and h("Available", "Offline", "active", "t1")
    assert not h("Available", "Available")
    h = rule_with(tmp_path, "{scheduled: any, activity: Offline, task: any, team: any}")
    assert h(None, "Offline") and h("Lunch", "Offline", "wrapping", "t1")


def test_none_values(tmp_path):
    h = rule_with(tmp_path, "{scheduled: none, team: none}")
    assert h(None, "Available") and not h("Available", "Available") and not h(None, "Available", team="t1")
    h = rule_with(tmp_path, "{scheduled: {not: [none]}, task: none}")
    assert h("Break", "Offline") and not h(None, "Offline") and not h("Break", "Offline", "active")
    h = rule_with(tmp_path, "{scheduled: [Available, none]}")
    assert h(None, "x") and h("Available", "x") and not h("Lunch", "x")


def test_lists_and_not(tmp_path):
    h = rule_with(tmp_path, "{activity: {not: [Available, Offline]}, task: [active, wrapping], team: [t1, t2]}")
    assert h("Available", "Break", "active", "t1")
    assert not h("Available", "Offline", "active", "t1")
    assert not h("Available", "Break", "reserved", "t1")
    assert not h("Available", "Break", "active", "t3")
    assert not h("Available", "Break", "active", None)
    h = rule_with(tmp_path, "{activity: {not: Offline}}")  # a single name inside not
    assert h(None, "Available") and not h(None, "Offline")


def test_not_allowed(tmp_path):
    h = rule_with(tmp_path, "{activity: not-allowed}", "allowed:\n  Lunch: [Break, Lunch]\n")
    assert not h(None, "Offline")  # unscheduled: not-allowed is false
    assert not h("Lunch", "Break") and not h("Lunch", "Lunch")
    assert h("Lunch", "Available")
    # no allowed entry: only the same-named activity satisfies it
    assert not h("Training", "Training")
    assert h("Training", "Unavailable")


def test_describe(tmp_path):
    write(tmp_path, "r.yaml", GOOD)
    rs = load_rules(tmp_path)
    assert rs.rule("offline").describe() == "scheduled=Available activity=Offline for 5m00s"


# --------------------------------------------------------------------------- warnings


def test_rule_warnings_name_unused_scheduled_activities(tmp_path):
    f = write(
        tmp_path,
        "r.yaml",
        """
        allowed:
          Lunch: [Lunch]
          Trainng: [Training]
        rules:
          - name: a
            when:
              scheduled: [Available, Meting, none]
              activity: Offline
            for: 1m
          - name: b
            when: {scheduled: {not: [Lunch]}}
            for: 1m
          - name: c
            when: {scheduled: any}
            for: 1m
        """,
    )
    warnings = rule_warnings(load_rules(tmp_path), {"Available", "Lunch", "Meeting", "Training"})
    text = [str(w) for w in warnings]
    assert len(warnings) == 2, text
    assert text[0].startswith(f"{f}:3: allowed.Trainng") and "did you mean 'Training'" in text[0]
    assert text[1].startswith(f"{f}:7: rule 'a': scheduled activity 'Meting'") and "'Meeting'" in text[1]
    assert rule_warnings(load_rules(tmp_path), {"Available", "Lunch", "Meeting", "Trainng", "Meting"}) == []


def test_default_rules_have_no_warnings_for_the_default_activities():
    rs = load_rules(REPO / "rules")
    acts = {"Available", "Break", "Lunch", "Meeting", "Training"}
    assert rule_warnings(rs, acts) == []


# --------------------------------------------------------------------------- hot reload


def test_rule_source_reloads_and_keeps_last_good(tmp_path):
    f = write(tmp_path, "a.yaml", GOOD)
    src = rule_source(SimpleNamespace(rules=tmp_path))
    assert src.check() is True
    first = src.current
    assert [r.name for r in first.rules] == ["offline", "not-allowed"]
    assert src.check() is False  # nothing changed

    write(tmp_path, "a.yaml", GOOD.replace("for: 5m", "for: 5 minutes"))
    os.utime(f, ns=(1, 1))  # make sure the change is seen even within one mtime tick
    assert src.check() is False
    assert src.current is first  # broken edit: the last good rules stay in force
    assert src.errors and "a.yaml:10" in src.errors[0]
    assert src.status()["ok"] is False

    write(tmp_path, "a.yaml", GOOD.replace("for: 5m", "for: 7m"))
    os.utime(f, ns=(2, 2))
    assert src.check() is True
    assert src.current.rule("offline").for_ms == 420_000
    assert src.errors == []


def test_rule_source_ignores_the_tests_folder(tmp_path):
    write(tmp_path, "a.yaml", GOOD)
    src = rule_source(SimpleNamespace(rules=tmp_path))
    assert src.check() is True
    write(tmp_path, "tests/t.yaml", "broken: [")
    assert src.check() is False
    assert src.errors == []


def test_rule_files_reload_on_edit_but_not_on_edits_of_their_tests(tmp_path):
    import os
    from types import SimpleNamespace

    from adherence.rules import rule_source

    folder = tmp_path / "rules"
    (folder / "tests").mkdir(parents=True)
    rules = folder / "r.yaml"
    rules.write_text("rules:\n  - name: a\n    when: {activity: Offline}\n    for: 1m\n    severity: info\n")
    case = folder / "tests" / "t.yaml"
    case.write_text("tests: []\n")
    source = rule_source(SimpleNamespace(rules=folder))
    assert source.check() is True
    case.write_text("tests: []  # edited\n")
    assert source.check() is False  # a rule test is not a rule
    rules.write_text(rules.read_text().replace("1m", "2m"))
    os.utime(rules, ns=(1, 1))  # a different mtime whatever the file system's resolution
    assert source.check() is True
    assert source.version == 2
