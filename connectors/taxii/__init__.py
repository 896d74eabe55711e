"""A TAXII 2.1 server over each nation's verified feed (docs/STIX.md, "TAXII").

- :class:`~connectors.taxii.store.Store`: SQLite, one delivery per transaction;
- :func:`~connectors.taxii.feeder.feed_store`: a nation's feed into the store;
- :class:`~connectors.taxii.server.TaxiiApp`: the HTTP endpoints;
- :mod:`connectors.taxii.auth`: who may read which collection.
"""
