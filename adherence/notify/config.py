"""The notification file: channels, routes (which exceptions go where) and delivery settings.

Loaded like the rules: every problem is collected with its file and line, and the
service keeps the last good version while an edit is broken (``Reloadable``), so a
typo in a route never silences the alerts that were working. Secrets are
``${VAR}`` references resolved from the environment, as in ``config.yaml``: a
webhook secret or an SMTP password never lives in a file under version control.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import time as dtime
from pathlib import Path

from ..errors import ConfigError, Problem
from ..reload import Reloadable, folder_fingerprint
from ..rules import SEVERITIES
from ..timeutil import parse_duration, zone
from ..yamlfile import LineDict, YamlSyntaxError, load_file

CHANNEL_TYPES = ("webhook", "slack", "email")
EVENTS = ("open", "close")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Channel:
    name: str
    type: str
    url: str | None = None
    secret: str | None = field(default=None, repr=False)
    # email
    host: str | None = None
    port: int = 587
    security: str = "starttls"  # starttls, ssl or none
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sender: str | None = None
    to: tuple[str, ...] = ()
    ca_file: str | None = None


@dataclass(frozen=True)
class Hours:
    days: tuple[int, ...]  # 0 = Monday
    start: dtime
    end: dtime
    tz: str

    def contains(self, ms: int) -> bool:
        from datetime import datetime, timezone

        local = datetime.fromtimestamp(ms / 1000, timezone.utc).astimezone(zone(self.tz))
        t = local.time()
        return local.weekday() in self.days and self.start <= t < self.end


@dataclass(frozen=True)
class Route:
    name: str
    channel: str
    rules: tuple[str, ...] = ()
    severities: tuple[str, ...] = ()
    teams: tuple[str, ...] = ()
    min_duration_ms: int = 0
    on: tuple[str, ...] = ("open",)
    remind_every_ms: int | None = None
    digest_ms: int | None = None
    hours: Hours | None = None

    def matches(self, rule: str, severity: str, team: str | None) -> bool:
        return ((not self.rules or rule in self.rules) and (not self.severities or severity in self.severities)
                and (not self.teams or team in self.teams))


@dataclass(frozen=True)
class Delivery:
    max_attempts: int = 8
    backoff_ms: int = 30_000
    max_backoff_ms: int = 30 * 60_000
    timeout_ms: int = 10_000
    # exceptions that ended longer ago than this are never announced (a replay or a recompute of old
    # days must not page anyone)
    max_age_ms: int = 3_600_000


@dataclass(frozen=True)
class Notifications:
    channels: dict[str, Channel]
    routes: tuple[Route, ...]
    delivery: Delivery
    public_url: str | None = None


def _env(value, problems: list[Problem], fname: str, line: int, what: str):
    """``${VAR}`` from the environment; an unset variable is an error naming it (a channel without its
    secret would fail at 3 a.m. instead of at ``check``)."""
    if not isinstance(value, str):
        return value
    missing = [m.group(1) for m in _VAR.finditer(value) if not os.environ.get(m.group(1))]
    if missing:
        problems.append(Problem(f"{what}: environment variable {', '.join(missing)} is not set", fname, line))
        return None
    return _VAR.sub(lambda m: os.environ[m.group(1)], value)


def _names(value, what: str, problems, fname, line, allowed=None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        problems.append(Problem(f"{what}: expected a name or a list of names", fname, line))
        return ()
    if allowed is not None:
        for v in value:
            if v not in allowed:
                problems.append(Problem(f"{what}: unknown value {v!r} (expected one of: {', '.join(allowed)})",
                                        fname, line))
    return tuple(value)


def _duration(value, what, problems, fname, line, *, minimum_ms: int = 0) -> int | None:
    if value is None:
        return None
    try:
        ms = parse_duration(value)
    except ValueError as exc:
        problems.append(Problem(f"{what}: {exc}", fname, line))
        return None
    if ms < minimum_ms:
        problems.append(Problem(f"{what}: at least {minimum_ms // 1000}s", fname, line))
        return None
    return ms


def _keys(d: LineDict, allowed: tuple[str, ...], where: str, problems, fname) -> None:
    for k in d:
        if k not in allowed:
            problems.append(Problem(f"{where}: unknown key {k!r} (expected one of: {', '.join(allowed)})",
                                    fname, d.line_of(k)))


CHANNEL_KEYS = {
    "webhook": ("type", "url", "secret"),
    "slack": ("type", "url"),
    "email": ("type", "host", "port", "security", "username", "password", "from", "to", "ca_file"),
}


def _channel(name: str, d, problems: list[Problem], fname: str, line: int, base: Path) -> Channel | None:
    if not isinstance(d, dict):
        problems.append(Problem(f"channels.{name}: expected a mapping with a type", fname, line))
        return None
    kind = d.get("type")
    if kind not in CHANNEL_TYPES:
        problems.append(Problem(f"channels.{name}.type: expected one of {', '.join(CHANNEL_TYPES)}, got {kind!r}",
                                fname, d.line_of("type")))
        return None
    _keys(d, CHANNEL_KEYS[kind], f"channels.{name}", problems, fname)
    n = len(problems)
    get = {k: _env(d.get(k), problems, fname, d.line_of(k), f"channels.{name}.{k}") for k in d}
    if kind in ("webhook", "slack"):
        url = get.get("url")
        if not isinstance(url, str) or not re.match(r"^https?://", url):
            problems.append(Problem(f"channels.{name}.url: expected an http(s):// URL", fname, d.line_of("url")))
        if kind == "slack" and isinstance(url, str) and url.startswith("http://") and "127.0.0.1" not in url \
                and "localhost" not in url:
            problems.append(Problem(f"channels.{name}.url: Slack incoming webhooks are https://hooks.slack.com/...",
                                    fname, d.line_of("url")))
        secret = get.get("secret")
        if kind == "webhook" and (not isinstance(secret, str) or len(secret) < 16):
            problems.append(Problem(f"channels.{name}.secret: required, at least 16 characters (use ${{VAR}} "
                                    f"to take it from the environment): receivers check the signature with it",
                                    fname, d.line_of("secret")))
        if len(problems) > n:
            return None
        return Channel(name, kind, url=url, secret=secret)
    host, port, security = get.get("host"), get.get("port", 587), get.get("security", "starttls")
    if not isinstance(host, str) or not host:
        problems.append(Problem(f"channels.{name}.host: the SMTP server's host name is required", fname,
                                d.line_of("host")))
    if isinstance(port, str) and port.isdigit():
        port = int(port)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        problems.append(Problem(f"channels.{name}.port: expected a port number", fname, d.line_of("port")))
    if security not in ("starttls", "ssl", "none"):
        problems.append(Problem(f"channels.{name}.security: expected starttls, ssl or none", fname,
                                d.line_of("security")))
    user, password = get.get("username"), get.get("password")
    if (user is None) != (password is None):
        problems.append(Problem(f"channels.{name}: username and password go together", fname, line))
    if user is not None and security == "none":
        problems.append(Problem(f"channels.{name}: refusing to send a password without TLS (security: none)",
                                fname, d.line_of("security")))
    sender = get.get("from")
    if not isinstance(sender, str) or "@" not in sender:
        problems.append(Problem(f"channels.{name}.from: expected an email address", fname, d.line_of("from")))
    to = get.get("to")
    if isinstance(to, str):
        to = [to]
    if not isinstance(to, list) or not to or not all(isinstance(a, str) and "@" in a for a in to):
        problems.append(Problem(f"channels.{name}.to: expected one or more email addresses", fname, d.line_of("to")))
    ca = get.get("ca_file")
    if ca is not None:
        p = Path(ca) if Path(ca).is_absolute() else base / ca
        if not p.is_file():
            problems.append(Problem(f"channels.{name}.ca_file: {p} does not exist", fname, d.line_of("ca_file")))
        ca = str(p)
    if len(problems) > n:
        return None
    return Channel(name, "email", host=host, port=port, security=security, username=user, password=password,
                   sender=sender, to=tuple(to), ca_file=ca)


def _hours(d, where, problems, fname, line, tz: str) -> Hours | None:
    if d is None:
        return None
    if not isinstance(d, dict):
        problems.append(Problem(f"{where}: expected {{days: [mon, ...], from: '08:00', to: '18:00'}}", fname, line))
        return None
    _keys(d, ("days", "from", "to", "timezone"), where, problems, fname)
    days = _names(d.get("days", list(DAYS[:5])), f"{where}.days", problems, fname, d.line_of("days"), DAYS)
    times = []
    for k, default in (("from", "00:00"), ("to", "24:00")):
        raw = str(d.get(k, default))
        m = re.fullmatch(r"(\d{1,2}):(\d{2})", raw)
        if not m or int(m.group(1)) > 24 or int(m.group(2)) > 59 or (int(m.group(1)) == 24 and m.group(2) != "00"):
            problems.append(Problem(f"{where}.{k}: expected a time like 08:00, got {raw!r}", fname, d.line_of(k)))
            return None
        h, mi = int(m.group(1)), int(m.group(2))
        times.append(dtime(23, 59, 59, 999999) if h == 24 else dtime(h, mi))
    if times[0] >= times[1]:
        problems.append(Problem(f"{where}: 'from' must be before 'to'", fname, d.line_of("from")))
        return None
    tzname = d.get("timezone", tz)
    try:
        zone(tzname)
    except Exception:
        problems.append(Problem(f"{where}.timezone: unknown time zone {tzname!r}", fname, d.line_of("timezone")))
        return None
    return Hours(tuple(DAYS.index(x) for x in days if x in DAYS), times[0], times[1], tzname)


ROUTE_KEYS = ("name", "channel", "rules", "severity", "teams", "min_duration", "events", "remind_every", "digest", "hours")


def parse(data, fname: str, *, tz: str = "UTC", public_url: str | None = None,
          base: Path | None = None) -> Notifications:
    problems: list[Problem] = []
    base = base or Path(fname).parent
    if not isinstance(data, dict):
        raise ConfigError(problems=[Problem("expected a mapping with channels and routes", fname, 1)])
    _keys(data, ("channels", "routes", "delivery"), "top level", problems, fname)
    channels: dict[str, Channel] = {}
    raw_channels = data.get("channels") or {}
    if not isinstance(raw_channels, dict):
        problems.append(Problem("channels: expected a mapping of name: {type: ...}", fname, data.line_of("channels")))
        raw_channels = {}
    for name, d in raw_channels.items():
        ch = _channel(str(name), d, problems, fname, raw_channels.line_of(name), base)
        if ch is not None:
            channels[str(name)] = ch
    delivery = Delivery()
    raw_delivery = data.get("delivery")
    if raw_delivery is not None:
        if not isinstance(raw_delivery, dict):
            problems.append(Problem("delivery: expected a mapping", fname, data.line_of("delivery")))
        else:
            _keys(raw_delivery, ("max_attempts", "backoff", "max_backoff", "timeout", "max_age"), "delivery",
                  problems, fname)
            kw = {}
            ma = raw_delivery.get("max_attempts")
            if ma is not None:
                if isinstance(ma, bool) or not isinstance(ma, int) or not 1 <= ma <= 100:
                    problems.append(Problem("delivery.max_attempts: expected a whole number 1-100", fname,
                                            raw_delivery.line_of("max_attempts")))
                else:
                    kw["max_attempts"] = ma
            for key, attr, minimum in (("backoff", "backoff_ms", 100), ("max_backoff", "max_backoff_ms", 100),
                                       ("timeout", "timeout_ms", 100), ("max_age", "max_age_ms", 60_000)):
                v = _duration(raw_delivery.get(key), f"delivery.{key}", problems, fname, raw_delivery.line_of(key),
                              minimum_ms=minimum)
                if v is not None:
                    kw[attr] = v
            delivery = Delivery(**kw)
    routes: list[Route] = []
    raw_routes = data.get("routes") or []
    if not isinstance(raw_routes, list):
        problems.append(Problem("routes: expected a list of routes", fname, data.line_of("routes")))
        raw_routes = []
    seen: set[str] = set()
    for i, r in enumerate(raw_routes):
        line = raw_routes.line_of(i)
        if not isinstance(r, dict):
            problems.append(Problem(f"routes[{i}]: expected a mapping with name and channel", fname, line))
            continue
        name = r.get("name")
        where = f"routes[{i}]" if not isinstance(name, str) else f"route {name!r}"
        _keys(r, ROUTE_KEYS, where, problems, fname)
        n = len(problems)
        if not isinstance(name, str) or not name:
            problems.append(Problem(f"{where}.name: required (it keys what was already sent: keep it stable)",
                                    fname, line))
        elif name in seen:
            problems.append(Problem(f"{where}: a second route of that name", fname, r.line_of("name")))
        seen.add(name if isinstance(name, str) else "")
        channel = r.get("channel")
        if channel not in raw_channels:
            problems.append(Problem(f"{where}.channel: unknown channel {channel!r} (defined: "
                                    f"{', '.join(map(str, raw_channels)) or 'none'})", fname, r.line_of("channel")))
        # "events", not "on": YAML 1.1 reads a bare ``on`` key as the boolean true
        on = _names(r.get("events", ["open"]), f"{where}.events", problems, fname, r.line_of("events"), EVENTS)
        if not on:
            problems.append(Problem(f"{where}.events: at least one of open, close", fname, r.line_of("events")))
        route = Route(
            name=name if isinstance(name, str) else "",
            channel=str(channel),
            rules=_names(r.get("rules"), f"{where}.rules", problems, fname, r.line_of("rules")),
            severities=_names(r.get("severity"), f"{where}.severity", problems, fname, r.line_of("severity"),
                              SEVERITIES),
            teams=_names(r.get("teams"), f"{where}.teams", problems, fname, r.line_of("teams")),
            min_duration_ms=_duration(r.get("min_duration"), f"{where}.min_duration", problems, fname,
                                      r.line_of("min_duration")) or 0,
            on=on,
            remind_every_ms=_duration(r.get("remind_every"), f"{where}.remind_every", problems, fname,
                                      r.line_of("remind_every"), minimum_ms=60_000),
            digest_ms=_duration(r.get("digest"), f"{where}.digest", problems, fname, r.line_of("digest"),
                                minimum_ms=60_000),
            hours=_hours(r.get("hours"), f"{where}.hours", problems, fname, r.line_of("hours"), tz),
        )
        if len(problems) == n:
            routes.append(route)
    if problems:
        raise ConfigError(problems=problems)
    return Notifications(channels, tuple(routes), delivery, public_url)


def load_notifications(path: Path, *, tz: str = "UTC", public_url: str | None = None) -> Notifications:
    try:
        data = load_file(str(path))
    except FileNotFoundError:
        raise ConfigError(problems=[Problem("notification file not found", str(path))]) from None
    except YamlSyntaxError as exc:
        raise ConfigError(problems=[exc.problem]) from None
    if data is None:
        data = LineDict()
        data.key_lines = {}
    return parse(data, str(path), tz=tz, public_url=public_url, base=path.parent)


def notification_source(config) -> Reloadable[Notifications] | None:
    """A hot-reloading notification file (``notifications:`` in config.yaml), or None when not configured."""
    path = getattr(config, "notifications", None)
    if path is None:
        return None
    path = Path(path)
    return Reloadable("notifications",
                      lambda: load_notifications(path, tz=config.timezone, public_url=config.server_public_url),
                      lambda: folder_fingerprint(path, ()) + tuple(sorted(
                          (k, v) for k, v in os.environ.items() if k in _referenced(path))))


def _referenced(path: Path) -> set[str]:
    try:
        return set(_VAR.findall(path.read_text(errors="replace")))
    except OSError:
        return set()
