"""The waitress server ``serve`` runs, with deliberate limits against slow and hostile clients.

Waitress alone counts only silence (``channel_timeout``): a client that sends one
header line every few seconds holds its connection forever, and 1,000 of them
(waitress' default ``connection_limit``, bounded by ``select()``'s 1,024 file
descriptors) stop it accepting anyone else, Twilio included. Here:

* connections are watched with ``poll()``, so the limit can be well above 1,024;
* a request's line and headers must arrive within ``header_timeout`` of its first
  byte (or of the connection opening), the whole request within ``request_timeout``;
  a client that is slower is disconnected, so a slot held by a slow client is
  freed within seconds even when every slot is taken;
* errors waitress answers itself (body over the limit, headers too large, a
  malformed request) use the API's JSON error shape, not waitress' plain text.

The limits are constants (``Limits``) rather than configuration: they are sized
for Twilio, which sends small complete requests quickly. docs/operations.md
says what a reverse proxy in front should do.
"""

from __future__ import annotations

import json
import logging
import resource
import time
from dataclasses import dataclass

from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask

from . import error_body

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    connection_limit: int = 4000  # open connections; more wait in the listen backlog
    header_timeout: float = 10.0  # seconds from a request's first byte to the end of its headers
    request_timeout: float = 30.0  # seconds from a request's first byte to the end of its body
    idle_timeout: int = 30  # seconds a keep-alive connection may stay silent between requests
    max_header_bytes: int = 64 * 1024  # request line + headers
    backlog: int = 2048  # connections the kernel queues while every slot is taken
    cleanup_interval: int = 1  # how often (s) deadlines are checked


class JsonErrorTask(ErrorTask):
    """An error waitress answers before the app runs, in the app's JSON error shape."""

    def execute(self):
        err = self.request.error
        message = {
            413: "request body too large (limit {limit} bytes)".format(
                limit=getattr(self.channel.server, "max_body_bytes", self.channel.server.adj.max_request_body_size)),
            431: f"request headers too large (limit {self.channel.server.adj.max_request_header_size} bytes)",
        }.get(err.code, f"{err.reason.lower()}: {err.body}")
        body = json.dumps(error_body(err.code, message)).encode("utf-8")
        self.status = f"{err.code} {err.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class GuardedChannel(HTTPChannel):
    """A connection that remembers when its current request began, for the deadlines."""

    error_task_class = JsonErrorTask

    def __init__(self, server, sock, addr, adj, map=None):
        super().__init__(server, sock, addr, adj, map)
        # a new connection owes its first request within the header deadline: opening and
        # staying silent is the cheapest way to hold a slot
        self.request_started: float | None = self.creation_time

    def received(self, data):
        before = self.request
        if data and before is None and self.request_started is None:
            self.request_started = time.time()
        result = super().received(data)
        if self.request is None:
            # nothing partial left: the request went to a task; the idle timeout governs from here
            self.request_started = None
        elif self.request is not before and before is not None:
            # a pipelined request began in the same read: its own deadline starts now
            self.request_started = time.time()
        return result


class GuardedServer(TcpWSGIServer):
    channel_class = GuardedChannel

    def __init__(self, application, *, limits: Limits, max_body_bytes: int, **kw):
        self.limits = limits
        self.max_body_bytes = max_body_bytes
        super().__init__(application, **kw)

    def maintenance(self, now):
        super().maintenance(now)
        for channel in list(self.active_channels.values()):
            started = getattr(channel, "request_started", None)
            if started is None or channel.requests or channel.will_close:
                continue
            partial = channel.request
            headers_done = partial is not None and partial.headers_finished
            deadline = self.limits.request_timeout if headers_done else self.limits.header_timeout
            if now - started > deadline:
                log.warning("dropped a slow client: %s not received within %.0f s",
                            "body" if headers_done else "request headers", deadline,
                            extra={"event": "slow_client_dropped", "remote": channel.addr[0] if channel.addr else None})
                channel.will_close = True


def _raise_fd_limit(wanted: int) -> int:
    """Raise the soft open-file limit toward ``wanted``; the number of connections it allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def make_server(app, *, host: str | None = None, port: int | None = None, threads: int, max_body_bytes: int,
                limits: Limits | None = None, sock=None):
    """A waitress server for ``app`` with ``limits`` (port 0 picks a free port), on ``sock`` when given
    (a listening socket shared by the front processes of ``serve``) instead of binding ``host:port``."""
    limits = limits or Limits()
    spare = 64  # the database, logs, the listening socket, the trigger pipe
    allowed = _raise_fd_limit(limits.connection_limit + spare)
    connection_limit = max(16, min(limits.connection_limit, allowed - spare))
    if connection_limit < limits.connection_limit:
        log.warning("open-file limit %d allows only %d connections (wanted %d)", allowed, connection_limit,
                    limits.connection_limit)
    where = {"sockets": [sock]} if sock is not None else {"host": host, "port": port}
    adj = Adjustments(
        **where,
        threads=threads,
        ident="adherence",
        max_request_body_size=max_body_bytes,
        max_request_header_size=limits.max_header_bytes,
        channel_timeout=limits.idle_timeout,
        cleanup_interval=limits.cleanup_interval,
        connection_limit=connection_limit,
        backlog=limits.backlog,
        asyncore_use_poll=True,
        clear_untrusted_proxy_headers=True,
    )
    # waitress logs "Task queue depth is N" for every request that waits for a thread: under a burst that
    # was a log line a request (126k lines for 180k requests, ~6 % of the server's CPU); the webhook's
    # latency histogram (/metrics) shows queueing instead
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    if sock is not None:
        return GuardedServer(app, limits=limits, max_body_bytes=max_body_bytes, adj=adj, map={}, _sock=sock,
                             bind_socket=False, sockinfo=(sock.family, sock.type, sock.proto, sock.getsockname()))
    return GuardedServer(app, limits=limits, max_body_bytes=max_body_bytes, adj=adj, map={},
                         sockinfo=adj.listen[0])
