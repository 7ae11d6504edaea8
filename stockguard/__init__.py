"""stockguard: approve, re-target or suppress campaign triggers against live stock."""
