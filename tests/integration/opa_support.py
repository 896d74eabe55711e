"""What the OPA tests share: bundles, inputs, and hypothesis strategies for both.

The strategies draw decision inputs for a bundle (half of them between the
parties of one of its agreements, so allows are common; times at and around
every validity boundary, across the years, and now and then any integer at
all) and whole agreements, so the engines are compared on data the shipped
agreements never hold.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from broker.domain.agreements import Agreement, Direction, Facet, FieldAction, FieldRule
from broker.domain.decisions import Decision, DecisionInput
from broker.domain.report import HandlingCode, Marking, ReportType
from broker.errors import PolicyUndecided
from broker.policy import PolicyDecisionPoint
from broker.policy.bundle import PolicyBundle, load_bundle
from broker.resources import POLICIES_DIR
from broker.wire.codec import SchemaCatalog

OUTSIDERS = ("ZZ", "QX")  # nations no agreement names
DAY_S = 86_400
NATIONS = ("BE", "CA", "DE", "FR", "MX", "NL", "US")


def epoch(year: int, month: int, day: int) -> int:
    return int(dt.datetime(year, month, day, tzinfo=dt.UTC).timestamp())


# Exercises what the real agreements do not: an embargo, an excluded facet and
# H2 with consent, so not_before_s and facets cross the wire too.
EXTENSION = {
    "id": "de-us-liaison",
    "version": 7,
    "title": "DE-US liaison exchange",
    "purpose": "Test agreement exercising embargo, excluded facets and H2 consent.",
    "parties": ["DE", "US"],
    "valid_from": "2025-09-01T00:00:00Z",
    "valid_until": "2027-01-01T00:00:00Z",
    "report_types": ["terrorism", "smuggling", "document_fraud"],
    "max_marking": "TLP:RED",
    "handling_codes": ["H0", "H1", "H2"],
    "h2_consent": {"DE": ["US"]},
    "excluded_facets": ["victims"],
    "field_rules": {
        "*": [{"action": "embargo", "after": "6h"}],
        "smuggling": [{"field": "subjects[].full_name", "action": "redact"}],
    },
}


def policy_dir_with(target: Path, *agreements: dict[str, Any]) -> Path:
    """The real Rego and real agreements under ``target``, plus ``agreements``."""
    shutil.copytree(POLICIES_DIR / "ixb", target / "ixb")
    shutil.copytree(POLICIES_DIR / "agreements", target / "agreements")
    for document in agreements:
        (target / "agreements" / f"{document['id']}.yaml").write_text(yaml.safe_dump(document))
    return target


def rego_only_bundle(directory: Path, catalog: SchemaCatalog, source: str) -> PolicyBundle:
    (directory / "ixb").mkdir(parents=True)
    (directory / "ixb" / "sharing.rego").write_text(source)
    (directory / "agreements").mkdir()
    return load_bundle(directory, catalog)


def bundle_of(real: PolicyBundle, agreements: Sequence[Agreement]) -> PolicyBundle:
    """The shipped Rego over ``agreements``, built in memory (a generated bundle)."""
    data = json.dumps([a.policy_data() for a in agreements], sort_keys=True)
    tag = "sha256:" + hashlib.sha256(data.encode()).hexdigest()  # a tag, not load_bundle's hash
    return PolicyBundle(dict(real.modules), tuple(agreements), tag)


def ask(**changes: Any) -> DecisionInput:
    """A report the Schengen agreement lets NL send to BE, with distinctive times."""
    fields: dict[str, Any] = {
        "origin": "NL",
        "recipient": "BE",
        "report_type": ReportType.SMUGGLING,
        "marking": Marking.GREEN,
        "handling_code": HandlingCode.H1,
        "facets": (Facet.LOCATION,),
        "observed_at_s": epoch(2026, 3, 14) + 1234,
        "now_s": epoch(2026, 3, 15) + 5678,
    }
    fields.update(changes)
    return DecisionInput(**fields)


def assert_no_input_values(message: str, decision_input: DecisionInput) -> None:
    dumped = decision_input.model_dump(mode="json")
    values = [str(v) for k, v in dumped.items() if k != "facets"] + list(dumped["facets"])
    for value in values:
        assert value not in message


def outcome(engine: PolicyDecisionPoint, decision_input: DecisionInput) -> Decision | str:
    """The decision, or "undecided": both engines must fail to decide alike too."""
    try:
        return engine.decide(decision_input)
    except PolicyUndecided:
        return "undecided"


# -- strategies ---------------------------------------------------------------


def times_around(bundle: PolicyBundle) -> st.SearchStrategy[int]:
    instants = sorted(
        {b + d for b in bundle.time_boundaries_s() for d in (-DAY_S, -1, 0, 1, DAY_S)}
    ) or [epoch(2026, 1, 1)]
    spread = 400 * DAY_S
    return st.one_of(
        st.sampled_from(instants),
        st.integers(min_value=instants[0] - spread, max_value=instants[-1] + spread),
        st.integers(),  # any integer: JSON has no bound, and neither may an engine
    )


@st.composite
def decision_inputs(draw: st.DrawFn, bundle: PolicyBundle) -> DecisionInput:
    """Any input, half of them between the parties of an agreement so allows are common."""
    nations = sorted({p for a in bundle.agreements for p in a.parties}) + list(OUTSIDERS)
    origin, recipient, report_type = (
        st.sampled_from(nations),
        st.sampled_from(nations),
        st.sampled_from(ReportType),
    )
    if draw(st.booleans()) and bundle.agreements:
        agreement = draw(st.sampled_from(bundle.agreements))
        senders, receivers = agreement.senders_and_receivers()
        origin, recipient = st.sampled_from(senders), st.sampled_from(receivers)
        report_type = st.one_of(st.sampled_from(agreement.report_types), report_type)
    times = times_around(bundle)
    return draw(
        st.builds(
            DecisionInput,
            origin=origin,
            recipient=recipient,
            report_type=report_type,
            marking=st.sampled_from(Marking),
            handling_code=st.sampled_from(HandlingCode),
            facets=st.lists(st.sampled_from(Facet), unique=True).map(lambda f: tuple(sorted(f))),
            observed_at_s=times,
            now_s=times,
        )
    )


_FIELD_RULES = st.one_of(
    st.builds(
        FieldRule,
        action=st.just(FieldAction.EMBARGO),
        after=st.integers(min_value=1, max_value=366 * DAY_S),
    ),
    st.builds(
        FieldRule,
        field=st.sampled_from(["summary", "subjects[].full_name", "indicators"]),
        action=st.sampled_from([FieldAction.REDACT, FieldAction.PSEUDONYMISE]),
    ),
    st.sampled_from(
        [
            FieldRule(field="location", action=FieldAction.GENERALISE, to="border_sector"),
            FieldRule(field="observed_at", action=FieldAction.GENERALISE, to="hour"),
            FieldRule(field="subjects[].date_of_birth", action=FieldAction.GENERALISE, to="year"),
        ]
    ),
)


@st.composite
def agreements(draw: st.DrawFn, agreement_id: str) -> Agreement:
    """A valid agreement among a few of NATIONS, with whatever the model allows."""
    parties = draw(st.lists(st.sampled_from(NATIONS), min_size=2, max_size=4, unique=True))
    one_way = draw(st.booleans())
    senders = draw(st.lists(st.sampled_from(parties), min_size=1, unique=True)) if one_way else []
    receivers = draw(st.lists(st.sampled_from(parties), min_size=1, unique=True)) if one_way else []
    start = draw(st.integers(min_value=epoch(2024, 1, 1), max_value=epoch(2028, 1, 1)))
    length = draw(st.none() | st.integers(min_value=1, max_value=4 * 365 * DAY_S))
    handling_codes = draw(st.lists(st.sampled_from(HandlingCode), min_size=1, unique=True))
    consent: dict[str, list[str]] = {}
    if HandlingCode.H2 in handling_codes:
        consent = draw(
            st.dictionaries(
                st.sampled_from(parties),
                st.lists(st.sampled_from(parties), unique=True),
                max_size=len(parties),
            )
        )
    rule_keys = st.sampled_from(["*", *ReportType])
    return Agreement(
        id=agreement_id,
        version=draw(st.integers(min_value=1, max_value=10_000)),
        title="generated",
        purpose="generated by hypothesis to compare the policy engines",
        parties=tuple(parties),
        direction=Direction.ONE_WAY if one_way else Direction.MUTUAL,
        senders=tuple(senders),
        receivers=tuple(receivers),
        valid_from=dt.datetime.fromtimestamp(start, dt.UTC),
        valid_until=None if length is None else dt.datetime.fromtimestamp(start + length, dt.UTC),
        report_types=tuple(draw(st.lists(st.sampled_from(ReportType), min_size=1, unique=True))),
        max_marking=draw(st.sampled_from(Marking)),
        handling_codes=tuple(handling_codes),
        h2_consent={k: tuple(v) for k, v in consent.items()},
        excluded_facets=tuple(draw(st.lists(st.sampled_from(Facet), unique=True))),
        field_rules={
            k: tuple(v)
            for k, v in draw(
                st.dictionaries(rule_keys, st.lists(_FIELD_RULES, max_size=3), max_size=3)
            ).items()
        },
    )


@st.composite
def agreement_sets(draw: st.DrawFn) -> list[Agreement]:
    """One to three agreements, with ids that sort in any order against their contents."""
    ids = draw(
        st.lists(
            st.sampled_from(["alpha-pact", "bravo-pact", "charlie-pact", "delta-pact"]),
            min_size=1,
            max_size=3,
            unique=True,
        )
    )
    return [draw(agreements(agreement_id)) for agreement_id in ids]
