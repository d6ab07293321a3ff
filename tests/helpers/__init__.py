"""Shared test helpers: independent reference computations and tiny models / checkpoints in official layouts."""
