"""Hot reload with last-good semantics.

Planners edit schedule and rule files while the service runs. A folder is
re-read when any of its files changes (mtime, size, added, removed); the new
version replaces the old only when it loads without error. A broken edit is
logged and reported on ``/health`` while the last good version stays in
force, so one typo never empties the schedule.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Callable, Generic, Iterable, TypeVar

from .errors import AdherenceError

T = TypeVar("T")
log = logging.getLogger(__name__)


def folder_fingerprint(folder: Path, patterns: Iterable[str], *, recursive: bool = True) -> tuple:
    """What changes when a planner edits, adds or removes a matching file (in subfolders too unless
    ``recursive`` is false: rule files live directly in their folder, beside a ``tests/`` folder whose
    edits must not reload the rules)."""
    items = []
    if folder.is_dir():
        for pattern in patterns:
            for p in folder.rglob(pattern) if recursive else folder.glob(pattern):
                if not p.is_file():
                    continue
                try:
                    st = p.stat()
                except OSError:
                    continue
                items.append((str(p), st.st_mtime_ns, st.st_size))
    elif folder.exists():
        st = folder.stat()
        items.append((str(folder), st.st_mtime_ns, st.st_size))
    return tuple(sorted(items))


class Reloadable(Generic[T]):
    """Holds the last good result of ``loader`` and reloads it when inputs change."""

    def __init__(self, name: str, loader: Callable[[], T], fingerprint: Callable[[], tuple]):
        self.name = name
        self._loader = loader
        self._fingerprint = fingerprint
        self._lock = threading.Lock()
        self._fp: tuple | None = None
        self.current: T | None = None
        self.errors: list[str] = []
        self.loaded_at: float | None = None
        self.version = 0  # bumps on every successful swap

    def check(self) -> bool:
        """Reload if the inputs changed. True when a new version was swapped in."""
        fp = self._fingerprint()
        with self._lock:
            if fp == self._fp:
                return False
            self._fp = fp
            try:
                value = self._loader()
            except AdherenceError as exc:
                self.errors = exc.messages
                log.error(
                    "%s: edit rejected, keeping the last good version: %s",
                    self.name,
                    "; ".join(self.errors),
                    extra={"event": "reload_rejected"},
                )
                return False
            except Exception as exc:  # a loader bug must not take the service down or hide the edit
                self.errors = [f"could not load the edited files ({type(exc).__name__}: {exc})"]
                log.exception("%s: loading failed, keeping the last good version", self.name,
                              extra={"event": "reload_failed"})
                return False
            self.current = value
            self.errors = []
            self.loaded_at = time.time()
            self.version += 1
            log.info("%s: loaded", self.name)
            return True

    def status(self) -> dict:
        return {
            "ok": not self.errors and self.current is not None,
            "version": self.version,
            "loaded_at": self.loaded_at,
            "errors": list(self.errors),
        }
