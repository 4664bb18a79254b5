"""Configuration: one YAML file, strict, with ``${VAR}`` from the environment.

Secrets never live in the file: ``${TWILIO_AUTH_TOKEN}`` is read from the
environment, and an unset variable leaves that setting off. Relative paths
are relative to the config file, so the service runs the same from any
working directory. Unknown keys are errors (a mistyped key silently ignored
is how a webhook ends up unauthenticated).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError, Problem
from .timeutil import parse_duration, zone
from .yamlfile import LineDict, YamlSyntaxError, load_file

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

DEFAULT_TIME_OFF = ("Time Off", "PTO", "Vacation", "Holiday", "Day Off", "Sick")


@dataclass
class BasicAuth:
    username: str
    password: str


@dataclass
class Config:
    path: Path | None = None
    database: Path = Path("adherence.db")
    timezone: str = "UTC"
    schedules: Path = Path("schedules")
    rules: Path = Path("rules")
    evaluation_interval_ms: int = 15_000
    server_host: str = "127.0.0.1"
    server_port: int = 8080
    server_public_url: str | None = None
    server_threads: int = 8
    # HTTP front processes beside the one that owns the journal and live state (adherence.web.link); 0: one process
    server_front_processes: int = 0
    allow_unauthenticated: bool = False
    max_body_bytes: int = 5 * 1024 * 1024
    twilio_auth_token: str | None = field(default=None, repr=False)
    webhook_basic: BasicAuth | None = field(default=None, repr=False)
    api_token: str | None = field(default=None, repr=False)
    time_off: tuple[str, ...] = DEFAULT_TIME_OFF
    retention_journal_days: int | None = None
    # sent, cancelled and dead-lettered outbox entries (and ended snoozes) older than this go (None: kept)
    retention_notifications_days: int | None = 30
    log_level: str = "INFO"
    notifications: Path | None = None  # the notification file (adherence/notify), off when not set
    # the TaskRouter workspace ``adherence backfill`` reads (the auth token is auth.twilio_auth_token)
    twilio_account_sid: str | None = None
    twilio_workspace_sid: str | None = None
    twilio_api_url: str = "https://taskrouter.twilio.com"
    # what the exception time inside a period approval becomes when the request does not say: neutral or in
    period_mode: str = "neutral"
    # named tokens (auth.tokens): each with a role and an optional team scope (adherence.access)
    tokens: tuple = field(default=(), repr=False)
    # no record at all for this long while agents are scheduled: the feed is silent (adherence.silence)
    feed_silence_ms: int = 10 * 60_000

    @property
    def auth_enabled(self) -> bool:
        """The API and board require a token: auth.api_token or any named token is set."""
        return bool(self.api_token or self.tokens)

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path else Path.cwd()


# key -> (kind, attribute). kind drives validation; nested dicts list their keys.
_SCHEMA: dict[str, Any] = {
    "database": ("path", "database"),
    "timezone": ("zone", "timezone"),
    "schedules": ("path", "schedules"),
    "rules": ("path", "rules"),
    "notifications": ("path", "notifications"),
    "time_off": ("strlist", "time_off"),
    "log_level": ("loglevel", "log_level"),
    "evaluation": {"interval": ("duration", "evaluation_interval_ms")},
    "server": {
        "host": ("str", "server_host"),
        "port": ("port", "server_port"),
        "public_url": ("url", "server_public_url"),
        "threads": ("posint", "server_threads"),
        "front_processes": ("processes", "server_front_processes"),
        "allow_unauthenticated": ("bool", "allow_unauthenticated"),
        "max_body_bytes": ("posint", "max_body_bytes"),
    },
    "auth": {
        "twilio_auth_token": ("secret", "twilio_auth_token"),
        "webhook_basic": ("basic", "webhook_basic"),
        "api_token": ("secret", "api_token"),
        "tokens": ("tokens", "tokens"),
    },
    "retention": {"journal_days": ("posint", "retention_journal_days"),
                  "notifications_days": ("posint", "retention_notifications_days")},
    "approvals": {"period_mode": ("periodmode", "period_mode")},
    "feed": {"silence_after": ("duration", "feed_silence_ms")},
    "twilio": {
        "account_sid": ("secret", "twilio_account_sid"),
        "workspace_sid": ("secret", "twilio_workspace_sid"),
        "api_url": ("url", "twilio_api_url"),
    },
}


def _interpolate(value: Any) -> Any:
    """Replace ``${VAR}``; a value that is only an unset variable becomes None."""
    if not isinstance(value, str):
        return value
    whole = _VAR.fullmatch(value.strip())
    if whole:
        v = os.environ.get(whole.group(1))
        return v if v not in (None, "") else None
    return _VAR.sub(lambda m: os.environ.get(m.group(1), ""), value)


def _convert(kind: str, value: Any, cfg: Config) -> Any:
    if kind == "path":
        if not isinstance(value, str) or not value:
            raise ValueError("expected a file or folder path")
        p = Path(value).expanduser()
        return p if p.is_absolute() else (cfg.base_dir / p)
    if kind == "zone":
        zone(value)
        return str(value)
    if kind == "duration":
        ms = parse_duration(value)
        if ms < 1000:
            raise ValueError("expected at least 1s")
        return ms
    if kind == "str":
        if not isinstance(value, str) or not value:
            raise ValueError("expected text")
        return value
    if kind == "url":
        if value is None:
            return None
        if not isinstance(value, str) or not re.match(r"^https?://", value):
            raise ValueError("expected an http(s):// URL or null")
        return value
    if kind == "processes":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 64:
            raise ValueError("expected a number of processes 0-64 (0: one process does everything)")
        return value
    if kind == "port":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
            raise ValueError("expected a port number 0-65535")
        return value
    if kind == "posint":
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError("expected a positive whole number")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError("expected true or false")
        return value
    if kind == "secret":
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError("expected text (use ${ENV_VAR} to take it from the environment)")
        return value or None
    if kind == "strlist":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError("expected a list of names")
        return tuple(value)
    if kind == "tokens":
        from .access import parse_tokens

        return parse_tokens(value, _interpolate)
    if kind == "periodmode":
        if value not in ("neutral", "in"):
            raise ValueError("expected neutral or in")
        return value
    if kind == "loglevel":
        if str(value).upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError("expected DEBUG, INFO, WARNING or ERROR")
        return str(value).upper()
    if kind == "basic":
        if value is None:
            return None
        if not isinstance(value, dict) or set(value) - {"username", "password"}:
            raise ValueError("expected {username: ..., password: ...}")
        user = _interpolate(value.get("username"))
        pw = _interpolate(value.get("password"))
        if user is None and pw is None:
            return None
        if not user or not pw:
            raise ValueError("both username and password are needed (an unset ${VAR}?)")
        return BasicAuth(str(user), str(pw))
    raise AssertionError(kind)


def _apply(data: LineDict, schema: dict, cfg: Config, prefix: str, problems: list[Problem], fname: str) -> None:
    for key, value in data.items():
        line = data.line_of(key)
        dotted = f"{prefix}{key}"
        spec = schema.get(key)
        if spec is None:
            known = ", ".join(sorted(schema))
            problems.append(Problem(f"unknown key {dotted!r} (expected one of: {known})", fname, line))
            continue
        if isinstance(spec, dict):
            if value is None:
                continue
            if not isinstance(value, dict):
                problems.append(Problem(f"{dotted}: expected a mapping of {', '.join(sorted(spec))}", fname, line))
                continue
            _apply(value, spec, cfg, dotted + ".", problems, fname)
            continue
        kind, attr = spec
        raw = value if kind in ("basic", "tokens") else _interpolate(value)
        if raw is None and kind not in ("secret", "url", "basic", "posint"):
            continue  # unset: keep the default
        try:
            setattr(cfg, attr, _convert(kind, raw, cfg))
        except ValueError as exc:
            problems.append(Problem(f"{dotted}: {exc}", fname, line))


def load_config(path: str | os.PathLike | None, overrides: dict | None = None) -> Config:
    """Load and validate the config file; raise ConfigError listing every problem.

    ``path`` None gives the built-in defaults (relative paths from the
    working directory). ``overrides`` is a nested dict applied on top, as if
    it were in the file (used by tests and ``create_app``).
    """
    cfg = Config()
    problems: list[Problem] = []
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise ConfigError(problems=[Problem("config file not found (use --config PATH)", str(p))])
        cfg.path = p.resolve()
        try:
            data = load_file(str(p))
        except YamlSyntaxError as exc:
            raise ConfigError(problems=[exc.problem]) from None
        if data is None:
            data = LineDict()
            data.key_lines = {}
        if not isinstance(data, dict):
            raise ConfigError(problems=[Problem("expected a mapping of settings at the top level", str(p), 1)])
        _apply(data, _SCHEMA, cfg, "", problems, str(p))
    if overrides:
        _apply(_as_linedict(overrides), _SCHEMA, cfg, "", problems, "<overrides>")
    if problems:
        raise ConfigError(problems=problems)
    # paths given as defaults are relative to the config file too
    for attr in ("database", "schedules", "rules"):
        v = getattr(cfg, attr)
        if not v.is_absolute():
            setattr(cfg, attr, cfg.base_dir / v)
    return cfg


def _as_linedict(d: dict) -> LineDict:
    out = LineDict()
    out.key_lines = {}
    for k, v in d.items():
        out[k] = _as_linedict(v) if isinstance(v, dict) and k != "webhook_basic" else v
    return out
