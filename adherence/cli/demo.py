"""``adherence demo``: a live board within seconds, fed by a simulated contact center."""

from __future__ import annotations

import dataclasses
import shutil
import threading
import time
from pathlib import Path

import click

from . import cli
from .common import config_option

HOUR = 3_600_000


class Feeder(threading.Thread):
    """Feeds a simulation into the engine on the engine's clock.

    Events already due (the simulated morning before "now") go in at once, in
    batches; later ones as the (possibly accelerated) clock reaches them.
    Ingestion goes through the same Journal as the webhook.
    """

    def __init__(self, engine, sim):
        super().__init__(name="adherence-demo-feeder", daemon=True)
        self.engine = engine
        self.sim = sim
        self.stop = threading.Event()
        self.fed = 0
        self.caught_up = threading.Event()

    def run(self) -> None:
        from ..feed import parse_envelope

        clock = self.engine.clock
        batch: list = []
        for due, envelope in self.sim.events():
            if self.stop.is_set():
                return
            now = clock.now_ms()
            if due > now:
                if batch:
                    self._ingest(batch)
                    batch = []
                self.caught_up.set()
                while not self.stop.is_set() and clock.now_ms() < due:
                    speed = getattr(clock, "speed", 1.0)
                    time.sleep(min(0.5, max(0.001, (due - clock.now_ms()) / 1000 / speed)))
                now = clock.now_ms()
            batch.append((parse_envelope(envelope, now), now))
            if len(batch) >= 500:
                self._ingest(batch)
                batch = []
        if batch:
            self._ingest(batch)
        self.caught_up.set()

    def _ingest(self, batch) -> None:
        counts = self.engine.journal.ingest_parsed(batch)
        self.fed += counts.accepted


@cli.command()
@config_option
@click.option("--agents", default=40, show_default=True, help="Simulated agents.")
@click.option("--speed", default=1.0, show_default=True, help="Simulated seconds per real second (e.g. 10).")
@click.option("--seed", default=1, show_default=True, help="Simulation seed.")
@click.option("--dir", "workdir", default="adherence-demo", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the demo's roster and database (replaced at each start).")
@click.option("--host", help="Interface to bind (default: server.host).")
@click.option("--port", type=int, help="Port (default: server.port; 0 picks a free one).")
def demo(config, agents, speed, seed, workdir, host, port) -> None:
    """Serve the board fed by a simulated contact center, live within seconds.

    The simulated day started two hours ago, so agents are mid-shift: the
    morning is ingested at once, then events arrive as they happen (or
    faster, with --speed). Uses the config's rules and time zone, and its own
    roster and SQLite database in --dir. Open the printed URL.

    Example: adherence demo --agents 60 --speed 5
    """
    from .. import logs
    from ..clock import ScaledClock, SystemClock
    from ..engine import Engine
    from ..simulate import generate
    from .core import build_server, run_server

    if agents < 1 or speed <= 0:
        raise click.BadParameter("--agents must be at least 1 and --speed above 0")
    logs.setup(config.log_level)
    now = SystemClock().now_ms()
    sim = generate(agents, 10, seed, now - 2 * HOUR, config.timezone)
    if workdir.exists():
        shutil.rmtree(workdir)
    (workdir / "schedules").mkdir(parents=True)
    (workdir / "schedules" / "roster.yaml").write_text(sim.roster_yaml(), encoding="utf-8")
    demo_config = dataclasses.replace(
        config,
        database=(workdir / "demo.db").resolve(),
        schedules=(workdir / "schedules").resolve(),
        evaluation_interval_ms=min(config.evaluation_interval_ms, 2_000),
    )
    engine = Engine(demo_config, ScaledClock(now, speed))
    feeder = Feeder(engine, sim)
    feeder.start()
    feeder.caught_up.wait(timeout=60)
    server = build_server(demo_config, engine, host or config.server_host,
                          config.server_port if port is None else port, config.server_threads)
    engine.start_scheduler()
    shown = host or config.server_host
    click.echo(f"adherence demo: {agents} simulated agents, {feeder.fed} records so far, speed x{speed:g}", err=True)
    click.echo(f"adherence: listening on http://{shown}:{server.effective_port} (database {demo_config.database})", err=True)
    try:
        run_server(server, engine)
    finally:
        feeder.stop.set()
