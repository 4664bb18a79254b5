"""Formatting and sending one message per channel type.

Messages are built from the outbox entries' stored JSON, so what goes out is
what was decided in the transaction that changed the exception (a correction
made later rewrites that JSON before it is sent; it never reads live state).

* webhook: a JSON body (documented in docs/notifications.md), signed with
  HMAC-SHA256 over ``<timestamp>.<body>`` so the receiver can check both where
  it came from and that it is fresh (a captured request replayed later fails).
* Slack: an incoming-webhook message in Block Kit (a header, a section of
  fields, a link to the agent's day), with ``text`` as the notification
  fallback. Slack's limits are kept: header ≤ 150 characters, ≤ 10 fields of
  ≤ 2000, ≤ 50 blocks.
* email: SMTP with STARTTLS (or implicit TLS), credentials from the
  environment, a plain-text part and an HTML alternative.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import http.client
import json
import smtplib
import ssl
import threading
import time
import urllib.parse
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from .. import __version__
from .config import Channel

SIGNATURE_HEADER = "X-Adherence-Signature"
TIMESTAMP_HEADER = "X-Adherence-Timestamp"
DELIVERY_HEADER = "X-Adherence-Delivery"
EVENT_HEADER = "X-Adherence-Event"
SLACK_MAX_BLOCKS = 50
SLACK_HEADER_MAX = 150
SLACK_FIELD_MAX = 2000

TITLES = {
    "opened": "Exception opened", "closed": "Exception closed", "reminder": "Still open",
    "corrected": "Exception corrected", "removed": "Exception withdrawn", "test": "Test message",
}


class DeliveryError(Exception):
    """One attempt failed; the sender retries (the message says what the receiver answered)."""


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode("utf-8"), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"v1={mac}"


def verify(secret: str, headers, body: bytes, *, tolerance_s: int = 300, now_s: float | None = None) -> bool:
    """The receiver's check (used by the tests; docs/notifications.md shows it for receivers to copy)."""
    ts = headers.get(TIMESTAMP_HEADER, "")
    if not ts.isdigit() or abs((now_s or time.time()) - int(ts)) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, int(ts), body), headers.get(SIGNATURE_HEADER, ""))


def day_link(public_url: str | None, exc: dict) -> str | None:
    if not public_url or not exc.get("day"):
        return None
    q = urllib.parse.urlencode({"date": exc["day"], "agent": exc.get("agent") or ""})
    return f"{public_url.rstrip('/')}/day?{q}"


def webhook_body(entries: list[dict], public_url: str | None, now_ms: int) -> dict:
    """One entry → one event; a digest → ``{"event": "digest", "events": [...]}``."""
    events = []
    for e in entries:
        ev = {"delivery_id": e["id"], "event": e["event"], "route": e["route"], **e["payload"]}
        link = day_link(public_url, ev.get("exception") or {})
        if link:
            ev["link"] = link
        events.append(ev)
    sent_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now_ms / 1000))
    if len(entries) == 1 and entries[0].get("digest_ms") is None:
        return {"version": 1, "sent_at": sent_at, **events[0]}
    return {"version": 1, "sent_at": sent_at, "event": "digest", "delivery_id": entries[0]["id"], "events": events}


def _since(exc: dict) -> str:
    start = (exc.get("start") or "")[:19].replace("T", " ")
    return f"{start} UTC" if start else "?"


def _duration(s) -> str:
    s = int(s or 0)
    h, m = divmod(s // 60, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min"


def summary(entry: dict) -> str:
    exc = entry["payload"].get("exception") or {}
    return (f"{TITLES.get(entry['event'], entry['event'])}: {exc.get('agent')} — {exc.get('rule')} "
            f"({exc.get('severity')}) since {_since(exc)}")


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def slack_message(entries: list[dict], public_url: str | None) -> dict:
    blocks: list[dict] = []
    if len(entries) > 1 or entries[0].get("digest_ms") is not None:
        blocks.append({"type": "header", "text": {"type": "plain_text",
                                                  "text": _clip(f"Adherence: {len(entries)} alert(s)", SLACK_HEADER_MAX)}})
    room = (SLACK_MAX_BLOCKS - len(blocks) - 1) // 3
    for e in entries[:room]:
        exc = e["payload"].get("exception") or {}
        title = f"{TITLES.get(e['event'], e['event'])}: {exc.get('agent')} · {exc.get('rule')}"
        blocks.append({"type": "header", "text": {"type": "plain_text", "text": _clip(title, SLACK_HEADER_MAX)}})
        fields = [("Agent", exc.get("agent")), ("Team", exc.get("team") or "—"), ("Rule", exc.get("rule")),
                  ("Severity", exc.get("severity")), ("Since", _since(exc)),
                  ("Scheduled / actual", f"{exc.get('scheduled_activity') or '—'} / {exc.get('actual_activity') or '—'}")]
        if exc.get("end"):
            fields.append(("Until", _since({"start": exc["end"]})))
        fields.append(("Duration", _duration(exc.get("duration_seconds"))))
        prev = e["payload"].get("previous")
        if prev:
            fields.append(("Previously", f"{_since({'start': prev.get('start')})} → "
                                         f"{_since({'start': prev.get('end')}) if prev.get('end') else 'open'}"))
        blocks.append({"type": "section", "fields": [
            {"type": "mrkdwn", "text": _clip(f"*{k}*\n{_escape(str(v))}", SLACK_FIELD_MAX)} for k, v in fields[:10]]})
        link = day_link(public_url, exc)
        if link:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"<{link}|Open {_escape(str(exc.get('agent')))}'s day>"}})
    if len(entries) > room:
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"…and {len(entries) - room} more (GET /api/notifications)"}]})
    text = summary(entries[0]) if len(entries) == 1 else f"Adherence: {len(entries)} alerts"
    return {"text": _clip(text, 3000), "blocks": blocks}


def _escape(text: str) -> str:
    """Slack's mrkdwn control characters (its documented escaping: &, <, >)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def email_message(channel: Channel, entries: list[dict], public_url: str | None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = channel.sender
    msg["To"] = ", ".join(channel.to)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=channel.sender.split("@", 1)[1])
    msg["Subject"] = summary(entries[0]) if len(entries) == 1 else f"Adherence: {len(entries)} alerts"
    lines, rows = [], []
    for e in entries:
        exc = e["payload"].get("exception") or {}
        link = day_link(public_url, exc)
        lines.append(summary(e))
        lines.append(f"  team {exc.get('team') or '-'}, scheduled {exc.get('scheduled_activity') or '-'}, "
                     f"actual {exc.get('actual_activity') or '-'}, {_duration(exc.get('duration_seconds'))}"
                     + (f", ended {_since({'start': exc['end']})}" if exc.get("end") else ""))
        if link:
            lines.append(f"  {link}")
        cells = [TITLES.get(e["event"], e["event"]), exc.get("agent"), exc.get("team") or "", exc.get("rule"),
                 exc.get("severity"), _since(exc), _duration(exc.get("duration_seconds"))]
        tds = "".join(f"<td>{html.escape(str(c))}</td>" for c in cells)
        if link:
            tds += f'<td><a href="{html.escape(link, quote=True)}">day</a></td>'
        rows.append(f"<tr>{tds}</tr>")
    text = "\n".join(lines) + f"\n\n-- adherence {__version__}\n"
    msg.set_content(text)
    head = "".join(f"<th>{h}</th>" for h in ("Event", "Agent", "Team", "Rule", "Severity", "Since", "Duration"))
    msg.add_alternative(f"<!doctype html><html><body><table border=\"1\" cellpadding=\"4\"><tr>{head}</tr>"
                        f"{''.join(rows)}</table><p>adherence {__version__}</p></body></html>", subtype="html")
    return msg


_local = threading.local()


def _connection(url: str, timeout_s: float) -> tuple[http.client.HTTPConnection, str]:
    """A keep-alive connection per sender thread and origin: a burst of alerts to one receiver costs one
    TCP (and TLS) handshake, not one each, and leaves the CPU to the webhook's request threads."""
    parts = urllib.parse.urlsplit(url)
    key = (parts.scheme, parts.netloc)
    pool = getattr(_local, "pool", None)
    if pool is None:
        pool = _local.pool = {}
    conn = pool.get(key)
    if conn is None:
        cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        conn = pool[key] = cls(parts.netloc, timeout=timeout_s)
    conn.timeout = timeout_s
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return conn, path


def _drop(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    conn = getattr(_local, "pool", {}).pop((parts.scheme, parts.netloc), None)
    if conn is not None:
        conn.close()


def _post(url: str, body: bytes, headers: dict, timeout_s: float) -> str:
    headers = {"Content-Type": "application/json", "User-Agent": f"adherence/{__version__}", **headers}
    for attempt in (1, 2):
        conn, path = _connection(url, timeout_s)
        try:
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
            text = resp.read().decode("utf-8", "replace")
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
            _drop(url)
            if attempt == 1:
                continue  # the receiver closed an idle keep-alive connection: once more on a fresh one
            raise DeliveryError(f"cannot reach {urllib.parse.urlsplit(url).netloc}: {exc}") from None
        except (OSError, http.client.HTTPException) as exc:
            _drop(url)
            raise DeliveryError(f"cannot reach {urllib.parse.urlsplit(url).netloc}: {exc}") from None
        if resp.will_close:
            _drop(url)
        if not 200 <= resp.status < 300:
            detail = text[:300].strip()
            raise DeliveryError(f"HTTP {resp.status}" + (f": {detail}" if detail else ""))
        return text
    raise AssertionError("unreachable")


def send(channel: Channel, entries: list[dict], *, public_url: str | None, timeout_ms: int,
         now_ms: int | None = None) -> None:
    """Deliver ``entries`` (one message, or one digest) or raise DeliveryError."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    timeout = timeout_ms / 1000
    if channel.type == "webhook":
        body = json.dumps(webhook_body(entries, public_url, now), separators=(",", ":")).encode()
        ts = int(time.time())
        _post(channel.url, body, {
            TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: sign(channel.secret or "", ts, body),
            DELIVERY_HEADER: str(entries[0]["id"]),
            EVENT_HEADER: entries[0]["event"] if len(entries) == 1 else "digest"}, timeout)
    elif channel.type == "slack":
        _post(channel.url, json.dumps(slack_message(entries, public_url)).encode(), {}, timeout)
    elif channel.type == "email":
        msg = email_message(channel, entries, public_url)
        ctx = ssl.create_default_context(cafile=channel.ca_file)
        try:
            if channel.security == "ssl":
                smtp = smtplib.SMTP_SSL(channel.host, channel.port, timeout=timeout, context=ctx)
            else:
                smtp = smtplib.SMTP(channel.host, channel.port, timeout=timeout)
            with smtp:
                smtp.ehlo()
                if channel.security == "starttls":
                    smtp.starttls(context=ctx)  # refuses to go on in clear text when the server cannot
                    smtp.ehlo()
                if channel.username:
                    smtp.login(channel.username, channel.password or "")
                smtp.send_message(msg)
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"SMTP {channel.host}:{channel.port}: {exc}") from None
    else:  # pragma: no cover - the loader refuses other types
        raise DeliveryError(f"unknown channel type {channel.type}")
