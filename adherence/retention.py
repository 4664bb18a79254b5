"""Retention: forget journal rows older than ``retention.journal_days``, and what notifications are done
with older than ``retention.notifications_days`` (``purge_notifications``; pending messages never go).

The journal is the input of every result, so purging it is careful:

* Stored results (exceptions, adherence) are never touched.
* For each agent the newest row older than the horizon is kept: it is the
  state the agent was in *at* the horizon, which the evaluator and a restart
  read as "the snapshot in force before the period". With it kept, an
  evaluation of any period after the horizon sees exactly the timeline it
  saw before the purge.
* The horizon never reaches into what the evaluator may still re-read after
  a restart (from the start of the day before yesterday, in every agent's
  zone, plus its look-back; after a stop, from the last stored tick),
  whatever ``journal_days`` says. So a restart does not rewrite results
  from a thinned journal.
* Rows are deleted in small batches, one short write transaction each, so
  the webhook never waits long for the writer.
* The horizon is recorded in ``meta`` (``purged_before``); ``recompute``
  refuses days whose inputs are no longer all in the journal.

Rejected bodies are pruned by the same number of days (by receipt time).
Freed pages are reused by new rows, so the file stops growing; ``adherence
purge --vacuum`` also gives them back to the file system.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import date, timedelta

from .errors import AdherenceError
from .horizons import DAY_MS, EVALUATOR_DAYS
from .metrics import METRICS
from .timeutil import iso, local_date, local_midnight_ms, zone

log = logging.getLogger(__name__)

BATCH = 500  # rows per write transaction
META_KEY = "purged_before"

# A row may go when a newer row of the same agent is also older than the horizon. The journal's highest id
# never goes: SQLite would hand it out again, and the evaluation watermark (runner.py) counts on ids only
# ever growing.
# (the journal's rows table, not its view: a view's DELETE trigger leaves no row count)
_DELETE_JOURNAL = """
DELETE FROM journal_rows WHERE id IN (
    SELECT r.id FROM journal_rows r
    WHERE r.at_ms < :h AND r.id < (SELECT MAX(id) FROM journal_rows)
      AND EXISTS (SELECT 1 FROM journal_rows n
                  WHERE n.worker = r.worker AND n.at_ms < :h
                    AND (n.at_ms > r.at_ms OR (n.at_ms = r.at_ms AND n.id > r.id)))
    LIMIT :n)
"""
_DELETE_REJECTED = "DELETE FROM rejected WHERE id IN (SELECT id FROM rejected WHERE received_ms < :h LIMIT :n)"


class RetentionError(AdherenceError):
    """The journal no longer holds what was asked for."""


@dataclass
class PurgeStats:
    horizon_ms: int | None = None
    journal_deleted: int = 0
    rejected_deleted: int = 0
    batches: int = 0
    duration_s: float = 0.0
    vacuumed: bool = False

    def as_dict(self) -> dict:
        return {
            "horizon": iso(self.horizon_ms),
            "journal_deleted": self.journal_deleted,
            "rejected_deleted": self.rejected_deleted,
            "batches": self.batches,
            "duration_ms": round(self.duration_s * 1000, 1),
            "vacuumed": self.vacuumed,
        }


def _zones(engine) -> list:
    zones = {zone(engine.config.timezone)}
    sched = engine.schedules.current
    if sched is not None:
        zones.update(sched.tz(k) for k in sched.agents)
    return list(zones)


def evaluator_floor_ms(engine, now_ms: int) -> int:
    """The earliest instant the evaluator may still read from the journal.

    Every agent is evaluated next from where its stored results end (table ``evaluation``), and journal
    rows above the evaluation watermark from their own instant, whatever their age: a purge keeps what
    those evaluations will read, with their look-back, so results never come from a thinned journal.
    """
    floor = min(local_midnight_ms(local_date(now_ms, tz) - timedelta(days=EVALUATOR_DAYS), tz)
                for tz in _zones(engine))
    conn = engine.store.reader
    (oldest_evaluated,) = conn.execute("SELECT MIN(evaluated_to_ms) FROM evaluation").fetchone()
    mark = int(engine.store.get_meta("evaluated_through_id") or 0)
    (oldest_pending,) = conn.execute("SELECT MIN(at_ms) FROM journal WHERE id > ?", (mark,)).fetchone()
    for at in (oldest_evaluated, oldest_pending):
        if at is not None:
            floor = min(floor, at - EVALUATOR_DAYS * DAY_MS)
    return floor


def purge_horizon_ms(engine, days: int, now_ms: int | None = None) -> int:
    now = engine.clock.now_ms() if now_ms is None else now_ms
    return min(now - days * DAY_MS, evaluator_floor_ms(engine, now))


def purge_journal(engine, days: int | None = None, *, batch: int = BATCH, pause_s: float = 0.002) -> PurgeStats:
    """Delete journal and rejected rows older than ``days`` (default ``retention.journal_days``).

    Returns what was done; with no retention configured and no ``days``, does nothing.
    """
    days = engine.config.retention_journal_days if days is None else days
    stats = PurgeStats()
    if not days:
        return stats
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise RetentionError(f"retention days must be a whole number of at least 1, got {days!r}")
    t0 = time.perf_counter()
    now = engine.clock.now_ms()
    horizon = purge_horizon_ms(engine, days, now)
    rejected_horizon = now - days * DAY_MS
    stats.horizon_ms = horizon
    store = engine.store
    with store.write() as conn:
        # monitoring began at the first record ever seen: keep that fact once its row is gone
        if conn.execute("SELECT 1 FROM meta WHERE key = 'observed_from'").fetchone() is None:
            first = conn.execute("SELECT MIN(at_ms) FROM journal").fetchone()[0]
            if first is not None:
                conn.execute("INSERT INTO meta (key, value) VALUES ('observed_from', ?)", (str(first),))
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (META_KEY,)).fetchone()
        if row is None or int(row[0]) < horizon:
            # recorded first: a purge cut short still refuses recomputes it may have spoilt
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (META_KEY, str(horizon)))
    for sql, h, attr in ((_DELETE_JOURNAL, horizon, "journal_deleted"), (_DELETE_REJECTED, rejected_horizon, "rejected_deleted")):
        while True:
            with store.write() as conn:
                n = conn.execute(sql, {"h": h, "n": batch}).rowcount
            stats.batches += 1
            setattr(stats, attr, getattr(stats, attr) + n)
            if n < batch:
                break
            time.sleep(pause_s)  # let waiting webhooks have the writer
    stats.duration_s = time.perf_counter() - t0
    METRICS.inc("adherence_journal_purged_total", stats.journal_deleted)
    METRICS.inc("adherence_rejected_purged_total", stats.rejected_deleted)
    if stats.journal_deleted or stats.rejected_deleted:
        log.info("retention: purged %d journal and %d rejected row(s) older than %s",
                 stats.journal_deleted, stats.rejected_deleted, iso(horizon),
                 extra={"event": "retention_purge", **stats.as_dict()})
    return stats


# -- notifications ---------------------------------------------------------------------------------

# outbox entries that are done with: the age of a sent one is from its sending, of the others from their writing
_DONE_OUTBOX = ("SELECT id FROM outbox WHERE status IN ('sent', 'cancelled', 'dead') "
                "AND COALESCE(sent_ms, created_ms) < ? ORDER BY id")


def purge_notifications(engine, days: int | None = None, *, now_ms: int | None = None, batch: int = BATCH,
                        pause_s: float = 0.002) -> dict:
    """Forget what notifications are done with, older than ``days`` (default ``retention.notifications_days``):
    sent, cancelled and dead-lettered outbox entries, snoozes that ended, and the announcement state of
    exceptions that ended (an exception that ended longer ago than ``delivery.max_age`` is never announced
    again, so nothing is sent twice for lack of it). Pending entries are never purged, whatever their age.

    What to delete is read on a reader; each batch is one short write transaction (webhooks wait for the
    writer). Returns the counts."""
    days = engine.config.retention_notifications_days if days is None else days
    out = {"outbox_deleted": 0, "snoozes_deleted": 0, "states_deleted": 0, "horizon": None}
    if not days:
        return out
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise RetentionError(f"retention days must be a whole number of at least 1, got {days!r}")
    now = engine.clock.now_ms() if now_ms is None else now_ms
    horizon = now - days * DAY_MS
    notifier = getattr(engine, "notifier", None)
    cfg = notifier.current if notifier is not None else None
    if cfg is not None:
        horizon = min(horizon, now - cfg.delivery.max_age_ms)
    out["horizon"] = iso(horizon)
    reader = engine.store.reader
    jobs = (
        ("outbox_deleted", [(r[0],) for r in reader.execute(_DONE_OUTBOX, (horizon,))],
         "DELETE FROM outbox WHERE id = ? AND status != 'pending'"),
        ("snoozes_deleted", [(r[0],) for r in reader.execute("SELECT id FROM snoozes WHERE until_ms < ?", (horizon,))],
         "DELETE FROM snoozes WHERE id = ?"),
        ("states_deleted", list(reader.execute(
            "SELECT exception_id, route FROM notify_state s WHERE end_ms IS NOT NULL AND end_ms < ? AND NOT EXISTS "
            "(SELECT 1 FROM outbox o WHERE o.exception_id = s.exception_id AND o.route = s.route "
            "AND o.status = 'pending')", (horizon,))),
         "DELETE FROM notify_state WHERE exception_id = ? AND route = ? AND end_ms IS NOT NULL AND end_ms < ?"),
    )
    for key, keys, sql in jobs:
        for i in range(0, len(keys), batch):
            part = keys[i:i + batch]
            if key == "states_deleted":
                part = [(*k, horizon) for k in part]
            with engine.store.write() as conn:
                out[key] += conn.executemany(sql, part).rowcount
            time.sleep(pause_s)  # let waiting webhooks have the writer
    if out["outbox_deleted"] or out["snoozes_deleted"] or out["states_deleted"]:
        log.info("retention: purged %d outbox entr(ies), %d snooze(s), %d announcement state(s) older than %s",
                 out["outbox_deleted"], out["snoozes_deleted"], out["states_deleted"], out["horizon"],
                 extra={"event": "retention_purge_notifications", **out})
    return out


def purge(engine) -> None:
    """The service's hourly retention job: the journal (``retention.journal_days``) and what notifications are
    done with (``retention.notifications_days``)."""
    if engine.config.retention_journal_days:
        purge_journal(engine)
    if engine.config.retention_notifications_days:
        purge_notifications(engine)


def vacuum(engine) -> None:
    """Give free pages back to the file system (holds the writer for the whole run: do it off-peak)."""
    with engine.store._write_lock:
        engine.store._writer.execute("VACUUM")


def purged_before_ms(store) -> int | None:
    """The purge horizon: before it the journal holds only each agent's last state."""
    value = store.get_meta(META_KEY)
    return int(value) if value is not None else None


def earliest_recomputable_day(engine) -> date | None:
    """The first day ``recompute`` can still rebuild exactly, or None when nothing was purged."""
    horizon = purged_before_ms(engine.store)
    if horizon is None:
        return None
    # the first day whose inputs (from two days before it, as recompute reads them) are all kept
    day = max(local_date(horizon, tz) for tz in _zones(engine))
    while not _complete(engine, day, horizon):
        day += timedelta(days=1)
    return day


def _complete(engine, first: date, horizon: int) -> bool:
    return all(local_midnight_ms(first - timedelta(days=2), tz) >= horizon for tz in _zones(engine))


def check_recompute(engine, first: date) -> None:
    """Raise RetentionError when the journal no longer holds all of ``first``'s inputs."""
    horizon = purged_before_ms(engine.store)
    if horizon is None or _complete(engine, first, horizon):
        return
    earliest = earliest_recomputable_day(engine)
    raise RetentionError(
        f"cannot recompute {first}: the journal was purged before {iso(horizon)} "
        f"(retention.journal_days), so it no longer holds that day's records; "
        f"the earliest day that can be recomputed is {earliest}"
    )
