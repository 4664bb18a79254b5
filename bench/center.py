"""A simulated contact center held by an in-process engine, for the tick and recompute benches.

``Center(n, distinct)`` plans ``n`` agents with ``adherence.simulate``. The
first ``distinct`` agents are simulated; when ``n`` is larger, the others are
clones of them (same shifts and behaviour, their own roster key, worker SID
and event SIDs), which keeps the set-up of 50,000 agents within a few minutes
while every agent is still a separate agent to the engine.

``fill_until(t)`` brings the engine's live state to instant ``t``:
records straight into the tracker (the journal is not written, as the
evaluator reads live timelines from memory). ``feed_until(t)`` sends the next
records through the real ingestion path (``Journal.ingest_parsed``).
"""

from __future__ import annotations

import dataclasses
import heapq
import random
import shutil
from pathlib import Path

from adherence.clock import FixedClock
from adherence.config import load_config
from adherence.engine import Engine
from adherence.feed import parse_envelope, parse_record
from adherence.model import Snapshot
from adherence.sim.agent import AgentSim
from adherence.sim.world import roster_yaml, sid
from adherence.simulate import config_yaml, generate
from adherence.timeutil import parse_instant_ms

TZ = "America/New_York"
START = "2026-11-24T13:00:00Z"  # 08:00 local: shifts start over the next 2 hours
HOURS = 10


def _clone_sid(base: str, k: int) -> str:
    return base[:-6] + f"{k:06x}" if k else base


class Center:
    def __init__(self, n: int, folder: Path, distinct: int = 2_000, seed: int = 1, hours: float = HOURS):
        self.n = n
        self.start_ms = parse_instant_ms(START)
        d = min(n, distinct)
        self.sim = generate(d, hours, seed, self.start_ms, TZ)
        world = self.sim.world
        base = list(world.agents)
        clones = []
        rng = random.Random(f"bench-clones:{seed}")
        for i in range(d, n):
            b = base[i % d]
            k = i // d
            clones.append(dataclasses.replace(b, index=i, key=f"{b.key}.c{k}", sid=sid("WK", rng),
                                              email=f"{b.key}.c{k}@example.com"))
        world.agents = base + clones
        self.base = base
        # worker SIDs each base agent stands for (itself first)
        self.copies: dict[str, list[str]] = {p.sid: [p.sid] for p in base}
        for c in clones:
            self.copies[base[c.index % d].sid].append(c.sid)
        folder = Path(folder)
        if folder.exists():
            shutil.rmtree(folder)
        (folder / "schedules").mkdir(parents=True)
        (folder / "schedules" / "roster.yaml").write_text(roster_yaml(world, "bench center"), encoding="utf-8")
        (folder / "config.yaml").write_text(config_yaml(TZ), encoding="utf-8")
        self.folder = folder
        self.config = load_config(folder / "config.yaml")
        self.clock = FixedClock(self.start_ms)
        self.engine = Engine(self.config, self.clock)
        # per base agent: its own record stream, in delivery order
        world.agents = base
        self._streams = [AgentSim(world, p).run() for p in base]
        world.agents = base + clones
        self._heap: list = []
        for s in self._streams:
            item = next(s, None)
            if item is not None:
                self._heap.append(item + (s,))
        heapq.heapify(self._heap)
        self._seen: set[str] = set()
        self.records_in = 0

    def _next_until(self, t: int):
        """(delivery_ms, record) of base agents delivered at or before t, in delivery order."""
        heap = self._heap
        while heap and heap[0][0] <= t:
            delivery, idx, seq, rec, s = heap[0]
            nxt = next(s, None)
            if nxt is None:
                heapq.heappop(heap)
            else:
                heapq.heapreplace(heap, nxt + (s,))
            yield delivery, rec

    def fill_until(self, t: int) -> int:
        """Apply every record delivered up to t straight to the tracker (all copies)."""
        eng = self.engine
        apply = eng.tracker.apply
        seen = self._seen
        n = 0
        first = None
        for delivery, raw in self._next_until(t):
            ev = raw.get("last_processed_event_sid")
            if ev in seen:
                continue  # a duplicate delivery: the journal would not apply it twice
            seen.add(ev)
            rec = parse_record(0, raw, delivery)
            snap = Snapshot(rec.at_ms, rec.activity, rec.task, rec.flagged)
            chans = rec.channels
            for k, w in enumerate(self.copies[rec.worker_sid]):
                apply(w, Snapshot(*snap) if k else snap, chans, delivery)  # a clone holds its own snapshot
                n += 1
            first = rec.at_ms if first is None else min(first, rec.at_ms)
        if first is not None and (eng.journal.observed_from is None or first < eng.journal.observed_from):
            eng.journal.observed_from = first
            eng.store.set_meta("observed_from", str(first))
        self.records_in += n
        self.clock.set(t)
        return n

    def feed_until(self, t: int, batch: int = 1000) -> int:
        """Send every record delivered up to t through Journal.ingest_parsed, like replay."""
        pending, n, accepted = [], 0, 0
        for delivery, raw in self._next_until(t):
            ev = raw.get("last_processed_event_sid")
            if ev in self._seen:
                continue  # delivered twice, the first time before fill_until's end: skip as the journal would
            for k, w in enumerate(self.copies[raw["worker"]["sid"]]):
                rec = raw
                if k:
                    rec = dict(raw, worker=dict(raw["worker"], sid=w),
                               last_processed_event_sid=_clone_sid(raw["last_processed_event_sid"], k))
                env = {"product": "Flex", "object": "WFMWorkerChange", "version": 1, "records": [rec]}
                pending.append((parse_envelope(env, delivery), delivery))
                n += 1
                if len(pending) >= batch:
                    accepted += self.engine.journal.ingest_parsed(pending).accepted
                    pending = []
        if pending:
            accepted += self.engine.journal.ingest_parsed(pending).accepted
        self.records_in += accepted
        self.clock.set(t)
        return accepted

    def close(self) -> None:
        self.engine.close()
