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


def self_signed(tmp_path):
    """A certificate for 127.0.0.1 and its key (PEM files): the SMTP server's, trusted by the channel's ca_file."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "smtp.crt", tmp_path / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class Mailbox:
    """A real SMTP server (aiosmtpd) on loopback: STARTTLS required before anything, AUTH only over TLS."""

    def __init__(self, tmp_path, user: str, password: str):
        import socket
        import ssl

        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        cert, key = self_signed(tmp_path)
        self.ca_file = cert
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        self.messages: list = []
        self.logins: list = []
        outer = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802
                outer.messages.append(envelope)
                return "250 Message accepted for delivery"

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = auth_data.login.decode() == user and auth_data.password.decode() == password
            outer.logins.append((auth_data.login.decode(), ok))
            return AuthResult(success=ok)

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, tls_context=ctx,
                                     require_starttls=True, authenticator=authenticator, auth_require_tls=True)
        self.controller.start()

    def close(self):
        self.controller.stop()
