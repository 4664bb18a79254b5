"""The engine: the live objects one process owns, wired together.

``Engine`` holds the store, the tracker, the journal, the reloadable
schedules and rules, and the evaluator runner. The Flask app, the CLI and
the tests all build one, so they share the exact same code paths.
"""

from __future__ import annotations

import logging

from .clock import SystemClock
from .config import Config
from .horizons import MEMORY_HORIZON_MS
from .journal import Journal
from .metrics import METRICS
from .rules import rule_source
from .runner import Runner
from .schedules import schedule_source
from .state import Tracker
from .store import Store

log = logging.getLogger(__name__)


class Engine:
    def __init__(self, config: Config, clock=None, *, load_state: bool = True):
        self.config = config
        self.clock = clock or SystemClock()
        self.store = Store(config.database)
        self.tracker = Tracker()
        self.journal = Journal(self.store, self.tracker)
        # None: no live state in this process (CLI verbs that evaluate read timelines from the journal)
        self.memory_from_ms = self.clock.now_ms() - MEMORY_HORIZON_MS if load_state else None
        if load_state:
            n = self.tracker.load_from_journal(self.store.reader, self.memory_from_ms)
            if n:
                log.info("restored %d snapshot(s) of %d agent(s) from the journal", n, len(self.tracker.workers()))
        self.schedules = schedule_source(config)
        self.rules = rule_source(config)
        self.schedules.check()
        self.rules.check()
        self.scheduler = None
        self.runner = Runner(
            store=self.store, tracker=self.tracker if load_state else None, journal=self.journal,
            schedules=self.schedules, rules=self.rules, clock=self.clock, default_tz=config.timezone,
            interval_ms=config.evaluation_interval_ms, memory_from_ms=self.memory_from_ms,
            scheduler_running=lambda: self.scheduler is not None)

    # -- scheduler ---------------------------------------------------------
    def start_scheduler(self) -> None:
        """Start the evaluation loop. One per process; ``serve``/``demo`` call it once."""
        if self.scheduler is not None:
            return
        from .scheduler import start

        self.scheduler = start(self)

    def stop_scheduler(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=True)
            self.scheduler = None

    def close(self) -> None:
        self.stop_scheduler()
        self.store.close()

    def health(self) -> dict:
        db_error = self.store.check()
        sched = self.schedules.status()
        rules = self.rules.status()
        runner = self.runner.status()
        METRICS.set("adherence_live_agents", len(self.tracker.workers()))
        ok = db_error is None and sched["ok"] and rules["ok"] and runner.get("ok", True)
        return {
            "ok": ok,
            "status": "ok" if ok else "degraded",
            "database": {"ok": db_error is None, "error": db_error, "path": str(self.config.database)},
            "agents": len(self.tracker.workers()),
            "schedules": sched,
            "rules": rules,
            "evaluator": runner,
        }
