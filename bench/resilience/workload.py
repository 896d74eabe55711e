"""What the resilience run publishes: varied valid reports and submissions that must be refused.

Valid reports come from the seven-nation scenario (broker/cli/demo/scenario.py) with
the fields the policy decides on (type, marking, handling code) varied, so
the agreements allow some (report, recipient) pairs and refuse others for
many different reasons. Every observation lies more than the longest
embargo in policies/agreements/ in the past, so an allowed pair is delivered
at once and never held; the oracle checks that this is so.

Five kinds of submission must be refused at intake, each with its reason
code: a signature altered (and the submission sealed again, as anyone may
seal to the broker), a report sealed for another nation's topic, a sealed
report moved onto another nation's topic, a report signed by one agency
claiming another's origin, and a report signed by a key the registry does
not know. All are made through the public
:class:`~broker.parties.agency.Publisher`, so they keep working when the wire
format changes.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from broker.cli.demo.scenario import NATIONS, TYPES_BY_REGION, build
from broker.domain.report import HandlingCode, Marking, ReportType, ThreatReport
from broker.parties.agency import Publisher
from broker.trust.envelopes import ENVELOPE_SCHEMA
from broker.trust.sd.submission import SUBMISSION_SCHEMA
from broker.wire.codec import SchemaCatalog
from broker.wire.records import OutboundRecord
from broker.wire.topics import TopicNames

# Longer than any embargo in policies/agreements/ (6 h); the oracle checks it.
OBSERVED_AT_LEAST = dt.timedelta(hours=7)
OBSERVED_AT_MOST = dt.timedelta(hours=48)
MARKINGS = (
    (Marking.CLEAR, 0.05),
    (Marking.GREEN, 0.3),
    (Marking.AMBER, 0.4),
    (Marking.AMBER_STRICT, 0.15),
    (Marking.RED, 0.1),
)
HANDLING = (
    (HandlingCode.H0, 0.5),
    (HandlingCode.H1, 0.3),
    (HandlingCode.H2, 0.15),
    (HandlingCode.H3, 0.05),
)
ANY_TYPE = 0.3  # share of profiles with a type outside their region's usual ones
# An agency files a few kinds of report (bench/reports.py says why): a handful
# of profiles per nation keeps the distinct decision inputs, which each cost an
# uncached Rego evaluation per enforcer process, to a few hundred.
PROFILES_PER_NATION = 4
Profile = tuple[ReportType, Marking, HandlingCode]


class Refusal(StrEnum):
    """The ways a submission is made to be refused, named by the reason code intake gives."""

    TAMPERED = "bad_signature"
    WRONG_TOPIC = "wrong_topic"
    MOVED = "seal_unopenable"
    ORIGIN_MISMATCH = "origin_mismatch"
    UNKNOWN_KEY = "unknown_key"


@dataclass(frozen=True, slots=True)
class Submission:
    """One record to publish; ``refusal`` is set when intake must refuse it."""

    record: OutboundRecord
    report: ThreatReport
    refusal: Refusal | None = None


@dataclass(frozen=True, slots=True)
class Workload:
    submissions: tuple[Submission, ...]  # in publishing order

    @property
    def valid(self) -> list[ThreatReport]:
        return [s.report for s in self.submissions if s.refusal is None]


def reports(count: int, *, seed: int, now: dt.datetime) -> list[ThreatReport]:
    """``count`` valid reports from the seven nations, interleaved, decision inputs varied."""
    rng = random.Random(seed)  # noqa: S311 - seeded, reproducible fake data, not cryptography
    per_nation = math.ceil(count / len(NATIONS))
    by_nation = build(seed=seed, per_nation=per_nation, now=now).reports
    profiles = {n: [_profile(rng, n) for _ in range(PROFILES_PER_NATION)] for n in NATIONS}
    interleaved = [by_nation[n][i] for i in range(per_nation) for n in NATIONS][:count]
    return [_vary(rng, r, rng.choice(profiles[r.origin]), now) for r in interleaved]


def _profile(rng: random.Random, origin: str) -> Profile:
    region = TYPES_BY_REGION["na" if origin in ("US", "CA", "MX") else "eu"]
    return (
        rng.choice(list(ReportType) if rng.random() < ANY_TYPE else region),
        rng.choices([m for m, _ in MARKINGS], weights=[w for _, w in MARKINGS])[0],
        rng.choices([h for h, _ in HANDLING], weights=[w for _, w in HANDLING])[0],
    )


def _vary(
    rng: random.Random, report: ThreatReport, profile: Profile, now: dt.datetime
) -> ThreatReport:
    report_type, marking, handling_code = profile
    observed_ago = rng.uniform(1, OBSERVED_AT_MOST / OBSERVED_AT_LEAST) * OBSERVED_AT_LEAST
    return report.model_copy(
        update={
            "report_type": report_type,
            "marking": marking,
            "handling_code": handling_code,
            "observed_at": now - observed_ago,
        }
    )


SealerFor = Callable[[str, str | None], Publisher]
"""``(claimed origin, signing nation)``: a publisher claiming the first nation and
signing with the second's registered agency key, or with a key the registry
does not know when the second is None."""


def workload(
    valid: list[ThreatReport],
    sealer: SealerFor,
    topics: TopicNames,
    *,
    refused_every: int,
    seed: int,
) -> Workload:
    """Seal ``valid`` and mix in one submission to refuse after every ``refused_every``."""
    rng = random.Random(seed + 1)  # noqa: S311 - seeded, reproducible fake data, not cryptography
    kinds = list(Refusal)
    out: list[Submission] = []
    for index, report in enumerate(valid):
        out.append(Submission(sealer(report.origin, report.origin).seal(report), report))
        if refused_every and (index + 1) % refused_every == 0:
            kind = kinds[(index // refused_every) % len(kinds)]
            fresh_id = uuid.UUID(int=rng.getrandbits(128), version=4)
            fresh = report.model_copy(update={"report_id": fresh_id})
            out.append(_refused(kind, fresh, sealer, topics, rng))
    return Workload(tuple(out))


def _refused(
    kind: Refusal, report: ThreatReport, sealer: SealerFor, topics: TopicNames, rng: random.Random
) -> Submission:
    origin = report.origin
    other = rng.choice([n for n in NATIONS if n != origin])
    key = str(report.report_id).encode()
    own = sealer(origin, origin)
    if kind is Refusal.TAMPERED:
        return Submission(own.seal_signed(_flip_signature(own.sign(report)), key=key), report, kind)
    if kind is Refusal.WRONG_TOPIC:  # signed by ``origin``, sealed for ``other``'s topic
        return Submission(sealer(other, other).seal_signed(own.sign(report), key=key), report, kind)
    if kind is Refusal.MOVED:  # sealed for ``origin``'s topic, sent on ``other``'s
        sealed = own.seal(report)
        return Submission(OutboundRecord(topics.submit(other), key, sealed.value), report, kind)
    if kind is Refusal.ORIGIN_MISMATCH:
        # ``other``'s key signs a report claiming ``origin``, sent on ``other``'s topic.
        signed = sealer(origin, other).sign(report)
        return Submission(sealer(other, other).seal_signed(signed, key=key), report, kind)
    return Submission(sealer(origin, None).seal(report), report, kind)


_CATALOG: SchemaCatalog | None = None


def _flip_signature(submission: bytes) -> bytes:
    """The submission with the last bit of the agency's signature flipped."""
    global _CATALOG  # noqa: PLW0603 - one catalog, loaded on first use
    catalog = _CATALOG = _CATALOG or SchemaCatalog.load()
    outer = catalog.decode(submission, SUBMISSION_SCHEMA)
    envelope = catalog.decode(outer["envelope"], ENVELOPE_SCHEMA)
    signature = bytearray(envelope["signature"])
    signature[-1] ^= 0x01
    envelope["signature"] = bytes(signature)
    outer["envelope"] = catalog.encode(ENVELOPE_SCHEMA, envelope)
    return catalog.encode(SUBMISSION_SCHEMA, outer)
