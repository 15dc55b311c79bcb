"""avplug.losses (being built)."""
