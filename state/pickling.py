"""Read a state object's pickled fields whatever build wrote them: interpreted or compiled.

The hot modules run compiled (mypyc) or interpreted (`stockguard._hot`), and a recovery
store written by one must resume in the other. Each pickled class of theirs writes its
fields as a plain tuple (`__getstate__`), the same bytes in both builds, and reads with
`fields()` the forms older stores hold: the tuple, a `__dict__` (a class without slots,
interpreted), or copyreg's `(None | dict, slots dict)` (a slotted class without
`__getstate__`, interpreted).
"""

from __future__ import annotations

from typing import Any

__all__ = ["fields", "restore", "state_of"]


def fields(s: Any, names: tuple[str, ...]) -> tuple[Any, ...]:
    """Return the pickled values of `names`, in that order, from any form they were written in."""
    if type(s) is dict:
        d: dict[str, Any] = s
    elif (
        type(s) is tuple
        and len(s) == 2
        and (s[0] is None or type(s[0]) is dict)
        and type(s[1]) is dict
        and set(s[1]) <= set(names)
    ):
        d = {**(s[0] or {}), **s[1]}
    elif type(s) is tuple and len(s) == len(names):
        return s
    else:
        raise ValueError(f"a pickled state of {len(names)} fields ({', '.join(names)}) was expected")
    missing = [n for n in names if n not in d]
    if missing:
        raise ValueError(f"the pickled state lacks {', '.join(missing)}")
    return tuple(d[n] for n in names)


def state_of(obj: object, names: tuple[str, ...]) -> tuple[object, ...]:
    """Return the values of `names` on `obj` as the plain tuple `__getstate__` writes."""
    return tuple([getattr(obj, n) for n in names])


def restore(obj: object, names: tuple[str, ...], s: Any) -> None:
    """Set `names` on `obj` from a pickled state in any form `fields` reads."""
    for n, v in zip(names, fields(s, names), strict=True):
        setattr(obj, n, v)
