"""The engine: the live objects one process owns, wired together.

``Engine`` holds the store, the tracker, the journal, the reloadable
schedules and rules, and the evaluator runner. The Flask app, the CLI and
the tests all build one, so they share the exact same code paths.
"""

from __future__ import annotations

import logging
import threading

from .clock import SystemClock
from .config import Config
from .horizons import MEMORY_HORIZON_MS
from .journal import Journal
from .metrics import METRICS
from .notify.config import notification_source
from .notify.outbox import Notifier
from .rules import rule_source
from .runner import Runner
from .schedules import schedule_source
from .state import Tracker
from .store import Store

log = logging.getLogger(__name__)


class Engine:
    def __init__(self, config: Config, clock=None, *, load_state: bool = True, listen_first: bool = False):
        """``listen_first``: live state is built later, by ``load_state_now`` (``serve`` calls it in the
        background after binding, so Twilio never meets a closed port); until then the journal takes
        webhooks on its own and the engine says it is starting."""
        self.config = config
        self.clock = clock or SystemClock()
        self.listen_first = listen_first  # a service: "starting" until its first tick, not only its load
        self.store = Store(config.database)
        self.tracker = Tracker()
        self.ready = threading.Event()  # live state built (set at once when there is none to build)
        self._lifecycle = threading.Lock()
        self.closed = False
        self.fronts = None  # set by adherence.web.link.Owner: the front processes' status
        self.journal = Journal(self.store, None if listen_first else self.tracker)
        # None: no live state in this process (CLI verbs that evaluate read timelines from the journal)
        self.memory_from_ms = self.clock.now_ms() - MEMORY_HORIZON_MS if load_state else None
        if load_state and not listen_first:
            self._restore()
        if not listen_first:
            self.ready.set()
        self.schedules = schedule_source(config)
        self.rules = rule_source(config)
        if not listen_first:  # else loaded in the background with live state: a 10,000-agent roster takes
            self.schedules.check()  # seconds to parse, and webhooks need neither schedules nor rules
            self.rules.check()
        self.scheduler = None
        self.runner = Runner(
            store=self.store, tracker=self.tracker if load_state else None, journal=self.journal,
            schedules=self.schedules, rules=self.rules, clock=self.clock, default_tz=config.timezone,
            interval_ms=config.evaluation_interval_ms, memory_from_ms=self.memory_from_ms,
            scheduler_running=lambda: self.scheduler is not None)
        # notifications (None when config.yaml has no ``notifications:``): decided in the runner's write
        # transaction, delivered by the sender threads ``start_scheduler`` starts
        self.notifier = None
        self.sender = None
        source = notification_source(config)
        if source is not None:
            source.check()
            self.notifier = Notifier(self.store, source, self.clock)
            self.runner.exception_listener = self.notifier.on_exceptions

    def _restore(self, up_to_id: int | None = None) -> None:
        n = self.tracker.load_from_journal(self.store.reader, self.memory_from_ms, up_to_id)
        if n:
            log.info("restored %d snapshot(s) of %d agent(s) from the journal", n, len(self.tracker.workers()))

    def load_state_now(self) -> None:
        """Load schedules and rules, build live state from the journal while webhooks are journaled, then
        catch up on them."""
        self.schedules.check()
        self.rules.check()
        (high,) = self.store.reader.execute("SELECT COALESCE(MAX(id), 0) FROM journal").fetchone()
        self._restore(high)
        with self.store.write_lock():
            self.journal.attach(self.tracker, high)
        self.journal.catch_up()
        self.ready.set()

    def starting(self) -> str | None:
        """Why the service is not serving yet (loading live state, or no evaluation has run), or None."""
        if not self.ready.is_set():
            return "starting: building live state from the journal (webhooks are journaled meanwhile)"
        # between the load and the scheduler's start too: a listen-first service has not evaluated yet
        if ((self.scheduler is not None or self.listen_first) and self.runner.last_tick is None
                and self.runner.last_error is None):
            return "starting: the first evaluation has not finished"
        return None

    # -- scheduler ---------------------------------------------------------
    def start_scheduler(self) -> None:
        """Start the evaluation loop. One per process; ``serve``/``demo`` call it once. Never after
        ``close`` (``serve`` starts it from the thread that loads live state, which a SIGTERM may outrun)."""
        from .scheduler import start

        with self._lifecycle:
            if self.scheduler is not None or self.closed:
                return
            self.scheduler = start(self)
            self.store.start_checkpointer()
            if self.notifier is not None and self.sender is None:
                from .notify.sender import Sender

                self.sender = Sender(self.notifier)
                self.sender.start()

    def stop_scheduler(self) -> None:
        with self._lifecycle:
            scheduler, self.scheduler = self.scheduler, None
        if scheduler is not None:
            scheduler.shutdown(wait=True)

    def close(self) -> None:
        with self._lifecycle:
            self.closed = True
        self.runner.stopping.set()  # a running tick stops between agents instead of holding up the exit
        self.stop_scheduler()
        if self.sender is not None:
            self.sender.stop()
            self.sender = None
        self.store.close()

    def health(self) -> dict:
        db_error = self.store.check()
        sched = self.schedules.status()
        rules = self.rules.status()
        runner = self.runner.status()
        METRICS.set("adherence_live_agents", len(self.tracker.workers()))
        starting = self.starting()
        ok = db_error is None and sched["ok"] and rules["ok"] and runner.get("ok", True) and starting is None
        return {
            "ok": ok,
            "status": "starting" if starting and db_error is None else "ok" if ok else "degraded",
            "starting": starting,
            "database": {"ok": db_error is None, "error": db_error, "path": str(self.config.database)},
            "agents": len(self.tracker.workers()),
            "schedules": sched,
            "rules": rules,
            "evaluator": runner,
            # dead letters and a broken notification file show here without failing the health check:
            # the service still measures adherence
            "notifications": self.notifier.status() if self.notifier is not None else {"configured": False},
            # serve with front processes (adherence.web.link): how many take HTTP now
            **({"fronts": self.fronts()} if self.fronts is not None else {}),
        }
