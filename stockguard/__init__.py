"""stockguard: approve, re-target or suppress campaign triggers against live stock."""

from stockguard._hot import use_sources

# Before any hot module loads: the compiled build, or the sources (STOCKGUARD_PURE=1, or a
# build older than the tree).
use_sources()
