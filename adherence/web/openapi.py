"""The OpenAPI 3.0 description served at ``/openapi.json``.

Kept beside the views it describes and checked against them by
``tests/test_openapi.py`` (schemathesis): every parameter, status code,
content type and response shape here is what the app really does.
"""

from __future__ import annotations

from copy import deepcopy

from ..rules import SEVERITIES
from ..results import ADHERENCE_COLUMNS, EXCEPTION_COLUMNS
from .api import AGENTS_DEFAULT_LIMIT, AGENTS_MAX_LIMIT, DEFAULT_LIMIT, MAX_BY, MAX_LIMIT, MAX_NOTE, TEAM_COLUMNS


def _str(nullable: bool = False, **kw) -> dict:
    s = {"type": "string", **kw}
    if nullable:
        s["nullable"] = True
    return s


def _num(nullable: bool = False, **kw) -> dict:
    s = {"type": "number", **kw}
    if nullable:
        s["nullable"] = True
    return s


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _param(name: str, schema: dict, description: str, where: str = "query", required: bool = False) -> dict:
    p = {"name": name, "in": where, "required": required, "description": description, "schema": schema}
    if where == "query":
        p["allowEmptyValue"] = True  # an empty value means the parameter is not given (as HTML forms send it)
    return p


DATE = {"type": "string", "format": "date", "example": "2026-11-24"}
TIME = {"type": "string", "format": "date-time", "description": "ISO-8601 UTC with Z", "example": "2026-11-24T14:40:00Z"}
NTIME = {**TIME, "nullable": True}

SCHEMAS: dict = {
    "Error": {
        "type": "object",
        "description": "The one error shape of every endpoint.",
        "required": ["ok", "error", "errors", "status"],
        "properties": {
            "ok": {"type": "boolean", "enum": [False]},
            "error": {"type": "string", "description": "What is wrong, and what was expected."},
            "errors": {"type": "array", "items": {"type": "string"}, "description": "Every problem found."},
            "status": {"type": "integer", "description": "The HTTP status code."},
        },
    },
    "Exception": {
        "type": "object",
        "description": "One period during which a rule held for at least its `for`.",
        "required": [*EXCEPTION_COLUMNS, "day", "approved_by", "approved_at"],
        "properties": {
            "id": {"type": "integer"},
            "agent": _str(description="Roster key, or the worker SID for an agent not in the roster."),
            "worker_sid": _str(),
            "team": _str(True),
            "rule": _str(),
            "severity": {"type": "string", "enum": list(SEVERITIES)},
            "scheduled_activity": _str(True, description="Null when unscheduled."),
            "actual_activity": _str(True),
            "task_state": _str(True, enum=["active", "wrapping", "reserved", "none", None]),
            "start": TIME,
            "end": {**NTIME, "description": "Null while the exception is open."},
            "duration_seconds": _num(minimum=0, description="Up to now while open."),
            "status": {"type": "string", "enum": ["open", "closed"]},
            "approved": {"type": "boolean"},
            "note": _str(True),
            "day": {**DATE, "description": "The agent-local day the exception belongs to."},
            "approved_by": _str(True),
            "approved_at": NTIME,
            "impact": {"type": "string", "enum": ["out", "neutral"],
                       "description": "The rule's: neutral time counts neither in nor out of adherence."},
            "excused_by": {"type": "array", "items": {"type": "integer"},
                           "description": "Period approvals in force that overlap it."},
            "history": {"type": "array", "items": _ref("AuditEntry"),
                        "description": "Its approvals and withdrawals, oldest first (one exception only)."},
        },
    },
    "Adherence": {
        "type": "object",
        "description": "One agent's figures for one day (agent-local date).",
        "required": [*ADHERENCE_COLUMNS, "logged_in_seconds", "as_of"],
        "properties": {
            "date": DATE,
            "agent": _str(),
            "worker_sid": _str(),
            "team": _str(True),
            "scheduled_seconds": _num(minimum=0),
            "in_adherence_seconds": _num(minimum=0),
            "out_of_adherence_seconds": _num(minimum=0),
            "approved_seconds": _num(minimum=0),
            "adherence_percent": _num(True, description="Null when nothing was scheduled."),
            "conformance_percent": _num(True, description="Logged-in seconds / scheduled seconds x 100; may exceed 100."),
            "exceptions": {"type": "integer", "minimum": 0},
            "stale": {"type": "boolean", "description": "Computed with other schedules or rules than the files "
                      "now in force ('adherence recompute --stale' brings it up to date)."},
            "neutral_seconds": _num(minimum=0, description="Scheduled time that counts neither in nor out; "
                                    "adherence = in / (scheduled - neutral)."),
            "logged_in_seconds": _num(minimum=0),
            "as_of": NTIME,
        },
    },
    "TeamAdherence": {
        "type": "object",
        "description": "A team's sums for one day and the resulting percentages.",
        "required": TEAM_COLUMNS,
        "properties": {
            "date": DATE,
            "team": _str(True),
            "agents": {"type": "integer", "minimum": 0},
            "scheduled_seconds": _num(minimum=0),
            "in_adherence_seconds": _num(minimum=0),
            "out_of_adherence_seconds": _num(minimum=0),
            "approved_seconds": _num(minimum=0),
            "adherence_percent": _num(True),
            "conformance_percent": _num(True),
            "exceptions": {"type": "integer", "minimum": 0},
            "neutral_seconds": _num(minimum=0),
        },
    },
    "OpenException": {
        "type": "object",
        "required": ["id", "rule", "severity", "start", "duration_seconds", "approved"],
        "properties": {
            "id": {"type": "integer"},
            "rule": _str(),
            "severity": {"type": "string", "enum": list(SEVERITIES)},
            "start": TIME,
            "duration_seconds": _num(minimum=0, description="How long it has run so far."),
            "approved": {"type": "boolean"},
            "scheduled_activity": _str(True),
            "actual_activity": _str(True),
            "task_state": _str(True),
        },
    },
    "Agent": {
        "type": "object",
        "description": "An agent as the live board shows it now.",
        "required": ["agent", "name", "worker_sid", "team", "activity", "task_state", "channels", "since",
                     "seconds_in_state", "scheduled_activity", "in_adherence", "open_exceptions", "today"],
        "properties": {
            "agent": _str(description="Roster key, or the worker SID for an agent not in the roster."),
            "name": _str(),
            "worker_sid": _str(),
            "team": _str(True),
            "timezone": _str(),
            "in_roster": {"type": "boolean"},
            "seen": {"type": "boolean", "description": "Whether the feed has mentioned this agent."},
            "activity": _str(True, description="Current TaskRouter activity; null if never seen."),
            "task_state": _str(True, enum=["active", "wrapping", "reserved", "none", None]),
            "channels": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": _str(True),
                        "available": {"type": "boolean", "nullable": True},
                        "available_capacity": _num(True),
                        "capacity": _num(True),
                        "task_state": _str(True),
                        "reservations": {"type": "integer"},
                    },
                },
            },
            "since": {**NTIME, "description": "When the current activity and task state began."},
            "seconds_in_state": {"type": "integer", "nullable": True, "minimum": 0},
            "last_record_at": NTIME,
            "scheduled_activity": _str(True, description="What the schedule says now; null when unscheduled."),
            "scheduled_until": NTIME,
            "schedule_problem": {
                "type": "object", "nullable": True,
                "description": "Set when a schedule file of this agent is in error: what is scheduled may be "
                               "stale (its last good version) or missing.",
                "properties": {"since": NTIME, "files": {"type": "array", "items": {"type": "string"}},
                               "in_force": {"type": "array", "items": {"type": "string"}}},
            },
            "in_adherence": {"type": "boolean", "description": "False while a non-approved exception is open."},
            "open_exceptions": {"type": "array", "items": _ref("OpenException"),
                                "description": "Longest running first."},
            "today": {
                "type": "object",
                "nullable": True,
                "description": "The agent's figures for its local today, once evaluated.",
                "properties": {},  # filled in by spec()
            },
        },
    },
    "ApprovalBody": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "note": {"type": "string", "maxLength": MAX_NOTE, "nullable": True, "example": "doctor's appointment"},
            "by": {"type": "string", "maxLength": MAX_BY, "nullable": True, "example": "sam"},
        },
    },
}


def _page(key: str, item: dict, extra: dict | None = None) -> dict:
    props = {
        "ok": {"type": "boolean", "enum": [True]},
        "total": {"type": "integer", "minimum": 0, "description": "Rows matching the filters."},
        "limit": {"type": "integer"},
        "offset": {"type": "integer"},
        "next": {"type": "string", "nullable": True, "description": "URL of the next page; null on the last."},
        key: {"type": "array", "items": item},
        **(extra or {}),
    }
    return {"type": "object", "required": ["ok", "total", "limit", "offset", "next", key], "properties": props}


def _errors(*codes: int) -> dict:
    text = {
        400: "Invalid parameter or body; the message says which and what was expected.",
        401: "Authentication required (when auth.api_token is set).",
        404: "No such exception.",
        403: "A change made with the board's session cookie that is not a JSON request.",
        415: "The body is not JSON.",
    }
    out = {}
    for c in codes:
        r = {"description": text[c], "content": {"application/json": {"schema": _ref("Error")}}}
        if c == 401:
            r["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}, "description": 'Bearer realm="adherence"'}}
        out[str(c)] = r
    return out


LIMIT = _param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
               "Rows per page (JSON only).")
OFFSET = _param("offset", {"type": "integer", "minimum": 0, "default": 0}, "Rows to skip (JSON only).")
FORMAT = _param("format", {"type": "string", "enum": ["json", "csv"]},
                "Response format; `Accept: text/csv` also selects CSV. CSV streams every matching row.")
DATE_P = _param("date", DATE, "One day (agent-local date). Not with from/to.")
FROM = _param("from", DATE, "First day, inclusive.")
TO = _param("to", DATE, "Last day, inclusive.")
TEAM = _param("team", {"type": "string"}, "Team name.")
AGENT = _param("agent", {"type": "string"}, "Roster key or worker SID; unknown agents are a 400.")
EXC_ID = _param("exc_id", {"type": "integer", "minimum": 1}, "Exception id.", "path", True)


def _csv_content(columns: list[str]) -> dict:
    return {"schema": {"type": "string", "description": "CSV with the header: " + ",".join(columns)},
            "example": ",".join(columns) + "\r\n"}


def spec() -> dict:
    from .notify_openapi import paths as notify_paths
    from .review_openapi import SCHEMAS as REVIEW_SCHEMAS, paths as review_paths

    schemas = deepcopy(SCHEMAS)
    schemas.update(deepcopy(REVIEW_SCHEMAS))
    schemas["Agent"]["properties"]["today"]["properties"] = {
        k: schemas["Adherence"]["properties"][k]
        for k in ("date", "scheduled_seconds", "in_adherence_seconds", "out_of_adherence_seconds",
                  "approved_seconds", "adherence_percent", "conformance_percent", "exceptions", "neutral_seconds")
    }
    one = {
        "200": {"description": "The exception.",
                "content": {"application/json": {"schema": {
                    "type": "object", "required": ["ok", "exception"],
                    "properties": {"ok": {"type": "boolean", "enum": [True]}, "exception": _ref("Exception")}}}}},
    }
    approve_body = deepcopy(SCHEMAS["ApprovalBody"])
    approve_body["required"] = ["by"]
    approve_body["properties"]["by"] = {"type": "string", "maxLength": MAX_BY, "pattern": r"\S",
                                        "description": "Who approves (required, not blank).", "example": "sam"}
    approval_body = {"required": False, "content": {"application/json": {"schema": _ref("ApprovalBody")}}}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Adherence API",
            "version": "1",
            "description": (
                "Real-time schedule adherence for Twilio Flex: the live board's data, exceptions and adherence "
                "(JSON or CSV), and approvals. Times are ISO-8601 UTC with Z. Every error has the shape "
                "`{\"ok\": false, \"error\", \"errors\", \"status\"}`. When `auth.api_token` is set every `/api` "
                "request needs `Authorization: Bearer <token>` (or the board's session cookie)."
            ),
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "The configured auth.api_token."},
                "boardSession": {"type": "apiKey", "in": "cookie", "name": "adherence_session",
                                 "description": "Set by the board's login form (/login)."},
            },
        },
        "security": [{"bearer": []}, {"boardSession": []}],
        "paths": {
            "/api/agents": {"get": {
                "summary": "Live board data: every agent now",
                "description": "Roster agents and every worker seen in the feed: current activity, task state, "
                               "channels, time in state, scheduled activity now, in adherence or not, open "
                               "exceptions (longest first) and today's figures.",
                "parameters": [
                    TEAM, AGENT,
                    _param("out_of_adherence", {"type": "boolean"}, "true: only agents out of adherence now."),
                    _param("limit", {"type": "integer", "minimum": 1, "maximum": AGENTS_MAX_LIMIT,
                                     "default": AGENTS_DEFAULT_LIMIT}, "Agents per page."),
                    OFFSET,
                    _param("format", {"type": "string", "enum": ["json"]}, "Only JSON."),
                    {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"},
                     "description": "The weak ETag of an earlier answer: 304 while no row of this selection "
                                    "changed."},
                ],
                "responses": {
                    "200": {"description": "Agents sorted by team, then name; a weak ETag (the snapshot's cursor "
                                           "with the filters, page and the caller's scope).",
                            "content": {"application/json": {"schema": _page("agents", _ref("Agent"), {
                                "cursor": {"type": "integer", "description": "Moves when some row changed "
                                           "(not with the clock alone)."},
                                "now": TIME,
                                "date": {**DATE, "description": "Today in the configured time zone."},
                                "teams": {"type": "array", "items": {"type": "string"}},
                                "feed": {"type": "object", "description": "Feed silence: `silent`, "
                                         "`threshold_seconds`, `last_record_at`, `silent_seconds`, `scheduled_agents`, "
                                         "and `offer` (the silent period, to post to /api/periods) while silent."}})}}},
                    "304": {"description": "Not modified: If-None-Match named the current ETag (no body)."},
                    **_errors(400, 401),
                },
            }},
            "/api/exceptions": {"get": {
                "summary": "Exceptions, newest first",
                "parameters": [
                    DATE_P, FROM, TO, AGENT, TEAM,
                    _param("rule", {"type": "string"}, "Rule name."),
                    _param("severity", {"type": "string", "enum": list(SEVERITIES)}, "Severity."),
                    _param("status", {"type": "string", "enum": ["open", "closed"]}, "Open or closed."),
                    _param("approved", {"type": "boolean"}, "Approved or not."),
                    LIMIT, OFFSET, FORMAT,
                ],
                "responses": {
                    "200": {"description": "A page of exceptions (JSON) or all of them (CSV).",
                            "content": {"application/json": {"schema": _page("exceptions", _ref("Exception"),
                                                                             {"now": TIME})},
                                        "text/csv": _csv_content(EXCEPTION_COLUMNS)}},
                    **_errors(400, 401),
                },
            }},
            "/api/exceptions/{exc_id}": {"get": {
                "summary": "One exception",
                "parameters": [EXC_ID],
                "responses": {**one, **_errors(401, 404)},
            }},
            "/api/exceptions/{exc_id}/approve": {
                "post": {
                    "summary": "Approve (excuse) an exception",
                    "description": "The exception stops counting against adherence; the agent's figures are "
                                   "recomputed at once. `by` is required.",
                    "parameters": [EXC_ID],
                    "requestBody": {"required": True, "content": {"application/json": {"schema": approve_body}}},
                    "responses": {**one, **_errors(400, 401, 403, 404, 415)},
                },
                "delete": {
                    "summary": "Withdraw an approval",
                    "description": "Optional body `{\"note\": \"...\", \"by\": \"...\"}`; the note replaces the old one.",
                    "parameters": [EXC_ID],
                    "requestBody": approval_body,
                    "responses": {**one, **_errors(400, 401, 403, 404, 415)},
                },
            },
            "/api/exceptions/{exc_id}/unapprove": {"post": {
                "summary": "Withdraw an approval (same as DELETE .../approve)",
                "parameters": [EXC_ID],
                "requestBody": approval_body,
                "responses": {**one, **_errors(400, 401, 403, 404, 415)},
            }},
            "/api/adherence": {"get": {
                "summary": "Adherence per agent per day, or per team per day",
                "parameters": [
                    DATE_P, FROM, TO, TEAM, AGENT,
                    _param("group", {"type": "string", "enum": ["agent", "team"], "default": "agent"},
                           "agent: one row per agent and day; team: sums per team and day."),
                    LIMIT, OFFSET, FORMAT,
                ],
                "responses": {
                    "200": {"description": "A page of rows (JSON) or all of them (CSV; team columns with group=team).",
                            "content": {"application/json": {"schema": _page(
                                "adherence", {"anyOf": [_ref("Adherence"), _ref("TeamAdherence")]},
                                {"group": {"type": "string", "enum": ["agent", "team"]}})},
                                "text/csv": _csv_content(ADHERENCE_COLUMNS)}},
                    **_errors(400, 401),
                },
            }},
            **notify_paths(),
            **review_paths(_errors),
            "/openapi.json": {"get": {
                "summary": "This description",
                "security": [],
                "responses": {"200": {"description": "OpenAPI 3.0 document.",
                                      "content": {"application/json": {"schema": {"type": "object"}}}}},
            }},
        },
    }
