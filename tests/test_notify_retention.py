"""Retention of notifications: what is done with (sent, cancelled, dead-lettered, ended snoozes, the
announcement state of long-ended exceptions) goes after ``retention.notifications_days``; pending entries never."""

from __future__ import annotations

import pytest

from adherence.config import ConfigError, load_config
from adherence.retention import DAY_MS, purge, purge_notifications
from adherence.timeutil import iso

from test_notify import ANN, BOB, N, T, folder, hook, hook_channel  # noqa: F401  (hook: the fixture)


def _statuses(c) -> dict[str, int]:
    return dict(c.engine.store.reader.execute("SELECT status, COUNT(*) FROM outbox GROUP BY status").fetchall())


def test_done_entries_and_ended_snoozes_go_after_the_configured_age_and_pending_ones_never(tmp_path, hook):
    folder(tmp_path, """
        - name: all
          channel: hook
          events: [open, close]
    """, hook_channel(hook.url))
    c = N(tmp_path, T("08:55"))
    c.send(ANN, T("09:00"), "Offline")
    c.send(BOB, T("09:00"), "Offline")
    c.tick(T("09:10"))
    c.send_all()  # both opened, sent
    c.send(ANN, T("09:20"), "Available")
    c.tick(T("09:21"))  # ann's closing: sent
    c.send_all()
    assert c.client.post("/api/agents/bob/snooze", json={"minutes": 15, "by": "sam"}).status_code == 200
    hook.status = 500  # bob's next message cannot go out: it stays pending, retried
    c.send(BOB, T("09:30"), "Available")
    c.tick(T("09:31"))
    c.send_all()
    assert _statuses(c) == {"sent": 3, "pending": 1}
    with c.engine.store.write() as conn:  # one dead letter and one cancelled entry, as the sender and a snooze leave them
        conn.execute("INSERT INTO outbox (channel, route, event, exception_id, worker_sid, agent, payload, status, "
                     "created_ms, next_attempt_ms) VALUES ('hook', 'all', 'opened', NULL, ?, 'ann', '{}', 'dead', ?, ?)",
                     (ANN, T("09:00"), T("09:00")))
        conn.execute("INSERT INTO outbox (channel, route, event, exception_id, worker_sid, agent, payload, status, "
                     "created_ms, next_attempt_ms) VALUES ('hook', 'all', 'opened', NULL, ?, 'ann', '{}', "
                     "'cancelled', ?, ?)", (ANN, T("09:00"), T("09:00")))
    states = c.engine.store.reader.execute("SELECT COUNT(*) FROM notify_state").fetchone()[0]
    assert states == 2

    # 29 days later nothing is old enough (30 days by default)
    kept = purge_notifications(c.engine, now_ms=T("09:40") + 29 * DAY_MS)
    assert kept["outbox_deleted"] == 0 and kept["snoozes_deleted"] == 0 and kept["states_deleted"] == 0
    # 31 days later: the done entries, the ended snooze and the ended exceptions' state go; pending stays
    out = purge_notifications(c.engine, now_ms=T("09:40") + 31 * DAY_MS)
    assert out["outbox_deleted"] == 5 and out["snoozes_deleted"] == 1
    assert out["horizon"] == iso(T("09:40") + DAY_MS)
    assert _statuses(c) == {"pending": 1}
    # the pending entry's exception keeps its state (its message is still to be sent)
    left = c.engine.store.reader.execute("SELECT exception_id FROM notify_state").fetchall()
    pending_exc = c.engine.store.reader.execute("SELECT exception_id FROM outbox WHERE status = 'pending'").fetchone()
    assert [r[0] for r in left] == [pending_exc[0]] and out["states_deleted"] == 1
    # the history of the snooze stays in the audit table
    actions = [a["action"] for a in c.client.get("/api/audit").get_json()["audit"]]
    assert actions == ["snooze"]
    # once delivered, it goes too at the next purge past its age
    hook.status = 200
    c.clock.set(T("09:40") + 31 * DAY_MS)  # the sender records sent_ms from the clock
    with c.engine.store.write() as conn:
        conn.execute("UPDATE outbox SET next_attempt_ms = 0")
    c.send_all()
    assert _statuses(c) == {"sent": 1}
    assert purge_notifications(c.engine, now_ms=T("09:40") + 62 * DAY_MS)["outbox_deleted"] == 1


def test_the_retention_job_purges_notifications_and_the_age_is_configurable(tmp_path, hook):
    folder(tmp_path, """
        - name: all
          channel: hook
    """, hook_channel(hook.url))
    cfg = tmp_path / "config.yaml"
    cfg.write_text(cfg.read_text() + "retention:\n  notifications_days: 2\n")
    c = N(tmp_path, T("08:55"))
    assert c.engine.config.retention_notifications_days == 2
    c.send(ANN, T("09:00"), "Offline")
    c.tick(T("09:10"))
    c.send_all()
    assert _statuses(c) == {"sent": 1}
    c.clock.set(T("09:10") + DAY_MS)
    purge(c.engine)
    assert _statuses(c) == {"sent": 1}
    c.clock.set(T("09:10") + 2 * DAY_MS + 60_000)
    purge(c.engine)
    assert _statuses(c) == {}
    cfg.write_text(cfg.read_text().replace("notifications_days: 2", "notifications_days: 0"))
    with pytest.raises(ConfigError, match="notifications_days"):
        load_config(cfg)
