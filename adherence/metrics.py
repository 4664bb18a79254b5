"""Process counters, exposed at ``/metrics`` in Prometheus text format."""

from __future__ import annotations

import threading

_HELP = {
    "adherence_records_accepted_total": ("counter", "Feed records journaled."),
    "adherence_records_duplicate_total": ("counter", "Feed records acknowledged as duplicates."),
    "adherence_records_rejected_total": ("counter", "Feed records kept as rejected (unattributable)."),
    "adherence_rejected_bodies_total": ("counter", "Feed bodies rejected whole (bad JSON or envelope)."),
    "adherence_webhook_requests_total": ("counter", "Webhook requests answered, by status."),
    "adherence_auth_failures_total": ("counter", "Webhook or API requests refused by authentication."),
    "adherence_ticks_total": ("counter", "Evaluator ticks run."),
    "adherence_tick_errors_total": ("counter", "Evaluator ticks that failed."),
    "adherence_tick_duration_seconds": ("gauge", "Duration of the last evaluator tick."),
    "adherence_tick_agents": ("gauge", "Agents evaluated in the last tick."),
    "adherence_open_exceptions": ("gauge", "Exceptions open after the last tick."),
    "adherence_live_agents": ("gauge", "Agents held in live state."),
    "adherence_journal_purged_total": ("counter", "Journal rows deleted by retention."),
    "adherence_rejected_purged_total": ("counter", "Rejected rows deleted by retention."),
}


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[tuple[str, tuple], float] = {}

    def inc(self, name: str, value: float = 1, **labels: str) -> None:
        if not value:
            return
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._values[key] = self._values.get(key, 0) + value

    def set(self, name: str, value: float, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._values[key] = value

    def get(self, name: str, **labels: str) -> float:
        with self._lock:
            return self._values.get((name, tuple(sorted(labels.items()))), 0)

    def render(self) -> str:
        with self._lock:
            items = sorted(self._values.items())
        lines = []
        seen = set()
        names = {n for (n, _), _ in items} | set(_HELP)
        for name in sorted(names):
            kind, help_text = _HELP.get(name, ("untyped", ""))
            if name not in seen:
                lines.append(f"# HELP {name} {help_text}")
                lines.append(f"# TYPE {name} {kind}")
                seen.add(name)
            rows = [(labels, v) for (n, labels), v in items if n == name] or [((), 0)]
            for labels, v in rows:
                lab = ",".join(f'{k}="{_esc(str(val))}"' for k, val in labels)
                lines.append(f"{name}{{{lab}}} {v:g}" if lab else f"{name} {v:g}")
        return "\n".join(lines) + "\n"


def _esc(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


METRICS = Metrics()
