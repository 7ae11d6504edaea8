"""Malformed messages: about ``bad_fraction`` of the valid messages get a corrupted copy after them."""

from __future__ import annotations

import copy
import json
import math
import random
from typing import Any

from stockguard.sim.config import TOPIC_CLICKSTREAM, TOPIC_ORDERS, TOPIC_STOCK, TOPIC_TRIGGERS, Message

# Malformed messages are spread over the topics with these weights.
_BAD_TOPICS = (TOPIC_CLICKSTREAM, TOPIC_TRIGGERS, TOPIC_ORDERS, TOPIC_STOCK)
_BAD_TOPIC_WEIGHTS = (0.45, 0.25, 0.2, 0.1)
_GARBAGE = (
    "<html><body><h1>502 Bad Gateway</h1></body></html>",
    "",
    "\ufffd\ufffd\x00binary",
    "undefined",
)


class _Malformer:
    """Derive a malformed message from about ``fraction`` of the valid messages it follows."""

    def __init__(self, rng: random.Random, fraction: float) -> None:
        """Share the day's random generator and draw the gap to the first malformed message."""
        self.rng = rng
        self.fraction = fraction
        self.n_bad = 0
        self.left = self._gap()
        self.topic: str | None = None  # once the gap has run out, the topic of the next malformed message

    def follow(self, topic: str, key: str | None, value: dict[str, Any]) -> Message | None:
        """Count one emitted valid message; return the malformed message to emit after it, if one is due."""
        if self.topic is None:
            self.left -= 1
            if self.left == 0:
                self.topic = self.rng.choices(_BAD_TOPICS, _BAD_TOPIC_WEIGHTS)[0]
        if topic != self.topic:
            return None
        bad = self._corrupt(topic, key, value)
        self.topic = None
        self.left = self._gap()
        return bad

    def _gap(self) -> int:
        """Draw the number of valid messages until the next malformed one."""
        p = self.fraction
        if p <= 0.0:
            return 1 << 62
        if p >= 1.0:
            return 1
        return 1 + int(math.log(1.0 - self.rng.random()) / math.log(1.0 - p))

    def _corrupt(self, topic: str, key: str | None, value: dict[str, Any]) -> Message:
        """Derive a malformed message from a valid one (fresh ids, same topic)."""
        rng = self.rng
        self.n_bad += 1
        u = rng.random()
        if u < 0.2:
            text = json.dumps(value)
            return topic, key, text[: rng.randint(1, len(text) - 1)]
        if u < 0.27:
            return topic, None, rng.choice((*_GARBAGE, str(value)))
        bad = copy.deepcopy(value)
        for id_field in ("event_id", "order_id", "trigger_id"):
            if id_field in bad:
                bad[id_field] = f"{bad[id_field]}-m{self.n_bad}"
        if u < 0.5:
            required = {
                TOPIC_CLICKSTREAM: ("ts", "type", "customer_id", "sku"),
                TOPIC_STOCK: ("ts", "type", "sku", "location"),
                TOPIC_ORDERS: ("ts", "order_id", "status", "lines"),
                TOPIC_TRIGGERS: ("ts", "trigger_id", "customer_id", "kind", "skus"),
            }[topic]
            del bad[rng.choice(required)]
        elif u < 0.7:
            if topic == TOPIC_CLICKSTREAM:
                bad["qty"] = -rng.randint(1, 3)
            elif topic == TOPIC_ORDERS:
                bad["lines"][0]["qty"] = -rng.randint(1, 3)
            elif topic == TOPIC_STOCK:
                bad["type"] = "level"
                bad.pop("delta", None)
                bad.pop("reason", None)
                bad["on_hand"] = -rng.randint(1, 50)
                bad["reserved"] = 0
            else:
                bad["skus"] = [123, *bad["skus"][1:]]
        elif u < 0.85:
            field = {
                TOPIC_CLICKSTREAM: "type",
                TOPIC_STOCK: "type",
                TOPIC_ORDERS: "status",
                TOPIC_TRIGGERS: "kind",
            }[topic]
            bad[field] = "teleport"
        else:
            if topic == TOPIC_ORDERS:
                bad["lines"][0]["qty"] = "two"
            elif topic == TOPIC_TRIGGERS:
                bad["skus"] = bad["skus"][0]
            elif topic == TOPIC_CLICKSTREAM:
                bad["qty"] = "two"
            else:
                bad["delta" if "delta" in bad else "on_hand"] = "two"
        return topic, key, bad
