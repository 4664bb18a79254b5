"""Rule unit tests, the way ``promtool test rules`` tests Prometheus rules.

A test file (``rules/tests/*.yaml``) names rule files (relative to itself)
and lists cases. Each case gives a time zone, a team, a schedule, a timeline
of actual states and an evaluation time, and the exceptions and adherence
figures it expects. Time is deterministic: nothing here reads a clock.

See ``docs/rules.md`` for the format.
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Iterable
from zoneinfo import ZoneInfo

from .errors import Problem, RuleError
from .evaluate import DayFigures, day_figures
from .policy import evaluate_worker, list_reader
from .model import TASK_STATES, Segment, Snapshot
from .rules import RuleSet, load_rules
from .timeutil import from_ms, local_midnight_ms, parse_date, parse_duration, parse_instant_ms, to_ms, zone
from .yamlfile import YamlSyntaxError, load_file

FILE_KEYS = ("rule_files", "tests")
CASE_KEYS = (
    "name",
    "timezone",
    "team",
    "date",
    "schedule",
    "timeline",
    "eval_time",
    "monitoring_from",
    "approve",
    "exceptions",
    "adherence",
)
EXCEPTION_KEYS = ("rule", "start", "end", "severity", "scheduled_activity", "actual_activity", "task_state")
DURATION_FIGURES = ("scheduled", "in_adherence", "out_of_adherence", "approved", "logged_in", "neutral")
PERCENT_FIGURES = ("adherence_percent", "conformance_percent")
FIGURE_KEYS = (
    DURATION_FIGURES + tuple(f"{k}_seconds" for k in DURATION_FIGURES) + PERCENT_FIGURES + ("exceptions",)
)
PERCENT_TOLERANCE = 0.01

_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SEGMENT = re.compile(r"^\s*(\S+)\s*-\s*(\S+)\s+(\S.*?)\s*$")


@dataclass
class CaseResult:
    """The outcome of one test case."""

    file: str
    line: int
    name: str
    passed: bool
    diff: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class RuleTestResults:
    """Every case run, and the problems that stopped files from running."""

    cases: list[CaseResult] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and all(c.passed for c in self.cases)

    @property
    def failed(self) -> list[CaseResult]:
        return [c for c in self.cases if not c.passed]

    def __iter__(self):
        return iter(self.cases)


@dataclass
class _Case:
    file: str
    line: int
    name: str
    tz: ZoneInfo
    team: str | None
    day: date
    segments: list[Segment]
    timeline: list[Snapshot]
    eval_ms: int
    approve: list[tuple[str, int, int]]  # (rule, start, line)
    exceptions: list[dict]
    adherence: dict  # figure -> (expected value, line)
    monitoring_ms: int | None = None  # None: the case's start


def run_rule_tests(files: Iterable[str | Path]) -> RuleTestResults:
    """Run every case in the given test files. Never raises for bad input: see ``.problems``."""
    results = RuleTestResults()
    for f in files:
        problems: list[Problem] = []
        parsed = _parse_test_file(Path(f), problems)
        if problems or parsed is None:
            results.problems.extend(problems)
            continue
        ruleset, cases = parsed
        for case in cases:
            results.cases.append(_run_case(case, ruleset))
    return results


# --------------------------------------------------------------------------- parsing


def _parse_test_file(path: Path, problems: list[Problem]) -> tuple[RuleSet, list[_Case]] | None:
    fname = str(path)
    if not path.exists():
        problems.append(Problem("rule test file not found", fname))
        return None
    try:
        data = load_file(fname)
    except YamlSyntaxError as exc:
        problems.append(exc.problem)
        return None
    if not isinstance(data, dict):
        problems.append(Problem("expected a mapping with `rule_files:` and `tests:`", fname, 1))
        return None
    for key in data:
        if key not in FILE_KEYS:
            problems.append(
                Problem(f"unknown key {key!r} (expected one of: {', '.join(FILE_KEYS)})", fname, data.line_of(key))
            )
    ruleset = _load_rule_files(data, path, problems)
    cases: list[_Case] = []
    tests = data.get("tests")
    if not isinstance(tests, list) or not tests:
        problems.append(
            Problem("tests: expected a non-empty list of test cases", fname, data.line_of("tests") if tests else 1)
        )
    else:
        names: dict[str, int] = {}
        for i, item in enumerate(tests):
            case = _parse_case(item, fname, tests.line_of(i), problems)
            if case is None:
                continue
            if case.name in names:
                problems.append(
                    Problem(f"duplicate test name {case.name!r} (first on line {names[case.name]})", fname, case.line)
                )
            names.setdefault(case.name, case.line)
            cases.append(case)
    if ruleset is not None and not problems:
        for case in cases:
            for e in case.exceptions:
                if e["rule"] not in {r.name for r in ruleset.rules}:
                    problems.append(Problem(f"exceptions: no rule named {e['rule']!r} in rule_files", fname, e["line"]))
            for rule, _start, line in case.approve:
                if rule not in {r.name for r in ruleset.rules}:
                    problems.append(Problem(f"approve: no rule named {rule!r} in rule_files", fname, line))
    if problems or ruleset is None:
        return None
    return ruleset, cases


def _load_rule_files(data: dict, path: Path, problems: list[Problem]) -> RuleSet | None:
    fname = str(path)
    value = data.get("rule_files")
    line = data.line_of("rule_files") if "rule_files" in data else 1
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        problems.append(
            Problem("rule_files: expected a list of rule files, relative to this file (e.g. [../default.yaml])", fname, line)
        )
        return None
    files: list[str] = []
    for i, pattern in enumerate(value):
        full = str(path.parent / pattern)
        matches = sorted(glob.glob(full)) if glob.has_magic(full) else ([full] if Path(full).exists() else [])
        if not matches:
            problems.append(Problem(f"rule_files: {pattern!r} not found (relative to this file)", fname, value.line_of(i)))
        files.extend(matches)
    if not files:
        return None
    try:
        return load_rules(files)
    except RuleError as exc:
        problems.append(Problem("rule_files: the rules do not load:", fname, line))
        problems.extend(exc.problems)
        return None


def _parse_case(item: Any, fname: str, line: int, problems: list[Problem]) -> _Case | None:
    if not isinstance(item, dict):
        problems.append(Problem("expected a test case (a mapping with name, schedule, timeline, ...)", fname, line))
        return None
    line = item.line or line
    n0 = len(problems)

    def bad(key: str, message: str, at: int | None = None) -> None:
        problems.append(Problem(f"{key}: {message}", fname, at or (item.line_of(key) if key in item else line)))

    for key in item:
        if key not in CASE_KEYS:
            bad(key, f"unknown key (expected one of: {', '.join(CASE_KEYS)})")
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        bad("name", "every test case needs a name (text)")
        name = f"case at line {line}"
    tz = ZoneInfo("UTC")
    if "timezone" in item:
        try:
            tz = zone(item["timezone"])
        except ValueError as exc:
            bad("timezone", str(exc))
    team = item.get("team")
    if team is not None and not isinstance(team, str):
        bad("team", "expected a team name")
        team = None
    if "date" not in item:
        bad("date", "missing: the local date (YYYY-MM-DD) of the schedule, clock times and adherence figures")
        return None
    try:
        day = parse_date(item["date"])
    except ValueError as exc:
        bad("date", str(exc))
        return None

    def instant(value: Any, key: str, at: int) -> int | None:
        try:
            return _instant(value, day, tz)
        except ValueError as exc:
            bad(key, str(exc), at)
            return None

    segments = _parse_schedule(item, day, tz, fname, line, problems)
    timeline = _parse_timeline(item, day, tz, fname, line, problems, instant)

    eval_ms = None
    if "eval_time" not in item:
        bad("eval_time", "missing: when to evaluate (e.g. \"17:00\" or an ISO time)")
    else:
        eval_ms = instant(item["eval_time"], "eval_time", item.line_of("eval_time"))

    monitoring_ms = None
    if "monitoring_from" in item:
        monitoring_ms = instant(item["monitoring_from"], "monitoring_from", item.line_of("monitoring_from"))

    approve: list[tuple[str, int, int]] = []
    raw = item.get("approve") or []
    if not isinstance(raw, list):
        bad("approve", "expected a list of {rule: NAME, start: TIME}")
    else:
        for i, a in enumerate(raw):
            at = raw.line_of(i)
            if not isinstance(a, dict) or set(a) != {"rule", "start"} or not isinstance(a["rule"], str):
                bad("approve", "each item is {rule: NAME, start: TIME} (the exception to approve)", at)
                continue
            st = instant(a["start"], "approve", at)
            if st is not None:
                approve.append((a["rule"], st, at))

    exceptions = _parse_exceptions(item, fname, line, problems, instant)
    adherence = _parse_adherence(item, fname, line, problems)

    if len(problems) > n0 or eval_ms is None:
        return None
    return _Case(fname, line, name.strip(), tz, team, day, segments, timeline, eval_ms, approve, exceptions, adherence,
                 monitoring_ms)


def _instant(value: Any, day: date, tz: ZoneInfo) -> int:
    """``"09:10"`` (on the case's date), ``"2026-11-03 06:00"`` (local) or ISO with Z/offset → epoch ms."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = _unsexagesimal(value)
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=tz)
        return to_ms(dt)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a time such as \"09:10\", \"2026-11-03 06:00\" or an ISO time; got {value!r}")
    text = value.strip()
    m = _CLOCK.match(text)
    if m:
        return to_ms(datetime.combine(day, _clock(m, text), tzinfo=tz))
    parts = text.replace("T", " ", 1).split(" ")
    if len(parts) == 2 and _DATE.match(parts[0]) and _CLOCK.match(parts[1]):
        d = parse_date(parts[0])
        return to_ms(datetime.combine(d, _clock(_CLOCK.match(parts[1]), parts[1]), tzinfo=tz))
    if re.search(r"(Z|[+-]\d{2}:?\d{2})$", text):
        return parse_instant_ms(text)
    raise ValueError(f"expected a time such as \"09:10\", \"2026-11-03 06:00\" or an ISO time; got {value!r}")


def _unsexagesimal(v: int) -> str:
    """YAML 1.1 reads an unquoted 10:30 as the number 630; turn it back into text."""
    if 60 <= v < 1440:
        return f"{v // 60}:{v % 60:02d}"
    if 3600 <= v < 86400:
        return f"{v // 3600}:{v // 60 % 60:02d}:{v % 60:02d}"
    raise ValueError(f"expected a time such as \"09:10\" (in quotes), got {v!r}")


def _clock(m: re.Match, text: str) -> time:
    h, mi = int(m.group(1)), int(m.group(2))
    s = int(m.group(3) or 0)
    ms = int((m.group(4) or "0").ljust(3, "0"))
    if h > 23 or mi > 59 or s > 59:
        raise ValueError(f"not a time of day: {text!r}")
    return time(h, mi, s, ms * 1000)


def _parse_schedule(item, day, tz, fname, line, problems) -> list[Segment]:
    raw = item.get("schedule")
    at0 = item.line_of("schedule") if "schedule" in item else line
    if raw is None:
        return []  # an unscheduled day is a valid case
    by_day: list[tuple[date, Any, int]] = []
    if isinstance(raw, list):
        by_day.append((day, raw, at0))
    elif isinstance(raw, dict):
        for k, v in raw.items():
            try:
                by_day.append((parse_date(k), v, raw.line_of(k)))
            except ValueError as exc:
                problems.append(Problem(f"schedule: {exc}", fname, raw.line_of(k)))
    else:
        problems.append(
            Problem("schedule: expected a list of \"09:00-17:00 Available\" lines, or date: [lines]", fname, at0)
        )
        return []
    segments: list[Segment] = []
    for d, lines, at in by_day:
        if not isinstance(lines, list):
            problems.append(Problem("schedule: expected a list of \"09:00-17:00 Available\" lines", fname, at))
            continue
        for i, text in enumerate(lines):
            li = lines.line_of(i)
            m = _SEGMENT.match(text) if isinstance(text, str) else None
            try:
                if not m:
                    raise ValueError(f"expected \"HH:MM-HH:MM Activity\", got {text!r}")
                start = _day_clock(d, m.group(1), tz)
                end = _day_clock(d, m.group(2), tz)
                if end <= start:  # crosses midnight
                    end = _day_clock(d + timedelta(days=1), m.group(2), tz)
            except ValueError as exc:
                problems.append(Problem(f"schedule: {exc}", fname, li))
                continue
            segments.append(Segment(start, end, m.group(3), d, f"{fname}:{li}"))
    segments.sort(key=lambda s: s.start)
    for a, b in zip(segments, segments[1:]):
        if b.start < a.end:
            problems.append(
                Problem(
                    f"schedule: {b.activity} overlaps {a.activity} ({a.source}); list segments without overlap",
                    fname,
                    int(b.source.rsplit(":", 1)[1]),
                )
            )
    return segments


def _day_clock(d: date, text: str, tz: ZoneInfo) -> int:
    if text == "24:00":
        return to_ms(datetime.combine(d + timedelta(days=1), time(0), tzinfo=tz))
    m = _CLOCK.match(text)
    if not m:
        raise ValueError(f"expected a time HH:MM, got {text!r}")
    return to_ms(datetime.combine(d, _clock(m, text), tzinfo=tz))


def _parse_timeline(item, day, tz, fname, line, problems, instant) -> list[Snapshot]:
    raw = item.get("timeline")
    at0 = item.line_of("timeline") if "timeline" in item else line
    if raw is None:
        return []
    if not isinstance(raw, list):
        problems.append(Problem("timeline: expected a list of \"09:10 Offline\" lines or {at, activity, task}", fname, at0))
        return []
    out: list[Snapshot] = []
    for i, entry in enumerate(raw):
        li = raw.line_of(i)
        if isinstance(entry, str):
            words = entry.split()
            if len(words) >= 3 and _DATE.match(words[0]) and _CLOCK.match(words[1]):
                words = [words[0] + " " + words[1]] + words[2:]
            task = "none"
            if len(words) >= 3 and words[-1] in TASK_STATES:
                task = words.pop()
            if len(words) < 2:
                problems.append(
                    Problem(f"timeline: expected \"TIME Activity [task state]\", got {entry!r}", fname, li)
                )
                continue
            at_text, activity = words[0], " ".join(words[1:])
        elif isinstance(entry, dict):
            extra = set(entry) - {"at", "activity", "task"}
            if extra or "at" not in entry or not isinstance(entry.get("activity"), str):
                problems.append(
                    Problem("timeline: expected {at: TIME, activity: NAME, task: STATE} (task optional)", fname, li)
                )
                continue
            at_text, activity, task = entry["at"], entry["activity"], entry.get("task", "none")
            if task not in TASK_STATES:
                problems.append(
                    Problem(f"timeline: unknown task state {task!r} (expected one of: {', '.join(TASK_STATES)})", fname, li)
                )
                continue
        else:
            problems.append(Problem(f"timeline: expected \"TIME Activity [task state]\", got {entry!r}", fname, li))
            continue
        t = instant(at_text, "timeline", li)
        if t is not None:
            out.append(Snapshot(t, activity, task))
    return out


def _parse_exceptions(item, fname, line, problems, instant) -> list[dict]:
    raw = item.get("exceptions")
    if raw is None:
        return []
    at0 = item.line_of("exceptions")
    if not isinstance(raw, list):
        problems.append(Problem("exceptions: expected a list of {rule, start, end}", fname, at0))
        return []
    out = []
    for i, e in enumerate(raw):
        li = raw.line_of(i)
        if not isinstance(e, dict):
            problems.append(Problem("exceptions: expected {rule: NAME, start: TIME, end: TIME or open}", fname, li))
            continue
        ok = True
        for key in e:
            if key not in EXCEPTION_KEYS:
                problems.append(
                    Problem(f"exceptions: unknown key {key!r} (expected: {', '.join(EXCEPTION_KEYS)})", fname, e.line_of(key))
                )
                ok = False
        for key in ("rule", "start", "end"):
            if key not in e:
                problems.append(Problem(f"exceptions: missing {key!r} (end: open for an open exception)", fname, li))
                ok = False
        if not ok:
            continue
        start = instant(e["start"], "exceptions", e.line_of("start"))
        end: Any
        if e["end"] in ("open", None):
            end = None
        else:
            end = instant(e["end"], "exceptions", e.line_of("end"))
            if end is None:
                continue
        if start is None:
            continue
        exp = {"rule": str(e["rule"]), "start": start, "end": end, "line": li}
        for key in EXCEPTION_KEYS[3:]:
            if key in e:
                exp[key] = None if e[key] == "none" and key == "scheduled_activity" else e[key]
        out.append(exp)
    return out


def _parse_adherence(item, fname, line, problems) -> dict:
    raw = item.get("adherence")
    if raw is None:
        return {}
    at0 = item.line_of("adherence")
    if not isinstance(raw, dict):
        problems.append(Problem(f"adherence: expected a mapping of figures ({', '.join(FIGURE_KEYS)})", fname, at0))
        return {}
    out = {}
    for key, value in raw.items():
        li = raw.line_of(key)
        try:
            if key in DURATION_FIGURES:
                if value == 0 and not isinstance(value, bool):
                    ms = 0
                elif isinstance(value, str):
                    ms = parse_duration(value)
                else:
                    raise ValueError(f"expected a duration such as 7h54m, 30s or 0, got {value!r}")
                out[key] = (ms, li)
            elif key.endswith("_seconds") and key[: -len("_seconds")] in DURATION_FIGURES:
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ValueError(f"expected a number of seconds, got {value!r}")
                out[key[: -len("_seconds")]] = (round(value * 1000), li)
            elif key in PERCENT_FIGURES:
                if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                    raise ValueError(f"expected a number (or null when nothing is scheduled), got {value!r}")
                out[key] = (value, li)
            elif key == "exceptions":
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ValueError(f"expected a whole number, got {value!r}")
                out[key] = (value, li)
            else:
                raise ValueError(f"unknown figure (expected one of: {', '.join(FIGURE_KEYS)})")
        except ValueError as exc:
            problems.append(Problem(f"adherence.{key}: {exc}", fname, li))
    return out


# --------------------------------------------------------------------------- running


def _run_case(case: _Case, ruleset: RuleSet) -> CaseResult:
    """Run one case through the engine's own entry point (``policy.evaluate_worker``): monitoring starts at
    the case's start — local midnight of its date, or its first segment or state if earlier — unless the
    case says ``monitoring_from``, so an agent with no state yet is ``Unknown``, as in production."""
    start = min([case.eval_ms, local_midnight_ms(case.day, case.tz)] + [s.at for s in case.timeline]
                + [s.start for s in case.segments])
    monitoring = start if case.monitoring_ms is None else case.monitoring_ms
    result = evaluate_worker(list_reader(case.timeline), "case", case.segments, ruleset, case.team, case.tz,
                             monitoring, min(start, monitoring), case.eval_ms)
    got = result.occurrences
    diff: list[str] = []

    fmt = _formatter(case)
    exp_keys = sorted((e["start"], e["rule"], _end_key(e["end"])) for e in case.exceptions)
    got_keys = sorted((o.start, o.rule, _end_key(o.end)) for o in got)
    if exp_keys != got_keys:
        diff.append("exceptions:")
        for label, keys in (("expected", exp_keys), ("got", got_keys)):
            diff.append(f"  {label}:")
            diff.extend([f"    {_show(r, s, e, fmt)}" for s, r, e in keys] or ["    (none)"])
    else:
        by_key = {(o.start, o.rule, _end_key(o.end)): o for o in got}
        for e in case.exceptions:
            o = by_key[(e["start"], e["rule"], _end_key(e["end"]))]
            for key in EXCEPTION_KEYS[3:]:
                if key in e and getattr(o, key) != e[key]:
                    diff.append(
                        f"exception {_show(o.rule, o.start, _end_key(o.end), fmt)}: "
                        f"{key} expected {e[key]!r}, got {getattr(o, key)!r}"
                    )

    if case.adherence:
        approved_keys = {(rule, st) for rule, st, _ in case.approve}
        intervals = [(o.start, o.end, (o.rule, o.start) in approved_keys, o.impact) for o in got]
        day = next((d for d in result.days if d.day == case.day), None)
        figures = day_figures(case.day, case.tz, day.segments if day else [], intervals, (), case.eval_ms,
                              day.logged_in_ms if day else 0, neutral_activities=ruleset.neutral_scheduled)
        diff.extend(_compare_figures(case.adherence, figures))
    return CaseResult(case.file, case.line, case.name, not diff, diff)


def _end_key(end: int | None) -> float:
    return float("inf") if end is None else end


def _formatter(case: _Case):
    def fmt(ms: float) -> str:
        if ms == float("inf"):
            return "open"
        dt = from_ms(int(ms)).astimezone(case.tz)
        clock = dt.strftime("%H:%M:%S" if dt.second or dt.microsecond else "%H:%M")
        if dt.microsecond:
            clock += f".{dt.microsecond // 1000:03d}"
        return clock if dt.date() == case.day else f"{dt.date().isoformat()} {clock}"

    return fmt


def _show(rule: str, start: int, end: float, fmt) -> str:
    return f"{rule}  {fmt(start)} → {fmt(end)}"


def _compare_figures(expected: dict, figures: DayFigures) -> list[str]:
    from .timeutil import format_duration

    out = []
    for key, (value, _line) in expected.items():
        if key in DURATION_FIGURES:
            got = getattr(figures, f"{key}_ms")
            if got != value:
                out.append(f"{key}: expected {_dur(value, format_duration)}, got {_dur(got, format_duration)}")
        elif key in PERCENT_FIGURES:
            got = getattr(figures, key)
            if (value is None) != (got is None) or (got is not None and abs(got - value) > PERCENT_TOLERANCE):
                out.append(f"{key}: expected {value}, got {None if got is None else round(got, 4)}")
        else:
            got = getattr(figures, key)
            if got != value:
                out.append(f"{key}: expected {value}, got {got}")
    return out


def _dur(ms: int, format_duration) -> str:
    if ms == 0:
        return "0s"
    text = format_duration(ms)
    if ms % 1000:
        text += f" ({ms} ms)"
    elif ms >= 3600_000 and (ms // 1000) % 60:
        text += f"{(ms // 1000) % 60:02d}s"
    return text
