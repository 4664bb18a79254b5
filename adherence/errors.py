"""Domain exceptions.

Loaders collect *every* problem before failing (like Prometheus' rulefmt),
so one bad edit shows all its mistakes at once. Each problem names where it
is (file, line, field path) and what was expected. These are turned into
``click.ClickException`` or a JSON error body only at the edges.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input, and where."""

    message: str
    file: str | None = None
    line: int | None = None
    path: str | None = None  # field path, e.g. records[2].worker.sid

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file
            if self.line:
                where += f":{self.line}"
        if self.path:
            where = f"{where} {self.path}" if where else self.path
        return f"{where}: {self.message}" if where else self.message


class AdherenceError(Exception):
    """Base class of every error this package raises on purpose."""

    def __init__(self, message: str | None = None, problems: list[Problem] | None = None):
        self.problems = list(problems or [])
        if message is None:
            message = "; ".join(str(p) for p in self.problems) or self.__class__.__doc__
        super().__init__(message)

    @property
    def messages(self) -> list[str]:
        return [str(p) for p in self.problems] or [str(self)]


class ConfigError(AdherenceError):
    """The configuration file is missing or invalid."""


class FeedError(AdherenceError):
    """A feed body or record is malformed."""


class ScheduleError(AdherenceError):
    """A schedule file is invalid."""


class RuleError(AdherenceError):
    """A rule file or rule test file is invalid."""


class NotFound(AdherenceError):
    """The thing asked for does not exist."""
