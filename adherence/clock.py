"""Clocks. The engine never reads the wall clock itself; it is handed one.

That is what lets tests, ``evaluate --at`` and ``demo`` (faster than real
time) decide what "now" is.
"""

from __future__ import annotations

import threading
import time

from .timeutil import to_ms, parse_instant


class SystemClock:
    """Real time, in epoch milliseconds."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class FixedClock:
    """A clock that only moves when told to; for tests and ``--at``."""

    def __init__(self, at: int | str):
        self._lock = threading.Lock()
        self._now = at if isinstance(at, int) else to_ms(parse_instant(at))

    def now_ms(self) -> int:
        with self._lock:
            return self._now

    def set(self, at: int | str) -> None:
        with self._lock:
            self._now = at if isinstance(at, int) else to_ms(parse_instant(at))

    def advance(self, ms: int) -> None:
        with self._lock:
            self._now += ms


class ScaledClock:
    """Time that runs ``speed`` times faster than real time from ``start_ms``.

    Used by ``adherence demo`` to show a whole shift in minutes.
    """

    def __init__(self, start_ms: int, speed: float = 1.0, base: SystemClock | None = None):
        self._base = base or SystemClock()
        self._origin = self._base.now_ms()
        self._start = start_ms
        self.speed = speed

    def now_ms(self) -> int:
        return self._start + int((self._base.now_ms() - self._origin) * self.speed)
