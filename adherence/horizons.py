"""Every horizon of the evaluation, in one place.

These are costs, not semantics: each bounds how much is read or how often a
row is refreshed. None of them changes what a stored result *is* — results
are a function of the journal, the schedules, the rules and the approvals
(see ``policy``) — except where a comment says so.
"""

from __future__ import annotations

DAY_MS = 86_400_000
MINUTE_MS = 60_000

# How far before an evaluation's start the timeline is read at first. The policy reads further back
# (doubling) whenever a condition already held at that point, so this is only the usual case's cost: a
# steady evaluation reads this much plus what came since, and materialising the snapshots read is most of
# an evaluation's work (a day of them was ~30 % of a steady tick).
LOOKBACK_MS = 30 * MINUTE_MS

# The tracker keeps this much of every timeline in memory; older periods are read from the journal.
MEMORY_HORIZON_MS = 3 * DAY_MS

# Rows of agents inside a segment with no change are refreshed at least this often (figures of a day in
# progress are "as of" their refresh; each agent at its own phase so 10,000 agents are not due at once).
MAX_STALENESS_MS = 15 * MINUTE_MS

# Agents with an open exception have their day's figures refreshed at least this often.
OPEN_REFRESH_MS = MINUTE_MS

# The evaluator computes with no lock held, then writes agents' results in transactions of at most this
# many agents, so the writer is never held long (webhooks wait for it).
WRITE_CHUNK_AGENTS = 100
# ... and each write transaction stops taking agents after this much work (a slow disk, a busy machine).
WRITE_BUDGET_S = 0.04

# Days before today (agent-local) whose rows are "not final": a schedule or rule edit re-evaluates them at
# the next tick. Older days keep what they were computed with and are reported stale until recomputed.
LIVE_DAYS = 1

# Retention never purges what the evaluator may still read: this many days before the oldest instant an
# agent still has to be evaluated from (its look-back, overnight shifts and the day before).
EVALUATOR_DAYS = 3
