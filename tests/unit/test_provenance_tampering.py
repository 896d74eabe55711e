"""Every bit of a submission and of a delivery is covered: flipping any one is refused.

The stages run as the enforcer runs them (intake, fan-out, batch attestation)
but without Kafka; the recipient side is the client library's verifier.
A flip of the signed submission is sealed again before intake sees it, as
anyone may seal to the broker: the signature, not the seal, must catch it.
Likewise a flip of an attested delivery is sealed to its recipient again (as
the broker, or anyone with the recipient's public key, could seal it), so
the attestation must catch it; flips of the sealed bytes are refused when
opened.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from pathlib import Path

import pytest

from broker.app.assembly import attester_for, policy_source, provision_keys, signer_for
from broker.app.settings import Settings
from broker.enforcer.stages.context import batch_context
from broker.enforcer.stages.fanout import FanOut, Routed
from broker.enforcer.stages.intake import Accepted, Intake
from broker.enforcer.stages.outcome import Refused
from broker.enforcer.stages.replay_guard import ReplayGuard
from broker.errors import RejectedInput
from broker.parties.derivations import PartyAgreements
from broker.parties.recipient import DeliveryVerifier
from broker.policy.source import ReloadingPolicy
from broker.trust.attestation import open_attested
from broker.trust.envelopes import open_envelope
from broker.trust.keystore import Keystore
from broker.trust.pseudonyms import PseudonymSecrets
from broker.trust.records import KeyRole
from broker.trust.registry_file import RegistryFile
from broker.trust.sd.disclosure import SD_REPORT_SCHEMA
from broker.trust.sd.layout import ReportLayout
from broker.trust.sd.statement import DELIVERY_SCHEMA
from broker.trust.sd.submission import seal_submission
from broker.trust.sealing.envelope import Opener
from broker.trust.sealing.parties import BROKER_PARTY
from broker.trust.sealing.routes import delivery_content_key
from broker.wire.codec import HEADER_LEN, SchemaCatalog
from broker.wire.records import InboundRecord
from broker.wire.report import report_to_record
from broker.wire.topics import TopicNames
from tests.factories import make_report
from tests.support.submissions import seal_signed

SAMPLED_BITS = 1200


class Pipeline:
    """Intake, fan-out and attestation for NL, BE and DE under the repository's agreements."""

    def __init__(self, home: Path, catalog: SchemaCatalog) -> None:
        self.settings = Settings(home=home, kafka_bootstrap="127.0.0.1:1")
        provision_keys(self.settings, ["NL", "BE", "DE"])
        self.catalog = catalog
        self.topics = TopicNames()
        self.layout = ReportLayout.from_catalog(catalog)
        self.registry = RegistryFile(self.settings.registry_path)
        self.policy: ReloadingPolicy = policy_source(self.settings, catalog)
        self.fanout = FanOut(
            catalog, self.topics, PseudonymSecrets(self.settings.pseudonym_secrets_dir)
        )
        self.attester = attester_for(self.settings, catalog)
        # What BE and DE are party to: the repository's agreements, as the broker's.
        self.agreements = PartyAgreements.from_directory(self.settings.policies_dir / "agreements")

    def intake(self) -> Intake:
        replay = ReplayGuard(dt.timedelta(hours=1))
        opener = Opener(Keystore(self.settings.keystore_dir), BROKER_PARTY)
        return Intake(
            self.catalog,
            self.topics,
            max_clock_skew=dt.timedelta(minutes=5),
            replay=replay,
            openers=lambda _: opener,
        )

    def submission(self) -> bytes:
        """A signed submission, not yet sealed."""
        signer = signer_for(self.settings, self.catalog, role=KeyRole.AGENCY, nation="NL")
        return seal_submission(
            self.catalog, self.layout, signer, report_to_record(make_report("NL"))
        )

    def sealed(self, signed: bytes) -> bytes:
        return seal_signed(self.settings, self.catalog, signed, topic=self.topics.submit("NL"))

    def inbound(self, signed: bytes, *, sealed: bytes | None = None) -> InboundRecord:
        """``signed`` sealed for NL's topic as NL seals it (or ``sealed`` as it is)."""
        value = self.sealed(signed) if sealed is None else sealed
        return InboundRecord(self.topics.submit("NL"), 0, 0, b"k", value, (), 0)

    def attested(self, value: bytes) -> dict[str, bytes]:
        """Each recipient's attested delivery of the signed submission ``value``, not sealed."""
        context = batch_context(self.registry, self.policy, dt.datetime.now(dt.UTC))
        accepted = self.intake().check(self.inbound(value), context)
        assert isinstance(accepted, Accepted), accepted
        routed = self.fanout.route(accepted, context)
        assert isinstance(routed, Routed), routed
        attested = self.attester.attest([p.statement for p in routed.pending])
        return {p.recipient: a for p, a in zip(routed.pending, attested, strict=True)}

    def sealed_to(self, recipient: str, attested: bytes) -> bytes:
        """``attested`` sealed to ``recipient`` for its topic, as the enforcer seals it."""
        content = delivery_content_key(
            self.registry.current(),
            topic=self.topics.deliver(recipient),
            recipient=recipient,
            at=dt.datetime.now(dt.UTC),
        )
        return content.seal(self.catalog, attested)

    def deliveries(self, value: bytes) -> dict[str, bytes]:
        """Each recipient's delivery of the signed submission ``value``, sealed to it."""
        return {r: self.sealed_to(r, a) for r, a in self.attested(value).items()}

    def verifier(self, recipient: str) -> DeliveryVerifier:
        keys = Keystore(self.settings.keystore_dir)  # the recipient's keys, among the others
        return DeliveryVerifier(
            self.catalog, recipient, agreements=self.agreements, keys=keys, topics=self.topics
        )


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory, catalog: SchemaCatalog) -> Pipeline:
    return Pipeline(tmp_path_factory.mktemp("tamper"), catalog)


def flipped(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def bits_to_flip(length: int, seed: int) -> list[int]:
    """Every bit of the first and last 64 bytes, and a seeded sample of the rest."""
    edges = [*range(min(512, length * 8)), *range(max(0, length * 8 - 512), length * 8)]
    rng = random.Random(seed)
    return sorted({*edges, *rng.sample(range(length * 8), min(SAMPLED_BITS, length * 8))})


def test_the_untampered_submission_and_delivery_verify(pipeline: Pipeline) -> None:
    deliveries = pipeline.deliveries(pipeline.submission())
    verified = pipeline.verifier("BE").verify(pipeline.registry.current(), deliveries["BE"])
    assert verified.origin == "NL"


def test_every_sampled_bit_flip_of_a_submission_is_refused_at_intake(pipeline: Pipeline) -> None:
    value = pipeline.submission()
    context = batch_context(pipeline.registry, pipeline.policy, dt.datetime.now(dt.UTC))
    accepted_anyway = []
    for bit in bits_to_flip(len(value), seed=1):
        outcome = pipeline.intake().check(pipeline.inbound(flipped(value, bit)), context)
        if isinstance(outcome, Refused) and outcome.unexpected is None:
            continue  # refused with a reason of its own, not by a fault of ours
        accepted_anyway.append((bit, outcome))
    assert accepted_anyway == []


def test_every_sampled_bit_flip_of_a_sealed_submission_is_refused_at_unseal(
    pipeline: Pipeline,
) -> None:
    value = pipeline.sealed(pipeline.submission())
    context = batch_context(pipeline.registry, pipeline.policy, dt.datetime.now(dt.UTC))
    intake = pipeline.intake()
    outcomes = {
        bit: intake.check(pipeline.inbound(b"", sealed=flipped(value, bit)), context)
        for bit in bits_to_flip(len(value), seed=3)
    }
    not_refused_at_unseal = {
        bit: outcome
        for bit, outcome in outcomes.items()
        if not (isinstance(outcome, Refused) and outcome.error.stage == "unseal")
    }
    assert not_refused_at_unseal == {}


def test_every_sampled_bit_flip_of_a_delivery_is_refused_by_the_recipient(
    pipeline: Pipeline,
) -> None:
    delivery = pipeline.attested(pipeline.submission())["BE"]
    verifier = pipeline.verifier("BE")
    registry = pipeline.registry.current()
    verifier.verify(registry, pipeline.sealed_to("BE", delivery))  # genuine: its root is cached
    accepted_anyway = []
    for bit in bits_to_flip(len(delivery), seed=2):
        try:
            verifier.verify(registry, pipeline.sealed_to("BE", flipped(delivery, bit)))
        except RejectedInput:
            continue
        accepted_anyway.append(bit)
    assert accepted_anyway == []


def test_every_sampled_bit_flip_of_a_sealed_delivery_is_refused_when_opened(
    pipeline: Pipeline,
) -> None:
    delivery = pipeline.deliveries(pipeline.submission())["BE"]
    verifier = pipeline.verifier("BE")
    registry = pipeline.registry.current()
    stages = set()
    for bit in bits_to_flip(len(delivery), seed=4):
        with pytest.raises(RejectedInput) as refused:
            verifier.verify(registry, flipped(delivery, bit))
        stages.add(refused.value.stage)
    assert stages == {"unseal"}


def test_a_delivery_for_one_recipient_does_not_open_for_another(pipeline: Pipeline) -> None:
    deliveries = pipeline.deliveries(pipeline.submission())
    with pytest.raises(RejectedInput) as refused:
        pipeline.verifier("DE").verify(pipeline.registry.current(), deliveries["BE"])
    assert (refused.value.reason, refused.value.stage) == ("seal_unopenable", "unseal")


def test_a_statement_for_one_recipient_sealed_to_another_is_refused_by_it(
    pipeline: Pipeline,
) -> None:
    """A broker that seals BE's statement to DE is caught by the statement's own recipient."""
    be_statement = pipeline.attested(pipeline.submission())["BE"]
    with pytest.raises(RejectedInput) as refused:
        pipeline.verifier("DE").verify(
            pipeline.registry.current(), pipeline.sealed_to("DE", be_statement)
        )
    assert refused.value.reason == "wrong_recipient"


def over_long_first_varint(data: bytes) -> bytes:
    """The same message with its first varint written one byte longer: the same value."""
    end = HEADER_LEN
    while data[end] & 0x80:
        end += 1
    return data[:end] + bytes([data[end] | 0x80, 0x00]) + data[end + 1 :]


def test_a_submission_and_a_delivery_accept_only_their_canonical_encoding(
    pipeline: Pipeline,
) -> None:
    submission = pipeline.submission()
    delivery = pipeline.attested(submission)["BE"]
    context = batch_context(pipeline.registry, pipeline.policy, dt.datetime.now(dt.UTC))

    at_intake = pipeline.intake().check(
        pipeline.inbound(over_long_first_varint(submission)), context
    )
    with pytest.raises(RejectedInput) as at_recipient:
        pipeline.verifier("BE").verify(
            pipeline.registry.current(),
            pipeline.sealed_to("BE", over_long_first_varint(delivery)),
        )

    assert isinstance(at_intake, Refused), at_intake
    assert (at_intake.error.reason, at_intake.error.stage) == ("non_canonical", "envelope")
    assert (at_recipient.value.reason, at_recipient.value.stage) == ("non_canonical", "envelope")


def test_a_broker_passing_on_a_report_signed_for_another_origin_than_its_key_is_caught(
    pipeline: Pipeline,
) -> None:
    """NL's key signed a header claiming DE; a broker that re-attests it, naming DE, is refused.

    The intake refuses such a submission (origin_mismatch); the recipient
    makes the same originator check, so a misbehaving broker gains nothing
    by skipping it.
    """
    catalog = pipeline.catalog
    attested = open_attested(catalog, pipeline.attested(pipeline.submission())["BE"])
    statement = catalog.decode(attested.payload, DELIVERY_SCHEMA)
    original = open_envelope(catalog, statement["originator_envelope"])
    header = catalog.decode(original.payload, SD_REPORT_SCHEMA) | {"origin": "DE"}
    payload = catalog.encode(SD_REPORT_SCHEMA, header)
    nl = signer_for(pipeline.settings, catalog, role=KeyRole.AGENCY, nation="NL")
    forged = statement | {
        "origin": "DE",
        "originator_envelope": nl.seal(payload),
        "original_sha256": hashlib.sha256(payload).digest(),
    }
    [delivery] = pipeline.attester.attest([catalog.encode(DELIVERY_SCHEMA, forged)])

    with pytest.raises(RejectedInput) as refused:
        pipeline.verifier("BE").verify(
            pipeline.registry.current(), pipeline.sealed_to("BE", delivery)
        )

    assert (refused.value.reason, refused.value.stage) == ("origin_mismatch", "identity")
