"""OpenAPI paths of the notification routes (merged into ``openapi.spec``)."""

from __future__ import annotations

from ..notify.outbox import SNOOZE_MAX_MIN, SNOOZE_STEP_MIN
from .api import MAX_BY, MAX_LIMIT, MAX_NOTE


def paths() -> dict:
    from .openapi import EXC_ID, LIMIT, NTIME, OFFSET, TIME, _param, _ref

    def err(description: str) -> dict:
        return {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}

    e400 = {"400": err("Invalid parameter or body; the message says which and what was expected.")}
    e401 = {"401": {**err("Authentication required (when auth.api_token is set)."),
                    "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}}}}
    e403 = {"403": err("A change made with the board's session cookie that is not a JSON request, by a token "
                       "whose role may only read, or about another team than the token's.")}
    e409 = {"409": err("Notifications are not configured (config key `notifications:`).")}
    e415 = {"415": err("The body is not JSON.")}
    changes = {**e400, **e401, **e403, **e409, **e415}
    by = {"type": "string", "maxLength": MAX_BY, "pattern": r"\S",
          "description": "Who does it (a name); a named token's name when absent (required with auth.api_token "
                         "or without auth).", "example": "sam"}
    note_s = {"type": "string", "maxLength": MAX_NOTE}
    minutes = {"type": "integer", "minimum": 0, "maximum": SNOOZE_MAX_MIN, "multipleOf": SNOOZE_STEP_MIN,
               "description": f"Multiples of {SNOOZE_STEP_MIN} up to {SNOOZE_MAX_MIN} (23 h 45); 0 ends the snooze.",
               "example": 30}
    snooze_body = {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["minutes"], "additionalProperties": False,
        "properties": {"minutes": minutes, "by": by, "note": note_s}}}}}
    snooze_resp = {"200": {"description": "The snooze now in force (until is null once ended).",
                           "content": {"application/json": {"schema": {
                               "type": "object", "required": ["ok", "snooze"],
                               "properties": {"ok": {"type": "boolean", "enum": [True]}, "snooze": {
                                   "type": "object",
                                   "required": ["agent", "worker_sid", "exception_id", "minutes", "until"],
                                   "properties": {"agent": {"type": "string"}, "worker_sid": {"type": "string"},
                                                  "exception_id": {"type": "integer", "nullable": True},
                                                  "minutes": {"type": "integer"}, "until": NTIME}}}}}}}}
    ack = {"type": "object", "nullable": True, "required": ["by", "note", "at"],
           "properties": {"by": {"type": "string", "nullable": True}, "note": {"type": "string", "nullable": True},
                          "at": TIME}}
    ack_resp = {"200": {"description": "The exception's acknowledgement (null once withdrawn).",
                        "content": {"application/json": {"schema": {
                            "type": "object", "required": ["ok", "exception_id", "acknowledged"],
                            "properties": {"ok": {"type": "boolean", "enum": [True]},
                                           "exception_id": {"type": "integer"}, "acknowledged": ack}}}}}}
    no_exc = {"404": err("No such exception.")}
    note = {"type": "object", "required": ["id", "channel", "route", "event", "exception_id", "agent", "status",
                                           "attempts", "created", "next_attempt", "sent", "last_error", "payload"],
            "properties": {
                "id": {"type": "integer", "description": "Also the X-Adherence-Delivery header: receivers deduplicate on it."},
                "channel": {"type": "string"}, "route": {"type": "string"},
                "event": {"type": "string", "enum": ["opened", "closed", "reminder", "corrected", "removed", "test"]},
                "exception_id": {"type": "integer", "nullable": True},
                "agent": {"type": "string", "nullable": True},
                "status": {"type": "string", "enum": ["pending", "sent", "dead", "cancelled"]},
                "attempts": {"type": "integer", "minimum": 0}, "created": TIME,
                "next_attempt": {**NTIME, "description": "While pending."}, "sent": NTIME,
                "last_error": {"type": "string", "nullable": True},
                "payload": {"type": "object", "description": "The event as the webhook sends it."}}}
    page = {"ok": {"type": "boolean", "enum": [True]}, "total": {"type": "integer", "minimum": 0},
            "limit": {"type": "integer"}, "offset": {"type": "integer"},
            "next": {"type": "string", "nullable": True}}
    count = {"type": "integer", "minimum": 0}
    agent_p = _param("agent", {"type": "string", "minLength": 1}, "Roster key or worker SID.", "path", True)
    note_p = _param("note_id", {"type": "integer", "minimum": 1}, "Notification (outbox entry) id.", "path", True)
    return {
        "/api/notifications": {"get": {
            "summary": "The notification outbox: per channel counts, newest entries first",
            "description": "Dead-lettered entries (`status=dead`) failed `delivery.max_attempts` times.",
            "parameters": [_param("status", {"type": "string", "enum": ["pending", "sent", "dead", "cancelled"]},
                                  "Only entries in this state."),
                           _param("channel", {"type": "string"}, "Only this channel."),
                           _param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, "Rows per page."),
                           OFFSET],
            "responses": {"200": {"description": "A page of outbox entries.", "content": {"application/json": {
                "schema": {"type": "object",
                           "required": ["ok", "configured", "channels", "total", "limit", "offset", "next",
                                        "notifications"],
                           "properties": {**page, "configured": {"type": "boolean"},
                                          "channels": {"type": "array", "items": {
                                              "type": "object",
                                              "properties": {"name": {"type": "string"},
                                                             "type": {"type": "string", "nullable": True},
                                                             "configured": {"type": "boolean"},
                                                             "pending": count, "sent": count, "dead": count,
                                                             "cancelled": count}}},
                                          "notifications": {"type": "array", "items": note}}}}}},
                          **e400, **e401},
        }},
        "/api/notifications/{note_id}/retry": {"post": {
            "summary": "Send a dead-lettered notification again",
            "parameters": [note_p],
            "requestBody": {"required": False, "content": {"application/json": {"schema": {
                "type": "object", "additionalProperties": False, "properties": {"by": by}}}}},
            "responses": {"200": {"description": "The entry, pending again.", "content": {"application/json": {
                "schema": {"type": "object", "required": ["ok", "notification"],
                           "properties": {"ok": {"type": "boolean", "enum": [True]}, "notification": note}}}}},
                          **e400, **e401, **e403, "404": err("No such notification."),
                          "409": err("The notification is not dead-lettered."), **e415},
        }},
        "/api/notifications/audit": {"get": {
            "summary": "History of acknowledgements, snoozes and retries, newest first",
            "description": "The notification actions of the audit history (`GET /api/audit` lists them with the "
                           "approvals).",
            "parameters": [LIMIT, OFFSET],
            "responses": {"200": {"description": "A page of audit rows.", "content": {"application/json": {
                "schema": {"type": "object", "required": ["ok", "total", "limit", "offset", "next", "audit"],
                           "properties": {**page, "audit": {"type": "array", "items": _ref("AuditEntry")}}}}}},
                          **e400, **e401, **e403},
        }},
        "/api/notifications/state": {"get": {
            "summary": "Snoozes in force and acknowledgements, as the board shows them",
            "description": "Agents and exceptions snoozed now (until when, by whom) and acknowledged open exceptions "
                           "(and those of `date`), within the caller's teams; `can_write`: whether the caller may "
                           "snooze and acknowledge.",
            "parameters": [_param("date", {"type": "string", "format": "date"},
                                  "Also the acknowledgements of this day's exceptions.")],
            "responses": {"200": {"description": "What is snoozed and acknowledged.", "content": {"application/json": {
                "schema": {"type": "object",
                           "required": ["ok", "configured", "now", "can_write", "named", "snooze_step_minutes",
                                        "snooze_max_minutes", "agents", "exceptions"],
                           "properties": {
                               "ok": {"type": "boolean", "enum": [True]}, "configured": {"type": "boolean"},
                               "now": TIME, "can_write": {"type": "boolean"}, "named": {"type": "boolean"},
                               "snooze_step_minutes": {"type": "integer"}, "snooze_max_minutes": {"type": "integer"},
                               "agents": {"type": "array", "items": {
                                   "type": "object", "required": ["agent", "worker_sid", "until", "by"],
                                   "properties": {"agent": {"type": "string"}, "worker_sid": {"type": "string"},
                                                  "until": TIME, "by": {"type": "string", "nullable": True}}}},
                               "exceptions": {"type": "array", "items": {
                                   "type": "object",
                                   "required": ["exception_id", "agent", "worker_sid", "open", "snoozed_until",
                                                "snoozed_by", "acknowledged"],
                                   "properties": {"exception_id": {"type": "integer"},
                                                  "agent": {"type": "string", "nullable": True},
                                                  "worker_sid": {"type": "string"}, "open": {"type": "boolean"},
                                                  "snoozed_until": NTIME,
                                                  "snoozed_by": {"type": "string", "nullable": True},
                                                  "acknowledged": ack}}}}}}}},
                          **e400, **e401},
        }},
        "/api/exceptions/{exc_id}/ack": {
            "post": {
                "summary": "Acknowledge an exception: no more reminders for it",
                "parameters": [EXC_ID],
                "requestBody": {"required": False, "content": {"application/json": {"schema": {
                    "type": "object", "additionalProperties": False, "properties": {"by": by, "note": note_s}}}}},
                "responses": {**ack_resp, **changes, **no_exc},
            },
            "delete": {
                "summary": "Withdraw an acknowledgement",
                "parameters": [EXC_ID],
                "requestBody": {"required": False, "content": {"application/json": {"schema": {
                    "type": "object", "additionalProperties": False,
                    "properties": {"by": by, "note": note_s}}}}},
                "responses": {**ack_resp, **changes, **no_exc},
            },
        },
        "/api/exceptions/{exc_id}/snooze": {"post": {
            "summary": "Snooze one exception's alerts",
            "description": "Nothing is sent for it until the snooze ends; if it is still open then, it is announced.",
            "parameters": [EXC_ID], "requestBody": snooze_body,
            "responses": {**snooze_resp, **changes, **no_exc},
        }},
        "/api/agents/{agent}/snooze": {"post": {
            "summary": "Snooze every alert about one agent",
            "description": "Openings and reminders are held back while snoozed (closings of alerts already sent "
                           "still go out); an exception still open when the snooze ends is announced then.",
            "parameters": [agent_p], "requestBody": snooze_body,
            "responses": {**snooze_resp, **changes, "404": err("No such agent.")},
        }},
    }
