"""Hostile and unusual YAML in schedule (and rule, config) files: bounded work, bounded messages."""

from __future__ import annotations

import time

import pytest

from adherence.errors import ScheduleError
from adherence.schedules import load_schedules
from adherence.yamlfile import YamlSyntaxError, loads, short

ALICE = "WK0123456789abcdef0123456789abcdef"


def bomb(levels: int, tail: str) -> str:
    """The classic "billion laughs": each level lists the previous one ten times."""
    lines = ['x0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"x{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n" + tail.replace("LAST", f"*a{levels - 1}")


SHIFT_TAIL = "shifts:\n  - agents: LAST\n    days: mon\n    segments: ['09:00-10:00 A']\n"


@pytest.mark.parametrize("levels", [6, 9])
def test_alias_bomb_is_refused_with_a_short_message_naming_the_line(levels):
    text = bomb(levels, SHIFT_TAIL)
    assert len(text) < 1600
    t0 = time.monotonic()
    with pytest.raises(YamlSyntaxError) as err:
        loads(text, "s.yaml")
    assert time.monotonic() - t0 < 2
    msg = str(err.value)
    assert "alias bomb" in msg and len(msg) < 300
    line = int(msg.split(":")[1])
    assert 1 <= line <= levels  # an anchor of the bomb, not the whole file


def test_alias_bomb_in_a_schedules_folder_is_one_bounded_problem(tmp_path):
    (tmp_path / "s.yaml").write_text(bomb(9, SHIFT_TAIL))
    with pytest.raises(ScheduleError) as err:
        load_schedules(tmp_path, "UTC")
    assert len(err.value.problems) == 1 and len(str(err.value.problems[0])) < 400


def test_ordinary_aliases_and_big_files_still_load():
    text = "base: &b {team: t, timezone: UTC}\nagents:\n" + "".join(
        f"  a{i}: {{<<: *b, worker_sid: WK{i:032x}}}\n" for i in range(3000))
    data = loads(text)
    assert data["agents"]["a2999"]["team"] == "t"


def test_recursive_alias_is_refused_not_a_crash():
    with pytest.raises(YamlSyntaxError, match="recursive alias"):
        loads("a: &a [1, *a]\n")


def test_validation_messages_quote_at_most_a_bounded_part_of_a_value(tmp_path):
    # four levels pass the expansion limit (22,000 values) but must not make 100 KB messages
    (tmp_path / "s.yaml").write_text(bomb(4, f"agents:\n  alice: {{worker_sid: {ALICE}}}\n" + SHIFT_TAIL))
    with pytest.raises(ScheduleError) as err:
        load_schedules(tmp_path, "UTC")
    text = "\n".join(str(p) for p in err.value.problems)
    assert len(text) < 3000 and "expected names" in text


def test_short_cuts_long_and_nested_values():
    assert short("x" * 500).endswith("...") and len(short("x" * 500)) == 80
    nested: list = ["lol"] * 10
    for _ in range(12):
        nested = [nested] * 10
    assert len(short(nested)) == 80  # 10**13 values: never built in full
    assert short({"a": [1, 2]}) == "{'a': [1, 2]}"


def test_merge_key_with_an_override_is_accepted(tmp_path):
    (tmp_path / "s.yaml").write_text(
        f"agents:\n  alice: {{worker_sid: {ALICE}}}\n"
        "shifts:\n"
        "  - &base\n    agents: [alice]\n    days: mon-fri\n    segments: ['09:00-17:00 Available']\n"
        "  - <<: *base\n    days: sat-sun\n    segments: ['10:00-14:00 Available']\n")
    s = load_schedules(tmp_path, "UTC")
    from datetime import date
    sat = s.segments_for_day("alice", date(2026, 11, 28))
    assert [(x.activity, x.end - x.start) for x in sat] == [("Available", 4 * 3600_000)]


def test_duplicate_keys_without_a_merge_are_still_errors():
    with pytest.raises(YamlSyntaxError, match="duplicate key 'days' \\(first on line 2\\)"):
        loads("- agents: [a]\n  days: mon\n  days: tue\n")
    with pytest.raises(YamlSyntaxError, match="duplicate key 'days'"):
        loads("b: &b {days: mon}\nx: {<<: *b, days: tue, days: wed}\n")
