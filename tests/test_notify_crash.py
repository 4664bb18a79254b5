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
