"""Downstream datasets (being built)."""
