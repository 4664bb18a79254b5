"""Webhook and API authentication.

Twilio does not document how the RTA feed itself authenticates, so both
schemes Twilio uses for webhooks are supported, each on when configured:

* ``X-Twilio-Signature``: base64 HMAC of the URL Twilio posted to (plus
  sorted form parameters for form bodies). For JSON bodies Twilio adds a
  ``bodySHA256`` query parameter holding the hex SHA-256 of the raw body and
  signs the URL only. A JSON request without ``bodySHA256`` fails closed: a
  signature over the URL alone would let anyone replace the body.
* HTTP basic auth (credentials in the webhook URL, ``https://user:pass@host/...``).

Twilio signs the URL *without* ``user:pass@`` and sometimes with, sometimes
without, the default port; both port forms are accepted, as Twilio's own
``RequestValidator`` does. Behind a proxy the URL Twilio used differs from
what the app sees, so ``server.public_url`` replaces scheme, host and path.

Every comparison of secret-derived values is constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import parse_qs, quote, urlencode, urlsplit, urlunsplit

SIGNATURE_HEADER = "X-Twilio-Signature"
SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"
_HASHES = {"HMAC_SHA1": hashlib.sha1, "HMAC_SHA256": hashlib.sha256}


def constant_time_equal(a: str | bytes, b: str | bytes) -> bool:
    """Compare secrets without leaking where they differ."""
    if isinstance(a, str):
        a = a.encode("utf-8")
    if isinstance(b, str):
        b = b.encode("utf-8")
    return hmac.compare_digest(a, b)


def _strip_userinfo(netloc: str) -> str:
    return netloc.rsplit("@", 1)[-1]


def url_variants(url: str) -> list[str]:
    """The URL as Twilio may have signed it: no userinfo, with and without default port."""
    parts = urlsplit(url)
    netloc = _strip_userinfo(parts.netloc)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    host, _, port = netloc.rpartition(":") if ":" in netloc.split("]")[-1] else (netloc, "", "")
    variants = []
    if port:
        variants.append(urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)))
        if default is not None and port == str(default):
            variants.append(urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment)))
    else:
        variants.append(urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)))
        if default is not None:
            variants.append(urlunsplit((parts.scheme, f"{netloc}:{default}", parts.path, parts.query, parts.fragment)))
    return variants


def public_request_url(request_url: str, public_url: str | None) -> str:
    """The URL Twilio posted to: ``public_url`` (scheme, host, path) + the request's query."""
    if not public_url:
        return request_url
    req = urlsplit(request_url)
    pub = urlsplit(public_url)
    return urlunsplit((pub.scheme, pub.netloc, pub.path or req.path, req.query, ""))


def signed_request_url(request, public_url: str | None = None) -> str:
    """The URL of ``request`` byte for byte as the client sent it, for signature checks.

    Twilio signs the URL as registered, escapes and all. Werkzeug's ``request.url``
    is decoded (``%2F`` becomes ``/``, ``caf%C3%A9`` becomes ``café``), so a signature
    over it fails for any URL with such an escape. The path comes from the raw
    request target (``REQUEST_URI``, which waitress and Werkzeug both set) and the
    query from ``QUERY_STRING``, which WSGI servers pass undecoded.
    """
    environ = request.environ
    query = environ.get("QUERY_STRING", "")
    raw = environ.get("REQUEST_URI") or environ.get("RAW_URI") or ""
    path = urlsplit(raw).path if raw.startswith(("http://", "https://")) else raw.partition("?")[0]
    if not path.startswith("/"):
        # no raw target: re-quote the decoded path the way Werkzeug does (a lone % stays as is)
        path = quote(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""), safe="!$&'()*+,/:;=@%")
    if isinstance(query, bytes):  # pragma: no cover - WSGI says str, latin-1 decoded
        query = query.decode("latin-1")
    url = urlunsplit((request.scheme, request.host, path or "/", query, ""))
    return public_request_url(url, public_url)


def compute_signature(url: str, token: str, params: dict[str, list[str]] | None = None, algorithm: str = "HMAC_SHA1") -> str:
    data = url
    for name in sorted(params or {}):
        for value in sorted(set(params[name])):
            data += name + value
    mac = hmac.new(token.encode("utf-8"), data.encode("utf-8"), _HASHES[algorithm])
    return base64.b64encode(mac.digest()).decode("ascii")


def signature_algorithm(settings_header: str | None) -> str | None:
    """Algorithm named in X-Twilio-Webhooks-Signature-Settings (default HMAC_SHA1); None if unsupported."""
    for part in (settings_header or "").split(","):
        name, sep, value = part.partition("=")
        if sep and name.strip() == "algorithm" and value.strip():
            algo = value.strip().upper()
            return algo if algo in _HASHES else None
    return "HMAC_SHA1"


def verify_twilio_signature(
    *,
    url: str,
    body: bytes,
    content_type: str,
    form: dict[str, list[str]] | None,
    signature: str | None,
    token: str,
    settings_header: str | None = None,
) -> str | None:
    """Check a request's Twilio signature. None when valid, else the reason (never the secret)."""
    if not signature:
        return "missing X-Twilio-Signature header"
    algorithm = signature_algorithm(settings_header)
    if algorithm is None:
        return "unsupported signature algorithm"
    query = parse_qs(urlsplit(url).query, keep_blank_values=True)
    is_form = content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded"
    params: dict[str, list[str]] = {}
    if is_form:
        params = form or {}
    else:
        body_hash = query.get("bodySHA256", [None])[0]
        if not body_hash:
            return "signed JSON request without bodySHA256 in the URL"
        if not constant_time_equal(hashlib.sha256(body).hexdigest(), body_hash.lower()):
            return "body does not match bodySHA256"
    ok = False
    for candidate in url_variants(url):
        # evaluate every variant: no early exit on the first match
        ok |= constant_time_equal(compute_signature(candidate, token, params, algorithm), signature)
    return None if ok else "signature does not match"


def sign_json(url: str, body: bytes, token: str) -> tuple[str, str]:
    """Sign a JSON POST the way Twilio does: (url with bodySHA256, signature).

    Used by ``adherence simulate --post`` so the load generator looks like Twilio.
    """
    parts = urlsplit(url)
    query = parse_qs(parts.query, keep_blank_values=True)
    query["bodySHA256"] = [hashlib.sha256(body).hexdigest()]
    signed_url = urlunsplit((parts.scheme, _strip_userinfo(parts.netloc), parts.path, urlencode(query, doseq=True), ""))
    full_url = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query, doseq=True), ""))
    return full_url, compute_signature(signed_url, token)


def check_basic(header: str | None, username: str, password: str) -> str | None:
    """Check an Authorization: Basic header; None when valid, else the reason."""
    if not header or not header[:6].lower() == "basic ":
        return "missing basic credentials"
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return "malformed basic credentials"
    user, sep, pw = decoded.partition(":")
    if not sep:
        return "malformed basic credentials"
    # both compared, always: no hint which half was wrong
    ok_user = constant_time_equal(user, username)
    ok_pw = constant_time_equal(pw, password)
    return None if (ok_user and ok_pw) else "wrong basic credentials"


def check_bearer(header: str | None, token: str) -> bool:
    if not header or not header[:7].lower() == "bearer ":
        return False
    return constant_time_equal(header[7:].strip(), token)
