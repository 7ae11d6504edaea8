"""State types and the pure transitions of the decision rules."""
