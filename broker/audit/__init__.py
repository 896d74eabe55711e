"""The audit log: every policy decision as evidence an auditor can check offline.

Each delivery, denial and rejection becomes an entry of the ``ixb.audit``
topic, and the entries are the leaves of a Merkle tree hashed as RFC 6962
says. The broker publishes signed checkpoints (a tree size and its root);
with an inclusion proof an auditor checks that an entry is in a checkpointed
tree, and with a consistency proof that a later checkpoint extends an
earlier one, so the log cannot be rewritten or forked without it showing.

- ``broker.audit.merkle``: the tree hashing, proofs and an in-memory
  append-only log; pure, no I/O.
"""
