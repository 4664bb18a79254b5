"""TaskRouter events as a source of agent state, beside the Flex RTA feed.

Every Flex account can send TaskRouter's events itself, without Twilio
registering anything: to the Workspace's ``EventCallbackUrl``
(``taskrouter``: one form-encoded POST per event), through an Event Streams
webhook sink (``eventstreams``: JSON CloudEvents), and on demand from the
Events REST resource (``backfill``: 30 days of history). All three carry the
same events with the same ``EV…`` SID, so they merge: an event counts once
whichever way it came.

``events``: one event of any of those shapes → ``Event``, and the fold that
turns a worker's events into the RTA feed's snapshot (activity, reservations
by channel, task state). ``journal.Journal.ingest_events`` writes them.
"""
