"""Adapters between ixb and the outside world; they use only broker's public API."""
