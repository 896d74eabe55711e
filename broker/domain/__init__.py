"""Typed, immutable domain values: reports, agreements, decisions. No I/O here."""
