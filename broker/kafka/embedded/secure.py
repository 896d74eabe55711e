"""An embedded cluster secured as a deployment is: TLS, mTLS principals, the authorizer.

:class:`SecureCluster` keeps a PKI directory (:mod:`broker.trust.pki`): the
federation CA, the brokers' own certificate (principal ``User:kafka``) and
the bootstrap operator's (``User:operator``), both Kafka super users. The
embedded cluster administers itself as the operator; every other party
connects with a certificate ``ixb pki issue`` made and may do only what
``ixb acl apply`` granted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from broker.kafka.embedded.kraft import BrokerTls
from broker.kafka.security import ClientConfig, render_properties
from broker.trust.files import atomic_write
from broker.trust.identities import SUPER_USERS, Identity, Role
from broker.trust.pki import Pki


@dataclass(frozen=True, slots=True)
class SecureCluster:
    pki: Pki

    @classmethod
    def prepare(cls, directory: Path) -> SecureCluster:
        """The PKI in ``directory``; made with a CA and the super users' certificates."""
        pki = Pki(directory)
        if not pki.exists:
            pki.init()
        for identity in SUPER_USERS:
            files = pki.files(identity)
            if not (files.certificate.is_file() and files.key.is_file()):
                pki.issue(identity)
        return cls(pki)

    def broker_tls(self, workdir: Path) -> BrokerTls:
        """The brokers' files: Kafka's PEM keystore wants the key and the chain in one file."""
        files = self.pki.files(Identity(Role.KAFKA))
        keystore = workdir / "broker-keystore.pem"
        atomic_write(keystore, files.key.read_bytes() + files.certificate.read_bytes(), mode=0o600)
        return BrokerTls(
            truststore=self.pki.ca_certificate,
            keystore=keystore,
            super_users=tuple(i.principal for i in SUPER_USERS),
        )

    def write_client_config(self, identity: Identity, bootstrap: str) -> Path:
        """``clients/<name>.properties`` in the PKI directory (0600), for ``IXB_CLIENT_CONFIG``."""
        path = self.pki.directory / "clients" / f"{identity.name}.properties"
        text = render_properties(self.client_config(identity, bootstrap).properties())
        atomic_write(path, text.encode(), mode=0o600)
        return path

    def client_config(self, identity: Identity, bootstrap: str) -> ClientConfig:
        """How ``identity`` connects (its certificate must have been issued)."""
        files = self.pki.files(identity)
        return ClientConfig(
            bootstrap, ca=self.pki.ca_certificate, certificate=files.certificate, key=files.key
        )
