"""The paced producer shared by `stockguard loadgen` and the dashboard renderer."""

from __future__ import annotations

import time
from typing import Any

from stockguard.loadgen import produce_paced

T0 = 1764547200000


class FakeProducer:
    def __init__(self, full_once: bool = False) -> None:
        self.sent: list[tuple[str, bytes, Any, float]] = []
        self.full_once = full_once

    def produce(self, topic: str, data: bytes, key: Any, on_delivery: Any = None) -> None:
        if self.full_once:
            self.full_once = False
            raise BufferError
        self.sent.append((topic, data, key, time.monotonic()))

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        time.sleep(timeout)
        return 0


def test_messages_go_out_when_their_event_time_is_due_to_the_configured_topics() -> None:
    p = FakeProducer(full_once=True)
    msgs = [("shop.orders", "o1", {"ts": T0}), ("shop.orders", "o2", {"ts": T0 + 2000}), ("shop.orders", None, "raw")]
    start = time.monotonic()
    n = produce_paced(p, msgs, {"shop.orders": "x.orders"}, T0, 10.0, lambda e, m: None)  # type: ignore[arg-type]
    assert n == 3 and [s[0] for s in p.sent] == ["x.orders"] * 3
    assert p.sent[2][1] == b"raw" and p.sent[0][2] == "o1"
    # 2 s of event time at 10x is 0.2 s of wall time.
    assert p.sent[1][3] - start >= 0.19


def test_tick_can_stop_early() -> None:
    p = FakeProducer()
    msgs = [("shop.orders", str(i), {"ts": T0}) for i in range(10)]
    n = produce_paced(p, msgs, {"shop.orders": "o"}, T0, 1.0, lambda e, m: None, tick=lambda sent: sent < 3)  # type: ignore[arg-type]
    assert n == 3 and len(p.sent) == 3
