"""Moksha's pytest plugin (placeholder; being written)."""
