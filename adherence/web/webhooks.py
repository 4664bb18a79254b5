"""The receivers: ``/webhooks/rta`` (the Flex WFM Real-Time Adherence feed),
``/webhooks/taskrouter`` (the Workspace event callback, form-encoded) and
``/webhooks/events`` (an Event Streams webhook sink, CloudEvents JSON).

Answers in milliseconds: authenticate, parse, one SQLite transaction,
apply to live state, reply. Evaluation happens on the scheduler, never in
the request. Failed authentication stores nothing; a body that passed
authentication is always kept (journal or rejected table); a 5xx means the
body could not be stored, so Twilio's retry is the right reaction.

The same authentication guards all three, each scheme on when configured:
HTTP basic auth (credentials in the registered URL: Event Streams sends them
on every request) and ``X-Twilio-Signature`` with the auth token (form
parameters for the callback, checked with twilio-python's
``RequestValidator``; ``bodySHA256`` for JSON bodies).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from urllib.parse import urlsplit, urlunsplit

from flask import Blueprint, current_app, jsonify, request
from twilio.request_validator import RequestValidator

from ..auth import SETTINGS_HEADER, SIGNATURE_HEADER, check_basic, signed_request_url, verify_twilio_signature
from ..errors import FeedError
from ..feed import parse_body
from ..metrics import METRICS
from ..sources import events as tr
from . import error_response

bp = Blueprint("webhooks", __name__)
MAX_AHEAD_MS = 5 * 60_000  # an event dated further ahead of its receipt takes the receipt time (as the feed)
log = logging.getLogger(__name__)


_RECEIVERS = ("/webhooks/rta", "/webhooks/taskrouter", "/webhooks/events")


def _public_url(cfg) -> str | None:
    """``server.public_url`` for this request's receiver.

    It names one URL (usually the RTA feed's, as registered) or a base; the other receivers are
    registered beside it, so their public URL is the same with this receiver's path. The RTA
    receiver keeps the setting as it is (a proxy may rewrite any path to it).
    """
    pub = cfg.server_public_url
    if not pub or request.path == "/webhooks/rta":
        return pub
    parts = urlsplit(pub)
    path = parts.path.rstrip("/")
    for suffix in _RECEIVERS:
        if path.endswith(suffix):
            path = path[: -len(suffix)]
            break
    return urlunsplit((parts.scheme, parts.netloc, path + request.path, "", ""))


def _authenticate(engine):
    """None when the request may proceed, else the error response (nothing stored)."""
    cfg = engine.config
    if cfg.webhook_basic is not None:
        reason = check_basic(request.headers.get("Authorization"), cfg.webhook_basic.username, cfg.webhook_basic.password)
        if reason is not None:
            return _refuse(401 if reason.startswith("missing") else 403, reason, {"WWW-Authenticate": 'Basic realm="adherence-webhook"'})
    if cfg.twilio_auth_token and request.mimetype == "application/x-www-form-urlencoded":
        reason = _check_form_signature(cfg)
        if reason is not None:
            return _refuse(401 if reason.startswith("missing") else 403, f"Twilio signature check failed: {reason}")
    elif cfg.twilio_auth_token:
        url = signed_request_url(request, _public_url(cfg))
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


def _check_form_signature(cfg) -> str | None:
    """A form-encoded request's signature, checked by twilio-python's own ``RequestValidator``.

    It signs the URL (without ``user:pass@``; with or without the default port, which the
    validator tries both ways) followed by every form parameter sorted by name.
    """
    signature = request.headers.get(SIGNATURE_HEADER)
    if not signature:
        return "missing X-Twilio-Signature header"
    parts = urlsplit(signed_request_url(request, _public_url(cfg)))
    url = urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[-1], parts.path, parts.query, ""))
    settings = request.headers.get(SETTINGS_HEADER)
    try:
        ok = RequestValidator(cfg.twilio_auth_token).validate(url, request.form, signature,
                                                              **({"algorithm": _algorithm(settings)} if settings else {}))
    except ValueError:
        return "unsupported signature algorithm"
    return None if ok else "signature does not match"


def _algorithm(settings_header: str) -> str:
    for part in settings_header.split(","):
        name, sep, value = part.partition("=")
        if sep and name.strip() == "algorithm" and value.strip():
            return value.strip()
    return "HMAC_SHA1"


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
    return _ok(counts)


_REPLIES: dict[tuple, bytes] = {}  # (accepted, duplicates, rejected) -> the answer's body, encoded once


def _ok(counts):
    """The 200 answer: ``{"ok": true, ...counts}``, as ``jsonify`` writes it, the usual ones encoded once."""
    d = counts.as_dict()
    if len(d) == 3 and counts.accepted + counts.duplicates + counts.rejected <= 4:
        key = (counts.accepted, counts.duplicates, counts.rejected)
        body = _REPLIES.get(key)
        if body is None:
            body = _REPLIES[key] = (current_app.json.dumps({"ok": True, **d}, separators=(",", ":")) + "\n").encode()
        return current_app.response_class(body, mimetype="application/json")
    return jsonify({"ok": True, **d})


def _stored_or_503(fn):
    """Run a journal write; (result, None) or (None, the 503 answer: nothing could be stored)."""
    try:
        return fn(), None
    except sqlite3.Error as exc:
        METRICS.inc("adherence_webhook_requests_total", status="503")
        log.error("could not store webhook body: %s", exc, extra={"event": "journal_write_failed"})
        return None, error_response(503, "could not store the body; retry", headers={"Retry-After": "1"})


def _rejected(journal, body: bytes, reason: str, received: int, errors: list[str] | None = None):
    """Keep an unusable body in the rejected table and answer 400 (503 when it could not be kept)."""
    _, failed = _stored_or_503(lambda: journal.reject_body(body, reason, received, request.content_type,
                                                          request.remote_addr))
    if failed is not None:
        return failed
    METRICS.inc("adherence_webhook_requests_total", status="400")
    return error_response(400, f"rejected: {reason}", errors)


@bp.post("/webhooks/taskrouter")
def taskrouter():
    """The Workspace's EventCallbackUrl: one form-encoded event per request; 204 as TaskRouter asks."""
    engine = current_app.extensions["adherence"]
    refused = _authenticate(engine)
    if refused is not None:
        return refused
    body = request.get_data(cache=True)
    received = engine.clock.now_ms()
    journal = engine.journal
    if request.mimetype != "application/x-www-form-urlencoded":
        reason = f"expected a form-encoded TaskRouter event callback, got {request.mimetype or 'no content type'}"
        return _rejected(journal, body, reason, received)
    form = request.form.to_dict(flat=True)
    batch, kept = [], []
    try:
        batch.append(tr.from_callback(form, received, MAX_AHEAD_MS))
    except tr.Ignored as exc:
        kept.append((body, str(exc), "ignored"))
    except FeedError as exc:
        if not form.get("EventType"):
            return _rejected(journal, body, str(exc), received)
        kept.append((body, str(exc), "rejected"))
    counts, failed = _stored_or_503(lambda: journal.ingest_events(batch, received, kept, request.content_type,
                                                                 request.remote_addr))
    if failed is not None:
        return failed
    METRICS.inc("adherence_webhook_requests_total", status="204")
    return current_app.response_class(status=204, content_type="application/json")


@bp.post("/webhooks/events")
def event_streams():
    """An Event Streams webhook sink: a CloudEvent or a JSON list of them per request."""
    engine = current_app.extensions["adherence"]
    refused = _authenticate(engine)
    if refused is not None:
        return refused
    body = request.get_data(cache=True)
    received = engine.clock.now_ms()
    journal = engine.journal
    try:
        value = parse_body(body)
        if not isinstance(value, (dict, list)):
            raise FeedError("expected a CloudEvent or a list of CloudEvents")
    except FeedError as exc:
        return _rejected(journal, body, str(exc), received, exc.messages)
    batch, kept = [], []
    for i, ce in enumerate(value if isinstance(value, list) else [value]):
        try:
            batch.append(tr.from_cloudevent(ce, received, MAX_AHEAD_MS))
        except tr.Ignored as exc:
            kept.append((_dump(ce), f"[{i}]: {exc}", "ignored"))
        except FeedError as exc:
            kept.append((_dump(ce), f"[{i}]: {exc}", "rejected"))
    counts, failed = _stored_or_503(lambda: journal.ingest_events(batch, received, kept, request.content_type,
                                                                 request.remote_addr))
    if failed is not None:
        return failed
    METRICS.inc("adherence_webhook_requests_total", status="200")
    return _ok(counts)


def _dump(value) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")
