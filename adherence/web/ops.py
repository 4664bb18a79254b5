"""Operations endpoints: ``/health`` and ``/metrics``.

``/health`` is for load balancers and monitors that hold no credentials, so without
the API token it says only whether the service is up and ready, never a path, a
roster key or a line quoted from a schedule (people's names live there). With the
token (Bearer or the board's session) it gives every detail. ``/metrics`` holds
counts and sizes only, no names or paths, and stays public for scrapers.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from .. import __version__
from ..metrics import exposition
from ..silence import feed_status
from .api import credentials

bp = Blueprint("ops", __name__)


@bp.get("/health")
def health():
    engine = current_app.extensions["adherence"]
    report = engine.health()
    try:
        report["feed"] = feed_status(engine)
    except Exception as exc:  # a silence check must never take the health check down with it
        report["feed"] = {"silent": None, "error": str(exc)}
    if report["feed"].get("silent"):
        report["ok"] = False
        if report["status"] == "ok":
            report["status"] = "degraded"
    ready = bool(report["database"]["ok"]) and not report.get("starting")
    status = 200 if ready else 503
    if credentials() is None:
        resp = jsonify({"ok": report["ok"], "status": report["status"], "version": __version__, "ready": ready})
    else:
        report["database"].update(engine.store.file_status())
        resp = jsonify({**report, "version": __version__, "ready": ready})
    resp.status_code = status
    resp.headers["Cache-Control"] = "no-store"
    if not ready:
        resp.headers["Retry-After"] = "5"
    return resp


@bp.get("/metrics")
def metrics():
    try:
        feed_status(current_app.extensions["adherence"])  # sets adherence_feed_silence_seconds / _silent
    except Exception:
        pass  # the other metrics still matter
    body, content_type = exposition(current_app)
    return Response(body, content_type=content_type)
