"""Property tests: the sweep equals a millisecond-by-millisecond oracle, pieces equal the whole,
and the adherence arithmetic stays within bounds."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adherence.evaluate import day_figures, evaluate_agent, flatten_segments
from adherence.model import TASK_STATES, Segment, Snapshot
from adherence.rules import ANY, IN, NOT_ALLOWED, NOT_IN, Condition, Rule, RuleSet

D = date(1970, 1, 1)
UTC = ZoneInfo("UTC")
ACTS = ["Available", "Offline", "Break", "Lunch"]
SCHED = ["Available", "Break", "Lunch"]
ALLOWED = {"Lunch": frozenset({"Lunch", "Break"}), "Break": frozenset({"Break"})}
END = 120  # instants are small so collisions (same-instant changes, zero-length runs) are frequent


def condition(field: str, values: list):
    modes = [st.just(Condition(field, ANY))]
    names = st.sets(st.sampled_from(values), min_size=1, max_size=3).map(frozenset)
    modes.append(names.map(lambda v: Condition(field, IN, v)))
    modes.append(names.map(lambda v: Condition(field, NOT_IN, v)))
    if field == "activity":
        modes.append(st.just(Condition(field, NOT_ALLOWED)))
    return st.one_of(modes)


@st.composite
def rulesets(draw):
    rules = []
    for i in range(draw(st.integers(1, 4))):
        conds = []
        if draw(st.booleans()):
            conds.append(draw(condition("scheduled", SCHED + [None])))
        if draw(st.booleans()):
            conds.append(draw(condition("activity", ACTS)))
        if draw(st.booleans()):
            conds.append(draw(condition("task", list(TASK_STATES))))
        if draw(st.booleans()):
            conds.append(draw(condition("team", ["t1", None])))
        for_ms = draw(st.integers(0, 30))
        rules.append(Rule(f"r{i}", "", tuple(conds), for_ms, "warning", {}, "mem", i + 1))
    return RuleSet(dict(ALLOWED), tuple(rules))


@st.composite
def timelines(draw):
    n = draw(st.integers(0, 12))
    return [
        Snapshot(draw(st.integers(0, END)), draw(st.sampled_from(ACTS)), draw(st.sampled_from(TASK_STATES)))
        for _ in range(n)
    ]


@st.composite
def schedules(draw, overlapping=False):
    segs = []
    t = draw(st.integers(0, 20))
    for _ in range(draw(st.integers(0, 5))):
        length = draw(st.integers(1, 40))
        segs.append(Segment(t, t + length, draw(st.sampled_from(SCHED)), D))
        t += length + draw(st.integers(-10 if overlapping else 0, 15))
    return segs


def oracle(timeline, segments, rs: RuleSet, team, now):
    """Evaluate the spec literally at every millisecond instant."""
    snaps = sorted(timeline, key=lambda s: s.at)
    flat = flatten_segments(segments)

    def state(t):
        cur = None
        for s in snaps:
            if s.at <= t:
                cur = s
        sched = next((g.activity for g in flat if g.start <= t < g.end), None)
        return sched, cur

    found = []
    for idx, rule in enumerate(rs.rules):
        run_start = None
        for t in range(-1, now + 1):
            sched, cur = state(t)
            holds = cur is not None and rule.holds(sched, cur.activity, cur.task, team, rs.allowed)
            if holds and run_start is None:
                run_start = (t, sched, cur)
            elif not holds and run_start is not None:
                a = run_start[0]
                if t - a >= rule.for_ms:
                    found.append((a, idx, t, run_start))
                run_start = None
        if run_start is not None and now - run_start[0] >= rule.for_ms:
            found.append((run_start[0], idx, None, run_start))
    found.sort(key=lambda f: (f[0], f[1]))
    return [
        (rs.rules[idx].name, a, end, st_[1], st_[2].activity, st_[2].task)
        for a, idx, end, st_ in found
    ]


def as_tuples(occurrences):
    return [(o.rule, o.start, o.end, o.scheduled_activity, o.actual_activity, o.task_state) for o in occurrences]


common = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@common
@given(rulesets(), timelines(), schedules(), st.sampled_from(["t1", None]), st.integers(0, END + 20))
def test_sweep_equals_millisecond_oracle(rs, timeline, segments, team, now):
    got = evaluate_agent(timeline, segments, rs, team, -10, now)
    assert as_tuples(got.occurrences) == oracle(timeline, segments, rs, team, now)


@common
@given(rulesets(), timelines(), schedules(overlapping=True), st.sampled_from(["t1", None]), st.integers(0, END + 20), st.data())
def test_evaluating_in_pieces_equals_from_scratch(rs, timeline, segments, team, now, data):
    whole = evaluate_agent(timeline, segments, rs, team, -10, now)
    start = data.draw(st.integers(-5, now + 5))
    piece = evaluate_agent(timeline, segments, rs, team, start, now)
    s0 = min(start, now)
    expected = [o for o in whole.occurrences if o.end is None or o.end > s0]
    assert piece.occurrences == expected
    assert piece.next_check_ms == whole.next_check_ms


@common
@given(rulesets(), timelines(), schedules(), st.integers(0, END), st.integers(1, 40))
def test_results_are_stable_until_next_check_and_closed_ones_are_final(rs, timeline, segments, now, later):
    before = evaluate_agent(timeline, segments, rs, None, -10, now)
    quiet = [s for s in timeline if s.at <= now]  # no new input after now
    if before.next_check_ms is not None:
        later = min(later, before.next_check_ms - now - 1)
    if later > 0:
        after = evaluate_agent(quiet, segments, rs, None, -10, now + later)
        assert after.occurrences == before.occurrences
    # with whatever input arrives later, exceptions closed by `now` stay exactly as they were
    future = evaluate_agent(timeline, segments, rs, None, -10, END + 50)
    closed = [o for o in before.occurrences if o.end is not None]
    assert all(o in future.occurrences for o in closed)
    for o in before.occurrences:
        if o.end is None:
            assert any(f.rule == o.rule and f.start == o.start for f in future.occurrences)


@common
@given(
    rulesets(),
    timelines(),
    schedules(),
    st.integers(0, END + 20),
    st.lists(st.tuples(st.integers(-10, END), st.one_of(st.none(), st.integers(-10, END + 20)), st.booleans()), max_size=6),
)
def test_adherence_bounds(rs, timeline, segments, as_of, extra):
    occ = evaluate_agent(timeline, segments, rs, None, -10, as_of).occurrences
    intervals = [(o.start, o.end, False) for o in occ] + [(a, b if b is None else max(a, b), ok) for a, b, ok in extra]
    f = day_figures(D, UTC, segments, intervals, timeline, as_of)
    assert 0 <= f.out_of_adherence_ms <= f.scheduled_ms
    assert f.in_adherence_ms + f.out_of_adherence_ms == f.scheduled_ms
    assert 0 <= f.approved_ms <= f.scheduled_ms - f.out_of_adherence_ms
    assert 0 <= f.logged_in_ms
    if f.scheduled_ms:
        assert 0 <= f.adherence_percent <= 100
        assert f.conformance_percent >= 0
    else:
        assert f.adherence_percent is None and f.conformance_percent is None
    assert 0 <= f.exceptions <= len(intervals)
    # no double counting: duplicating every interval changes nothing
    g = day_figures(D, UTC, segments, intervals + intervals, timeline, as_of)
    assert (g.out_of_adherence_ms, g.approved_ms) == (f.out_of_adherence_ms, f.approved_ms)
