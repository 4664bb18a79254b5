"""The Flask app: ``create_app`` builds it around one Engine.

Blueprints, one per surface: webhooks (the feed), ops (health, metrics),
api (JSON/CSV reads and approvals), board (HTML).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from ..config import Config, load_config

log = logging.getLogger(__name__)


def error_body(status: int, message: str, errors: list[str] | None = None) -> dict:
    """The one JSON error shape of every endpoint."""
    return {"ok": False, "error": message, "errors": errors or [message], "status": status}


def error_response(status: int, message: str, errors: list[str] | None = None, headers: dict | None = None):
    resp = jsonify(error_body(status, message, errors))
    resp.status_code = status
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def create_app(config: Config | dict | None = None, *, engine=None, clock=None) -> Flask:
    """Build the app. ``config`` is a Config, or a dict of overrides on the defaults (tests)."""
    if engine is None:
        from ..engine import Engine

        if not isinstance(config, Config):
            config = load_config(None, overrides=config or {})
        engine = Engine(config, clock)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = engine.config.max_body_bytes
    app.json.sort_keys = False  # keep fields in the documented order
    app.extensions["adherence"] = engine

    from . import ops, webhooks

    app.register_blueprint(webhooks.bp)
    app.register_blueprint(ops.bp)
    for name in ("api", "board"):
        try:
            mod = __import__(f"{__name__}.{name}", fromlist=["bp"])
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            continue
        app.register_blueprint(mod.bp)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        msg = exc.description or exc.name
        if exc.code == 413:
            msg = f"request body too large (limit {engine.config.max_body_bytes} bytes)"
        # keep the exception's own headers (Allow on 405, WWW-Authenticate on 401)
        headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
        return error_response(exc.code or 500, msg, headers=headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        log.exception("unhandled error")
        return error_response(500, "internal error (see the server log)")

    return app


def engine_of(app: Flask):
    return app.extensions["adherence"]
