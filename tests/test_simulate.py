"""The simulated contact center: feed shape, realism, imperfections, roster, CLI, --post."""

from __future__ import annotations

import base64
import json
import re
import threading
from collections import Counter, defaultdict
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from click.testing import CliRunner
from twilio.request_validator import RequestValidator

from adherence.cli import cli
from adherence.cli.simulate import default_start_ms, parse_start
from adherence.config import load_config
from adherence.schedules import load_schedules
from adherence.simulate import generate, rules_folder, write
from adherence.timeutil import parse_instant_ms, to_ms

from conftest import FIXTURES
TZ = "America/New_York"
START = to_ms(datetime(2026, 11, 25, 8, 0, tzinfo=ZoneInfo(TZ)))

RES_STATUSES = {"accepted", "canceled", "completed", "pending", "rejected", "rescinded", "timeout", "wrapping", "created"}
TASK_ASSIGNMENT = {"pending", "reserved", "assigned", "canceled", "wrapping", "completed"}
HOLDS = {"created", "pending", "accepted", "wrapping"}
TERMINAL = {"completed", "canceled", "rejected", "rescinded", "timeout"}
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def _sid(prefix: str) -> re.Pattern:
    return re.compile(rf"^{prefix}[0-9a-f]{{32}}$")


def _published_keys() -> dict[str, set]:
    """Key sets of the published examples: record, worker, channel, reservation (without `direction`)."""
    keys: dict[str, set] = {"record": set(), "worker": set(), "channel": set(), "reservation": set()}
    paths = sorted(FIXTURES.glob("*.json"))
    assert paths, f"published examples missing from {FIXTURES}"
    for p in paths:
        for rec in json.loads(p.read_text())["records"]:
            keys["record"] |= set(rec)
            keys["worker"] |= set(rec["worker"])
            for ch in rec["channels"] or []:
                keys["channel"] |= set(ch)
                for r in ch["reservations"] or []:
                    keys["reservation"] |= set(r) - {"direction"}
    return keys


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _records(envelopes: list[dict]) -> list[dict]:
    return [r for e in envelopes for r in e["records"]]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A longer run (80 agents, 10 h) written once, parsed once."""
    out = tmp_path_factory.mktemp("sim")
    sim = generate(80, 10, 7, START, TZ)
    stats = write(sim, out)
    envelopes = _lines(out / "feed.jsonl")
    return {"out": out, "sim": sim, "stats": stats, "envelopes": envelopes, "records": _records(envelopes)}


# ---- determinism -----------------------------------------------------------------------


def _files(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_files(tmp_path):
    runner = CliRunner()
    args = ["simulate", "--agents", "15", "--hours", "3", "--seed", "42", "--start", "2026-11-25T08:00"]
    for name in ("a", "b"):
        res = runner.invoke(cli, args + ["--out", str(tmp_path / name)])
        assert res.exit_code == 0, res.output
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert set(a) == {"feed.jsonl", "schedules/roster.yaml", "config.yaml"}
    assert a == b
    # and the library gives the same feed as the CLI
    write(generate(15, 3, 42, START, TZ), tmp_path / "lib")
    assert _files(tmp_path / "lib") == a


def test_different_seeds_differ(tmp_path):
    write(generate(10, 2, 1, START, TZ), tmp_path / "one")
    write(generate(10, 2, 2, START, TZ), tmp_path / "two")
    assert (tmp_path / "one" / "feed.jsonl").read_bytes() != (tmp_path / "two" / "feed.jsonl").read_bytes()
    assert (tmp_path / "one" / "schedules" / "roster.yaml").read_text() != (
        tmp_path / "two" / "schedules" / "roster.yaml"
    ).read_text()


def test_worker_sids_are_deterministic_from_the_seed():
    a = [p.sid for p in generate(5, 1, 3, START, TZ).agents]
    b = [p.sid for p in generate(5, 1, 3, START, TZ).agents]
    c = [p.sid for p in generate(5, 1, 4, START, TZ).agents]
    assert a == b != c
    assert all(_sid("WK").match(s) for s in a)
    assert len(set(a)) == 5


# ---- shape -----------------------------------------------------------------------------


def test_every_line_is_an_envelope_shaped_like_the_published_examples(run):
    keys = _published_keys()
    assert run["envelopes"]
    for env in run["envelopes"]:
        assert set(env) == {"product", "object", "version", "records"}
        assert (env["product"], env["object"], env["version"]) == ("Flex", "WFMWorkerChange", 1)
        assert isinstance(env["records"], list) and env["records"]
    for rec in run["records"]:
        assert set(rec) == keys["record"]
        assert set(rec["worker"]) == keys["worker"]
        assert _sid("WK").match(rec["worker"]["sid"])
        assert rec["worker"]["activity_sid"] is None or _sid("WA").match(rec["worker"]["activity_sid"])
        assert _sid("AC").match(rec["account_sid"]) and _sid("WS").match(rec["workspace_sid"])
        assert _sid("EV").match(rec["last_processed_event_sid"])
        assert ISO_MS.match(rec["date_last_processed_event"])
        assert rec["channels"] is None or (isinstance(rec["channels"], list) and rec["channels"])
        for ch in rec["channels"] or []:
            assert set(ch) == keys["channel"]
            assert _sid("TC").match(ch["task_channel_sid"])
            assert ch["worker_channel_sid"] is None or _sid("WC").match(ch["worker_channel_sid"])
            assert ch["task_channel_name"] in ("voice", "chat")
            for r in ch["reservations"] or []:
                assert set(r) - {"direction"} == keys["reservation"]
                assert r.get("direction", "inbound") in ("inbound", "outbound")
                for k, prefix in (("sid", "WR"), ("task_sid", "WT"), ("workflow_sid", "WW"), ("task_queue_sid", "WQ")):
                    assert _sid(prefix).match(r[k])
                for k in ("date_created", "date_updated", "date_reservation_status_updated"):
                    assert ISO_MS.match(r[k])
                assert r["date_created"] <= r["date_updated"] <= rec["date_last_processed_event"]


def test_event_sids_are_unique_except_for_duplicates(run):
    by_sid = defaultdict(list)
    for rec in run["records"]:
        by_sid[rec["last_processed_event_sid"]].append(rec)
    for recs in by_sid.values():
        assert all(r == recs[0] for r in recs)  # a re-sent record is the same record


def test_statuses_are_from_the_documented_sets(run):
    seen, assignment = Counter(), Counter()
    for rec in run["records"]:
        for ch in rec["channels"] or []:
            for r in ch["reservations"] or []:
                seen[r["status"]] += 1
                assignment[r["task_assignment_status"]] += 1
    assert set(seen) <= RES_STATUSES
    assert set(assignment) <= TASK_ASSIGNMENT
    # the whole lifecycle shows up, including the unhappy endings
    assert {"created", "pending", "accepted", "wrapping", "completed", "rejected", "timeout", "rescinded", "canceled"} <= set(seen)


def test_available_capacity_matches_capacity_and_active_reservations(run):
    for rec in run["records"]:
        for ch in rec["channels"] or []:
            held = sum(1 for r in ch["reservations"] or [] if r["status"] in HOLDS)
            assert 0 <= held <= ch["capacity"]
            assert ch["available_capacity"] == round(100 * (ch["capacity"] - held) / ch["capacity"])
            assert 0 <= ch["available_capacity"] <= 100
            if ch["task_channel_name"] == "voice":
                assert ch["capacity"] == 1
            assert ch["available"] in (0, 1)


def test_reservation_lifecycles_follow_taskrouter(run):
    """created/pending → accepted → wrapping → completed, or a terminal ending; one step at a time."""
    allowed = {
        "created": {"accepted"} | TERMINAL - {"completed"},
        "pending": {"accepted"} | TERMINAL - {"completed"},
        "accepted": {"wrapping"},
        "wrapping": {"completed"},
    }
    history = defaultdict(list)
    seen_events = set()
    for rec in sorted(run["records"], key=lambda r: r["date_last_processed_event"]):
        if rec["last_processed_event_sid"] in seen_events:
            continue
        seen_events.add(rec["last_processed_event_sid"])
        for ch in rec["channels"] or []:
            for r in ch["reservations"] or []:
                h = history[r["sid"]]
                if not h or h[-1] != r["status"]:
                    h.append(r["status"])
    assert len(history) > 500
    for statuses in history.values():
        for a, b in zip(statuses, statuses[1:]):
            assert b in allowed.get(a, set()), statuses
        assert statuses[0] in ("created", "pending", "accepted")  # accepted: the created record was folded


def test_agents_work_their_shifts(run):
    """Agents are offline before their shift, on Break/Lunch, and mostly take their breaks near the plan."""
    activities = Counter(r["worker"]["activity_name"] for r in run["records"])
    assert {"Available", "Offline", "Break", "Lunch", None} <= set(activities)
    assert set(activities) <= {"Available", "Offline", "Unavailable", "Break", "Lunch", "Meeting", None}
    # most scheduled breaks start within 15 minutes of plan
    starts = defaultdict(list)
    for rec in run["records"]:
        if rec["worker"]["activity_name"] in ("Break", "Lunch") and rec["worker"]["date_activity_updated"]:
            starts[rec["worker"]["sid"]].append(parse_instant_ms(rec["worker"]["date_activity_updated"]))
    on_time = total = 0
    for plan in run["sim"].agents:
        for sh in plan.shifts:
            if sh.absent:
                continue
            for a, b, act in sh.segments:
                if act in ("Break", "Lunch") and b <= run["sim"].end_ms:
                    total += 1
                    on_time += any(abs(s - a) <= 15 * 60_000 for s in starts[plan.sid])
    assert total > 100
    assert on_time / total > 0.8


def test_window_and_delivery_order(run):
    sim = run["sim"]
    last = None
    late = 0
    after: dict[str, list] = defaultdict(list)  # worker → records after the window
    for delivery, env in sim.events():
        assert last is None or delivery >= last
        last = delivery
        for rec in env["records"]:
            t = parse_instant_ms(rec["date_last_processed_event"])
            assert sim.start_ms <= t
            if t > sim.end_ms + 1000:
                after[rec["worker"]["sid"]].append((t, rec))
            assert t <= delivery
            late += delivery - t > 2000
    assert late > 0
    # past the window, an agent only finishes its day: its last record is its logout, within the hour
    for worker, recs in after.items():
        t, rec = max(recs, key=lambda x: x[0])
        assert rec["worker"]["activity_name"] == "Offline", worker
        assert t < sim.end_ms + 3_600_000


def test_every_agent_logs_out_at_the_end_of_its_shift(run):
    """No simulated day ends with agents left Available (hours of available-when-unscheduled)."""
    last: dict[str, tuple] = {}
    for rec in run["records"]:
        t = parse_instant_ms(rec["date_last_processed_event"])
        if rec["worker"]["sid"] not in last or t >= last[rec["worker"]["sid"]][0]:
            last[rec["worker"]["sid"]] = (t, rec["worker"]["activity_name"], rec["channels"])
    assert len(last) == 80
    for worker, (t, activity, channels) in last.items():
        assert activity in ("Offline", None), worker  # None: a no-show's only record, first sighting
        assert not channels or all(not ch["reservations"] for ch in channels)


# ---- imperfections -------------------------------------------------------------------


def test_the_feed_has_the_real_feeds_imperfections(run):
    records = run["records"]
    n = len(records)
    assert n > 10_000
    # duplicates: about 1% sent twice
    counts = Counter(r["last_processed_event_sid"] for r in records)
    dups = sum(c - 1 for c in counts.values())
    assert 0.004 * n < dups < 0.02 * n
    # out of order: a worker's record arriving after a newer one for the same worker
    newest: dict[str, str] = {}
    out_of_order = 0
    for rec in records:
        sid, at = rec["worker"]["sid"], rec["date_last_processed_event"]
        if sid in newest and at < newest[sid]:
            out_of_order += 1
        newest[sid] = max(at, newest.get(sid, at))
    assert out_of_order > 10
    # nulls
    assert any(r["worker"]["activity_name"] is None for r in records)
    assert any(r["worker"]["activity_sid"] is None for r in records)
    assert any(r["channels"] is None for r in records)
    chans = [c for r in records for c in r["channels"] or []]
    assert any(c["date_capacity_updated"] is None for c in chans)
    assert any(c["date_capacity_updated"] is not None for c in chans)
    assert any(c["worker_channel_sid"] is None for c in chans)
    assert any(c["reservations"] is None for c in chans)
    reservations = [x for c in chans for x in c["reservations"] or []]
    assert any("direction" not in x for x in reservations)
    assert any(x.get("direction") == "outbound" for x in reservations)
    # several records in one envelope, now and then
    multi = sum(1 for e in run["envelopes"] if len(e["records"]) > 1)
    assert 0 < multi < 0.05 * len(run["envelopes"])


def test_first_sighting_of_a_worker_often_carries_nulls(run):
    first: dict[str, dict] = {}
    for rec in sorted(run["records"], key=lambda r: r["date_last_processed_event"]):
        first.setdefault(rec["worker"]["sid"], rec)
    nulls = sum(1 for r in first.values() if r["worker"]["activity_name"] is None)
    assert 0.3 * len(first) < nulls < 0.9 * len(first)
    assert all(r["channels"] is None for r in first.values())


# ---- schedules and config --------------------------------------------------------------


def test_roster_parses_and_covers_every_worker_in_the_feed(run):
    out = run["out"]
    roster = yaml.safe_load((out / "schedules" / "roster.yaml").read_text())
    assert roster["timezone"] == TZ
    agents = roster["agents"]
    assert len(agents) == 80
    sids = {a["worker_sid"] for a in agents.values()}
    assert len(sids) == 80
    for a in agents.values():
        assert set(a) == {"worker_sid", "name", "email", "team"}
        assert a["team"] in ("tier1", "tier2", "digital")
    assert {r["worker"]["sid"] for r in run["records"]} <= sids
    seg = re.compile(r"^\d\d:\d\d-\d\d:\d\d (Available|Break|Lunch|Meeting)$")
    for shift in roster["shifts"]:
        assert set(shift) == {"agents", "date", "segments"}
        assert set(shift["agents"]) <= set(agents)
        assert all(seg.match(s) for s in shift["segments"])
    # the shifts are staggered
    starts = {shift["segments"][0][:5] for shift in roster["shifts"]}
    assert len(starts) >= 4


def test_config_loads_and_check_passes(run):
    out = run["out"]
    cfg = load_config(out / "config.yaml")
    assert cfg.database == out.resolve() / "adherence.db"
    assert cfg.schedules == out.resolve() / "schedules"
    assert cfg.rules == rules_folder() and cfg.rules.is_absolute()
    assert cfg.timezone == TZ and cfg.evaluation_interval_ms == 15_000
    assert (cfg.server_host, cfg.server_port) == ("127.0.0.1", 8080)
    res = CliRunner().invoke(cli, ["check", "--config", str(out / "config.yaml")])
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize(
    "start, hours",
    [
        (START, 10),
        # a day and more across the end of DST: evening shifts cross midnight and the repeated hour
        (to_ms(datetime(2026, 10, 31, 8, 0, tzinfo=ZoneInfo(TZ))), 30),
    ],
)
def test_project_schedule_loader_resolves_the_planned_segments(tmp_path, start, hours):
    sim = generate(40, hours, 5, start, TZ)
    (tmp_path / "schedules").mkdir()
    (tmp_path / "schedules" / "roster.yaml").write_text(sim.roster_yaml())
    sched = load_schedules(tmp_path / "schedules", TZ)
    crosses = 0
    for plan in sim.agents:
        for sh in plan.shifts:
            got = [(s.start, s.end, s.activity) for s in sched.segments(plan.key, sh.start_ms, sh.end_ms)]
            assert got == sh.segments, (plan.key, sh.texts)
            crosses += sh.texts[-1][6:11] < sh.texts[0][:5]
    if hours > 24:
        assert crosses > 0


# ---- CLI -------------------------------------------------------------------------------


def test_default_start_is_today_0800_local():
    now = to_ms(datetime(2026, 11, 25, 23, 30, tzinfo=ZoneInfo(TZ)))  # 04:30Z on the 26th
    assert default_start_ms(TZ, now) == START
    assert default_start_ms("UTC", now) == parse_instant_ms("2026-11-26T08:00:00Z")


def test_start_option_forms():
    assert parse_start("2026-11-25T08:00", TZ) == START
    assert parse_start("2026-11-25", TZ) == START
    assert parse_start("2026-11-25T13:00:00Z", TZ) == START
    assert parse_start("2026-11-25T08:00:00-05:00", TZ) == START


@pytest.mark.parametrize(
    "args, message",
    [
        (["--agents", "5", "--hours", "1"], "--out DIR"),
        (["--agents", "5", "--hours", "1", "--out", "x", "--timezone", "Mars/Olympus"], "unknown time zone"),
        (["--agents", "5", "--hours", "1", "--out", "x", "--start", "yesterday"], "ISO-8601"),
        (["--agents", "0", "--hours", "1", "--out", "x"], "--agents"),
        (["--agents", "5", "--hours", "0", "--out", "x"], "--hours"),
        (["--agents", "5", "--hours", "1", "--post", "ftp://x"], "http(s)://"),
        (["--agents", "5", "--hours", "1", "--post", "http://x", "--basic", "nocolon"], "USER:PASS"),
    ],
)
def test_cli_errors_are_messages_not_tracebacks(tmp_path, args, message):
    res = CliRunner().invoke(cli, ["simulate"] + args, catch_exceptions=False)
    assert res.exit_code != 0
    assert message in res.output
    assert "Traceback" not in res.output


def test_cli_writes_files_and_says_what_to_do_next(tmp_path):
    res = CliRunner().invoke(cli, ["simulate", "--agents", "5", "--hours", "1", "--start", "2026-11-25", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "wrote" in res.output and "adherence replay --config" in res.output
    assert (tmp_path / "feed.jsonl").stat().st_size > 0


def test_every_command_has_an_example():
    cmd = cli.commands["simulate"]
    assert "Example:" in cmd.help


# ---- --post ----------------------------------------------------------------------------

TOKEN = "12345678901234567890123456789012"


class _Receiver:
    """A tiny threaded HTTP server that checks Twilio signatures and basic auth like the real receiver."""

    def __init__(self, token: str, basic: tuple[str, str] | None = None, fail_every: int = 0):
        self.bodies: list[dict] = []
        self.bad: list[str] = []
        self.paths: set[str] = set()
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.paths.add(self.path.split("?")[0])
                url = f"http://127.0.0.1:{outer.port}{self.path}"
                reason = None
                form = self.headers.get("Content-Type") == "application/x-www-form-urlencoded"
                params = dict(parse_qsl(body.decode("utf-8"))) if form else body.decode("utf-8")
                if not RequestValidator(token).validate(url, params, self.headers.get("X-Twilio-Signature", "")):
                    reason = "bad signature"
                if basic is not None:
                    want = "Basic " + base64.b64encode(f"{basic[0]}:{basic[1]}".encode()).decode()
                    if self.headers.get("Authorization") != want:
                        reason = "bad basic auth"
                with outer.lock:
                    n = len(outer.bodies) + len(outer.bad) + 1
                    if reason is None and fail_every and n % fail_every == 0:
                        reason = "injected failure"
                    if reason:
                        outer.bad.append(reason)
                    else:
                        outer.bodies.append(params if form else json.loads(body))
                status = 403 if reason else 200
                payload = json.dumps({"error": reason} if reason else {"accepted": 1}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def test_post_signs_like_twilio_and_every_envelope_is_accepted(tmp_path):
    sim_args = ["--agents", "6", "--hours", "1", "--seed", "3", "--start", "2026-11-25T08:00"]
    expected = [env for _, env in generate(6, 1, 3, START, TZ).events()]
    with _Receiver(TOKEN, basic=("rta", "s3cret")) as rx:
        url = f"http://127.0.0.1:{rx.port}/webhooks/rta"
        res = CliRunner().invoke(
            cli,
            ["simulate", *sim_args, "--post", url, "--twilio-token", TOKEN, "--basic", "rta:s3cret", "--concurrency", "3"],
        )
    assert res.exit_code == 0, res.output
    assert rx.bad == []
    assert len(rx.bodies) == len(expected) > 50
    key = lambda e: [r["last_processed_event_sid"] for r in e["records"]]  # noqa: E731
    assert sorted(map(key, rx.bodies)) == sorted(map(key, expected))
    out = res.output
    assert f"sent {len(expected)} envelopes" in out
    assert f"{len(expected)} 2xx, 0 non-2xx, 0 errors" in out
    assert "req/s" in out and "p50" in out and "p99" in out


@pytest.mark.parametrize("fmt,path", [("taskrouter", "/webhooks/taskrouter"), ("eventstreams", "/webhooks/events")])
def test_post_sends_each_format_signed_like_twilio(fmt, path):
    sim_args = ["--agents", "4", "--hours", "1", "--seed", "3", "--start", "2026-11-25T08:00", "--format", fmt]
    expected = [body for _, body in generate(4, 1, 3, START, TZ).bodies(fmt)]
    with _Receiver(TOKEN, basic=("sink", "s3cret")) as rx:
        res = CliRunner().invoke(cli, ["simulate", *sim_args, "--post", f"http://127.0.0.1:{rx.port}",
                                       "--twilio-token", TOKEN, "--basic", "sink:s3cret"])
    assert res.exit_code == 0, res.output
    assert rx.bad == [] and len(rx.bodies) == len(expected) > 50
    assert rx.paths == {path}  # a URL without a path goes to the format's endpoint
    if fmt == "taskrouter":  # form fields: one event, checked by RequestValidator over URL + sorted params
        assert sorted(b["Sid"] for b in rx.bodies) == sorted(b["Sid"] for b in expected)
    else:  # JSON lists of CloudEvents, signed with bodySHA256
        assert sorted(ce["id"] for b in rx.bodies for ce in b) == sorted(ce["id"] for b in expected for ce in b)


def test_format_files_hold_the_same_day(tmp_path):
    """--format writes the same changes: RTA records (exact) and events share their EV SIDs."""
    for fmt in ("rta", "taskrouter", "eventstreams"):
        res = CliRunner().invoke(cli, ["simulate", "--agents", "5", "--hours", "2", "--seed", "4", "--exact",
                                       "--start", "2026-11-25T08:00", "--format", fmt, "--out", str(tmp_path / fmt)])
        assert res.exit_code == 0, res.output
    rta = {r["last_processed_event_sid"] for e in _lines(tmp_path / "rta" / "feed.jsonl") for r in e["records"]}
    callbacks = {dict(parse_qsl(line))["Sid"] for line in (tmp_path / "taskrouter" / "callbacks.txt").read_text().splitlines()}
    clouds = {ce["data"]["sid"] for b in _lines(tmp_path / "eventstreams" / "events.jsonl") for ce in b}
    assert rta == callbacks == clouds and len(rta) > 100


def test_post_token_from_environment_and_rate(tmp_path):
    with _Receiver(TOKEN) as rx:
        url = f"http://127.0.0.1:{rx.port}/webhooks/rta?source=sim"
        res = CliRunner().invoke(
            cli,
            ["simulate", "--agents", "3", "--hours", "1", "--start", "2026-11-25", "--post", url, "--rate", "200", "--limit", "40"],
            env={"TWILIO_AUTH_TOKEN": TOKEN},
        )
    assert res.exit_code == 0, res.output
    assert rx.bad == [] and len(rx.bodies) == 40
    assert "sent 40 envelopes" in res.output


def test_post_counts_non_2xx_and_exits_non_zero():
    with _Receiver(TOKEN, fail_every=5) as rx:
        url = f"http://127.0.0.1:{rx.port}/webhooks/rta"
        res = CliRunner().invoke(
            cli, ["simulate", "--agents", "3", "--hours", "1", "--start", "2026-11-25", "--post", url,
                  "--twilio-token", TOKEN, "--limit", "20", "--concurrency", "1"],
        )
    assert res.exit_code == 1
    assert "16 2xx, 4 non-2xx, 0 errors" in res.output
    assert "403" in res.output and "4 of 20 requests failed" in res.output


def test_post_wrong_token_is_rejected_and_reported():
    with _Receiver(TOKEN) as rx:
        url = f"http://127.0.0.1:{rx.port}/webhooks/rta"
        res = CliRunner().invoke(
            cli, ["simulate", "--agents", "2", "--hours", "1", "--start", "2026-11-25", "--post", url,
                  "--twilio-token", "not-the-token", "--limit", "5"],
        )
    assert res.exit_code == 1
    assert rx.bad == ["bad signature"] * 5
    assert "0 2xx, 5 non-2xx" in res.output


def test_post_to_nothing_counts_errors():
    with _Receiver(TOKEN) as rx:
        port = rx.port  # free again once the receiver is closed
    res = CliRunner().invoke(
        cli, ["simulate", "--agents", "2", "--hours", "1", "--start", "2026-11-25", "--post",
              f"http://127.0.0.1:{port}/webhooks/rta", "--limit", "3", "--timeout", "2"],
    )
    assert res.exit_code == 1
    assert "0 2xx, 0 non-2xx, 3 errors" in res.output
    assert "Traceback" not in res.output


# ---- library API -----------------------------------------------------------------------


def test_generate_rejects_nonsense():
    for kwargs in ({"agents": 0}, {"hours": 0}, {"tz": "Nowhere/Else"}, {"start_ms": "today"}):
        args = {"agents": 2, "hours": 1, "seed": 1, "start_ms": START, "tz": TZ} | kwargs
        with pytest.raises(ValueError):
            generate(**args)


def test_events_can_be_iterated_again_with_the_same_result():
    sim = generate(4, 1, 9, START, TZ)
    first = [(d, json.dumps(e)) for d, e in sim.events()]
    assert first == [(d, json.dumps(e)) for d, e in sim.events()]
    assert "timezone: America/New_York" in sim.roster_yaml()


def test_fast_encoder_writes_exactly_what_json_would(run):
    from adherence.sim.agent import encode_envelope

    lines = (run["out"] / "feed.jsonl").read_text().splitlines()
    envelopes = [env for _, env in run["sim"].events()]
    assert len(lines) == len(envelopes)
    for line, env in zip(lines, envelopes):
        assert line == encode_envelope(env) == json.dumps(env, separators=(",", ":"))
