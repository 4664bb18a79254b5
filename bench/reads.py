"""Cheap reads (issue #16 item 6): the board's poll at 10,000 agents and a month's CSV export, in one run.

1. ``/api/agents`` at 10,000 agents (the engine of bench/board_poll.py: every agent fed, 500 out of adherence
   with an open exception, evaluated once), in-process through Flask's test client; CPU is
   ``time.process_time`` of this process (which serves the request), median of ``--repeat``:

   * before: the previous view's work for the whole center (``agents_now`` + ``jsonify``; it also paged at
     5,000, so a whole center was two such requests);
   * after: the first poll (the snapshot built from nothing), a poll a second later with nothing changed
     (rows kept, the clock counters filled for the new ``now``), the same poll with ``If-None-Match``
     (304), a poll after 100 agents changed activity (webhooks), a poll after a tick (open exceptions and
     today's figures re-read), board.js's two pages of 5,000, a token scoped to one team.

2. ``/api/exceptions?format=csv`` for 1,000 agents x 31 days (exceptions written straight into a store, 3 an
   agent-day, not through a simulation; the triggers of migration 0011 store each closed exception's CSV
   line in ``exception_lines`` as they would for any writer) served by waitress with the settings of
   ``adherence serve``, against a bare WSGI app on the same server settings sending the same bytes. Also,
   reproduced here, the two previous exports: LIMIT/OFFSET pages of 1,000 (each re-sorting the month, then
   ``exception_row`` and ``csv_lines`` in Python), and one statement making every line in SQLite and sorting
   the month. Wall time of a client on loopback reading the whole body, best of ``--repeat``; every export's
   bytes are checked equal.

Usage: python bench/reads.py [--agents 10000] [--csv-agents 1000] [--days 31] [--repeat 5] [--no-write]
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import out_dir, table, write_section  # noqa: E402

from adherence.timeutil import iso, parse_instant_ms  # noqa: E402

CSV_QUERY = "/api/exceptions?format=csv&from=2026-10-01&to=2026-10-31"
AGENTS_TARGET_MS = 20
CSV_TARGET = 3.0
OLD_FILTERS = ("from", "to", "team")


# -- 1. /api/agents -----------------------------------------------------------------------------------


def cpu(fn, repeat: int, before=None):
    times, out = [], None
    for _ in range(repeat):
        if before:
            before()
        c0 = time.process_time()
        out = fn()
        times.append(time.process_time() - c0)
    return statistics.median(times), out


def agents_rows(n: int, repeat: int) -> tuple[list[list], dict]:
    from board_poll import build
    from flask import jsonify

    from adherence.web.api import agents_now

    folder = out_dir("reads") / "agents"
    engine, client = build(folder, n)
    app = client.application
    clock = engine.clock
    rows, figs = [], {}

    def old_view():
        with app.test_request_context("/api/agents"):
            agents, today = agents_now(engine)
            return jsonify({"ok": True, "agents": agents, "date": today}).get_data()

    before, body = cpu(old_view, max(1, repeat // 2))
    rows.append(["before: the previous view's work, whole center (agents_now + jsonify)",
                 f"{before * 1000:.0f} ms", f"{len(body) / 1e6:.2f} MB", f"{n:,} (the view sent at most 5,000)"])
    figs["before_ms"] = before * 1000

    def get(url, headers=None):
        r = client.get(url, headers=headers or {})
        return r.status_code, r.get_data()

    c0 = time.process_time()
    status, body = get(f"/api/agents?limit={n}")
    first = time.process_time() - c0
    assert status == 200 and len(json.loads(body)["agents"]) == n
    rows.append(["after: first poll, snapshot built from nothing", f"{first * 1000:.0f} ms",
                 f"{len(body) / 1e6:.2f} MB", f"{n:,} of {n:,}"])

    def tick_clock():
        clock.set(clock.now_ms() + 1000)

    steady, (status, body) = cpu(lambda: get(f"/api/agents?limit={n}"), repeat, before=tick_clock)
    rows.append(["after: poll 1 s later, nothing changed (counters refilled)", f"{steady * 1000:.1f} ms",
                 f"{len(body) / 1e6:.2f} MB", f"{len(json.loads(body)['agents']):,} of {n:,}"])
    figs["steady_ms"] = steady * 1000
    tag = client.get(f"/api/agents?limit={n}").headers["ETag"]
    not_mod, (status, body) = cpu(lambda: get(f"/api/agents?limit={n}", {"If-None-Match": tag}), repeat)
    rows.append(["after: the same with If-None-Match (unchanged)", f"{not_mod * 1000:.2f} ms", f"{len(body)} B",
                 f"status {status}"])

    k = [0]

    def change_100():
        k[0] += 1
        clock.set(clock.now_ms() + 1000)
        at = clock.now_ms() - 500
        env = {"product": "Flex", "object": "WFMWorkerChange", "version": 1, "records": [
            {"worker": {"sid": f"WK{i:032d}", "activity_name": "Offline" if k[0] % 2 else "Available"},
             "channels": None, "last_processed_event_sid": f"EV{9_000_000 + k[0] * 1000 + j:032d}",
             "date_last_processed_event": iso(at)}
            for j, i in enumerate(range(k[0] % 7, n, n // 100))]}
        assert client.post("/webhooks/rta", json=env).status_code == 200

    changed, (status, body) = cpu(lambda: get(f"/api/agents?limit={n}"), repeat, before=change_100)
    rows.append(["after: poll after 100 agents changed activity (webhooks)", f"{changed * 1000:.1f} ms",
                 f"{len(body) / 1e6:.2f} MB", f"{n:,} of {n:,}"])
    figs["changed_ms"] = changed * 1000

    def tick():
        clock.set(clock.now_ms() + 15_000)
        engine.runner.tick()

    ticked, (status, body) = cpu(lambda: get(f"/api/agents?limit={n}"), max(1, repeat // 2), before=tick)
    rows.append(["after: poll after a tick (exceptions and today's figures re-read)", f"{ticked * 1000:.1f} ms",
                 f"{len(body) / 1e6:.2f} MB", f"{n:,} of {n:,}"])
    figs["tick_ms"] = ticked * 1000

    def two_pages():
        a = get("/api/agents?limit=5000")
        b = get("/api/agents?limit=5000&offset=5000")
        return a[0], a[1] + b[1]

    paged, (status, body) = cpu(two_pages, repeat, before=tick_clock)
    rows.append(["after: board.js's two pages of 5,000, 1 s later", f"{paged * 1000:.1f} ms",
                 f"{len(body) / 1e6:.2f} MB", f"{n:,} of {n:,} (next followed)"])
    team, (status, body) = cpu(lambda: get("/api/agents?team=t007"), repeat, before=tick_clock)
    rows.append(["after: one team (100 agents), 1 s later", f"{team * 1000:.2f} ms", f"{len(body) / 1e3:.1f} kB",
                 f"{json.loads(body)['total']} of a team"])
    engine.close()
    return rows, figs


# -- 2. CSV export ------------------------------------------------------------------------------------


def fill_store(folder: Path, agents: int, days: int, per_day: int = 3) -> Path:
    """A config and a store with ``agents`` x ``days`` x ``per_day`` exceptions, written directly."""
    (folder / "schedules").mkdir(parents=True, exist_ok=True)
    (folder / "rules").mkdir(exist_ok=True)
    (folder / "schedules" / "roster.yaml").write_text(
        "timezone: UTC\nagents:\n" + "".join(
            f"  a{i:05d}: {{worker_sid: WK{i:032d}, name: Agent {i:05d}, team: t{i // 100:03d}}}\n"
            for i in range(agents)))
    (folder / "rules" / "rules.yaml").write_text(
        "rules:\n  - name: offline-when-scheduled-available\n    when: {scheduled: Available, activity: Offline}\n"
        "    for: 5m\n    severity: critical\n")
    cfg = folder / "config.yaml"
    cfg.write_text("database: csv.db\ntimezone: UTC\nschedules: schedules\nrules: rules\n")
    for p in folder.glob("csv.db*"):
        p.unlink()
    from adherence.clock import FixedClock
    from adherence.config import load_config
    from adherence.engine import Engine

    engine = Engine(load_config(cfg), FixedClock(parse_instant_ms("2026-11-02T12:00:00Z")))
    rnd = random.Random(1)
    rules = ["offline-when-scheduled-available", "late-login", "long-break"]
    with engine.store.write() as conn:
        for d in range(days):
            day = f"2026-10-{d + 1:02d}"
            midnight = parse_instant_ms(f"{day}T00:00:00Z")
            batch = []
            for i in range(agents):
                for k in range(per_day):
                    start = midnight + rnd.randint(8 * 3_600_000, 18 * 3_600_000)
                    end = start + rnd.randint(300, 3_600) * 1000
                    batch.append((f"WK{i:032d}", f"a{i:05d}", f"t{i // 100:03d}", rules[k % 3],
                                  "critical" if k == 0 else "warning", "Available", "Offline", "none", start, end, day,
                                  int(rnd.random() < 0.1), "lunch ran over, approved" if rnd.random() < 0.05 else None,
                                  end))
            conn.executemany(
                "INSERT INTO exceptions (worker_sid, agent, team, rule, severity, scheduled_activity, "
                "actual_activity, task_state, start_ms, end_ms, day, approved, note, updated_ms) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", batch)
    engine.close()
    return cfg


def serve_main(kind: str, arg: str, port_file: str) -> None:
    """A server process: ``app`` (adherence's app on config ``arg``), ``old`` (the previous export), ``bare``
    (the bytes of file ``arg``)."""
    from adherence.web.server import make_server

    if kind == "bare":
        data = Path(arg).read_bytes()
        chunks = [data[i:i + 150_000] for i in range(0, len(data), 150_000)]

        def app(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/csv"), ("Content-Length", str(len(data)))])
            return chunks
    else:
        from adherence.config import load_config
        from adherence.engine import Engine
        from adherence.web import create_app

        engine = Engine(load_config(Path(arg)))
        app = create_app(engine=engine)
        if kind == "old":
            from flask import Response, request

            from adherence import queries
            from adherence.queries import EXCEPTION_COLUMNS, Filters, csv_lines, exceptions

            def old_export():
                f = Filters.parse({k: request.args.get(k) for k in OLD_FILTERS}, allowed=OLD_FILTERS)

                def pages():
                    offset = 0
                    while True:
                        rows, _ = exceptions(engine, f, limit=1000, offset=offset, with_total=False)
                        yield from rows
                        if len(rows) < 1000:
                            return
                        offset += 1000

                return Response(csv_lines(pages(), EXCEPTION_COLUMNS), mimetype="text/csv")

            def old_statement():
                # the export before stored lines: one statement, every line made by SQLite, the month sorted
                f = Filters.parse({k: request.args.get(k) for k in OLD_FILTERS}, allowed=OLD_FILTERS)
                where, params = queries._exception_where(engine, f)
                sql = f"SELECT {queries._exception_line()} FROM exceptions{where} {queries.EXCEPTION_ORDER}"
                return Response(queries._csv_text(engine, sql, [engine.clock.now_ms(), *params], EXCEPTION_COLUMNS),
                                mimetype="text/csv")

            app.add_url_rule("/old/exceptions", "old_export", old_export)
            app.add_url_rule("/old/statement", "old_statement", old_statement)
    server = make_server(app, host="127.0.0.1", port=0, threads=8, max_body_bytes=1 << 20)
    Path(port_file).write_text(str(server.effective_port))
    server.run()


def fetch(port: int, path: str) -> tuple[float, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    t0 = time.perf_counter()
    conn.request("GET", path)
    resp = conn.getresponse()
    body = resp.read()
    took = time.perf_counter() - t0
    conn.close()
    assert resp.status == 200, (resp.status, body[:200])
    return took, body


def start(kind: str, arg: str, folder: Path) -> tuple[subprocess.Popen, int]:
    port_file = folder / f"port-{kind}"
    port_file.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, __file__, "--serve", kind, arg, str(port_file)])
    deadline = time.time() + 120
    while not port_file.exists() or not port_file.read_text():
        if proc.poll() is not None or time.time() > deadline:
            raise SystemExit(f"{kind} server did not start")
        time.sleep(0.1)
    time.sleep(0.3)
    return proc, int(port_file.read_text())


def csv_rows(agents: int, days: int, repeat: int) -> tuple[list[list], dict]:
    folder = out_dir("reads") / "csv"
    cfg = fill_store(folder, agents, days)
    procs = []
    try:
        app, app_port = start("app", str(cfg), folder)
        procs.append(app)
        fetch(app_port, CSV_QUERY)  # warm: the page cache, the first connection
        after = [fetch(app_port, CSV_QUERY) for _ in range(repeat)]
        body = after[0][1]
        n_rows = body.count(b"\r\n") - 1
        ref = folder / "export.csv"
        ref.write_bytes(body)
        bare, bare_port = start("bare", str(ref), folder)
        procs.append(bare)
        fetch(bare_port, "/")
        base = [fetch(bare_port, "/") for _ in range(repeat)]
        assert all(b == body for _t, b in base)
        old, old_port = start("old", str(cfg), folder)
        procs.append(old)
        before = [fetch(old_port, "/old/exceptions?from=2026-10-01&to=2026-10-31") for _ in range(max(1, repeat // 3))]
        assert before[0][1] == body, "the paged export's bytes differ"
        statement = [fetch(old_port, "/old/statement?from=2026-10-01&to=2026-10-31") for _ in range(repeat)]
        assert statement[0][1] == body, "the one-statement export's bytes differ"
        team = [fetch(app_port, CSV_QUERY + "&team=t001") for _ in range(repeat)]
        team_old = [fetch(old_port, "/old/statement?from=2026-10-01&to=2026-10-31&team=t001")]
        assert team[0][1] == team_old[0][1], "the team export's bytes differ"
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
    parts = statement_parts(folder / "csv.db", repeat)
    t_bare = min(t for t, _ in base)
    t_after = min(t for t, _ in after)
    t_before = min(t for t, _ in before)
    t_statement = min(t for t, _ in statement)
    t_team = min(t for t, _ in team)
    med_after, med_bare = statistics.median(t for t, _ in after), statistics.median(t for t, _ in base)
    team_rows = team[0][1].count(b"\r\n") - 1
    rows = [
        ["bare WSGI app, same bytes (150 kB chunks)", f"{t_bare * 1000:.0f} ms", "1.0x", ""],
        ["before: LIMIT/OFFSET pages of 1,000 + Python rows (first export)", f"{t_before * 1000:,.0f} ms",
         f"{t_before / t_bare:.0f}x", ""],
        ["before: one statement, lines made by SQLite, month sorted (previous export)",
         f"{t_statement * 1000:,.0f} ms", f"{t_statement / t_bare:.1f}x", ""],
        ["after: stored lines (exception_lines) walked in order, joined by SQLite", f"{t_after * 1000:.0f} ms",
         f"{t_after / t_bare:.1f}x", f"<= {CSV_TARGET:.0f}x: {'met' if t_after / t_bare <= CSV_TARGET else 'MISSED'}"],
        ["  the same, medians of both", f"{med_after * 1000:.0f} ms", f"{med_after / med_bare:.1f}x", ""],
        [f"after: with &team=t001 (not by date alone: sorted, stored lines looked up), {team_rows:,} rows",
         f"{t_team * 1000:.0f} ms", "", ""],
    ]
    for label, took in parts:
        rows.append([f"  in-process, no HTTP: {label}", f"{took * 1000:.0f} ms", f"{took / t_bare:.1f}x", ""])
    return rows, {"bytes": len(body), "rows": n_rows, "bare_ms": t_bare * 1000, "after_ms": t_after * 1000,
                  "before_ms": t_before * 1000, "statement_ms": t_statement * 1000, "ratio": t_after / t_bare,
                  "median_ratio": med_after / med_bare}


def statement_parts(db: Path, repeat: int) -> list[tuple[str, float]]:
    """Where the export's time goes, without HTTP: the previous statement, and the parts of the walk."""
    from types import SimpleNamespace

    from adherence import queries
    from adherence.queries import Filters

    store = SimpleNamespace(path=db, reader=None, _immutable=False)
    engine = SimpleNamespace(store=store)
    conn = queries._stream_connection(engine)
    f = Filters.parse({"from": "2026-10-01", "to": "2026-10-31"}, allowed=("from", "to"))
    where, params = " WHERE day >= ? AND day <= ?", ["2026-10-01", "2026-10-31"]

    def drain(sql, args):
        cur = conn.execute(sql, args)
        while cur.fetchmany(1000):
            pass

    def best(fn) -> float:
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    out = [
        ("the previous statement (the month sorted, every line made)",
         best(lambda: drain(f"SELECT {queries._exception_line()} FROM exceptions{where} {queries.EXCEPTION_ORDER}",
                            [0, *params]))),
        ("the month's first and last start (a few index seeks a day)", best(lambda: queries._start_bounds(conn, f))),
        ("the walk: bounds, then windows of ~2,000 stored lines joined by SQLite",
         best(lambda: sum(len(c) for c in queries._stored_lines(engine, f, 0)))),
        ("the same rows one by one into Python (the walk's alternative)",
         best(lambda: drain(f"SELECT line FROM exception_lines{where} {queries.EXCEPTION_ORDER}", params))),
    ]
    conn.close()
    return out


CSV_ANALYSIS = """What changed: migration 0011 keeps every exception's CSV line in `exception_lines`, a
table keyed by the export's order (start, id), written by triggers on `exceptions` (so the engine, approvals,
recompute, notes and any other writer keep it: tests/test_exception_lines.py checks stored == made fresh through
each of them and for arbitrary cell values). An open exception's line (its duration grows) and a line with a cell
only Python writes right (the formula guard) are NULL there and made when read, as before. An export by date
finds the first and last start of its days with a few seeks a day on the new `exceptions(day, start_ms)` index,
then walks `exception_lines` backwards in windows of ~2,000 rows, each window one statement whose lines SQLite
joins (`group_concat` over the ordered rows): no sort, no formatting, no Python object a row. Exports filtered by
more than dates (team, agent, rule...) keep the sorted statement but take each stored line instead of making it
(the team row above).

What limits it: in-process the walk alone is 1.6x-2.7x the bare server's whole response across runs (the
table's row; the rows one by one into Python instead, ~1.6x that); the rest is the HTTP path of a streamed response of unknown length (chunked encoding,
Flask, str to bytes), which alone costs ~1.3-1.5x bare for the same bytes (measured by hand with a generator of
precomputed chunks), and the two overlap only partly on 2 shared cores. Runs on this machine, loaded by other
work, gave 3.3x to 5.7x best-of for the same code (the bare server's 16-49 ms moves most); chunk sizes of 600 to
6,000 rows and bytes instead of str chunks made no difference that stood out of that noise. Below 3x reliably
would need the bytes without the per-request walk (a cached file per closed month) or a Content-Length response;
neither is done.

Cost: ~265 bytes of file a exception (`exception_lines` ~240: the line is ~170; the (day, start) index a little
more than the (day) one it replaces) and a trigger on each write of an exception (the tick writes few). Migration
0011 on a database with 1,095,000 exceptions (1,000 agents x 365 days): 21.5 s, file 253 -> 543 MB (24 MB of it
free pages of the dropped index, reused later), measured by hand; see docs/operations.md."""


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve_main(*sys.argv[2:5])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--agents", type=int, default=10_000)
    ap.add_argument("--csv-agents", type=int, default=1000)
    ap.add_argument("--days", type=int, default=31)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    args = ap.parse_args()
    a_rows, a = agents_rows(args.agents, args.repeat)
    c_rows, c = csv_rows(args.csv_agents, args.days, args.repeat)
    worst = max(a["steady_ms"], a["changed_ms"])
    body = (
        f"**`/api/agents`**, {args.agents:,} agents in the roster and the feed ({args.agents // 20:,} out of "
        "adherence with an open exception), in-process (Flask test client); CPU is `time.process_time` of the "
        f"process serving the request, median of {args.repeat}. Target <= {AGENTS_TARGET_MS} ms a poll with all "
        f"agents: {'met' if worst <= AGENTS_TARGET_MS else 'MISSED'} for a poll with nothing or 100 agents "
        f"changed ({a['steady_ms']:.1f} / {a['changed_ms']:.1f} ms, {a['before_ms'] / worst:.0f}x less than "
        f"before); a poll right after a tick pays the re-read of the figures ({a['tick_ms']:.0f} ms, once a "
        "tick, shared by every screen).\n\n"
        + table(["request", "CPU per poll", "bytes", "agents"], a_rows)
        + f"\n\n**`{CSV_QUERY}`**: {args.csv_agents:,} agents x {args.days} days, {c['rows']:,} exceptions "
        f"({c['bytes'] / 1e6:.1f} MB of CSV), written straight into the store. Both servers: waitress with the "
        "settings of `adherence serve` (8 threads), in their own processes; the client reads the whole body on "
        f"loopback; best of {args.repeat} (the paged export: of {max(1, args.repeat // 3)}). The bare app sends "
        "the export's own bytes; every export's bytes are checked equal to it.\n\n"
        + table(["server", "wall", "vs bare", "target"], c_rows)
        + f"\n\nThe target is {'met' if c['ratio'] <= CSV_TARGET else 'MISSED'} in this run ({c['ratio']:.1f}x "
        f"best, {c['median_ratio']:.1f}x median; was {c['statement_ms'] / c['bare_ms']:.0f}x with the previous "
        "statement, same run). " + CSV_ANALYSIS
    )
    print(body)
    if not args.no_write:
        write_section("reads", "Cheap reads: the board's poll and a month's CSV (issue #16 item 6)", body)
    print(json.dumps({**{f"agents_{k}": round(v, 2) for k, v in a.items()}, **{f"csv_{k}": round(v, 2) if
                      isinstance(v, float) else v for k, v in c.items()}}))


if __name__ == "__main__":
    main()
