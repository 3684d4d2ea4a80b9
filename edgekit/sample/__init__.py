"""The embedded default detector: weights and its exported bundle."""
