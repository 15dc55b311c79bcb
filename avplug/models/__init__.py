"""avplug.models (being built)."""
