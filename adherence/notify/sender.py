"""The sender: delivers outbox entries, one thread per channel.

One thread per channel so a receiver that hangs until its timeout delays only
its own channel's messages. Within a channel, an agent's messages go out in the
order they were written: an entry waits while an earlier one of the same agent
is still pending (retrying), so "closed" never overtakes "opened". A failure
schedules the next attempt with exponential backoff; after
``delivery.max_attempts`` the entry is dead-lettered (status ``dead``: on
``/health``, ``/metrics`` and ``GET /api/notifications``, retried by hand with
``POST /api/notifications/<id>/retry``) and that agent's later messages go on.

A message is marked sent after the receiver accepted it, so a crash in between
sends it again at the next start (at least once): receivers deduplicate on the
``X-Adherence-Delivery`` id.
"""

from __future__ import annotations

import json
import logging
import threading
import time

from ..metrics import METRICS
from . import channels as ch

log = logging.getLogger(__name__)

BATCH = 200
IDLE_S = 1.0
FLUSH_S = 0.25  # what went out is recorded at least this often during a long batch…
FLUSH_N = 50  # …or after this many messages: one short transaction for all of them
PROBE_S = 0.002  # while the writer is busy, look again after this long (without queueing for it)
# ... but for at most this long: under a sustained webhook load the writer is busy most of the time, and a
# sender that only ever took it free took 25 s for a burst of 1,000 alerts at ~700 webhooks a second (11.7 s
# with a 10 ms cap, 5.8 s with 2 ms; webhook p99 34 ms, under 50 ms in all three)
PROBE_MAX_S = 0.002
HOLD_PROBE_S = 0.25  # while an evaluation tick runs (Notifier.evaluating): looks again (a stop is seen) this often


class Sender:
    def __init__(self, notifier, clock=None):
        self.notifier = notifier
        self.store = notifier.store
        self.clock = clock or notifier.clock
        self._threads: dict[str, threading.Thread] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._wakes: dict[str, threading.Event] = {}
        self._supervisor: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._supervisor is not None:
            return
        self._supervisor = threading.Thread(target=self._supervise, name="notify-sender", daemon=True)
        self._supervisor.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        for e in list(self._wakes.values()):
            e.set()
        self.notifier.wake.set()
        for t in [self._supervisor, *self._threads.values()]:
            if t is not None:
                t.join(timeout)
        self._supervisor = None

    def _supervise(self) -> None:
        while not self._stop.is_set():
            cfg = self.notifier.current
            if cfg is not None:
                for name in cfg.channels:
                    t = self._threads.get(name)
                    if t is None or not t.is_alive():
                        self._wakes[name] = threading.Event()
                        t = threading.Thread(target=self._run, args=(name,), name=f"notify-{name}", daemon=True)
                        self._threads[name] = t
                        t.start()
            if self.notifier.wake.wait(0.2):
                self.notifier.wake.clear()
                for e in list(self._wakes.values()):
                    e.set()

    def _run(self, name: str) -> None:
        wake = self._wakes[name]
        while not self._stop.is_set():
            cfg = self.notifier.current
            if cfg is None or name not in cfg.channels:
                return  # the channel was removed from the file; its entries wait for it to come back
            try:
                did = self.run_once(name)
            except Exception:  # the database is unavailable for now, or a bug: never kill the thread
                log.exception("notification sender %s failed; retrying", name)
                did = 0
            if not did:
                wake.wait(IDLE_S)
                wake.clear()

    # -- one pass -------------------------------------------------------------------------------------
    def due(self, channel: str, now_ms: int) -> list[dict]:
        """Due entries of ``channel``: each agent's oldest pending one (order per agent)."""
        rows = self.store.reader.execute(
            "SELECT id, route, event, exception_id, worker_sid, agent, payload, attempts, digest_ms "
            "FROM outbox o WHERE status = 'pending' AND channel = ? AND next_attempt_ms <= ? AND NOT EXISTS ("
            "SELECT 1 FROM outbox p WHERE p.status = 'pending' AND p.channel = o.channel AND p.agent IS o.agent "
            "AND p.id < o.id AND p.digest_ms IS NULL AND o.digest_ms IS NULL) ORDER BY id LIMIT ?",
            (channel, now_ms, BATCH)).fetchall()
        keys = ("id", "route", "event", "exception_id", "worker_sid", "agent", "payload", "attempts", "digest_ms")
        out = []
        for r in rows:
            d = dict(zip(keys, r))
            d["payload"] = json.loads(d["payload"])
            out.append(d)
        return out

    def run_once(self, channel_name: str, now_ms: int | None = None) -> int:
        """Send what is due on one channel; returns the entries handled."""
        cfg = self.notifier.current
        if cfg is None or channel_name not in cfg.channels:
            return 0
        channel = cfg.channels[channel_name]
        now = self.clock.now_ms() if now_ms is None else now_ms
        self._between_writes()
        entries = self.due(channel_name, now)
        if not entries:
            return 0
        digests = [e for e in entries if e["digest_ms"] is not None]
        singles = [e for e in entries if e["digest_ms"] is None]
        groups = ([digests] if digests else []) + [[e] for e in singles]
        results: list[tuple[list[dict], str | None]] = []
        failed_agents: set = set()
        last_flush = time.monotonic()
        for group in groups:
            if group[0]["digest_ms"] is None and group[0]["agent"] in failed_agents:
                continue  # keep this agent's order: its earlier message is being retried
            self._between_writes()
            try:
                ch.send(channel, group, public_url=cfg.public_url, timeout_ms=cfg.delivery.timeout_ms, now_ms=now)
                results.append((group, None))
                METRICS.inc("adherence_notifications_sent_total", len(group), channel=channel.type)
            except ch.DeliveryError as exc:
                results.append((group, str(exc)))
                failed_agents |= {e["agent"] for e in group}
                METRICS.inc("adherence_notification_failures_total", channel=channel.type)
            time.sleep(0)  # hand the GIL to a waiting webhook request now, not at the next 5 ms switch
            if len(results) >= FLUSH_N or time.monotonic() - last_flush > FLUSH_S:
                self._record(results, cfg)  # a long batch still records what went out, in short transactions
                results = []
                last_flush = time.monotonic()
            if self._stop.is_set():
                break
        self._record(results, cfg)
        return len(entries)

    def _between_writes(self) -> None:
        """Wait while an evaluation tick runs (``Notifier.holding``) or a write transaction is open, without
        queueing for the writer. A transaction's length is
        wall time, and every webhook waits for the writer: a sender thread taking the GIL in the middle of the
        runner's transaction made that transaction (and so the webhook's wait) twice as long during a burst.
        The writer's lock is only tried, never waited on, so the sender never stands in the webhooks' line
        for it (nor holds it: sending is network I/O, done with no lock held)."""
        lock = self.store._write_lock
        busy_since = None
        while not self._stop.is_set():
            hold = self.notifier.holding()
            if hold:  # an evaluation tick is running: deliver after it (its end sets ``idle``)
                self.notifier.idle.wait(min(hold, HOLD_PROBE_S))
                busy_since = None
                continue
            if lock.acquire(blocking=False):
                lock.release()
                return
            now = time.monotonic()
            if busy_since is None:
                busy_since = now
            elif now - busy_since >= PROBE_MAX_S:
                return  # a steady stream of webhooks: go between two of them rather than never
            time.sleep(PROBE_S)

    def _record(self, results, cfg) -> None:
        """What a batch's attempts came to, in one short write transaction: the statements' parameters are
        made before it and the log written after it."""
        if not results:
            return
        now = self.clock.now_ms()
        d = cfg.delivery
        sent, dead, retry, notes = [], [], [], []
        for group, error in results:
            for e in group:
                if error is None:
                    sent.append((now, e["id"]))
                    continue
                attempts = e["attempts"] + 1
                if attempts >= d.max_attempts:
                    dead.append((attempts, error, e["id"]))
                    notes.append((log.error, "notification %s to %s dead-lettered after %d attempts: %s",
                                  (e["id"], e.get("route"), attempts, error), "notification_dead"))
                else:
                    delay = min(d.backoff_ms * 2 ** (attempts - 1), d.max_backoff_ms)
                    retry.append((attempts, error, now + delay, e["id"]))
                    notes.append((log.warning, "notification %s failed (attempt %d), next in %.0fs: %s",
                                  (e["id"], attempts, delay / 1000, error), "notification_retry"))
        with self.store.write() as conn:
            if sent:
                conn.executemany("UPDATE outbox SET status = 'sent', sent_ms = ?, attempts = attempts + 1, "
                                 "last_error = NULL WHERE id = ? AND status = 'pending'", sent)
            if dead:
                conn.executemany("UPDATE outbox SET status = 'dead', attempts = ?, last_error = ? WHERE id = ? "
                                 "AND status = 'pending'", dead)
            if retry:
                conn.executemany("UPDATE outbox SET attempts = ?, last_error = ?, next_attempt_ms = ? WHERE id = ? "
                                 "AND status = 'pending'", retry)
        if dead:
            METRICS.inc("adherence_notifications_dead_total", len(dead))
        for emit, message, args, event in notes:
            emit(message, *args, extra={"event": event})

    def drain(self, timeout_s: float = 10.0) -> None:
        """Send everything due now on every channel (the CLI and tests; the threads do this in service)."""
        deadline = time.monotonic() + timeout_s
        cfg = self.notifier.current
        while cfg is not None and time.monotonic() < deadline:
            if not sum(self.run_once(name) for name in cfg.channels):
                return
