"""The schema: migrations kept by sqlite-utils, applied once, safe when several processes start."""

from __future__ import annotations

import threading

import sqlite_utils

from adherence import store


def test_migrations_apply_once_and_are_recorded_by_sqlite_utils(tmp_path):
    conn = store.connect(tmp_path / "a.db")
    assert store.migrate(conn) == [name for name, _ in store.MIGRATIONS]
    assert store.migrate(conn) == []
    db = sqlite_utils.Database(conn)
    recorded = [r["name"] for r in db["_sqlite_migrations"].rows_where("migration_set = ?", ["adherence"])]
    assert recorded == [name for name, _ in store.MIGRATIONS]
    assert {"journal", "rejected", "exceptions", "adherence", "meta"} <= set(db.table_names()) | set(db.view_names())  # the journal is a view since 0010


def test_a_database_made_with_the_old_bookkeeping_is_adopted_not_migrated_twice(tmp_path):
    conn = store.connect(tmp_path / "old.db")
    conn.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_ms INTEGER)")
    legacy = store.MIGRATIONS[:3]
    for name, sql in legacy:
        for statement in sql.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute("INSERT INTO _migrations VALUES (?, 0)", (name,))
    conn.execute("INSERT INTO journal (worker_sid, at_ms, received_ms, activity, task, record)"
                 " VALUES ('WK1', 1, 1, 'Available', 'none', '{}')")
    applied = store.migrate(conn)
    assert applied == [name for name, _ in store.MIGRATIONS[3:]]
    db = sqlite_utils.Database(conn)
    assert "_migrations" not in db.table_names()
    assert db["journal"].count == 1


def test_two_processes_starting_on_a_new_database_both_succeed(tmp_path):
    path = tmp_path / "race.db"
    errors, applied = [], []
    barrier = threading.Barrier(4)

    def start():
        conn = store.connect(path)
        barrier.wait()
        try:
            applied.append(store.migrate(conn))
        except Exception as exc:  # the failure this guards against: "table journal already exists"
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(map(len, applied)) == [0, 0, 0, len(store.MIGRATIONS)]


def test_the_start_probe_of_a_big_database_reads_every_table_including_those_without_rowid(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "QUICK_CHECK_MAX_BYTES", 0)  # as for a file too big for quick_check
    s = store.Store(tmp_path / "big.db")
    with s.write() as conn:
        conn.execute("INSERT INTO evaluation VALUES ('WK1', 1)")  # a WITHOUT ROWID table
    s.close()
    again = store.Store(tmp_path / "big.db")
    assert again.corruption is None
    again.close()


def test_the_service_checkpoints_in_the_background_not_inside_a_commit(tmp_path, monkeypatch):
    import time

    seen: list[str] = []
    real_connect = store.connect

    def traced(path):
        conn = real_connect(path)
        conn.set_trace_callback(seen.append)
        return conn

    monkeypatch.setattr(store, "BACKGROUND_CHECKPOINT_BYTES", 1)
    s = store.Store(tmp_path / "c.db")
    monkeypatch.setattr(store, "connect", traced)  # the checkpointer's own connection
    s.start_checkpointer(interval_s=0.02)
    with s.write() as conn:
        assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == store.BACKSTOP_AUTOCHECKPOINT_PAGES
        conn.execute("INSERT INTO meta VALUES ('k', 'v')")
    deadline = time.monotonic() + 5
    while "PRAGMA wal_checkpoint(PASSIVE)" not in seen and time.monotonic() < deadline:
        time.sleep(0.02)
    s.close()
    assert "PRAGMA wal_checkpoint(PASSIVE)" in seen
