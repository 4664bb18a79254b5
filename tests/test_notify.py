"""Notifications: decided from stored state in the runner's transaction, delivered to real local receivers.

Each test runs the real webhook → tick → outbox → sender path against an HTTP
server on loopback that checks the HMAC signature (or an aiosmtpd SMTP server
with STARTTLS), on a fixed clock.
"""

from __future__ import annotations

import json
import textwrap

import pytest
from click.testing import CliRunner

from adherence.cli import cli
from adherence.notify.sender import Sender
from adherence.timeutil import iso, parse_instant_ms

from conftest import Center
from notify_helpers import SECRET, Receiver

ANN = "WK" + "a" * 32
BOB = "WK" + "b" * 32
ROSTER = f"""
timezone: America/New_York
agents:
  ann: {{worker_sid: {ANN}, name: Ann, team: tier1}}
  bob: {{worker_sid: {BOB}, name: Bob, team: tier2}}
shifts:
  - agents: [ann, bob]
    days: [mon, tue, wed, thu, fri, sat, sun]
    segments:
      - 09:00-17:00 Available
"""
RULES = """
rules:
  - name: offline
    description: Scheduled to take contacts but logged out
    when: {scheduled: Available, activity: [Offline, Unknown]}
    for: 5m
    severity: critical
  - name: away
    description: Scheduled Available but in another activity
    when: {scheduled: Available, activity: [Break, Lunch]}
    for: 5m
    severity: warning
"""


def T(local: str) -> int:
    """'09:40' on 2026-11-24, New York time (UTC-5) → epoch ms."""
    return parse_instant_ms(f"2026-11-24T{local}:00-05:00")


def folder(tmp_path, routes: str, channels: str | None = None, delivery: str = "") -> None:
    (tmp_path / "schedules").mkdir(exist_ok=True)
    (tmp_path / "schedules" / "roster.yaml").write_text(ROSTER)
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "rules.yaml").write_text(RULES)
    (tmp_path / "config.yaml").write_text(
        "database: a.db\ntimezone: America/New_York\nschedules: schedules\nrules: rules\n"
        "notifications: notifications.yaml\nserver:\n  public_url: https://rta.example.com\n")
    (tmp_path / "notifications.yaml").write_text(channels + "\n" + delivery + "\nroutes:\n" + textwrap.indent(
        textwrap.dedent(routes), "  "))


def hook_channel(url: str, name: str = "hook") -> str:
    return f"channels:\n  {name}:\n    type: webhook\n    url: {url}\n    secret: ${{HOOK_SECRET}}\n"


class N(Center):
    """A center whose ticks also run the notifier's pass, and whose sender is driven by hand."""

    def __init__(self, folder, start, **kw):
        super().__init__(folder, start, **kw)
        self.sender = Sender(self.engine.notifier)
        for worker in (ANN, BOB):  # both at work: an agent never heard of is "Unknown", an exception of its own
            self.send(worker, T("08:58"), "Available")

    def tick(self, at: int):
        stats = super().tick(at)
        self.engine.notifier.tick(at)
        return stats

    def send_all(self):
        for name in self.engine.notifier.current.channels:
            while self.sender.run_once(name):
                pass

    def outbox(self, **where):
        sql = "SELECT id, channel, route, event, agent, status, attempts, payload FROM outbox"
        rows = [dict(r) for r in self.engine.store.reader.execute(sql + " ORDER BY id")]
        return [r for r in rows if all(r[k] == v for k, v in where.items())]


@pytest.fixture
def hook(monkeypatch):
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    r = Receiver()
    yield r
    r.close()


def test_webhook_gets_one_signed_open_and_one_close_and_re_evaluation_sends_nothing_twice(tmp_path, hook):
    folder(tmp_path, """
        - name: critical
          channel: hook
          severity: critical
          events: [open, close]
    """, hook_channel(hook.url))
    c = N(tmp_path, T("08:55"))
    c.send(ANN, T("08:58"), "Available")
    c.send(ANN, T("09:40"), "Offline")
    c.tick(T("09:44"))
    c.send_all()
    assert hook.bodies == []  # within the rule's 5 minutes: no exception, nothing sent
    c.tick(T("09:46"))
    c.tick(T("09:47"))
    c.send_all()
    (body,) = hook.bodies
    assert hook.bad_signatures == 0
    headers = hook.requests[0]["headers"]
    assert headers["X-Adherence-Event"] == "opened" and headers["X-Adherence-Delivery"] == str(body["delivery_id"])
    assert body["version"] == 1 and body["event"] == "opened" and body["route"] == "critical"
    exc = body["exception"]
    assert (exc["agent"], exc["team"], exc["rule"], exc["severity"]) == ("ann", "tier1", "offline", "critical")
    assert exc["start"] == iso(T("09:40")) and exc["end"] is None and exc["status"] == "open"
    assert body["link"] == "https://rta.example.com/day?date=2026-11-24&agent=ann"
    # a full recompute rewrites the same rows: no change, no message
    c.engine.runner.recompute(__import__("datetime").date(2026, 11, 24), __import__("datetime").date(2026, 11, 24))
    c.engine.notifier.tick(T("09:48"))
    c.send_all()
    assert len(hook.bodies) == 1
    c.send(ANN, T("09:55"), "Available")
    c.tick(T("09:56"))
    c.tick(T("09:57"))
    c.send_all()
    assert [b["event"] for b in hook.bodies] == ["opened", "closed"]
    assert hook.bodies[1]["exception"]["end"] == iso(T("09:55"))
    assert hook.bodies[1]["exception"]["id"] == exc["id"]


def test_min_duration_announces_once_when_reached_and_not_for_shorter_exceptions(tmp_path, hook):
    folder(tmp_path, """
        - name: long
          channel: hook
          min_duration: 15m
    """, hook_channel(hook.url))
    c = N(tmp_path, T("08:55"))
    c.send(ANN, T("08:58"), "Available")
    c.send(BOB, T("08:58"), "Available")
    c.send(BOB, T("09:30"), "Offline")
    c.send(ANN, T("09:40"), "Offline")
    c.tick(T("09:41"))
    c.send(BOB, T("09:42"), "Available")  # bob: 12 minutes, under 15
    for m in range(43, 60):
        c.tick(T(f"09:{m}"))
        c.send_all()
    assert hook.events() == [("opened", "ann", iso(T("09:40")))]  # at 09:55, once, and bob never


def test_late_record_corrects_a_pending_alert_and_a_sent_one_gets_a_correction(tmp_path, hook):
    folder(tmp_path, """
        - name: all
          channel: hook
          events: [open, close]
    """, hook_channel(hook.url))
    c = N(tmp_path, T("08:55"))
    c.send(ANN, T("08:58"), "Available")
    c.send(ANN, T("09:40"), "Offline")
    c.tick(T("09:50"))
    # before anything went out, a late record says ann was Offline from 09:35: the pending alert is corrected
    c.send(ANN, T("09:35"), "Offline")
    c.tick(T("09:51"))
    c.send_all()
    assert hook.events() == [("opened", "ann", iso(T("09:35")))]
    # after sending, another late record moves the start again: a correction, never silence
    c.send(ANN, T("09:33"), "Offline")
    c.tick(T("09:52"))
    c.send_all()
    assert hook.events()[1] == ("corrected", "ann", iso(T("09:33")))
    assert hook.bodies[1]["previous"] == {"start": iso(T("09:35")), "end": None}


def test_an_exception_removed_before_its_alert_went_out_is_never_sent_and_after_is_withdrawn(tmp_path, hook):
    folder(tmp_path, """
        - name: all
          channel: hook
    """, hook_channel(hook.url))
    c = N(tmp_path, T("08:55"))
    c.send(ANN, T("08:58"), "Available")
    c.send(BOB, T("08:58"), "Available")
    c.send(ANN, T("09:40"), "Offline")
    c.send(BOB, T("09:40"), "Offline")
    c.tick(T("09:50"))
    c.send_all()
    assert sorted(e[:2] for e in hook.events()) == [("opened", "ann"), ("opened", "bob")]
    # late: bob was Available again at 09:41 (under the rule's 5 minutes): his exception disappears
    c.send(BOB, T("09:41"), "Available")
    c.tick(T("09:51"))
    c.send_all()
    assert hook.events()[-1][:2] == ("removed", "bob")
    # ann's exception opens and vanishes before the sender runs: nothing at all goes out for it
    c.send(ANN, T("09:52"), "Available")
    c.send(ANN, T("10:00"), "Offline")
    c.tick(T("10:06"))
    c.send(ANN, T("10:01"), "Available")
    c.tick(T("10:07"))
    c.send_all()
    assert [e for e in hook.events() if e[2] == iso(T("10:00"))] == []
    assert [r["status"] for r in c.outbox() if json.loads(r["payload"])["exception"]["start"] == iso(T("10:00"))] \
        == ["cancelled"]


def test_receiver_down_then_back_delivers_everything_in_order_per_agent(tmp_path, hook):
    folder(tmp_path, """
        - name: all
          channel: hook
          events: [open, close]
    """, hook_channel(hook.url), "delivery: {max_attempts: 20, backoff: 1s, max_backoff: 4s}")
    c = N(tmp_path, T("08:55"))
    c.send(ANN, T("09:40"), "Offline")
    c.tick(T("09:50"))
    c.send_all()
    assert hook.events() == [("opened", "ann", iso(T("09:40")))]
    hook.status = 500  # the receiver goes down
    c.send(ANN, T("09:51"), "Available")
    c.send(BOB, T("09:52"), "Offline")
    c.tick(T("09:58"))
    c.send(ANN, T("10:00"), "Offline")
    c.tick(T("10:06"))
    for _ in range(5):  # down for a while: retried with backoff, nothing lost
        c.clock.advance(4_000)
        c.send_all()
    assert len(hook.bodies) == 1
    closed, = c.outbox(event="closed")
    assert closed["status"] == "pending" and closed["attempts"] >= 2
    second = [r for r in c.outbox(event="opened", agent="ann") if r["status"] == "pending"]
    assert len(second) == 1 and second[0]["attempts"] == 0  # waits behind ann's closing: order per agent
    hook.status = 200
    c.clock.advance(5_000)
    c.send_all()
    per_agent = {}
    for event, agent, start in hook.events():
        per_agent.setdefault(agent, []).append((event, start))
    assert per_agent == {"ann": [("opened", iso(T("09:40"))), ("closed", iso(T("09:40"))), ("opened", iso(T("10:00")))],
                         "bob": [("opened", iso(T("09:52")))]}
    assert {r["status"] for r in c.outbox()} == {"sent"}


def test_a_permanently_failing_receiver_is_dead_lettered_and_the_others_still_deliver(tmp_path, hook, monkeypatch):
    dead = Receiver()
    dead.status = 500
    try:
        folder(tmp_path, """
            - name: good
              channel: hook
            - name: bad
              channel: broken
        """, hook_channel(hook.url) + hook_channel(dead.url, "broken").split("channels:\n", 1)[1],
            "delivery: {max_attempts: 3, backoff: 1s}")
        c = N(tmp_path, T("08:55"))
        c.send(ANN, T("08:58"), "Available")
        c.send(ANN, T("09:40"), "Offline")
        c.tick(T("09:50"))
        for _ in range(4):
            c.send_all()
            c.clock.advance(10_000)
        assert hook.events() == [("opened", "ann", iso(T("09:40")))]
        (bad,) = c.outbox(channel="broken")
        assert bad["status"] == "dead" and bad["attempts"] == 3
        health = c.client.get("/health").get_json()
        assert health["notifications"]["dead"] == 1 and health["notifications"]["ok"] is False
        metrics = c.client.get("/metrics").get_data(as_text=True)
        assert 'adherence_notifications_outbox{channel="broken",status="dead"} 1.0' in metrics
        listed = c.client.get("/api/notifications?status=dead").get_json()
        assert [n["id"] for n in listed["notifications"]] == [bad["id"]]
        assert "HTTP 500" in listed["notifications"][0]["last_error"]
        # fixed receiver: a retry by hand delivers it
        dead.status = 200
        dead.secret = SECRET
        r = c.client.post(f"/api/notifications/{bad['id']}/retry", json={"by": "ops"})
        assert r.status_code == 200 and r.get_json()["notification"]["status"] == "pending"
        c.send_all()
        assert dead.events() == [("opened", "ann", iso(T("09:40")))]
        assert c.client.post(f"/api/notifications/{bad['id']}/retry", json={}).status_code == 409
    finally:
        dead.close()


def test_snooze_holds_alerts_back_and_ack_stops_reminders(tmp_path, hook):
    folder(tmp_path, """
        - name: all
          channel: hook
          remind_every: 10m
    """, hook_channel(hook.url))
    c = N(tmp_path, T("08:55"))
    c.send(ANN, T("08:58"), "Available")
    c.send(BOB, T("08:58"), "Available")
    for bad in (20, 0.5, 1440, -15, "30"):
        r = c.client.post("/api/agents/ann/snooze", json={"minutes": bad, "by": "sam"})
        assert r.status_code == 400, bad
    assert c.client.post("/api/agents/nobody/snooze", json={"minutes": 15, "by": "sam"}).status_code == 404
    r = c.client.post("/api/agents/ann/snooze", json={"minutes": 30, "by": "sam"})
    assert r.status_code == 200 and r.get_json()["snooze"]["until"] == iso(T("09:28"))  # from now (08:58)
    assert c.client.post("/api/agents/bob/snooze", json={"minutes": 23 * 60 + 45, "by": "sam"}).status_code == 200
    assert c.client.post("/api/agents/bob/snooze", json={"minutes": 0, "by": "sam"}).status_code == 200
    c.send(ANN, T("09:05"), "Offline")
    c.send(BOB, T("09:05"), "Offline")
    c.tick(T("09:15"))
    c.send_all()
    assert hook.events() == [("opened", "bob", iso(T("09:05")))]  # ann is snoozed
    bob_exc = hook.bodies[0]["exception"]["id"]
    r = c.client.post(f"/api/exceptions/{bob_exc}/ack", json={"by": "sam", "note": "on it"})
    assert r.status_code == 200 and r.get_json()["acknowledged"]["by"] == "sam"
    c.tick(T("09:27"))
    c.send_all()
    assert len(hook.bodies) == 1  # ann still snoozed; bob acknowledged: no reminder
    c.tick(T("09:29"))  # the snooze ran out and ann is still offline: announced now
    c.send_all()
    assert hook.events()[-1] == ("opened", "ann", iso(T("09:05")))
    c.tick(T("09:39"))
    c.tick(T("09:40"))
    c.send_all()
    assert [e[1] for e in hook.events() if e[0] == "reminder"] == ["ann"]  # 10 minutes after her alert, once
    audit = c.client.get("/api/notifications/audit").get_json()["audit"]
    assert [a["action"] for a in audit] == ["ack", "unsnooze", "snooze", "snooze"]
    assert {a["action"] for a in audit} == {"ack", "snooze", "unsnooze"}
    assert all(a["by"] == "sam" for a in audit)


def test_snooze_of_one_exception_cancels_its_pending_alert(tmp_path, hook):
    folder(tmp_path, """
        - name: all
          channel: hook
    """, hook_channel(hook.url))
    c = N(tmp_path, T("08:55"))
    c.send(ANN, T("08:58"), "Available")
    c.send(ANN, T("09:05"), "Offline")
    c.tick(T("09:15"))
    (entry,) = c.outbox()
    exc_id = json.loads(entry["payload"])["exception"]["id"]
    assert c.client.post(f"/api/exceptions/{exc_id}/snooze", json={"minutes": 15, "by": "sam"}).status_code == 200
    c.send_all()
    assert hook.bodies == [] and c.outbox()[0]["status"] == "cancelled"
    c.tick(T("09:31"))
    c.send_all()
    assert hook.events() == [("opened", "ann", iso(T("09:05")))]


def test_digest_sends_one_message_per_interval(tmp_path, hook):
    folder(tmp_path, """
        - name: digest
          channel: hook
          digest: 15m
    """, hook_channel(hook.url))
    c = N(tmp_path, T("08:55"))
    c.send(ANN, T("08:58"), "Available")
    c.send(BOB, T("08:58"), "Available")
    c.send(ANN, T("09:05"), "Offline")
    c.send(BOB, T("09:06"), "Offline")
    c.tick(T("09:12"))
    c.send_all()
    assert hook.bodies == []  # waits for the interval's end
    c.tick(T("09:15"))
    c.send_all()
    (body,) = hook.bodies
    assert body["event"] == "digest" and [e["exception"]["agent"] for e in body["events"]] == ["ann", "bob"]


def test_business_hours_filter_and_team_and_rule_filters(tmp_path, hook):
    folder(tmp_path, """
        - name: tier1-away-daytime
          channel: hook
          rules: [away]
          teams: [tier1]
          hours: {days: [tue], from: "09:30", to: "17:00"}
    """, hook_channel(hook.url))
    c = N(tmp_path, T("08:55"))
    for w in (ANN, BOB):
        c.send(w, T("08:58"), "Available")
        c.send(w, T("09:05"), "Break")
    c.tick(T("09:20"))
    c.send_all()
    assert hook.bodies == []  # 2026-11-24 is a Tuesday; before 09:30
    c.tick(T("09:31"))
    c.send_all()
    assert hook.events() == [("opened", "ann", iso(T("09:05")))]


def test_slack_message_is_block_kit(tmp_path, monkeypatch):
    slack = Receiver(secret=None)
    try:
        folder(tmp_path, """
            - name: slack
              channel: floor
              events: [open, close]
        """, f"channels:\n  floor:\n    type: slack\n    url: {slack.url}\n")
        c = N(tmp_path, T("08:55"))
        c.send(ANN, T("08:58"), "Available")
        c.send(ANN, T("09:40"), "Offline")
        c.tick(T("09:50"))
        c.send_all()
        (msg,) = slack.bodies
        # Slack's documented incoming-webhook payload: fallback ``text`` plus at most 50 ``blocks``
        assert set(msg) == {"text", "blocks"} and "ann" in msg["text"] and len(msg["blocks"]) <= 50
        header, section, link = msg["blocks"]
        assert header["type"] == "header" and header["text"]["type"] == "plain_text"
        assert len(header["text"]["text"]) <= 150
        assert section["type"] == "section" and len(section["fields"]) <= 10
        fields = {f["text"].split("\n")[0]: f["text"].split("\n")[1] for f in section["fields"]}
        assert all(f["type"] == "mrkdwn" and len(f["text"]) <= 2000 for f in section["fields"])
        assert fields["*Agent*"] == "ann" and fields["*Rule*"] == "offline"
        assert fields["*Since*"] == "2026-11-24 14:40:00 UTC"
        assert link["text"]["text"] == "<https://rta.example.com/day?date=2026-11-24&agent=ann|Open ann's day>"
    finally:
        slack.close()


def test_check_reports_notification_errors_with_file_and_line_and_reload_keeps_last_good(tmp_path, hook):
    folder(tmp_path, """
        - name: all
          channel: hook
    """, hook_channel(hook.url))
    runner = CliRunner()
    ok = runner.invoke(cli, ["check", "--config", str(tmp_path / "config.yaml")])
    assert ok.exit_code == 0, ok.output
    assert "notifications" in ok.output and "1 channels, 1 routes" in ok.output
    c = N(tmp_path, T("08:55"))
    path = tmp_path / "notifications.yaml"
    path.write_text(path.read_text() + "  - name: typo\n    channel: nowhere\n    severity: urgent\n")
    bad = runner.invoke(cli, ["check", "--config", str(tmp_path / "config.yaml")])
    assert bad.exit_code != 0
    lines = path.read_text().splitlines()
    at = lines.index("    channel: nowhere") + 1
    assert f"{path}:{at}: route 'typo'.channel: unknown channel 'nowhere'" in bad.output
    assert f"{path}:{at + 1}: route 'typo'.severity: unknown value 'urgent'" in bad.output
    c.send(ANN, T("08:58"), "Available")
    c.send(ANN, T("09:40"), "Offline")
    c.tick(T("09:50"))
    c.send_all()
    assert len(hook.bodies) == 1  # the broken edit did not silence the route that worked
    assert c.engine.notifier.source.errors and c.client.get("/health").get_json()["notifications"]["ok"] is False


def test_notify_test_sends_a_sample_to_the_channel(tmp_path, hook):
    folder(tmp_path, """
        - name: all
          channel: hook
    """, hook_channel(hook.url))
    r = CliRunner().invoke(cli, ["notify", "test", "hook", "--config", str(tmp_path / "config.yaml")])
    assert r.exit_code == 0, r.output
    (body,) = hook.bodies
    assert body["event"] == "test" and body["exception"]["agent"] == "test-agent"
    hook.status = 503
    r = CliRunner().invoke(cli, ["notify", "test", "hook", "--config", str(tmp_path / "config.yaml")])
    assert r.exit_code != 0 and "HTTP 503" in r.output
    r = CliRunner().invoke(cli, ["notify", "test", "nope", "--config", str(tmp_path / "config.yaml")])
    assert r.exit_code != 0 and "no channel 'nope'" in r.output


def test_email_over_starttls_with_login_reaches_a_real_smtp_server(tmp_path, monkeypatch):
    from email import message_from_bytes, policy

    from notify_helpers import Mailbox

    box = Mailbox(tmp_path, "adherence", "mail-pass")
    monkeypatch.setenv("SMTP_USER", "adherence")
    monkeypatch.setenv("SMTP_PASSWORD", "mail-pass")
    try:
        folder(tmp_path, """
            - name: mail
              channel: supervisors
              events: [open, close]
        """, textwrap.dedent(f"""\
            channels:
              supervisors:
                type: email
                host: 127.0.0.1
                port: {box.port}
                security: starttls
                username: ${{SMTP_USER}}
                password: ${{SMTP_PASSWORD}}
                from: adherence@example.com
                to: [floor@example.com, lead@example.com]
                ca_file: {box.ca_file}
            """), "delivery: {timeout: 2s}")  # aiosmtpd answers a refused login by going silent
        c = N(tmp_path, T("08:55"))
        c.send(ANN, T("09:40"), "Offline")
        c.tick(T("09:50"))
        c.send_all()
        assert box.logins == [("adherence", True)]
        (env,) = box.messages
        assert env.mail_from == "adherence@example.com"
        assert env.rcpt_tos == ["floor@example.com", "lead@example.com"]
        msg = message_from_bytes(env.original_content, policy=policy.default)
        assert msg["Subject"] == "Exception opened: ann — offline (critical) since 2026-11-24 14:40:00 UTC"
        text = msg.get_body(("plain",)).get_content()
        html = msg.get_body(("html",)).get_content()
        assert "https://rta.example.com/day?date=2026-11-24&agent=ann" in text
        assert '<a href="https://rta.example.com/day?date=2026-11-24&amp;agent=ann">' in html and "<td>ann</td>" in html
        # a wrong password is a failed attempt, retried (and dead-lettered in the end), not a crash
        monkeypatch.setenv("SMTP_PASSWORD", "wrong")
        c.engine.notifier.source.check()
        c.send(ANN, T("09:55"), "Available")
        c.tick(T("09:56"))
        c.send_all()
        (closed,) = c.outbox(event="closed")
        assert closed["status"] == "pending" and closed["attempts"] == 1 and len(box.messages) == 1
    finally:
        box.close()


def test_a_late_record_that_moves_the_end_before_the_closing_went_out_corrects_the_waiting_message(tmp_path, hook):
    folder(tmp_path, """
        - name: all
          channel: hook
          events: [open, close]
    """, hook_channel(hook.url))
    c = N(tmp_path, T("08:55"))
    c.send(ANN, T("09:40"), "Offline")
    c.tick(T("09:50"))
    c.send_all()
    c.send(ANN, T("09:52"), "Available")
    c.tick(T("09:53"))  # the closing waits (not sent yet)
    c.send(ANN, T("09:51"), "Available")  # late: she was back at 09:51
    c.tick(T("09:54"))
    c.send_all()
    assert [e[0] for e in hook.events()] == ["opened", "closed"]  # one closing, with the end as now known
    assert hook.bodies[1]["exception"]["end"] == iso(T("09:51"))
