"""A simulated Twilio Flex contact center: a realistic feed and its schedules.

Used by ``adherence simulate`` (files for demos, replays and benchmarks, or a
load generator against a running server) and by ``adherence demo``.

    sim = generate(agents=50, hours=10, seed=1, start_ms=..., tz="America/New_York")
    sim.roster_yaml()        # schedules/roster.yaml text
    for delivery_ms, envelope in sim.events(): ...
    write(sim, "out")        # out/feed.jsonl, out/schedules/roster.yaml, out/config.yaml
    for delivery_ms, body in sim.bodies("eventstreams"): ...   # the same day as TaskRouter events

Formats (``FORMATS``): ``rta`` (WFMWorkerChange envelopes), ``taskrouter``
(the Workspace event callback's form fields, one event per request) and
``eventstreams`` (a JSON list of CloudEvents per request, as an Event
Streams webhook sink receives them). A seed gives the same agents doing the
same things at the same instants in every format.

The output is a pure function of the arguments: the same arguments give
byte-identical files. Generation streams: memory holds only each agent's
current state, not the feed. How agents behave is in ``adherence.sim.agent``;
the roster and shifts in ``adherence.sim.world``.
"""

from __future__ import annotations

import heapq
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import adherence

from urllib.parse import urlencode

from .sim.agent import FORMATS, AgentSim, encode_envelope
from .sim.world import World, build_world, roster_yaml
from .timeutil import iso, zone

P_BATCH = 0.02  # share of envelopes that carry several records
BATCH_WINDOW_MS = 1500

__all__ = ["Simulation", "generate", "write", "WriteStats", "FORMATS", "FILE_NAMES", "encode_body"]

# what ``write`` names the feed file of each format
FILE_NAMES = {"rta": "feed.jsonl", "taskrouter": "callbacks.txt", "eventstreams": "events.jsonl"}


class Simulation:
    """A generated contact center; iterate ``events()`` as often as you like (it regenerates)."""

    def __init__(self, world: World, exact: bool = False):
        self.world = world
        # exact: the RTA format without the feed's information losses (first-sighting nulls, folded records)
        self.exact = exact

    @property
    def agents(self):
        """The roster: one plan per agent (key, name, email, team, sid, shifts)."""
        return self.world.agents

    @property
    def start_ms(self) -> int:
        return self.world.start_ms

    @property
    def end_ms(self) -> int:
        return self.world.end_ms

    def roster_yaml(self) -> str:
        """The schedule file (roster and dated shifts) matching the feed."""
        w = self.world
        hours = (w.end_ms - w.start_ms) / 3_600_000
        header = (
            f"Synthetic roster from `adherence simulate` (seed {w.seed}, {len(w.agents)} agents,\n"
            f"{hours:g} h from {iso(w.start_ms)}). Times are local to the time zone below."
        )
        return roster_yaml(w, header)

    def records(self, fmt: str = "rta") -> Iterator[tuple[int, dict]]:
        """(delivery_ms, record) for every record (or event, in the TaskRouter formats), in delivery
        order (duplicates included)."""
        streams = [AgentSim(self.world, plan, fmt, self.exact).run() for plan in self.world.agents]
        for delivery, _agent, _seq, record in heapq.merge(*streams):
            yield delivery, record

    def bodies(self, fmt: str = "rta") -> Iterator[tuple[int, object]]:
        """(delivery_ms, request body as a value) in delivery order: an envelope, the callback's
        fields (one event each), or a list of CloudEvents."""
        if fmt == "taskrouter":
            return self.records(fmt)
        return self.events(fmt)

    def events(self, fmt: str = "rta") -> Iterator[tuple[int, object]]:
        """(delivery_ms, envelope) in delivery order; now and then one envelope carries several records.

        ``fmt`` ``eventstreams``: the same batches as lists of CloudEvents.
        """
        rng = random.Random(f"adherence-sim:{self.world.seed}:batch")
        it = self.records(fmt)
        pending: tuple[int, dict] | None = None
        while True:
            if pending is not None:
                item, pending = pending, None
            else:
                item = next(it, None)
                if item is None:
                    return
            delivery, record = item
            records = [record]
            if rng.random() < P_BATCH:
                want = rng.randint(2, 5)
                while len(records) < want:
                    nxt = next(it, None)
                    if nxt is None:
                        break
                    if nxt[0] - item[0] > BATCH_WINDOW_MS:
                        pending = nxt
                        break
                    delivery = nxt[0]
                    records.append(nxt[1])
            if fmt == "rta":
                yield delivery, {"product": "Flex", "object": "WFMWorkerChange", "version": 1, "records": records}
            else:
                yield delivery, records


def generate(agents: int, hours: float, seed: int, start_ms: int, tz: str, exact: bool = False) -> Simulation:
    """Plan a contact center of ``agents`` agents over ``hours`` from ``start_ms``.

    ``tz`` is the IANA zone the schedules are written in. ``exact``: RTA
    records without the feed's information losses, so they describe exactly
    what the TaskRouter formats describe. Raises ValueError for arguments
    that make no sense.
    """
    if isinstance(agents, bool) or not isinstance(agents, int) or agents < 1:
        raise ValueError(f"agents must be a whole number of at least 1, got {agents!r}")
    if not (isinstance(hours, (int, float)) and 0 < hours <= 24 * 31):
        raise ValueError(f"hours must be more than 0 and at most {24 * 31}, got {hours!r}")
    if isinstance(start_ms, bool) or not isinstance(start_ms, int):
        raise ValueError(f"start_ms must be epoch milliseconds, got {start_ms!r}")
    zone(tz)  # ValueError naming the zone when unknown
    return Simulation(build_world(agents, float(hours), int(seed), start_ms, tz), bool(exact))


@dataclass
class WriteStats:
    envelopes: int = 0
    records: int = 0
    bytes: int = 0
    feed: Path | None = None
    roster: Path | None = None
    config: Path | None = None


def rules_folder() -> Path:
    """The repository's rules folder, next to the installed package."""
    return (Path(adherence.__file__).resolve().parent.parent / "rules").resolve()


def config_yaml(tz: str) -> str:
    return (
        "# Written by `adherence simulate`. Relative paths are relative to this file.\n"
        "database: adherence.db\n"
        f"timezone: {tz}\n"
        "schedules: schedules\n"
        f"rules: {json.dumps(str(rules_folder()))}\n"
        "evaluation:\n"
        "  interval: 15s\n"
        "server:\n"
        "  host: 127.0.0.1\n"
        "  port: 8080\n"
        "auth:\n"
        "  twilio_auth_token: ${TWILIO_AUTH_TOKEN}   # when set, X-Twilio-Signature is required\n"
    )


def encode_body(fmt: str, body) -> str:
    """A request body of ``Simulation.bodies(fmt)`` as text: JSON, or form-encoded for the callback."""
    if fmt == "rta":
        return encode_envelope(body)  # == json.dumps(envelope, separators=(",", ":")), faster
    if fmt == "taskrouter":
        return urlencode(body)
    return json.dumps(body, separators=(",", ":"))


def write(sim: Simulation, out_dir: str | os.PathLike, fmt: str = "rta") -> WriteStats:
    """Write the feed (``FILE_NAMES[fmt]``: one request body a line), ``schedules/roster.yaml`` and
    ``config.yaml`` under ``out_dir``.

    Each file is written to a temporary name and renamed, so a reader never
    sees half a file.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(out_dir)
    (out / "schedules").mkdir(parents=True, exist_ok=True)
    stats = WriteStats(feed=out / FILE_NAMES[fmt], roster=out / "schedules" / "roster.yaml", config=out / "config.yaml")
    tmp = stats.feed.with_name(stats.feed.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n", buffering=1 << 20) as fh:
        write_line = fh.write
        for _delivery, body in sim.bodies(fmt):
            line = encode_body(fmt, body) + "\n"
            write_line(line)
            stats.envelopes += 1
            stats.records += len(body["records"]) if fmt == "rta" else len(body) if fmt == "eventstreams" else 1
            stats.bytes += len(line)
    os.replace(tmp, stats.feed)
    _write_text(stats.roster, sim.roster_yaml())
    _write_text(stats.config, config_yaml(sim.world.tz))
    return stats


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8", newline="\n")
    os.replace(tmp, path)
