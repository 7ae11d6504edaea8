"""Decisions and stock out to the email platforms: pure request builders per vendor."""
