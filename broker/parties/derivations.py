"""What the broker says it derived, held to the rules of the agreement it names.

The broker attests every value it derives (a pseudonym, a coarser time or
place), so a broker holding its own key could replace a signed value (a
``title``) with anything, label it "derived" under some agreement, and the
recipient would show it as broker-attested. The recipient therefore checks
each derived field against the agreement the statement names, in the
agreements it trusts (:class:`AgreementSource`: its own copies of the
agreements it is party to, or the bundle archived under the statement's
hash), and refuses the delivery, by reason, when

=========================  =====================================================
reason                     ...
=========================  =====================================================
unknown_agreement          the named agreement (id and version) is not one the
                           recipient knows
agreement_not_covering     the named agreement does not cover this flow: origin to
                           recipient, the report's type, in force when decided
derivation_not_allowed     a field is said to be derived in a way no agreement
                           covering the flow prescribes for it, or less strictly
                           than the named agreement's own rule for it
derived_without_original   a derived value names no original digest: it replaces
                           nothing the originator signed
original_digest_reused     two derived values name the same original
rule_not_applied           a value the named agreement withholds or derives was
                           disclosed as the originator signed it
=========================  =====================================================

Where agreements overlap, every one that covers the flow may add rules and
the strictest rule per field applies (:func:`~broker.domain.rule_sets.effective_rules`,
the enforcer's own combination), so a derivation is accepted when some
covering agreement prescribes exactly it and it is at least as strict as
the named agreement's rule for that field. A stricter derivation gives the
recipient less, never more, than the named agreement grants.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from broker.domain.agreements import Agreement, FieldAction, FieldRule
from broker.domain.rule_sets import effective_rules
from broker.errors import DecodeError, VerificationError
from broker.policy.archive import load_archived_bundle
from broker.policy.bundle import agreement_files, parse_agreement_file
from broker.trust.sd.disclosure import Provenance
from broker.trust.sd.layout import abstract_path, covered
from broker.wire.codec import SchemaCatalog

__all__ = [
    "AgreementSource",
    "ArchivedAgreements",
    "Claim",
    "PartyAgreements",
    "check_derivations",
]

_STAGE = "derivation"


class AgreementSource(Protocol):
    """The agreements a recipient trusts to judge a statement decided under ``bundle_hash``."""

    def agreements(self, bundle_hash: str) -> Sequence[Agreement]: ...


class PartyAgreements:
    """The recipient's own copies of the agreements it is party to (the authority)."""

    __slots__ = ("_agreements",)

    def __init__(self, agreements: Iterable[Agreement]) -> None:
        self._agreements = tuple(agreements)

    @classmethod
    def from_directory(cls, directory: Path) -> PartyAgreements:
        """The agreement files (``*.yaml``) in ``directory``; ConfigurationError for a bad one."""
        return cls(parse_agreement_file(path) for path in agreement_files(directory))

    def agreements(self, bundle_hash: str) -> Sequence[Agreement]:
        return self._agreements


class ArchivedAgreements:
    """The agreements of the bundle archived under the statement's hash (``ixb.bundles``).

    An archive's hash is checked when it is loaded, so it is the bundle the
    broker decided with; but the broker made it, so for a recipient it
    proves consistency with the decision log, not the partners' consent:
    :class:`PartyAgreements` is the stronger source. An unknown or unloadable
    hash gives no agreements, so every derivation under it is refused.
    """

    __slots__ = ("_archives", "_catalog", "_loaded")

    def __init__(self, archives: Iterable[bytes], catalog: SchemaCatalog) -> None:
        self._archives = list(archives)
        self._catalog = catalog
        self._loaded: dict[str, tuple[Agreement, ...]] | None = None

    def agreements(self, bundle_hash: str) -> Sequence[Agreement]:
        if self._loaded is None:
            self._loaded = {}
            for data in self._archives:
                try:
                    bundle = load_archived_bundle(self._catalog, data)
                except (DecodeError, VerificationError):
                    continue  # a forged or broken archive names no agreement
                self._loaded.setdefault(bundle.content_hash, bundle.agreements)
        return self._loaded.get(bundle_hash, ())


@dataclass(frozen=True, slots=True)
class Claim:
    """What a delivery statement claims about its derivations, as the recipient read it."""

    agreement_id: str
    agreement_version: int
    bundle_hash: str
    origin: str
    recipient: str
    report_type: str
    decided_at: dt.datetime
    derived_fields: Sequence[tuple[str, str, str | None]]  # (field, action, to)
    derived_values: Sequence[Mapping[str, Any]]  # path, value, original_digest


def check_derivations(
    claim: Claim, source: AgreementSource, provenance: Mapping[str, Provenance]
) -> Agreement:
    """The named agreement, if the claim holds under it; VerificationError (table above).

    ``provenance`` marks every value of the rebuilt report signed or derived.
    """
    known = source.agreements(claim.bundle_hash)
    named = next(
        (a for a in known if (a.id, a.version) == (claim.agreement_id, claim.agreement_version)),
        None,
    )
    name = f"{claim.agreement_id} v{claim.agreement_version}"
    if named is None:
        raise _refused("unknown_agreement", f"agreement {name} is not one this recipient knows")
    if not _covers(named, claim):
        raise _refused(
            "agreement_not_covering",
            f"agreement {name} does not cover {claim.report_type} reports from "
            f"{claim.origin} to {claim.recipient} at the time decided",
        )
    own = {r.field: r for r in effective_rules(named.rules_for(claim.report_type)).rules}
    prescribed = _prescribed([a for a in known if _covers(a, claim)], claim.report_type)
    for field, action, to in claim.derived_fields:
        said = FieldRule(field=field, action=FieldAction(action), to=to)
        _check_field(said, own.get(field), prescribed.get(field, set()), name)
    _check_originals(claim.derived_values)
    _check_applied(own.values(), provenance, name)
    return named


def _covers(agreement: Agreement, claim: Claim) -> bool:
    senders, receivers = agreement.senders_and_receivers()
    in_force = agreement.valid_from <= claim.decided_at and (
        agreement.valid_until is None or claim.decided_at < agreement.valid_until
    )
    return (
        claim.origin in senders
        and claim.recipient in receivers
        and claim.report_type in agreement.report_types
        and in_force
    )


def _prescribed(
    agreements: Iterable[Agreement], report_type: str
) -> dict[str, set[tuple[FieldAction, str | None]]]:
    """Per field, every derivation some covering agreement prescribes."""
    found: dict[str, set[tuple[FieldAction, str | None]]] = {}
    for agreement in agreements:
        for rule in agreement.rules_for(report_type):
            if rule.field is not None and rule.action is not FieldAction.REDACT:
                found.setdefault(rule.field, set()).add((rule.action, rule.to))
    return found


def _check_field(
    said: FieldRule,
    own: FieldRule | None,
    prescribed: set[tuple[FieldAction, str | None]],
    name: str,
) -> None:
    how = f"{said.action.value}{f' to {said.to}' if said.to else ''}"
    if (said.action, said.to) not in prescribed:
        raise _refused(
            "derivation_not_allowed",
            f"{said.field} is said to be derived ({how}) under {name}, but no agreement "
            "covering this flow prescribes that for it",
        )
    if own is not None and effective_rules([own, said]).rules != (said,):
        raise _refused(
            "derivation_not_allowed",
            f"{said.field} is said to be derived ({how}), less strictly than {name} "
            f"requires ({own.action.value}{f' to {own.to}' if own.to else ''})",
        )


def _check_originals(values: Sequence[Mapping[str, Any]]) -> None:
    seen: set[bytes] = set()
    for value in values:
        digest = value["original_digest"]
        if digest is None:
            raise _refused(
                "derived_without_original",
                f"{value['path']}: a derived value that replaces nothing the originator signed",
            )
        if digest in seen:
            raise _refused(
                "original_digest_reused", f"{value['path']}: names an original already replaced"
            )
        seen.add(digest)


def _check_applied(
    rules: Iterable[FieldRule], provenance: Mapping[str, Provenance], name: str
) -> None:
    """No value a rule of the named agreement withholds or derives may come as signed."""
    for rule in rules:
        assert rule.field is not None  # effective rules are field rules
        patterns = {rule.field}
        for path, mark in provenance.items():
            if mark is Provenance.SIGNED and covered(abstract_path(path), patterns):
                raise _refused(
                    "rule_not_applied",
                    f"{path} came as the originator signed it, but {name} says to "
                    f"{rule.action.value} {rule.field}",
                )


def _refused(reason: str, detail: str) -> VerificationError:
    return VerificationError(reason, detail, stage=_STAGE)
