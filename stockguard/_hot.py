"""The compiled hot path: which modules mypyc builds, and when their sources are loaded instead.

`setup.py` compiles `HOT` into extension modules next to their sources (one shared library,
`stockguard._hot__mypyc`). Python prefers an extension to a `.py`, so `use_sources()` puts a
finder first that loads the `.py` of every hot module when:

- `STOCKGUARD_PURE=1` is set (the interpreted fallback, tested in CI as well), or
- in a checkout (not an installed wheel, whose file times say nothing), any hot source is
  newer than its extension, or one is missing (a stale build would run
  code that is no longer in the tree; compiled modules call each other directly, so it is
  all of them or none). A warning says to run `scripts/setup.sh`.

`mode()` tells which one runs: "compiled", "interpreted" or "interpreted (stale build)".
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
import warnings
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Final

__all__ = ["GROUP", "HOT", "mode", "source_of", "stale", "use_sources"]

GROUP: Final = "stockguard._hot"
HOT: Final = (
    "stockguard.state.models",
    "stockguard.state.limits",
    "stockguard.state.windows",
    "stockguard.state.journal",
    "stockguard.state.inventory",
    "stockguard.state.drains",
    "stockguard.state.surge",
    "stockguard.state.campaigns",
    "stockguard.state.decision",
    "stockguard.state.monitor",
    "stockguard.flows.routing",
    "stockguard.flows.framing",
)
_ROOT: Final = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_mode = "interpreted"


def source_of(module: str) -> str:
    """Return the path of a hot module's source, relative to the repository root."""
    return os.path.join(*module.split(".")) + ".py"


def _extension_of(module: str) -> str | None:
    base = os.path.join(_ROOT, *module.split("."))
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        if os.path.exists(base + suffix):
            return base + suffix
    return None


class _Sources(MetaPathFinder):
    """Find the hot modules as their `.py` sources."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname not in HOT:
            return None
        return importlib.util.spec_from_file_location(fullname, os.path.join(_ROOT, source_of(fullname)))


def stale() -> list[str]:
    """Return the hot modules whose extension is missing or older than their source."""
    # The code is in the group's library; each module's own extension is a shim that a
    # rebuild leaves untouched when it did not change, so the library's time is what counts.
    group = _extension_of(GROUP + "__mypyc")
    built = os.path.getmtime(group) if group is not None else -1.0
    return [m for m in HOT if _extension_of(m) is None or os.path.getmtime(os.path.join(_ROOT, source_of(m))) > built]


def use_sources() -> str:
    """Decide, once and before any hot module is imported, which build runs; return the mode."""
    global _mode
    if any(isinstance(f, _Sources) for f in sys.meta_path):
        return _mode
    if os.environ.get("STOCKGUARD_PURE") == "1":
        _mode = "interpreted"
    elif all(_extension_of(m) is None for m in HOT):
        return _mode  # nothing built (an interpreted install): the sources load anyway
    elif not os.path.exists(os.path.join(_ROOT, "setup.py")):
        # An installed wheel: built with its sources, whose file times say nothing.
        _mode = "compiled"
        return _mode
    else:
        old = stale()
        if not old:
            _mode = "compiled"
            return _mode
        _mode = "interpreted (stale build)"
        warnings.warn(
            f"stockguard: the compiled hot path is older than {old[0]} (and {len(old) - 1} more): "
            "running the interpreted sources; run scripts/setup.sh to rebuild",
            RuntimeWarning,
            stacklevel=2,
        )
    sys.meta_path.insert(0, _Sources())
    return _mode


def mode() -> str:
    """Return which build of the hot path runs."""
    return _mode
