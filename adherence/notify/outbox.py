"""What to announce, decided from stored state, and written to the outbox in the same transaction.

Delivery must survive ``kill -9`` without losing or repeating an alert, so the
decision is never kept in memory: ``notify_state`` records, per exception and
route, what has been announced (the start and end the last message said, how
many reminders went out). ``reconcile`` compares that with the exception row as
stored now and writes the difference — an ``opened``, ``closed``, ``corrected``,
``removed`` or ``reminder`` entry — into ``outbox`` together with the new state,
inside the caller's write transaction. Running it twice, or after a re-evaluation
that rewrote identical rows, finds nothing to do.

Two callers: ``ExceptionWriter.replace`` (every insert, update and delete of an
exception row, in the runner's transaction) and ``Notifier.tick`` after each
evaluation tick, for what time alone changes (a ``min_duration`` reached, a
reminder due, a snooze that ran out, business hours that began).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from contextlib import contextmanager

from ..approvals import record
from ..metrics import METRICS
from ..results import seconds
from ..timeutil import iso
from .config import Notifications, Route

log = logging.getLogger(__name__)

SNOOZE_STEP_MIN = 15
SNOOZE_MAX_MIN = 23 * 60 + 45
# the sender holds back while an evaluation tick runs (the tick and the feed's webhook share the GIL and the
# writer with it), but never longer than this for one tick: a first tick reaching far back still lets alerts out
HOLD_MAX_S = 10.0

COLS = ("id", "worker_sid", "agent", "team", "rule", "severity", "scheduled_activity", "actual_activity",
        "task_state", "start_ms", "end_ms", "day")



def _row(r) -> dict:
    return dict(zip(COLS, r))


def event_body(row: dict, now_ms: int) -> dict:
    end = row["end_ms"]
    return {
        "id": row["id"], "agent": row["agent"], "worker_sid": row["worker_sid"], "team": row["team"],
        "rule": row["rule"], "severity": row["severity"], "scheduled_activity": row["scheduled_activity"],
        "actual_activity": row["actual_activity"], "task_state": row["task_state"],
        "start": iso(row["start_ms"]), "end": iso(end),
        "duration_seconds": seconds(max(0, (now_ms if end is None else end) - row["start_ms"])),
        "status": "open" if end is None else "closed", "day": row["day"],
    }


class Notifier:
    """Decides and enqueues; ``Sender`` delivers. One per engine."""

    def __init__(self, store, source, clock):
        self.store = store
        self.source = source  # Reloadable[Notifications]
        self.clock = clock
        self.wake = threading.Event()
        self._snooze_cache: tuple[int, set, set] | None = None
        self._evaluating_since: float | None = None
        self.idle = threading.Event()  # set while no evaluation tick runs
        self.idle.set()

    @contextmanager
    def evaluating(self):
        """Around an evaluation tick (``scheduler._tick``): the sender waits for its end (at most
        ``HOLD_MAX_S``), then delivers what it wrote; entries written meanwhile do not wake it one by one. A
        burst of alerts sent during the tick took the GIL from the tick and from the webhook's requests, which
        also wait for the tick's write transactions."""
        self._evaluating_since = time.monotonic()
        self.idle.clear()
        try:
            yield
        finally:
            self._evaluating_since = None
            self.idle.set()
            self.wake.set()

    def holding(self) -> float:
        """Seconds the sender should still hold back for a running tick (0: none runs, or it ran too long)."""
        since = self._evaluating_since
        return 0.0 if since is None else max(0.0, HOLD_MAX_S - (time.monotonic() - since))

    @property
    def current(self) -> Notifications | None:
        return self.source.current if self.source is not None else None

    # -- called by ExceptionWriter.replace, inside the runner's transaction --------------------------
    def on_exceptions(self, conn: sqlite3.Connection, changed: dict[int, dict], deleted: dict[int, dict],
                      now_ms: int) -> None:
        """Inside the runner's write transaction (webhooks wait for it): the changed rows come with the call,
        and only what is needed is read."""
        if deleted:  # SQLite may give a deleted exception's id to the next one: it must not inherit these
            q = ",".join("?" * len(deleted))
            conn.execute(f"DELETE FROM acks WHERE exception_id IN ({q})", list(deleted))
            conn.execute(f"DELETE FROM snoozes WHERE exception_id IN ({q})", list(deleted))
        cfg = self.current
        if cfg is None or not cfg.routes:
            return
        self._plan(conn, cfg, now_ms, list(changed), deleted, dry=False, known=changed)

    # -- after each tick: what time alone changes ---------------------------------------------------
    def tick(self, now_ms: int | None = None) -> int:
        """Reconcile open exceptions (and any whose state says open); returns outbox entries written."""
        if self.source is not None:
            self.source.check()
        cfg = self.current
        if cfg is None or not cfg.routes:
            return 0
        now = self.clock.now_ms() if now_ms is None else now_ms
        reader = self.store.reader
        ids = self._candidates(reader, cfg, now)
        total = 0
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            # most open exceptions need nothing: decide on the reader, write only where something changes
            if not self._plan(reader, cfg, now, chunk, {}, dry=True):
                continue
            with self.store.write() as conn:
                total += self.reconcile(conn, cfg, now, chunk, {})
        if total:
            self.wake.set()
        return total

    @staticmethod
    def _candidates(conn, cfg: Notifications, now_ms: int) -> list[int]:
        """The exceptions time alone may have given something to send, found by SQL: per route, open ones it
        matches that have lasted its ``min_duration`` and it has not announced (held back by a snooze or its
        hours, or just long enough), and announced ones due a reminder; and any whose announcement state no
        longer says what is stored. Every other open exception (nearly all of them, every tick) costs
        nothing here; ``_plan`` decides on these."""
        ids: set[int] = set()
        for route in cfg.routes:
            if route.channel not in cfg.channels:
                continue
            where = ["e.end_ms IS NULL", "e.start_ms <= ?", "e.start_ms >= ?"]
            # (not news: open for over a day before it could be announced, as _due_open says)
            params: list = [now_ms - route.min_duration_ms,
                            now_ms - cfg.delivery.max_age_ms - route.min_duration_ms - 86_400_000]
            for col, values in (("rule", route.rules), ("severity", route.severities), ("team", route.teams)):
                if values:
                    where.append(f"e.{col} IN ({','.join('?' * len(values))})")
                    params += list(values)
            params.append(route.name)
            ids.update(r[0] for r in conn.execute(
                f"SELECT e.id FROM exceptions e WHERE {' AND '.join(where)} AND NOT EXISTS "
                "(SELECT 1 FROM notify_state s WHERE s.exception_id = e.id AND s.route = ?)", params))
            if route.remind_every_ms:
                ids.update(r[0] for r in conn.execute(
                    "SELECT s.exception_id FROM notify_state s WHERE s.route = ? AND s.end_ms IS NULL "
                    "AND s.announced_ms + (s.reminders + 1) * ? <= ? "
                    "AND NOT EXISTS (SELECT 1 FROM acks a WHERE a.exception_id = s.exception_id)",
                    (route.name, route.remind_every_ms, now_ms)))
        # announced as open but since closed, moved or gone, or announced as closed and open again: written
        # without the listener (which normally handles it in the same transaction)
        ids.update(r[0] for r in conn.execute(
            "SELECT s.exception_id FROM notify_state s LEFT JOIN exceptions e ON e.id = s.exception_id "
            "WHERE s.end_ms IS NULL AND (e.id IS NULL OR e.end_ms IS NOT NULL OR e.start_ms != s.start_ms)"))
        ids.update(r[0] for r in conn.execute(
            "SELECT s.exception_id FROM notify_state s JOIN exceptions e ON e.id = s.exception_id "
            "WHERE e.end_ms IS NULL AND (s.end_ms IS NOT NULL OR s.start_ms != e.start_ms)"))
        return sorted(ids)

    def reconcile(self, conn, cfg: Notifications, now_ms: int, ids: list[int], deleted: dict[int, dict]) -> int:
        return self._plan(conn, cfg, now_ms, ids, deleted, dry=False)

    def _plan(self, conn, cfg: Notifications, now_ms: int, ids: list[int], deleted: dict[int, dict], *,
              dry: bool, known: dict[int, dict] | None = None) -> int:
        ids = [i for i in ids if i not in deleted]
        rows: dict[int, dict] = dict(known) if known is not None else {}
        acked: set[int] | None = set() if known is None else None  # read below when needed
        for i in range(0, len(ids) if known is None else 0, 500):
            part = ids[i:i + 500]
            q = ",".join("?" * len(part))
            for r in conn.execute(f"SELECT {', '.join('e.' + c for c in COLS)}, a.exception_id FROM exceptions e "
                                  f"LEFT JOIN acks a ON a.exception_id = e.id WHERE e.id IN ({q})", part):
                rows[r[0]] = _row(r)
                if r[-1] is not None:
                    acked.add(r[0])  # type: ignore[union-attr]
        all_ids = list(rows) + list(deleted) + [i for i in ids if i not in rows]
        if not all_ids:
            return 0
        states: dict[tuple[int, str], dict] = {}
        for i in range(0, len(all_ids), 500):
            part = all_ids[i:i + 500]
            q = ",".join("?" * len(part))
            for eid, route, ann, s, e, rem in conn.execute(
                    f"SELECT exception_id, route, announced_ms, start_ms, end_ms, reminders FROM notify_state "
                    f"WHERE exception_id IN ({q})", part):
                states[(eid, route)] = {"announced_ms": ann, "start_ms": s, "end_ms": e, "reminders": rem}
        if acked is None:  # acknowledgements matter only to reminders of announced exceptions
            acked = set()
            announced = sorted({eid for eid, _ in states if eid in rows})
            for i in range(0, len(announced), 500):
                part = announced[i:i + 500]
                q = ",".join("?" * len(part))
                acked |= {r[0] for r in conn.execute(f"SELECT exception_id FROM acks WHERE exception_id IN ({q})",
                                                     part)}
        snoozed_workers, snoozed_exc = self._snoozes(conn, now_ms, cache=known is not None)
        channels = cfg.channels
        writes = 0
        for eid in all_ids:
            row = rows.get(eid)
            for route in cfg.routes:
                if route.channel not in channels:
                    continue
                st = states.get((eid, route.name))
                if row is None:  # removed by a late record or a recompute
                    if st is None:
                        continue
                    writes += 1
                    if not dry:
                        self._removed(conn, route, eid, deleted.get(eid), st, now_ms)
                    continue
                if st is None and not route.matches(row["rule"], row["severity"], row["team"]):
                    continue
                quiet = (row["worker_sid"] in snoozed_workers or eid in snoozed_exc
                         or (route.hours is not None and not route.hours.contains(now_ms)))
                if st is None:
                    if quiet or not self._due_open(row, route, cfg, now_ms):
                        continue
                    writes += 1
                    if not dry:
                        event = "opened" if row["end_ms"] is None else "closed"
                        if event == "closed" and "close" not in route.on:
                            event = "opened"  # lasted long enough but was never announced: say it once, as it was
                        if event == "opened" and "open" not in route.on:
                            self._set_state(conn, eid, route, now_ms, row, 0)  # only closings go out: remember
                            continue
                        self._enqueue(conn, route, event, row, now_ms)
                        self._set_state(conn, eid, route, now_ms, row, 0)
                    continue
                events = self._changes(row, st, route, now_ms, eid in acked, quiet)
                if not events:
                    continue
                writes += 1
                if dry:
                    continue
                reminders = st["reminders"]
                for event in events:
                    if event == "reminder":
                        reminders = (now_ms - st["announced_ms"]) // route.remind_every_ms
                        self._enqueue(conn, route, "reminder", row, now_ms)
                    elif event in ("corrected", "closed"):
                        prev = {"start": iso(st["start_ms"]), "end": iso(st["end_ms"])}
                        if not self._amend_pending(conn, route, eid, row, now_ms):
                            if event == "closed" and "close" not in route.on:
                                pass
                            else:
                                self._enqueue(conn, route, event, row, now_ms,
                                              previous=prev if event == "corrected" else None)
                self._set_state(conn, eid, route, st["announced_ms"], row, reminders)
        if writes and not dry:
            METRICS.inc("adherence_notifications_enqueued_total", writes)
        return writes

    @staticmethod
    def _due_open(row: dict, route: Route, cfg: Notifications, now_ms: int) -> bool:
        end = row["end_ms"]
        if end is not None and now_ms - end > cfg.delivery.max_age_ms:
            return False
        if end is None and now_ms - row["start_ms"] > cfg.delivery.max_age_ms + route.min_duration_ms + 86_400_000:
            return False  # an exception open for more than a day before notifications began: not news
        return (now_ms if end is None else end) - row["start_ms"] >= route.min_duration_ms

    @staticmethod
    def _changes(row: dict, st: dict, route: Route, now_ms: int, acked: bool, quiet: bool) -> list[str]:
        out = []
        moved = row["start_ms"] != st["start_ms"]
        if row["end_ms"] != st["end_ms"]:
            if st["end_ms"] is None and not moved:
                out.append("closed")
            else:
                out.append("corrected")  # reopened by a late record, or its end or start moved
        elif moved:
            out.append("corrected")
        if (row["end_ms"] is None and route.remind_every_ms and not acked and not quiet
                and now_ms >= st["announced_ms"] + (st["reminders"] + 1) * route.remind_every_ms):
            out.append("reminder")
        return out

    def _snoozes(self, conn, now_ms: int, cache: bool = False) -> tuple[set[str], set[int]]:
        """Snoozes in force at ``now_ms``. With ``cache`` (inside a write transaction, where a snooze cannot
        change unseen: ``snooze`` drops the cache under the same lock) read once per instant, as a tick
        writes its agents in many transactions."""
        cached = self._snooze_cache
        if cache and cached is not None and cached[0] == now_ms:
            return cached[1], cached[2]
        workers, excs = set(), set()
        for w, e in conn.execute("SELECT worker_sid, exception_id FROM snoozes WHERE until_ms > ?", (now_ms,)):
            if e is not None:
                excs.add(e)
            elif w is not None:
                workers.add(w)
        if cache:
            self._snooze_cache = (now_ms, workers, excs)
        return workers, excs

    def _enqueue(self, conn, route: Route, event: str, row: dict, now_ms: int, previous: dict | None = None) -> None:
        payload = {"exception": event_body(row, now_ms)}
        if previous is not None:
            payload["previous"] = previous
        due = now_ms
        if route.digest_ms:
            due = (now_ms // route.digest_ms + 1) * route.digest_ms
        conn.execute(
            "INSERT INTO outbox (channel, route, event, exception_id, worker_sid, agent, payload, created_ms, "
            "next_attempt_ms, digest_ms) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (route.channel, route.name, event, row["id"], row["worker_sid"], row["agent"],
             json.dumps(payload, separators=(",", ":")), now_ms, due, route.digest_ms))
        if self._evaluating_since is None:  # during a tick, its end wakes the sender once
            self.wake.set()

    def _amend_pending(self, conn, route: Route, eid: int, row: dict, now_ms: int) -> bool:
        """A change to an exception whose last message is still waiting: correct that message instead of
        sending two (the receiver sees only the exception as it now is)."""
        pending = conn.execute(
            "SELECT id, event, payload FROM outbox WHERE exception_id = ? AND route = ? AND status = 'pending' "
            "AND event IN ('opened', 'closed', 'corrected') ORDER BY id DESC LIMIT 1", (eid, route.name)).fetchone()
        if pending is None:
            return False
        event = pending[1]
        if event == "opened" and row["end_ms"] is not None and "close" in route.on:
            event = "closed"  # opened and closed before anything went out: one message says both
        elif event == "closed" and row["end_ms"] is None:
            event = "corrected"  # the closing was not sent and a late record reopened it
        payload = {"exception": event_body(row, now_ms)}
        previous = json.loads(pending[2]).get("previous")
        if event == "corrected":  # what the receiver last heard, which the waiting message has not changed
            payload["previous"] = previous or {"start": iso(row["start_ms"]), "end": None}
        conn.execute("UPDATE outbox SET payload = ?, event = ? WHERE id = ?",
                     (json.dumps(payload, separators=(",", ":")), event, pending[0]))
        return True

    def _removed(self, conn, route: Route, eid: int, old: dict | None, st: dict, now_ms: int) -> None:
        conn.execute(
            "UPDATE outbox SET status = 'cancelled', last_error = 'the exception no longer occurs' "
            "WHERE exception_id = ? AND route = ? AND status = 'pending'", (eid, route.name))
        # since this state's announcement only: SQLite reuses the id of a deleted last row
        sent = conn.execute("SELECT 1 FROM outbox WHERE exception_id = ? AND route = ? AND status = 'sent' "
                            "AND created_ms >= ? LIMIT 1", (eid, route.name, st["announced_ms"])).fetchone()
        conn.execute("DELETE FROM notify_state WHERE exception_id = ? AND route = ?", (eid, route.name))
        if sent is None:
            return  # nothing reached anyone (what was waiting is cancelled): silence is right
        row = dict(old or {})
        row.update({"id": eid, "start_ms": st["start_ms"], "end_ms": st["end_ms"]})
        for k in COLS:
            row.setdefault(k, None)
        self._enqueue(conn, route, "removed", row, now_ms)

    @staticmethod
    def _set_state(conn, eid: int, route: Route, announced_ms: int, row: dict, reminders: int) -> None:
        conn.execute(
            "INSERT INTO notify_state (exception_id, route, announced_ms, start_ms, end_ms, reminders) "
            "VALUES (?,?,?,?,?,?) ON CONFLICT (exception_id, route) DO UPDATE SET start_ms = excluded.start_ms, "
            "end_ms = excluded.end_ms, reminders = excluded.reminders",
            (eid, route.name, announced_ms, row["start_ms"], row["end_ms"], reminders))

    # -- snooze and acknowledge ---------------------------------------------------------------------
    def snooze(self, *, worker_sid: str | None, agent: str | None, exception_id: int | None, minutes: int,
               by: str | None, note: str | None = None, day: str | None = None, now_ms: int | None = None) -> int:
        """Snooze an agent's (or one exception's) alerts; 0 minutes ends the snooze. Returns until (ms).

        The snooze and its row in the supervisor audit history commit together."""
        now = self.clock.now_ms() if now_ms is None else now_ms
        until = now + minutes * 60_000
        with self.store.write() as conn:
            self._snooze_cache = None
            if exception_id is not None:
                conn.execute("DELETE FROM snoozes WHERE exception_id = ?", (exception_id,))
            else:
                conn.execute("DELETE FROM snoozes WHERE worker_sid = ? AND exception_id IS NULL", (worker_sid,))
            if minutes:
                conn.execute("INSERT INTO snoozes (worker_sid, exception_id, until_ms, by, created_ms) "
                             "VALUES (?,?,?,?,?)", (worker_sid, exception_id, until, by, now))
                # what is waiting to go out now falls under the snooze; an exception whose opening was held
                # back is announced after the snooze if it is still open
                where = "exception_id = ?" if exception_id is not None else "worker_sid = ?"
                key = exception_id if exception_id is not None else worker_sid
                held = conn.execute(
                    f"SELECT id, exception_id, route, event FROM outbox WHERE {where} AND status = 'pending' "
                    f"AND event IN ('opened', 'reminder')", (key,)).fetchall()
                for oid, eid, route, event in held:
                    conn.execute("UPDATE outbox SET status = 'cancelled', last_error = 'snoozed' WHERE id = ?", (oid,))
                    if event == "opened":
                        conn.execute("DELETE FROM notify_state WHERE exception_id = ? AND route = ?", (eid, route))
            record(conn, now, "snooze" if minutes else "unsnooze", by, note, exception_id=exception_id,
                   worker_sid=worker_sid, agent=agent, day=day,
                   detail={"minutes": minutes, "until": iso(until)} if minutes else None)
        return until

    def acknowledge(self, exception_id: int, row: dict, *, by: str | None, note: str | None, ack: bool = True,
                    now_ms: int | None = None) -> None:
        now = self.clock.now_ms() if now_ms is None else now_ms
        with self.store.write() as conn:
            if ack:
                conn.execute("INSERT INTO acks (exception_id, by, note, at_ms) VALUES (?,?,?,?) "
                             "ON CONFLICT (exception_id) DO UPDATE SET by = excluded.by, note = excluded.note, "
                             "at_ms = excluded.at_ms", (exception_id, by, note, now))
                conn.execute("UPDATE outbox SET status = 'cancelled', last_error = 'acknowledged' WHERE "
                             "exception_id = ? AND status = 'pending' AND event = 'reminder'", (exception_id,))
            else:
                conn.execute("DELETE FROM acks WHERE exception_id = ?", (exception_id,))
            record(conn, now, "ack" if ack else "unack", by, note, exception_id=exception_id,
                   worker_sid=row["worker_sid"], agent=row["agent"], day=row.get("day"))

    # -- reading ------------------------------------------------------------------------------------
    def state(self, *, day: str | None = None, teams: frozenset | None = None, agent_info=None,
              now_ms: int | None = None) -> tuple[list[dict], list[dict]]:
        """Snoozes in force now (of agents, of exceptions) and the acknowledgements of open exceptions (and
        of ``day``'s): what the board shows beside them. ``agent_info(worker_sid)`` gives (key, team, ...);
        ``teams`` keeps what is in a scoped caller's teams."""
        now = self.clock.now_ms() if now_ms is None else now_ms
        reader = self.store.reader
        agents = []
        for w, until, by in reader.execute("SELECT worker_sid, until_ms, by FROM snoozes WHERE exception_id IS NULL "
                                           "AND until_ms > ? ORDER BY worker_sid", (now,)):
            key, team = agent_info(w)[:2] if agent_info is not None else (w, None)
            if teams is not None and team not in teams:
                continue
            agents.append({"agent": key, "worker_sid": w, "until": iso(until), "by": by})
        excs: dict[int, dict] = {}

        def row(eid, agent, w, team, end) -> dict | None:
            if teams is not None and team not in teams:
                return None
            return excs.setdefault(eid, {"exception_id": eid, "agent": agent, "worker_sid": w, "open": end is None,
                                         "snoozed_until": None, "snoozed_by": None, "acknowledged": None})

        # from the (small) snoozes and acks tables, never a scan of the exceptions: the board asks every poll
        for eid, agent, w, team, end, until, by in reader.execute(
                "SELECT e.id, e.agent, e.worker_sid, e.team, e.end_ms, s.until_ms, s.by FROM snoozes s "
                "JOIN exceptions e ON e.id = s.exception_id WHERE s.until_ms > ?", (now,)):
            r = row(eid, agent, w, team, end)
            if r is not None:
                r["snoozed_until"], r["snoozed_by"] = iso(until), by
        which = "e.end_ms IS NULL" + (" OR e.day = ?" if day else "")
        for eid, agent, w, team, end, by, note, at in reader.execute(
                "SELECT e.id, e.agent, e.worker_sid, e.team, e.end_ms, k.by, k.note, k.at_ms FROM acks k "
                f"JOIN exceptions e ON e.id = k.exception_id WHERE {which}", (day,) if day else ()):
            r = row(eid, agent, w, team, end)
            if r is not None:
                r["acknowledged"] = {"by": by, "note": note, "at": iso(at)}
        return agents, [excs[k] for k in sorted(excs)]

    def counts(self) -> dict[tuple[str, str], int]:
        return {(c, s): n for c, s, n in self.store.reader.execute(
            "SELECT channel, status, COUNT(*) FROM outbox GROUP BY channel, status")}

    def status(self) -> dict:
        counts: dict[str, int] = {}
        try:
            for (_, s), n in self.counts().items():
                counts[s] = counts.get(s, 0) + n
        except sqlite3.Error as exc:
            return {"ok": False, "error": str(exc)}
        src = self.source.status() if self.source is not None else {"ok": True, "errors": []}
        return {"ok": bool(src["ok"]) and not counts.get("dead"), "configured": self.source is not None,
                "file": src, "pending": counts.get("pending", 0), "sent": counts.get("sent", 0),
                "dead": counts.get("dead", 0), "cancelled": counts.get("cancelled", 0)}
