"""Start a real ``adherence serve`` process for end-to-end tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import requests


class Server:
    def __init__(self, config: Path, env: dict | None = None, args: list[str] | None = None, verb: str = "serve"):
        self.config = config
        self.verb = verb
        self.env = {**os.environ, **(env or {})}
        self.args = args or []
        self.proc: subprocess.Popen | None = None
        self.url = None
        self.log = Path(str(config) + ".log")
        self.wait_ready = True  # start() returns once /health no longer says "starting"

    def start(self, timeout: float = 30) -> "Server":
        self._fh = open(self.log, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "adherence", self.verb, "--config", str(self.config), "--port", "0", *self.args],
            stdout=self._fh, stderr=subprocess.STDOUT, env=self.env,
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = re.search(rb"listening on (http://\S+)", self.log.read_bytes())
            if m:
                self.url = m.group(1).decode()
                break
            if self.proc.poll() is not None:
                raise RuntimeError("server exited: " + self.log.read_text())
            time.sleep(0.05)
        else:
            raise RuntimeError("server did not start: " + self.log.read_text())
        while time.time() < deadline:
            try:
                health = requests.get(self.url + "/health", timeout=2)
            except requests.ConnectionError:
                time.sleep(0.05)
                continue
            if not self.wait_ready or not _starting(health):
                return self
            time.sleep(0.05)
        raise RuntimeError("server not answering, or still starting: " + self.log.read_text()[-2000:])

    def kill(self, sig: int = 9) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)
        if hasattr(self, "_fh"):
            self._fh.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.kill(15)


def _starting(resp) -> bool:
    try:
        return resp.json().get("status") == "starting"
    except ValueError:
        return False
