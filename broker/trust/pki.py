"""The federation's certificate authority and each party's TLS certificate (``ixb pki``).

Transport is TLS everywhere and a party is authenticated by its
certificate (mTLS): national PKIs already issue certificates to agencies
and officials, a certificate proves possession of a key without any shared
secret crossing the wire or living on the brokers (SCRAM verifiers are
password-derived and sit in the cluster metadata), and revoking one party
is a matter of its ACLs and its certificate, not of every password. The
subject's CN is the Kafka principal (:mod:`broker.trust.identities`).

Files, under one directory (``<home>/pki`` by default)::

    ca.pem              the federation CA certificate (public: every party gets it)
    ca.key              its private key (0600; the operator's, kept offline in production)
    parties/<name>.pem  a party's certificate followed by the CA's (the chain)
    parties/<name>.key  its private key, PKCS #8 PEM (0600)

Keys are ECDSA P-256, which Java's TLS, OpenSSL and librdkafka all take
from PEM. Made with cryptography's x509 builder, no ``openssl`` shell-outs.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from broker.errors import ConfigurationError
from broker.trust.files import atomic_write
from broker.trust.identities import Identity

ORGANISATION = "ixb federation"
CA_VALID = dt.timedelta(days=3650)
PARTY_VALID = dt.timedelta(days=397)  # the CA/Browser Forum's ceiling, a habit worth keeping
DEFAULT_SANS = ("localhost", "127.0.0.1")


@dataclass(frozen=True, slots=True)
class PartyFiles:
    """Where one party's certificate chain and key are."""

    certificate: Path
    key: Path


class Pki:
    """A PKI directory: the CA, and the certificates it issued."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def ca_certificate(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def exists(self) -> bool:
        return self.ca_certificate.is_file() and self.ca_key.is_file()

    def files(self, identity: Identity) -> PartyFiles:
        parties = self.directory / "parties"
        return PartyFiles(parties / f"{identity.name}.pem", parties / f"{identity.name}.key")

    def init(self, *, name: str = "ixb federation CA", now: dt.datetime | None = None) -> None:
        """Make the CA; refuse if one is there (a new CA would orphan every certificate)."""
        if self.ca_certificate.exists() or self.ca_key.exists():
            raise ConfigurationError(f"a CA already exists in {self.directory}")
        now = now or dt.datetime.now(dt.UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANISATION),
                x509.NameAttribute(NameOID.COMMON_NAME, name),
            ]
        )
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + CA_VALID)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        atomic_write(self.ca_key, _private_pem(key), mode=0o600)
        atomic_write(self.ca_certificate, certificate.public_bytes(_PEM), mode=0o644)

    def issue(
        self,
        identity: Identity,
        *,
        sans: Sequence[str] = DEFAULT_SANS,
        now: dt.datetime | None = None,
        valid: dt.timedelta = PARTY_VALID,
        into: PartyFiles | None = None,
    ) -> PartyFiles:
        """A new key and certificate for ``identity``, signed by the CA; where they were written.

        Written to ``into`` if given (credentials handed to a party), else
        to :meth:`files` (replacing what was there). Every certificate
        serves as client and as server (the brokers' own is both); ``sans``
        are the host names and addresses a server answers on. A revoked
        identity gets none: its name stays refused (pick another to reinstate).
        """
        if identity in self.revoked():
            raise ConfigurationError(f"{identity.name} is revoked; no certificate is issued to it")
        ca_certificate, ca_key = self._authority()
        now = now or dt.datetime.now(dt.UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANISATION),
                        x509.NameAttribute(NameOID.COMMON_NAME, identity.name),
                    ]
                )
            )
            .issuer_name(ca_certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(min(now + valid, ca_certificate.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
                ),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName([_san(s) for s in sans]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
            .sign(ca_key, hashes.SHA256())
        )
        files = into or self.files(identity)
        atomic_write(files.key, _private_pem(key), mode=0o600)
        chain = certificate.public_bytes(_PEM) + ca_certificate.public_bytes(_PEM)
        atomic_write(files.certificate, chain, mode=0o644)
        return files

    @property
    def revocations(self) -> Path:
        return self.directory / "revoked.json"

    def revoked(self) -> frozenset[Identity]:
        """The identities whose credentials were revoked (``ixb credentials revoke``)."""
        try:
            names = json.loads(self.revocations.read_text())
        except FileNotFoundError:
            return frozenset()
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"cannot read {self.revocations}: {exc}") from exc
        return frozenset(Identity.parse(name) for name in names)

    def revoke(self, identity: Identity) -> None:
        """Record ``identity`` as revoked, and delete its key from this directory.

        What bites is the ACL plan: a revoked identity gets no grant and an
        explicit DENY (broker.trust.acls), applied with ``ixb acl apply``.
        """
        names = sorted({i.name for i in self.revoked()} | {identity.name})
        atomic_write(self.revocations, json.dumps(names, indent=1).encode() + b"\n", mode=0o644)
        self.files(identity).key.unlink(missing_ok=True)

    def _authority(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        if not self.exists:
            raise ConfigurationError(f"no CA in {self.directory}: run `ixb pki init` first")
        certificate = x509.load_pem_x509_certificate(self.ca_certificate.read_bytes())
        key = serialization.load_pem_private_key(self.ca_key.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ConfigurationError(f"{self.ca_key} is not an ECDSA key")
        return certificate, key


_PEM = serialization.Encoding.PEM


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(_PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _san(text: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(text))
    except ValueError:
        return x509.DNSName(text)
