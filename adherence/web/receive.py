"""The three webhook receivers without Flask: authenticate a request, journal its body, make the answer.

Two servers call this. ``serve`` in one process does it from the Flask views
(``webhooks.py``). ``serve`` with front processes (``server.front_processes``)
authenticates in the front that took the connection (``front.py``) and journals in the
process that owns the journal and live state (``link.py``), which runs ``receive``
on the forwarded body. The answers are the same bytes either way, because both
build them here: the JSON is written as Flask's ``jsonify`` writes it (compact,
ASCII, a final newline), so a client cannot tell which server answered.

Authentication sees the request as the client sent it (URL, headers, form), so it
runs where the request arrived; journaling needs only the body, its content type and
the client's address, so that is all a front forwards.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from twilio.request_validator import RequestValidator
from werkzeug.wrappers import Request

from ..auth import SETTINGS_HEADER, SIGNATURE_HEADER, check_basic, signed_request_url, verify_twilio_signature
from ..errors import FeedError
from ..feed import parse_body
from ..metrics import METRICS
from ..sources import events as tr

log = logging.getLogger("adherence.web.webhooks")

MAX_AHEAD_MS = 5 * 60_000  # an event dated further ahead of its receipt takes the receipt time (as the feed)

# path -> receiver name; the names travel between a front and the owner
RECEIVERS = {"/webhooks/rta": "rta", "/webhooks/taskrouter": "taskrouter", "/webhooks/events": "events"}


@dataclass
class Reply:
    """An HTTP answer, whichever server sends it."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


def _json_bytes(value) -> bytes:
    # what Flask's jsonify writes outside debug mode (sort_keys is off in create_app)
    return (json.dumps(value, separators=(",", ":")) + "\n").encode("utf-8")


def error_body(status: int, message: str, errors: list[str] | None = None) -> dict:
    """The one JSON error shape of every endpoint."""
    return {"ok": False, "error": message, "errors": errors or [message], "status": status}


def error_reply(status: int, message: str, errors: list[str] | None = None, headers: dict | None = None) -> Reply:
    return Reply(status, _json_bytes(error_body(status, message, errors)), dict(headers or {}))


# -- authentication ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """Why a request may not be journaled: nothing of it is stored."""

    status: int
    reason: str
    headers: dict[str, str] = field(default_factory=dict)

    def reply(self) -> Reply:
        return error_reply(self.status, self.reason, headers=self.headers)


def public_url(cfg, path: str) -> str | None:
    """``server.public_url`` for the receiver at ``path``.

    It names one URL (usually the RTA feed's, as registered) or a base; the other receivers are
    registered beside it, so their public URL is the same with this receiver's path. The RTA
    receiver keeps the setting as it is (a proxy may rewrite any path to it).
    """
    pub = cfg.server_public_url
    if not pub or path == "/webhooks/rta":
        return pub
    parts = urlsplit(pub)
    base = parts.path.rstrip("/")
    for suffix in RECEIVERS:
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return urlunsplit((parts.scheme, parts.netloc, base + path, "", ""))


def authenticate(cfg, req: Request) -> Refusal | None:
    """None when the request may proceed, else why not (each scheme on when configured)."""
    # the body first: parsing the form for its signature would consume it, and a callback that is
    # kept (ignored or rejected) must keep the bytes received
    req.get_data(cache=True)
    if cfg.webhook_basic is not None:
        reason = check_basic(req.headers.get("Authorization"), cfg.webhook_basic.username, cfg.webhook_basic.password)
        if reason is not None:
            return Refusal(401 if reason.startswith("missing") else 403, reason,
                           {"WWW-Authenticate": 'Basic realm="adherence-webhook"'})
    if cfg.twilio_auth_token and req.mimetype == "application/x-www-form-urlencoded":
        reason = _check_form_signature(cfg, req)
    elif cfg.twilio_auth_token:
        reason = verify_twilio_signature(
            url=signed_request_url(req, public_url(cfg, req.path)),
            body=req.get_data(cache=True),
            content_type=req.content_type or "",
            form=None,
            signature=req.headers.get(SIGNATURE_HEADER),
            token=cfg.twilio_auth_token,
            settings_header=req.headers.get(SETTINGS_HEADER),
        )
    else:
        return None
    if reason is not None:
        return Refusal(401 if reason.startswith("missing") else 403, f"Twilio signature check failed: {reason}")
    return None


def _check_form_signature(cfg, req: Request) -> str | None:
    """A form-encoded request's signature, checked by twilio-python's own ``RequestValidator``.

    It signs the URL (without ``user:pass@``; with or without the default port, which the
    validator tries both ways) followed by every form parameter sorted by name.
    """
    signature = req.headers.get(SIGNATURE_HEADER)
    if not signature:
        return "missing X-Twilio-Signature header"
    parts = urlsplit(signed_request_url(req, public_url(cfg, req.path)))
    url = urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[-1], parts.path, parts.query, ""))
    settings = req.headers.get(SETTINGS_HEADER)
    try:
        ok = RequestValidator(cfg.twilio_auth_token).validate(url, req.form, signature,
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


def log_refusal(refusal: Refusal, remote: str | None) -> None:
    log.warning("webhook refused: %s", refusal.reason,
                extra={"event": "webhook_auth_failed", "remote": remote, "status": refusal.status})


def count_refusal(status: int, n: int = 1) -> None:
    METRICS.inc("adherence_auth_failures_total", n, surface="webhook")
    METRICS.inc("adherence_webhook_requests_total", n, status=str(status))


# -- journaling ------------------------------------------------------------------------------------


def receive(engine, name: str, req: Request) -> Reply:
    """Journal an authenticated request's body for the receiver ``name``; the answer.

    A body that passed authentication is always kept (journal or rejected table); a 503 means it
    could not be stored, so Twilio's retry is the right reaction.
    """
    if name == "rta":
        return _rta(engine, req)
    if name == "taskrouter":
        return _taskrouter(engine, req)
    return _event_streams(engine, req)


def _rta(engine, req: Request) -> Reply:
    body = req.get_data(cache=True)
    received = engine.clock.now_ms()
    try:
        counts = engine.journal.ingest_body(body, received, req.content_type, req.remote_addr)
    except FeedError as exc:
        METRICS.inc("adherence_webhook_requests_total", status="400")
        return error_reply(400, f"rejected: {exc}", exc.messages)
    except sqlite3.Error as exc:
        return _unstored(exc)
    METRICS.inc("adherence_webhook_requests_total", status="200")
    return _ok(counts)


_REPLIES: dict[tuple, bytes] = {}  # (accepted, duplicates, rejected) -> the answer's body, encoded once


def _ok(counts) -> Reply:
    """The 200 answer: ``{"ok": true, ...counts}``, the usual ones encoded once."""
    d = counts.as_dict()
    if len(d) == 3 and counts.accepted + counts.duplicates + counts.rejected <= 4:
        key = (counts.accepted, counts.duplicates, counts.rejected)
        body = _REPLIES.get(key)
        if body is None:
            body = _REPLIES[key] = _json_bytes({"ok": True, **d})
        return Reply(200, body)
    return Reply(200, _json_bytes({"ok": True, **d}))


def _unstored(exc: sqlite3.Error) -> Reply:
    METRICS.inc("adherence_webhook_requests_total", status="503")
    log.error("could not store webhook body: %s", exc, extra={"event": "journal_write_failed"})
    return error_reply(503, "could not store the body; retry", headers={"Retry-After": "1"})


def _rejected(journal, req: Request, body: bytes, reason: str, received: int, errors: list[str] | None = None) -> Reply:
    """Keep an unusable body in the rejected table and answer 400 (503 when it could not be kept)."""
    try:
        journal.reject_body(body, reason, received, req.content_type, req.remote_addr)
    except sqlite3.Error as exc:
        return _unstored(exc)
    METRICS.inc("adherence_webhook_requests_total", status="400")
    return error_reply(400, f"rejected: {reason}", errors)


def _taskrouter(engine, req: Request) -> Reply:
    """The Workspace's EventCallbackUrl: one form-encoded event per request; 204 as TaskRouter asks."""
    body = req.get_data(cache=True)
    received = engine.clock.now_ms()
    journal = engine.journal
    if req.mimetype != "application/x-www-form-urlencoded":
        reason = f"expected a form-encoded TaskRouter event callback, got {req.mimetype or 'no content type'}"
        return _rejected(journal, req, body, reason, received)
    form = req.form.to_dict(flat=True)
    batch, kept = [], []
    try:
        batch.append(tr.from_callback(form, received, MAX_AHEAD_MS))
    except tr.Ignored as exc:
        kept.append((body, str(exc), "ignored"))
    except FeedError as exc:
        if not form.get("EventType"):
            return _rejected(journal, req, body, str(exc), received)
        kept.append((body, str(exc), "rejected"))
    try:
        journal.ingest_events(batch, received, kept, req.content_type, req.remote_addr)
    except sqlite3.Error as exc:
        return _unstored(exc)
    METRICS.inc("adherence_webhook_requests_total", status="204")
    return Reply(204)


def _event_streams(engine, req: Request) -> Reply:
    """An Event Streams webhook sink: a CloudEvent or a JSON list of them per request."""
    body = req.get_data(cache=True)
    received = engine.clock.now_ms()
    journal = engine.journal
    try:
        value = parse_body(body)
        if not isinstance(value, (dict, list)):
            raise FeedError("expected a CloudEvent or a list of CloudEvents")
    except FeedError as exc:
        return _rejected(journal, req, body, str(exc), received, exc.messages)
    batch, kept = [], []
    for i, ce in enumerate(value if isinstance(value, list) else [value]):
        try:
            batch.append(tr.from_cloudevent(ce, received, MAX_AHEAD_MS))
        except tr.Ignored as exc:
            kept.append((_dump(ce), f"[{i}]: {exc}", "ignored"))
        except FeedError as exc:
            kept.append((_dump(ce), f"[{i}]: {exc}", "rejected"))
    try:
        counts = journal.ingest_events(batch, received, kept, req.content_type, req.remote_addr)
    except sqlite3.Error as exc:
        return _unstored(exc)
    METRICS.inc("adherence_webhook_requests_total", status="200")
    return _ok(counts)


def _dump(value) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")
