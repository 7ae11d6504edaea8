"""Input limits: size and JSON depth are refused before parsing, cheaply for normal input."""

from __future__ import annotations

import orjson

from stockguard.state.limits import check_input, json_depth


def nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def test_depth_counts_objects_and_arrays_and_ignores_brackets_in_strings() -> None:
    assert json_depth(b'{"a": [1, {"b": [2]}]}', 64) == 4
    assert json_depth(b'{"a": "[[[[{{{{"}', 64) == 1
    assert json_depth(b'{"a": "\\"[[[["}', 64) == 1
    assert json_depth(b"[" * 10 + b"]" * 10, 64) == 10
    assert json_depth(b"7", 64) == 0


def test_depth_stops_counting_past_the_limit() -> None:
    assert json_depth(nested(300), 64) == 65


def test_a_flat_message_with_many_objects_passes() -> None:
    flat = orjson.dumps([{"sku": f"S{i}", "qty": [i]} for i in range(5000)])
    assert check_input(flat, 1_000_000, 64) is None


def test_a_deep_message_is_refused_with_the_setting_named() -> None:
    why = check_input(nested(300), 1_000_000, 64)
    assert why is not None and "input.max_json_depth (64)" in why
    assert check_input(nested(64), 1_000_000, 64) is None
    assert check_input(nested(65), 1_000_000, 64) is not None
    # A replay line wraps the value in one more object.
    assert check_input(b'{"value":' + nested(64) + b"}", 1_000_000, 64, envelope=1) is None


def test_a_large_message_is_refused_with_its_size() -> None:
    why = check_input(b"x" * 2_000_001, 1_000_000, 64)
    assert why == "value: 2,000,001 bytes, more than input.max_message_bytes (1,000,000)"
