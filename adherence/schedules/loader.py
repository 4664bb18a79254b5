"""Load a schedules folder (``*.yaml``, ``*.yml``, ``*.ics``) into a Schedule.

Strict and all-errors: every problem in every file is collected, then one
``ScheduleError`` lists them all; a Schedule is built only from a fully
valid folder. ``schedule_source`` wraps the loader for hot reload.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Iterable

from ..config import DEFAULT_TIME_OFF
from ..errors import Problem, ScheduleError
from ..model import Agent
from ..reload import Reloadable, folder_fingerprint
from ..timeutil import zone
from .ical import AgentCalendar, IcsFile, parse_ics_file
from .schedule import Schedule, _AgentPlan
from .yamlfmt import AgentSpec, YamlSchedule, parse_yaml_file

PATTERNS = ("*.yaml", "*.yml", "*.ics")
MAX_DAYS_OFF_RANGE = 3660


def _where(file: str, line: int | None) -> str:
    return f"{file}:{line}" if line else file


def _files(folder: Path) -> list[Path]:
    found = set()
    for pattern in PATTERNS:
        found.update(p for p in folder.rglob(pattern) if p.is_file())
    return sorted(found)


def load_schedules(folder: Path, default_tz: str, time_off: Iterable[str] = DEFAULT_TIME_OFF) -> Schedule:
    """Read every schedule file in ``folder``; raise ScheduleError listing every problem."""
    folder = Path(folder)
    problems: list[Problem] = []
    warnings: list[Problem] = []
    try:
        default_zone = zone(default_tz)
    except ValueError as exc:
        raise ScheduleError(problems=[Problem(f"default time zone: {exc}")]) from None
    if not folder.is_dir():
        raise ScheduleError(problems=[Problem("schedules folder not found (see 'schedules:' in config.yaml)",
                                              str(folder))])
    off_names = {str(n).strip().lower(): str(n).strip() for n in time_off}
    files = _files(folder)
    if not files:
        warnings.append(Problem("no schedule files (*.yaml, *.yml, *.ics): nobody is scheduled", str(folder)))
    yaml_files: list[tuple[int, YamlSchedule]] = []
    for i, path in enumerate(files):
        if path.suffix.lower() in (".yaml", ".yml"):
            parsed = parse_yaml_file(path, problems)
            if parsed is not None:
                yaml_files.append((i, parsed))

    # -- roster ---------------------------------------------------------------
    specs: dict[str, AgentSpec] = {}
    by_sid: dict[str, AgentSpec] = {}
    by_email: dict[str, AgentSpec] = {}
    for _, yf in yaml_files:
        for a in yf.agents:
            if a.key in specs:
                first = specs[a.key]
                problems.append(Problem(f"duplicate agent {a.key!r} (first defined at {_where(first.file, first.line)})",
                                        a.file, a.line))
                continue
            sid = a.worker_sid.lower()
            if sid in by_sid:
                first = by_sid[sid]
                problems.append(Problem(
                    f"duplicate worker_sid {a.worker_sid} for {a.key!r} (already used by {first.key!r} at "
                    f"{_where(first.file, first.sid_line)})", a.file, a.sid_line))
                continue
            if a.email and a.email in by_email:
                first = by_email[a.email]
                problems.append(Problem(
                    f"duplicate email {a.email} for {a.key!r} (already used by {first.key!r} at "
                    f"{_where(first.file, first.email_line)})", a.file, a.email_line))
                continue
            specs[a.key] = a
            by_sid[sid] = a
            if a.email:
                by_email[a.email] = a
    agents: dict[str, Agent] = {}
    plans: dict[str, _AgentPlan] = {}
    teams: dict[str, list[str]] = {}
    for key, a in specs.items():
        tzname = a.timezone or default_tz
        agents[key] = Agent(key, a.worker_sid, a.name, a.email, a.team, tzname,
                            str(a.calendar) if a.calendar else None)
        plans[key] = _AgentPlan(zone(tzname) if a.timezone else default_zone)
        if a.team:
            teams.setdefault(a.team, []).append(key)

    def who(entry, what: str) -> list[str]:
        keys: list[str] = []
        for name, line in entry.agents:
            if name in specs:
                keys.append(name)
            else:
                known = ", ".join(sorted(specs)[:10]) + (", ..." if len(specs) > 10 else "")
                problems.append(Problem(f"{what}: unknown agent {name!r} (expected a roster name: {known or 'none'})",
                                        entry.file, line))
        for name, line in entry.teams:
            if name in teams:
                keys.extend(teams[name])
            else:
                problems.append(Problem(f"{what}: unknown team {name!r} (expected one of: "
                                        f"{', '.join(sorted(teams)) or 'none'})", entry.file, line))
        return list(dict.fromkeys(keys))

    # -- shifts and days off ----------------------------------------------------
    activities: set[str] = set()
    for findex, yf in yaml_files:
        for shift in yf.shifts:
            activities.update(s.activity for s in shift.segments)
            for key in who(shift, "shift"):
                plan = plans[key]
                if shift.date is not None:
                    plan.dated.setdefault(shift.date, []).append((shift, findex))
                elif shift.days is not None:
                    plan.weekly.append((shift, findex))
        for entry in yf.days_off:
            days = [d for d, _ in entry.dates]
            if entry.start and entry.until and entry.until >= entry.start:
                n = (entry.until - entry.start).days + 1
                if n > MAX_DAYS_OFF_RANGE:
                    problems.append(Problem(f"days_off: range of {n} days is too long (at most "
                                            f"{MAX_DAYS_OFF_RANGE})", entry.file, entry.line))
                    n = 0
                days.extend(entry.start + timedelta(days=i) for i in range(n))
            for key in who(entry, "days_off"):
                for d in days:
                    plans[key].days_off.setdefault(d, entry.reason)

    for key, plan in plans.items():
        for d, shifts in sorted(plan.dated.items()):
            if d in plan.days_off:
                s = shifts[0][0]
                problems.append(Problem(f"agent {key!r} has both a dated shift and a day off on {d} "
                                        "(expected one of them)", s.file, s.line))
            spans = sorted((min(x.start_min for x in s.segments), max(x.end_min for x in s.segments), s)
                           for s, _ in shifts if s.segments)
            for (a0, a1, sa), (b0, b1, sb) in zip(spans, spans[1:]):
                if b0 < a1:
                    problems.append(Problem(
                        f"dated shifts for {key!r} on {d} overlap (this one and the one at "
                        f"{_where(sa.file, sa.line)}; expected one shift per time of day)", sb.file, sb.line))

    # -- calendars ----------------------------------------------------------------
    owners: dict[Path, list[str]] = {}
    for key, a in specs.items():
        if a.calendar:
            owners.setdefault(a.calendar, []).append(key)
    ics_paths = [p for p in files if p.suffix.lower() == ".ics"]
    seen = {p.resolve() for p in ics_paths}
    ics_paths += sorted(p for p in owners if p not in seen)  # calendars outside the folder
    all_files = [str(p) for p in files] + [str(p) for p in ics_paths if p.resolve() not in seen]
    for n, path in enumerate(ics_paths):
        findex = files.index(path) if path in files else len(files) + n
        ics = parse_ics_file(path, findex, off_names, problems, warnings)
        if ics is None:
            continue
        owned_by = owners.get(path.resolve(), [])
        _attach(ics, owned_by, specs, by_email, plans, agents, activities, problems)

    if problems:
        raise ScheduleError(problems=problems)
    return Schedule(agents, plans, default_tz, activities, warnings, all_files)


def _attach(ics: IcsFile, owned_by: list[str], specs, by_email, plans, agents, activities, problems) -> None:
    """Give a calendar's events to their agents: its roster owners, or ATTENDEE emails."""
    for ev in ics.events:
        if not ev.all_day and str(ev.component.get("STATUS", "")).upper() != "CANCELLED":
            activities.add(ev.summary)
    if owned_by:
        for key in owned_by:
            plans[key].calendars.append(AgentCalendar(ics.events, None, plans[key].tz))
        return
    mine: dict[str, list] = {}
    for uid, group in ics.groups().items():
        keys = sorted({by_email[e].key for ev in group for e in ev.attendees if e in by_email})
        if not keys:
            ev = group[0]
            named = sorted({e for g in group for e in g.attendees})
            got = (", ".join(f"mailto:{e}" for e in named) + " match no roster email") if named else "no ATTENDEE"
            problems.append(Problem(
                f"event {ev.summary!r}: unknown agent: {got} (expected an ATTENDEE:mailto: email of a roster "
                "agent, or name this calendar in a roster entry's calendar:)", ev.file, ev.line))
            continue
        for key in keys:
            mine.setdefault(key, []).extend(group)
    for key, events in mine.items():
        plans[key].calendars.append(AgentCalendar(events, specs[key].email, plans[key].tz))


def schedule_source(config) -> Reloadable:
    """A hot-reloading Schedule for ``config`` (keeps the last good one on a broken edit).

    Watches the schedules folder, plus any calendar a roster entry names
    outside it (known once a load has read the roster).
    """
    folder = Path(config.schedules)
    outside: list[Path] = []

    def loader() -> Schedule:
        schedule = load_schedules(folder, config.timezone, config.time_off)
        outside[:] = [Path(f) for f in schedule.files if not _inside(Path(f), folder)]
        return schedule

    def fingerprint() -> tuple:
        extra = []
        for p in outside:
            try:
                st = p.stat()
                extra.append((str(p), st.st_mtime_ns, st.st_size))
            except OSError:
                extra.append((str(p), None, None))
        return folder_fingerprint(folder, PATTERNS) + tuple(extra)

    return Reloadable("schedules", loader, fingerprint)


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False
