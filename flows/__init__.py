"""Dataflows and the small pure functions they are wired from."""
