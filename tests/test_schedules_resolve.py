"""Resolution of overlapping segments: the shorter wins, equal length the later listed."""

from __future__ import annotations

from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from adherence.schedules.resolve import Raw, resolve

H = 3600_000
D = date(2026, 11, 23)


def raw(start_h, end_h, activity, order, day=D):
    return Raw(int(start_h * H), int(end_h * H), activity, day, f"f:{order}", (0, order, 0))


def plain(segs):
    return [(s.start / H, s.end / H, s.activity) for s in segs]


def date_of(ms):
    return date(2026, 11, 23 + ms // (24 * H))


def test_break_laid_over_shift_splits_it():
    got = resolve([raw(9, 17, "Available", 1), raw(12, 12.25, "Break", 2)], date_of)
    assert plain(got) == [(9, 12, "Available"), (12, 12.25, "Break"), (12.25, 17, "Available")]


def test_shorter_wins_even_when_listed_first():
    got = resolve([raw(12, 12.5, "Lunch", 1), raw(9, 17, "Available", 2)], date_of)
    assert plain(got) == [(9, 12, "Available"), (12, 12.5, "Lunch"), (12.5, 17, "Available")]


def test_equal_length_the_later_listed_wins():
    got = resolve([raw(9, 10, "Meeting", 2), raw(9, 10, "Training", 1)], date_of)
    assert plain(got) == [(9, 10, "Meeting")]


def test_partial_overlap_and_nested_overlays():
    got = resolve([raw(9, 17, "Available", 1), raw(11, 14, "Training", 2), raw(13, 13.5, "Break", 3)], date_of)
    assert plain(got) == [(9, 11, "Available"), (11, 13, "Training"), (13, 13.5, "Break"),
                          (13.5, 14, "Training"), (14, 17, "Available")]


def test_touching_pieces_of_one_activity_merge():
    got = resolve([raw(9, 12, "Available", 1), raw(12, 17, "Available", 2)], date_of)
    assert plain(got) == [(9, 17, "Available")]


def test_ical_pieces_take_the_day_their_chain_starts():
    got = resolve([raw(22, 30, "Available", 1, None), raw(26, 26.5, "Lunch", 2, None),
                   raw(33, 41, "Available", 3, None)], date_of)
    assert [(s.activity, s.day.isoformat()) for s in got] == [
        ("Available", "2026-11-23"), ("Lunch", "2026-11-23"), ("Available", "2026-11-23"),
        ("Available", "2026-11-24")]


def test_overlay_on_a_yaml_shift_takes_the_shift_day():
    got = resolve([raw(-1, 7, "Available", 1, date(2026, 11, 22)), raw(1, 2, "Meeting", 2, None)], date_of)
    assert {s.day for s in got} == {date(2026, 11, 22)}


segments = st.lists(
    st.tuples(st.integers(0, 96), st.integers(1, 48), st.sampled_from(["A", "B", "C"])), min_size=1, max_size=12)


@settings(max_examples=300, deadline=None)
@given(segments)
def test_resolution_is_sorted_disjoint_covers_the_union_and_picks_the_shortest(items):
    raws = [Raw(s * 900_000, (s + n) * 900_000, a, D, "", (0, i, 0)) for i, (s, n, a) in enumerate(items)]
    got = resolve(raws, date_of)
    for a, b in zip(got, got[1:]):
        assert a.end <= b.start
        assert not (a.end == b.start and a.activity == b.activity)  # merged
    step = 900_000
    for t in range(0, 150 * step, step):
        covering = [(r.end - r.start, -i, r) for i, r in enumerate(raws) if r.start <= t < r.end]
        hit = [s for s in got if s.start <= t < s.end]
        if not covering:
            assert hit == []
        else:
            assert len(hit) == 1 and hit[0].activity == min(covering)[2].activity
