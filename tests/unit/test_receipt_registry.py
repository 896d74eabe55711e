"""A receipt carries the registry version its entry names, so a key rotated away still verifies.

The holder believes the carried version only if it is the one the entry
names and the holder's own governance signed it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from broker.app.assembly import provision_keys
from broker.app.settings import Settings
from broker.auditlog.checkpoints import Checkpointer, checkpoint_verifier
from broker.auditlog.entries import AuditWriter
from broker.auditlog.receipt_registry import registry_for_receipt, with_registry
from broker.auditlog.receipts import (
    Receipt,
    receipt,
    receipt_from_json,
    receipt_to_json,
    verify_receipt,
)
from broker.errors import VerificationError
from broker.trust.governance import content_hash, sign_document
from broker.trust.keystore import Keystore
from broker.trust.records import KeyRole, PartnerRegistry
from broker.trust.registry_file import RegistryFile
from broker.wire.codec import SchemaCatalog
from tests.support.audit import LOG_ID, event


@pytest.fixture
def home(tmp_path: Path) -> Settings:
    settings = Settings(home=tmp_path / "home", kafka_bootstrap="127.0.0.1:1")
    provision_keys(settings, ["NL", "BE"])
    return settings


def issued(settings: Settings, catalog: SchemaCatalog) -> tuple[Receipt, RegistryFile]:
    """A receipt for entry 2 of a log whose entries name the current registry version.

    Its checkpoint is stamped now, after the keys were made: an instant taken
    when the module was imported may come before the broker key's window.
    """
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    file = RegistryFile(settings.registry_path, keystore=Keystore(settings.keystore_dir))
    document = file.document()
    assert document is not None
    keystore = Keystore(settings.keystore_dir)
    broker = keystore.newest_usable(file.current(), role=KeyRole.BROKER, nation=None)
    checkpointer = Checkpointer(LOG_ID, keystore.private_key(broker.key_id), lambda: now)
    writer = AuditWriter(catalog, "w")
    values = [
        writer.entry(dataclasses.replace(event(i, now), registry_hash=content_hash(document)))
        for i in range(4)
    ]
    checkpointer.extend(enumerate(values))
    made = receipt(checkpointer.log, 2, checkpointer.checkpoint(), entry=values[2])
    return with_registry(made, document), file


def drop_broker_key(file: RegistryFile) -> None:
    current = file.current()
    kept = [k for k in current.records() if k.role is not KeyRole.BROKER]
    file.save(PartnerRegistry(kept, governance=current.governance, version=current.version))


def check(held: Receipt, file: RegistryFile, catalog: SchemaCatalog) -> None:
    registry = registry_for_receipt(
        held, None, catalog=catalog, holder=file.document(), current=file.current()
    )
    verify_receipt(held, None, checkpoint_verifier(registry))


def test_a_receipt_verifies_after_its_broker_key_left_the_registry(
    home: Settings, catalog: SchemaCatalog
) -> None:
    made, file = issued(home, catalog)
    drop_broker_key(file)
    held = receipt_from_json(receipt_to_json(made))

    check(held, file, catalog)  # with the version it carries
    with pytest.raises(VerificationError) as without:
        verify_receipt(held, None, checkpoint_verifier(file.current()))
    assert without.value.reason == "checkpoint_signature"
    assert "unknown_key" in without.value.detail


def test_a_carried_registry_the_holders_governance_did_not_sign_adds_nothing(
    home: Settings, catalog: SchemaCatalog, tmp_path: Path
) -> None:
    made, file = issued(home, catalog)
    drop_broker_key(file)
    carried = file.document()
    assert carried is not None
    outsider, key = Keystore(tmp_path / "outsider").generate(role=KeyRole.GOVERNANCE, nation=None)
    forged = sign_document(
        carried.model_copy(
            update={
                "keys": (*carried.keys, outsider),
                "governance": carried.governance.model_copy(update={"key_ids": (outsider.key_id,)}),
                "signatures": (),
            }
        ),
        [key],
    )
    held = with_registry(made, forged)

    with pytest.raises(VerificationError) as refused:
        check(held, file, catalog)

    assert refused.value.reason == "checkpoint_signature"
    assert "unknown_key" in refused.value.detail
