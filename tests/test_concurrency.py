"""Concurrency: many posters (threads and processes) and a replay against one real server.

A real ``adherence serve`` (evaluating every second) is hammered for a few
seconds by poster threads and poster processes, each sending its own
records, re-sending some (Twilio retries) and racing the others on a shared
set of event SIDs. Meanwhile ``adherence replay`` writes a recorded feed
into the same database from another process. The promise: no 5xx, no
error from the replay (the busy timeout holds), no "database is locked" in
the server log, and the journal holds every acknowledged event exactly
once: rows == distinct event SIDs that got a 200, and the answers' counts
add up (accepted + duplicates == records sent).
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
import requests

from conftest import load_fixture
from servers import Server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

THREADS = 8
PROCESSES = 3
DURATION_S = 3.0
SHARED_SIDS = 40  # event SIDs every poster races on
RECORD = load_fixture("available-one-voice-call.json")["records"][0]

POSTER = r'''
import json, random, sys, time
import requests
url, name, duration, shared, record = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), json.loads(sys.argv[5])
sys.path.insert(0, sys.argv[6])
from test_concurrency import run_poster
print(json.dumps(run_poster(url, name, duration, shared, record)))
'''


def envelope(record: dict, sids: list[str], worker: str, at_ms: int) -> bytes:
    recs = []
    for i, sid in enumerate(sids):
        r = json.loads(json.dumps(record))
        r["last_processed_event_sid"] = sid
        r["worker"]["sid"] = worker
        r["date_last_processed_event"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at_ms / 1000)) + \
            f".{(at_ms + i) % 1000:03d}Z"
        recs.append(r)
    return json.dumps({"product": "Flex", "object": "WFMWorkerChange", "version": 1, "records": recs}).encode()


def run_poster(url: str, name: str, duration: float, shared: int, record: dict) -> dict:
    """Post for ``duration`` seconds; return what was sent and what the server answered."""
    rnd = random.Random(name)
    session = requests.Session()
    out = {"statuses": {}, "ok_sids": [], "sent": 0, "accepted": 0, "duplicates": 0, "requests": 0, "errors": []}
    n = 0
    sent_bodies: list[bytes] = []
    deadline = time.time() + duration
    worker = "WK" + f"{abs(hash(name)) % 10**32:032d}"
    while time.time() < deadline:
        roll = rnd.random()
        if roll < 0.1 and sent_bodies:
            body = rnd.choice(sent_bodies)  # a retry of something already sent
            sids = [r["last_processed_event_sid"] for r in json.loads(body)["records"]]
        else:
            k = 1 if roll < 0.8 else rnd.randint(2, 5)
            sids = []
            for _ in range(k):
                if rnd.random() < 0.15:
                    sids.append(f"EVshared{rnd.randrange(shared):026d}")
                else:
                    n += 1
                    sids.append(f"EV{name}{n:020d}")
            sids = list(dict.fromkeys(sids))  # one envelope names an event once
            body = envelope(record, sids, worker, int(time.time() * 1000) - rnd.randrange(3_600_000))
            sent_bodies.append(body)
        try:
            resp = session.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=30)
        except requests.RequestException as exc:
            out["errors"].append(repr(exc))
            continue
        out["requests"] += 1
        out["statuses"][str(resp.status_code)] = out["statuses"].get(str(resp.status_code), 0) + 1
        if resp.status_code == 200:
            data = resp.json()
            out["ok_sids"].extend(sids)
            out["sent"] += len(sids)
            out["accepted"] += data["accepted"]
            out["duplicates"] += data["duplicates"]
    return out


def write_replay_feed(path, count: int) -> int:
    rnd = random.Random(5)
    with open(path, "w") as fh:
        for i in range(count):
            sids = [f"EVreplay{i:05d}{j}" for j in range(rnd.randint(1, 3))]
            fh.write(envelope(RECORD, sids, "WK" + "7" * 32, 1_795_000_000_000 + i * 1000).decode() + "\n")
    return count


def test_many_posters_and_a_replay_lose_and_double_nothing(workdir):
    text = (workdir / "config.yaml").read_text().replace("interval: 15s", "interval: 1s")
    (workdir / "config.yaml").write_text(text + "server:\n  threads: 8\n")
    feed = workdir / "replay.jsonl"
    write_replay_feed(feed, 3000)
    replay_sids = set()
    for line in feed.read_text().splitlines():
        replay_sids.update(r["last_processed_event_sid"] for r in json.loads(line)["records"])

    with Server(workdir / "config.yaml") as srv:
        url = srv.url + "/webhooks/rta"
        results: dict[str, dict] = {}

        def thread_poster(name):
            results[name] = run_poster(url, name, DURATION_S, SHARED_SIDS, RECORD)

        tests_dir = os.path.dirname(__file__)
        procs = [subprocess.Popen([sys.executable, "-c", POSTER, url, f"p{i}", str(DURATION_S), str(SHARED_SIDS),
                                   json.dumps(RECORD), tests_dir], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for i in range(PROCESSES)]
        threads = [threading.Thread(target=thread_poster, args=(f"t{i}",)) for i in range(THREADS)]
        for t in threads:
            t.start()
        time.sleep(0.5)  # the replay starts while the server is busy receiving
        t0 = time.time()
        replay = subprocess.run([sys.executable, "-m", "adherence", "replay", "--quiet", "--batch", "50",
                                 "--config", str(workdir / "config.yaml"), str(feed)],
                                capture_output=True, text=True, timeout=90)
        replay_s = time.time() - t0
        for t in threads:
            t.join(60)
        for i, p in enumerate(procs):
            stdout, stderr = p.communicate(timeout=60)
            assert p.returncode == 0, stderr.decode()
            results[f"p{i}"] = json.loads(stdout.decode().strip().splitlines()[-1])
        health = requests.get(srv.url + "/health", timeout=10).json()

    log = srv.log.read_text()
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "locked" not in replay.stdout + replay.stderr
    assert f"accepted {len(replay_sids)}," in replay.stdout
    assert "database is locked" not in log and "Traceback" not in log
    assert health["database"]["ok"] and health["evaluator"]["last_error"] is None

    statuses: dict[str, int] = {}
    ok_sids: set[str] = set()
    sent = accepted = duplicates = requests_made = 0
    for name, r in results.items():
        assert r["errors"] == [], (name, r["errors"][:3])
        for k, v in r["statuses"].items():
            statuses[k] = statuses.get(k, 0) + v
        ok_sids.update(r["ok_sids"])
        sent += r["sent"]
        accepted += r["accepted"]
        duplicates += r["duplicates"]
        requests_made += r["requests"]
    assert set(statuses) == {"200"}, statuses
    assert requests_made >= (THREADS + PROCESSES) * 20  # it really was busy
    conn = sqlite3.connect(workdir / "adherence.db")
    rows, distinct = conn.execute("SELECT COUNT(*), COUNT(DISTINCT event_sid) FROM journal").fetchone()
    journaled = {r[0] for r in conn.execute("SELECT event_sid FROM journal")}
    conn.close()
    assert rows == distinct  # nothing doubled
    assert journaled == ok_sids | replay_sids  # nothing lost, nothing invented
    assert accepted + duplicates == sent
    assert accepted == len(ok_sids)  # each acknowledged event accepted exactly once, by one poster
    print(f"\n{THREADS} threads + {PROCESSES} processes x {DURATION_S}s: {requests_made} requests, "
          f"{sent} records ({duplicates} duplicates), replay {len(replay_sids)} records in {replay_s:.1f}s; all 200")
