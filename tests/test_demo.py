"""``adherence demo``: a board with live agents within seconds."""

from __future__ import annotations

import time

import requests

from servers import Server


def test_demo_serves_a_moving_center(workdir):
    demo_dir = workdir / "demo"
    with Server(workdir / "config.yaml", args=["--dir", str(demo_dir), "--agents", "12", "--speed", "20"],
                verb="demo") as srv:
        deadline = time.time() + 30
        while time.time() < deadline:
            health = requests.get(srv.url + "/health").json()
            if health["evaluator"]["last_tick"]:
                break
            time.sleep(0.2)
        assert health["ok"], health
        agents = requests.get(srv.url + "/api/agents").json()["agents"]
        assert len(agents) == 12
        assert sum(1 for a in agents if a["seen"]) >= 10  # mid-shift: nearly everyone has logged in
        assert any(a["scheduled_activity"] for a in agents)
        first = requests.get(srv.url + "/metrics").text
        time.sleep(3)  # at x20, a minute of contact center
        second = requests.get(srv.url + "/metrics").text
        assert _accepted(second) > _accepted(first)  # the feed keeps moving
        assert (demo_dir / "demo.db").exists() and (demo_dir / "schedules" / "roster.yaml").exists()


def _accepted(metrics: str) -> float:
    for line in metrics.splitlines():
        if line.startswith("adherence_records_accepted_total "):
            return float(line.split()[1])
    return 0.0
