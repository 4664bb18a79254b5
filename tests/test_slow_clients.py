"""Slow clients against the real waitress server (#12 item 4), on loopback only, bounded in time.

1,100 connections that trickle header lines used to take every slot (waitress' 1,000
connections, select()'s 1,024 descriptors) while ``channel_timeout`` saw no silence, so
Twilio's signed POSTs timed out. Each test starts ``serve``'s own server in a thread,
holds its slow sockets for a few seconds, measures the signed POSTs, and stops everything.
"""

from __future__ import annotations

import resource
import socket
import threading
import time

import pytest
import requests

from adherence.auth import sign_json
from adherence.cli.core import build_server

from conftest import make_engine
from test_hardening import TOKEN, feed_body

pytestmark = pytest.mark.slow


class Running:
    """``serve``'s waitress server on 127.0.0.1 in a thread; stopped on exit, whatever happened."""

    def __init__(self, engine, **kw):
        self.server = build_server(engine.config, engine, "127.0.0.1", 0, 4, **kw)
        self.url = f"http://127.0.0.1:{int(self.server.effective_port)}"
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        from waitress import wasyncore

        self.server.task_dispatcher.shutdown(timeout=5)
        wasyncore.close_all(self.server._map)
        self.thread.join(timeout=10)


class Trickle:
    """``n`` connections that send a request line, then one header line every ``every`` seconds."""

    def __init__(self, port: int, n: int, every: float = 0.5):
        self.port, self.n, self.every = port, n, every
        self.socks: list[socket.socket] = []
        self.stop = threading.Event()
        self.dropped = 0

    def __enter__(self):
        for _ in range(self.n):
            s = socket.socket()
            s.settimeout(5)
            try:
                s.connect(("127.0.0.1", self.port))
                s.send(b"POST /webhooks/rta HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            except OSError:
                s.close()
                continue
            s.setblocking(False)
            self.socks.append(s)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self):
        while not self.stop.wait(self.every):
            for s in list(self.socks):
                try:
                    s.send(b"X-Slow: 1\r\n")
                except BlockingIOError:
                    pass
                except OSError:  # the server hung up on us
                    self.socks.remove(s)
                    self.dropped += 1
                    s.close()

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=10)
        for s in self.socks:
            s.close()


@pytest.fixture(autouse=True)
def _enough_descriptors():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, 8192) if hard != resource.RLIM_INFINITY else 8192
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture
def signed(workdir, clock):
    eng = make_engine(workdir, clock, auth={"twilio_auth_token": TOKEN})
    yield eng
    eng.close()


def signed_post(url: str, n: int) -> tuple[int, float]:
    body = feed_body(sid=f"EV{n:032d}")
    full, sig = sign_json(url + "/webhooks/rta", body, TOKEN)
    t0 = time.monotonic()
    resp = requests.post(full, data=body, timeout=8,
                         headers={"Content-Type": "application/json", "X-Twilio-Signature": sig})
    return resp.status_code, time.monotonic() - t0


def test_1100_slow_clients_do_not_starve_the_webhook(signed):
    with Running(signed) as srv, Trickle(int(srv.server.effective_port), 1100) as slow:
        time.sleep(1.5)  # every slow client connected and trickling
        assert len(slow.socks) >= 1000
        results = [signed_post(srv.url, n) for n in range(10)]
    statuses = [s for s, _ in results]
    latencies = sorted(t for _, t in results)
    assert statuses == [200] * 10, statuses
    assert latencies[-1] < 2.0, latencies  # measured: tens of milliseconds each


def test_slow_clients_beyond_the_connection_limit_are_cut_off_at_the_header_deadline(signed):
    from adherence.web.server import Limits

    limits = Limits(connection_limit=100, header_timeout=2, request_timeout=4)
    with Running(signed, limits=limits) as srv, Trickle(int(srv.server.effective_port), 150) as slow:
        time.sleep(0.5)
        status, latency = signed_post(srv.url, 1)  # queued behind 100 slow clients, then served
        deadline = time.monotonic() + 10
        while len(slow.socks) > 5 and time.monotonic() < deadline:
            time.sleep(0.2)  # the queued ones are accepted as slots free up, then cut in turn
    assert status == 200 and latency < 6, latency
    # every slow client was disconnected (none held on past its deadline); 5 of slack for in-flight ones
    assert slow.dropped >= 145, (slow.dropped, latency, len(slow.socks))


def test_a_silent_connection_is_closed_at_the_header_deadline(signed):
    from adherence.web.server import Limits

    with Running(signed, limits=Limits(header_timeout=1)) as srv:
        s = socket.create_connection(("127.0.0.1", int(srv.server.effective_port)), timeout=6)
        t0 = time.monotonic()
        assert s.recv(1) == b""  # closed by the server, not by our timeout
        assert time.monotonic() - t0 < 4
        s.close()


def test_waitress_own_errors_use_the_json_error_shape(signed):
    with Running(signed) as srv:
        limit = signed.config.max_body_bytes

        def chunks():
            for _ in range(limit // 65536 + 2):
                yield b"x" * 65536

        resp = requests.post(srv.url + "/webhooks/rta", data=chunks(), timeout=30,
                             headers={"Content-Type": "application/json"})
        assert resp.status_code == 413 and resp.headers["Content-Type"].startswith("application/json")
        assert resp.json() == {"ok": False, "error": f"request body too large (limit {limit} bytes)",
                               "errors": [f"request body too large (limit {limit} bytes)"], "status": 413}
        resp = requests.post(srv.url + "/webhooks/rta", data=b"x" * (limit + 10), timeout=30,
                             headers={"Content-Type": "application/json"})
        assert resp.status_code == 413 and resp.json()["status"] == 413
        resp = requests.get(srv.url + "/health", headers={"X-Big": "y" * 70_000}, timeout=30)
        assert resp.status_code == 431 and resp.json()["ok"] is False


@pytest.mark.parametrize("query", ["t=a%2Fb", "t=%7E", "t=caf%C3%A9", "t=%41"])
def test_signatures_over_escaped_queries_hold_through_the_real_server(signed, query):
    """Through waitress, not the test client: REQUEST_URI and QUERY_STRING as waitress fills them.
    http.client sends the URL byte for byte (requests would re-quote %7E and %41)."""
    import http.client

    from test_hardening import twilio_signed

    with Running(signed) as srv:
        port = int(srv.server.effective_port)
        body = feed_body()
        signed_url, sig = twilio_signed(f"http://127.0.0.1:{port}/webhooks/rta?{query}", body)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("POST", signed_url.split(f":{port}", 1)[1], body=body,
                         headers={"Content-Type": "application/json", "X-Twilio-Signature": sig})
            resp = conn.getresponse()
            assert resp.status == 200, resp.read()
            resp.read()
        finally:
            conn.close()
