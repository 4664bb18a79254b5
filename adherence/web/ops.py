"""Operations endpoints: ``/health`` and ``/metrics``. No auth: they hold no secrets or personal data."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from ..metrics import METRICS

bp = Blueprint("ops", __name__)


@bp.get("/health")
def health():
    engine = current_app.extensions["adherence"]
    report = engine.health()
    resp = jsonify(report)
    resp.status_code = 200 if report["database"]["ok"] else 503
    return resp


@bp.get("/metrics")
def metrics():
    engine = current_app.extensions["adherence"]
    engine.health()  # refreshes the gauges
    return Response(METRICS.render(), mimetype="text/plain; version=0.0.4")
