"""Send feed envelopes (or TaskRouter events) to a running receiver, signed like Twilio: a load generator.

A producer turns envelopes into bodies (signing each when a token is given)
and hands them to ``concurrency`` worker threads, each with its own
``requests.Session`` (keep-alive). ``rate`` caps envelopes per second over
all workers; without it they go as fast as the server answers.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Iterable

import requests

from urllib.parse import urlencode, urlsplit, urlunsplit

from ..auth import SIGNATURE_HEADER, compute_signature, sign_json


@dataclass
class PostSummary:
    sent: int = 0
    ok: int = 0  # 2xx
    non_2xx: int = 0
    errors: int = 0  # no answer: connection refused, timeout, ...
    records: int = 0
    elapsed_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    statuses: dict[int, int] = field(default_factory=dict)
    first_failure: str | None = None
    interrupted: bool = False

    @property
    def failed(self) -> int:
        return self.non_2xx + self.errors

    def percentile(self, p: float) -> float | None:
        if not self.latencies_ms:
            return None
        data = sorted(self.latencies_ms)
        k = min(len(data) - 1, max(0, int(round(p / 100.0 * len(data) + 0.5)) - 1))
        return data[k]

    def text(self) -> str:
        rate = self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0
        p50, p99 = self.percentile(50), self.percentile(99)
        lat = "n/a" if p50 is None else f"p50 {p50:.1f} ms, p99 {p99:.1f} ms"
        lines = [
            f"sent {self.sent} envelopes ({self.records} records): {self.ok} 2xx, {self.non_2xx} non-2xx, {self.errors} errors",
            f"elapsed {self.elapsed_s:.2f} s, {rate:.1f} req/s, latency {lat}",
        ]
        if self.statuses:
            lines.append("status codes: " + ", ".join(f"{k}: {v}" for k, v in sorted(self.statuses.items())))
        if self.first_failure:
            lines.append(f"first failure: {self.first_failure}")
        if self.interrupted:
            lines.append("interrupted before the end of the feed")
        return "\n".join(lines)


def post_envelopes(
    envelopes: Iterable[dict],
    url: str,
    *,
    token: str | None = None,
    basic: tuple[str, str] | None = None,
    rate: float | None = None,
    concurrency: int = 4,
    timeout: float = 10.0,
    limit: int | None = None,
    fast: bool = False,
    fmt: str = "rta",
) -> PostSummary:
    """POST every envelope to ``url``; return the counts and latencies.

    ``fast``: the envelopes come from ``Simulation.events()`` (use its faster encoder).
    ``fmt``: what the items are (``Simulation.bodies(fmt)``): ``rta`` envelopes and ``eventstreams``
    lists of CloudEvents go as JSON (signed with ``bodySHA256``), ``taskrouter`` callback fields
    form-encoded (signed over the URL and the sorted parameters, as TaskRouter does).
    """
    summary = PostSummary()
    lock = threading.Lock()
    work: queue.Queue = queue.Queue(maxsize=concurrency * 8)
    stop = threading.Event()

    def worker() -> None:
        session = requests.Session()
        if basic:
            session.auth = basic
        try:
            while True:
                item = work.get()
                if item is None:
                    return
                post_url, headers, body, n_records = item
                if stop.is_set():
                    continue
                t0 = time.perf_counter()
                status, failure = None, None
                try:
                    resp = session.post(post_url, data=body, headers=headers, timeout=timeout)
                    status = resp.status_code
                    if not 200 <= status < 300:
                        failure = f"HTTP {status}: {resp.text[:300].strip()}"
                    resp.close()
                except requests.RequestException as exc:
                    failure = f"{type(exc).__name__}: {exc}"
                ms = (time.perf_counter() - t0) * 1000.0
                with lock:
                    summary.sent += 1
                    summary.records += n_records
                    if status is not None:
                        summary.latencies_ms.append(ms)
                        summary.statuses[status] = summary.statuses.get(status, 0) + 1
                        if failure is None:
                            summary.ok += 1
                        else:
                            summary.non_2xx += 1
                    else:
                        summary.errors += 1
                    if failure and summary.first_failure is None:
                        summary.first_failure = failure
        finally:
            session.close()

    threads = [threading.Thread(target=worker, name=f"simulate-post-{i}", daemon=True) for i in range(concurrency)]
    for th in threads:
        th.start()
    encode = json.JSONEncoder(separators=(",", ":")).encode
    if fast:
        from .agent import encode_envelope as encode
    start = time.perf_counter()
    try:
        for i, envelope in enumerate(envelopes):
            if limit is not None and i >= limit:
                break
            post_url = url
            if fmt == "taskrouter":
                body = urlencode(envelope).encode("utf-8")
                headers = {"Content-Type": "application/x-www-form-urlencoded"}
                if token:
                    parts = urlsplit(url)
                    signed = urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[-1], parts.path, parts.query, ""))
                    headers[SIGNATURE_HEADER] = compute_signature(signed, token, {k: [v] for k, v in envelope.items()})
            else:
                body = (encode(envelope) if fmt == "rta" else json.dumps(envelope, separators=(",", ":"))).encode("utf-8")
                headers = {"Content-Type": "application/json"}
                if token:
                    post_url, signature = sign_json(url, body, token)
                    headers[SIGNATURE_HEADER] = signature
            if rate:
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            n = len(envelope.get("records") or ()) if fmt == "rta" else len(envelope) if fmt == "eventstreams" else 1
            work.put((post_url, headers, body, n))
    except KeyboardInterrupt:
        summary.interrupted = True
        stop.set()
    finally:
        for _ in threads:
            work.put(None)
        for th in threads:
            th.join()
    summary.elapsed_s = time.perf_counter() - start
    return summary
