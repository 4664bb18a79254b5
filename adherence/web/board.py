"""The web board: ``/`` (live, for a wall screen) and ``/day`` (a day's exceptions and adherence).

The pages are static shells; their JavaScript (``static/board.js``,
``static/day.js``, no framework, no CDN) reads ``/api`` every few seconds.
When ``auth.api_token`` is set, ``/login`` takes the token once and sets an
HttpOnly, SameSite=Strict session cookie derived from it by HMAC (see
``api.session_value``); the API accepts that cookie as well as Bearer.
"""

from __future__ import annotations

from datetime import date, timedelta

from flask import Blueprint, current_app, redirect, render_template, request, url_for

from ..auth import constant_time_equal
from ..timeutil import local_date, parse_date, zone
from .api import SESSION_COOKIE, authorized, note_auth_failure, session_value

bp = Blueprint("board", __name__)

REFRESH_MS = 3000

_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def _engine():
    return current_app.extensions["adherence"]


def _today() -> date:
    engine = _engine()
    return local_date(engine.clock.now_ms(), zone(engine.config.timezone))


def _safe_next(target: str | None) -> str:
    """Only same-site paths: never redirect a logged-in user elsewhere."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return url_for("board.live")
    return target


@bp.after_request
def _headers(resp):
    resp.headers.setdefault("Content-Security-Policy", _CSP)
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("Referrer-Policy", "no-referrer")
    resp.headers.setdefault("Cache-Control", "no-store")
    return resp


@bp.before_request
def _require_login():
    if request.endpoint in ("board.login", "board.logout") or authorized():
        return None
    note_auth_failure("board")
    return redirect(url_for("board.login", next=request.full_path.rstrip("?")))


def _page(template: str, status: int = 200, **context):
    engine = _engine()
    return render_template(template, refresh_ms=REFRESH_MS, auth=bool(engine.config.api_token),
                           timezone=engine.config.timezone, **context), status


@bp.get("/")
def live():
    return _page("board.html", title="Live board")


@bp.get("/day")
def day():
    raw = request.args.get("date")
    try:
        d = parse_date(raw) if raw else _today()
    except ValueError as exc:
        return _page("day.html", 400, title="Day", error=f"date: {exc}", day=None)
    return _page("day.html", title=f"Day {d.isoformat()}", day=d.isoformat(),
                 prev_day=(d - timedelta(days=1)).isoformat(), next_day=(d + timedelta(days=1)).isoformat(),
                 today=_today().isoformat())


@bp.route("/login", methods=["GET", "POST"])
def login():
    token = _engine().config.api_token
    target = _safe_next(request.values.get("next"))
    if not token:
        return redirect(target)
    if request.method == "GET":
        return _page("login.html", title="Sign in", next=target, error=None, login_page=True)
    given = request.form.get("token", "")
    if not given or not constant_time_equal(given, token):
        note_auth_failure("board-login")
        return _page("login.html", 401, title="Sign in", next=target, error="That is not the API token.",
                     login_page=True)
    value, max_age = session_value(token)
    resp = redirect(target)
    secure = request.is_secure or (_engine().config.server_public_url or "").startswith("https://")
    resp.set_cookie(SESSION_COOKIE, value, max_age=max_age, path="/", httponly=True, samesite="Strict", secure=secure)
    return resp


@bp.post("/logout")
def logout():
    resp = redirect(url_for("board.login") if _engine().config.api_token else url_for("board.live"))
    resp.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="Strict")
    return resp
