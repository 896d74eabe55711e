"""``make bench``: ixb's throughput and latency against a raw passthrough and its own ceiling."""
