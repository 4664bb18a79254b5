"""The notifier's pass after each tick looks only at exceptions time may have given something to send: an
open exception already announced (and not due a reminder) costs nothing, however many there are."""

from __future__ import annotations

from adherence.notify.outbox import Notifier

from test_notify import ANN, BOB, N, T, folder, hook, hook_channel  # noqa: F401  (hook: the fixture)


def candidates(c, at: int) -> list[int]:
    return Notifier._candidates(c.engine.store.reader, c.engine.notifier.current, at)


def test_only_exceptions_with_something_due_are_looked_at(tmp_path, hook):
    folder(tmp_path, """
        - name: all
          channel: hook
          min_duration: 10m
          remind_every: 30m
        - name: tier2-only
          channel: hook
          teams: [tier2]
    """, hook_channel(hook.url))
    c = N(tmp_path, T("08:55"))
    c.send(ANN, T("09:00"), "Offline")
    c.send(BOB, T("09:00"), "Offline")
    c.tick(T("09:07"))
    (ann,) = c.exceptions(agent="ann")
    (bob,) = c.exceptions(agent="bob")
    # the tier2 route announces bob at once; route "all" waits for 10 minutes of both
    c.send_all()
    assert candidates(c, T("09:07")) == []
    assert candidates(c, T("09:10")) == [ann["id"], bob["id"]]  # min_duration reached for "all"
    c.tick(T("09:10"))
    c.send_all()
    assert len(hook.events()) == 3
    # announced, nothing due: the pass reads nothing more about them, tick after tick
    for m in (11, 20, 39):
        assert candidates(c, T(f"09:{m:02d}")) == []
        c.tick(T(f"09:{m:02d}"))
    assert candidates(c, T("09:40")) == [ann["id"], bob["id"]]  # reminders due
    assert c.client.post(f"/api/exceptions/{ann['id']}/ack", json={"by": "sam"}).status_code == 200
    assert candidates(c, T("09:40")) == [bob["id"]]  # acknowledged: no reminder to decide
    c.tick(T("09:40"))
    c.send_all()
    assert [e[:2] for e in hook.events()][-1] == ("reminder", "bob")
    assert candidates(c, T("09:41")) == []
    # a snoozed agent's unannounced exception stays a candidate until it can be announced
    assert c.client.post("/api/agents/ann/snooze", json={"minutes": 15, "by": "sam"}).status_code == 200
    c.send(ANN, T("09:42"), "Available")
    c.send(ANN, T("09:43"), "Offline")
    c.tick(T("09:54"))
    c.send_all()
    (_, ann2) = c.exceptions(agent="ann")
    assert candidates(c, T("09:54")) == [ann2["id"]]  # due (10 minutes long) but snoozed until 09:55
    c.tick(T("09:56"))  # the snooze ended: announced now
    c.send_all()
    assert hook.events()[-1][:2] == ("opened", "ann") and candidates(c, T("09:59")) == []


def test_the_sender_holds_back_while_a_tick_runs_and_delivers_after_it(tmp_path, hook):
    import threading

    folder(tmp_path, """
        - name: all
          channel: hook
    """, hook_channel(hook.url))
    c = N(tmp_path, T("08:55"))
    c.send(ANN, T("09:00"), "Offline")
    c.tick(T("09:10"))
    assert len(c.outbox(status="pending")) == 1
    with c.engine.notifier.evaluating():  # as scheduler._tick wraps the runner's tick
        assert c.engine.notifier.holding()
        t = threading.Thread(target=c.sender.run_once, args=("hook",))
        t.start()
        t.join(0.3)
        assert t.is_alive() and hook.bodies == []
    t.join(5)
    assert not t.is_alive() and hook.events() == [("opened", "ann", hook.bodies[0]["exception"]["start"])]
    assert not c.engine.notifier.holding()


def test_the_listener_is_called_only_for_agents_whose_exceptions_changed(tmp_path, hook):
    folder(tmp_path, """
        - name: all
          channel: hook
    """, hook_channel(hook.url))
    c = N(tmp_path, T("08:55"))
    calls = []
    listener = c.engine.runner.exception_listener
    c.engine.runner.exception_listener = lambda conn, changed, deleted, now: (
        calls.append((sorted(changed), sorted(deleted))), listener(conn, changed, deleted, now))
    c.send(ANN, T("09:00"), "Offline")
    for m in range(1, 30):  # bob's records keep him evaluated every tick; his exceptions never change
        c.send(BOB, T(f"09:{m:02d}"), "Available")
        c.tick(T(f"09:{m:02d}") + 30_000)
    (ann,) = c.exceptions(agent="ann")
    assert calls == [([ann["id"]], [])]  # once, when ann's exception appeared; never for bob, never again
