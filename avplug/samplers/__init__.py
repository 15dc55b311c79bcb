"""avplug.samplers (being built)."""
