"""A Moksha 1.x widget package, written as the original's documentation shows (tests only)."""
