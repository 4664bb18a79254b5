"""``POST /webhooks/rta``: the Flex WFM Real-Time Adherence feed.

Answers in milliseconds: authenticate, parse, one SQLite transaction,
apply to live state, reply. Evaluation happens on the scheduler, never in
the request. Failed authentication stores nothing; a body that passed
authentication is always kept (journal or rejected table); a 5xx means the
body could not be stored, so Twilio's retry is the right reaction.
"""

from __future__ import annotations

import logging
import sqlite3

from flask import Blueprint, current_app, jsonify, request

from ..auth import SETTINGS_HEADER, SIGNATURE_HEADER, check_basic, signed_request_url, verify_twilio_signature
from ..errors import FeedError
from ..metrics import METRICS
from . import error_response

bp = Blueprint("webhooks", __name__)
log = logging.getLogger(__name__)


def _authenticate(engine):
    """None when the request may proceed, else the error response (nothing stored)."""
    cfg = engine.config
    if cfg.webhook_basic is not None:
        reason = check_basic(request.headers.get("Authorization"), cfg.webhook_basic.username, cfg.webhook_basic.password)
        if reason is not None:
            return _refuse(401 if reason.startswith("missing") else 403, reason, {"WWW-Authenticate": 'Basic realm="adherence-webhook"'})
    if cfg.twilio_auth_token:
        url = signed_request_url(request, cfg.server_public_url)
        reason = verify_twilio_signature(
            url=url,
            body=request.get_data(cache=True),
            content_type=request.content_type or "",
            form={k: request.form.getlist(k) for k in request.form} if request.mimetype == "application/x-www-form-urlencoded" else None,
            signature=request.headers.get(SIGNATURE_HEADER),
            token=cfg.twilio_auth_token,
            settings_header=request.headers.get(SETTINGS_HEADER),
        )
        if reason is not None:
            return _refuse(401 if reason.startswith("missing") else 403, f"Twilio signature check failed: {reason}")
    return None


def _refuse(status: int, reason: str, headers: dict | None = None):
    METRICS.inc("adherence_auth_failures_total", surface="webhook")
    METRICS.inc("adherence_webhook_requests_total", status=str(status))
    log.warning(
        "webhook refused: %s", reason, extra={"event": "webhook_auth_failed", "remote": request.remote_addr, "status": status}
    )
    return error_response(status, reason, headers=headers)


@bp.post("/webhooks/rta")
def rta():
    engine = current_app.extensions["adherence"]
    refused = _authenticate(engine)
    if refused is not None:
        return refused
    body = request.get_data(cache=True)
    received = engine.clock.now_ms()
    try:
        counts = engine.journal.ingest_body(body, received, request.content_type, request.remote_addr)
    except FeedError as exc:
        METRICS.inc("adherence_webhook_requests_total", status="400")
        return error_response(400, f"rejected: {exc}", exc.messages)
    except sqlite3.Error as exc:
        METRICS.inc("adherence_webhook_requests_total", status="503")
        log.error("could not store feed body: %s", exc, extra={"event": "journal_write_failed"})
        return error_response(503, "could not store the body; retry", headers={"Retry-After": "1"})
    METRICS.inc("adherence_webhook_requests_total", status="200")
    return jsonify({"ok": True, **counts.as_dict()})
