"""Shared helpers of the bench scripts: machine facts, output folder, RESULTS.md sections.

Each bench script owns one section of ``bench/RESULTS.md``, delimited by
``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``; it rewrites only its own
section and keeps the others as they are.
"""

from __future__ import annotations

import os
import platform
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "RESULTS.md"
HEADER = """# Benchmarks

Figures written by the scripts in `bench/` (issue #6). Each section is
rewritten by its own script (`python bench/<name>.py`, or `bench/run_all.sh`
for all of them) and carries the machine it ran on. Targets are in each table.
"""


def out_dir(name: str) -> Path:
    """bench/out/NAME (gitignored), or $BENCH_OUT/NAME."""
    base = Path(os.environ.get("BENCH_OUT") or BENCH / "out")
    d = base / name
    d.mkdir(parents=True, exist_ok=True)
    return d


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def ram_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return None


def machine() -> str:
    ram = ram_gb()
    return (
        f"{cpu_model()}, {os.cpu_count()} cores, "
        f"{'%.1f GB RAM' % ram if ram else 'RAM unknown'}, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"{platform.system()} {platform.release()}"
    )


def now_text() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def table(headers: list[str], rows: list[list]) -> str:
    """A Markdown table (also readable on a terminal)."""
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    def line(vals):
        return "| " + " | ".join(v.ljust(w) for v, w in zip(vals, widths)) + " |"
    out = [line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in cells]
    return "\n".join(out)


def write_section(name: str, title: str, body: str) -> None:
    """Replace (or append) the section NAME of bench/RESULTS.md."""
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else HEADER
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = (
        f"{start}\n## {title}\n\n"
        f"Run {now_text()} with `{' '.join(['python', 'bench/' + Path(sys.argv[0]).name, *sys.argv[1:]])}` on: "
        f"{machine()}.\n\n{body.strip()}\n{end}"
    )
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    RESULTS.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    print(f"\nupdated {RESULTS.relative_to(REPO)} (section {name})")


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


class Timer:
    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.s = time.perf_counter() - self.t0


def rss_mb(pid: int) -> float:
    """Resident set size of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def free_port() -> int:
    """A loopback port nobody listens on now (for a server a bench starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen, timeout: float = 60) -> None:
    """SIGTERM a server a bench started, as an operator would; SIGKILL if it has not exited in ``timeout``."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def simulate_cmd() -> list[str]:
    return [sys.executable, "-m", "adherence", "simulate"]
