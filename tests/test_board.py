"""The board pages over the Flask test client: pages, assets, login and cookie, security headers.

What the pages *do* in a browser is proven by tests/test_browser.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from adherence.web.api import SESSION_COOKIE

from test_api import DAY, TOKEN, build_center, make_folder

WEB = Path(__file__).resolve().parent.parent / "adherence" / "web"


@pytest.fixture
def center(tmp_path):
    c = build_center(make_folder(tmp_path))
    yield c
    c.engine.close()


@pytest.fixture
def guarded(tmp_path, monkeypatch):
    monkeypatch.setenv("ADHERENCE_API_TOKEN", TOKEN)
    c = build_center(make_folder(tmp_path, api_token=TOKEN))
    yield c
    c.engine.close()


def assets(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="(/static/[^"]+)"', html)


def test_live_board_page(center):
    resp = center.client.get("/")
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    html = resp.get_data(as_text=True)
    for needle in ('id="teams"', 'id="open-exceptions"', 'id="team-filter"', 'id="out-filter"',
                   "Only out of adherence", 'data-refresh="3000"'):
        assert needle in html
    found = assets(html)
    assert set(found) == {"/static/board.css", "/static/favicon.svg", "/static/common.js", "/static/notify.js",
                          "/static/board.js"}
    for path in found:
        asset = center.client.get(path)
        assert asset.status_code == 200 and asset.data
        asset.close()


def test_security_headers(center):
    resp = center.client.get("/")
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Cache-Control"] == "no-store"


def test_day_page(center):
    resp = center.client.get(f"/day?date={DAY}")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert f'data-date="{DAY}"' in html
    assert f'href="/api/exceptions?date={DAY}&amp;format=csv"' in html
    assert f'href="/api/adherence?date={DAY}&amp;format=csv"' in html
    assert "group=team" in html and 'id="team-chart"' in html and 'id="approval-dialog"' in html
    assert 'href="/day?date=2026-11-23"' in html and 'href="/day?date=2026-11-25"' in html
    assert set(assets(html)) == {"/static/board.css", "/static/favicon.svg", "/static/common.js", "/static/notify.js",
                                    "/static/day.js"}
    # the CSV links really serve CSV with the fixed headers
    csv = center.client.get(f"/api/exceptions?date={DAY}&format=csv").get_data(as_text=True)
    assert csv.startswith("id,agent,worker_sid,team,rule,severity,")


def test_day_page_defaults_to_today_in_the_configured_zone(center):
    html = center.client.get("/day").get_data(as_text=True)
    assert f'data-date="{DAY}"' in html and f'data-today="{DAY}"' in html


def test_day_page_bad_date_is_a_400_page(center):
    resp = center.client.get("/day?date=2026-02-30")
    assert resp.status_code == 400 and resp.mimetype == "text/html"
    html = resp.get_data(as_text=True)
    assert "date: expected a date as YYYY-MM-DD" in html and "day.js" not in html


def test_values_are_escaped_in_pages(center):
    html = center.client.get('/day?date=<script>alert(1)</script>').get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html


def test_no_external_assets_anywhere():
    """Everything works offline: no CDN, no external URL in templates, scripts or styles."""
    files = list((WEB / "templates").glob("*.html")) + list((WEB / "static").glob("*"))
    assert len(files) >= 8
    for f in files:
        text = f.read_text()
        urls = re.findall(r"https?://[^\s\"')]+", text)
        assert set(urls) <= {"http://www.w3.org/2000/svg"}, (f.name, urls)
        assert "innerHTML" not in text, f"{f.name}: API values must go in as text"


def test_no_auth_means_no_login(center):
    assert center.client.get("/login").status_code == 302
    assert "Sign out" not in center.client.get("/").get_data(as_text=True)


# -- with a token ---------------------------------------------------------------------


def test_board_redirects_to_login(guarded):
    resp = guarded.client.get("/day?date=2026-11-24")
    assert resp.status_code == 302
    assert resp.headers["Location"] == "/login?next=/day?date%3D2026-11-24"
    login = guarded.client.get(resp.headers["Location"])
    assert login.status_code == 200 and 'type="password"' in login.get_data(as_text=True)
    assert 'value="/day?date=2026-11-24"' in login.get_data(as_text=True)


def test_login_sets_a_strict_httponly_cookie_derived_from_the_token(guarded):
    resp = guarded.client.post("/login", data={"token": TOKEN, "next": "/day?date=2026-11-24"})
    assert resp.status_code == 302 and resp.headers["Location"] == "/day?date=2026-11-24"
    set_cookie = resp.headers["Set-Cookie"]
    assert set_cookie.startswith(SESSION_COOKIE + "=")
    assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie and "Path=/" in set_cookie
    assert "Max-Age=" in set_cookie and "Secure" not in set_cookie  # plain http in this test
    assert TOKEN not in set_cookie
    assert guarded.client.get("/").status_code == 200
    assert guarded.client.get("/day").status_code == 200
    assert "Sign out" in guarded.client.get("/").get_data(as_text=True)


def test_cookie_is_secure_behind_https(guarded):
    resp = guarded.client.post("/login", data={"token": TOKEN}, base_url="https://board.example")
    assert "Secure" in resp.headers["Set-Cookie"]


def test_wrong_token_is_refused(guarded):
    resp = guarded.client.post("/login", data={"token": "guess"})
    assert resp.status_code == 401 and "That is not the API token." in resp.get_data(as_text=True)
    assert "Set-Cookie" not in resp.headers
    assert guarded.client.post("/login", data={}).status_code == 401
    assert guarded.client.get("/").status_code == 302


def test_bearer_also_opens_the_board(guarded):
    assert guarded.client.get("/", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "javascript:alert(1)", "/\\evil"])
def test_login_never_redirects_off_site(guarded, target):
    resp = guarded.client.post("/login", data={"token": TOKEN, "next": target})
    assert resp.status_code == 302 and resp.headers["Location"] == "/"


def test_logout_clears_the_cookie(guarded):
    guarded.client.post("/login", data={"token": TOKEN})
    resp = guarded.client.post("/logout")
    assert resp.status_code == 302 and resp.headers["Location"] == "/login"
    assert guarded.client.get_cookie(SESSION_COOKIE) is None
    assert guarded.client.get("/").status_code == 302
    assert guarded.client.get("/api/agents").status_code == 401


def test_static_assets_need_no_login(guarded):
    """They hold no data, and the login page itself needs the stylesheet."""
    resp = guarded.client.get("/static/board.css")
    assert resp.status_code == 200
    resp.close()
