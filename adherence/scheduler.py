"""APScheduler glue: the evaluation tick, every ``evaluation.interval``.

Explicit job defaults (STYLE.md): coalesce missed runs into one, never two
ticks at once, and a generous misfire grace — APScheduler's default of 1 s
silently drops runs on a busy machine. One process owns the scheduler
(APScheduler cannot share a job store across worker processes), which is
why ``serve`` runs one WSGI process with threads.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED
from apscheduler.schedulers.background import BackgroundScheduler

from .metrics import METRICS

log = logging.getLogger(__name__)

JOB_ID = "adherence-evaluate"
RETENTION_JOB_ID = "adherence-retention"


def _tick(engine) -> None:
    notifier = getattr(engine, "notifier", None)
    try:
        # the notification sender delivers what the tick wrote after it, not during it
        with notifier.evaluating() if notifier is not None else nullcontext():
            stats = engine.runner.tick()
    except Exception as exc:
        engine.runner.last_error = f"{type(exc).__name__}: {exc}"
        METRICS.inc("adherence_tick_errors_total")
        raise
    if notifier is not None:  # what time alone changes: min_duration reached, reminders, snoozes that ran out
        try:
            notifier.tick(stats.at_ms)
        except Exception:
            log.exception("notifications: the tick's pass failed (retried at the next tick)")
    if stats.duration_s > engine.config.evaluation_interval_ms / 1000:
        log.warning("evaluation tick took %.1fs, longer than the interval", stats.duration_s)
    log.debug("tick: %s", stats.as_dict())


def start(engine) -> BackgroundScheduler:
    interval_s = engine.config.evaluation_interval_ms / 1000
    sched = BackgroundScheduler(
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": max(30, int(interval_s * 2))},
        timezone="UTC",
    )
    sched.add_job(_tick, "interval", seconds=interval_s, args=[engine], id=JOB_ID, replace_existing=True,
                  next_run_time=_now_utc())  # first tick at once: the board is current right after a start

    def _listener(event) -> None:
        what = "evaluation tick" if event.job_id == JOB_ID else "retention purge"
        if event.code == EVENT_JOB_MISSED:
            log.warning("%s missed its time (machine busy?)", what)
        elif getattr(event, "exception", None) is not None:
            log.error("%s failed: %s", what, event.exception)

    sched.add_listener(_listener, EVENT_JOB_ERROR | EVENT_JOB_MISSED)
    if engine.config.retention_journal_days or engine.config.retention_notifications_days:
        from .retention import purge

        sched.add_job(purge, "interval", hours=1, args=[engine], id=RETENTION_JOB_ID, replace_existing=True)
    sched.start()
    return sched


def _now_utc():
    from datetime import datetime, timezone

    return datetime.now(timezone.utc)
