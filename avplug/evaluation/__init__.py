"""avplug.evaluation (being built)."""
