"""Media decoders (being built)."""
