"""kill -9 between the exception change and the send: the alert goes out exactly once after the restart.

The child process is a real engine on the test's folder: it journals the
records through the webhook, runs the tick that opens the exception (the
outbox entry commits with it) and is killed with SIGKILL before its sender
runs. A fresh process then delivers the entry once, and re-evaluating after
the restart adds nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from test_notify import ANN, N, T, folder, hook_channel  # noqa: F401 (fixtures below)
from notify_helpers import SECRET, Receiver

pytestmark = pytest.mark.slow

CHILD = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from test_notify import ANN, N, T
c = N(__import__("pathlib").Path({folder!r}), T("08:55"))
c.send(ANN, T("09:40"), "Offline")
c.tick(T("09:50"))      # the exception opens; its outbox entry commits in the same transaction
assert c.outbox()[0]["status"] == "pending"
os.kill(os.getpid(), signal.SIGKILL)   # before any send
"""


@pytest.fixture
def hook(monkeypatch):
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    r = Receiver()
    yield r
    r.close()


def test_kill_9_after_the_exception_change_sends_exactly_once_after_restart(tmp_path, hook):
    folder(tmp_path, """
        - name: all
          channel: hook
          events: [open, close]
    """, hook_channel(hook.url))
    tests = os.path.dirname(os.path.abspath(__file__))
    child = subprocess.run([sys.executable, "-c", textwrap.dedent(CHILD.format(tests=tests, folder=str(tmp_path)))],
                           env={**os.environ, "HOOK_SECRET": SECRET}, capture_output=True, timeout=120,
                           cwd=os.path.dirname(tests))
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()
    assert hook.bodies == []
    c = N(tmp_path, T("09:51"))  # the restart (its own records at 08:58 change nothing)
    c.n = 1000  # event SIDs the child did not use (the journal counts a repeated SID once)
    c.tick(T("09:51"))
    c.send_all()
    assert hook.events() == [("opened", "ann", "2026-11-24T14:40:00Z")]
    c.tick(T("09:52"))
    c.engine.runner.recompute(__import__("datetime").date(2026, 11, 24), __import__("datetime").date(2026, 11, 24))
    c.engine.notifier.tick(T("09:53"))
    c.send_all()
    assert len(hook.bodies) == 1
    c.send(ANN, T("09:54"), "Available")
    c.tick(T("09:55"))
    c.send_all()
    assert [e[0] for e in hook.events()] == ["opened", "closed"]


def test_a_real_serve_killed_while_the_receiver_is_down_delivers_once_after_restart(tmp_path, hook):
    """``adherence serve`` (its own scheduler and sender threads, the real clock): the receiver is down, the
    alert is written and tried, the process is killed with SIGKILL; after a restart with the receiver back
    it arrives once, and later ticks send nothing more."""
    import sqlite3
    import time

    import requests

    from adherence.timeutil import iso as iso_ms
    from servers import Server

    folder(tmp_path, """
        - name: all
          channel: hook
    """, hook_channel(hook.url), "delivery: {backoff: 1s, max_backoff: 2s, max_attempts: 50}")
    (tmp_path / "rules" / "rules.yaml").write_text(
        "rules:\n  - name: offline-any-time\n    when: {activity: [Offline]}\n    for: 1m\n    severity: critical\n")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(cfg.read_text() + "evaluation:\n  interval: 1s\n")
    env = {"HOOK_SECRET": SECRET}
    hook.status = 500
    now = int(time.time() * 1000)

    def post(srv, at, activity, n):
        env_ = {"product": "Flex", "object": "WFMWorkerChange", "version": 1, "records": [{
            "worker": {"sid": ANN, "activity_name": activity}, "channels": None,
            "last_processed_event_sid": f"EV{n:032d}", "date_last_processed_event": iso_ms(at)}]}
        assert requests.post(srv.url + "/webhooks/rta", json=env_, timeout=10).status_code == 200

    def outbox():
        conn = sqlite3.connect(f"file:{tmp_path / 'a.db'}?mode=ro", uri=True)
        try:
            return conn.execute("SELECT status, attempts FROM outbox").fetchall()
        except sqlite3.OperationalError:
            return []
        finally:
            conn.close()

    srv = Server(cfg, env=env).start()
    try:
        post(srv, now - 10 * 60_000, "Available", 1)
        post(srv, now - 5 * 60_000, "Offline", 2)
        deadline = time.time() + 30
        while time.time() < deadline and not any(a >= 2 for _, a in outbox()):
            time.sleep(0.1)
        assert [s for s, a in outbox()] == ["pending"] and outbox()[0][1] >= 2  # written, tried, failed
    finally:
        srv.kill(signal.SIGKILL)
    hook.status = 200
    srv = Server(cfg, env=env).start()
    try:
        deadline = time.time() + 30
        while time.time() < deadline and not hook.bodies:
            time.sleep(0.1)
        time.sleep(3)  # three more ticks
        assert hook.events() == [("opened", "ann", iso_ms(now - 5 * 60_000))]
        assert hook.bad_signatures == 0 and outbox() == [("sent", outbox()[0][1])]
    finally:
        srv.kill(15)
