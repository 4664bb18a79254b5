"""The YAML schedule format: a roster, weekly and dated shifts, days off.

This module reads one file into plain specs and reports every problem it can
see in that file alone (shapes, unknown keys, bad times, bad dates, bad
zones). Cross-file checks (unknown agents, duplicate worker SIDs,
overlapping dated shifts) are the loader's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ..errors import Problem
from ..timeutil import parse_date, zone
from ..yamlfile import LineDict, LineList, YamlSyntaxError, load_file, short

TOP_KEYS = ("timezone", "agents", "shifts", "days_off")
AGENT_KEYS = ("worker_sid", "name", "email", "team", "timezone", "calendar")
SHIFT_KEYS = ("agents", "teams", "days", "from", "until", "date", "segments")
DAY_OFF_KEYS = ("agents", "teams", "dates", "from", "until", "reason")
DEFAULT_DAY_OFF = "Day Off"

WORKER_SID = re.compile(r"^WK[0-9a-fA-F]{32}$")
_SEGMENT = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s+(\S.*?)\s*$")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_GROUPS = {"daily": range(7), "everyday": range(7), "weekdays": range(5), "weekends": range(5, 7)}


@dataclass
class AgentSpec:
    key: str
    worker_sid: str
    name: str | None
    email: str | None
    team: str | None
    timezone: str | None  # as written (agent's own, else the file's), None: config default
    calendar: Path | None
    file: str
    line: int
    sid_line: int
    email_line: int
    calendar_line: int


@dataclass
class SegSpec:
    start_min: int  # minutes after the shift date's local midnight (wall clock)
    end_min: int  # may run past 1440: the next day
    activity: str
    line: int
    tz: ZoneInfo | None = None  # a CSV row's own zone; None: the agent's


@dataclass
class ShiftSpec:
    agents: list[tuple[str, int]]  # (name, line)
    teams: list[tuple[str, int]]
    days: frozenset[int] | None  # weekly shift: weekday numbers
    date: date | None  # dated shift
    start: date | None
    until: date | None
    segments: list[SegSpec]
    file: str
    line: int


@dataclass
class DayOffSpec:
    agents: list[tuple[str, int]]
    teams: list[tuple[str, int]]
    dates: list[tuple[date, int]]
    start: date | None
    until: date | None
    reason: str
    file: str
    line: int


@dataclass
class YamlSchedule:
    file: str
    timezone: str | None = None
    agents: list[AgentSpec] = field(default_factory=list)
    shifts: list[ShiftSpec] = field(default_factory=list)
    days_off: list[DayOffSpec] = field(default_factory=list)
    # what the text names, valid or not: when the file is broken, these agents are the ones affected
    defines: set[str] = field(default_factory=set)
    mentions: set[str] = field(default_factory=set)
    teams: set[str] = field(default_factory=set)
    calendars: dict[Path, str] = field(default_factory=dict)  # calendar path named → agent key, valid or not
    defined_teams: set[str] = field(default_factory=set)  # team: values of the agents: entries


def _line(container: Any, key: Any = None) -> int | None:
    if key is not None and isinstance(container, (LineDict, LineList)):
        return container.line_of(key) or None
    return getattr(container, "line", None) or None


def parse_segment(text: Any) -> tuple[int, int, str]:
    """``"22:00-06:00 Available"`` → (start minute, end minute, activity); ValueError otherwise."""
    if not isinstance(text, str):
        raise ValueError(f"expected a segment like '09:00-12:00 Available', got {short(text)}")
    m = _SEGMENT.match(text)
    if not m:
        raise ValueError(f"expected a segment like '09:00-12:00 Available' (HH:MM-HH:MM Activity), got {short(text)}")
    h1, m1, h2, m2 = (int(g) for g in m.groups()[:4])
    activity = m.group(5)
    if h1 > 23 or m1 > 59:
        raise ValueError(f"bad start time {m.group(1)}:{m.group(2)} in {short(text)} (expected 00:00 to 23:59)")
    if (h2 > 23 and not (h2 == 24 and m2 == 0)) or m2 > 59:
        raise ValueError(f"bad end time {m.group(3)}:{m.group(4)} in {short(text)} (expected 00:00 to 24:00)")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == end:
        raise ValueError(f"segment {short(text)} has no length (start equals end)")
    return start, end, activity


def parse_days(value: Any) -> frozenset[int]:
    """``[mon, tue]``, ``mon-fri``, ``weekdays``, ``daily`` → weekday numbers (Monday 0)."""
    items = value if isinstance(value, list) else [value]
    out: set[int] = set()
    for item in items:
        text = str(item).strip().lower() if isinstance(item, str) else None
        if not text:
            raise ValueError(f"expected day names like [mon, tue, wed] or mon-fri, got {short(item)}")
        if text in _GROUPS:
            out.update(_GROUPS[text])
            continue
        parts = [p.strip() for p in text.split("-")]
        nums = [_day_number(p) for p in parts]
        if None in nums or len(nums) > 2:
            raise ValueError(
                f"unknown day {short(item)} (expected mon, tue, wed, thu, fri, sat, sun, a range like mon-fri, "
                "weekdays, weekends or daily)"
            )
        if len(nums) == 1:
            out.add(nums[0])
        else:
            a, b = nums
            d = a
            while True:
                out.add(d)
                if d == b:
                    break
                d = (d + 1) % 7
    if not out:
        raise ValueError("expected at least one day")
    return frozenset(out)


def _day_number(text: str) -> int | None:
    if text in _DAYS:
        return _DAYS.index(text)
    if text in _FULL:
        return _FULL.index(text)
    return None


class _Ctx:
    def __init__(self, file: str, problems: list[Problem]):
        self.file = file
        self.problems = problems

    def err(self, message: str, line: int | None) -> None:
        self.problems.append(Problem(message, self.file, line))


def _check_keys(ctx: _Ctx, data: LineDict, allowed: tuple, what: str) -> None:
    for key in data:
        if key not in allowed:
            ctx.err(f"unknown key {short(key)} in {what} (expected one of: {', '.join(allowed)})", _line(data, key))


def _opt_str(ctx: _Ctx, data: LineDict, key: str, what: str) -> str | None:
    v = data.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        ctx.err(f"{what} {key}: expected text, got {short(v)}", _line(data, key))
        return None
    return str(v)


def _date(ctx: _Ctx, data: Any, key: Any, value: Any, what: str) -> date | None:
    try:
        return parse_date(value)
    except ValueError as exc:
        ctx.err(f"{what}: {exc}", _line(data, key))
        return None


def _names(ctx: _Ctx, data: LineDict, key: str, what: str) -> list[tuple[str, int]]:
    v = data.get(key)
    if v is None:
        return []
    items = v if isinstance(v, list) else [v]
    out = []
    for i, item in enumerate(items):
        line = _line(v, i) if isinstance(v, LineList) else _line(data, key)
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            ctx.err(f"{what} {key}: expected names, got {short(item)}", line)
            continue
        out.append((str(item), line or _line(data, key)))
    return out


def _parse_agent(ctx: _Ctx, key: Any, entry: Any, line: int, file_tz: str | None, base: Path) -> AgentSpec | None:
    name = str(key)
    if not isinstance(entry, LineDict):
        ctx.err(f"agent {short(name)}: expected a mapping with worker_sid, name, email, team, timezone, calendar", line)
        return None
    what = f"agent {short(name)}"
    _check_keys(ctx, entry, AGENT_KEYS, what)
    sid = entry.get("worker_sid")
    ok = True
    if sid is None:
        ctx.err(f"{what}: worker_sid is required (expected WK followed by 32 hex digits)", line)
        ok = False
    elif not isinstance(sid, str) or not WORKER_SID.match(sid):
        ctx.err(f"{what}: bad worker_sid {short(sid)} (expected WK followed by 32 hex digits)", _line(entry, "worker_sid"))
        ok = False
    tz = _opt_str(ctx, entry, "timezone", what)
    if tz is not None:
        try:
            zone(tz)
        except ValueError as exc:
            ctx.err(f"{what}: {exc}", _line(entry, "timezone"))
            ok = False
    email = _opt_str(ctx, entry, "email", what)
    if email is not None and ("@" not in email or " " in email.strip()):
        ctx.err(f"{what}: bad email {short(email)} (expected name@example.com)", _line(entry, "email"))
        email = None
    cal = _opt_str(ctx, entry, "calendar", what)
    cal_path = None
    if cal is not None:
        p = Path(cal).expanduser()
        cal_path = (p if p.is_absolute() else base / p).resolve()
        if cal_path.suffix.lower() != ".ics":
            ctx.err(f"{what}: calendar {short(cal)} is not an .ics file (expected a path like {name}.ics)",
                    _line(entry, "calendar"))
            ok = False
        elif not cal_path.is_file():
            ctx.err(f"{what}: calendar file {short(cal)} not found (relative paths are relative to {ctx.file})",
                    _line(entry, "calendar"))
            ok = False
    if not ok:
        return None
    return AgentSpec(
        key=name,
        worker_sid=sid,
        name=_opt_str(ctx, entry, "name", what),
        email=email.strip().lower() if email else None,
        team=_opt_str(ctx, entry, "team", what),
        timezone=tz or file_tz,
        calendar=cal_path,
        file=ctx.file,
        line=line,
        sid_line=_line(entry, "worker_sid") or line,
        email_line=_line(entry, "email") or line,
        calendar_line=_line(entry, "calendar") or line,
    )


def _parse_segments(ctx: _Ctx, item: LineDict, what: str) -> list[SegSpec]:
    segs = item.get("segments")
    line = _line(item, "segments") or _line(item)
    if segs is None:
        ctx.err(f"{what}: segments are required (expected a list like '- 09:00-17:00 Available')", _line(item))
        return []
    if not isinstance(segs, list) or not segs:
        ctx.err(f"{what}: segments: expected a list like '- 09:00-17:00 Available'", line)
        return []
    out: list[SegSpec] = []
    base = None
    for i, text in enumerate(segs):
        sline = _line(segs, i) or line
        try:
            s, e, activity = parse_segment(text)
        except ValueError as exc:
            ctx.err(f"{what}: {exc}", sline)
            continue
        if base is None:
            base = s
        offset = 1440 if s < base else 0  # earlier than the shift's first start: after midnight
        length = e - s if e > s else e + 1440 - s
        out.append(SegSpec(s + offset, s + offset + length, activity, sline))
    return out


def _parse_shift(ctx: _Ctx, item: Any, line: int) -> ShiftSpec | None:
    what = "shift"
    if not isinstance(item, LineDict):
        ctx.err("shift: expected a mapping with agents, days or date, and segments", line)
        return None
    _check_keys(ctx, item, SHIFT_KEYS, what)
    agents = _names(ctx, item, "agents", what)
    teams = _names(ctx, item, "teams", what)
    if not agents and not teams:
        ctx.err("shift: agents is required (expected a list of roster names, or teams: [...])", line)
    days = the_date = start = until = None
    if "date" in item and "days" in item:
        ctx.err("shift: give either date (a dated shift) or days (a weekly shift), not both", _line(item, "date"))
    elif "date" in item:
        the_date = _date(ctx, item, "date", item["date"], "shift date")
        for k in ("from", "until"):
            if k in item:
                ctx.err(f"shift: {k} only applies to weekly shifts (days), not to a dated shift", _line(item, k))
    elif "days" in item:
        try:
            days = parse_days(item["days"])
        except ValueError as exc:
            ctx.err(f"shift days: {exc}", _line(item, "days"))
    else:
        ctx.err("shift: expected days (e.g. [mon, tue, wed, thu, fri]) or date (YYYY-MM-DD)", line)
    if "from" in item:
        start = _date(ctx, item, "from", item["from"], "shift from")
    if "until" in item:
        until = _date(ctx, item, "until", item["until"], "shift until")
    if start and until and until < start:
        ctx.err(f"shift: until {until} is before from {start}", _line(item, "until"))
    segments = _parse_segments(ctx, item, what)
    return ShiftSpec(agents, teams, days, the_date, start, until, segments, ctx.file, line)


def _parse_day_off(ctx: _Ctx, item: Any, line: int) -> DayOffSpec | None:
    what = "days_off entry"
    if not isinstance(item, LineDict):
        ctx.err("days_off: expected a mapping with agents and dates (or from/until)", line)
        return None
    _check_keys(ctx, item, DAY_OFF_KEYS, what)
    agents = _names(ctx, item, "agents", what)
    teams = _names(ctx, item, "teams", what)
    if not agents and not teams:
        ctx.err(f"{what}: agents is required (expected a list of roster names, or teams: [...])", line)
    dates: list[tuple[date, int]] = []
    raw = item.get("dates")
    if raw is not None:
        items = raw if isinstance(raw, list) else [raw]
        for i, v in enumerate(items):
            dline = (_line(raw, i) if isinstance(raw, LineList) else None) or _line(item, "dates")
            d = _date(ctx, raw if isinstance(raw, LineList) else item, i if isinstance(raw, LineList) else "dates",
                      v, f"{what} dates")
            if d:
                dates.append((d, dline))
    start = _date(ctx, item, "from", item["from"], f"{what} from") if "from" in item else None
    until = _date(ctx, item, "until", item["until"], f"{what} until") if "until" in item else None
    if ("from" in item) != ("until" in item):
        ctx.err(f"{what}: give both from and until for a range of days off", line)
    if start and until and until < start:
        ctx.err(f"{what}: until {until} is before from {start}", _line(item, "until"))
    if raw is None and "from" not in item and "until" not in item:
        ctx.err(f"{what}: expected dates: [YYYY-MM-DD, ...] or from/until", line)
    reason = _opt_str(ctx, item, "reason", what) or DEFAULT_DAY_OFF
    return DayOffSpec(agents, teams, dates, start, until, reason, ctx.file, line)


_DATE_TOKEN = re.compile(r"(?<![\w-])(\d{4}-\d{1,2}-\d{1,2})(?![\w-])")


def _bad_date_problem(path: Path, exc: ValueError) -> Problem:
    """Find the impossible date that made PyYAML raise, and say where it is."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        lines = []
    for i, line in enumerate(lines):
        for token in _DATE_TOKEN.findall(line.split("#", 1)[0]):
            try:
                date.fromisoformat(token)
            except ValueError:
                return Problem(f"invalid date {token} (expected a real date as YYYY-MM-DD)", str(path), i + 1)
    return Problem(f"invalid value: {exc}", str(path))


def _note_names(out: YamlSchedule, data: LineDict, base: Path) -> None:
    agents = data.get("agents")
    if isinstance(agents, dict):
        out.defines.update(str(k) for k in agents)
        for key, entry in agents.items():
            team = entry.get("team") if isinstance(entry, dict) else None
            if isinstance(team, (str, int)) and not isinstance(team, bool):
                out.defined_teams.add(str(team))
            cal = entry.get("calendar") if isinstance(entry, dict) else None
            if isinstance(cal, str) and cal.strip():
                try:
                    p = Path(cal).expanduser()
                    out.calendars[(p if p.is_absolute() else base / p).resolve()] = str(key)
                except (OSError, RuntimeError, ValueError):
                    pass
    for section in ("shifts", "days_off"):
        items = data.get(section)
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, dict):
                continue
            for key, into in (("agents", out.mentions), ("teams", out.teams)):
                v = item.get(key)
                for name in v if isinstance(v, list) else [v]:
                    if isinstance(name, (str, int)) and not isinstance(name, bool):
                        into.add(str(name))


def parse_yaml_file(path: Path, problems: list[Problem]) -> YamlSchedule | None:
    """Read one schedule file; append its problems; None if it could not be read at all."""
    fname = str(path)
    ctx = _Ctx(fname, problems)
    try:
        data = load_file(fname)
    except YamlSyntaxError as exc:
        problems.append(exc.problem)
        return None
    except ValueError as exc:  # PyYAML's own date parsing: 2026-02-30 escapes yamlfile's handling
        problems.append(_bad_date_problem(path, exc))
        return None
    out = YamlSchedule(fname)
    if data is None:
        return out
    if not isinstance(data, LineDict):
        ctx.err("expected a mapping with timezone, agents, shifts and days_off at the top level", 1)
        return None
    _check_keys(ctx, data, TOP_KEYS, "a schedule file")
    _note_names(out, data, path.parent)
    tz = _opt_str(ctx, data, "timezone", "file")
    if tz is not None:
        try:
            zone(tz)
            out.timezone = tz
        except ValueError as exc:
            ctx.err(f"timezone: {exc}", _line(data, "timezone"))
    agents = data.get("agents")
    if agents is not None:
        if not isinstance(agents, LineDict):
            ctx.err("agents: expected a mapping of roster name → worker_sid, name, email, team, ...",
                    _line(data, "agents"))
        else:
            for key, entry in agents.items():
                spec = _parse_agent(ctx, key, entry, _line(agents, key), out.timezone, path.parent)
                if spec:
                    out.agents.append(spec)
    for section, parse, target in (("shifts", _parse_shift, out.shifts), ("days_off", _parse_day_off, out.days_off)):
        items = data.get(section)
        if items is None:
            continue
        if not isinstance(items, LineList):
            ctx.err(f"{section}: expected a list (each item starting with '- ')", _line(data, section))
            continue
        for i, item in enumerate(items):
            spec = parse(ctx, item, _line(items, i))
            if spec:
                target.append(spec)
    return out
