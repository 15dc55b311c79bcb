"""avplug.engine (being built)."""
