"""CSV schedules: one row per segment, the shape WFM tools and spreadsheets export.

Header (any order, any case): ``agent,date,start,end,activity`` and an
optional ``timezone``. Each row is a segment of the shift on ``date``; all
the rows of one agent and one date in a file form one *dated* shift, so they
replace that agent's weekly YAML shifts on that date, exactly like a YAML
``date:`` shift. A row naming a time-off activity with empty start and end
is a day off (any other activity there is read as a day off with that
reason, and warned about). The same reading rules as YAML apply (end at or before start:
the next day; a row starting earlier than its shift's first row: after
midnight), so a spreadsheet and a YAML file that say the same thing give
the same segments.

``agent`` may be the roster key, the email or the worker SID, because a
WFM export knows agents by whatever the WFM tool knows them by; the loader
resolves it against the roster. This module only reads one file on its own.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from ..errors import Problem
from ..timeutil import parse_date, zone
from ..yamlfile import short
from .ical import clip
from .yamlfmt import DayOffSpec, SegSpec, ShiftSpec, parse_segment

REQUIRED = ("agent", "date", "start", "end", "activity")
OPTIONAL = ("timezone",)
MAX_ROWS = 200_000  # a year of 500 agents at one row a day is 182,500
MAX_FIELD = 200  # characters: longer cells are not schedule data


@dataclass
class CsvSchedule:
    file: str
    shifts: list[ShiftSpec] = field(default_factory=list)  # one per (agent, date), agents holds the raw reference
    days_off: list[DayOffSpec] = field(default_factory=list)
    mentions: set[str] = field(default_factory=set)  # every agent reference, to flag them when the file is broken


def _time(text: str) -> str:
    """``9:00``, ``09:00`` or ``09:00:00`` (whole minutes) → ``09:00``; ValueError otherwise."""
    t = text.strip()
    parts = t.split(":")
    if len(parts) == 3:
        if parts[2] not in ("00", "0"):
            raise ValueError(f"time {t!r} has seconds (expected whole minutes, HH:MM)")
        parts = parts[:2]
    if len(parts) != 2 or not all(p.isdigit() for p in parts) or len(parts[1]) != 2:
        raise ValueError(f"expected a time as HH:MM, got {short(t)}")
    return f"{int(parts[0]):02d}:{parts[1]}"


def parse_csv_file(path: Path, time_off: dict[str, str], problems: list[Problem],
                   warnings: list[Problem]) -> CsvSchedule | None:
    """Read one CSV schedule; append its problems; None when it cannot be read as a table at all.

    ``time_off`` maps lower-case time-off names to their configured spelling.
    """
    fname = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        problems.append(Problem(f"cannot read: {exc.strerror}", fname))
        return None
    try:
        text = raw.decode("utf-8-sig")  # Excel writes a byte-order mark
    except UnicodeDecodeError as exc:
        problems.append(Problem(f"not UTF-8 text ({exc.reason}; save the sheet as 'CSV UTF-8')", fname))
        return None
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","  # European spreadsheets use ';'
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    out = CsvSchedule(fname)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        problems.append(Problem(f"not a CSV table: {exc}", fname, 1))
        return None
    if header is None or not any(h.strip() for h in header):
        warnings.append(Problem("empty CSV file: nobody is scheduled by it", fname))
        return out
    names = [h.strip().lower() for h in header]
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        problems.append(Problem(
            f"header is missing {', '.join(missing)} (expected the columns {','.join(REQUIRED)} "
            f"and optionally {','.join(OPTIONAL)}; got {short(','.join(h.strip() for h in header))})", fname, 1))
        return None
    dup = sorted({n for n in names if n and names.count(n) > 1})
    if dup:
        problems.append(Problem(f"column {dup[0]!r} appears twice in the header", fname, 1))
        return None
    extra = [h for h in names if h and h not in REQUIRED + OPTIONAL]
    if extra:
        warnings.append(Problem(f"columns ignored: {clip(', '.join(extra), 200)} (read: {', '.join(REQUIRED + OPTIONAL)})",
                                fname, 1))
    col = {n: i for i, n in enumerate(names)}
    groups: dict[tuple[str, date, int], ShiftSpec] = {}
    try:
        for row in reader:
            line = reader.line_num
            if not any(c.strip() for c in row):
                continue
            if line > MAX_ROWS + 1:
                problems.append(Problem(f"more than {MAX_ROWS:,} rows (split the file, e.g. one per month)", fname,
                                        line))
                return out
            _row(out, row, col, fname, line, time_off, groups, problems, warnings)
    except csv.Error as exc:
        problems.append(Problem(f"not a CSV table: {exc}", fname, reader.line_num))
    out.shifts = list(groups.values())
    return out


def _row(out: CsvSchedule, row: list[str], col: dict[str, int], fname: str, line: int, time_off: dict[str, str],
         groups: dict, problems: list[Problem], warnings: list[Problem]) -> None:
    def cell(name: str) -> str:
        i = col.get(name)
        return row[i].strip() if i is not None and i < len(row) else ""

    def err(message: str) -> None:
        problems.append(Problem(message, fname, line))

    if any(len(c) > MAX_FIELD for c in row):
        err(f"a cell is longer than {MAX_FIELD} characters (expected agent, date, start, end, activity)")
        return
    agent = cell("agent")
    if not agent:
        err("agent is empty (expected a roster name, an email or a worker SID)")
        return
    out.mentions.add(agent)
    try:
        day = parse_date(cell("date"))
    except ValueError as exc:
        err(f"date: {exc}")
        return
    activity = cell("activity")
    if not activity:
        err("activity is empty (expected the activity name, e.g. Available)")
        return
    tzname = cell("timezone")
    tz = None
    if tzname:
        try:
            tz = zone(tzname)
        except ValueError as exc:
            err(f"timezone: {exc}")
            return
    start, end = cell("start"), cell("end")
    if not start and not end:
        reason = time_off.get(activity.lower())
        if reason is None:
            # a YAML day off may give any reason ("Dentist"), and an export writes it as such a row
            reason = activity
            warnings.append(Problem(f"start and end are empty: read as a day off with reason {short(activity)} "
                                    f"(time-off names: {', '.join(sorted(time_off.values()))})", fname, line))
        out.days_off.append(DayOffSpec([(agent, line)], [], [(day, line)], None, None, reason, fname, line))
        return
    if not start or not end:
        err(f"{'start' if not start else 'end'} is empty (expected HH:MM; leave both empty for a day off)")
        return
    try:
        s, e, _ = parse_segment(f"{_time(start)}-{_time(end)} {activity}")
    except ValueError as exc:
        err(str(exc))
        return
    shift = groups.get((agent, day, 0))
    if shift is None:
        shift = groups[(agent, day, 0)] = ShiftSpec([(agent, line)], [], None, day, None, None, [], fname, line)
    base = shift.segments[0].start_min if shift.segments else s
    offset = 1440 if s < base else 0  # earlier than the shift's first row: after midnight, as in YAML
    length = e - s if e > s else e + 1440 - s
    shift.segments.append(SegSpec(s + offset, s + offset + length, activity, line, tz))
