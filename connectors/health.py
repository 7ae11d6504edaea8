"""Process health as the connectors see it: heartbeats, Kafka reachability, assignments.

Liveness: the flow's input loop beat within `stall_s` (Bytewax polls every source
partition continuously, so a silent loop means a stuck worker; a sink waiting out a broker
outage beats too). Readiness: live, Kafka answered our last metadata request (a probe asks
every two seconds), and this process holds at least one assigned input partition, with no
consumer error since. `stop` is set by SIGTERM/SIGINT: sources end, the flow drains.
"""

from __future__ import annotations

import threading
import time

__all__ = ["HEALTH", "STOP", "Health"]

# Set on SIGTERM/SIGINT: every source partition ends its stream, so the flow finishes the
# batch in flight, flushes, snapshots at EOF and exits.
STOP = threading.Event()


class Health:
    """Thread-safe health facts, written by connectors, read by the health endpoints."""

    def __init__(self, stall_s: float = 30.0) -> None:
        self.stall_s = stall_s
        self._lock = threading.Lock()
        self.last_beat = 0.0
        self.assigned = 0
        self.kafka_reachable = False
        self.error: str | None = None
        # Set when Kafka stayed unreachable past `kafka.outage_tolerance`: the flow exits.
        self.fatal: str | None = None

    def beat(self) -> None:
        """Record that the input loop ran (called per poll: a plain float store)."""
        self.last_beat = time.monotonic()

    def assigned_partition(self) -> None:
        """Count an input partition this process reads."""
        with self._lock:
            self.assigned += 1
            self.error = None

    def released_partition(self) -> None:
        """Forget a closed input partition."""
        with self._lock:
            self.assigned = max(0, self.assigned - 1)

    def kafka_ok(self, ok: bool, error: str | None = None) -> None:
        """Record the outcome of talking to Kafka."""
        with self._lock:
            self.kafka_reachable = ok
            if ok:
                self.error = None
            elif error is not None:
                self.error = error

    def recovered(self) -> None:
        """Clear a transient error once input flows again."""
        with self._lock:
            self.error = None
            self.kafka_reachable = True

    def live(self) -> bool:
        """Tell whether the input loop beat recently."""
        return self.last_beat > 0 and time.monotonic() - self.last_beat < self.stall_s

    def ready(self) -> bool:
        """Tell whether this process is live, reaches Kafka and reads partitions."""
        with self._lock:
            return self.live() and self.kafka_reachable and self.assigned > 0 and self.error is None

    def report(self) -> dict[str, object]:
        """Describe the state for the endpoints' bodies (no secrets, no customer data)."""
        with self._lock:
            since = time.monotonic() - self.last_beat if self.last_beat else None
            return {
                "live": self.live(),
                "ready": self.live() and self.kafka_reachable and self.assigned > 0 and self.error is None,
                "assigned_partitions": self.assigned,
                "kafka_reachable": self.kafka_reachable,
                "seconds_since_input_poll": round(since, 3) if since is not None else None,
                "error": self.error,
            }


HEALTH = Health()
