"""Connectors: Kafka, Redis, files and Prometheus, the edges of every flow."""
