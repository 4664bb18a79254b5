"""The database as something to explore: the roster beside the results, and views that read like reports.

Planners open the database with sqlite-utils or Datasette (README, "Explore the data"). The results
tables store what the engine needs (epoch milliseconds, worker SIDs); these views join in the roster's
names and teams and give ISO-8601 UTC times and seconds, as the API and the CSV do. Written with
sqlite-utils' table and view API: none of this is on a hot path.
"""

from __future__ import annotations

import sqlite_utils

ISO = "strftime('%Y-%m-%dT%H:%M:%fZ', {col} / 1000.0, 'unixepoch')"

VIEWS = {
    "exceptions_named": f"""
        SELECT e.id, e.day, e.agent, a.name AS agent_name, a.email AS agent_email, e.team, e.worker_sid,
               e.rule, e.severity, e.scheduled_activity, e.actual_activity, e.task_state,
               {ISO.format(col='e.start_ms')} AS start,
               CASE WHEN e.end_ms IS NULL THEN NULL ELSE {ISO.format(col='e.end_ms')} END AS "end",
               CASE WHEN e.end_ms IS NULL THEN 'open' ELSE 'closed' END AS status,
               (e.end_ms - e.start_ms) / 1000.0 AS duration_seconds,
               e.approved, e.approved_by, e.note
        FROM exceptions e LEFT JOIN agents a ON a.worker_sid = e.worker_sid""",
    "adherence_named": f"""
        SELECT d.day, d.agent, a.name AS agent_name, d.team, d.worker_sid,
               d.scheduled_ms / 1000.0 AS scheduled_seconds, d.in_adherence_ms / 1000.0 AS in_adherence_seconds,
               d.out_of_adherence_ms / 1000.0 AS out_of_adherence_seconds,
               d.approved_ms / 1000.0 AS approved_seconds, d.logged_in_ms / 1000.0 AS logged_in_seconds,
               round(d.adherence_percent, 2) AS adherence_percent,
               round(d.conformance_percent, 2) AS conformance_percent, d.exceptions, d.stale,
               {ISO.format(col='d.as_of_ms')} AS as_of
        FROM adherence d LEFT JOIN agents a ON a.worker_sid = d.worker_sid""",
    "team_days": """
        SELECT day, team, COUNT(*) AS agents, SUM(scheduled_ms) / 1000.0 AS scheduled_seconds,
               SUM(out_of_adherence_ms) / 1000.0 AS out_of_adherence_seconds,
               round(100.0 * SUM(in_adherence_ms) / NULLIF(SUM(scheduled_ms), 0), 2) AS adherence_percent,
               SUM(exceptions) AS exceptions
        FROM adherence GROUP BY day, team""",
}


def create_schema(db: sqlite_utils.Database) -> None:
    """The ``agents`` table and the views (a migration: runs inside its transaction)."""
    db["agents"].create({"worker_sid": str, "agent": str, "name": str, "email": str, "team": str,
                         "timezone": str, "in_roster": int}, pk="worker_sid", not_null={"agent", "in_roster"})
    for name, sql in VIEWS.items():
        db.create_view(name, sql.strip())


def sync_roster(store, schedule) -> int:
    """Copy the roster in force into ``agents`` (agents who left stay, with ``in_roster`` 0, so old
    results keep their names). Returns the number of agents in the roster."""
    if schedule is None:
        return 0
    rows = [{"worker_sid": a.worker_sid, "agent": a.key, "name": a.name, "email": a.email, "team": a.team,
             "timezone": str(schedule.tz(a.key)), "in_roster": 1} for a in schedule.agents.values()]
    with store.write() as conn:
        db = sqlite_utils.Database(conn)
        conn.execute("UPDATE agents SET in_roster = 0 WHERE in_roster = 1")
        db["agents"].upsert_all(rows, pk="worker_sid")
    return len(rows)
