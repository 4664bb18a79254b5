"""The simulated contact center's static side: SIDs, teams, roster, shifts.

Everything here is a pure function of the seed, so the roster written to
``schedules/roster.yaml`` and the agents that produce the feed always agree.
Schedules are planned in local wall-clock time (what a planner writes) and
converted to UTC epoch milliseconds for the behaviour simulation.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from ..timeutil import from_ms, to_ms

HOUR = 3_600_000
MINUTE = 60_000


def sid(prefix: str, rng: random.Random) -> str:
    """``prefix`` + 32 lowercase hex digits, like every Twilio SID."""
    return f"{prefix}{rng.getrandbits(128):032x}"


@dataclass(frozen=True)
class ChannelSpec:
    name: str  # task_channel_name
    capacity: int
    offer_mean_s: float  # mean idle seconds before a task is offered while capacity is free
    talk_median_s: float  # median handling time (accepted → wrapping)
    wrap_s: tuple[int, int]  # wrap-up range (wrapping → completed)
    ring_s: tuple[int, int]  # ring range (created → accepted)
    timeout_s: int  # reservation timeout


VOICE = ChannelSpec("voice", 1, 50, 240, (15, 120), (2, 10), 15)
CHAT2 = ChannelSpec("chat", 2, 100, 480, (5, 60), (2, 20), 30)
CHAT4 = ChannelSpec("chat", 4, 70, 540, (5, 60), (2, 20), 30)

# team → channels; shares of the workforce
TEAMS: dict[str, tuple[ChannelSpec, ...]] = {
    "tier1": (VOICE, CHAT2),  # voice and chat, multitasking
    "tier2": (VOICE,),  # voice only
    "digital": (CHAT4,),  # chat only, four at a time
}
TEAM_SHARES = (("tier1", 0.5), ("tier2", 0.3), ("digital", 0.2))

# actual activities (TaskRouter activity names)
ACTIVITIES = ("Offline", "Available", "Unavailable", "Break", "Lunch", "Meeting")

SHIFT_MS = 8 * HOUR

_FIRST = (
    "Alice Bob Carmen David Elena Farid Grace Hugo Ines Jamal Keiko Liam Maya Noah Olga Pedro Quinn Rosa "
    "Samir Tara Umar Vera Wei Xena Yusuf Zoe Aaron Bianca Chen Dana Emil Fatima Gabriel Hana Ivan Julia "
    "Kofi Lena Marco Nadia Oscar Priya Rafael Sofia Tomas Ursula Victor Wanda Yara Zane Amir Beatriz "
    "Connor Dmitri Esther Felix Greta Hassan Ingrid Jonas"
).split()
_LAST = (
    "Smith Garcia Chen Okafor Novak Rossi Kim Silva Nguyen Patel Mueller Dubois Tanaka Jensen Kowalski "
    "Haddad Costa Ivanova Murphy Lopez Schmidt Sato Andersen Moreau Fischer Ahmed Reyes Larsen Bauer "
    "Romano Park Singh Walsh Cohen Varga Lindqvist Mendes Oduya Brennan Horvat Nakamura Petrov Alvarez "
    "Keller Dahl Farouk Gomez Hansen Ito Jovanovic Kaplan Lam Marin Nilsen Ortiz Quist Rahman Stone Toth Weber"
).split()


@dataclass
class Shift:
    """One dated shift of one agent: local strings for the file, UTC ms for the simulation."""

    date: str  # YYYY-MM-DD, local date on which the shift starts
    start_ms: int
    end_ms: int
    segments: list[tuple[int, int, str]]  # (start_ms, end_ms, activity), contiguous
    texts: tuple[str, ...]  # "HH:MM-HH:MM Activity", as written in the roster
    absent: bool = False  # a no-show: never logs in


@dataclass
class AgentPlan:
    index: int
    key: str
    name: str
    email: str
    team: str
    sid: str
    channels: tuple[ChannelSpec, ...]
    shifts: list[Shift] = field(default_factory=list)


@dataclass
class World:
    """Everything shared by the whole simulated workspace."""

    seed: int
    start_ms: int
    end_ms: int
    tz: str
    account_sid: str
    workspace_sid: str
    workflow_sids: tuple[str, ...]
    channel_sids: dict[str, str]  # task_channel_name → TC…
    queue_sids: dict[tuple[str, str], str]  # (team, channel) → WQ…
    activity_sids: dict[str, str]  # activity name → WA…
    agents: list[AgentPlan]


def build_world(agents: int, hours: float, seed: int, start_ms: int, tz: str) -> World:
    zone = ZoneInfo(tz)
    rng = random.Random(f"adherence-sim:{seed}:workspace")
    end_ms = start_ms + int(round(hours * HOUR))
    account = sid("AC", rng)
    workspace = sid("WS", rng)
    workflows = (sid("WW", rng), sid("WW", rng))
    channel_sids = {name: sid("TC", rng) for name in ("voice", "chat")}
    queue_sids = {(team, ch.name): sid("WQ", rng) for team, chans in TEAMS.items() for ch in chans}
    activity_sids = {name: sid("WA", rng) for name in ACTIVITIES}
    names = _names(agents, seed)
    plans = []
    for i in range(agents):
        arng = random.Random(f"adherence-sim:{seed}:agent:{i}")
        team = _pick_team(arng)
        key, name = names[i]
        plan = AgentPlan(
            index=i,
            key=key,
            name=name,
            email=f"{key}@example.com",
            team=team,
            sid=sid("WK", arng),
            channels=TEAMS[team],
        )
        plan.shifts = _plan_shifts(arng, start_ms, end_ms, hours, zone)
        plans.append(plan)
    return World(seed, start_ms, end_ms, tz, account, workspace, workflows, channel_sids, queue_sids, activity_sids, plans)


def _pick_team(rng: random.Random) -> str:
    x = rng.random()
    for team, share in TEAM_SHARES:
        if x < share:
            return team
        x -= share
    return TEAM_SHARES[-1][0]


def _names(n: int, seed: int) -> list[tuple[str, str]]:
    """n unique (key, display name) pairs, e.g. ("grace.okafor", "Grace Okafor")."""
    rng = random.Random(f"adherence-sim:{seed}:names")
    used: set[str] = set()
    out = []
    for _ in range(n):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        key = f"{first}.{last}".lower()
        if key in used:
            k = 2
            while f"{key}{k}" in used:
                k += 1
            key = f"{key}{k}"
        used.add(key)
        out.append((key, f"{first} {last}"))
    return out


def _local(ms: int, zone: ZoneInfo) -> datetime:
    """Epoch ms → naive local wall-clock time."""
    return from_ms(ms).astimezone(zone).replace(tzinfo=None)


def _utc_ms(local: datetime, zone: ZoneInfo) -> int:
    return to_ms(local.replace(tzinfo=zone))


def _plan_shifts(rng: random.Random, start_ms: int, end_ms: int, hours: float, zone: ZoneInfo) -> list[Shift]:
    """Staggered 8h shifts: starts on the half hour, spread over the window, repeated daily.

    The spread keeps many agents mid-shift at any moment while letting whole
    shifts fit in the window when it is long enough: for a 10-hour window
    shifts start over the first 2 hours (everyone is on shift from the 2nd
    to the 8th hour); for a day or more, over 16 hours (evening shifts cross
    midnight); a short window gets starts over its first half.
    """
    first = _local(start_ms, zone)
    # first quarter hour at or after the window start
    first = first.replace(second=0, microsecond=0) + timedelta(minutes=(-first.minute) % 15)
    if first < _local(start_ms, zone):
        first += timedelta(minutes=15)
    spread_h = min(16.0, max(hours - 8.0, min(hours / 2.0, 2.0)))
    slots = int(spread_h * 2)  # half-hour steps
    base = first + timedelta(minutes=30 * rng.randint(0, max(0, slots)))
    pattern = rng.randrange(3)  # break placement: planners stagger breaks in a few patterns
    shifts = []
    day = 0
    while True:
        s_local = base + timedelta(days=day)
        s_ms = _utc_ms(s_local, zone)
        if s_ms >= end_ms:
            break
        shifts.append(_shift(rng, s_local, pattern, zone))
        day += 1
    return shifts


def _shift(rng: random.Random, s: datetime, pattern: int, zone: ZoneInfo) -> Shift:
    m = timedelta(minutes=1)
    breaks = [
        (s + (105 + 15 * pattern) * m, 15, "Break"),
        (s + (225 + 15 * pattern) * m, 30, "Lunch"),
    ]
    if rng.random() < 0.15:
        breaks.append((s + 300 * m, 30, "Meeting"))
    breaks.append((s + (360 + 15 * pattern) * m, 15, "Break"))
    e = s + 8 * 60 * m
    pieces: list[tuple[datetime, datetime, str]] = []
    cur = s
    for b_start, length, activity in breaks:
        if b_start > cur:
            pieces.append((cur, b_start, "Available"))
        cur = b_start + length * m
        pieces.append((b_start, cur, activity))
    pieces.append((cur, e, "Available"))
    texts = tuple(f"{a:%H:%M}-{b:%H:%M} {act}" for a, b, act in pieces)
    segments = [(_utc_ms(a, zone), _utc_ms(b, zone), act) for a, b, act in pieces]
    return Shift(
        date=s.date().isoformat(),
        start_ms=segments[0][0],
        end_ms=segments[-1][1],
        segments=segments,
        texts=texts,
        absent=rng.random() < 0.02,
    )


def roster_yaml(world: World, header: str = "") -> str:
    """The roster and dated shifts in the project's YAML schedule format.

    Agents with identical shifts share one entry. Times are local to the
    file's time zone; a segment whose end is earlier than its start crosses
    midnight, and segments are listed in time order from the shift's start.
    """
    lines = []
    if header:
        lines += [f"# {h}" if h else "#" for h in header.splitlines()]
    lines.append(f"timezone: {world.tz}")
    lines.append("agents:")
    for a in world.agents:
        lines.append(f"  {a.key}:")
        lines.append(f"    worker_sid: {a.sid}")
        lines.append(f"    name: {a.name}")
        lines.append(f"    email: {a.email}")
        lines.append(f"    team: {a.team}")
    groups: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for a in world.agents:
        for sh in a.shifts:
            groups.setdefault((sh.date, sh.texts), []).append(a.key)
    lines.append("shifts:" if groups else "shifts: []")
    for (day, texts), keys in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1][0], kv[0][1])):
        lines.append(f"  - agents: [{', '.join(keys)}]")
        lines.append(f"    date: {day}")
        lines.append("    segments:")
        lines += [f'      - "{t}"' for t in texts]
    return "\n".join(lines) + "\n"
