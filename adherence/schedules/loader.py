"""Load a schedules folder (``*.yaml``, ``*.yml``, ``*.ics``, ``*.csv``) into a Schedule.

Each file is read and validated on its own, and stands or falls on its own:
in a 500-agent center one agent's odd calendar export must not leave
everyone else unscheduled. A file with an error keeps its last good version
in force (or, the first time, contributes nothing) while every other file
loads. Checks across files (a shift naming an agent, duplicate worker SIDs,
overlapping dated shifts) drop only the entries in error. Every problem is
still collected and reported with file:line, so ``adherence check`` fails on
any of them, and each broken file names the agents it affects.

``load_folder`` returns all of that; ``load_schedules`` is the strict form
(raise when anything is wrong); ``schedule_source`` keeps the per-file last
good versions across hot reloads.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Iterable

from ..config import DEFAULT_TIME_OFF
from ..errors import Problem, ScheduleError
from ..model import Agent
from ..reload import folder_fingerprint
from ..timeutil import iso, zone
from .csvfmt import CsvSchedule, parse_csv_file
from .ical import AgentCalendar, IcsFile, clip, parse_ics_file, reason
from .schedule import Schedule, _AgentPlan
from .yamlfmt import AgentSpec, YamlSchedule, parse_yaml_file

log = logging.getLogger(__name__)

PATTERNS = ("*.yaml", "*.yml", "*.ics", "*.csv")
MAX_DAYS_OFF_RANGE = 3660
MAX_STATUS_ERRORS = 100  # lines of errors in /health; `adherence check` lists them all
MAX_LOGGED_PER_FILE = 20  # problem lines logged per file per reload
MAX_AGENTS_LISTED = 20


def _where(file: str, line: int | None) -> str:
    return f"{file}:{line}" if line else file


def _files(folder: Path) -> list[Path]:
    found = set()
    for pattern in PATTERNS:
        found.update(p for p in folder.rglob(pattern) if p.is_file())
    return sorted(found)


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    return {".yaml": "yaml", ".yml": "yaml", ".ics": "ics", ".csv": "csv"}.get(suffix, "ics")


def _stamp(path: Path) -> tuple:
    try:
        st = path.stat()
        return (st.st_mtime_ns, st.st_size)
    except OSError:
        return (None, None)


@dataclass
class Parsed:
    """One file as read on its own, before any other file is looked at."""

    file: str
    kind: str  # yaml | ics | csv
    data: YamlSchedule | IcsFile | CsvSchedule | None
    problems: list[Problem]
    warnings: list[Problem]
    stamp: tuple
    read_at: float
    deps: tuple = ()  # (path, existed) the reading depended on: a roster's calendar: files

    def still_valid(self, path: Path) -> bool:
        """Unchanged on disk, and so is everything its reading looked at."""
        return (self.stamp[0] is not None and self.stamp == _stamp(path)
                and all(p.is_file() == existed for p, existed in self.deps))

    @property
    def ok(self) -> bool:
        return not self.problems and self.data is not None


def _parse(path: Path, off_names: dict[str, str], now: float) -> Parsed:
    problems: list[Problem] = []
    warnings: list[Problem] = []
    stamp = _stamp(path)
    kind = _kind(path)
    try:
        if kind == "yaml":
            data = parse_yaml_file(path, problems)
        elif kind == "csv":
            data = parse_csv_file(path, off_names, problems, warnings)
        else:
            data = parse_ics_file(path, 0, off_names, problems, warnings)
    except Exception as exc:  # noqa: BLE001 - a reader bug on one odd file must not stop the others
        log.exception("schedules: reading %s failed", path)
        problems.append(Problem(f"could not be read ({reason(exc)})", str(path)))
        data = None
    problems = [Problem(clip(p.message), p.file, p.line, p.path) for p in problems]
    warnings = [Problem(clip(w.message), w.file, w.line, w.path) for w in dict.fromkeys(warnings)]
    deps = tuple((c, c.is_file()) for c in data.calendars) if isinstance(data, YamlSchedule) else ()
    return Parsed(str(path), kind, data, problems, warnings, stamp, now, deps)


@dataclass
class FileStatus:
    """How one file stands after a load."""

    file: str
    problems: list[Problem] = field(default_factory=list)
    in_force: str = "this version"  # or "nothing", "last good version read at ...", "... without the entries in error"
    since: float | None = None  # when it went into error (kept across reloads while it stays in error)
    agents: set[str] = field(default_factory=set)  # roster keys (or the references written) it affects
    agents_unknown: bool = False  # unreadable and never read before: nobody can tell whose file it is
    sids: set[str] = field(default_factory=set)  # worker SIDs of ``agents`` where known (the board knows some by SID)

    @property
    def ok(self) -> bool:
        return not self.problems

    def line(self) -> str:
        """One bounded log/check line saying what is in force and whom it affects."""
        who = _names(self.agents) if self.agents else ("unknown (the file cannot be read)"
                                                       if self.agents_unknown else "none")
        since = f" since {iso(int(self.since * 1000))}" if self.since else ""
        return clip(f"{self.file}: {len(self.problems)} error(s){since}; in force: {self.in_force}; "
                    f"agents affected: {who}", 500)


def _names(keys: Iterable[str], limit: int = MAX_AGENTS_LISTED) -> str:
    keys = sorted(keys)
    more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


@dataclass
class LoadResult:
    schedule: Schedule | None  # None only when nothing can be loaded (missing folder, bad default zone)
    files: dict[str, FileStatus]
    problems: list[Problem]
    warnings: list[Problem]
    parsed: dict[str, Parsed]  # this version of every file, for the next load
    good: dict[str, Parsed]  # the last good version of every file
    signature: tuple = ()  # which version of which file the schedule is built from

    @property
    def broken(self) -> list[FileStatus]:
        return [f for f in self.files.values() if not f.ok]


class _Build:
    """One assembly of the chosen file versions into a Schedule, noting every problem against its file."""

    def __init__(self, default_tz: str, off_names: dict[str, str]):
        self.default_tz = default_tz
        self.default_zone = zone(default_tz)
        self.off_names = off_names
        self.status: dict[str, FileStatus] = {}
        self.specs: dict[str, AgentSpec] = {}
        self.by_sid: dict[str, AgentSpec] = {}
        self.by_email: dict[str, AgentSpec] = {}
        self.teams: dict[str, list[str]] = {}
        self.agents: dict[str, Agent] = {}
        self.plans: dict[str, _AgentPlan] = {}
        self.activities: set[str] = set()
        self.warnings: list[Problem] = []
        self.broken_defines: dict[str, str] = {}  # agent key → broken file whose current text defines it
        self.broken_teams: dict[str, str] = {}  # team → broken file whose current text puts agents in it

    def problem(self, p: Problem, agents: Iterable[str] = ()) -> None:
        st = self.status.setdefault(p.file or "", FileStatus(p.file or ""))
        st.problems.append(Problem(clip(p.message), p.file, p.line, p.path))
        st.agents.update(agents)

    # -- roster ---------------------------------------------------------------
    def roster(self, yf: YamlSchedule) -> None:
        for a in yf.agents:
            if a.key in self.specs:
                first = self.specs[a.key]
                self.problem(Problem(f"duplicate agent {a.key!r} (first defined at {_where(first.file, first.line)})",
                                     a.file, a.line), [a.key])
                continue
            sid = a.worker_sid.lower()
            if sid in self.by_sid:
                first = self.by_sid[sid]
                self.problem(Problem(
                    f"duplicate worker_sid {a.worker_sid} for {a.key!r} (already used by {first.key!r} at "
                    f"{_where(first.file, first.sid_line)})", a.file, a.sid_line), [a.key])
                continue
            if a.email and a.email in self.by_email:
                first = self.by_email[a.email]
                self.problem(Problem(
                    f"duplicate email {a.email} for {a.key!r} (already used by {first.key!r} at "
                    f"{_where(first.file, first.email_line)})", a.file, a.email_line), [a.key])
                continue
            self.specs[a.key] = a
            self.by_sid[sid] = a
            if a.email:
                self.by_email[a.email] = a

    def finish_roster(self) -> None:
        for key, a in self.specs.items():
            tzname = a.timezone or self.default_tz
            self.agents[key] = Agent(key, a.worker_sid, a.name, a.email, a.team, tzname,
                                     str(a.calendar) if a.calendar else None)
            self.plans[key] = _AgentPlan(zone(tzname) if a.timezone else self.default_zone)
            if a.team:
                self.teams.setdefault(a.team, []).append(key)

    def resolve_ref(self, ref: str) -> str | None:
        """A CSV's agent cell: roster key, worker SID or email."""
        if ref in self.specs:
            return ref
        spec = self.by_sid.get(ref.lower()) or self.by_email.get(ref.lower())
        return spec.key if spec else None

    def who(self, entry, what: str, loose: bool, report) -> list[str]:
        keys: list[str] = []
        for name, line in entry.agents:
            key = self.resolve_ref(name) if loose else (name if name in self.specs else None)
            if key is not None:
                keys.append(key)
            elif name in self.broken_defines:
                self.warnings.append(Problem(
                    f"{what}: agent {name!r} is defined in {self.broken_defines[name]}, which is in error: "
                    "not in force for them until that file is fixed", entry.file, line))
            else:
                known = ", ".join(sorted(self.specs)[:10]) + (", ..." if len(self.specs) > 10 else "")
                expected = "a roster name, email or worker SID" if loose else "a roster name"
                report(Problem(f"{what}: unknown agent {name!r} (expected {expected}: {known or 'none'})",
                               entry.file, line))
        for name, line in entry.teams:
            if name in self.teams:
                keys.extend(self.teams[name])
            if name in self.broken_teams:
                self.warnings.append(Problem(
                    f"{what}: team {name!r} has agents in {self.broken_teams[name]}, which is in error: not in "
                    "force for them until that file is fixed", entry.file, line))
            elif name not in self.teams:
                report(Problem(f"{what}: unknown team {name!r} (expected one of: "
                               f"{', '.join(sorted(self.teams)) or 'none'})", entry.file, line))
        return list(dict.fromkeys(keys))

    # -- shifts and days off ----------------------------------------------------
    def shifts(self, data, findex: int, loose: bool, build: bool, report) -> None:
        for shift in data.shifts:
            keys = self.who(shift, "shift", loose, report)
            if not build:
                continue
            self.activities.update(s.activity for s in shift.segments)
            for key in keys:
                plan = self.plans[key]
                if shift.date is not None:
                    plan.dated.setdefault(shift.date, []).append((shift, findex))
                elif shift.days is not None:
                    plan.weekly.append((shift, findex))
        for entry in data.days_off:
            days = [d for d, _ in entry.dates]
            if entry.start and entry.until and entry.until >= entry.start:
                n = (entry.until - entry.start).days + 1
                if n > MAX_DAYS_OFF_RANGE:
                    report(Problem(f"days_off: range of {n} days is too long (at most {MAX_DAYS_OFF_RANGE})",
                                   entry.file, entry.line))
                    n = 0
                days.extend(entry.start + timedelta(days=i) for i in range(n))
            keys = self.who(entry, "days_off", loose, report)
            if build:
                for key in keys:
                    for d in days:
                        self.plans[key].days_off.setdefault(d, entry.reason)

    def dated_conflicts(self) -> None:
        for key, plan in self.plans.items():
            for d, shifts in sorted(plan.dated.items()):
                if d in plan.days_off:
                    s = shifts[0][0]
                    self.problem(Problem(f"agent {key!r} has both a dated shift and a day off on {d} "
                                         "(expected one of them; the day off is in force)", s.file, s.line), [key])
                spans = sorted(((min(x.start_min for x in s.segments), max(x.end_min for x in s.segments), i, s)
                                for i, (s, _) in enumerate(shifts) if s.segments), key=lambda t: t[:3])
                for (a0, a1, _, sa), (b0, b1, _, sb) in zip(spans, spans[1:]):
                    if b0 < a1:
                        self.problem(Problem(
                            f"dated shifts for {key!r} on {d} overlap (this one and the one at "
                            f"{_where(sa.file, sa.line)}; expected one shift per time of day)", sb.file, sb.line),
                            [key])

    # -- calendars ------------------------------------------------------------------
    def attach(self, ics: IcsFile, findex: int, owned_by: list[str], build: bool, report) -> None:
        """Give a calendar's events to their agents: its roster owners, or ATTENDEE emails."""
        if build:
            for ev in ics.events:
                if not ev.all_day and str(ev.component.get("STATUS", "")).upper() != "CANCELLED":
                    self.activities.add(ev.summary)
        if owned_by:
            if build:
                for key in owned_by:
                    self.plans[key].calendars.append(AgentCalendar(ics.events, None, self.plans[key].tz, ics.file,
                                                                   findex))
            return
        mine: dict[str, list] = {}
        for uid, group in ics.groups().items():
            keys = sorted({self.by_email[e].key for ev in group for e in ev.attendees if e in self.by_email})
            if not keys:
                ev = group[0]
                named = sorted({e for g in group for e in g.attendees})
                got = (", ".join(f"mailto:{e}" for e in named) + " match no roster email") if named \
                    else "no ATTENDEE"
                report(Problem(
                    f"event {ev.summary!r}: unknown agent: {got} (expected an ATTENDEE:mailto: email of a roster "
                    "agent, or name this calendar in a roster entry's calendar:)", ev.file, ev.line))
                continue
            for key in keys:
                mine.setdefault(key, []).extend(group)
        if build:
            for key, events in mine.items():
                self.plans[key].calendars.append(AgentCalendar(events, self.specs[key].email, self.plans[key].tz,
                                                               ics.file, findex))

    # -- who a file is about ----------------------------------------------------------
    def touched_by(self, data, owners: list[str]) -> set[str]:
        out: set[str] = set(owners)
        if isinstance(data, YamlSchedule):
            out.update(data.defines)
            out.update(n for n in data.mentions)
            for t in data.teams:
                out.update(self.teams.get(t, []))
        elif isinstance(data, CsvSchedule):
            out.update(self.resolve_ref(r) or r for r in data.mentions)
        elif isinstance(data, IcsFile):
            out.update(self.by_email[e].key for e in data.mentions if e in self.by_email)
        return out


def load_folder(folder: Path, default_tz: str, time_off: Iterable[str] = DEFAULT_TIME_OFF,
                previous: LoadResult | None = None, now: float | None = None) -> LoadResult:
    """Read every schedule file; build a Schedule from every file (version) that can be used.

    ``previous`` is the last load's result: a file that is now in error keeps
    its last good version from it, and files unchanged since are not re-read.
    """
    now = time.time() if now is None else now
    folder = Path(folder)
    try:
        zone(default_tz)
    except ValueError as exc:
        p = Problem(f"default time zone: {exc}")
        return LoadResult(None, {"": FileStatus("", [p], "nothing")}, [p], [], {}, {})
    if not folder.is_dir():
        p = Problem("schedules folder not found (see 'schedules:' in config.yaml)", str(folder))
        return LoadResult(None, {str(folder): FileStatus(str(folder), [p], "nothing")}, [p], [], {}, {})
    off_names = {str(n).strip().lower(): str(n).strip() for n in time_off}
    old_parsed = previous.parsed if previous else {}
    old_good = previous.good if previous else {}
    warnings: list[Problem] = []
    files = _files(folder)
    if not files:
        warnings.append(Problem("no schedule files (*.yaml, *.yml, *.ics, *.csv): nobody is scheduled", str(folder)))

    parsed: dict[str, Parsed] = {}
    good: dict[str, Parsed] = {}

    def read(path: Path) -> Parsed:
        key = str(path)
        cached = old_parsed.get(key)
        p = cached if cached is not None and cached.still_valid(path) else _parse(path, off_names, now)
        parsed[key] = p
        if p.ok:
            good[key] = p
        elif key in old_good:
            good[key] = old_good[key]
        return p

    for path in files:
        read(path)
    b = _Build(default_tz, off_names)

    def used(key: str) -> Parsed | None:
        p = parsed[key]
        return p if p.ok else good.get(key)

    # roster first: every other check needs it
    broken_calendars: dict[Path, tuple[str, str]] = {}  # calendar named in a broken roster file → (agent, file)
    for path in files:
        p = parsed[str(path)]
        if p.kind != "yaml":
            continue
        u = used(str(path))
        if u is not None:
            b.roster(u.data)
        if not p.ok and isinstance(p.data, YamlSchedule):
            for name in p.data.defines:
                b.broken_defines.setdefault(name, p.file)
            if u is None:  # with a last good version in force, its team members still are
                for team in p.data.defined_teams:
                    b.broken_teams.setdefault(team, p.file)
            for cal, name in p.data.calendars.items():
                broken_calendars.setdefault(cal, (name, p.file))
    b.finish_roster()
    for name in list(b.broken_defines):
        if name in b.specs:
            del b.broken_defines[name]  # its last good version (or another file) still defines it

    # calendars named by roster entries outside the folder are read like the folder's own
    owners: dict[Path, list[str]] = {}
    for key, a in b.specs.items():
        if a.calendar:
            owners.setdefault(a.calendar, []).append(key)
    inside = {p.resolve() for p in files}
    outside = sorted(p for p in owners if p not in inside)
    for path in outside:
        read(path)
    order = [str(p) for p in files] + [str(p) for p in outside]
    index = {f: i for i, f in enumerate(order)}

    def reporter(build: bool, last_good: bool, file: str):
        def report(problem: Problem) -> None:
            if build and last_good:
                # the file's current text is in error and reported as such; its last good version
                # no longer fits the other files either: say so, without counting it twice
                warnings.append(Problem(f"(last good version) {problem.message}", problem.file, problem.line))
            else:
                b.problem(problem)
        return report

    for f in order:
        p = parsed[f]
        u = used(f)
        for version, build in ((u, True), (p if p is not u else None, False)):
            if version is None or version.data is None or version.kind not in ("yaml", "csv"):
                continue
            b.shifts(version.data, index[f], version.kind == "csv", build, reporter(build, version is not p, f))
    b.dated_conflicts()
    for f in order:
        p = parsed[f]
        if p.kind != "ics":
            continue
        owned_by = owners.get(Path(f).resolve(), []) or owners.get(Path(f), [])
        orphan = broken_calendars.get(Path(f).resolve())
        if not owned_by and orphan and orphan[0] not in b.specs:
            # its owner's roster entry is in a broken file: not a shared calendar, just not in force yet
            warnings.append(Problem(f"calendar of agent {orphan[0]!r}, whose roster entry in {orphan[1]} is in "
                                    "error: not in force until that file is fixed", f))
            b.status.setdefault(f, FileStatus(f)).agents.add(orphan[0])
            continue
        u = used(f)
        for version, build in ((u, True), (p if p is not u else None, False)):
            if version is None or version.data is None:
                continue
            b.attach(version.data, index[f], owned_by, build, reporter(build, version is not p, f))

    # -- statuses: each file's own problems, what is in force, whom it affects ------------------
    signature = []
    for f in order:
        p = parsed[f]
        u = used(f)
        signature.append((f, id(u.data) if u else None))
        warnings.extend(p.warnings)
        st = b.status.setdefault(f, FileStatus(f))
        cross = list(st.problems)
        st.problems = p.problems + cross
        if not p.ok:
            st.in_force = (f"last good version, read at {iso(int(u.read_at * 1000))}" if u is not None
                           else "nothing")
            owned = owners.get(Path(f).resolve(), [])
            st.agents.update(owned)
            for version in (p, u):
                if version is not None and version.data is not None:
                    st.agents |= b.touched_by(version.data, owned)
                    if isinstance(version.data, YamlSchedule):
                        st.sids.update(a.worker_sid for a in version.data.agents)
            st.agents_unknown = not st.agents and (p.data is None)
        elif cross:
            st.in_force = "this version, without the entries in error"
        if st.problems:
            was = previous.files.get(f) if previous else None
            st.since = was.since if was is not None and not was.ok and was.since else now
    statuses = {f: b.status[f] for f in order}
    for f, st in b.status.items():  # problems of files outside ``order`` (should not happen; never lose one)
        statuses.setdefault(f, st)
    for st in statuses.values():
        st.sids.update(b.agents[k].worker_sid for k in st.agents if k in b.agents)
    problems = [q for st in statuses.values() for q in st.problems]
    schedule = Schedule(b.agents, b.plans, default_tz, b.activities, list(dict.fromkeys(warnings + b.warnings)),
                        order)
    return LoadResult(schedule, statuses, problems, schedule.warnings, parsed, good, tuple(signature))


def load_schedules(folder: Path, default_tz: str, time_off: Iterable[str] = DEFAULT_TIME_OFF) -> Schedule:
    """Read every schedule file in ``folder``; raise ScheduleError listing every problem of every file."""
    result = load_folder(folder, default_tz, time_off)
    if result.problems:
        raise ScheduleError(problems=result.problems)
    return result.schedule


class ScheduleSource:
    """The schedules in force, reloaded when their files change, with a last good version per file.

    The interface the engine uses is the one of ``reload.Reloadable`` (``check()``,
    ``status()``, ``current``, ``errors``, ``version``), plus ``agent_problem()`` for the
    board's mark on agents whose schedule file is broken.
    """

    name = "schedules"

    def __init__(self, folder: Path, default_tz: str, time_off: Iterable[str], clock=time.time):
        self.folder = Path(folder)
        self.default_tz = default_tz
        self.time_off = tuple(time_off)
        self._clock = clock
        self._lock = threading.Lock()
        self._fp: tuple | None = None
        self._outside: list[Path] = []
        self.result: LoadResult | None = None
        self._index: tuple | None = None
        self.current: Schedule | None = None
        self.errors: list[str] = []
        self.loaded_at: float | None = None
        self.version = 0  # bumps whenever a different schedule is put in force

    def _fingerprint(self) -> tuple:
        extra = tuple((str(p), *_stamp(p)) for p in self._outside)
        return folder_fingerprint(self.folder, PATTERNS) + extra

    def check(self) -> bool:
        """Reload if any file changed. True when a different schedule was put in force."""
        fp = self._fingerprint()
        with self._lock:
            if fp == self._fp:
                return False
            self._fp = fp
            before = self.result
            try:
                result = load_folder(self.folder, self.default_tz, self.time_off, before, self._clock())
            except Exception as exc:  # noqa: BLE001 - a loader bug must not take the service down
                self.errors = [f"could not load the schedule files ({reason(exc)})"]
                log.exception("schedules: loading failed, keeping the schedules in force",
                              extra={"event": "reload_failed"})
                return False
            self._log_changes(before, result)
            if result.schedule is None:  # nothing can be read at all: keep what is in force
                self.errors = [str(p) for p in result.problems]
                if before is not None and before.schedule is not None:
                    result = LoadResult(before.schedule, result.files, result.problems, result.warnings,
                                        before.parsed, before.good, before.signature)
                self.result = result
                return False
            self.result = result
            self.errors = [str(p) for p in result.problems]
            self._outside = [Path(f) for f in result.schedule.files if not _inside(Path(f), self.folder)]
            if before is not None and before.schedule is not None and result.signature == before.signature \
                    and self.current is not None:
                return False  # the same file versions are in force (e.g. a broken edit of one file)
            self.current = result.schedule
            self.loaded_at = self._clock()
            self.version += 1
            broken = result.broken
            log.info("schedules: loaded %d file(s), %d agent(s)%s", len(result.files), len(result.schedule.agents),
                     f"; {len(broken)} file(s) in error" if broken else "", extra={"event": "schedules_loaded"})
            return True

    def _log_changes(self, before: LoadResult | None, after: LoadResult) -> None:
        """Log each problem once, when it appears, one bounded line each; and each fix."""
        old = before.files if before else {}
        for f, st in after.files.items():
            was = old.get(f)
            if st.ok:
                if was is not None and not was.ok:
                    log.info("schedules: %s fixed, this version is in force", f, extra={"event": "schedule_fixed"})
                continue
            seen = set(was.problems) if was is not None else set()
            new = [p for p in st.problems if p not in seen]
            if not new:
                continue
            log.error("schedules: %s", st.line(), extra={"event": "reload_rejected"})
            for p in new[:MAX_LOGGED_PER_FILE]:
                log.error("schedules: %s", clip(str(p), 500), extra={"event": "schedule_problem"})
            if len(new) > MAX_LOGGED_PER_FILE:
                log.error("schedules: %s: %d more problem(s) ('adherence check' lists them all)", f,
                          len(new) - MAX_LOGGED_PER_FILE, extra={"event": "schedule_problem"})

    def _expansion(self) -> dict[str, tuple[float, set[str], list[Problem]]]:
        out: dict[str, tuple[float, set[str], list[Problem]]] = {}
        sched = self.current
        if sched is None:
            return out
        for problem, (since, agents) in list(sched.expansion_problems.items()):
            f = problem.file or ""
            s, a, ps = out.get(f, (since, set(), []))
            out[f] = (min(s, since), a | agents, ps + [problem])
        return out

    def status(self) -> dict:
        """For /health: bounded in size whatever the files hold."""
        result = self.result
        broken = [st for st in result.files.values() if not st.ok] if result else []
        errors = list(self.errors)
        files = []
        affected: set[str] = set()
        for st in broken:
            affected |= st.agents
            files.append({"file": st.file, "since": iso(int(st.since * 1000)) if st.since else None,
                          "in_force": st.in_force, "errors": len(st.problems),
                          "agents": sorted(st.agents)[:MAX_AGENTS_LISTED], "agents_count": len(st.agents),
                          "agents_unknown": st.agents_unknown})
        for f, (since, agents, problems) in self._expansion().items():
            affected |= agents
            errors += [str(p) for p in problems]
            files.append({"file": f, "since": iso(int(since * 1000)), "in_force": "partly (expansion failed)",
                          "errors": len(problems), "agents": sorted(agents)[:MAX_AGENTS_LISTED],
                          "agents_count": len(agents), "agents_unknown": False})
        shown = [clip(e, 500) for e in errors[:MAX_STATUS_ERRORS]]
        if len(errors) > MAX_STATUS_ERRORS:
            shown.append(f"... and {len(errors) - MAX_STATUS_ERRORS} more ('adherence check' lists them all)")
        return {
            "ok": not errors and self.current is not None,
            "version": self.version,
            "loaded_at": self.loaded_at,
            "files_total": len(result.files) if result else 0,
            "files_in_error": len(files),
            "agents_affected": len(affected),
            "errors": shown,
            "broken_files": files[:MAX_STATUS_ERRORS],
        }

    def agent_problem(self, key_or_sid: str | None) -> dict | None:
        """Why this agent's schedule may be wrong or missing: the broken files that touch them, or None."""
        if not key_or_sid or self.result is None:
            return None
        keys = {key_or_sid}
        sched = self.current
        if sched is not None:
            a = sched.agent(key_or_sid)
            if a is not None:
                keys = {a.key, a.worker_sid}
        result = self.result
        index = self._index
        if index is None or index[0] is not result:  # built once per load: the board asks for every agent
            by_agent: dict[str, list[FileStatus]] = {}
            for st in result.files.values():
                if not st.ok:
                    for k in st.agents | st.sids:
                        by_agent.setdefault(k, []).append(st)
            index = self._index = (result, by_agent)
        found = {id(st): st for k in keys for st in index[1].get(k, [])}
        hits = [(st.since, st.file, st.in_force) for st in found.values()]
        hits += [(since, f, "partly (expansion failed)") for f, (since, agents, _) in self._expansion().items()
                 if agents & keys]
        if not hits:
            return None
        since = min(h[0] for h in hits if h[0]) if any(h[0] for h in hits) else None
        return {"since": iso(int(since * 1000)) if since else None,
                "files": sorted({h[1] for h in hits}),
                "in_force": sorted({h[2] for h in hits})}


def schedule_source(config) -> ScheduleSource:
    """The hot-reloading schedules for ``config``.

    Watches the schedules folder, plus any calendar a roster entry names
    outside it (known once a load has read the roster).
    """
    return ScheduleSource(Path(config.schedules), config.timezone, config.time_off)


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False
