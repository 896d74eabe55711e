"""What a recipient uses: open and verify a delivery, see each field's provenance, read a feed.

A delivery is trusted only after all of this holds (:func:`verify_delivery`):

0. it opens (broker/trust/sealing/envelope.py) with one of this recipient's
   own sealing keys, for its own delivery topic: a delivery sealed to
   another nation, or moved here from another topic, does not;
1. the broker's batch attestation verifies: the statement's inclusion proof
   leads to a root signed by a broker key in the partner registry;
2. the statement is addressed to this recipient;
3. the originator's own envelope inside it verifies, by an agency key of the
   statement's origin that was valid when the broker received the report
   (``received_at``) and when it was issued (the originator check the intake
   makes, broker/trust/key_checks.py), and it is the very payload the
   statement names (``original_sha256``);
4. every disclosure matches a digest the originator signed, every derived
   value lies under a field the statement says was derived and replaces a
   value the originator signed and left undisclosed, and every value missing
   from the rebuilt report is one the statement says was withheld;
5. the agreement the statement names is one the recipient trusts, covers
   this flow, and prescribes every derivation the statement claims; no value
   its rules withhold or derive came as signed (broker/parties/derivations.py);
6. the rebuilt report validates.

The result names, per field, who vouches for it: the originator's key, the
broker under an agreement, or nobody because it was withheld. Anything else
is a :class:`FeedProblem`, never shown as a report.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from broker.domain.agreements import Agreement
from broker.domain.report import ThreatReport
from broker.errors import RejectedInput, VerificationError
from broker.kafka.reader import read_topic
from broker.parties.derivations import (
    AgreementSource,
    ArchivedAgreements,
    Claim,
    check_derivations,
)
from broker.trust.attestation import AttestationVerifier, open_attested
from broker.trust.envelopes import open_envelope, verify_envelope
from broker.trust.key_checks import check_originator
from broker.trust.records import KeyRecord, KeyRole, PartnerRegistry
from broker.trust.sd.disclosure import SD_REPORT_SCHEMA, Disclosure, DisclosureError, Provenance
from broker.trust.sd.layout import ReportLayout, abstract_path
from broker.trust.sd.statement import DELIVERY_SCHEMA
from broker.trust.sd.verify import verify_disclosures
from broker.trust.sealing.envelope import Opener, read_sealed
from broker.trust.sealing.keys import DecryptionKeys
from broker.wire.codec import SchemaCatalog
from broker.wire.report import record_to_report
from broker.wire.topics import TopicNames


@dataclass(frozen=True, slots=True)
class DerivedField:
    """A field whose value the broker changed under the agreement."""

    field: str
    action: str  # pseudonymise | generalise
    to: str | None = None  # for a generalisation: the precision kept

    def describe(self) -> str:
        return f"{self.action} to {self.to}" if self.to else self.action


@dataclass(frozen=True, slots=True)
class FieldProvenance:
    """Who vouches for one value of a delivered report."""

    kind: str  # signed | derived | withheld
    by: str  # the originator's key id, or the agreement ("NL-BE v3")
    action: str | None = None  # for derived values: how it was derived

    def describe(self) -> str:
        if self.kind == "signed":
            return f"signed by {self.by}"
        if self.kind == "derived":
            return f"{self.action} by the broker under {self.by}"
        return "withheld"


@dataclass(frozen=True, slots=True)
class VerifiedDelivery:
    delivery_id: str
    recipient: str
    origin: str
    report: ThreatReport
    agreement_id: str
    agreement_version: int
    policy_bundle_hash: str
    withheld_fields: tuple[str, ...]
    derived_fields: tuple[DerivedField, ...]
    broker_key_id: str
    originator_key_id: str
    original_sha256: bytes
    decided_at: dt.datetime
    not_before: dt.datetime | None = None  # the embargo it was held under, if any
    offset: int = -1
    provenance: Mapping[str, FieldProvenance] = field(default_factory=dict)
    # When the broker received the report (Kafka's append time): the originator's key
    # was judged valid then. None for a statement that does not say.
    received_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class FeedProblem:
    """A record on the feed that did not verify; shown as a warning, never as data."""

    offset: int
    reason: str
    detail: str


class DeliveryVerifier:
    """Opens and verifies deliveries for one recipient; built once, used for a whole feed.

    ``keys`` holds the recipient's private sealing keys (its keystore, or a
    :class:`~broker.trust.sealing.keys.Keyring` of
    :class:`~broker.trust.sealing.keys.DecryptionKey`); ``topics`` names
    its delivery topic (the namespace, if any). ``agreements`` are those the
    recipient judges the broker's derivations by: its own copies of the
    agreements it is party to, as a rule. Holds the report layout (costly to
    build), the cache of verified batch roots and of unsealed content keys,
    so the deliveries of one batch cost one root signature and one HPKE open.
    """

    __slots__ = (
        "_agreements",
        "_attestations",
        "_catalog",
        "_layout",
        "_opener",
        "recipient",
        "topic",
    )

    def __init__(
        self,
        catalog: SchemaCatalog,
        recipient: str,
        *,
        agreements: AgreementSource,
        keys: DecryptionKeys,
        topics: TopicNames | None = None,
    ) -> None:
        self._catalog = catalog
        self._layout = ReportLayout.from_catalog(catalog)
        self._attestations = AttestationVerifier()
        self._agreements = agreements
        self._opener = Opener(keys, recipient)
        self.recipient = recipient
        self.topic = (topics or TopicNames()).deliver(recipient)

    def verify(
        self, registry: PartnerRegistry, data: bytes, *, at: dt.datetime | None = None
    ) -> VerifiedDelivery:
        """Open and verify one delivery; raise RejectedInput naming the first problem."""
        catalog = self._catalog
        opened = self._opener.open(read_sealed(catalog, data), topic=self.topic)  # 0
        attested = open_attested(catalog, opened)
        broker_key = self._attestations.verify(  # 1
            attested, registry, role=KeyRole.BROKER, at=at or dt.datetime.now(dt.UTC)
        )
        statement = catalog.decode(attested.payload, DELIVERY_SCHEMA)
        if statement["recipient"] != self.recipient:  # 2
            raise RejectedInput(
                "wrong_recipient",
                f"delivery is addressed to {statement['recipient']}, not {self.recipient}",
                stage="identity",
            )
        signed, originator = self._originator(registry, statement)  # 3
        withheld = tuple(statement["withheld_fields"])
        derived_fields = tuple(DerivedField(**d) for d in statement["derived_fields"])
        disclosures = [Disclosure.from_record(d) for d in statement["disclosures"]]
        derived = statement["derived_values"]
        disclosed = verify_disclosures(  # 4
            self._layout,
            signed,
            disclosures,
            derived=[(d["path"], d["value"]) for d in derived],
            derived_fields=[f.field for f in derived_fields],
        )
        _check_replaced_digests(signed, disclosed.digests.values(), derived)
        unexplained = disclosed.unexplained_holes(self._layout, withheld)
        if unexplained:
            raise DisclosureError(
                "unexplained_withholding",
                f"{len(unexplained)} values withheld without saying so, e.g. {unexplained[0]}",
            )
        claim = Claim(
            agreement_id=statement["agreement_id"],
            agreement_version=statement["agreement_version"],
            bundle_hash=statement["policy_bundle_hash"],
            origin=statement["origin"],
            recipient=statement["recipient"],
            report_type=signed["report_type"],
            decided_at=statement["decided_at"],
            derived_fields=[(f.field, f.action, f.to) for f in derived_fields],
            derived_values=derived,
        )
        check_derivations(claim, self._agreements, disclosed.provenance)  # 5
        report = record_to_report(disclosed.record)  # 6
        agreement = f"{statement['agreement_id']} v{statement['agreement_version']}"
        return VerifiedDelivery(
            delivery_id=statement["delivery_id"],
            recipient=statement["recipient"],
            origin=statement["origin"],
            report=report,
            agreement_id=statement["agreement_id"],
            agreement_version=statement["agreement_version"],
            policy_bundle_hash=statement["policy_bundle_hash"],
            withheld_fields=withheld,
            derived_fields=derived_fields,
            broker_key_id=broker_key.key_id,
            originator_key_id=originator.key_id,
            original_sha256=statement["original_sha256"],
            decided_at=statement["decided_at"],
            not_before=statement["not_before"],
            received_at=statement["received_at"],
            provenance=_provenance(
                disclosed.provenance, disclosed.holes, originator, agreement, derived_fields
            ),
        )

    def _originator(
        self, registry: PartnerRegistry, statement: Mapping[str, Any]
    ) -> tuple[dict[str, Any], KeyRecord]:
        """The originator's verified signed payload, and its key, checked against the statement."""
        envelope = open_envelope(self._catalog, statement["originator_envelope"])
        key = verify_envelope(envelope, registry, role=KeyRole.AGENCY, at=None)
        signed = self._catalog.decode(envelope.payload, SD_REPORT_SCHEMA)
        if hashlib.sha256(envelope.payload).digest() != statement["original_sha256"]:
            raise VerificationError(
                "statement_mismatch", "statement names another original payload", stage="identity"
            )
        check_originator(
            key,
            origin=signed["origin"],
            issued_at=signed["issued_at"],
            received_at=statement["received_at"],
        )
        if (
            key.key_id != statement["originator_key_id"]
            or signed["origin"] != statement["origin"]
            or uuid.UUID(str(signed["report_id"])) != uuid.UUID(str(statement["report_id"]))
        ):
            raise VerificationError(
                "statement_mismatch",
                "statement and originator disagree on key, origin or report id",
                stage="identity",
            )
        return signed, key


def _check_replaced_digests(
    signed: Mapping[str, Any], disclosed: Iterable[bytes], derived: list[dict[str, Any]]
) -> None:
    """A derived value may only name, as what it replaces, a signed digest left undisclosed."""
    given = set(disclosed)
    signed_digests = set(signed["digests"])
    for value in derived:
        digest = value["original_digest"]
        if digest is not None and (digest not in signed_digests or digest in given):
            raise DisclosureError(
                "bad_original_digest", f"{value['path']}: replaces no withheld signed value"
            )


def _provenance(
    marks: Mapping[str, Provenance],
    holes: tuple[str, ...],
    originator: KeyRecord,
    agreement: str,
    derived_fields: tuple[DerivedField, ...],
) -> dict[str, FieldProvenance]:
    signer = f"{originator.nation} key {originator.key_id}"
    actions = {f.field: f.describe() for f in derived_fields}
    result: dict[str, FieldProvenance] = {}
    for path, mark in marks.items():
        if mark is Provenance.SIGNED:
            result[path] = FieldProvenance("signed", signer)
        else:
            result[path] = FieldProvenance("derived", agreement, _action_for(path, actions))
    for path in holes:
        result[path] = FieldProvenance("withheld", "")
    return result


def _action_for(path: str, actions: Mapping[str, str]) -> str:
    """The action of the derived field covering ``path`` (the most specific one)."""
    abstract = abstract_path(path)
    covering = [
        name
        for name in actions
        if abstract == name or abstract.startswith((f"{name}.", f"{name}["))
    ]
    return actions[max(covering, key=len)] if covering else "derived"


def verify_delivery(
    catalog: SchemaCatalog,
    registry: PartnerRegistry,
    data: bytes,
    *,
    recipient: str,
    agreements: AgreementSource,
    keys: DecryptionKeys,
    topics: TopicNames | None = None,
    at: dt.datetime | None = None,
) -> VerifiedDelivery:
    """Open and verify one delivery addressed to ``recipient``; raise RejectedInput otherwise.

    For many deliveries, build one :class:`DeliveryVerifier` instead.
    """
    verifier = DeliveryVerifier(catalog, recipient, agreements=agreements, keys=keys, topics=topics)
    return verifier.verify(registry, data, at=at)


async def read_feed(
    *,
    bootstrap: str,
    topics: TopicNames,
    nation: str,
    catalog: SchemaCatalog,
    registry: Callable[[], PartnerRegistry],
    keys: DecryptionKeys,
    agreements: AgreementSource | None = None,
    idle_timeout_s: float = 2.0,
    follow: bool = False,
    deduplicate: bool = True,
    stop: asyncio.Event | None = None,
) -> AsyncIterator[VerifiedDelivery | FeedProblem]:
    """Verified deliveries for ``nation`` from the start of its feed.

    ``keys`` holds ``nation``'s private sealing keys: every delivery is
    sealed to the recipient (a keystore, or a
    :class:`~broker.trust.sealing.keys.Keyring`). Deliveries are at least
    once; with ``deduplicate`` a repeated delivery id is yielded only the
    first time. ``agreements`` judge the broker's derivations; without them,
    the bundles archived on ``ixb.bundles`` do (read again whenever a
    statement names a bundle not seen yet), which holds the broker to the
    rules it decided by, not to the partners' own copies
    (broker/parties/derivations.py). Setting ``stop`` ends a followed feed at
    its next poll.
    """
    seen: set[str] = set()
    source = agreements
    if source is None:
        source = _FeedArchive(bootstrap, topics.bundles, catalog, idle_timeout_s)
        await source.refresh()
    verifier = DeliveryVerifier(catalog, nation, agreements=source, keys=keys, topics=topics)
    async for record in read_topic(
        bootstrap, topics.deliver(nation), idle_timeout_s=idle_timeout_s, follow=follow, stop=stop
    ):
        try:
            try:
                delivery = verifier.verify(registry(), record.value or b"")
            except RejectedInput:
                if not (isinstance(source, _FeedArchive) and await source.caught_up()):
                    raise
                delivery = verifier.verify(registry(), record.value or b"")  # with new bundles
        except RejectedInput as exc:
            yield FeedProblem(record.offset, exc.reason, exc.detail)
            continue
        if deduplicate and delivery.delivery_id in seen:
            continue
        seen.add(delivery.delivery_id)
        yield dataclasses.replace(delivery, offset=record.offset)


class _FeedArchive:
    """The bundle archive of a feed's cluster, read again when a statement names a new bundle."""

    __slots__ = ("_archived", "_bootstrap", "_catalog", "_idle_timeout_s", "_missing", "_topic")

    def __init__(
        self, bootstrap: str, topic: str, catalog: SchemaCatalog, idle_timeout_s: float
    ) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._catalog = catalog
        self._idle_timeout_s = idle_timeout_s
        self._archived = ArchivedAgreements((), catalog)
        self._missing: dict[str, bool] = {}  # bundle hash asked for -> read again since

    def agreements(self, bundle_hash: str) -> Sequence[Agreement]:
        found = self._archived.agreements(bundle_hash)
        if not found:
            self._missing.setdefault(bundle_hash, False)
        return found

    async def refresh(self) -> None:
        values = [
            r.value
            async for r in read_topic(
                self._bootstrap, self._topic, idle_timeout_s=self._idle_timeout_s
            )
            if r.value is not None
        ]
        self._archived = ArchivedAgreements(values, self._catalog)

    async def caught_up(self) -> bool:
        """Read the archive again if a bundle was asked for that it lacked; True if it was."""
        unread = [h for h, read in self._missing.items() if not read]
        if not unread:
            return False
        await self.refresh()
        for bundle_hash in unread:
            self._missing[bundle_hash] = True
        return True
