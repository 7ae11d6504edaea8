"""Run a dataflow in this process: the typed doorway to Bytewax's untyped runners."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bytewax.dataflow import Dataflow

__all__ = ["run_local"]


def run_local(flow: Dataflow, epoch_ms: int = 10_000, recovery_config: Any = None) -> None:
    """Run `flow` on one worker in this thread until its sources end."""
    from bytewax.testing import run_main

    run_main(flow, epoch_interval=timedelta(milliseconds=epoch_ms), recovery_config=recovery_config)  # type: ignore[no-untyped-call]
