"""A front process of ``serve`` (``server.front_processes``): HTTP in, webhooks to the owner.

Started by the owner (``link.Owner``) with the public listening socket and its settings
(through a pipe: the secrets never appear on a command line). It runs the same waitress
server and limits as a one-process ``serve``. A webhook is authenticated here (the request
as the client sent it) and its body forwarded over the link; the owner's answer is relayed
as it is. Every other request goes, as it is, to the owner's HTTP server (its Unix socket),
with the client's address and scheme in ``X-Forwarded-For`` / ``X-Forwarded-Proto``
(waitress removed any such headers the client sent).

Run as ``python -m adherence.web.front --listen-fd N --settings-fd M`` by the owner only.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from types import SimpleNamespace

from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wrappers import Request

from . import receive
from .link import KINDS, REPLY, REQUEST, STATS, recv_exact

log = logging.getLogger("adherence.web.front")

# headers that concern one connection, never relayed (RFC 9110 7.6.1); waitress refuses them from an app
HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                 "trailers", "transfer-encoding", "upgrade", "proxy-connection"})
PROXY_TIMEOUT_S = 300.0  # a long export or report may take minutes to produce
UNAVAILABLE = receive.error_reply(503, "the service is restarting; retry shortly", headers={"Retry-After": "1"})


def _status_line(code: int) -> str:
    return f"{code} {HTTP_STATUS_CODES.get(code, 'Unknown')}"


class Link:
    """This front's connections to the owner: one per thread, each used for one exchange at a time."""

    def __init__(self, path: str):
        self.path = path
        self._local = threading.local()

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(self.path)
        return sock

    def call(self, kind: int, body: bytes, content_type: str, remote: str) -> receive.Reply:
        ctype, addr = content_type.encode("latin-1", "replace")[:2000], remote.encode("latin-1", "replace")[:200]
        frame = REQUEST.pack(kind, len(body), len(ctype), len(addr)) + ctype + addr + body
        sock = getattr(self._local, "sock", None)
        fresh = sock is None
        for _ in range(2):
            if sock is None:
                sock = self._local.sock = self._connect()
            try:
                sock.sendall(frame)
                status, hlen, blen = REPLY.unpack(recv_exact(sock, REPLY.size))
                data = recv_exact(sock, hlen + blen)
            except (OSError, EOFError):
                sock.close()
                sock = self._local.sock = None
                if fresh:
                    raise ConnectionError("the owner process does not answer") from None
                # a connection kept from an earlier request may have been closed by an owner restart:
                # one more try on a new one (a record journaled twice is a duplicate, nothing more)
                fresh = True
                continue
            headers = json.loads(data[:hlen])
            return receive.Reply(status, data[hlen:], headers, headers.pop("Content-Type", "application/json"))
        raise ConnectionError("the owner process does not answer")

    def send_stats(self, payload: bytes) -> None:
        sock = getattr(self._local, "sock", None) or self._connect()
        self._local.sock = sock
        try:
            sock.sendall(REQUEST.pack(STATS, len(payload), 0, 0) + payload)
        except OSError:
            sock.close()
            self._local.sock = None
            raise


class Stats:
    """What the owner's /metrics must count although it happened here: refusals and request durations."""

    def __init__(self):
        self._lock = threading.Lock()
        self.refused: dict[str, int] = {}
        self.durations: list[float] = []

    def refuse(self, status: int) -> None:
        with self._lock:
            self.refused[str(status)] = self.refused.get(str(status), 0) + 1

    def observe(self, seconds: float) -> None:
        with self._lock:
            self.durations.append(seconds)

    def take(self) -> bytes | None:
        with self._lock:
            if not self.refused and not self.durations:
                return None
            payload = {"refused": self.refused, "durations": [round(d, 6) for d in self.durations]}
            self.refused, self.durations = {}, []
        return json.dumps(payload, separators=(",", ":")).encode()


class FrontApp:
    """The WSGI app of a front: webhooks over the link, everything else relayed to the owner."""

    def __init__(self, settings: dict):
        basic = settings.get("webhook_basic")
        self.cfg = SimpleNamespace(
            webhook_basic=SimpleNamespace(username=basic[0], password=basic[1]) if basic else None,
            twilio_auth_token=settings.get("twilio_auth_token"),
            server_public_url=settings.get("public_url"),
        )
        self.link = Link(settings["link"])
        self.http_path = settings["http"]
        self.stats = Stats()

    def __call__(self, environ, start_response):
        name = receive.RECEIVERS.get(environ.get("PATH_INFO", ""))
        if name is None or environ.get("REQUEST_METHOD") != "POST":
            return self.relay(environ, start_response)
        started = time.perf_counter()
        req = Request(environ)
        refusal = receive.authenticate(self.cfg, req)
        if refusal is not None:
            receive.log_refusal(refusal, req.remote_addr)
            self.stats.refuse(refusal.status)
            reply = refusal.reply()
        else:
            try:
                reply = self.link.call(KINDS[name], req.get_data(cache=True), req.content_type or "",
                                       req.remote_addr or "")
            except ConnectionError:
                log.error("webhook not stored: the owner process does not answer", extra={"event": "link_down"})
                reply = UNAVAILABLE
        self.stats.observe(time.perf_counter() - started)
        headers = [("Content-Type", reply.content_type), *reply.headers.items()]
        if reply.status != 204:
            headers.append(("Content-Length", str(len(reply.body))))
        start_response(_status_line(reply.status), headers)
        return [reply.body]

    # -- everything but webhooks --------------------------------------------------------------------
    def relay(self, environ, start_response):
        conn = _UnixHTTPConnection(self.http_path, PROXY_TIMEOUT_S)
        try:
            target = environ.get("REQUEST_URI") or _target(environ)
            headers = _request_headers(environ)
            length = environ.get("CONTENT_LENGTH")
            body = environ["wsgi.input"].read(int(length)) if length and length.isdigit() and int(length) else None
            conn.request(environ["REQUEST_METHOD"], target, body=body, headers=headers)
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            log.error("could not relay %s %s to the owner process: %s", environ.get("REQUEST_METHOD"),
                      environ.get("PATH_INFO"), exc, extra={"event": "relay_failed"})
            headers = [("Content-Type", UNAVAILABLE.content_type), *UNAVAILABLE.headers.items(),
                       ("Content-Length", str(len(UNAVAILABLE.body)))]
            start_response(_status_line(503), headers)
            return [UNAVAILABLE.body]
        start_response(f"{resp.status} {resp.reason}",
                       [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP])
        return _Body(resp, conn)


class _Body:
    """The owner's response body, streamed as it comes (a CSV export is not held in memory)."""

    def __init__(self, resp, conn):
        self.resp, self.conn = resp, conn

    def __iter__(self):
        while True:
            chunk = self.resp.read1(256 * 1024)
            if not chunk:
                return
            yield chunk

    def close(self):
        self.conn.close()


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def _target(environ) -> str:
    from urllib.parse import quote

    path = quote(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""), safe="/!$&'()*+,;=:@%")
    query = environ.get("QUERY_STRING")
    return path + ("?" + query if query else "")


def _request_headers(environ) -> dict[str, str]:
    headers: dict[str, str] = {}
    connection = {t.strip().lower() for t in environ.get("HTTP_CONNECTION", "").split(",") if t.strip()}
    for key, value in environ.items():
        if not key.startswith("HTTP_"):
            continue
        name = key[5:].replace("_", "-").lower()
        if name in HOP or name in connection or name.startswith("x-forwarded-"):
            continue
        headers[name.title()] = value
    if environ.get("CONTENT_TYPE"):
        headers["Content-Type"] = environ["CONTENT_TYPE"]
    if "Host" not in headers:
        headers["Host"] = f"{environ.get('SERVER_NAME', 'localhost')}:{environ.get('SERVER_PORT', '80')}"
    headers["X-Forwarded-For"] = environ.get("REMOTE_ADDR") or "unknown"
    headers["X-Forwarded-Proto"] = environ.get("wsgi.url_scheme", "http")
    return headers


def _report(app: FrontApp, stop: threading.Event) -> None:
    """Every second: this front's counts to the owner's /metrics."""
    link = Link(app.link.path)
    while not stop.wait(1.0):
        payload = app.stats.take()
        if payload is not None:
            try:
                link.send_stats(payload)
            except OSError:
                pass  # the owner is restarting or gone; the watchdog decides


def _watch_owner(owner_pid: int, stop: threading.Event) -> None:
    """Stop this front when the owner is gone (it would only answer 503 from then on)."""
    while not stop.wait(1.0):
        if os.getppid() != owner_pid:
            log.error("the owner process %d is gone; this front stops", owner_pid)
            os.kill(os.getpid(), signal.SIGTERM)
            return


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m adherence.web.front")
    ap.add_argument("--listen-fd", type=int, required=True)
    ap.add_argument("--settings-fd", type=int, required=True)
    args = ap.parse_args(argv)
    with os.fdopen(args.settings_fd, "rb") as f:
        settings = json.loads(f.read())
    from .. import logs
    from .server import make_server

    logs.setup(settings.get("log_level", "INFO"), settings.get("log_format", "text"))
    sock = socket.socket(fileno=args.listen_fd)
    app = FrontApp(settings)
    server = make_server(app, sock=sock, threads=settings["threads"], max_body_bytes=settings["max_body_bytes"])
    stop = threading.Event()

    def _stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _stop)
    threading.Thread(target=_report, args=(app, stop), name="front-report", daemon=True).start()
    threading.Thread(target=_watch_owner, args=(settings["owner_pid"], stop), name="front-watch", daemon=True).start()
    try:
        server.run()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        stop.set()
        server.close()
        payload = app.stats.take()  # the last second's counts
        if payload is not None:
            try:
                Link(app.link.path).send_stats(payload)
            except OSError:
                pass


if __name__ == "__main__":
    main(sys.argv[1:])
