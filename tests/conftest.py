"""Shared fixtures: a config on a temp database, an app, a client, a fixed clock."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import os

import pytest
from hypothesis import settings

# CI runs every property test on the same examples, so a result never depends on luck;
# run locally without CI=true to explore new examples.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

from adherence.clock import FixedClock
from adherence.config import load_config
from adherence.engine import Engine
from adherence.queries import Filters, adherence, exceptions
from adherence.timeutil import iso
from adherence.web import create_app

REPO = Path(__file__).resolve().parent.parent
# Twilio's published example events of the Flex "WFM Real-Time Adherence" feed (see README.md there).
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "rta"


def fixture_paths() -> list[Path]:
    return sorted(FIXTURES.glob("*.json"))


def load_fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def workdir(tmp_path) -> Path:
    """A copy of the repo's example schedules and rules with a config beside them."""
    shutil.copytree(REPO / "schedules", tmp_path / "schedules")
    shutil.copytree(REPO / "rules", tmp_path / "rules")
    (tmp_path / "config.yaml").write_text(
        "database: adherence.db\ntimezone: America/New_York\nschedules: schedules\nrules: rules\n"
        "evaluation:\n  interval: 15s\n"
        "auth:\n  twilio_auth_token: ${TWILIO_AUTH_TOKEN}\n  api_token: ${ADHERENCE_API_TOKEN}\n"
    )
    return tmp_path


@pytest.fixture(autouse=True)
def _no_secrets_from_the_environment(monkeypatch):
    """Tests set the secrets they need; none leak in from the machine."""
    for var in ("TWILIO_AUTH_TOKEN", "ADHERENCE_API_TOKEN", "ADHERENCE_CONFIG"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock("2026-11-25T15:00:00Z")


def make_engine(workdir: Path, clock, **overrides) -> Engine:
    cfg = load_config(workdir / "config.yaml", overrides=overrides or None)
    return Engine(cfg, clock)


@pytest.fixture
def engine(workdir, clock):
    eng = make_engine(workdir, clock)
    yield eng
    eng.close()


@pytest.fixture
def app(engine):
    return create_app(engine=engine)


@pytest.fixture
def client(app):
    return app.test_client()


class Center:
    """A test harness: an engine on a fixed clock, fed through the real webhook, ticked by hand.

    ``db`` names another database file beside the config (a second process on the same folder);
    other keyword arguments override config keys.
    """

    def __init__(self, folder, start: int, db: str | None = None, **overrides):
        if db is not None:
            overrides["database"] = db
        self.clock = FixedClock(start)
        self.folder = folder
        self.engine = Engine(load_config(folder / "config.yaml", overrides=overrides or None), self.clock)
        self.app = create_app(engine=self.engine)
        self.client = self.app.test_client()
        self.n = 0

    def send(self, worker: str, at: int, activity: str, task: str = "none", headers: dict | None = None):
        """Deliver a record; the clock moves to its time if it is ahead (records don't come from the future)."""
        if at > self.clock.now_ms():
            self.clock.set(at)
        self.n += 1
        channels = None
        if task != "none":
            status = {"active": "accepted", "wrapping": "wrapping", "reserved": "created"}[task]
            channels = [{"task_channel_name": "voice", "available": True, "available_capacity": 0, "capacity": 1,
                         "reservations": [{"sid": "WR1", "status": status}]}]
        env = {"product": "Flex", "object": "WFMWorkerChange", "version": 1, "records": [{
            "worker": {"sid": worker, "activity_name": activity}, "channels": channels,
            "last_processed_event_sid": f"EV{self.n:032d}", "date_last_processed_event": iso(at)}]}
        resp = self.client.post("/webhooks/rta", json=env, headers=headers or {})
        assert resp.status_code == 200, resp.get_json()

    def tick(self, at: int):
        self.clock.set(at)
        return self.engine.runner.tick()

    def exceptions(self, **filters):
        filters.setdefault("agent", "ann")
        rows, _ = exceptions(self.engine, Filters.parse(filters, allowed=filters.keys()))
        return sorted(rows, key=lambda r: (r["start"], r["rule"]))

    def day(self, worker: str, d: str) -> dict:
        rows, _ = adherence(self.engine, Filters.parse({"date": d, "agent": worker}, allowed=["date", "agent"]))
        assert len(rows) == 1
        return rows[0]
