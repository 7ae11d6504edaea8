"""The fault suite: the live job through kill -9, SIGTERM, outages and poison, with a ledger."""
