"""OpenAPI for the planner's review paths: bulk approval, period approvals and the audit history.

Kept apart from ``openapi.py`` so each feature's description sits in one place; ``openapi.spec`` merges it
and ``tests/test_openapi.py`` checks it against the app like the rest.
"""

from __future__ import annotations

from ..approvals import AUDIT_COLUMNS, PERIOD_MODES
from .api import DEFAULT_LIMIT, MAX_BY, MAX_LIMIT, MAX_NOTE

TIME = {"type": "string", "format": "date-time", "description": "ISO-8601 UTC with Z", "example": "2026-11-24T14:40:00Z"}
NTIME = {**TIME, "nullable": True}
DATE = {"type": "string", "format": "date", "example": "2026-11-24"}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _q(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema,
            "allowEmptyValue": True}


SCHEMAS = {
    "Period": {
        "type": "object",
        "description": "A period approval: the exception time inside it is excused (neutral or in adherence).",
        "required": ["id", "scope", "target", "start", "end", "mode", "reason", "by", "created_at", "withdrawn"],
        "properties": {
            "id": {"type": "integer"},
            "scope": {"type": "string", "enum": ["agent", "team", "all"]},
            "target": {"type": "string", "nullable": True, "description": "Worker SID or team; null for all."},
            "start": TIME,
            "end": TIME,
            "mode": {"type": "string", "enum": list(PERIOD_MODES)},
            "reason": {"type": "string"},
            "by": {"type": "string", "nullable": True},
            "created_at": TIME,
            "withdrawn": {"type": "boolean"},
            "withdrawn_by": {"type": "string", "nullable": True},
            "withdrawn_at": NTIME,
        },
    },
    "AuditEntry": {
        "type": "object",
        "description": "One approval, withdrawal, period approval, acknowledgement, snooze or notification "
                       "retry, as it happened (never rewritten).",
        "required": AUDIT_COLUMNS,
        "properties": {
            "id": {"type": "integer"},
            "at": TIME,
            "by": {"type": "string", "nullable": True},
            "action": {"type": "string", "enum": ["approve", "withdraw", "period_approve", "period_withdraw",
                                                 "ack", "unack", "snooze", "unsnooze", "retry"]},
            "exception_id": {"type": "integer", "nullable": True},
            "period_id": {"type": "integer", "nullable": True},
            "agent": {"type": "string", "nullable": True},
            "worker_sid": {"type": "string", "nullable": True},
            "day": {**DATE, "nullable": True},
            "note": {"type": "string", "nullable": True},
            "detail": {"type": "object", "nullable": True},
        },
    },
}


def paths(errors) -> dict:
    one_period = {"200": {"description": "The period approval.", "content": {"application/json": {"schema": {
        "type": "object", "required": ["ok", "period"],
        "properties": {"ok": {"type": "boolean", "enum": [True]}, "period": _ref("Period")}}}}}}
    pid = {"name": "pid", "in": "path", "required": True, "description": "Period approval id.",
           "schema": {"type": "integer", "minimum": 1}}
    withdraw_body = {"required": False, "content": {"application/json": {"schema": {
        "type": "object", "additionalProperties": False,
        "properties": {"by": {"type": "string", "maxLength": MAX_BY, "nullable": True},
                       "note": {"type": "string", "maxLength": MAX_NOTE, "nullable": True}}}}}}
    day_params = [_q("date", DATE, "One day. Not with from/to."), _q("from", DATE, "First day, inclusive."),
                  _q("to", DATE, "Last day, inclusive.")]
    return {
        "/api/exceptions/approve": {"post": {
            "summary": "Approve several exceptions at once",
            "description": "The day page's \"approve selected\": each is approved and audited, each agent's "
                           "figures refreshed once. Every id must exist (404 before anything changes).",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["ids", "by"], "additionalProperties": False,
                "properties": {
                    "ids": {"type": "array", "minItems": 1, "maxItems": 1000,
                            "items": {"type": "integer", "minimum": 1, "maximum": 10**18 - 1}},
                    "by": {"type": "string", "maxLength": MAX_BY, "pattern": r"\S"},
                    "note": {"type": "string", "maxLength": MAX_NOTE, "nullable": True}}}}}},
            "responses": {
                "200": {"description": "The approved exceptions.", "content": {"application/json": {"schema": {
                    "type": "object", "required": ["ok", "exceptions"],
                    "properties": {"ok": {"type": "boolean", "enum": [True]},
                                   "exceptions": {"type": "array", "items": _ref("Exception")}}}}}},
                **errors(400, 401, 403, 404, 415)},
        }},
        "/api/periods": {
            "get": {
                "summary": "Period approvals overlapping the days asked for (withdrawn ones too)",
                "parameters": [*day_params, _q("agent", {"type": "string"}, "Periods covering this agent."),
                               _q("team", {"type": "string"}, "Periods covering this team.")],
                "responses": {
                    "200": {"description": "Periods, oldest first.", "content": {"application/json": {"schema": {
                        "type": "object", "required": ["ok", "periods", "total"],
                        "properties": {"ok": {"type": "boolean", "enum": [True]},
                                       "total": {"type": "integer"},
                                       "periods": {"type": "array", "items": _ref("Period")}}}}}},
                    **errors(400, 401)},
            },
            "post": {
                "summary": "Approve a period for one agent, a team, or everyone",
                "description": "Every exception's time inside [start, end) is excused: neutral (default, "
                               "`approvals.period_mode`) or in adherence (`mode: in`). The figures refresh at once.",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["start", "end", "reason"], "additionalProperties": False,
                    "properties": {
                        "agent": {"type": "string", "description": "One agent (roster key or worker SID)."},
                        "team": {"type": "string", "description": "One team. Neither agent nor team: everyone."},
                        "start": TIME, "end": TIME,
                        "mode": {"type": "string", "enum": list(PERIOD_MODES)},
                        "reason": {"type": "string", "maxLength": MAX_NOTE, "example": "Flex outage 10:00-10:40"},
                        "by": {"type": "string", "maxLength": MAX_BY, "nullable": True}}}}}},
                "responses": {
                    "201": {"description": "Created.", "content": one_period["200"]["content"]},
                    **errors(400, 401, 403, 415)},
            },
        },
        "/api/periods/{pid}": {
            "get": {"summary": "One period approval", "parameters": [pid],
                    "responses": {**one_period, **errors(401, 404)}},
            "delete": {"summary": "Withdraw a period approval (kept, marked withdrawn); figures are restored",
                       "parameters": [pid], "requestBody": withdraw_body,
                       "responses": {**one_period, **errors(400, 401, 403, 404, 415)}},
        },
        "/api/periods/{pid}/withdraw": {"post": {
            "summary": "Withdraw a period approval (same as DELETE)", "parameters": [pid],
            "requestBody": withdraw_body, "responses": {**one_period, **errors(400, 401, 403, 404, 415)}}},
        "/api/agents/{agent}/timeline": {"get": {
            "summary": "An agent's day on one time axis",
            "description": "Scheduled segments, actual activity, task state, exceptions (rule, severity, "
                           "approved or not, impact, excused_by), period approvals, the day's figures and its "
                           "history; every instant in UTC and in the agent's local time with its offset "
                           "(`utc_offsets` lists each offset in force: two on a DST day, which has 23 or 25 hours).",
            "parameters": [
                {"name": "agent", "in": "path", "required": True, "schema": {"type": "string"},
                 "description": "Roster key or worker SID."},
                _q("date", DATE, "The agent-local day; default today in the configured zone."),
            ],
            "responses": {
                "200": {"description": "The agent's day.", "content": {"application/json": {"schema": {
                    "type": "object",
                    "required": ["ok", "agent", "name", "worker_sid", "team", "timezone", "date", "start", "end",
                                 "hours", "utc_offsets", "ticks", "scheduled", "activity", "task", "exceptions",
                                 "periods", "figures", "history"],
                    "properties": {
                        "ok": {"type": "boolean", "enum": [True]},
                        "agent": {"type": "string"}, "name": {"type": "string"}, "worker_sid": {"type": "string"},
                        "team": {"type": "string", "nullable": True}, "timezone": {"type": "string"},
                        "date": DATE, "start": TIME, "end": TIME,
                        "start_local": {"type": "string"}, "end_local": {"type": "string"},
                        "hours": {"type": "number"}, "as_of": TIME,
                        "utc_offsets": {"type": "array", "items": {"type": "object", "properties": {
                            "from": TIME, "offset": {"type": "string", "example": "-05:00"}}}},
                        "ticks": {"type": "array", "items": {"type": "object"}},
                        "scheduled": {"type": "array", "items": {"type": "object"}},
                        "activity": {"type": "array", "items": {"type": "object"}},
                        "task": {"type": "array", "items": {"type": "object"}},
                        "exceptions": {"type": "array", "items": _ref("Exception")},
                        "periods": {"type": "array", "items": _ref("Period")},
                        "figures": {"allOf": [_ref("Adherence")], "nullable": True},
                        "history": {"type": "array", "items": _ref("AuditEntry")},
                    }}}}},
                **errors(400, 401, 404)},
        }},
        "/api/board/table": {"get": {
            "summary": "The board's table mode: one compact row per agent, sorted, filtered and paged here",
            "description": "Rows carry instants (`since`, `out_since`), not durations, so a row changes only when "
                           "the agent's state does. The response has an ETag; send it as If-None-Match and an "
                           "unchanged page is a 304 with no body.",
            "parameters": [
                _q("team", {"type": "string"}, "One team."),
                _q("q", {"type": "string", "maxLength": 200}, "Name, roster key or worker SID contains this."),
                _q("out_of_adherence", {"type": "boolean"}, "true: only agents out of adherence now."),
                _q("sort", {"type": "string", "enum": ["out", "name", "team", "state", "pct"], "default": "out"},
                   "out: longest out of adherence first (default); pct: lowest today first."),
                _q("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}, "Rows per page."),
                _q("offset", {"type": "integer", "minimum": 0, "default": 0}, "Rows to skip."),
            ],
            "responses": {
                "200": {"description": "A page of rows.", "headers": {"ETag": {"schema": {"type": "string"}}},
                        "content": {"application/json": {"schema": {
                            "type": "object",
                            "required": ["ok", "total", "limit", "offset", "next", "agents", "cursor", "teams",
                                         "out_of_adherence_count"],
                            "properties": {
                                "ok": {"type": "boolean", "enum": [True]}, "total": {"type": "integer"},
                                "limit": {"type": "integer"}, "offset": {"type": "integer"},
                                "next": {"type": "string", "nullable": True}, "now": TIME,
                                "cursor": {"type": "integer", "description": "Moves when any row changes."},
                                "sort": {"type": "string"}, "teams": {"type": "array", "items": {"type": "string"}},
                                "out_of_adherence_count": {"type": "integer"}, "feed": {"type": "object"},
                                "agents": {"type": "array", "items": {"type": "object", "required": [
                                    "agent", "name", "team", "worker_sid", "activity", "task_state", "since",
                                    "scheduled_activity", "in_adherence", "out_since", "today_percent"]}}}}}}},
                "304": {"description": "Not modified (If-None-Match matched the page's ETag)."},
                **errors(400, 401)},
        }},
        "/api/intervals": {"get": {
            "summary": "Interval adherence per agent (or team) per 15/30/60-minute interval of local time",
            "description": "Cut from the same instants as the day's figures: an agent's intervals of one day add "
                           "up exactly to its /api/adherence row (unless that row is stale). Team intervals are "
                           "keyed by their UTC start.",
            "parameters": [
                *day_params, _q("team", {"type": "string"}, "Team name."),
                _q("agent", {"type": "string"}, "Roster key or worker SID; unknown agents are a 400."),
                _q("size", {"type": "string", "enum": ["15m", "30m", "60m", "1h"], "default": "30m"}, "Interval length."),
                _q("group", {"type": "string", "enum": ["agent", "team"], "default": "agent"}, "Per agent or per team."),
                _q("limit", {"type": "integer", "minimum": 1, "maximum": 100000, "default": 1000}, "Rows per page (JSON)."),
                _q("offset", {"type": "integer", "minimum": 0, "default": 0}, "Rows to skip (JSON)."),
                _q("format", {"type": "string", "enum": ["json", "csv"]}, "JSON or CSV (every row)."),
            ],
            "responses": {
                "200": {"description": "Intervals with scheduled seconds, oldest first.", "content": {
                    "application/json": {"schema": {
                        "type": "object", "required": ["ok", "total", "limit", "offset", "next", "intervals"],
                        "properties": {"ok": {"type": "boolean", "enum": [True]}, "total": {"type": "integer"},
                                       "limit": {"type": "integer"}, "offset": {"type": "integer"},
                                       "next": {"type": "string", "nullable": True},
                                       "group": {"type": "string"}, "size_minutes": {"type": "integer"},
                                       "intervals": {"type": "array", "items": {"type": "object", "required": [
                                           "date", "team", "start", "end", "local_start", "utc_offset",
                                           "scheduled_seconds", "in_adherence_seconds", "out_of_adherence_seconds",
                                           "neutral_seconds", "approved_seconds", "adherence_percent"]}}}}},
                    "text/csv": {"schema": {"type": "string"}}}},
                **errors(400, 401)},
        }},
        "/api/audit": {"get": {
            "summary": "The history of approvals, withdrawals and period approvals, oldest first",
            "parameters": [
                *day_params, _q("agent", {"type": "string"}, "One agent's history (and periods covering it)."),
                _q("exception", {"type": "integer", "minimum": 1}, "One exception's history."),
                _q("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
                   "Rows per page (JSON only)."),
                _q("offset", {"type": "integer", "minimum": 0, "default": 0}, "Rows to skip (JSON only)."),
                _q("format", {"type": "string", "enum": ["json", "csv"]}, "JSON or CSV (every row)."),
            ],
            "responses": {
                "200": {"description": "A page of history (JSON) or all of it (CSV).", "content": {
                    "application/json": {"schema": {
                        "type": "object", "required": ["ok", "total", "limit", "offset", "next", "audit"],
                        "properties": {"ok": {"type": "boolean", "enum": [True]}, "total": {"type": "integer"},
                                       "limit": {"type": "integer"}, "offset": {"type": "integer"},
                                       "next": {"type": "string", "nullable": True},
                                       "audit": {"type": "array", "items": _ref("AuditEntry")}}}},
                    "text/csv": {"schema": {"type": "string", "description": "CSV with the header: "
                                            + ",".join(AUDIT_COLUMNS)}}}},
                **errors(400, 401, 404)},
        }},
    }
