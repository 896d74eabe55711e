"""What operators see of a running enforcer: Prometheus metrics and health probes.

- :mod:`broker.app.observability.metrics`: one registry per enforcer, read from
  the counters the pipeline already keeps, at scrape time;
- :mod:`broker.app.observability.server`: ``/metrics``, ``/healthz`` and
  ``/readyz`` over a small asyncio HTTP server.

Nothing here sees a report: metric labels are outcomes, reason codes, topics
and partitions only.
"""
