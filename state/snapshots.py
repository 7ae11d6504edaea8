"""The snapshot format of every stateful step: versioned, checked, readable across renames.

Bytewax keeps what a step's `snapshot()` returns in the recovery store; ours is a pickle of
the step's state inside an envelope `(MAGIC, FORMAT, step, wall_ms, state)`. Pickles name
classes by module path, so a store outlives a move of its classes only if loading maps the
old paths to the new ones. This module is the one place that knows every format:

- **legacy** (up to 555fb64, before the `stockguard.` namespace): classes under top-level
  `state.*`; `decide_triggers` wrote `(2, wall_ms, state)` (format 2) or the bare state
  (format 1), the other steps the bare state. Loaded with the names mapped below.
- **3**: the envelope above, classes under `stockguard.state.*`; written for three
  commits only, before the one stock book changed the layout: refused.
- **4**: the envelope; decision and monitor partitions keep their orders in one
  `OrderLedger` (`state.inventory`). Legacy states are converted to it when loaded.

Loading never leaves a half-read state behind: a snapshot of a newer format, of another
step, of a class outside `stockguard.state`, that does not unpickle, or whose state lacks an
attribute the code reads, raises `SnapshotError` saying what to do. A store written by a
newer stockguard is refused, not guessed at.
"""

from __future__ import annotations

import io
import pickle
from typing import Any, Final, NamedTuple, TypeVar

__all__ = ["FORMAT", "Snapshot", "SnapshotError", "dump", "load"]

MAGIC: Final = "stockguard-snapshot"
FORMAT: Final = 4
_LEGACY_DECIDE: Final = 2
# Formats this code cannot read whole: the reason, said at the refusal.
_UNREADABLE: Final = {3: "format 3 was written by a development build (de47bb8..fafcf3c) with an older layout"}

# Top-level packages of the legacy layout, now subpackages of `stockguard`.
_LEGACY_PACKAGES: Final = ("state", "config", "flows", "connectors")
# Legacy classes read as another class today: (legacy module, name) -> (module, name).
_LEGACY_CLASSES: Final = {
    ("state.decision", "LedgerEntry"): ("stockguard.state.inventory", "LegacyLedgerEntry"),
    ("state.monitor", "SkuWatch"): ("stockguard.state.monitor", "LegacySkuWatch"),
}
# What a snapshot may name besides our own state classes: containers and pickle's helpers.
_ALLOWED: Final = frozenset(
    {
        ("collections", "deque"),
        ("collections", "OrderedDict"),
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("builtins", "bytearray"),
        ("builtins", "object"),
        ("copyreg", "_reconstructor"),
    }
)
_PY2_NAMES: Final = {"copy_reg": "copyreg", "__builtin__": "builtins"}
_OURS: Final = "stockguard.state."
_FIX: Final = "start from a new recovery store (stop the job, move the directory away, start again)"

T = TypeVar("T")


class SnapshotError(RuntimeError):
    """A recovery store holds a snapshot this code cannot resume from."""


class Snapshot(NamedTuple):
    """A loaded snapshot: the state, when it was taken (wall ms, if known), its format."""

    state: Any
    wall_ms: int | None
    format: int


def dump(step: str, state: object, wall_ms: int | None = None) -> bytes:
    """Return the snapshot of `step`'s state in the current format."""
    return pickle.dumps((MAGIC, FORMAT, step, wall_ms, state), protocol=pickle.HIGHEST_PROTOCOL)


class _Unpickler(pickle.Unpickler):
    """Map legacy module paths to today's, and refuse classes that are not our state."""

    def find_class(self, module: str, name: str) -> Any:
        # Protocols 0-2 spell two modules by their Python 2 names.
        module = _PY2_NAMES.get(module, module)
        top = module.split(".", 1)[0]
        if top in _LEGACY_PACKAGES:
            module, name = _LEGACY_CLASSES.get((module, name), (f"stockguard.{module}", name))
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        # Only a class defined in our state modules: not a function, not a dotted path
        # (`pickle.loads` reached through a module that imports pickle).
        found = super().find_class(module, name) if module.startswith(_OURS) and "." not in name else None
        if not isinstance(found, type) or not found.__module__.startswith(_OURS):
            raise SnapshotError(f"the snapshot names {module}.{name}, which is not state of stockguard")
        return found


def load(step: str, data: bytes, expected: type[T], template: T) -> Snapshot:
    """Load a snapshot of `step` holding an `expected` state, in any format we know.

    `template` is a fresh state: every attribute it has must be in the loaded one.
    """
    try:
        loaded = _Unpickler(io.BytesIO(data)).load()
    except SnapshotError as exc:
        raise SnapshotError(f"recovery store, step {step}: {exc}: {_FIX}") from exc
    except Exception as exc:  # any unpickling failure: truncated, foreign, incompatible layout
        raise SnapshotError(
            f"recovery store, step {step}: the snapshot cannot be read ({type(exc).__name__}: {exc}): {_FIX}"
        ) from exc
    snap = _unwrap(step, loaded)
    state = snap.state
    if type(state) is not expected:
        raise SnapshotError(
            f"recovery store, step {step}: the snapshot holds a {type(state).__name__}, "
            f"this code expects a {expected.__name__}: {_FIX}"
        )
    missing = sorted(a for a in _attributes(template) if hasattr(template, a) and not hasattr(state, a))
    if missing:
        raise SnapshotError(
            f"recovery store, step {step}: the snapshot (format {snap.format}) lacks {', '.join(missing)}: {_FIX}"
        )
    return snap


def _unwrap(step: str, loaded: Any) -> Snapshot:
    """Take the state out of the envelope of any known format."""
    if type(loaded) is tuple and len(loaded) == 5 and loaded[0] == MAGIC:
        _magic, fmt, written_by, wall_ms, state = loaded
        if type(fmt) is not int or fmt > FORMAT:
            raise SnapshotError(
                f"recovery store, step {step}: snapshot format {fmt!r} was written by a newer stockguard "
                f"(this one reads up to {FORMAT}): run that version, or {_FIX}"
            )
        if fmt in _UNREADABLE:
            raise SnapshotError(f"recovery store, step {step}: {_UNREADABLE[fmt]}: {_FIX}")
        if written_by != step:
            raise SnapshotError(f"recovery store, step {step}: the snapshot belongs to step {written_by!r}: {_FIX}")
        return Snapshot(state, wall_ms, fmt)
    if type(loaded) is tuple and len(loaded) == 3 and loaded[0] == _LEGACY_DECIDE:
        return Snapshot(loaded[2], loaded[1], _LEGACY_DECIDE)
    return Snapshot(loaded, None, 1)


def _attributes(obj: object) -> list[str]:
    """Return the attribute names an instance of obj's class carries."""
    names: list[str] = list(getattr(obj, "__dict__", {}))
    for cls in type(obj).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        names.extend([slots] if isinstance(slots, str) else slots)
        # A class compiled by mypyc (`stockguard._hot`) lists its attributes here instead.
        names.extend(cls.__dict__.get("__mypyc_attrs__", ()))
    return [n for n in names if not n.startswith("__")]
