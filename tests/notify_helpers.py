"""Real local receivers for the notification tests: an HTTP server on loopback (webhook and Slack)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from adherence.notify.channels import verify

SECRET = "s3cret-for-the-tests-0123456789"


class Receiver:
    """Records every POST; answers ``status`` (500 while "down"); checks the signature when ``secret``."""

    def __init__(self, secret: str | None = SECRET, slack: bool = False):
        self.secret = secret
        self.slack = slack
        self.requests: list[dict] = []
        self.status = 200
        self.bad_signatures = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with outer.lock:
                    status = outer.status
                    if status == 200:
                        if outer.secret is not None and not verify(outer.secret, self.headers, body):
                            outer.bad_signatures += 1
                            status = 401
                        else:
                            outer.requests.append({"headers": dict(self.headers), "body": json.loads(body)})
                reply = b"ok" if status == 200 else b"down"
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def bodies(self) -> list[dict]:
        with self.lock:
            return [r["body"] for r in self.requests]

    def events(self) -> list[tuple[str, str, str]]:
        """(event, agent, start) of each message received, digests flattened."""
        out = []
        for b in self.bodies:
            for ev in b.get("events", [b]):
                out.append((ev["event"], ev["exception"]["agent"], ev["exception"]["start"]))
        return out

    def close(self):
        self.server.shutdown()
        self.server.server_close()
