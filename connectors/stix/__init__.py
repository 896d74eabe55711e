"""STIX 2.1 out of and into ixb (docs/STIX.md has the mapping and why).

- :func:`delivery_to_bundle`: a verified delivery as a bundle that passes
  stix2-validator and parses with stix2, with deterministic ids;
- :func:`bundle_to_reports`: the inverse, for agency adapters; what cannot be
  mapped is refused by :class:`Unmappable`, naming the object and property.
"""

from connectors.stix.inbound import InboundDefaults, bundle_to_reports
from connectors.stix.inbound_objects import Unmappable
from connectors.stix.outbound import delivery_to_bundle
from connectors.stix.vocabulary import IXB_EXTENSION_ID, TLP2_IDS

__all__ = [
    "IXB_EXTENSION_ID",
    "TLP2_IDS",
    "InboundDefaults",
    "Unmappable",
    "bundle_to_reports",
    "delivery_to_bundle",
]
