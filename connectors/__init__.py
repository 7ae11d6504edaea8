"""Connectors: Kafka, Redis, files and the demo simulator, the edges of every flow."""
