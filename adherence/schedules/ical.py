"""iCalendar (.ics) schedules: each VEVENT is one segment, SUMMARY its activity.

Parsing is ``icalendar``'s and recurrence expansion is
``recurring-ical-events``' (RRULE, RDATE, EXDATE, RECURRENCE-ID overrides,
DURATION). What this module adds:

- Google exports: ``X-WR-TIMEZONE`` is applied with ``x-wr-timezone``
  (UTC and floating times become that zone's wall clock, so a weekly event
  keeps its local hour across DST).
- Outlook/Exchange exports: Windows zone names (``Eastern Standard Time``)
  are resolved by icalendar (from the file's VTIMEZONE, else the CLDR
  Windows→IANA table); an unknown TZID is an error, not silently floating.
- Floating times take the agent's zone.
- Cancelled occurrences are dropped; all-day events are time off when their
  SUMMARY is a configured time-off name, else ignored with a warning.
- Problems name the file and, where it can be found, the line.
"""

from __future__ import annotations

import logging
import re
import warnings as warnings_module
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events
import x_wr_timezone
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

from ..errors import Problem
from ..timeutil import UTC, to_ms, zone
from ..yamlfile import short

log = logging.getLogger(__name__)

SRC = "X-ADHERENCE-SRC"  # tag put on every parsed VEVENT; occurrences carry it back to us


@dataclass
class IcsEvent:
    """One VEVENT as parsed, with where it came from."""

    component: icalendar.Event
    file: str
    file_index: int
    index: int  # position in the file (later listed = larger)
    line: int | None
    uid: str
    summary: str
    attendees: frozenset[str]  # lower-case emails that did not decline
    all_day: bool
    time_off: bool

    @property
    def source(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file

    @property
    def tag(self) -> str:
        return str(self.index)  # unique within its file; an AgentCalendar never mixes files


@dataclass
class IcsFile:
    file: str
    file_index: int
    events: list[IcsEvent] = field(default_factory=list)
    mentions: set[str] = field(default_factory=set)  # every ATTENDEE email, to flag them when the file is broken

    def groups(self) -> dict[str, list[IcsEvent]]:
        """Events by UID: a recurring master with its RECURRENCE-ID overrides."""
        out: dict[str, list[IcsEvent]] = {}
        for ev in self.events:
            out.setdefault(ev.uid, []).append(ev)
        return out


@dataclass
class Occurrence:
    start: int | None  # epoch ms; None for all-day
    end: int | None
    days: list[date]  # all-day occurrences: the dates covered
    event: IcsEvent


def resolve_zone_name(name: str) -> ZoneInfo:
    """IANA or Windows zone name → ZoneInfo; ValueError naming what was expected."""
    try:
        return zone(name)
    except ValueError:
        olson = WINDOWS_TO_OLSON.get(str(name).strip())
        if olson:
            return zone(olson)
        raise ValueError(
            f"unknown time zone {name!r} (expected an IANA name such as America/New_York, "
            "or a Windows name such as Eastern Standard Time)"
        ) from None


class _Lines:
    """Line numbers of the VEVENTs and their properties in the raw text."""

    def __init__(self, text: str):
        self.lines = text.splitlines()
        self.vevents: list[tuple[int, int]] = []  # (begin, end) 0-based
        start = None
        for i, raw in enumerate(self.lines):
            s = raw.strip().upper()
            if s == "BEGIN:VEVENT":
                start = i
            elif s == "END:VEVENT" and start is not None:
                self.vevents.append((start, i))
                start = None

    def of(self, k: int | None, prop: str | None = None) -> int | None:
        if k is None or k >= len(self.vevents):
            return None
        begin, end = self.vevents[k]
        if prop:
            p = prop.upper()
            for i in range(begin, end + 1):
                line = self.lines[i]
                if line[:1] in (" ", "\t"):
                    continue
                head = line[: len(p) + 1].upper()
                if head in (p + ":", p + ";"):
                    return i + 1
        return begin + 1


def _attendees(component: icalendar.Event) -> frozenset[str]:
    values = component.get("ATTENDEE")
    if values is None:
        return frozenset()
    if not isinstance(values, list):
        values = [values]
    out = set()
    for v in values:
        params = getattr(v, "params", {}) or {}
        if str(params.get("PARTSTAT", "")).upper() == "DECLINED":
            continue
        text = str(v).strip()
        if text.lower().startswith("mailto:"):
            text = text[7:]
        if "@" in text:
            out.add(text.strip().lower())
    return frozenset(out)


_TZID = re.compile(r"TZID=\"?([^:;\"]+)")


def _vendor_prefix_guess(tzid: str) -> str | None:
    """The IANA zone icalendar takes a ``/vendor/.../Area/City`` TZID to mean, if it has to guess."""
    clean = tzid.strip("/")
    if "/" not in clean or _is_zone(clean):
        return None
    parts = clean.split("/")
    for i in range(1, len(parts)):
        if _is_zone("/".join(parts[i:])):
            return "/".join(parts[i:])
    return None


def _is_zone(name: str) -> bool:
    try:
        zone(name)
        return True
    except ValueError:
        return False


def _dt(component: icalendar.Event, name: str):
    prop = component.get(name)
    return None if prop is None else getattr(prop, "dt", None)


# Properties the schedule is made of: when one of them cannot be read, the event cannot be
# either. Any other property (DESCRIPTION, X-APPLE-..., ORGANIZER) is ignored when broken.
ESSENTIAL = ("DTSTART", "DTEND", "DURATION", "RECURRENCE-ID", "RDATE", "EXDATE", "RRULE", "SUMMARY", "STATUS")
_QUOTED_LINE = re.compile(r"parsed into parts: '((?:[^'\\]|\\.)*)'")
MAX_MESSAGE = 300  # characters of a library's message that a problem quotes


def clip(text: str, limit: int = MAX_MESSAGE) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def reason(exc: BaseException) -> str:
    """A library exception as a reason a planner can read: never empty."""
    text = str(exc).strip()
    return clip(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


def _unparsed_name(message: str) -> tuple[str | None, str | None]:
    """(property name, raw content line) from icalendar's "could not be parsed" message, when it quotes one."""
    m = _QUOTED_LINE.search(message)
    if not m:
        return None, None
    raw = m.group(1)
    name = re.split(r"[;:=]", raw, maxsplit=1)[0].strip().upper()
    return (name or None), raw


def _line_of_text(lines: list[str] | None, raw: str | None) -> int | None:
    if not lines or not raw:
        return None
    for i, line in enumerate(lines):
        if line.strip() == raw.strip() or (len(raw) > 20 and raw[:40] in line):
            return i + 1
    return None


def _check_event(ev: icalendar.Event, file: str, line_of, problems: list[Problem], warnings: list[Problem],
                 text_lines: list[str] | None = None) -> bool:
    """Validate one VEVENT on its own, mending what has one clear reading; False when it cannot be used.

    Each mend is a warning with file:line, so planners know what was assumed.
    """
    ok = True
    label = f"event {short(str(ev.get('SUMMARY', '')).strip() or str(ev.get('UID', '?')))}"
    for prop, message in getattr(ev, "errors", []) or []:
        if prop == "RRULE" and _mend_rrule(ev):
            warnings.append(Problem(f"{label}: RRULE has spaces between its values ({clip(message)}); read "
                                    f"without them: {ev['RRULE'].to_ical().decode()}", file, line_of("RRULE")))
            continue
        raw = None
        if prop is None:
            prop, raw = _unparsed_name(str(message))
        line = (_line_of_text(text_lines, raw) if raw else None) or line_of(prop)
        name = prop or "a property"
        if prop and str(prop).upper() in ESSENTIAL:
            problems.append(Problem(f"{label}: bad {name}: {clip(message)}", file, line))
            ok = False
        else:
            warnings.append(Problem(f"{label}: {name} ignored, it cannot be read: {clip(message)}", file, line))
    if not ok:
        return False
    for name in ("DTSTART", "DTEND", "DURATION", "RECURRENCE-ID", "RDATE", "EXDATE", "RRULE"):
        prop = ev.get(name)
        if prop is None:
            continue
        try:  # icalendar parses values lazily: a malformed one raises only when read
            for p in prop if isinstance(prop, list) else [prop]:
                getattr(p, "dt", None) if name != "RRULE" else dict(p)
        except Exception as exc:  # noqa: BLE001 - any parse failure is the planner's file, not our crash
            problems.append(Problem(f"{label}: bad {name} value ({reason(exc)})", file, line_of(name)))
            ok = False
    if not ok:
        return False
    start = _dt(ev, "DTSTART")
    if start is None:
        problems.append(Problem(f"{label}: DTSTART is missing (expected the start date/time)", file, line_of(None)))
        return False
    if not str(ev.get("SUMMARY", "")).strip():
        problems.append(Problem("event has no SUMMARY (expected the activity name, e.g. Available)", file,
                                line_of("DTSTART")))
        ok = False
    for name in ("DTSTART", "DTEND", "RECURRENCE-ID"):
        prop = ev.get(name)
        if prop is None:
            continue
        tzid = prop.params.get("TZID") if hasattr(prop, "params") else None
        dt = getattr(prop, "dt", None)
        if tzid and isinstance(dt, datetime) and dt.tzinfo is None:
            problems.append(Problem(
                f"{label}: unknown time zone {short(tzid)} in {name} (expected an IANA name such as "
                "America/New_York, a Windows name such as Eastern Standard Time, or a VTIMEZONE with that TZID "
                "in the file)", file, line_of(name)))
            ok = False
    end = _dt(ev, "DTEND")
    if end is not None and "DURATION" in ev:
        # RFC 5545 forbids both; some exporters write both. recurring-ical-events reads DTEND then, so do we.
        warnings.append(Problem(f"{label}: has both DTEND and DURATION; DTEND is used, DURATION ignored", file,
                                line_of("DURATION")))
        del ev["DURATION"]
    if end is not None and isinstance(start, datetime) != isinstance(end, datetime):
        end = _mend_mixed_end(ev, start, end)
        warnings.append(Problem(
            f"{label}: DTSTART and DTEND mix a date and a date-time; read as ending {end.isoformat()} "
            f"(the end converted to the start's kind)", file, line_of("DTEND")))
    if end is not None and ok:
        try:
            backwards = end < start
        except TypeError:  # floating vs zoned
            s, e = (d.replace(tzinfo=None) if isinstance(d, datetime) else d for d in (start, end))
            backwards = e < s
        if backwards:
            # recurring-ical-events reads such an event with its ends swapped (its issue 132): so do we, aloud
            warnings.append(Problem(f"{label}: DTEND {end} is before DTSTART {start}; read with the two swapped",
                                    file, line_of("DTEND")))
            for name, value in (("DTSTART", end), ("DTEND", start)):
                params = dict(getattr(ev.get(name), "params", {}) or {})
                del ev[name]
                ev.add(name, value, parameters={k: v for k, v in params.items() if k == "VALUE"} or None)
    return ok


def _prefer_iana(ev: icalendar.Event, cache: dict) -> None:
    """Use the IANA zone for a VTIMEZONE that says the same thing.

    Outlook writes VTIMEZONEs whose rules start in 1601; icalendar turns them into
    dateutil zones that walk four centuries of transitions on every offset lookup,
    so one week of one agent's calendar took 0.2 s to expand. When the TZID names a
    zone we know (IANA or Windows name) and both give the same offsets in winter and
    summer of the event's year, the values are switched to that ZoneInfo: same
    instants, a thousand times cheaper. Otherwise the file's own definition stays.
    """
    for name in ("DTSTART", "DTEND", "RECURRENCE-ID", "EXDATE", "RDATE"):
        prop = ev.get(name)
        for p in prop if isinstance(prop, list) else [prop] if prop is not None else []:
            for v in getattr(p, "dts", None) or [p]:
                dt = getattr(v, "dt", None)
                if not isinstance(dt, datetime) or dt.tzinfo is None or isinstance(dt.tzinfo, ZoneInfo):
                    continue
                tzid = (getattr(v, "params", None) or {}).get("TZID") or (getattr(p, "params", None) or {}).get("TZID")
                key = (id(dt.tzinfo), tzid, dt.year)
                if key not in cache:
                    cache[key] = _same_zone(dt.tzinfo, tzid, dt.year)
                if cache[key] is not None:
                    v.dt = dt.replace(tzinfo=cache[key])


def _same_zone(tzinfo, tzid: str | None, year: int) -> ZoneInfo | None:
    if not tzid:
        return None
    try:
        iana = resolve_zone_name(tzid)
    except ValueError:
        return None
    try:
        for month in (1, 4, 7, 10):
            probe = datetime(year, month, 15, 12)
            if probe.replace(tzinfo=tzinfo).utcoffset() != probe.replace(tzinfo=iana).utcoffset():
                return None
    except Exception:  # noqa: BLE001 - a zone that cannot answer keeps the file's own definition
        return None
    return iana


def _mend_rrule(ev: icalendar.Event) -> bool:
    """``BYDAY=MO, TU, WE`` (spaces after commas, as some Exchange exports write) has one reading."""
    prop = ev.get("RRULE")
    if prop is None or isinstance(prop, list) or " " not in str(prop):
        return False
    try:
        rule = icalendar.vRecur.from_ical(str(prop).replace(" ", ""))
    except Exception:  # noqa: BLE001 - not the spaces, then: the rule stays an error
        return False
    del ev["RRULE"]
    ev.add("RRULE", rule)
    return True


def _mend_mixed_end(ev: icalendar.Event, start, end):
    """A date end on a timed event ends at that date's midnight in the start's zone; a timed end on an
    all-day event ends the day it falls in (the next day when it is after midnight)."""
    if isinstance(start, datetime):
        new = datetime(end.year, end.month, end.day, tzinfo=start.tzinfo)
    else:
        new = end.date() if end.time() == datetime.min.time() else end.date() + timedelta(days=1)
    del ev["DTEND"]
    ev.add("DTEND", new)
    return new


def parse_ics_file(path: Path, file_index: int, time_off: dict[str, str], problems: list[Problem],
                   warnings: list[Problem]) -> IcsFile | None:
    """Read one .ics file; append problems and warnings. None if unusable.

    icalendar warns when it guesses a zone (e.g. Lightning's /mozilla.org/.../America/New_York),
    while parsing or later when a value is first read: the planner should hear about it as a
    schedule warning rather than a Python one, so the whole parse runs under catch_warnings.
    """
    mine: list[Problem] = []
    with warnings_module.catch_warnings(record=True) as caught:
        warnings_module.simplefilter("always")
        out = _parse_ics_file(path, file_index, time_off, problems, mine)
    # a recurring event and its moved occurrences (or a yearly holiday written once a year) would say
    # the same thing once per VEVENT: say it once, with where else it applies
    by_message: dict[str, list[Problem]] = {}
    for w in mine:
        by_message.setdefault(w.message, []).append(w)
    for message, same in by_message.items():
        if len(same) > 1:
            others = sorted({w.line for w in same[1:] if w.line})
            lines = ", ".join(str(n) for n in others[:5]) + (", ..." if len(others) > 5 else "")
            message = f"{message} (also at line{'s' if len(others) > 1 else ''} {lines})" if others else message
        warnings.append(Problem(message, same[0].file, same[0].line))
    caught_text = [str(w.message) for w in caught]
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError:
        text = ""
    for tzid in sorted(set(_TZID.findall(text))):
        # icalendar guesses a zone once per process and warns only then: say it again
        # ourselves, so every load (a hot reload, ``check``) tells the planner
        if not any(tzid in m for m in caught_text):
            guess = _vendor_prefix_guess(tzid)
            if guess:
                caught_text.append(
                    f"Timezone {tzid!r} is a globally unique TZID; guessing it means {guess!r} by stripping "
                    "the vendor prefix. This may be wrong. See RFC 5545 section 3.2.19.")
    for message in dict.fromkeys(caught_text):
        warnings.append(Problem(message, str(path)))
    return out


def _parse_ics_file(path: Path, file_index: int, time_off: dict[str, str], problems: list[Problem],
                    warnings: list[Problem]) -> IcsFile | None:
    """Read one .ics file; append problems and warnings. None if unusable.

    ``time_off`` maps lower-case time-off names to their names as configured.
    """
    fname = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        problems.append(Problem(f"cannot read: {exc.strerror}", fname))
        return None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    text = data.decode("utf-8", errors="replace")
    lines = _Lines(text)
    if not text.lstrip().upper().startswith("BEGIN:VCALENDAR"):
        problems.append(Problem("not an iCalendar file (expected it to start with BEGIN:VCALENDAR)", fname, 1))
        return None
    try:
        calendars = icalendar.Calendar.from_ical(data, multiple=True)
    except Exception as exc:  # icalendar raises ValueError and friends on malformed text
        problems.append(Problem(f"not a valid iCalendar file: {reason(exc)}", fname))
        return None
    if not calendars:
        problems.append(Problem("not a valid iCalendar file (expected BEGIN:VCALENDAR ... END:VCALENDAR)", fname, 1))
        return None
    out = IcsFile(fname, file_index)
    k = -1
    parsed = []
    for cal in calendars:
        if cal.name != "VCALENDAR":
            problems.append(Problem(f"expected a VCALENDAR, found {cal.name}", fname, 1))
            continue
        if str(cal.get("CALSCALE", "GREGORIAN")).upper() != "GREGORIAN":
            problems.append(Problem("only GREGORIAN calendars are supported (CALSCALE)", fname))
            continue
        xwr = cal.get("X-WR-TIMEZONE")
        if xwr is not None:
            try:
                cal = x_wr_timezone.to_standard(cal, timezone=resolve_zone_name(str(xwr)))
            except ValueError as exc:
                problems.append(Problem(f"X-WR-TIMEZONE: {clip(exc)}", fname, _find(lines.lines, "X-WR-TIMEZONE")))
                continue
            cal.pop("X-WR-TIMEZONE", None)
        parsed.extend(cal.walk("VEVENT"))
    for ev in parsed:
        out.mentions.update(_attendees(ev))
    if len(parsed) != len(lines.vevents):
        if len(parsed) < len(lines.vevents):
            problems.append(Problem(
                f"could read only {len(parsed)} of {len(lines.vevents)} VEVENTs "
                "(check the BEGIN:VEVENT/END:VEVENT and END:VCALENDAR lines)", fname))
            return None
        lines = _Lines("")  # cannot pair events with lines: report the file only
    zones: dict = {}
    for k, ev in enumerate(parsed):
        def line_of(prop, k=k):
            return lines.of(k, prop) if prop else lines.of(k)

        if not _check_event(ev, fname, line_of, problems, warnings, lines.lines):
            continue
        _prefer_iana(ev, zones)
        start = _dt(ev, "DTSTART")
        summary = str(ev.get("SUMMARY", "")).strip()
        all_day = not isinstance(start, datetime)
        is_off = all_day and summary.lower() in time_off
        line = line_of("SUMMARY") or line_of("UID") or line_of(None)
        ev[SRC] = str(k)
        item = IcsEvent(ev, fname, file_index, k, line, str(ev.get("UID", f"no-uid-{k}")), summary,
                        _attendees(ev), all_day, is_off)
        if all_day and not is_off and str(ev.get("STATUS", "")).upper() != "CANCELLED":
            warnings.append(Problem(
                f"all-day event {summary!r} ignored: all-day events count only as time off "
                f"(one of: {', '.join(sorted(time_off.values()))})", fname, line))
        out.events.append(item)
    for uid, group in out.groups().items():
        _check_group(group, fname, problems)
    return out


def _find(lines: list[str], prop: str) -> int | None:
    for i, line in enumerate(lines):
        if line.upper().startswith(prop + ":") or line.upper().startswith(prop + ";"):
            return i + 1
    return None


def _calendar(components) -> icalendar.Calendar:
    cal = icalendar.Calendar()
    cal.add("VERSION", "2.0")
    cal.add("PRODID", "-//adherence//schedules//EN")
    for c in components:
        cal.add_component(c)
    return cal


# Expansion limits (docs/schedules.md): nobody works more than this many segments a day, and
# a calendar that says otherwise is a mistake (FREQ=MINUTELY) or an attack, not a schedule.
MAX_PER_DAY = 200  # occurrences of one event within any 24 hours
MAX_PER_WINDOW = 2_000  # occurrences of one agent's calendars in one expansion window (a week and 4 days)


def _check_group(group: list[IcsEvent], fname: str, problems: list[Problem]) -> None:
    """Check a recurring series at load time: too dense to be a schedule, or unreadable recurrence."""
    if not any(("RRULE" in e.component or "RDATE" in e.component) for e in group):
        return
    for ev in group:
        rules = ev.component.get("RRULE")
        for rule in rules if isinstance(rules, list) else [rules] if rules is not None else []:
            scale = dict(rule).get("RSCALE")
            if scale:
                problems.append(Problem(
                    f"event {short(ev.summary)}: RRULE uses RSCALE={clip(scale[0], 40)} (RFC 7529 calendar "
                    "scales), which cannot be expanded here; write the dates out with RDATE", fname, ev.line))
                return
        dense = _too_dense(ev.component)
        if dense:
            problems.append(Problem(f"event {short(ev.summary)}: {dense}", fname, ev.line))
            return
    start = _dt(group[0].component, "DTSTART")
    if isinstance(start, datetime):
        probe = start if start.tzinfo else start.replace(tzinfo=UTC)
    else:
        probe = datetime(start.year, start.month, start.day, tzinfo=UTC)
    try:
        query = recurring_ical_events.of(_calendar(e.component for e in group))
        query.between(probe - timedelta(days=1), probe + timedelta(days=8))
    except Exception as exc:  # the library raises several ValueError subclasses
        ev = group[0]
        problems.append(Problem(f"event {short(ev.summary)}: cannot expand its recurrence ({reason(exc)})",
                                fname, ev.line))


def _too_dense(component: icalendar.Event) -> str | None:
    """Why this event repeats more than MAX_PER_DAY times within 24 hours, or None.

    Walks each RRULE lazily from DTSTART (dateutil yields one occurrence at a time), so a
    FREQ=SECONDLY rule costs MAX_PER_DAY steps to refuse, not the 86,400 a day it would produce.
    A rule is periodic, so its first occurrences are as dense as it ever gets.
    """
    from dateutil.rrule import rrulestr

    start = _dt(component, "DTSTART")
    if start is None:
        return None
    naive = start.replace(tzinfo=None) if isinstance(start, datetime) else datetime(start.year, start.month, start.day)
    rules = component.get("RRULE")
    for rule in rules if isinstance(rules, list) else [rules] if rules is not None else []:
        parts = {k.upper(): v for k, v in dict(rule).items()}
        count = parts.pop("COUNT", [None])[0]
        until = parts.pop("UNTIL", [None])[0]
        if count is not None and int(count) <= MAX_PER_DAY:
            continue
        text = icalendar.vRecur(parts).to_ical().decode()
        try:
            it = iter(rrulestr(text, dtstart=naive))
            first = []
            for occ in it:
                if until is not None and _after_until(occ, until, start):
                    break
                first.append(occ)
                if len(first) > MAX_PER_DAY:
                    break
        except Exception:  # noqa: BLE001 - unreadable rules are reported by the expansion probe, with its reason
            return None
        if len(first) > MAX_PER_DAY and first[-1] - first[0] < timedelta(days=1):
            return (f"repeats more than {MAX_PER_DAY} times within 24 hours (RRULE:{clip(rule.to_ical().decode(), 120)}; "
                    f"a schedule has at most {MAX_PER_DAY} segments a day)")
    dates = component.get("RDATE")
    n = sum(len(getattr(r, "dts", []) or []) for r in (dates if isinstance(dates, list) else [dates] if dates else []))
    if n > MAX_PER_WINDOW * 50:
        return f"has {n:,} RDATE values (at most {MAX_PER_WINDOW * 50:,})"
    return None


def _after_until(occ: datetime, until, start) -> bool:
    if isinstance(until, datetime):
        if until.tzinfo is not None and isinstance(start, datetime) and start.tzinfo is not None:
            until = until.astimezone(start.tzinfo)
        return occ > until.replace(tzinfo=None)
    return occ.date() > until


class AgentCalendar:
    """The events of one agent, expanded lazily over a time span."""

    def __init__(self, events: list[IcsEvent], attendee: str | None, tz: ZoneInfo, file: str = "",
                 file_index: int = 0):
        self.events = events
        self.attendee = attendee  # events must name this email (attendee-based calendars)
        self.tz = tz
        self.file = file or (events[0].file if events else "")
        self.file_index = file_index  # order among files: at equal length, a later file wins
        self._by_tag = {e.tag: e for e in events}
        self._query = None

    def occurrences(self, start: datetime, end: datetime, report) -> list[Occurrence]:
        """Occurrences intersecting [start, end) (aware datetimes in the agent's zone).

        A calendar that cannot be expanded, or expands to more than MAX_PER_WINDOW
        occurrences, contributes nothing to this window and ``report(problem)`` is called:
        one agent's calendar must never stop the evaluator or take minutes of its tick.
        """
        if self._query is None:
            self._query = recurring_ical_events.of(_calendar(e.component for e in self.events),
                                                   skip_bad_series=True)
        try:
            found = self._query.between(start, end)
        except Exception as exc:  # noqa: BLE001 - a calendar must never crash the evaluator
            report(Problem(f"calendar cannot be expanded from {start.date()} to {end.date()} ({reason(exc)})",
                           self.file))
            return []
        if len(found) > MAX_PER_WINDOW:
            counts: dict[str, int] = {}
            for occ in found:
                tag = str(occ.get(SRC, ""))
                counts[tag] = counts.get(tag, 0) + 1
            worst = self._by_tag.get(max(counts, key=counts.get))
            report(Problem(
                f"calendar expands to {len(found):,} occurrences from {start.date()} to {end.date()}, more than "
                f"{MAX_PER_WINDOW:,}" + (f"; most from event {short(worst.summary)}" if worst else "")
                + " (ignored for these days)", self.file, worst.line if worst else None))
            return []
        out = []
        for occ in found:
            ev = self._by_tag.get(str(occ.get(SRC, "")))
            if ev is None:
                continue
            if str(occ.get("STATUS", "")).upper() == "CANCELLED":
                continue
            if self.attendee is not None and self.attendee not in _attendees(occ):
                continue  # an override that removed this agent
            s = _dt(occ, "DTSTART")
            e = _dt(occ, "DTEND")
            if isinstance(s, datetime):
                if e is None:
                    e = s
                s = s if s.tzinfo else s.replace(tzinfo=self.tz)
                e = e if e.tzinfo else e.replace(tzinfo=self.tz)
                if e > s:
                    out.append(Occurrence(to_ms(s), to_ms(e), [], ev))
            elif ev.time_off:
                e = e if isinstance(e, date) and e > s else s + timedelta(days=1)
                days = []
                d = s
                while d < e:
                    days.append(d)
                    d += timedelta(days=1)
                out.append(Occurrence(None, None, days, ev))
        return out
