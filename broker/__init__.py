"""ixb: an intelligence-exchange broker for border-security cooperation.

This is the public face: what an agency adapter, a recipient's analyst
tooling and a connector use, with a stable name. Everything else is an
implementation module; docs/ARCHITECTURE.md maps the layers.

- An agency publishes signed reports with :class:`Publisher`.
- A recipient reads and checks its feed with :func:`read_feed` (or one
  delivery at a time with :class:`DeliveryVerifier`) and sees each field's
  :class:`FieldProvenance`; the broker's derivations are judged by the
  agreements it is party to (:class:`PartyAgreements`) or the bundle the
  broker archived (:class:`ArchivedAgreements`). Deliveries are sealed to the recipient: it
  passes its private sealing keys, e.g. ``Keyring([DecryptionKey.from_pem(
  key_id, pem)])``.
- Reports are :class:`ThreatReport` values; every error is an
  :class:`IxbError`, and its subclass says what the caller does next.
"""

from broker.domain.report import (
    DocumentType,
    HandlingCode,
    Indicator,
    IndicatorKind,
    Location,
    Marking,
    ReportType,
    SourceReliability,
    Subject,
    SubjectRole,
    ThreatReport,
    TravelDocument,
    Vehicle,
    VehicleKind,
)
from broker.errors import (
    ConfigurationError,
    DecodeError,
    IxbError,
    PolicyUndecided,
    RegistryRefused,
    RejectedInput,
    TransportError,
    VerificationError,
)
from broker.parties.agency import Published, Publisher
from broker.parties.derivations import ArchivedAgreements, PartyAgreements
from broker.parties.recipient import (
    DeliveryVerifier,
    DerivedField,
    FeedProblem,
    FieldProvenance,
    VerifiedDelivery,
    read_feed,
    verify_delivery,
)
from broker.trust.sealing.keys import DecryptionKey, Keyring
from broker.wire.report import describe_validation_error

__version__ = "0.3.0"

__all__ = [
    "ArchivedAgreements",
    "ConfigurationError",
    "DecodeError",
    "DecryptionKey",
    "DeliveryVerifier",
    "DerivedField",
    "DocumentType",
    "FeedProblem",
    "FieldProvenance",
    "HandlingCode",
    "Indicator",
    "IndicatorKind",
    "IxbError",
    "Keyring",
    "Location",
    "Marking",
    "PartyAgreements",
    "PolicyUndecided",
    "Published",
    "Publisher",
    "RegistryRefused",
    "RejectedInput",
    "ReportType",
    "SourceReliability",
    "Subject",
    "SubjectRole",
    "ThreatReport",
    "TransportError",
    "TravelDocument",
    "Vehicle",
    "VehicleKind",
    "VerificationError",
    "VerifiedDelivery",
    "__version__",
    "describe_validation_error",
    "read_feed",
    "verify_delivery",
]
