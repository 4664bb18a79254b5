"""``serve`` with front processes: more processes take HTTP, one process owns the journal and live state.

One Python process answers webhooks at about half the rate of a bare Flask endpoint: the
journal write and live state share the interpreter lock with waitress and Flask. With
``server.front_processes: N`` the service runs as N + 1 processes:

* this process (the *owner*) binds the public port, keeps the journal, live state, the
  scheduler and every read, as ``serve`` always does, and starts the fronts;
* each *front* (``front.py``) accepts connections on that same listening socket. A webhook
  is authenticated there and its body forwarded to the owner over a Unix socket (the
  *link*); the owner journals it and sends back the answer, which the front relays: the
  client gets its 2xx only once its records are committed, as before. Every other request
  (board, API, /health, /metrics) is relayed as it is to the owner's own HTTP server on a
  second Unix socket.

There is still one writer and one owner of state and scheduler: the fronts hold neither. The
sockets live in a private directory (mode 0700) that the owner removes on stop. The owner
restarts a front that exits, and a front stops when the owner is gone.

Frames on the link (network byte order):

* front -> owner: ``!BIHH`` kind, body length, content-type length, remote-address length,
  then those three byte strings. Kinds 1-3 are the receivers; kind 9 carries the front's
  counts (refusals, request durations) as JSON, with no answer.
* owner -> front: ``!HHI`` status, headers length, body length, then headers (JSON) and body.
"""

from __future__ import annotations

import io
import json
import logging
import os
import selectors
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time

from werkzeug.wrappers import Request

from ..metrics import METRICS
from . import receive

log = logging.getLogger(__name__)

REQUEST = struct.Struct("!BIHH")
REPLY = struct.Struct("!HHI")
KINDS = {"rta": 1, "taskrouter": 2, "events": 3}
NAMES = {v: k for k, v in KINDS.items()}
STATS = 9
RESTART_DELAY_S = 1.0
FRAME_TIMEOUT_S = 5.0  # a front that stops halfway through a frame is cut off after this


def recv_exact(sock: socket.socket, n: int) -> bytes:
    """Exactly ``n`` bytes from ``sock``; EOFError when the peer closed first."""
    if n == 0:
        return b""
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            raise EOFError("link closed")
        got += k
    return bytes(buf)


def pack_reply(reply: receive.Reply) -> bytes:
    headers = dict(reply.headers)
    headers["Content-Type"] = reply.content_type
    h = json.dumps(headers, separators=(",", ":")).encode()
    return REPLY.pack(reply.status, len(h), len(reply.body)) + h + reply.body


def listening_socket(host: str, port: int, backlog: int) -> socket.socket:
    """The public socket, bound and listening, for the fronts to share (they inherit it)."""
    family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                     flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(addr)
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class Owner:
    """The owner's side: the link listener, its internal HTTP server, and the fronts it keeps running."""

    def __init__(self, engine, app, *, sock: socket.socket, processes: int, threads: int, log_format: str):
        self.engine = engine
        self.app = app
        self.sock = sock
        self.processes = processes
        self.threads = threads
        self.log_format = log_format
        self.folder = tempfile.mkdtemp(prefix="adherence-serve-")
        os.chmod(self.folder, 0o700)
        self.link_path = os.path.join(self.folder, "link.sock")
        self.http_path = os.path.join(self.folder, "http.sock")
        self.stopping = threading.Event()
        self.fronts: list[subprocess.Popen | None] = [None] * processes
        self.restarts = 0
        self._link: socket.socket | None = None
        self._http = None
        self._lock = threading.Lock()

    # -- start and stop ---------------------------------------------------------------------------
    def start(self) -> None:
        from waitress import create_server

        self._link = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._link.bind(self.link_path)
        os.chmod(self.link_path, 0o600)
        self._link.listen(256)
        threading.Thread(target=self._accept_links, name="adherence-link", daemon=True).start()
        cfg = self.engine.config
        # the fronts relay the client's address and scheme; only they can reach this socket
        self._http = create_server(
            self.app, unix_socket=self.http_path, unix_socket_perms="600", threads=self.threads,
            ident="adherence", max_request_body_size=cfg.max_body_bytes, channel_timeout=60,
            trusted_proxy="localhost", trusted_proxy_count=1,
            trusted_proxy_headers={"x-forwarded-for", "x-forwarded-proto"}, clear_untrusted_proxy_headers=True,
        )
        threading.Thread(target=self._http.run, name="adherence-internal-http", daemon=True).start()
        for i in range(self.processes):
            self.fronts[i] = self._spawn(i)
        self.engine.fronts = self.status

    def run(self) -> None:
        """Keep the fronts running until ``stop`` (or SIGTERM / Ctrl-C in the main thread)."""
        while not self.stopping.wait(0.5):
            for i, proc in enumerate(self.fronts):
                if proc is not None and proc.poll() is not None and not self.stopping.is_set():
                    log.error("front process %d (pid %d) exited with %s; starting it again", i, proc.pid,
                              proc.returncode, extra={"event": "front_exited"})
                    self.restarts += 1
                    METRICS.inc("adherence_front_restarts_total")
                    if self.stopping.wait(RESTART_DELAY_S):
                        break
                    self.fronts[i] = self._spawn(i)

    def stop(self) -> None:
        self.stopping.set()
        for proc in self.fronts:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in self.fronts:
            if proc is None:
                continue
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._link is not None:
            self._link.close()
        if self._http is not None:
            self._http.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def status(self) -> dict:
        running = sum(1 for p in self.fronts if p is not None and p.poll() is None)
        return {"configured": self.processes, "running": running, "restarts": self.restarts}

    def _spawn(self, index: int) -> subprocess.Popen:
        cfg = self.engine.config
        basic = cfg.webhook_basic
        settings = {
            "index": index,
            "owner_pid": os.getpid(),
            "link": self.link_path,
            "http": self.http_path,
            "threads": self.threads,
            "max_body_bytes": cfg.max_body_bytes,
            "log_level": cfg.log_level,
            "log_format": self.log_format,
            "public_url": cfg.server_public_url,
            # secrets go through a pipe: never on a command line or in a file
            "twilio_auth_token": cfg.twilio_auth_token,
            "webhook_basic": [basic.username, basic.password] if basic is not None else None,
        }
        r, w = os.pipe()
        try:
            os.write(w, json.dumps(settings).encode())
        finally:
            os.close(w)
        try:
            return subprocess.Popen(
                [sys.executable, "-m", "adherence.web.front", "--listen-fd", str(self.sock.fileno()),
                 "--settings-fd", str(r)],
                pass_fds=(self.sock.fileno(), r), close_fds=True,
            )
        finally:
            os.close(r)

    # -- the link -----------------------------------------------------------------------------------
    def _accept_links(self) -> None:
        """One thread serves every front's connections, a frame at a time.

        One thread rather than one per connection: the journal has one writer anyway, and
        threads taking turns at it cost more (lock hand-offs, the interpreter lock passed back
        and forth) than the writes themselves. A front sends a frame in one go; one that stops
        halfway through a frame is cut off after FRAME_TIMEOUT_S rather than holding the rest.
        """
        sel = selectors.DefaultSelector()
        sel.register(self._link, selectors.EVENT_READ, None)
        try:
            while not self.stopping.is_set():
                for key, _ in sel.select(timeout=0.5):
                    if key.data is None:
                        try:
                            conn, _ = self._link.accept()
                        except OSError:
                            if self.stopping.is_set():
                                return
                            continue
                        sel.register(conn, selectors.EVENT_READ, True)
                        continue
                    conn = key.fileobj
                    if not self._serve_frame(conn):
                        sel.unregister(conn)
                        conn.close()
        except (OSError, ValueError):
            if not self.stopping.is_set():
                log.exception("link listener stopped")
        finally:
            sel.close()

    def _serve_frame(self, conn: socket.socket) -> bool:
        """Read one frame from ``conn`` and answer it; False when the connection is done with."""
        limit = self.engine.config.max_body_bytes + 1024
        conn.settimeout(FRAME_TIMEOUT_S)
        try:
            kind, blen, clen, rlen = REQUEST.unpack(recv_exact(conn, REQUEST.size))
            if blen > limit or (kind not in NAMES and kind != STATS):
                log.error("link: malformed frame (kind %d, %d bytes); closing", kind, blen)
                return False
            data = recv_exact(conn, clen + rlen + blen)
            ctype = data[:clen].decode("latin-1")
            remote = data[clen:clen + rlen].decode("latin-1")
            body = data[clen + rlen:]
            if kind == STATS:
                self._merge_stats(body)
                return True
            conn.sendall(pack_reply(self.answer(NAMES[kind], body, ctype, remote)))
            return True
        except (EOFError, OSError):
            return False

    def answer(self, name: str, body: bytes, content_type: str, remote: str) -> receive.Reply:
        """Journal a body a front authenticated; the answer, as the Flask view would give it."""
        environ = {
            "REQUEST_METHOD": "POST", "PATH_INFO": "/webhooks/" + name, "SERVER_NAME": "owner",
            "SERVER_PORT": "0", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
            "CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": content_type, "REMOTE_ADDR": remote or None,
        }
        try:
            return receive.receive(self.engine, name, Request(environ))
        except sqlite3.Error as exc:
            log.error("database error: %s", exc, extra={"event": "database_error", "path": environ["PATH_INFO"]})
            return receive.error_reply(503, "the database is unavailable; retry later", headers={"Retry-After": "5"})
        except Exception:
            log.exception("unhandled error")
            return receive.error_reply(500, "internal error (see the server log)")

    def _merge_stats(self, body: bytes) -> None:
        try:
            stats = json.loads(body)
            for status, n in stats.get("refused", {}).items():
                receive.count_refusal(int(status), int(n))
            for d in stats.get("durations", ()):
                METRICS.observe("adherence_webhook_duration_seconds", float(d))
        except (ValueError, TypeError, AttributeError) as exc:
            log.error("link: unreadable counts from a front: %s", exc)


def run_with_fronts(config, engine, *, host: str, port: int, threads: int, processes: int, log_format: str,
                    on_listening) -> None:
    """``serve`` as an owner and ``processes`` fronts, until SIGTERM or Ctrl-C."""
    from . import create_app
    from .server import Limits

    sock = listening_socket(host, port, Limits().backlog)
    owner = Owner(engine, create_app(engine=engine), sock=sock, processes=processes, threads=threads,
                  log_format=log_format)

    def _stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _stop)
    try:
        owner.start()
        on_listening(sock.getsockname()[1])
        owner.run()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        owner.stop()
        sock.close()
