"""Frame input as raw records: replay lines and consumed Kafka messages, compiled.

A replay file holds one input message a line (`connectors.files`); `parse_replay_line` is
the per-line work of reading one: the size and depth check, the JSON parse, the record.
`frame_messages` is the per-message work of the Kafka source (`connectors.kafka`). Both
are kept out of the Bytewax sources so that mypyc compiles them (`stockguard._hot`).
Pure: a message is anything with confluent-kafka's `Message` methods.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from stockguard.config.settings import InputSettings
from stockguard.flows.records import NOT_DECODED, RawRecord
from stockguard.state.limits import check_input

__all__ = ["REPLAY_TOPIC", "frame_messages", "parse_replay_line"]

REPLAY_TOPIC: Final = "replay"

_LIMITS: Final = InputSettings()
# Room for the line's own fields (topic, key) around a value of the largest allowed size.
_ENVELOPE_BYTES: Final = 4096
# tuple.__new__ skips the NamedTuple constructor's Python frame (and its defaults).
_new = tuple.__new__


def _error(topic: str, key: bytes | None, raw: bytes, lineno: int, error: str) -> RawRecord:
    return RawRecord(topic, key, raw, 0, lineno, error=error)


def parse_replay_line(line: bytes, lineno: int, limits: InputSettings = _LIMITS) -> RawRecord | None:
    """Frame one replay line as a raw record; None for a blank line.

    A line too large or nested too deep for `limits` is framed as an error (DLQ): its
    value is parsed here, so the router cannot check the bytes itself.
    """
    stripped = line.strip()
    if not stripped:
        return None
    refused = check_input(stripped, limits.max_message_bytes + _ENVELOPE_BYTES, limits.max_json_depth, envelope=1)
    if refused is not None:
        return _error(REPLAY_TOPIC, None, stripped, lineno, f"line {lineno}: {refused}")
    try:
        rec: Any = orjson.loads(stripped)
    except orjson.JSONDecodeError as exc:
        return _error(REPLAY_TOPIC, None, stripped, lineno, f"line {lineno}: not JSON ({exc})")
    if type(rec) is not dict or type(rec.get("topic")) is not str:
        return _error(REPLAY_TOPIC, None, stripped, lineno, f"line {lineno}: expected an object with a topic")
    key = rec.get("key")
    key_b = None if key is None else str(key).encode()
    topic: str = rec["topic"]
    if "raw" in rec:
        raw = rec["raw"]
        if type(raw) is not str:
            return _error(topic, key_b, stripped, lineno, f"line {lineno}: raw: expected a string")
        return _new(RawRecord, (topic, key_b, raw.encode(), 0, lineno, None, NOT_DECODED, None))
    if "value" not in rec:
        return _error(topic, key_b, stripped, lineno, f"line {lineno}: expected value or raw")
    return _new(RawRecord, (topic, key_b, None, 0, lineno, None, rec["value"], None))


def frame_messages(msgs: list[Any], fetched: dict[str, int], out: list[RawRecord]) -> list[Any]:
    """Append the consumed messages as raw records to `out`; return those carrying an error.

    `fetched` gets each partition's next offset (`"<partition>-<topic>"`). A partition-EOF
    event is neither a record nor an error. The caller handles the errors (health, logs).
    """
    errors: list[Any] = []
    for m in msgs:
        err = m.error()
        if err is not None:
            errors.append(m)
            continue
        topic = m.topic() or ""
        part = m.partition() or 0
        ts_type, ts = m.timestamp()
        offset = m.offset() or 0
        out.append(
            _new(RawRecord, (topic, m.key(), m.value(), part, offset, ts if ts_type else None, NOT_DECODED, None))
        )
        fetched[f"{part}-{topic}"] = offset + 1
    return errors
