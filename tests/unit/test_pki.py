"""The federation CA and the parties' certificates: what they say, and who may read the keys."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from broker.errors import ConfigurationError
from broker.trust.identities import PRINCIPAL_MAPPING_RULE, Identity, Role
from broker.trust.pki import Pki


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_ca_key_and_every_party_key_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    pki = Pki(tmp_path / "pki")
    pki.init()
    files = pki.issue(Identity(Role.ANALYST, "BE"))
    assert _mode(pki.ca_key) == 0o600
    assert _mode(files.key) == 0o600


def test_a_party_certificate_names_its_principal_and_chains_to_the_ca(tmp_path: Path) -> None:
    pki = Pki(tmp_path)
    pki.init()
    files = pki.issue(Identity(Role.AGENCY, "NL"), sans=["kafka-1", "10.0.0.7"])
    leaf, ca = x509.load_pem_x509_certificates(files.certificate.read_bytes())
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "NL.agency"
    assert leaf.issuer == ca.subject
    ca.public_key().verify(  # type: ignore[union-attr, call-arg]
        leaf.signature,
        leaf.tbs_certificate_bytes,
        ec.ECDSA(leaf.signature_hash_algorithm),  # type: ignore[arg-type]
    )
    usage = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in usage
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["kafka-1"]
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert leaf.not_valid_after_utc <= dt.datetime.now(dt.UTC) + dt.timedelta(days=398)


def test_a_second_ca_is_refused_so_no_certificate_is_orphaned(tmp_path: Path) -> None:
    pki = Pki(tmp_path)
    pki.init()
    with pytest.raises(ConfigurationError, match="already exists"):
        pki.init()


def test_no_certificate_is_issued_without_a_ca(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="ixb pki init"):
        Pki(tmp_path).issue(Identity(Role.OPERATOR))


def test_a_revoked_identity_loses_its_key_and_gets_no_new_certificate(tmp_path: Path) -> None:
    pki = Pki(tmp_path)
    pki.init()
    files = pki.issue(Identity(Role.ANALYST, "BE"))
    pki.revoke(Identity(Role.ANALYST, "BE"))
    assert not files.key.exists()
    assert pki.revoked() == {Identity(Role.ANALYST, "BE")}
    with pytest.raises(ConfigurationError, match="revoked"):
        pki.issue(Identity(Role.ANALYST, "BE"))


@pytest.mark.parametrize(
    ("role", "nation", "name"),
    [
        (Role.AGENCY, "BE", "BE.agency"),
        (Role.AUDITOR, "NL", "NL.auditor"),
        (Role.ENFORCER, None, "enforcer"),
        (Role.OVERSIGHT, None, "oversight"),
    ],
)
def test_an_identity_and_its_name_round_trip(role: Role, nation: str | None, name: str) -> None:
    identity = Identity(role, nation)
    assert identity.name == name
    assert Identity.parse(name) == identity
    assert identity.principal == f"User:{name}"


@pytest.mark.parametrize(
    ("role", "nation"),
    [(Role.ANALYST, None), (Role.ENFORCER, "BE"), (Role.AGENCY, "be"), (Role.AGENCY, "BEL")],
)
def test_a_national_role_needs_a_nation_and_no_other_role_has_one(
    role: Role, nation: str | None
) -> None:
    with pytest.raises(ConfigurationError):
        Identity(role, nation)


def test_the_mapping_rule_takes_the_cn_as_kafka_would() -> None:
    """Kafka applies the rule's regex to the RFC 2253 subject: CN first, as ixb writes it."""
    import re

    body = PRINCIPAL_MAPPING_RULE.removeprefix("RULE:").split("/")[0]
    assert re.fullmatch(body, "CN=BE.analyst,O=ixb federation")
    assert re.fullmatch(body, "CN=BE.analyst")
    match = re.fullmatch(body, "CN=BE.analyst,O=ixb federation")
    assert match is not None
    assert match.group(1) == "BE.analyst"
