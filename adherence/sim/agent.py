"""One simulated agent: a small discrete-event simulation emitting feed records.

Each agent is independent (its own RNG, its own event heap), so the whole
contact center is a merge of per-agent streams and needs memory only for
the agents' current states. What an agent does:

* logs in around shift start (a few minutes early, some late, a few never),
  sometimes via a spell of Unavailable;
* while Available, is offered calls and chats while it has free capacity;
  each reservation runs created/pending → accepted → wrapping → completed,
  or ends rejected, timeout, rescinded or canceled;
* leaves for scheduled Break / Lunch / Meeting roughly on time (after the
  customer it is talking to; wrap-up may continue on the break), sometimes
  late or long, and takes unscheduled Unavailable / Offline spells;
* logs out (Offline) around shift end, once its tasks are done — also when
  the shift ends at or after the end of the simulated window: the agent's
  day runs on until its logout, as a real one does.

Every change of activity or reservation emits one record with the agent's
complete status; records then get a delivery time with the feed's
imperfections (latency, a few late deliveries, ~1% duplicates).

The same change can be rendered as the TaskRouter event behind it (``fmt``
``taskrouter``: the workspace callback's form fields; ``eventstreams``: a
CloudEvent). Every format draws the same random numbers in the same order,
so a seed gives the same day in each; only what the RTA feed loses differs
(a worker's first record with a null activity, a ``created`` record folded
into the ``accepted`` one), and ``exact`` turns those losses off.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import math
import random
from collections import deque
from dataclasses import dataclass
from typing import Iterator

from .world import MINUTE, AgentPlan, ChannelSpec, World, sid

# reservation statuses that hold channel capacity
_HOLDS = frozenset({"created", "pending", "accepted", "wrapping"})
# ... and the ones an agent finishes before leaving for a break (wrap-up may go on)
_BUSY = frozenset({"created", "pending", "accepted"})
_TERMINAL = frozenset({"completed", "canceled", "rejected", "rescinded", "timeout"})

FORMATS = ("rta", "taskrouter", "eventstreams")
# reservation status → the TaskRouter event that reports it
_EVENT_OF_STATUS = {"accepted": "accepted", "wrapping": "wrapup", "completed": "completed", "canceled": "canceled",
                    "rejected": "rejected", "rescinded": "rescinded", "timeout": "timeout"}

# feed imperfections
P_DUPLICATE = 0.01
P_LATE = 0.015
P_FOLD_CREATED = 0.04  # a reservation's "created" record folded into the "accepted" one

_DAY_PREFIX: dict[int, str] = {}


def iso_ms(ms: int) -> str:
    """Epoch ms → ``2026-11-25T14:03:07.120Z`` (always with milliseconds); fast."""
    day, rem = divmod(ms, 86_400_000)
    prefix = _DAY_PREFIX.get(day)
    if prefix is None:
        from datetime import date, timedelta

        prefix = _DAY_PREFIX[day] = (date(1970, 1, 1) + timedelta(days=day)).isoformat() + "T"
    s, milli = divmod(rem, 1000)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return f"{prefix}{h:02d}:{m:02d}:{s:02d}.{milli:03d}Z"


class Reservation:
    __slots__ = ("sid", "task_sid", "queue_sid", "workflow_sid", "direction", "created", "status", "tas", "updated", "plan", "_d")

    def __init__(self, rng: random.Random, queue_sid: str, workflow_sid: str, direction: str | None, t: int):
        self.sid = sid("WR", rng)
        self.task_sid = sid("WT", rng)
        self.queue_sid = queue_sid
        self.workflow_sid = workflow_sid
        self.direction = direction  # None: the key is absent from the record
        self.created = t
        self.status = "pending"
        self.tas = "reserved"
        self.updated = t
        self.plan: deque = deque()  # (at_ms, status, task_assignment_status)
        self._d: dict | None = None

    def set(self, status: str, tas: str, t: int) -> None:
        self.status, self.tas, self.updated, self._d = status, tas, t, None

    def as_dict(self) -> dict:
        """The reservation as the feed shows it (cached until it changes; treat as read-only)."""
        if self._d is None:
            upd = iso_ms(self.updated)
            d = ResDict(
                sid=self.sid,
                status=self.status,
                workflow_sid=self.workflow_sid,
                task_sid=self.task_sid,
                task_queue_sid=self.queue_sid,
                task_assignment_status=self.tas,
                date_created=iso_ms(self.created),
                date_updated=upd,
                date_reservation_status_updated=upd,
            )
            if self.direction is not None:
                d["direction"] = self.direction
            d.json = _ENCODE(d)
            self._d = d
        return self._d


class ResDict(dict):
    """A reservation dict that carries its own compact JSON (reservations repeat in many records)."""

    __slots__ = ("json",)


_ENCODE = json.JSONEncoder(separators=(",", ":")).encode


def _js(v) -> str:
    # only for the simulator's own values: SIDs, ISO times, activity names (no characters to escape)
    return "null" if v is None else f'"{v}"'


def encode_record(r: dict) -> str:
    """A record built by this module → exactly ``json.dumps(r, separators=(",", ":"))``, but faster."""
    w = r["worker"]
    chans = r["channels"]
    if chans is None:
        cj = "null"
    else:
        out = []
        for c in chans:
            res = c["reservations"]
            rj = "null" if res is None else "[" + ",".join(x.json for x in res) + "]"
            out.append(
                f'{{"reservations":{rj},"worker_channel_sid":{_js(c["worker_channel_sid"])},'
                f'"task_channel_sid":"{c["task_channel_sid"]}","task_channel_name":"{c["task_channel_name"]}",'
                f'"available":{c["available"]},"available_capacity":{c["available_capacity"]},'
                f'"capacity":{c["capacity"]},"date_capacity_updated":{_js(c["date_capacity_updated"])}}}'
            )
        cj = "[" + ",".join(out) + "]"
    return (
        f'{{"worker":{{"sid":"{w["sid"]}","activity_sid":{_js(w["activity_sid"])},'
        f'"activity_name":{_js(w["activity_name"])},"date_activity_updated":{_js(w["date_activity_updated"])}}},'
        f'"channels":{cj},"account_sid":"{r["account_sid"]}","workspace_sid":"{r["workspace_sid"]}",'
        f'"last_processed_event_sid":"{r["last_processed_event_sid"]}",'
        f'"date_last_processed_event":"{r["date_last_processed_event"]}"}}'
    )


def encode_envelope(env: dict) -> str:
    """An envelope from ``Simulation.events()`` → its compact JSON (same text as ``json.dumps``)."""
    return (
        '{"product":"Flex","object":"WFMWorkerChange","version":1,"records":['
        + ",".join(encode_record(r) for r in env["records"])
        + "]}"
    )


class Channel:
    __slots__ = ("spec", "tc_sid", "wc_sid", "queue_sid", "res", "armed")

    def __init__(self, spec: ChannelSpec, tc_sid: str, wc_sid: str | None, queue_sid: str):
        self.spec = spec
        self.tc_sid = tc_sid
        self.wc_sid = wc_sid
        self.queue_sid = queue_sid
        self.res: list[Reservation] = []
        self.armed = False  # an offer is scheduled

    def held(self) -> int:
        return sum(1 for r in self.res if r.status in _HOLDS)

    def free(self) -> int:
        return self.spec.capacity - self.held()

    def available_capacity(self) -> int:
        """Percent of capacity free, as Flex reports it."""
        cap = self.spec.capacity
        return round(100 * (cap - self.held()) / cap)


@dataclass
class Step:
    """One planned activity change of the agent's day, executed in order."""

    at: int  # planned time (ms)
    kind: str  # "login", "away", "logout"
    activity: str = "Available"
    duration: int = 0  # for "away": how long before returning to Available
    via_unavailable: int = 0  # for "login": ms spent Unavailable before going Available
    lead: int = 0  # stop taking new tasks this long before ``at``, to leave on time


class AgentSim:
    """Runs one agent over the simulation window; ``run()`` yields deliveries in order."""

    def __init__(self, world: World, plan: AgentPlan, fmt: str = "rta", exact: bool = False):
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        self.fmt = fmt
        self.exact = exact
        self.w = world
        self.plan = plan
        self.rng = rng = random.Random(f"adherence-sim:{world.seed}:run:{plan.index}")
        self.end_ms = world.end_ms
        # how this agent's records look: some never carry a worker channel sid or capacity date
        self.has_wc = rng.random() < 0.6
        self.cap_date = None if rng.random() < 0.5 else iso_ms(world.start_ms - rng.randrange(1, 30) * 86_400_000)
        self.channels = [
            Channel(spec, world.channel_sids[spec.name], sid("WC", rng), world.queue_sids[(plan.team, spec.name)])
            for spec in plan.channels
        ]
        self.activity = "Offline"
        self.activity_at: str | None = None  # ISO text of the last activity change
        self.leaving: Step | None = None  # a step waiting for tasks to finish
        self.leave_scheduled = False
        self.n_records = 0
        self.last_t = 0
        self.steps = self._plan_steps()
        self.step_idx = 0
        self._heap: list = []
        self._seq = 0
        self._out: list = []  # pending deliveries: (delivery_ms, seq, record)
        self._out_seq = 0

    # ---- the day plan -----------------------------------------------------------

    def _plan_steps(self) -> list[Step]:
        rng = self.rng
        steps: list[Step] = []
        for sh in self.plan.shifts:
            if sh.absent:
                continue
            x = rng.random()
            if x < 0.80:
                late = int(_clip(rng.gauss(-120, 90), -600, 60) * 1000)
            elif x < 0.95:
                late = rng.randint(3 * 60, 15 * 60) * 1000
            else:
                late = rng.randint(15 * 60, 40 * 60) * 1000
            via = rng.randint(30, 180) * 1000 if rng.random() < 0.3 else 0
            steps.append(Step(sh.start_ms + late, "login", via_unavailable=via))
            for a, b, act in sh.segments:
                if act == "Available":
                    continue
                y = rng.random()
                delay = int(_clip(rng.gauss(30, 60), -120, 180) * 1000) if y < 0.75 else (
                    rng.randint(120, 480) * 1000 if y < 0.95 else rng.randint(480, 900) * 1000
                )
                length = (b - a) * _clip(rng.gauss(1.0, 0.05), 0.8, 1.2)
                if rng.random() < 0.15:
                    length += rng.randint(3 * 60, 12 * 60) * 1000  # a long break
                if act == "Lunch":
                    act = "Lunch" if rng.random() < 0.8 else "Break"
                elif act == "Meeting":
                    act = "Meeting" if rng.random() < 0.6 else "Unavailable"
                steps.append(Step(a + delay, "away", act, int(length), lead=self._lead()))
            # unscheduled spells during Available time
            hours = (sh.end_ms - sh.start_ms) / 3_600_000
            for _ in range(_poisson(rng, 0.2 * hours)):
                at = rng.randint(sh.start_ms + 20 * MINUTE, sh.end_ms - 20 * MINUTE)
                if any(a - 10 * MINUTE < at < b + 10 * MINUTE for a, b, act in sh.segments if act != "Available"):
                    continue
                if rng.random() < 0.7:
                    steps.append(Step(at, "away", "Unavailable", rng.randint(60, 480) * 1000))
                else:
                    steps.append(Step(at, "away", "Offline", rng.randint(60, 360) * 1000))
            y = rng.random()
            early = int(_clip(rng.gauss(90, 120), -60, 600) * 1000) if y < 0.75 else (
                -rng.randint(5 * 60, 25 * 60) * 1000 if y < 0.9 else rng.randint(5 * 60, 15 * 60) * 1000
            )
            steps.append(Step(sh.end_ms + early, "logout", "Offline", lead=self._lead()))
        steps.sort(key=lambda s: s.at)
        return steps

    def _lead(self) -> int:
        """How long before a planned break the agent stops taking new tasks (chats last longer)."""
        chat = any(ch.spec.name != "voice" for ch in self.channels)
        return self.rng.randint(3 * 60, 10 * 60) * 1000 if chat else self.rng.randint(0, 3 * 60) * 1000

    # ---- event loop ----------------------------------------------------------------

    def _at(self, t: int, fn, arg=None) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, fn, arg))

    def run(self) -> Iterator[tuple[int, int, int, dict]]:
        """Yield (delivery_ms, agent index, seq, record), sorted by (delivery_ms, seq)."""
        rng = self.rng
        hello = self.w.start_ms + rng.randrange(60_000)
        self._at(hello, self._hello)
        heap, out, idx = self._heap, self._out, self.plan.index
        pop = heapq.heappop
        while heap:
            t, _, fn, arg = pop(heap)
            if t > self.end_ms and self.step_idx >= len(self.steps):
                break  # past the window and the day's last step (the logout) is done
            while out and out[0][0] <= t:
                d, s, rec = pop(out)
                yield d, idx, s, rec
            fn(t, arg)
        while out:
            d, s, rec = pop(out)
            yield d, idx, s, rec

    def _hello(self, t: int, _=None) -> None:
        """First sighting of the worker (worker.created / first event): an Offline snapshot."""
        self._emit(t, "worker.created")
        if self.steps:
            self._at(max(self.steps[0].at, t + 1000), self._step_due, 0)

    # ---- steps (activity changes) -------------------------------------------------

    def _blocking(self, step: Step) -> bool:
        if step.activity == "Offline":  # Flex will not log out an agent with tasks
            return any(ch.res for ch in self.channels)
        return any(r.status in _BUSY for ch in self.channels for r in ch.res)

    def _step_due(self, t: int, i: int) -> None:
        step = self.steps[i]
        if step.kind == "login":
            self._start(t, step)
            return
        self.leaving = step  # no new offers; go once the current customers are done
        if not self._blocking(step):
            self._leave_at(max(t, step.at))

    def _leave_at(self, t: int) -> None:
        self.leave_scheduled = True
        self._at(t, self._start_leaving)

    def _start(self, t: int, step: Step) -> None:
        self.leaving = None
        self.leave_scheduled = False
        if step.kind == "login":
            if step.via_unavailable:
                self._set_activity(t, "Unavailable")
                self._at(t + step.via_unavailable, self._back)
            else:
                self._back(t)
        elif step.kind == "away":
            self._set_activity(t, step.activity)
            self._at(t + step.duration, self._back)
        else:  # logout
            self._set_activity(t, "Offline")
            self._next_step(t)

    def _start_leaving(self, t: int, _=None) -> None:
        if self.leaving is not None:
            self._start(t, self.leaving)

    def _back(self, t: int, _=None) -> None:
        self._set_activity(t, "Available")
        self._arm(t)
        self._next_step(t)

    def _next_step(self, t: int) -> None:
        self.step_idx += 1
        if self.step_idx < len(self.steps):
            step = self.steps[self.step_idx]
            self._at(max(step.at - step.lead, t + 1000), self._step_due, self.step_idx)

    def _set_activity(self, t: int, name: str) -> None:
        self.activity = name
        self.activity_at = iso_ms(t)
        self._emit(t, "worker.activity.update")

    # ---- tasks -------------------------------------------------------------------

    def _routable(self) -> bool:
        return self.activity == "Available" and self.leaving is None

    def _on_voice(self) -> bool:
        return any(ch.spec.name == "voice" and ch.held() for ch in self.channels)

    def _arm(self, t: int) -> None:
        """Schedule the next offer on every channel with free capacity."""
        if not self._routable():
            return
        for ch in self.channels:
            if not ch.armed and ch.free() > 0:
                ch.armed = True
                self._at(t + 1000 + int(self.rng.expovariate(1.0 / ch.spec.offer_mean_s) * 1000), self._offer, ch)

    def _offer(self, t: int, ch: Channel) -> None:
        ch.armed = False
        if not self._routable() or ch.free() <= 0:
            return
        rng = self.rng
        spec = ch.spec
        if spec.name != "voice" and self._on_voice() and rng.random() < 0.7:
            # routing mostly holds chats back while the agent is on a call
            ch.armed = True
            self._at(t + int(rng.expovariate(1.0 / spec.offer_mean_s) * 1000) + 1000, self._offer, ch)
            return
        outbound = spec.name == "voice" and rng.random() < 0.1
        direction = None if rng.random() < 0.08 else ("outbound" if outbound else "inbound")
        workflow = self.w.workflow_sids[1 if rng.random() < 0.2 else 0]
        res = Reservation(rng, ch.queue_sid, workflow, direction, t)
        if rng.random() < 0.3:
            res.status = "created"  # as in the published example
        ch.res.append(res)
        self._plan_reservation(t, res, spec, outbound)
        first_at, first_status, _ = res.plan[0]
        folded = first_status == "accepted" and first_at - t < 3000 and rng.random() < P_FOLD_CREATED
        # TaskRouter always sends reservation.created; the RTA feed may fold it into the accepted record
        self._emit(t, "reservation.created", ch, res, deliver=not (folded and self.fmt == "rta" and not self.exact))
        self._at(first_at, self._res_step, (ch, res))
        self._arm(t)

    def _plan_reservation(self, t: int, res: Reservation, spec: ChannelSpec, outbound: bool) -> None:
        rng = self.rng
        plan = res.plan
        if outbound:
            ring = rng.randint(300, 1500)
        else:
            x = rng.random()
            if x < 0.025:
                plan.append((t + rng.randint(2000, spec.timeout_s * 1000 - 1000), "rejected", "pending"))
                return
            if x < 0.05:
                plan.append((t + spec.timeout_s * 1000, "timeout", "pending"))
                return
            if x < 0.07:
                plan.append((t + rng.randint(1000, 8000), "rescinded", "assigned"))
                return
            if x < 0.09:
                plan.append((t + rng.randint(1000, 8000), "canceled", "canceled"))
                return
            ring = rng.randint(spec.ring_s[0] * 1000, spec.ring_s[1] * 1000)
        t += ring
        plan.append((t, "accepted", "assigned"))
        talk = _clip(rng.lognormvariate(math.log(spec.talk_median_s), 0.6), 20, 3600)
        t += int(talk * 1000)
        plan.append((t, "wrapping", "wrapping"))
        t += rng.randint(spec.wrap_s[0] * 1000, spec.wrap_s[1] * 1000)
        plan.append((t, "completed", "completed"))

    def _res_step(self, t: int, arg) -> None:
        ch, res = arg
        _, status, tas = res.plan.popleft()
        res.set(status, tas, t)
        self._emit(t, "reservation." + _EVENT_OF_STATUS[status], ch, res)
        if status in _TERMINAL:
            ch.res.remove(res)
        if res.plan:
            self._at(res.plan[0][0], self._res_step, arg)
        if self.leaving is not None:
            if not self.leave_scheduled and not self._blocking(self.leaving):
                self._leave_at(max(self.leaving.at, t + self.rng.randint(1000, 15000)))
        elif status in _TERMINAL:
            self._arm(t)  # capacity freed

    # ---- records -------------------------------------------------------------------

    def _emit(self, t: int, event_type: str, ch: "Channel | None" = None, res: Reservation | None = None,
              deliver: bool = True) -> None:
        """Record the agent's complete status now (or the event that changed it), and schedule its delivery.

        The random draws are the same whatever the format and whether it is delivered, so every
        format's day stays the same after it.
        """
        if t <= self.last_t:
            t = self.last_t + 1
        self.last_t = t
        rng = self.rng
        w = self.w
        first = self.n_records == 0
        self.n_records += 1
        worker = {
            "sid": self.plan.sid,
            "activity_sid": w.activity_sids[self.activity],
            "activity_name": self.activity,
            "date_activity_updated": self.activity_at,
        }
        if first and rng.random() < 0.6:
            null_sid = rng.random() < 0.5
            if not self.exact:
                # a worker the feed has not seen before: nulls
                worker = {
                    "sid": self.plan.sid,
                    "activity_sid": None if null_sid else w.activity_sids[self.activity],
                    "activity_name": None,
                    "date_activity_updated": None,
                }
        channels = []
        early = self.n_records <= 3
        for ch in self.channels:
            if ch.res:
                reservations = [r.as_dict() for r in ch.res]
            elif self.activity != "Offline" and rng.random() < 0.02:
                reservations = None  # an idle channel listed with null reservations
            else:
                continue
            channels.append(
                {
                    "reservations": reservations,
                    "worker_channel_sid": ch.wc_sid if self.has_wc and not early else None,
                    "task_channel_sid": ch.tc_sid,
                    "task_channel_name": ch.spec.name,
                    "available": 1,
                    "available_capacity": ch.available_capacity(),
                    "capacity": ch.spec.capacity,
                    "date_capacity_updated": None if early else self.cap_date,
                }
            )
        record = {
            "worker": worker,
            "channels": channels or None,
            "account_sid": w.account_sid,
            "workspace_sid": w.workspace_sid,
            "last_processed_event_sid": sid("EV", rng),
            "date_last_processed_event": iso_ms(t),
        }
        delivery = t + 40 + min(3000, int(rng.expovariate(1 / 200.0)))
        if rng.random() < P_LATE:
            delivery += rng.randint(2000, 9000)  # delivered out of order
        duplicate = rng.random() < P_DUPLICATE
        again = rng.randint(300, 15000) if duplicate else 0
        if not deliver:
            return
        item = record if self.fmt == "rta" else self._event(t, event_type, ch, res, record["last_processed_event_sid"])
        self._deliver(delivery, item)
        if duplicate:
            self._deliver(delivery + again, item)  # sent twice

    def _event(self, t: int, event_type: str, ch: "Channel | None", res: Reservation | None, ev_sid: str) -> dict:
        """The TaskRouter event behind a change: the callback's form fields, or a CloudEvent."""
        w = self.w
        fields = {
            "Sid": ev_sid,
            "EventType": event_type,
            "AccountSid": w.account_sid,
            "WorkspaceSid": w.workspace_sid,
            "WorkspaceName": "Flex Task Assignment",
            "Timestamp": str(t // 1000),
            "TimestampMs": str(t),
            "ResourceType": "Worker",
            "ResourceSid": self.plan.sid,
            "WorkerSid": self.plan.sid,
            "WorkerName": self.plan.name,
            "WorkerActivitySid": w.activity_sids[self.activity],
            "WorkerActivityName": self.activity,
        }
        if res is not None:
            fields.update({
                "ResourceType": "Reservation",
                "ResourceSid": res.sid,
                "ReservationSid": res.sid,
                "TaskSid": res.task_sid,
                "TaskQueueSid": res.queue_sid,
                "WorkflowSid": res.workflow_sid,
                "TaskChannelSid": ch.tc_sid,
                "TaskChannelUniqueName": ch.spec.name,
                "TaskAssignmentStatus": res.tas,
            })
        if self.fmt == "taskrouter":
            return fields
        payload = {_snake(k): v for k, v in fields.items() if k not in ("EventType", "Timestamp", "TimestampMs")}
        payload["eventtype"] = event_type
        payload["timestamp"] = iso_ms(t)
        return {
            "specversion": "1.0",
            "type": "com.twilio.taskrouter." + event_type,
            "source": f"/v1/Workspaces/{w.workspace_sid}",
            "id": "NO" + hashlib.sha1(ev_sid.encode()).hexdigest()[:32],
            "dataschema": "https://events-schemas.twilio.com/TaskRouter.WDSEvent/4",
            "datacontenttype": "application/json",
            "time": iso_ms(t),
            "data": {
                "sid": ev_sid,
                "account_sid": w.account_sid,
                "timestamp": iso_ms(t),
                "level": "INFO",
                "group": event_type.split(".")[0],
                "product_name": "TaskRouter",
                "publisher": "Flex Task Assignment",
                "payload_type": "application/json",
                "payload": payload,
            },
        }

    def _deliver(self, at: int, record: dict) -> None:
        self._out_seq += 1
        heapq.heappush(self._out, (at, self._out_seq, record))


def _snake(name: str) -> str:
    """``WorkerActivityName`` → ``worker_activity_name``: Event Streams' names for the callback's fields."""
    return "".join("_" + c.lower() if c.isupper() and i else c.lower() for i, c in enumerate(name))


def _clip(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x


def _poisson(rng: random.Random, lam: float) -> int:
    """Knuth's method; fine for the small means used here."""
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
