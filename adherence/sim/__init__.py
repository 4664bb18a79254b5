"""Parts of the simulated contact center (see ``adherence.simulate`` for the API).

``world``: SIDs, teams, roster and shifts, pure functions of the seed.
``agent``: one agent's behaviour, a discrete-event simulation emitting feed records.
``post``: sending the feed to a running server, signed like Twilio (load generator).
"""
