"""Feed silence: no record at all for ``feed.silence_after`` while agents are scheduled.

A Flex or network outage does not look like an outage from here: it looks like every agent sitting in their
last state (or Unknown), and the board turns red for reasons nobody on the floor caused. When nothing has
arrived for the configured time while someone is scheduled, ``/health`` degrades, ``/metrics`` says so, the
board shows a banner, and the silent period is *offered* as a period approval (for everyone, from the last
record received to now) — a person decides; nothing is excused on its own.

"Arrived" means received by a webhook: the newest journal row's receipt time, or the newest refused body's
(a refused body is not silence: Flex is talking, something else is wrong).
"""

from __future__ import annotations

import threading

from .metrics import METRICS
from .timeutil import iso

_cache: dict = {}
_lock = threading.Lock()
SCHEDULED_CACHE_S = 15  # counting the agents scheduled now walks the roster: once every 15 s is enough


def last_received_ms(store) -> int | None:
    conn = store.reader
    j = conn.execute("SELECT received_ms FROM journal ORDER BY id DESC LIMIT 1").fetchone()
    r = conn.execute("SELECT received_ms FROM rejected ORDER BY id DESC LIMIT 1").fetchone()
    values = [row[0] for row in (j, r) if row is not None]
    return max(values) if values else None


def scheduled_now(engine, now_ms: int) -> int:
    sched = engine.schedules.current
    if sched is None:
        return 0
    key = (id(sched), now_ms // (SCHEDULED_CACHE_S * 1000))
    with _lock:
        hit = _cache.get("scheduled")
        if hit is not None and hit[0] == key:
            return hit[1]
    n = sum(1 for a in sched.agents.values() if sched.at(a.key, now_ms) is not None)
    with _lock:
        _cache["scheduled"] = (key, n)
    return n


def feed_status(engine) -> dict:
    """{silent, threshold_seconds, last_record_at, silent_seconds, scheduled_agents, offer}; sets the metrics."""
    now = engine.clock.now_ms()
    threshold = engine.config.feed_silence_ms
    last = last_received_ms(engine.store)
    silent_ms = None if last is None else max(0, now - last)
    scheduled = scheduled_now(engine, now)
    silent = bool(threshold) and last is not None and silent_ms >= threshold and scheduled > 0
    METRICS.set("adherence_feed_silence_seconds", (silent_ms or 0) / 1000)
    METRICS.set("adherence_feed_silent", 1 if silent else 0)
    out = {
        "silent": silent,
        "threshold_seconds": threshold // 1000 if threshold else None,
        "last_record_at": iso(last),
        "silent_seconds": None if silent_ms is None else silent_ms // 1000,
        "scheduled_agents": scheduled,
        "offer": None,
    }
    if silent:
        end = now + (-now) % 60_000  # to the next whole minute: the approval covers the silence so far
        out["offer"] = {"start": iso(last), "end": iso(end), "mode": engine.config.period_mode,
                        "reason": f"Feed silent from {iso(last)[11:16]} UTC ({silent_ms // 60_000} min, "
                                  f"{scheduled} agents scheduled)"}
    return out


__all__ = ["feed_status", "last_received_ms"]
