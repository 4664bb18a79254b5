"""``/api`` routes of notifications: the outbox, acknowledge and snooze.

Registered on the ``api`` blueprint (same token, same error shape, same
cookie-needs-JSON rule); imported by ``create_app`` before the blueprint is
registered. Snooze follows the commercial tools' convention (Calabrio): 15-minute
steps up to 23 h 45, so a snooze always ends within the working day it was set.
"""

from __future__ import annotations

import json
import logging

from flask import jsonify, request

from ..approvals import audit_row, record
from ..notify.outbox import SNOOZE_MAX_MIN, SNOOZE_STEP_MIN
from ..timeutil import iso, local_date
from .api import (MAX_BY, MAX_NOTE, BadRequest, _args, _day_arg, _engine, _exception_id, _next_link, _paging, approver, bp,
                  principal, visible_teams)

log = logging.getLogger(__name__)

STATUSES = ("pending", "sent", "dead", "cancelled")
MAX_AGENT = 200
# what notifications write to the supervisor audit table (beside approve, withdraw and the period actions)
AUDIT_ACTIONS = ("snooze", "unsnooze", "ack", "unack", "retry")


def _notifier():
    n = getattr(_engine(), "notifier", None)
    if n is None:
        raise BadRequest("notifications are not configured (config key notifications:)", status=409)
    return n


def _body(allowed: dict[str, type], required: tuple[str, ...] = ()) -> dict:
    raw = request.get_data(cache=True)
    if not raw.strip():
        if required:
            raise BadRequest("expected a JSON body with " + ", ".join(required))
        return {}
    if not request.is_json:
        raise BadRequest(f"expected Content-Type: application/json, got {request.mimetype or 'none'!r}", status=415)
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest("expected a JSON object")
    errors = [f"unknown field {k!r} (expected {', '.join(allowed)})" for k in body if k not in allowed]
    for k, kind in allowed.items():
        v = body.get(k)
        if v is None:
            if k in required:
                errors.append(f"{k}: required")
            continue
        if kind is int and (isinstance(v, bool) or not isinstance(v, int)):
            errors.append(f"{k}: expected a whole number")
        elif kind is str and not isinstance(v, str):
            errors.append(f"{k}: expected text")
        elif kind is str and len(v) > (MAX_NOTE if k == "note" else MAX_BY):
            errors.append(f"{k}: too long")
        elif kind is str and k == "by" and not v.strip():
            errors.append("by: who it is (a name) is required")
    if errors:
        raise BadRequest("; ".join(errors), errors)
    return body


def _who(body: dict, required: bool = True) -> str | None:
    """``by`` as recorded: the body's, else the named token's name (like an approval); the single
    ``api_token`` and an open service must say who."""
    by = approver((body.get("by") or "").strip() or None)
    if by is None and required:
        raise BadRequest("by: who it is (a name) is required", ["by: required"])
    return by


def _note(body: dict) -> str | None:
    return (body.get("note") or "").strip() or None


def _minutes(body: dict) -> int:
    m = body["minutes"]
    if m != 0 and (m % SNOOZE_STEP_MIN or not SNOOZE_STEP_MIN <= m <= SNOOZE_MAX_MIN):
        raise BadRequest(f"minutes: a multiple of {SNOOZE_STEP_MIN} from {SNOOZE_STEP_MIN} to {SNOOZE_MAX_MIN} "
                         f"(23 h 45), or 0 to end the snooze; got {m}")
    return m


def _exception(exc_id: int) -> dict:
    r = _engine().store.reader.execute("SELECT id, worker_sid, agent, day FROM exceptions WHERE id = ?",
                                       (exc_id,)).fetchone()
    if r is None:
        raise BadRequest(f"no exception with id {exc_id}", status=404)
    return {"id": r[0], "worker_sid": r[1], "agent": r[2], "day": r[3]}


def _ack_view(exc_id: int) -> dict | None:
    r = _engine().store.reader.execute("SELECT by, note, at_ms FROM acks WHERE exception_id = ?", (exc_id,)).fetchone()
    return None if r is None else {"by": r[0], "note": r[1], "at": iso(r[2])}


@bp.post("/api/exceptions/<exc_id>/ack")
def ack_exception(exc_id: str):
    n = _notifier()
    eid = _exception_id(exc_id)
    body = _body({"by": str, "note": str})
    row = _exception(eid)
    by = _who(body)
    n.acknowledge(eid, row, by=by, note=_note(body))
    log.info("exception %s acknowledged", eid, extra={"event": "ack", "exception": eid, "by": by})
    return jsonify({"ok": True, "exception_id": eid, "acknowledged": _ack_view(eid)})


@bp.delete("/api/exceptions/<exc_id>/ack")
def unack_exception(exc_id: str):
    n = _notifier()
    eid = _exception_id(exc_id)
    body = _body({"by": str, "note": str})
    row = _exception(eid)
    n.acknowledge(eid, row, by=_who(body, required=False), note=_note(body), ack=False)
    return jsonify({"ok": True, "exception_id": eid, "acknowledged": None})


def _snooze_view(worker_sid, agent, exception_id, until_ms: int | None, minutes: int) -> dict:
    return {"agent": agent, "worker_sid": worker_sid, "exception_id": exception_id, "minutes": minutes,
            "until": iso(until_ms) if minutes else None}


@bp.post("/api/exceptions/<exc_id>/snooze")
def snooze_exception(exc_id: str):
    n = _notifier()
    eid = _exception_id(exc_id)
    body = _body({"minutes": int, "by": str, "note": str}, required=("minutes",))
    minutes = _minutes(body)
    row = _exception(eid)
    until = n.snooze(worker_sid=row["worker_sid"], agent=row["agent"], exception_id=eid, minutes=minutes,
                     by=_who(body), note=_note(body), day=row["day"])
    return jsonify({"ok": True, "snooze": _snooze_view(row["worker_sid"], row["agent"], eid, until, minutes)})


@bp.post("/api/agents/<agent>/snooze")
def snooze_agent(agent: str):
    n = _notifier()
    body = _body({"minutes": int, "by": str, "note": str}, required=("minutes",))
    minutes = _minutes(body)
    worker, key = _resolve(agent)
    engine = _engine()
    day = local_date(engine.clock.now_ms(), engine.runner.agent_info(worker)[2]).isoformat()  # the agent's today
    until = n.snooze(worker_sid=worker, agent=key, exception_id=None, minutes=minutes, by=_who(body),
                     note=_note(body), day=day)
    return jsonify({"ok": True, "snooze": _snooze_view(worker, key, None, until, minutes)})


def _resolve(agent: str) -> tuple[str, str]:
    """Roster key or worker SID → (worker SID, roster key); 404 for an agent never heard of."""
    engine = _engine()
    if len(agent) > MAX_AGENT:
        raise BadRequest("no such agent", status=404)
    sched = engine.schedules.current
    a = sched.agent(agent) if sched is not None else None
    if a is not None:
        return a.worker_sid, a.key
    r = engine.store.reader.execute("SELECT 1 FROM journal WHERE worker_sid = ? LIMIT 1", (agent,)).fetchone()
    if r is None:
        raise BadRequest(f"unknown agent {agent!r} (not in the roster and never seen in the feed)", status=404)
    return agent, agent


ROW_KEYS = ("id", "channel", "route", "event", "exception_id", "agent", "status", "attempts", "created_ms",
            "next_attempt_ms", "sent_ms", "last_error", "payload")


def _outbox_row(r) -> dict:
    d = dict(zip(ROW_KEYS, r))
    return {"id": d["id"], "channel": d["channel"], "route": d["route"], "event": d["event"],
            "exception_id": d["exception_id"], "agent": d["agent"], "status": d["status"],
            "attempts": d["attempts"], "created": iso(d["created_ms"]),
            "next_attempt": iso(d["next_attempt_ms"]) if d["status"] == "pending" else None,
            "sent": iso(d["sent_ms"]), "last_error": d["last_error"], "payload": json.loads(d["payload"])}


@bp.get("/api/notifications")
def list_notifications():
    engine = _engine()
    args = _args()
    extra = sorted(set(args) - {"status", "channel", "limit", "offset"})
    if extra:
        raise BadRequest("unknown parameter(s): " + ", ".join(extra) + " (expected status, channel, limit, offset)")
    limit, offset = _paging(args)
    where, params = [], []
    if args.get("status"):
        if args["status"] not in STATUSES:
            raise BadRequest(f"status: expected one of {', '.join(STATUSES)}, got {args['status']!r}")
        where.append("status = ?")
        params.append(args["status"])
    if args.get("channel"):
        where.append("channel = ?")
        params.append(args["channel"])
    sql_where = (" WHERE " + " AND ".join(where)) if where else ""
    reader = engine.store.reader
    (total,) = reader.execute(f"SELECT COUNT(*) FROM outbox{sql_where}", params).fetchone()
    rows = [_outbox_row(r) for r in reader.execute(
        f"SELECT {', '.join(ROW_KEYS)} FROM outbox{sql_where} ORDER BY id DESC LIMIT ? OFFSET ?",
        [*params, limit, offset])]
    notifier = getattr(engine, "notifier", None)
    channels = []
    counts = notifier.counts() if notifier is not None else {}
    cfg = notifier.current if notifier is not None else None
    for name in sorted({c for c, _ in counts} | set(cfg.channels if cfg else ())):
        ch = cfg.channels.get(name) if cfg else None
        channels.append({"name": name, "type": ch.type if ch else None, "configured": ch is not None,
                         **{s: counts.get((name, s), 0) for s in STATUSES}})
    return jsonify({"ok": True, "configured": notifier is not None, "channels": channels, "total": total,
                    "limit": limit, "offset": offset, "next": _next_link(offset, limit, len(rows), total),
                    "notifications": rows})


@bp.post("/api/notifications/<note_id>/retry")
def retry_notification(note_id: str):
    engine = _engine()
    nid = _exception_id(note_id)
    body = _body({"by": str})
    with engine.store.write() as conn:
        r = conn.execute("SELECT status, exception_id, worker_sid, agent FROM outbox WHERE id = ?", (nid,)).fetchone()
        if r is None:
            raise BadRequest(f"no notification with id {nid}", status=404)
        if r[0] != "dead":
            raise BadRequest(f"notification {nid} is {r[0]}: only a dead-lettered one is retried", status=409)
        now = engine.clock.now_ms()
        conn.execute("UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_ms = ? WHERE id = ?", (now, nid))
        day = conn.execute("SELECT day FROM exceptions WHERE id = ?", (r[1],)).fetchone() if r[1] else None
        record(conn, now, "retry", _who(body, required=False), None, exception_id=r[1], worker_sid=r[2], agent=r[3],
               day=day[0] if day else None, detail={"notification": nid})
    if getattr(engine, "notifier", None) is not None:
        engine.notifier.wake.set()
    row = engine.store.reader.execute(f"SELECT {', '.join(ROW_KEYS)} FROM outbox WHERE id = ?", (nid,)).fetchone()
    return jsonify({"ok": True, "notification": _outbox_row(row)})


@bp.get("/api/notifications/audit")
def notification_audit():
    """The notification actions of the supervisor audit table (``GET /api/audit`` holds them with the
    approvals), newest first."""
    args = _args()
    extra = sorted(set(args) - {"limit", "offset"})
    if extra:
        raise BadRequest("unknown parameter(s): " + ", ".join(extra) + " (expected limit, offset)")
    limit, offset = _paging(args)
    reader = _engine().store.reader
    q = ",".join("?" * len(AUDIT_ACTIONS))
    (total,) = reader.execute(f"SELECT COUNT(*) FROM audit WHERE action IN ({q})", AUDIT_ACTIONS).fetchone()
    rows = [audit_row(r) for r in reader.execute(
        f"SELECT * FROM audit WHERE action IN ({q}) ORDER BY at_ms DESC, id DESC LIMIT ? OFFSET ?",
        (*AUDIT_ACTIONS, limit, offset))]
    return jsonify({"ok": True, "total": total, "limit": limit, "offset": offset,
                    "next": _next_link(offset, limit, len(rows), total), "audit": rows})


@bp.get("/api/notifications/state")
def notification_state():
    """What the board shows beside agents and exceptions: snoozes in force (agent and exception) and
    acknowledgements of open exceptions (and of the exceptions of ``date``), within the caller's teams;
    ``can_write`` says whether the caller may snooze and acknowledge."""
    engine = _engine()
    args = _args()
    extra = sorted(set(args) - {"date"})
    if extra:
        raise BadRequest("unknown parameter(s): " + ", ".join(extra) + " (expected date)")
    day = args.get("date")
    if day:
        day = _day_arg(day).isoformat()
    who = principal()
    notifier = getattr(engine, "notifier", None)
    out = {"ok": True, "configured": notifier is not None, "now": iso(engine.clock.now_ms()),
           "can_write": bool(who is not None and who.can_write and notifier is not None),
           "named": bool(who is not None and who.named),
           "snooze_step_minutes": SNOOZE_STEP_MIN, "snooze_max_minutes": SNOOZE_MAX_MIN, "agents": [], "exceptions": []}
    if notifier is None:
        return jsonify(out)
    out["agents"], out["exceptions"] = notifier.state(day=day, teams=visible_teams(),
                                                      agent_info=engine.runner.agent_info)
    return jsonify(out)
