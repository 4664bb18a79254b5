"""The receivers: ``/webhooks/rta`` (the Flex WFM Real-Time Adherence feed),
``/webhooks/taskrouter`` (the Workspace event callback, form-encoded) and
``/webhooks/events`` (an Event Streams webhook sink, CloudEvents JSON).

Answers in milliseconds: authenticate, parse, one SQLite transaction,
apply to live state, reply. Evaluation happens on the scheduler, never in
the request. Failed authentication stores nothing; a body that passed
authentication is always kept (journal or rejected table); a 5xx means the
body could not be stored, so Twilio's retry is the right reaction.

The same authentication guards all three, each scheme on when configured:
HTTP basic auth (credentials in the registered URL: Event Streams sends them
on every request) and ``X-Twilio-Signature`` with the auth token (form
parameters for the callback, checked with twilio-python's
``RequestValidator``; ``bodySHA256`` for JSON bodies).

The work itself is in ``receive.py``, shared with the front processes of
``serve`` (``server.front_processes``): these views only adapt it to Flask.
"""

from __future__ import annotations

from flask import Blueprint, current_app, request

from . import receive
from .receive import MAX_AHEAD_MS  # noqa: F401 (the documented name of the clamp)

bp = Blueprint("webhooks", __name__)


def _answer(reply: receive.Reply):
    return current_app.response_class(reply.body, status=reply.status, headers=reply.headers,
                                       content_type=reply.content_type)


def _receive(name: str):
    engine = current_app.extensions["adherence"]
    refusal = receive.authenticate(engine.config, request)
    if refusal is not None:
        receive.count_refusal(refusal.status)
        receive.log_refusal(refusal, request.remote_addr)
        return _answer(refusal.reply())
    return _answer(receive.receive(engine, name, request))


@bp.post("/webhooks/rta")
def rta():
    return _receive("rta")


@bp.post("/webhooks/taskrouter")
def taskrouter():
    """The Workspace's EventCallbackUrl: one form-encoded event per request; 204 as TaskRouter asks."""
    return _receive("taskrouter")


@bp.post("/webhooks/events")
def event_streams():
    """An Event Streams webhook sink: a CloudEvent or a JSON list of them per request."""
    return _receive("events")
