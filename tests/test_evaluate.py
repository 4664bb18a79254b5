"""The pure evaluator: pinned examples of exceptions and adherence arithmetic."""

from __future__ import annotations

import textwrap
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from adherence.evaluate import Occurrence, day_figures, day_window, evaluate_agent, flatten_segments
from adherence.model import Segment, Snapshot
from adherence.rules import load_rules
from adherence.timeutil import to_ms

NY = ZoneInfo("America/New_York")
D = date(2026, 11, 2)
M = 60_000
H = 60 * M


def t(hhmm: str, day: date = D, tz: ZoneInfo = NY) -> int:
    h, m = map(int, hhmm.split(":"))
    return to_ms(datetime(day.year, day.month, day.day, h, m, tzinfo=tz))


def seg(a: str, b: str, activity: str, day: date = D, end_day: date | None = None) -> Segment:
    return Segment(t(a, day), t(b, end_day or day), activity, day)


def snap(hhmm: str, activity: str, task: str = "none", day: date = D) -> Snapshot:
    return Snapshot(t(hhmm, day), activity, task)


def ruleset(tmp_path: Path, text: str):
    (tmp_path / "r.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    return load_rules(tmp_path)


OFFLINE = """
allowed:
  Lunch: [Lunch, Break]
rules:
  - name: offline
    when: {scheduled: Available, activity: Offline}
    for: 5m
    severity: critical
"""


@pytest.fixture
def offline(tmp_path):
    return ruleset(tmp_path, OFFLINE)


DAY = [seg("09:00", "17:00", "Available")]


def run(rs, timeline, segments=DAY, now="17:00", start=None, team=None):
    now_ms = t(now) if isinstance(now, str) else now
    start_ms = 0 if start is None else (t(start) if isinstance(start, str) else start)
    return evaluate_agent(timeline, segments, rs, team, start_ms, now_ms)


# --------------------------------------------------------------------------- the seed's example


def test_offline_4_minutes_is_grace(offline):
    tl = [snap("08:58", "Available"), snap("09:10", "Offline"), snap("09:14", "Available")]
    assert run(offline, tl).occurrences == []


def test_offline_6_minutes_is_one_exception_from_when_offline_began(offline):
    tl = [snap("08:58", "Available"), snap("09:10", "Offline"), snap("09:16", "Available")]
    # still Offline at 09:14: pending, not yet an exception; look again when it would reach 5 minutes
    r = run(offline, tl[:2], now="09:14")
    assert r.occurrences == [] and r.next_check_ms == t("09:15")
    # at exactly 5 minutes it is an exception (>=), open
    r = run(offline, tl[:2], now="09:15")
    assert r.occurrences == [Occurrence("offline", "critical", t("09:10"), None, "Available", "Offline", "none")]
    # open while it lasts
    r = run(offline, tl[:2], now=t("09:15") + 30_000)
    assert [(o.start, o.end) for o in r.occurrences] == [(t("09:10"), None)]
    assert r.next_check_ms == t("17:00")  # the segment boundary
    # closed when it stops
    r = run(offline, tl, now="12:00")
    assert [(o.start, o.end) for o in r.occurrences] == [(t("09:10"), t("09:16"))]
    assert r.next_check_ms == t("17:00")


def test_exactly_at_threshold_is_an_exception(offline):
    tl = [snap("09:00", "Available"), snap("09:10", "Offline"), snap("09:15", "Available")]
    assert [(o.start, o.end) for o in run(offline, tl).occurrences] == [(t("09:10"), t("09:15"))]
    tl = [snap("09:00", "Available"), Snapshot(t("09:10"), "Offline", "none"), Snapshot(t("09:15") - 1, "Available", "none")]
    assert run(offline, tl).occurrences == []  # one millisecond short


def test_before_first_snapshot_nothing_holds(tmp_path):
    rs = ruleset(tmp_path, "rules:\n  - name: unscheduled\n    when: {scheduled: none}\n    for: 0s\n")
    r = evaluate_agent([], [], rs, None, 0, t("12:00"))
    assert r.occurrences == []
    r = evaluate_agent([snap("10:00", "Available")], [], rs, None, 0, t("12:00"))
    assert [(o.start, o.end) for o in r.occurrences] == [(t("10:00"), None)]


def test_segment_end_closes_the_exception(offline):
    tl = [snap("16:00", "Offline")]
    r = run(offline, tl, now="18:00")
    assert [(o.start, o.end) for o in r.occurrences] == [(t("16:00"), t("17:00"))]
    assert r.next_check_ms is None


def test_condition_spanning_a_segment_boundary_is_one_run(tmp_path):
    rs = ruleset(tmp_path, "rules:\n  - name: away\n    when: {scheduled: any, activity: Offline}\n    for: 5m\n")
    segs = [seg("09:00", "12:00", "Available"), seg("12:00", "12:30", "Lunch"), seg("12:30", "17:00", "Available")]
    tl = [snap("09:00", "Available"), snap("11:58", "Offline"), snap("12:02", "Available")]
    # 2 minutes under Available + 2 under Lunch = 4: grace
    assert run(rs, tl, segs).occurrences == []
    tl = [snap("09:00", "Available"), snap("11:57", "Offline"), snap("12:03", "Available")]
    (o,) = run(rs, tl, segs).occurrences
    assert (o.start, o.end, o.scheduled_activity) == (t("11:57"), t("12:03"), "Available")


def test_scheduled_change_that_makes_the_condition_false_ends_it(tmp_path):
    rs = ruleset(
        tmp_path,
        """
        allowed:
          Lunch: [Lunch, Break]
        rules:
          - name: na
            when: {scheduled: any, activity: not-allowed}
            for: 1m
        """,
    )
    segs = [seg("09:00", "12:00", "Available"), seg("12:00", "12:30", "Lunch"), seg("12:30", "17:00", "Available")]
    # on Break from 11:50: not allowed until Lunch starts at 12:00, allowed during lunch,
    # not allowed again from 12:30 until back at 12:35
    tl = [snap("09:00", "Available"), snap("11:50", "Break"), snap("12:35", "Available")]
    r = run(rs, tl, segs)
    assert [(o.start, o.end, o.scheduled_activity) for o in r.occurrences] == [
        (t("11:50"), t("12:00"), "Available"),
        (t("12:30"), t("12:35"), "Available"),
    ]


def test_exception_records_state_at_its_start(tmp_path):
    rs = ruleset(tmp_path, "rules:\n  - name: busy\n    when: {task: [active, wrapping]}\n    for: 1m\n")
    tl = [snap("09:00", "Available", "active"), snap("09:10", "Available", "wrapping"), snap("09:12", "Available")]
    (o,) = run(rs, tl).occurrences
    assert (o.start, o.end, o.task_state, o.actual_activity, o.scheduled_activity) == (
        t("09:00"), t("09:12"), "active", "Available", "Available"
    )


def test_team_condition(tmp_path):
    rs = ruleset(tmp_path, "rules:\n  - name: x\n    when: {team: tier1, activity: Offline}\n    for: 1m\n")
    tl = [snap("09:00", "Offline"), snap("09:30", "Available")]
    assert len(run(rs, tl, team="tier1").occurrences) == 1
    assert run(rs, tl, team="tier2").occurrences == []
    assert run(rs, tl, team=None).occurrences == []


def test_snapshots_and_segments_after_now_are_ignored(offline):
    tl = [snap("09:00", "Offline"), snap("09:20", "Available")]
    r = run(offline, tl, now="09:10")
    assert [(o.start, o.end) for o in r.occurrences] == [(t("09:00"), None)]


def test_same_instant_snapshots_last_listed_wins(offline):
    tl = [snap("09:00", "Available"), snap("09:10", "Offline"), snap("09:10", "Available")]
    assert run(offline, tl).occurrences == []


def test_unsorted_timeline_is_sorted(offline):
    tl = [snap("09:16", "Available"), snap("09:10", "Offline"), snap("08:58", "Available")]
    assert [(o.start, o.end) for o in run(offline, tl).occurrences] == [(t("09:10"), t("09:16"))]


def test_rewind_keeps_the_true_start(offline):
    tl = [snap("08:58", "Available"), snap("09:10", "Offline"), snap("09:40", "Available"), snap("10:00", "Offline")]
    full = run(offline, tl, now="11:00").occurrences
    assert [(o.start, o.end) for o in full] == [(t("09:10"), t("09:40")), (t("10:00"), None)]
    # evaluating from 09:30 (mid-exception) still gives the exception its true start
    assert run(offline, tl, now="11:00", start="09:30").occurrences == full
    # from 09:50, the closed one no longer intersects
    assert run(offline, tl, now="11:00", start="09:50").occurrences == full[1:]
    # an exception ending exactly at start_ms does not intersect [start, now]
    assert run(offline, tl, now="11:00", start="09:40").occurrences == full[1:]
    # start before everything
    assert run(offline, tl, now="11:00", start=0).occurrences == full


def test_zero_for(tmp_path):
    rs = ruleset(tmp_path, "rules:\n  - name: x\n    when: {activity: Break}\n    for: 0s\n")
    tl = [snap("09:00", "Available"), Snapshot(t("09:10"), "Break", "none"), Snapshot(t("09:10") + 1, "Available", "none")]
    assert [(o.start, o.end) for o in run(rs, tl).occurrences] == [(t("09:10"), t("09:10") + 1)]


def test_overlapping_rules_each_give_an_exception(tmp_path):
    rs = ruleset(
        tmp_path,
        """
        rules:
          - name: offline
            when: {scheduled: Available, activity: Offline}
            for: 5m
          - name: not-available
            when: {scheduled: Available, activity: {not: [Available]}}
            for: 2m
        """,
    )
    tl = [snap("09:00", "Available"), snap("10:00", "Break"), snap("10:10", "Offline"), snap("10:30", "Available")]
    r = run(rs, tl)
    assert [(o.rule, o.start, o.end) for o in r.occurrences] == [
        ("not-available", t("10:00"), t("10:30")),
        ("offline", t("10:10"), t("10:30")),
    ]
    intervals = [(o.start, o.end, False) for o in r.occurrences]
    f = day_figures(D, NY, DAY, intervals, tl, t("18:00"))
    assert f.out_of_adherence_ms == 30 * M  # not 50: no double counting
    assert f.exceptions == 2
    assert f.adherence_percent == pytest.approx((480 - 30) / 480 * 100)


def test_no_rules(tmp_path):
    from adherence.rules import RuleSet

    r = evaluate_agent([snap("09:00", "Offline")], DAY, RuleSet({}, ()), None, 0, t("10:00"))
    assert r.occurrences == [] and r.next_check_ms == t("17:00")


def test_next_check_is_the_earliest_of_threshold_and_boundary(offline):
    segs = [seg("09:00", "09:12", "Available"), seg("09:12", "17:00", "Available")]
    r = run(offline, [snap("09:00", "Available")], segs, now="09:05")
    assert r.next_check_ms == t("09:12")
    r = run(offline, [snap("09:00", "Available"), snap("09:04", "Offline")], segs, now="09:05")
    assert r.next_check_ms == t("09:09")


def test_overlapping_segments_are_flattened_later_start_wins():
    segs = [seg("09:00", "17:00", "Available"), seg("12:00", "12:30", "Lunch")]
    flat = flatten_segments(segs)
    assert [(s.start, s.end, s.activity) for s in flat] == [
        (t("09:00"), t("12:00"), "Available"),
        (t("12:00"), t("12:30"), "Lunch"),
        (t("12:30"), t("17:00"), "Available"),
    ]


def test_overnight_exception_across_midnight_belongs_to_the_shift_day(offline):
    d2 = date(2026, 11, 3)
    segs = [seg("22:00", "06:00", "Available", D, d2), seg("22:00", "06:00", "Available", d2, date(2026, 11, 4))]
    tl = [snap("21:55", "Available"), snap("23:50", "Offline"), snap("00:20", "Available", day=d2), snap("06:01", "Offline", day=d2)]
    now = t("12:00", d2)
    (o,) = run(offline, tl, segs, now=now).occurrences
    assert (o.start, o.end) == (t("23:50"), t("00:20", d2))
    intervals = [(o.start, o.end, False)]
    f = day_figures(D, NY, segs, intervals, tl, now)
    assert (f.scheduled_ms, f.out_of_adherence_ms, f.exceptions) == (8 * H, 30 * M, 1)
    assert f.logged_in_ms == (t("23:50") - t("21:55")) + (t("06:00", d2) - t("00:20", d2))
    f2 = day_figures(d2, NY, segs, intervals, tl, now)
    assert (f2.scheduled_ms, f2.out_of_adherence_ms, f2.exceptions) == (0, 0, 0)
    assert f2.adherence_percent is None and f2.conformance_percent is None
    # D+1's window starts where D's last segment ended and stops at D+1's first segment? No: D+1's own
    # segment starts at 22:00 D+1, so its window runs from 06:00 D+1 to 06:00 D+2
    assert day_window(d2, NY, segs) == (t("06:00", d2), t("06:00", date(2026, 11, 4)))
    assert day_window(D, NY, segs) == (t("00:00"), t("06:00", d2))


# --------------------------------------------------------------------------- adherence arithmetic


def test_day_figures_basic():
    segs = [seg("09:00", "12:00", "Available"), seg("12:00", "12:30", "Lunch"), seg("12:30", "17:00", "Available")]
    tl = [snap("08:50", "Available"), snap("10:00", "Offline"), snap("10:20", "Available"), snap("17:10", "Offline")]
    intervals = [(t("10:00"), t("10:20"), False)]
    f = day_figures(D, NY, segs, intervals, tl, t("20:00"))
    assert f.day == D
    assert f.scheduled_ms == 8 * H
    assert f.out_of_adherence_ms == 20 * M
    assert f.in_adherence_ms == 8 * H - 20 * M
    assert f.approved_ms == 0
    assert f.logged_in_ms == (t("17:10") - t("08:50")) - 20 * M
    assert f.adherence_percent == pytest.approx(460 / 480 * 100)
    assert f.conformance_percent == pytest.approx(480 / 480 * 100)
    assert f.exceptions == 1


def test_day_figures_as_of_clips_and_open_exceptions_count_to_as_of():
    tl = [snap("09:00", "Available"), snap("10:00", "Offline")]
    f = day_figures(D, NY, DAY, [(t("10:00"), None, False)], tl, t("11:00"))
    assert f.scheduled_ms == 2 * H
    assert f.out_of_adherence_ms == 1 * H
    assert f.adherence_percent == 50
    assert f.logged_in_ms == 1 * H and f.conformance_percent == 50


def test_day_figures_approved_minus_out_and_outside_scheduled_time():
    intervals = [
        (t("08:00"), t("09:30"), True),  # 30 min inside scheduled time, approved
        (t("09:15"), t("09:45"), False),  # overlaps the approved one: 09:15-09:30 is out, not approved
        (t("17:30"), t("18:00"), False),  # outside scheduled time: not counted
    ]
    f = day_figures(D, NY, DAY, intervals, [], t("20:00"))
    assert f.out_of_adherence_ms == 30 * M
    assert f.approved_ms == 15 * M
    assert f.in_adherence_ms == 8 * H - 30 * M
    assert f.exceptions == 2
    assert f.logged_in_ms == 0 and f.conformance_percent == 0


def test_day_figures_nothing_scheduled():
    f = day_figures(D, NY, [], [], [snap("09:00", "Available")], t("20:00"))
    assert f.scheduled_ms == 0 and f.adherence_percent is None and f.conformance_percent is None
    assert f.logged_in_ms == 11 * H


def test_day_window_respects_neighbour_days():
    prev_night = seg("22:00", "06:00", "Available", date(2026, 11, 1), D)
    early_next = Segment(t("23:00"), t("07:00", date(2026, 11, 3)), "Available", date(2026, 11, 3))
    mine = seg("09:00", "17:00", "Available")
    assert day_window(D, NY, [prev_night, mine, early_next]) == (t("06:00"), t("23:00"))
    assert day_window(D, NY, [mine]) == (t("00:00"), t("00:00", date(2026, 11, 3)))


def test_day_window_dst_day_is_23_hours():
    spring = date(2026, 3, 8)
    lo, hi = day_window(spring, NY, [])
    assert hi - lo == 23 * H
