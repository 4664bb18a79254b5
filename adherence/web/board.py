"""The web board: ``/`` (live, for a wall screen) and ``/day`` (a day's exceptions and adherence).

The pages are static shells; their JavaScript (``static/board.js``,
``static/day.js``, no framework, no CDN) reads ``/api`` every few seconds.
When ``auth.api_token`` is set, ``/login`` takes the token once and sets an
HttpOnly, SameSite=Strict session cookie derived from it by HMAC (see
``api.session_value``); the API accepts that cookie as well as Bearer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from datetime import date, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from flask import Blueprint, current_app, redirect, render_template, request, url_for

from ..auth import constant_time_equal
from ..metrics import METRICS
from ..timeutil import local_date, parse_date, zone
from ..access import Refused, principals
from .api import (SESSION_COOKIE, authorized, check_team, named_session_value, note_auth_failure, principal,
                  session_value)

bp = Blueprint("board", __name__)
log = logging.getLogger(__name__)

REFRESH_MS = 3000
# /day shows the day before and after: the last and first representable dates have no neighbour
FIRST_DAY, LAST_DAY = date.min + timedelta(days=1), date.max - timedelta(days=1)

# Sign-in failures allowed per client address in a window before /login answers 429. The API token is
# long and random, so a person mistyping it is never near the limit while a guesser is stopped cold.
LOGIN_FAILURES = 10
LOGIN_WINDOW_S = 15 * 60
LOGIN_TRACKED_ADDRESSES = 10_000  # memory bound: the oldest address is forgotten first


class LoginThrottle:
    """Failed sign-ins per client address over a sliding window, in memory (one process serves).

    Bounded: at most ``max_addresses`` addresses are remembered, so a spray from many addresses
    costs a fixed amount of memory (the oldest entries go; the throttle gets weaker, never bigger).
    """

    def __init__(self, limit: int = LOGIN_FAILURES, window_s: float = LOGIN_WINDOW_S,
                 max_addresses: int = LOGIN_TRACKED_ADDRESSES, clock=time.monotonic):
        self.limit = limit
        self.window_s = window_s
        self.max_addresses = max_addresses
        self.clock = clock
        self._lock = threading.Lock()
        self._failures: OrderedDict[str, list[float]] = OrderedDict()

    def _recent(self, address: str, now: float) -> list[float]:
        times = [t for t in self._failures.get(address, ()) if now - t < self.window_s]
        if times:
            self._failures[address] = times
        else:
            self._failures.pop(address, None)
        return times

    def retry_after(self, address: str) -> int:
        """Seconds until ``address`` may try again; 0 when it may try now."""
        with self._lock:
            now = self.clock()
            times = self._recent(address, now)
            if len(times) < self.limit:
                return 0
            return max(1, int(times[-self.limit] + self.window_s - now + 0.999))

    def failed(self, address: str) -> int:
        """Record a failure; the failures of ``address`` in the window."""
        with self._lock:
            now = self.clock()
            times = self._recent(address, now)
            times.append(now)
            self._failures[address] = times[-self.limit:]
            self._failures.move_to_end(address)
            while len(self._failures) > self.max_addresses:
                self._failures.popitem(last=False)
            return len(times)

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._failures.pop(address, None)


def login_throttle(app) -> LoginThrottle:
    throttle = app.extensions.get("adherence_login_throttle")
    if throttle is None:
        throttle = app.extensions.setdefault("adherence_login_throttle", LoginThrottle())
    return throttle

_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def _engine():
    return current_app.extensions["adherence"]


def _today() -> date:
    engine = _engine()
    return local_date(engine.clock.now_ms(), zone(engine.config.timezone))


def _safe_next(target: str | None) -> str:
    """Only same-site paths: never redirect a logged-in user elsewhere.

    Browsers drop tabs and newlines inside a URL and read ``\\`` as ``/``, so ``/\t/evil.com``
    arrives as ``//evil.com`` (another site); a newline in a header is also a 500. Anything but
    printable ASCII without a backslash is refused outright, then the rest must parse as a path
    with neither scheme nor host.
    """
    home = url_for("board.live")
    if not target or len(target) > 2000:
        return home
    if any(not ("!" <= ch <= "~") for ch in target) or "\\" in target:
        return home
    if not target.startswith("/") or target.startswith("//"):
        return home
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/") or parts.path.startswith("//"):
        return home
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
    return render_template(template, refresh_ms=REFRESH_MS, auth=engine.config.auth_enabled,
                           timezone=engine.config.timezone, **context), status


CARDS_UP_TO = 300  # beyond this many agents the board opens in table mode (cards stay one click away)


@bp.get("/")
def live():
    view = request.args.get("view")
    if view not in ("cards", "table"):
        sched = _engine().schedules.current
        view = "table" if sched is not None and len(sched.agents) > CARDS_UP_TO else "cards"
    if view == "table":
        return _page("table.html", title="Live board")
    return _page("board.html", title="Live board")


@bp.get("/day")
def day():
    raw = request.args.get("date")
    try:
        d = parse_date(raw) if raw else _today()
    except ValueError as exc:
        return _page("day.html", 400, title="Day", error=f"date: {exc}", day=None)
    if not FIRST_DAY <= d <= LAST_DAY:
        return _page("day.html", 400, title="Day", day=None,
                     error=f"date: expected a day between {FIRST_DAY.isoformat()} and {LAST_DAY.isoformat()}")
    return _page("day.html", title=f"Day {d.isoformat()}", day=d.isoformat(),
                 prev_day=(d - timedelta(days=1)).isoformat(), next_day=(d + timedelta(days=1)).isoformat(),
                 today=_today().isoformat())


TL_WIDTH = 1000  # SVG units of the time axis
TL_LABEL = 130
TL_ROW = 34


def _timeline_rows(t: dict) -> dict:
    """Geometry of the agent's day for the server-rendered SVG: each item a rectangle with its exact times."""
    from ..timeline import local_text
    from ..timeutil import parse_instant_ms as ms

    tz = ZoneInfo(t["timezone"])
    w0, w1 = ms(t["start"]), ms(t["end"])
    now = ms(t["as_of"])
    scale = TL_WIDTH / max(1, w1 - w0)

    def x(v: int) -> float:
        return round(TL_LABEL + (min(max(v, w0), w1) - w0) * scale, 2)

    def item(start: str, end: str | None, cls: str, text: str) -> dict:
        a, b = ms(start), (ms(end) if end else now)
        off_a, off_b = _offset(a, tz), _offset(b, tz)
        times = f"{local_text(a, tz)} (UTC{off_a}) – " + ("open" if not end else f"{local_text(b, tz)} (UTC{off_b})")
        return {"x": x(a), "w": max(1.0, round(x(b) - x(a), 2)), "cls": cls, "label": f"{text}: {times}"}

    def slug(v: str) -> str:
        return "".join(c if c.isalnum() else "-" for c in v.lower())

    rows = [
        ("Scheduled", [item(s["start"], s["end"], "tl-sched act-" + slug(s["activity"]), s["activity"])
                       for s in t["scheduled"]]),
        ("Activity", [item(s["start"], s["end"], "tl-act" + (" tl-out" if s["activity"] in ("Offline", "Unknown") else "")
                           + " act-" + slug(s["activity"]), s["activity"]) for s in t["activity"]]),
        ("Task", [item(s["start"], s["end"], "tl-task task-" + s["task_state"], "task " + s["task_state"])
                  for s in t["task"] if s["task_state"] != "none"]),
        ("Exceptions", [item(e["start"], e["end"],
                             "tl-exc sev-" + e["severity"] + (" approved" if e["approved"] or e.get("excused_by") else "")
                             + (" neutral" if e.get("impact") == "neutral" else ""),
                             f"#{e['id']} {e['rule']} ({e['severity']}, "
                             + ("approved" if e["approved"] else "excused by a period" if e.get("excused_by")
                                else "not approved") + (", neutral" if e.get("impact") == "neutral" else "") + ")")
                        for e in t["exceptions"]]),
        ("Period approvals", [item(p["start"], p["end"], "tl-period" + (" withdrawn" if p["withdrawn"] else ""),
                                   f"#{p['id']} {p['reason']} ({p['mode']}{', withdrawn' if p['withdrawn'] else ''})")
                              for p in t["periods"]]),
    ]
    ticks = [{"x": x(ms(k["at"])), "label": k["label"]} for k in t["ticks"]]
    height = TL_ROW * len(rows) + 40
    return {"rows": [{"label": label, "y": 24 + i * TL_ROW, "items": items} for i, (label, items) in enumerate(rows)],
            "ticks": ticks, "width": TL_LABEL + TL_WIDTH + 24, "height": height, "row_h": TL_ROW - 10,
            "now_x": x(now) if w0 < now < w1 else None, "axis_y": height - 8}


def _offset(v: int, tz) -> str:
    from ..timeline import offset_text

    return offset_text(v, tz)


@bp.get("/agents/<agent>")
def agent_page(agent: str):
    """An agent's day drawn on one axis (server-rendered SVG: works without script and under the CSP)."""
    from ..errors import NotFound
    from ..queries import _resolve_agent
    from ..timeline import agent_day

    engine = _engine()
    raw = request.args.get("date")
    try:
        d = parse_date(raw) if raw else _today()
        if not 1970 <= d.year <= 9998:
            raise ValueError("expected a day between 1970-01-01 and 9998-12-31")
    except ValueError as exc:
        return _page("agent.html", 400, title="Agent", error=f"date: {exc}", t=None)
    try:
        sid = _resolve_agent(engine, agent)
    except NotFound as exc:
        return _page("agent.html", 404, title="Agent", error=str(exc), t=None)
    try:
        check_team(engine.runner.agent_info(sid)[1], f"agent {agent!r}")
    except Refused as exc:
        return _page("agent.html", 403, title="Agent", error=str(exc), t=None)
    t = agent_day(engine, sid, d)
    return _page("agent.html", title=f"{t['name']} · {t['date']}", t=t, g=_timeline_rows(t), n=_alerts(engine, sid, t),
                 prev_day=(d - timedelta(days=1)).isoformat(), next_day=(d + timedelta(days=1)).isoformat())


def _alerts(engine, sid: str, t: dict) -> dict:
    """The agent page's notification state: the agent's snooze, each exception's acknowledgement and snooze,
    and whether this caller is offered the controls (a role that may write; the page is already refused
    outside the caller's teams, and the API checks both again)."""
    from ..timeline import local_text
    from ..timeutil import parse_instant_ms

    notifier = getattr(engine, "notifier", None)
    who = principal()
    out = {"configured": notifier is not None, "can_write": bool(notifier is not None and who is not None
                                                                   and who.can_write),
           "snooze": None, "exceptions": {}}
    if notifier is None:
        return out
    tz = ZoneInfo(t["timezone"])
    agents, excs = notifier.state(day=t["date"], agent_info=engine.runner.agent_info)

    def until(text: str) -> str:
        ms = parse_instant_ms(text)
        return f"{local_text(ms, tz, seconds=False)} (UTC{_offset(ms, tz)})" + (
            "" if local_date(ms, tz).isoformat() == t["date"] else f" on {local_date(ms, tz).isoformat()}")

    for a in agents:
        if a["worker_sid"] == sid:
            out["snooze"] = {"until": until(a["until"]), "by": a["by"]}
    for e in excs:
        if e["worker_sid"] == sid:
            out["exceptions"][e["exception_id"]] = {
                **e, "snoozed_until": until(e["snoozed_until"]) if e["snoozed_until"] else None}
    return out


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Any configured token signs in (auth.api_token or a named one); the session carries which."""
    config = _engine().config
    target = _safe_next(request.values.get("next"))
    if not config.auth_enabled:
        return redirect(target)
    if request.method == "GET":
        return _page("login.html", title="Sign in", next=target, error=None, login_page=True)
    throttle = login_throttle(current_app)
    address = request.remote_addr or "unknown"
    wait = throttle.retry_after(address)
    if wait:
        # refused before the token is even compared: a guesser learns nothing more while throttled
        METRICS.inc("adherence_login_throttled_total")
        log.warning("sign-in throttled: too many failures", extra={
            "event": "login_throttled", "remote": address, "retry_after": wait})
        body, status = _page("login.html", 429, title="Sign in", next=target, login_page=True,
                             error=f"Too many failed sign-ins from your address. Try again in {wait} s.")
        return body, status, {"Retry-After": str(wait)}
    given = request.form.get("token", "")
    match = None
    for token, who in principals(config):  # every token compared: the time does not say which matched
        if given and constant_time_equal(given, token) and match is None:
            match = (token, who)
    if match is None:
        failures = throttle.failed(address)
        note_auth_failure("board-login")
        log.warning("sign-in failed", extra={"event": "login_failed", "remote": address, "failures": failures})
        return _page("login.html", 401, title="Sign in", next=target, error="That is not the API token.",
                     login_page=True)
    throttle.succeeded(address)
    token, who = match
    value, max_age = named_session_value(who.name, token) if who.named else session_value(token)
    resp = redirect(target)
    secure = request.is_secure or (_engine().config.server_public_url or "").startswith("https://")
    resp.set_cookie(SESSION_COOKIE, value, max_age=max_age, path="/", httponly=True, samesite="Strict", secure=secure)
    return resp


@bp.post("/logout")
def logout():
    resp = redirect(url_for("board.login") if _engine().config.auth_enabled else url_for("board.live"))
    resp.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="Strict")
    return resp
