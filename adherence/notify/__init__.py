"""Exception notifications: webhooks, Slack and email, durable (an outbox) and deduplicated.

``config`` reads the notification file, ``outbox`` decides what to announce from
stored state inside the write transaction that changed an exception, ``sender``
delivers with retries, backoff and a dead-letter state, ``channels`` formats and
sends. See docs/notifications.md.
"""
