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
