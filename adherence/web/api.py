"""``/api``: the read paths (JSON, or streamed CSV) and approvals.

One view per resource serves JSON and CSV, chosen by ``format=csv|json`` or
by ``Accept: text/csv`` (Datasette's way). JSON lists are paginated with
``limit``/``offset`` and carry ``total`` and a ``next`` link; CSV streams
every matching row. Filters are validated by ``queries.Filters`` so the API
and the CLI reports accept and refuse exactly the same things. Every error
is the one JSON error shape, 4xx with a message that says what to fix.

Access: when ``auth.api_token`` is set, every ``/api`` request needs
``Authorization: Bearer <token>`` or the board's session cookie (see
``session_value``). The token itself is never logged or put in a cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from datetime import timedelta
from typing import Any, Iterator

from flask import Blueprint, Response, current_app, g, jsonify, request, url_for

from ..access import OPEN, Principal, Refused, principals
from ..auth import check_bearer, constant_time_equal
from ..errors import NotFound
from ..metrics import METRICS
from ..queries import (
    FilterError,
    Filters,
    adherence,
    adherence_by_team,
    adherence_csv,
    adherence_days,
    csv_lines,
    exception_csv,
    exceptions,
    get_exception,
    open_exceptions,
    set_approval,
)
from ..approvals import (
    AUDIT_COLUMNS,
    PeriodError,
    audit,
    create_period,
    get_period,
    iter_audit,
    list_periods,
    withdraw_period,
)
from ..queries import approve_many
from ..timeutil import iso, local_date, local_midnight_ms, parse_instant_ms, zone
from . import error_response
from .agentsnap import _channels

bp = Blueprint("api", __name__)
log = logging.getLogger(__name__)

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
AGENTS_DEFAULT_LIMIT = 1000
AGENTS_MAX_LIMIT = 100_000
MAX_OFFSET = 1_000_000_000
MAX_NOTE = 2000
MAX_BY = 200

TEAM_COLUMNS = [
    "date", "team", "agents", "scheduled_seconds", "in_adherence_seconds", "out_of_adherence_seconds",
    "approved_seconds", "adherence_percent", "conformance_percent", "exceptions", "neutral_seconds",
]
EXCEPTION_FILTERS = ("date", "from", "to", "agent", "team", "rule", "severity", "status", "approved")
ADHERENCE_FILTERS = ("date", "from", "to", "team", "agent")
AGENT_FILTERS = ("team", "agent", "out_of_adherence")
PAGING = ("limit", "offset", "format")

# -- access ----------------------------------------------------------------------

SESSION_COOKIE = "adherence_session"
SESSION_DAYS = 30
_SESSION_CONTEXT = b"adherence board session v1|"


def _session_mac(token: str, expires: int) -> str:
    return hmac.new(token.encode("utf-8"), _SESSION_CONTEXT + str(expires).encode(), hashlib.sha256).hexdigest()


def session_value(token: str, now_s: int | None = None) -> tuple[str, int]:
    """A board session cookie value and its max age: ``v1.<expires>.<HMAC(token, expires)>``.

    Derived from the token, never the token itself; rotating the token ends every session.
    """
    max_age = SESSION_DAYS * 86_400
    expires = int(now_s if now_s is not None else time.time()) + max_age
    return f"v1.{expires}.{_session_mac(token, expires)}", max_age


def session_valid(value: str | None, token: str, now_s: int | None = None) -> bool:
    if not value:
        return False
    parts = value.split(".")
    # isascii: str.isdigit() also accepts '²' and other digits int() refuses
    if len(parts) != 3 or parts[0] != "v1" or not (parts[1].isascii() and parts[1].isdigit()) or len(parts[1]) > 12:
        return False
    expires = int(parts[1])
    mac_ok = constant_time_equal(_session_mac(token, expires), parts[2])
    return mac_ok and expires > int(now_s if now_s is not None else time.time())


_SESSION_CONTEXT_V2 = b"adherence board session v2|"


def named_session_value(name: str, token: str, now_s: int | None = None) -> tuple[str, int]:
    """A board session of a named token: ``v2.<name>.<expires>.<HMAC(token, name|expires)>``; like v1, derived
    from the token (never the token), so rotating a token ends its sessions."""
    max_age = SESSION_DAYS * 86_400
    expires = int(now_s if now_s is not None else time.time()) + max_age
    mac = hmac.new(token.encode("utf-8"), _SESSION_CONTEXT_V2 + f"{name}|{expires}".encode(), hashlib.sha256).hexdigest()
    return f"v2.{name}.{expires}.{mac}", max_age


def _session_principal(value: str | None, config, now_s: int | None = None):
    if not value:
        return None
    if value.startswith("v1."):
        if config.api_token and session_valid(value, config.api_token, now_s):
            return Principal("admin", "admin", None, named=False)
        return None
    parts = value.split(".")
    if len(parts) != 4 or parts[0] != "v2" or not (parts[2].isascii() and parts[2].isdigit()) or len(parts[2]) > 12:
        return None
    for token, who in principals(config):
        if who.name == parts[1]:
            want, _ = named_session_value(who.name, token, int(parts[2]) - SESSION_DAYS * 86_400)
            if constant_time_equal(want, value) and int(parts[2]) > int(now_s if now_s is not None else time.time()):
                return who
    return None


def _bearer_principal(header: str | None, config):
    if not header or header[:7].lower() != "bearer ":
        return None
    found = None
    for token, who in principals(config):  # every token compared: the time does not say which matched
        if check_bearer(header, token) and found is None:
            found = who
    return found


def principal():
    """Who the request is (resolved once per request): a Principal, OPEN with no token configured, or None."""
    if "principal" in g:
        return g.principal
    config = current_app.extensions["adherence"].config
    if not config.auth_enabled:
        who, how = OPEN, "open"
    else:
        who, how = _bearer_principal(request.headers.get("Authorization"), config), "bearer"
        if who is None:
            who, how = _session_principal(request.cookies.get(SESSION_COOKIE), config), "cookie"
        if who is None:
            how = None
    g.principal, g.how = who, how
    return who


def credentials() -> str | None:
    """How the request is allowed in: "open" (no API token configured), "bearer", "cookie", or None."""
    principal()
    return g.how


def authorized() -> bool:
    """True when no token is configured, or the request carries one (Bearer) or a valid session cookie."""
    return credentials() is not None


def refuse_scope(message: str):
    raise Refused(message)


def visible_teams() -> frozenset | None:
    """The caller's team scope (None: every team)."""
    who = principal()
    return None if who is None else who.teams


def check_team(team: str | None, what: str) -> None:
    """Refuse (403) a read or change of ``what`` outside the caller's team scope."""
    who = principal()
    if who is not None and not who.sees(team):
        raise Refused(f"refused: {what} belongs to team {team or '(none)'}, outside the scope of token "
                      f"{who.name!r} ({', '.join(sorted(who.teams))})")


def approver(body_by: str | None) -> str | None:
    """``by`` as recorded: what the request says, else the named token's name."""
    who = principal()
    if body_by:
        return body_by
    return who.name if who is not None and who.named else None


def note_auth_failure(surface: str) -> None:
    METRICS.inc("adherence_auth_failures_total", surface=surface)
    log.warning("%s request refused: not authenticated", surface,
                extra={"event": "api_auth_failed", "remote": request.remote_addr, "path": request.path})


# ``/openapi.json`` describes the API and holds no data: public, like /health.
PUBLIC_ENDPOINTS = {"api.openapi"}


@bp.before_request
def _require_token():
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    how = credentials()
    if how == "cookie" and request.method not in ("GET", "HEAD", "OPTIONS") and not request.is_json:
        # Besides SameSite=Strict: a change made with the board's cookie must be a JSON request, which
        # a cross-site HTML form cannot send.
        return error_response(403, "refused: a change made with the board's session must be sent as "
                                   "Content-Type: application/json")
    if how is not None:
        who = g.principal
        if request.method not in ("GET", "HEAD", "OPTIONS") and not who.can_write:
            return error_response(403, f"refused: token {who.name!r} has the role {who.role}, which may only read")
        if who.teams is not None:
            return _scope_other_views(who)
        return None
    note_auth_failure("api")
    header = request.headers.get("Authorization")
    if header:
        challenge = 'Bearer realm="adherence", error="invalid_token"'
        message = "invalid credentials: the bearer token is not a configured API token"
    else:
        challenge = 'Bearer realm="adherence"'
        message = "authentication required: send Authorization: Bearer <token> (auth.api_token)"
    return error_response(401, message, headers={"WWW-Authenticate": challenge})


# Views of other modules on this blueprint (notifications) that do not filter by team themselves: for a
# token scoped to teams, those about one exception or agent are checked here; the lists are refused rather
# than shown unfiltered.
_SCOPED_BY_EXCEPTION = {"api.ack_exception", "api.unack_exception", "api.snooze_exception"}
_SCOPED_BY_AGENT = {"api.snooze_agent"}
_UNSCOPED_LISTS = {"api.list_notifications", "api.retry_notification", "api.notification_audit"}


def _scope_other_views(who):
    args = request.view_args or {}
    try:
        if request.endpoint in _SCOPED_BY_EXCEPTION and str(args.get("exc_id", "")).isdigit():
            row = _engine().store.reader.execute("SELECT team FROM exceptions WHERE id = ?",
                                                 (int(args["exc_id"]),)).fetchone()
            if row is not None:
                check_team(row[0], f"exception {args['exc_id']}")
        elif request.endpoint in _SCOPED_BY_AGENT:
            from ..queries import _resolve_agent

            try:
                check_team(_engine().runner.agent_info(_resolve_agent(_engine(), args.get("agent", "")))[1],
                           f"agent {args.get('agent')!r}")
            except NotFound:
                return None  # the view answers its own 404
        elif request.endpoint in _UNSCOPED_LISTS:
            raise Refused(f"refused: notifications are not filtered by team yet; token {who.name!r} is scoped to "
                          f"{', '.join(sorted(who.teams))}")
    except Refused as exc:
        return error_response(403, str(exc))
    return None


# -- helpers ---------------------------------------------------------------------


class BadRequest(Exception):
    """A request parameter or body is invalid (400 unless told otherwise)."""

    def __init__(self, message: str, errors: list[str] | None = None, status: int = 400):
        super().__init__(message)
        self.errors = errors
        self.status = status


@bp.errorhandler(BadRequest)
def _bad_request(exc: BadRequest):
    return error_response(exc.status, str(exc), exc.errors)


@bp.errorhandler(FilterError)
def _bad_filter(exc: FilterError):
    return error_response(400, str(exc), str(exc).split("; "))


@bp.errorhandler(Refused)
def _refused(exc: Refused):
    return error_response(403, str(exc))


@bp.errorhandler(PeriodError)
def _bad_period(exc: PeriodError):
    return error_response(400, str(exc), str(exc).split("; "))


@bp.errorhandler(NotFound)
def _not_found(exc: NotFound):
    # an unknown agent in a filter is a bad parameter; an unknown id in the path is 404
    status = 404 if request.view_args and "exc_id" in request.view_args else 400
    return error_response(status, str(exc))


@bp.after_request
def _no_cache(resp):
    resp.headers.setdefault("Cache-Control", "no-store")  # personal data; and JSON vs CSV depends on Accept
    resp.vary.add("Accept")
    return resp


@bp.app_errorhandler(405)
def _method_not_allowed(exc):
    # create_app's generic HTTPException handler drops the exception's headers; RFC 9110 requires Allow on 405
    allowed = sorted(getattr(exc, "valid_methods", None) or [])
    message = f"method {request.method} is not allowed here" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
    return error_response(405, message, headers={"Allow": ", ".join(allowed)} if allowed else None)


def _engine():
    return current_app.extensions["adherence"]


def _args() -> dict[str, str]:
    """Query arguments; a repeated argument is an error rather than silently one of its values."""
    repeated = sorted(k for k in request.args if len(request.args.getlist(k)) > 1)
    if repeated:
        raise BadRequest("each filter may be given once; repeated: " + ", ".join(repeated))
    return {k: request.args[k] for k in request.args}


def _int_arg(args: dict, name: str, default: int, lo: int, hi: int | None) -> int:
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name}: expected a whole number, got {raw!r}") from None
    if value < lo or (hi is not None and value > hi):
        bounds = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise BadRequest(f"{name}: expected {bounds}, got {value}")
    return value


def _paging(args: dict, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> tuple[int, int]:
    return _int_arg(args, "limit", default, 1, maximum), _int_arg(args, "offset", 0, 0, MAX_OFFSET)


def _wants_csv(args: dict, csv_ok: bool = True) -> bool:
    fmt = args.get("format")
    if fmt:
        choices = ("json", "csv") if csv_ok else ("json",)
        if fmt not in choices:
            raise BadRequest(f"format: expected {' or '.join(choices)}, got {fmt!r}")
        return fmt == "csv"
    if not csv_ok:
        return False
    best = request.accept_mimetypes.best_match(["application/json", "text/csv"])
    return best == "text/csv"


def _filters(args: dict, allowed: tuple[str, ...]) -> Filters:
    """Validated filters, narrowed to the caller's team scope (a team outside it is refused, not empty)."""
    f = Filters.parse({k: v for k, v in args.items() if k not in PAGING and k != "group"}, allowed=allowed)
    teams = visible_teams()
    if teams is not None:
        if f.team and f.team not in teams:
            check_team(f.team, f"team {f.team!r}")
        f.teams = teams
    return f


def _check_unknown(args: dict, allowed: tuple[str, ...]) -> None:
    extra = sorted(set(args) - set(allowed) - set(PAGING))
    if extra:
        raise FilterError("; ".join(
            f"unknown filter {k!r} (expected one of: {', '.join(sorted({*allowed, *PAGING}))})" for k in extra), None)


def _next_link(offset: int, limit: int, count: int, total: int) -> str | None:
    if offset + count >= total:
        return None
    args = request.args.to_dict()
    args.update(offset=str(offset + limit), limit=str(limit))
    return url_for(request.endpoint, **(request.view_args or {}), **args)


def _page(key: str, rows: list, total: int, limit: int, offset: int, **extra) -> Response:
    return jsonify({
        "ok": True,
        **extra,
        "total": total,
        "limit": limit,
        "offset": offset,
        "next": _next_link(offset, limit, len(rows), total),
        key: rows,
    })


def _csv(name: str, rows: Iterator[dict], columns: list[str]) -> Response:
    resp = Response(csv_lines(rows, columns), mimetype="text/csv")
    resp.headers["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    return resp


def _csv_text(name: str, chunks: Iterator[str]) -> Response:
    resp = Response(chunks, mimetype="text/csv")
    resp.headers["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    return resp


def _suffix(f: Filters) -> str:
    if f.date:
        return f"-{f.date.isoformat()}"
    if f.start or f.end:
        return f"-{f.start or ''}_{f.end or ''}"
    return ""


# -- views -----------------------------------------------------------------------


@bp.get("/api/exceptions")
def list_exceptions():
    engine = _engine()
    args = _args()
    _check_unknown(args, EXCEPTION_FILTERS)
    as_csv = _wants_csv(args)
    limit, offset = _paging(args)
    f = _filters(args, EXCEPTION_FILTERS)
    if as_csv:
        # one statement streamed on its own connection, its lines made by SQLite (queries.exception_csv);
        # the filters (an unknown agent: 400) are checked before the response starts
        return _csv_text("exceptions" + _suffix(f), exception_csv(engine, f))
    rows, total = exceptions(engine, f, limit=limit, offset=offset)
    return _page("exceptions", rows, total, limit, offset, now=iso(engine.clock.now_ms()))


def _exception_id(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise BadRequest(f"no exception with id {raw!r} (ids are positive whole numbers)", status=404)
    return int(raw)


@bp.get("/api/exceptions/<exc_id>")
def one_exception(exc_id: str):
    row = get_exception(_engine(), _exception_id(exc_id), history=True)
    check_team(row["team"], f"exception {row['id']}")
    return jsonify({"ok": True, "exception": row})


@bp.get("/api/adherence")
def list_adherence():
    engine = _engine()
    args = _args()
    _check_unknown(args, (*ADHERENCE_FILTERS, "group"))
    group = args.get("group") or "agent"
    if group not in ("agent", "team"):
        raise BadRequest(f"group: expected agent or team, got {group!r}")
    as_csv = _wants_csv(args)
    limit, offset = _paging(args)
    f = _filters(args, ADHERENCE_FILTERS)
    if group == "team":
        rows = adherence_by_team(engine, f)
        if as_csv:
            return _csv("adherence-by-team" + _suffix(f), iter(rows), TEAM_COLUMNS)
        return _page("adherence", rows[offset : offset + limit], len(rows), limit, offset, group="team")
    if as_csv:
        return _csv_text("adherence" + _suffix(f), adherence_csv(engine, f))
    rows, total = adherence(engine, f, limit=limit, offset=offset)
    return _page("adherence", rows, total, limit, offset, group="agent")


def _approval_body(required_by: bool) -> dict[str, Any]:
    """The JSON body of an approval: ``{"note": "...", "by": "..."}``; strict."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        if required_by:
            raise BadRequest('expected a JSON body like {"note": "...", "by": "..."}')
        return {}
    if not request.is_json:
        raise BadRequest(f"expected Content-Type: application/json, got {request.mimetype or 'none'!r}", status=415)
    body = request.get_json(silent=True)
    if body is None:
        raise BadRequest("the body is not valid JSON")
    if not isinstance(body, dict):
        raise BadRequest('expected a JSON object like {"note": "...", "by": "..."}')
    errors = [f"unknown field {k!r} (expected note, by)" for k in body if k not in ("note", "by")]
    for key, limit in (("note", MAX_NOTE), ("by", MAX_BY)):
        v = body.get(key)
        if v is not None and not isinstance(v, str):
            errors.append(f"{key}: expected text, got {type(v).__name__}")
        elif isinstance(v, str) and len(v) > limit:
            errors.append(f"{key}: at most {limit} characters")
    if required_by and not (isinstance(body.get("by"), str) and body["by"].strip()):
        errors.append("by: who approves is required (a name)")
    if errors:
        raise BadRequest("; ".join(errors), errors)
    return {k: (v.strip() or None) if isinstance(v, str) else None for k, v in body.items()}


def _approval(raw_id: str, approved: bool):
    engine = _engine()
    exc_id = _exception_id(raw_id)
    who = principal()
    body = _approval_body(required_by=approved and not (who is not None and who.named))
    check_team(get_exception(engine, exc_id)["team"], f"exception {exc_id}")  # 404, 403 before anything changes
    row = set_approval(engine, exc_id, approved, by=approver(body.get("by")), note=body.get("note"))
    log.info("exception %s %s", exc_id, "approved" if approved else "approval withdrawn",
             extra={"event": "approval", "exception": exc_id, "approved": approved, "by": body.get("by")})
    return jsonify({"ok": True, "exception": row})


@bp.post("/api/exceptions/<exc_id>/approve")
def approve(exc_id: str):
    return _approval(exc_id, True)


@bp.delete("/api/exceptions/<exc_id>/approve")
@bp.post("/api/exceptions/<exc_id>/unapprove")
def unapprove(exc_id: str):
    return _approval(exc_id, False)


def _json_object(allowed: tuple[str, ...], example: str, optional: bool = False) -> dict[str, Any]:
    """A strict JSON object body: unknown fields are errors, not ignored."""
    raw = request.get_data(cache=True)
    if not raw.strip() and optional:
        return {}
    if not request.is_json:
        raise BadRequest(f"expected Content-Type: application/json, got {request.mimetype or 'none'!r}", status=415)
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest(f"expected a JSON object like {example}")
    unknown = [f"unknown field {k!r} (expected {', '.join(allowed)})" for k in body if k not in allowed]
    if unknown:
        raise BadRequest("; ".join(unknown), unknown)
    return body


def _text(body: dict, key: str, limit: int) -> str | None:
    v = body.get(key)
    if v is None:
        return None
    if not isinstance(v, str):
        raise BadRequest(f"{key}: expected text, got {type(v).__name__}")
    if len(v) > limit:
        raise BadRequest(f"{key}: at most {limit} characters")
    return v.strip() or None


@bp.post("/api/exceptions/approve")
def approve_selected():
    """Bulk approval: the day page's "approve selected"."""
    body = _json_object(("ids", "note", "by"), '{"ids": [1, 2], "note": "...", "by": "..."}')
    ids = body.get("ids")
    if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) and 0 < i < 10**18
                                            for i in ids):
        raise BadRequest("ids: expected a list of exception ids (positive whole numbers)")
    by = approver(_text(body, "by", MAX_BY))
    if not by:
        raise BadRequest("by: who approves is required (a name)")
    try:
        for i in dict.fromkeys(ids):
            check_team(get_exception(_engine(), i)["team"], f"exception {i}")
        rows = approve_many(_engine(), list(dict.fromkeys(ids)), by, _text(body, "note", MAX_NOTE))
    except NotFound as exc:
        return error_response(404, str(exc))
    log.info("%d exceptions approved", len(rows), extra={"event": "approval", "exceptions": ids, "by": by})
    return jsonify({"ok": True, "exceptions": rows})


# -- period approvals and the audit history ----------------------------------------

PERIOD_FIELDS = ("agent", "team", "start", "end", "mode", "reason", "by")


def _instant(body: dict, key: str) -> int:
    v = body.get(key)
    if not isinstance(v, str):
        raise BadRequest(f"{key}: required, an ISO-8601 instant such as 2026-11-25T15:00:00Z")
    try:
        return parse_instant_ms(v)
    except ValueError as exc:
        raise BadRequest(f"{key}: {exc}") from None


@bp.post("/api/periods")
def create_period_view():
    body = _json_object(PERIOD_FIELDS, '{"team": "tier1", "start": "...Z", "end": "...Z", "reason": "Flex outage"}')
    if body.get("agent") and body.get("team"):
        raise BadRequest("give either agent or team (or neither, for everyone), not both")
    agent, team = _text(body, "agent", MAX_BY), _text(body, "team", MAX_BY)
    scope, target = ("agent", agent) if agent else ("team", team) if team else ("all", None)
    if visible_teams() is not None:
        if scope == "all":
            raise Refused("refused: a period approval for everyone touches every team; a token scoped to "
                          f"{', '.join(sorted(visible_teams()))} may approve a period for its team or agents")
        if scope == "team":
            check_team(team, f"team {team!r}")
        else:
            from ..queries import _resolve_agent

            check_team(_engine().runner.agent_info(_resolve_agent(_engine(), agent))[1], f"agent {agent!r}")
    start, end = _instant(body, "start"), _instant(body, "end")
    mode = body.get("mode")
    if mode is not None and not isinstance(mode, str):
        raise BadRequest("mode: expected neutral or in")
    period = create_period(_engine(), scope, target, start, end, mode, _text(body, "reason", MAX_NOTE) or "",
                           approver(_text(body, "by", MAX_BY)))
    log.info("period approval %s created", period["id"], extra={"event": "period_approval", "period": period})
    return jsonify({"ok": True, "period": period}), 201


def _period_id(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise BadRequest(f"no period approval with id {raw!r}", status=404)
    return int(raw)


@bp.get("/api/periods/<pid>")
def one_period(pid: str):
    try:
        period = get_period(_engine(), _period_id(pid))
    except NotFound as exc:
        return error_response(404, str(exc))
    _check_period(period)
    return jsonify({"ok": True, "period": period})


def _check_period(period: dict) -> None:
    teams = visible_teams()
    if teams is None:
        return
    if period["scope"] == "all":
        if request.method == "GET":
            return  # everyone's period covers the caller's teams too: visible, not withdrawable
        raise Refused("refused: a period approval for everyone can be withdrawn only by an unscoped token")
    team = period["target"] if period["scope"] == "team" else _engine().runner.agent_info(period["target"])[1]
    check_team(team, f"period approval {period['id']}")


@bp.delete("/api/periods/<pid>")
@bp.post("/api/periods/<pid>/withdraw")
def withdraw_period_view(pid: str):
    body = _json_object(("by", "note"), '{"by": "...", "note": "..."}', optional=True)
    try:
        _check_period(get_period(_engine(), _period_id(pid)))
        period = withdraw_period(_engine(), _period_id(pid), approver(_text(body, "by", MAX_BY)),
                                 _text(body, "note", MAX_NOTE))
    except NotFound as exc:
        return error_response(404, str(exc))
    log.info("period approval %s withdrawn", pid, extra={"event": "period_approval", "period": period})
    return jsonify({"ok": True, "period": period})


def _day_bounds(f: Filters) -> tuple[int | None, int | None]:
    """UTC bounds that cover the local days asked for in every zone (a day is at most 14 h off UTC)."""
    first = f.date or f.start
    last = f.date or f.end
    lo = local_midnight_ms(first, zone("UTC")) - 14 * 3_600_000 if first else None
    hi = local_midnight_ms(last + timedelta(days=1), zone("UTC")) + 14 * 3_600_000 if last else None
    return lo, hi


@bp.get("/api/periods")
def list_periods_view():
    engine = _engine()
    args = _args()
    _check_unknown(args, ("date", "from", "to", "agent", "team"))
    f = _filters(args, ("date", "from", "to", "agent", "team"))
    lo, hi = _day_bounds(f)
    worker = team = None
    if f.agent:
        from ..queries import _resolve_agent

        worker = _resolve_agent(engine, f.agent)
        team = engine.runner.agent_info(worker)[1]
    elif f.team:
        team = f.team
    rows = list_periods(engine, lo, hi, worker_sid=worker, team=team, teams=visible_teams())
    return jsonify({"ok": True, "periods": rows, "total": len(rows)})


@bp.get("/api/audit")
def list_audit():
    engine = _engine()
    args = _args()
    _check_unknown(args, ("date", "from", "to", "agent", "exception"))
    as_csv = _wants_csv(args)
    limit, offset = _paging(args)
    f = _filters({k: v for k, v in args.items() if k != "exception"}, ("date", "from", "to", "agent"))
    kw: dict[str, Any] = {"teams": visible_teams()}
    if args.get("exception"):
        kw["exception_id"] = _exception_id(args["exception"])
    if f.agent:
        from ..queries import _resolve_agent

        kw["worker_sid"] = _resolve_agent(engine, f.agent)
    first = f.date or f.start
    last = f.date or f.end
    kw["first"] = first.isoformat() if first else None
    kw["last"] = last.isoformat() if last else None
    if as_csv:
        return _csv("audit" + _suffix(f), iter_audit(engine, **kw), AUDIT_COLUMNS)
    rows = audit(engine, **kw)
    return _page("audit", rows[offset:offset + limit], len(rows), limit, offset)


# -- the live board's data -------------------------------------------------------


def agents_now(engine) -> tuple[list[dict], str]:
    """Every roster agent and every worker seen in the feed, as the board shows them now."""
    now = engine.clock.now_ms()
    sched = engine.schedules.current
    current = engine.tracker.all_current()
    sids: dict[str, None] = {}
    if sched is not None:
        for a in sched.agents.values():
            sids[a.worker_sid] = None
    for sid in current:
        sids.setdefault(sid, None)
    info: dict[str, tuple] = {}
    for sid in sids:
        key, team, tz = engine.runner.agent_info(sid)
        info[sid] = (key, team, tz, local_date(now, tz).isoformat())
    today = adherence_days(engine, [(sid, i[3]) for sid, i in info.items()])
    opened = open_exceptions(engine)
    rows = []
    for sid in sids:
        key, team, tz, day = info[sid]
        agent = sched.agent(sid) if sched is not None else None
        cur = current.get(sid)
        seg = sched.at(key, now) if agent is not None else None
        open_rows = sorted(opened.get(sid, []), key=lambda e: e["start"])
        fig = today.get((sid, day))
        rows.append({
            "agent": key,
            "name": (agent.name if agent else None) or key,
            "worker_sid": sid,
            "team": team,
            "timezone": str(tz.key),
            "in_roster": agent is not None,
            "seen": cur is not None,
            "activity": cur.snapshot.activity if cur else None,
            "task_state": cur.snapshot.task if cur else None,
            "channels": _channels(cur.channels) if cur else [],
            "since": iso(cur.since_ms) if cur else None,
            "seconds_in_state": max(0, (now - cur.since_ms) // 1000) if cur else None,
            "last_record_at": iso(cur.snapshot.at) if cur else None,
            "scheduled_activity": seg.activity if seg else None,
            "scheduled_until": iso(seg.end) if seg else None,
            # a schedule file of this agent is in error: what is scheduled may be stale or missing
            "schedule_problem": engine.schedules.agent_problem(key if agent is not None else sid)
            if hasattr(engine.schedules, "agent_problem") else None,
            "in_adherence": not any(not e["approved"] for e in open_rows),
            "open_exceptions": [
                {k: e[k] for k in ("id", "rule", "severity", "start", "duration_seconds", "approved",
                                   "scheduled_activity", "actual_activity", "task_state")}
                for e in open_rows
            ],
            "today": None if fig is None else {
                k: fig[k] for k in ("date", "scheduled_seconds", "in_adherence_seconds", "out_of_adherence_seconds",
                                    "approved_seconds", "adherence_percent", "conformance_percent", "exceptions",
                                    "neutral_seconds")
            },
        })
    rows.sort(key=lambda r: (r["team"] is None, r["team"] or "", str(r["name"]).lower(), r["worker_sid"]))
    return rows, local_date(now, zone(engine.config.timezone)).isoformat()


_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")


@bp.get("/api/agents")
def list_agents():
    """The live board's data: every agent's row from the shared snapshot (web/agentsnap.py), pre-encoded; a
    weak ETag (the snapshot's cursor with the filters, page and scope) answers an unchanged board with 304."""
    from ..silence import feed_status
    from .agentsnap import etag, local_today, snapshot

    engine = _engine()
    args = _args()
    _check_unknown(args, AGENT_FILTERS)
    _wants_csv(args, csv_ok=False)
    limit, offset = _paging(args, AGENTS_DEFAULT_LIMIT, AGENTS_MAX_LIMIT)
    scope = visible_teams()
    if scope is not None and args.get("team"):
        check_team(args["team"], f"team {args['team']!r}")
    ooa = (args.get("out_of_adherence") or "").lower()
    if ooa and ooa not in _TRUE + _FALSE:
        raise BadRequest(f"out_of_adherence: expected true or false, got {args['out_of_adherence']!r}")
    want_out = None if not ooa else ooa in _TRUE
    snap = snapshot(current_app)
    now = engine.clock.now_ms()
    today = local_today(engine, now)
    feed = feed_status(engine)
    selection = (None if scope is None else tuple(sorted(scope)), args.get("team") or None,
                 args.get("agent") or None, want_out)
    with snap.lock:  # the page's layout is updated in place by the next change: read it under the lock
        snap.refresh(engine, now)
        rows, teams, known = snap.select(*selection)
        if not known:
            raise BadRequest(f"unknown agent {args['agent']!r} (not in the roster and never seen in the feed)")
        tag = etag(snap.cursor, (selection, args.get("team"), args.get("agent"), limit, offset, today,
                                 feed["silent"], feed["last_record_at"]))
        if request.if_none_match.contains_weak(tag):
            resp = Response(status=304)
            resp.set_etag(tag, weak=True)
            return resp
        count = max(0, min(limit, len(rows) - offset))
        head = current_app.json.dumps({
            "ok": True, "now": iso(now), "date": today, "teams": teams, "feed": feed, "cursor": snap.cursor,
            "total": len(rows), "limit": limit, "offset": offset,
            "next": _next_link(offset, limit, count, len(rows)),
        })
        body = snap.page(selection, rows, offset, limit).body(now, head[:-1].encode() + b',"agents":[', b"]}")
    resp = Response(body, mimetype="application/json")
    resp.set_etag(tag, weak=True)
    return resp


INTERVAL_FILTERS = ("date", "from", "to", "team", "agent")


@bp.get("/api/intervals")
def list_intervals():
    """Interval adherence: per agent (or ``group=team``) and 15/30/60-minute interval of local time."""
    from ..intervals import INTERVAL_COLUMNS, TEAM_INTERVAL_COLUMNS, agent_intervals, parse_size, public, team_intervals

    engine = _engine()
    args = _args()
    _check_unknown(args, (*INTERVAL_FILTERS, "size", "group"))
    group = args.get("group") or "agent"
    if group not in ("agent", "team"):
        raise BadRequest(f"group: expected agent or team, got {group!r}")
    try:
        size = parse_size(args.get("size"))
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    as_csv = _wants_csv(args)
    limit, offset = _paging(args, 1000, 100_000)
    f = _filters({k: v for k, v in args.items() if k != "size"}, INTERVAL_FILTERS)
    if not (f.date or f.start or f.end or f.agent):
        raise BadRequest("give date (or from/to, or agent): intervals are computed per day")
    if f.start and f.end and (f.end - f.start).days > 31:
        raise BadRequest("from/to: at most 31 days at once")
    rows = agent_intervals(engine, f, size)
    if group == "team":
        rows, columns = team_intervals(rows), TEAM_INTERVAL_COLUMNS
    else:
        rows, columns = public(rows), INTERVAL_COLUMNS
    name = f"intervals-{group}{_suffix(f)}-{size // 60_000}m"
    if as_csv:
        return _csv(name, iter(rows), columns)
    return _page("intervals", rows[offset:offset + limit], len(rows), limit, offset, group=group,
                 size_minutes=size // 60_000)


@bp.get("/api/agents/<agent>/timeline")
def agent_timeline(agent: str):
    """An agent's day on one time axis (the same data as the page /agents/<agent> and ``adherence timeline``)."""
    from ..queries import _resolve_agent
    from ..timeline import agent_day

    engine = _engine()
    args = _args()
    extra = sorted(set(args) - {"date"})
    if extra:
        raise BadRequest(f"unknown parameter {extra[0]!r} (expected date)")
    day = _day_arg(args.get("date"))
    try:
        sid = _resolve_agent(engine, agent)
    except NotFound as exc:
        return error_response(404, str(exc))
    check_team(engine.runner.agent_info(sid)[1], f"agent {agent!r}")
    return jsonify({"ok": True, **agent_day(engine, sid, day)})


def _day_arg(raw: str | None):
    from ..timeutil import parse_date

    if not raw:
        return local_date(_engine().clock.now_ms(), zone(_engine().config.timezone))
    try:
        d = parse_date(raw)
    except ValueError as exc:
        raise BadRequest(f"date: {exc}") from None
    if not 1970 <= d.year <= 9998:
        raise BadRequest("date: expected a day between 1970-01-01 and 9998-12-31")
    return d


TABLE_PARAMS = ("team", "q", "out_of_adherence", "sort", "limit", "offset")


@bp.get("/api/board/table")
def board_table():
    """The board's table mode: one compact row per agent, filtered, sorted (worst first) and paged here, with
    an ETag: an unchanged page is 304 (see web/boardtable.py)."""
    from .boardtable import SORTS, TableSnapshot, etag, public_row, select

    engine = _engine()
    args = _args()
    extra = sorted(set(args) - set(TABLE_PARAMS))
    if extra:
        raise BadRequest(f"unknown parameter {extra[0]!r} (expected one of: {', '.join(TABLE_PARAMS)})")
    sort = args.get("sort") or "out"
    if sort not in SORTS:
        raise BadRequest(f"sort: expected one of {', '.join(SORTS)}, got {sort!r}")
    ooa = (args.get("out_of_adherence") or "").lower()
    if ooa and ooa not in _TRUE + _FALSE:
        raise BadRequest(f"out_of_adherence: expected true or false, got {args['out_of_adherence']!r}")
    out_only = None if not ooa else ooa in _TRUE
    limit, offset = _paging(args, 100, 1000)
    teams = visible_teams()
    if args.get("team") and teams is not None:
        check_team(args["team"], f"team {args['team']!r}")
    q = (args.get("q") or "").strip()[:200] or None
    snap = current_app.extensions.setdefault("adherence.table", TableSnapshot())
    cursor, rows = snap.get(engine)
    tag = etag(cursor, (sort, args.get("team"), q, out_only, limit, offset,
                        None if teams is None else tuple(sorted(teams))))
    if request.headers.get("If-None-Match") == tag:
        resp = Response(status=304)
        resp.headers["ETag"] = tag
        return resp
    chosen = select(rows, teams=teams, team=args.get("team"), q=q, out_only=out_only, sort=sort)
    all_teams = sorted({r["team"] for r in rows if r["team"] and (teams is None or r["team"] in teams)})
    from ..silence import feed_status

    resp = _page("agents", [public_row(r) for r in chosen[offset:offset + limit]], len(chosen), limit, offset,
                 now=iso(engine.clock.now_ms()), cursor=cursor, sort=sort, teams=all_teams, feed=feed_status(engine),
                 out_of_adherence_count=sum(1 for r in chosen if not r["in_adherence"]))
    resp.headers["ETag"] = tag
    return resp


@bp.get("/openapi.json")
def openapi():
    from .openapi import spec

    return jsonify(spec())


__all__ = ["bp", "authorized", "session_value", "session_valid", "SESSION_COOKIE", "agents_now"]
