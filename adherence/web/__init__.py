"""The Flask app: ``create_app`` builds it around one Engine.

Blueprints, one per surface: webhooks (the feed), ops (health, metrics),
api (JSON/CSV reads and approvals), board (HTML).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from typing import Any

from flask import Flask, g, jsonify, request
from werkzeug.exceptions import HTTPException

from ..metrics import METRICS
from .receive import error_body

log = logging.getLogger(__name__)


def error_response(status: int, message: str, errors: list[str] | None = None, headers: dict | None = None):
    resp = jsonify(error_body(status, message, errors))
    resp.status_code = status
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def create_app(*, engine) -> Flask:
    """Build the app around ``engine`` (the CLI and the tests build the engine: one per process)."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = engine.config.max_body_bytes
    app.json.sort_keys = False  # keep fields in the documented order
    app.extensions["adherence"] = engine

    from . import api, board, notify_api, ops, webhooks  # noqa: F401 (notify_api adds its routes to api.bp)

    app.register_blueprint(webhooks.bp)
    app.register_blueprint(ops.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(board.bp)

    @app.before_request
    def _start_timer():
        g.adherence_started = time.perf_counter()
        # while live state loads, the webhooks journal (the journal is the truth) and /health says so;
        # reads that need live state wait
        if not engine.ready.is_set() and request.blueprint in ("api", "board"):
            return error_response(503, "starting: building live state from the journal; try again shortly",
                                  headers={"Retry-After": "5"})
        return None

    @app.after_request
    def _time_webhook(resp):
        # here rather than in the view: every answer counts, refusals and errors included
        if request.blueprint == "webhooks" and "adherence_started" in g:
            METRICS.observe("adherence_webhook_duration_seconds", time.perf_counter() - g.adherence_started)
        return resp

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        msg = exc.description or exc.name
        if exc.code == 413:
            msg = f"request body too large (limit {engine.config.max_body_bytes} bytes)"
        # keep the exception's own headers (Allow on 405, WWW-Authenticate on 401)
        headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
        return error_response(exc.code or 500, msg, headers=headers)

    @app.errorhandler(sqlite3.Error)
    def _database_error(exc: sqlite3.Error) -> Any:
        # the database is unusable for now (file replaced, disk full, locked too long): the client
        # should come back later; the reason is on /health for those with the token, and in the log
        from ..store import StoreUnavailable

        # a refusal is expected (its reason is the message); anything else keeps its traceback in the log
        log.error("database error: %s", exc, exc_info=not isinstance(exc, StoreUnavailable),
                  extra={"event": "database_error", "path": request.path})
        return error_response(503, "the database is unavailable; retry later", headers={"Retry-After": "5"})

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        log.exception("unhandled error")
        return error_response(500, "internal error (see the server log)")

    return app
