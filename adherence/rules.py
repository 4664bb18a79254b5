"""Rule files: load, validate, merge (like Prometheus' ``rulefmt``).

A rule file (``rules/*.yaml``) has an ``allowed`` map (scheduled activity →
actual activities that satisfy it) and a ``rules`` list. Several files merge
into one :class:`RuleSet`. The loader is strict and collects *every* problem
(unknown keys, bad durations, duplicate names, ...) with file and line before
failing, and a hot reload swaps in a new set only when every file is valid.

Each rule's ``when`` conditions are compiled once into :class:`Condition`
values (frozensets), so checking a state is a few set look-ups.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from .errors import Problem, RuleError
from .model import TASK_STATES
from .reload import Reloadable, folder_fingerprint
from .timeutil import format_duration, parse_duration
from .yamlfile import YamlSyntaxError, load_file

SEVERITIES = ("info", "warning", "critical")
RULE_PATTERNS = ("*.yaml", "*.yml")
CONDITION_FIELDS = ("scheduled", "activity", "task", "team")
TOP_KEYS = ("allowed", "rules")
RULE_KEYS = ("name", "description", "when", "for", "severity", "labels", "impact")
DEFAULT_SEVERITY = "warning"
# What a rule's (or an allowed entry's) time does to adherence: ``out`` counts against it; ``neutral`` counts
# neither way and leaves the denominator (Calabrio's In/Out/Neutral, Genesys' ignored categories).
IMPACTS = ("out", "neutral")
ALLOWED_KEYS = ("activities", "impact")

# Condition modes
ANY = "any"
IN = "in"
NOT_IN = "not-in"
NOT_ALLOWED = "not-allowed"


@dataclass(frozen=True)
class Condition:
    """One compiled ``when`` condition.

    ``values`` holds names; for ``scheduled`` and ``team`` the planner's
    ``none`` is stored as ``None`` (unscheduled / no team), for ``task`` it is
    the task state ``"none"``.
    """

    field: str
    mode: str  # ANY, IN, NOT_IN, NOT_ALLOWED
    values: frozenset = frozenset()
    line: int | None = None

    def matches(self, value: Any) -> bool:
        if self.mode == ANY:
            return True
        if self.mode == IN:
            return value in self.values
        if self.mode == NOT_IN:
            return value not in self.values
        raise AssertionError(self.mode)  # NOT_ALLOWED needs context: see Rule.holds

    def describe(self) -> str:
        if self.mode in (ANY, NOT_ALLOWED):
            return self.mode
        names = sorted("none" if v is None else str(v) for v in self.values)
        text = names[0] if len(names) == 1 else "[" + ", ".join(names) + "]"
        return f"{{not: {text}}}" if self.mode == NOT_IN else text


def is_allowed(scheduled: str | None, activity: str, allowed: Mapping[str, frozenset[str]]) -> bool:
    """True when ``activity`` satisfies ``scheduled`` (unscheduled: anything goes)."""
    if scheduled is None:
        return True
    ok = allowed.get(scheduled)
    if ok is None:
        return activity == scheduled
    return activity in ok


@dataclass(frozen=True)
class Rule:
    """A named condition that must hold continuously for ``for_ms`` to be an exception."""

    name: str
    description: str
    conditions: tuple[Condition, ...]  # only the fields the planner wrote; omitted = any
    for_ms: int
    severity: str
    labels: dict
    file: str
    line: int
    impact: str = "out"

    def condition(self, field_name: str) -> Condition:
        for c in self.conditions:
            if c.field == field_name:
                return c
        return Condition(field_name, ANY)

    def holds(
        self,
        scheduled: str | None,
        activity: str,
        task: str,
        team: str | None,
        allowed: Mapping[str, frozenset[str]],
    ) -> bool:
        """Does the condition hold for this (scheduled activity, actual state)?"""
        for c in self.conditions:
            if c.field == "activity" and c.mode == NOT_ALLOWED:
                if scheduled is None or is_allowed(scheduled, activity, allowed):
                    return False
                continue
            f = c.field
            value = scheduled if f == "scheduled" else activity if f == "activity" else task if f == "task" else team
            if not c.matches(value):
                return False
        return True

    def describe(self) -> str:
        """``scheduled=Available activity=[Offline, Unknown] for 5m`` — for messages."""
        parts = [f"{c.field}={c.describe()}" for c in self.conditions]
        return " ".join(parts) + f" for {format_duration(self.for_ms) if self.for_ms else '0s'}"


@dataclass(frozen=True)
class RuleSet:
    """Every rule and the merged ``allowed`` map from a set of rule files."""

    allowed: dict[str, frozenset[str]]
    rules: tuple[Rule, ...]
    files: tuple[str, ...] = ()
    # where each ``allowed`` key was written: activity -> (file, line)
    allowed_sources: dict = field(default_factory=dict, compare=False, repr=False)
    # scheduled activities whose whole scheduled time is neutral (an ``allowed`` entry with ``impact: neutral``)
    neutral_scheduled: frozenset = frozenset()
    # evaluator cache: team -> {(scheduled, activity, task): bitmask of rules that hold}
    _masks: dict = field(default_factory=dict, compare=False, repr=False, hash=False)

    def rule(self, name: str) -> Rule:
        for r in self.rules:
            if r.name == name:
                return r
        raise KeyError(name)

    def mask_table(self, team: str | None) -> dict:
        """The (scheduled, activity, task) → rule bitmask cache for one team."""
        table = self._masks.get(team)
        if table is None:
            if len(self._masks) > 10_000:  # teams are few; guard against abuse
                self._masks.clear()
            table = self._masks[team] = {}
        return table

    def mask(self, team: str | None, scheduled: str | None, activity: str, task: str) -> int:
        """Bit i set ⇔ ``rules[i]`` holds for this state (cached)."""
        table = self.mask_table(team)
        key = (scheduled, activity, task)
        m = table.get(key)
        if m is None:
            m = 0
            for i, r in enumerate(self.rules):
                if r.holds(scheduled, activity, task, team, self.allowed):
                    m |= 1 << i
            if len(table) > 100_000:
                table.clear()
            table[key] = m
        return m


# --------------------------------------------------------------------------- loading


def _files_of(folder_or_files: Any) -> tuple[list[Path], list[Problem]]:
    if isinstance(folder_or_files, (str, os.PathLike)):
        p = Path(folder_or_files)
        if p.is_dir():
            files = sorted(x for x in p.iterdir() if x.is_file() and x.suffix in (".yaml", ".yml"))
            if not files:
                return [], [Problem("no rule files (*.yaml) in this folder", str(p))]
            return files, []
        if not p.exists():
            return [], [Problem("rule file or folder not found", str(p))]
        return [p], []
    files = [Path(f) for f in folder_or_files]
    missing = [Problem("rule file not found", str(f)) for f in files if not f.exists()]
    if not files:
        missing.append(Problem("no rule files given"))
    return files, missing


def load_rules(folder_or_files: str | os.PathLike | Iterable[str | os.PathLike]) -> RuleSet:
    """Load a folder's ``*.yaml``/``*.yml`` (not sub-folders) or the given files.

    Raises RuleError listing every problem in every file, each with file:line.
    """
    files, problems = _files_of(folder_or_files)
    allowed: dict[str, frozenset[str]] = {}
    allowed_sources: dict[str, tuple[str, int]] = {}
    neutral: set[str] = set()
    rules: list[Rule] = []
    seen: dict[str, Rule] = {}
    for path in files:
        fname = str(path)
        try:
            data = load_file(fname)
        except YamlSyntaxError as exc:
            problems.append(exc.problem)
            continue
        _parse_file(data, fname, allowed, allowed_sources, rules, seen, problems, neutral)
    if not problems and not rules:
        problems.append(Problem("no rules defined (expected a `rules:` list in at least one file)", _where(files)))
    if problems:
        raise RuleError(problems=problems)
    return RuleSet(
        allowed=allowed,
        rules=tuple(rules),
        files=tuple(str(f) for f in files),
        allowed_sources=allowed_sources,
        neutral_scheduled=frozenset(neutral),
    )


def _where(files: list[Path]) -> str | None:
    return str(files[0].parent) if files else None


def _parse_file(data, fname, allowed, allowed_sources, rules, seen, problems, neutral=None) -> None:
    if data is None:
        problems.append(Problem("empty rule file (expected `allowed:` and/or `rules:`)", fname, 1))
        return
    if not isinstance(data, dict):
        problems.append(Problem("expected a mapping with `allowed:` and/or `rules:` at the top level", fname, 1))
        return
    for key in data:
        if key not in TOP_KEYS:
            problems.append(
                Problem(f"unknown key {key!r} (expected one of: {', '.join(TOP_KEYS)})", fname, data.line_of(key))
            )
    if not any(k in data for k in TOP_KEYS):
        problems.append(Problem("expected `allowed:` and/or `rules:`", fname, data.line or 1))
    if "allowed" in data:
        _parse_allowed(data["allowed"], fname, data.line_of("allowed"), allowed, allowed_sources, problems,
                       neutral if neutral is not None else set())
    if "rules" in data:
        value = data["rules"]
        line = data.line_of("rules")
        if not isinstance(value, list) or not value:
            problems.append(Problem("rules: expected a non-empty list of rules (`- name: ...`)", fname, line))
            return
        for i, item in enumerate(value):
            rule = _parse_rule(item, fname, value.line_of(i), problems)
            if rule is None:
                continue
            first = seen.get(rule.name)
            if first is not None:
                problems.append(
                    Problem(
                        f"duplicate rule name {rule.name!r} (first defined at {first.file}:{first.line})",
                        fname,
                        rule.line,
                    )
                )
                continue
            seen[rule.name] = rule
            rules.append(rule)


def _parse_allowed(value, fname, line, allowed, allowed_sources, problems, neutral) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        problems.append(
            Problem("allowed: expected a mapping of scheduled activity → list of actual activities", fname, line)
        )
        return
    for sched, acts in value.items():
        kline = value.line_of(sched)
        if not isinstance(sched, str) or not sched.strip():
            problems.append(Problem(f"allowed: expected a scheduled activity name, got {sched!r}", fname, kline))
            continue
        impact = "out"
        if isinstance(acts, dict):  # {activities: [...], impact: neutral}
            bad = [k for k in acts if k not in ALLOWED_KEYS]
            for k in bad:
                problems.append(Problem(f"allowed.{sched}: unknown key {k!r} (expected one of: "
                                        f"{', '.join(ALLOWED_KEYS)})", fname, acts.line_of(k)))
            impact = acts.get("impact", "out")
            if impact not in IMPACTS:
                problems.append(Problem(f"allowed.{sched}.impact: expected one of {', '.join(IMPACTS)}, got {impact!r}",
                                        fname, acts.line_of("impact")))
                continue
            if bad:
                continue
            acts = acts.get("activities", [sched])
        if isinstance(acts, str):
            acts = [acts]
        if not isinstance(acts, list) or not acts or not all(isinstance(a, str) and a.strip() for a in acts):
            problems.append(
                Problem(
                    f"allowed.{sched}: expected a list of activity names, e.g. [{sched}] (quote names "
                    "such as 'On' or 'No' that YAML reads as true/false)",
                    fname,
                    kline,
                )
            )
            continue
        if sched in allowed_sources:
            f0, l0 = allowed_sources[sched]
            problems.append(
                Problem(f"allowed.{sched} is already defined at {f0}:{l0} (each activity once across files)", fname, kline)
            )
            continue
        allowed[sched] = frozenset(acts)
        allowed_sources[sched] = (fname, kline)
        if impact == "neutral":
            neutral.add(sched)


def _parse_rule(item, fname, line, problems) -> Rule | None:
    if not isinstance(item, dict):
        problems.append(Problem("expected a rule: a mapping with name, when, for, severity", fname, line))
        return None
    n0 = len(problems)
    line = item.line or line
    for key in item:
        if key not in RULE_KEYS:
            problems.append(
                Problem(f"unknown rule key {key!r} (expected one of: {', '.join(RULE_KEYS)})", fname, item.line_of(key))
            )
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        hint = " (quote it: YAML reads on/off/yes/no as true/false)" if isinstance(name, bool) else ""
        problems.append(
            Problem(f"rule needs a `name:` (text){hint}", fname, item.line_of("name") if "name" in item else line)
        )
        name = None
    else:
        name = name.strip()
    label = f"rule {name!r}: " if name else "rule: "

    description = item.get("description", "")
    if description is None:
        description = ""
    if not isinstance(description, str):
        problems.append(Problem(f"{label}description: expected text", fname, item.line_of("description")))

    if "for" not in item:
        problems.append(Problem(f"{label}missing `for:` (a duration such as 90s, 5m, 1h or 0s)", fname, line))
        for_ms = 0
    else:
        raw = item["for"]
        try:
            if isinstance(raw, int) and not isinstance(raw, bool) and raw == 0:
                for_ms = 0
            elif not isinstance(raw, str):
                raise ValueError(f"expected a duration like 90s, 5m or 1h, got {raw!r}")
            else:
                for_ms = parse_duration(raw)
        except ValueError as exc:
            problems.append(Problem(f"{label}for: {exc}", fname, item.line_of("for")))
            for_ms = 0

    severity = item.get("severity", DEFAULT_SEVERITY)
    if severity not in SEVERITIES:
        problems.append(
            Problem(
                f"{label}severity: expected one of {', '.join(SEVERITIES)}, got {severity!r}",
                fname,
                item.line_of("severity"),
            )
        )

    labels = item.get("labels") or {}
    if not isinstance(labels, dict) or not all(
        isinstance(k, str) and isinstance(v, (str, int, float)) and not isinstance(v, bool) for k, v in labels.items()
    ):
        problems.append(Problem(f"{label}labels: expected a mapping of name: text", fname, item.line_of("labels")))
        labels = {}
    labels = {k: str(v) for k, v in labels.items()}

    impact = item.get("impact", "out")
    if impact not in IMPACTS:
        problems.append(Problem(f"{label}impact: expected one of {', '.join(IMPACTS)}, got {impact!r}", fname,
                                item.line_of("impact")))

    conditions: tuple[Condition, ...] = ()
    if "when" not in item:
        problems.append(
            Problem(f"{label}missing `when:` (conditions on scheduled, activity, task, team)", fname, line)
        )
    else:
        conditions = _parse_when(item["when"], fname, item.line_of("when"), label, problems)

    if len(problems) > n0 or name is None:
        return None
    return Rule(
        name=name,
        description=description,
        conditions=conditions,
        for_ms=for_ms,
        severity=severity,
        labels=labels,
        file=fname,
        line=line,
        impact=impact,
    )


def _parse_when(when, fname, line, label, problems) -> tuple[Condition, ...]:
    if not isinstance(when, dict) or not when:
        problems.append(
            Problem(
                f"{label}when: expected a mapping of conditions ({', '.join(CONDITION_FIELDS)})",
                fname,
                getattr(when, "line", None) or line,
            )
        )
        return ()
    out = []
    for key, value in when.items():
        kline = when.line_of(key)
        if key not in CONDITION_FIELDS:
            problems.append(
                Problem(
                    f"{label}unknown condition {key!r} (expected one of: {', '.join(CONDITION_FIELDS)})",
                    fname,
                    kline,
                )
            )
            continue
        try:
            out.append(_parse_condition(key, value, kline))
        except ValueError as exc:
            problems.append(Problem(f"{label}when.{key}: {exc}", fname, kline))
    # a stable order: the one in CONDITION_FIELDS
    out.sort(key=lambda c: CONDITION_FIELDS.index(c.field))
    return tuple(out)


_EXPECT = {
    "scheduled": "a scheduled activity name, a list of names, {not: [...]}, any, or none (unscheduled)",
    "activity": "an activity name, a list of names, {not: [...]}, any, or not-allowed",
    "task": f"a task state ({', '.join(TASK_STATES)}), a list of them, {{not: [...]}}, or any",
    "team": "a team name, a list of names, {not: [...]}, any, or none (no team)",
}


def _name(fld: str, v: Any) -> Any:
    """One name from a list → its stored value; ValueError when it is not usable."""
    if not isinstance(v, str) or not v.strip():
        hint = " (quote it: YAML reads on/off/yes/no as true/false)" if isinstance(v, bool) else ""
        raise ValueError(f"expected {_EXPECT[fld]}; got {v!r}{hint}")
    v = v.strip()
    if v in (ANY, NOT_ALLOWED):
        raise ValueError(f"{v!r} cannot be inside a list; write it alone (`{fld}: {v}`)")
    if fld == "task":
        if v not in TASK_STATES:
            raise ValueError(f"unknown task state {v!r} (expected one of: {', '.join(TASK_STATES)})")
        return v
    if v == "none":
        if fld == "activity":
            raise ValueError("an activity is never none; use Offline or Unknown for a logged-out agent")
        return None
    return v


def _parse_condition(fld: str, value: Any, line: int) -> Condition:
    if isinstance(value, str) and value.strip() == ANY:
        return Condition(fld, ANY, line=line)
    if isinstance(value, str) and value.strip() == NOT_ALLOWED:
        if fld != "activity":
            raise ValueError("not-allowed applies only to `activity`")
        return Condition(fld, NOT_ALLOWED, line=line)
    if isinstance(value, dict):
        if set(value) != {"not"}:
            raise ValueError(f"expected {{not: [...]}}; got keys {', '.join(map(str, value))}")
        inner = value["not"]
        names = inner if isinstance(inner, list) else [inner]
        if not names:
            raise ValueError("{not: [...]} needs at least one name")
        return Condition(fld, NOT_IN, frozenset(_name(fld, v) for v in names), line)
    if isinstance(value, list):
        if not value:
            raise ValueError(f"an empty list never matches; expected {_EXPECT[fld]}")
        return Condition(fld, IN, frozenset(_name(fld, v) for v in value), line)
    if value is None:
        raise ValueError(f"expected {_EXPECT[fld]}; got nothing (write `none` for none)")
    return Condition(fld, IN, frozenset([_name(fld, value)]), line)


# --------------------------------------------------------------------------- warnings, reload


def rule_warnings(ruleset: RuleSet, schedule_activities: set[str]) -> list[Problem]:
    """Scheduled activities named in rules or ``allowed`` that no schedule uses (likely typos)."""
    out: list[Problem] = []
    known = set(schedule_activities)
    for act, (fname, line) in sorted(ruleset.allowed_sources.items(), key=lambda kv: (kv[1], kv[0])):
        if act not in known:
            out.append(Problem(f"allowed.{act}: no schedule uses the activity {act!r}{_hint(act, known)}", fname, line))
    for rule in ruleset.rules:
        cond = rule.condition("scheduled")
        if cond.mode not in (IN, NOT_IN):
            continue
        for act in sorted(v for v in cond.values if v is not None):
            if act not in known:
                out.append(
                    Problem(
                        f"rule {rule.name!r}: scheduled activity {act!r} is not used by any schedule{_hint(act, known)}",
                        rule.file,
                        cond.line or rule.line,
                    )
                )
    return out


def _hint(name: str, known: set[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def rule_source(config) -> Reloadable[RuleSet]:
    """A hot-reloading rule set for ``config.rules`` (the folder; ``tests/`` excluded).

    Call ``.check()`` to (re)load; ``.current`` keeps the last good RuleSet
    when an edit is broken, and ``.errors`` says what is wrong.
    """
    folder = Path(config.rules)
    return Reloadable("rules", lambda: load_rules(folder), lambda: folder_fingerprint(folder, RULE_PATTERNS, recursive=False))
