"""Settings into witnesses: a partner's witness, and the broker's collection of cosignatures.

``ixb witness --nation BE`` runs :func:`build_witness` behind the tlog-witness
HTTP server (broker/parties/witness_http.py); ``ixb run`` gives its checkpoint
publisher a :func:`cosigner_for` the witnesses listed in ``IXB_WITNESSES``.
Both read the partner registry as it is at each request: a broker key
rotated in, or a witness key added, counts at once.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

from broker.app.settings import Settings
from broker.auditlog.checkpoints import broker_note_keys
from broker.auditlog.witness_client import WitnessClient
from broker.auditlog.witnessed import WitnessKeys
from broker.enforcer.runtime.cosigning import Cosigner
from broker.kafka.base import BatchProducer
from broker.parties.witness import Witness
from broker.parties.witness_state import WitnessState
from broker.trust.keystore import Keystore
from broker.trust.note import SIG_COSIGNATURE_V1, vkey
from broker.trust.records import KeyRole
from broker.trust.registry_file import RegistryFile
from broker.trust.signatures import SigningKey
from broker.wire.codec import SchemaCatalog
from broker.wire.topics import TopicNames

__all__ = ["build_witness", "cosigner_for", "known_origins", "witness_key", "witness_vkey"]


def known_origins(settings: Settings) -> Callable[[str], bool]:
    """Whether an origin is a partition of this deployment's decision log."""
    audit = TopicNames(settings.topic_namespace).audit
    pattern = re.compile(re.escape(f"{settings.log_origin}/{audit}/") + r"(0|[1-9][0-9]{0,9})")
    return lambda origin: pattern.fullmatch(origin) is not None


def witness_key(settings: Settings, nation: str) -> SigningKey:
    """This home's newest usable witness key for ``nation`` (ConfigurationError if none)."""
    keystore = Keystore(settings.keystore_dir)
    registry = RegistryFile(settings.registry_path).current()
    record = keystore.newest_usable(registry, role=KeyRole.WITNESS, nation=nation)
    return keystore.private_key(record.key_id)


def witness_vkey(key: SigningKey) -> str:
    """The witness's C2SP verifier key (cosignature/v1), for other tools' configuration."""
    return vkey(key.key_id, SIG_COSIGNATURE_V1, key.ed25519_public_key())


def build_witness(settings: Settings, nation: str) -> Witness:
    """``nation``'s witness: its key, its state under the home, the registry's broker keys."""
    registry = RegistryFile(settings.registry_path)
    return Witness(
        witness_key(settings, nation),
        WitnessState(settings.witness_dir(nation)),
        known_origin=known_origins(settings),
        log_keys=lambda: broker_note_keys(registry.current()),
        clock=lambda: dt.datetime.now(dt.UTC),
    )


def cosigner_for(
    settings: Settings, producer: BatchProducer, catalog: SchemaCatalog
) -> Cosigner | None:
    """The broker's collector of cosignatures, or None when no witness is configured."""
    if not settings.witness_urls:
        return None
    registry = RegistryFile(settings.registry_path)
    return Cosigner(
        witnesses=[
            WitnessClient(u, timeout_s=settings.witness_timeout_s) for u in settings.witness_urls
        ],
        witness_keys=lambda: WitnessKeys(registry.current()),
        producer=producer,
        catalog=catalog,
        topics=TopicNames(settings.topic_namespace),
    )
