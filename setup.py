"""Build the compiled hot path: mypyc over the pure modules the replay spends its time in.

`pip install .` (the wheel, the Docker image) compiles them when mypyc is there (it is in
the build requirements) and a C compiler works; `STOCKGUARD_PURE=1` at build time skips
it. The dev loop (`scripts/setup.sh`) builds them in place with `build_ext --inplace`
whenever a source is newer than its extension. At run time `STOCKGUARD_PURE=1` loads the
`.py` sources instead (`stockguard/_hot.py`), and so does a tree whose sources are newer
than their extensions, with a warning.
"""

from __future__ import annotations

import os
import sys

from setuptools import setup

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stockguard._hot import GROUP, HOT, source_of  # noqa: E402 - the list lives with its loader


def _extensions() -> list[object]:
    if os.environ.get("STOCKGUARD_PURE") == "1":
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("stockguard: mypyc not installed, building the interpreted package", file=sys.stderr)  # noqa: T201
        return []
    return list(mypycify([source_of(m) for m in HOT], group_name=GROUP, opt_level="3"))


setup(ext_modules=_extensions())
