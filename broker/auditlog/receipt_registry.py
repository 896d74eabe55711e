"""The registry a receipt is checked against: the holder's, and the version the entry names.

A receipt's checkpoint is signed by a broker key; the holder checks it years
later, when that key may have been rotated out of the registry. So a receipt
carries the registry version its entry names (``registry_hash``, archived in
``ixb.registry``), and the holder checks the checkpoint against its own
registry plus the keys only that version still lists, provided

1. the carried document hashes to the entry's ``registry_hash``, which the
   Merkle proof binds to the checkpoint (so it is the one the entry names);
2. the holder's own governance (its registry's keys and threshold) signed
   it, as of its date: a broker that forged a registry with a key of its
   own cannot get it believed.

A key the holder's registry lists keeps the holder's record: a revocation
the holder knows about still applies.
"""

from __future__ import annotations

import dataclasses

from broker.auditlog.entries import AUDIT_ENTRY_SCHEMA
from broker.auditlog.receipts import Receipt
from broker.errors import DecodeError, RegistryRefused
from broker.trust.governance import RegistryDocument, accept, content_hash, document_bytes
from broker.trust.governance import parse_document as parse_registry
from broker.trust.records import KeyRecord, PartnerRegistry
from broker.wire.codec import SchemaCatalog

__all__ = ["registry_for_receipt", "with_registry"]


def with_registry(receipt: Receipt, document: RegistryDocument | None) -> Receipt:
    """``receipt`` carrying ``document`` (the version its entry names), if there is one."""
    if document is None:
        return receipt
    return dataclasses.replace(receipt, registry=document_bytes(document))


def registry_for_receipt(
    receipt: Receipt,
    entry: bytes | None,
    *,
    catalog: SchemaCatalog,
    holder: RegistryDocument | None,
    current: PartnerRegistry,
) -> PartnerRegistry:
    """``current``, plus the carried version's other keys when it holds (module docstring).

    A carried version that does not hold adds nothing: the receipt is then
    checked against ``current`` alone, and fails there if it needs more.
    """
    carried = receipt.registry
    data = entry if entry is not None else receipt.entry
    if carried is None or data is None or holder is None:
        return current
    try:
        named = catalog.decode(data, AUDIT_ENTRY_SCHEMA)["registry_hash"]
        document = parse_registry(carried)
        if named is None or content_hash(document) != named:
            return current
        accept(document, last=None, anchor=holder.trust(), now=document.issued_at)
    except (DecodeError, RegistryRefused):
        return current
    keys: dict[str, KeyRecord] = {k.key_id: k for k in document.keys}
    keys.update({k.key_id: k for k in current.records()})
    return PartnerRegistry(keys.values(), governance=current.governance, version=current.version)
