"""Who may read and change what: named tokens with a role and an optional team scope.

``auth.tokens`` names each token (its value from the environment), with a role — ``viewer`` (reads),
``supervisor`` (reads, and approves: exceptions and period approvals), ``admin`` (everything) — and an
optional list of teams. A token with teams sees only those teams in every read (board, JSON, CSV, the agent
page) and is refused (403) any change outside them; a period approval for everyone touches every team, so
only an unscoped token may make one. The single ``auth.api_token`` keeps working as an unscoped ``admin``
named "admin".

A principal is resolved once per request (``web.api.credentials``) and kept on ``flask.g``; the checks
here are plain functions of it, so the API, the board and the tests share them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ROLES = ("viewer", "supervisor", "admin")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True)
class NamedToken:
    name: str
    token: str
    role: str
    teams: frozenset | None  # None: every team


@dataclass(frozen=True)
class Principal:
    """The caller of one request."""

    name: str
    role: str
    teams: frozenset | None
    named: bool = True  # from auth.tokens: ``by`` defaults to the name (the single api_token requires ``by``)

    @property
    def can_write(self) -> bool:
        return self.role in ("supervisor", "admin")

    def sees(self, team: str | None) -> bool:
        return self.teams is None or team in self.teams


OPEN = Principal("anonymous", "admin", None, named=False)  # no token configured: loopback only (serve refuses otherwise)


def parse_tokens(value, interpolate) -> tuple:
    """``auth.tokens`` → NamedTokens; a token whose value is an unset ``${VAR}`` is off (skipped)."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise ValueError("expected a mapping of name: {token: ${ENV_VAR}, role: viewer|supervisor|admin, teams: [...]}")
    out = []
    for name, spec in value.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"token name {name!r}: letters, digits, '.', '_' or '-' (at most 64)")
        if not isinstance(spec, dict) or set(spec) - {"token", "role", "teams"}:
            raise ValueError(f"{name}: expected {{token: ${{ENV_VAR}}, role: ..., teams: [...]}}")
        role = spec.get("role")
        if role not in ROLES:
            raise ValueError(f"{name}.role: expected one of {', '.join(ROLES)}, got {role!r}")
        teams = spec.get("teams")
        if teams is not None and (not isinstance(teams, list) or not teams
                                  or not all(isinstance(t, str) and t for t in teams)):
            raise ValueError(f"{name}.teams: expected a non-empty list of team names")
        token = interpolate(spec.get("token"))
        if token is None:
            continue  # ${VAR} unset: this token is off
        if not isinstance(token, str) or len(token) < 16:
            raise ValueError(f"{name}.token: expected at least 16 characters (use ${{ENV_VAR}})")
        out.append(NamedToken(name, token, role, frozenset(teams) if teams else None))
    tokens = [t.token for t in out]
    if len(set(tokens)) != len(tokens):
        raise ValueError("two named tokens have the same value")
    return tuple(out)


def principals(config) -> list[tuple[str, Principal]]:
    """Every (token value, principal) the config accepts: the named tokens and auth.api_token (admin)."""
    out = [(t.token, Principal(t.name, t.role, t.teams)) for t in config.tokens]
    if config.api_token:
        out.append((config.api_token, Principal("admin", "admin", None, named=False)))
    return out


class Refused(Exception):
    """The caller's role or team scope does not allow this (403)."""
