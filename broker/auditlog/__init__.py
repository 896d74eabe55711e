"""The audit log: every policy decision as evidence an auditor can check offline.

Each delivery, denial and rejection becomes an entry of the ``ixb.audit``
topic, and the entries are the leaves of a Merkle tree hashed as RFC 6962
says. The broker publishes signed checkpoints (a tree size and its root);
with an inclusion proof an auditor checks that an entry is in a checkpointed
tree, and with a consistency proof that a later checkpoint extends an
earlier one, so the log cannot be rewritten or forked without it showing.

Everything here is pure (no Kafka); the enforcer produces and reads the
records. One partition of ``ixb.audit`` is one log, its leaves the exact
record values in offset order.

- ``merkle``: the tree hashing, proofs and an in-memory append-only log.
- ``entries``: the entry schema's values and ``AuditWriter``, which chains
  each process's entries (writer id, sequence, hash of the previous).
- ``events``: audit events from fan-out, intake refusals and releases.
- ``checkpoints``: signed checkpoints and the ``Checkpointer`` that makes
  them every N entries or T seconds; consistency proofs between them.
- ``receipts``: inclusion proofs a recipient verifies offline.
- ``chains`` and ``verify``: ``ixb audit verify``, naming the first fault.
- ``archive``: policy bundles archived by content hash (``ixb.bundles``);
  ``bundles``: the enforcer writing them, the auditor loading them back.
- ``replay``, ``received`` and ``replay_output``: ``ixb audit replay``,
  re-running logged decisions with their archived bundle.
- ``summary`` and ``export``: ``ixb audit export`` as JSON Lines and HTML.
"""
