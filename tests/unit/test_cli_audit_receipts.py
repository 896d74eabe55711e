"""`ixb audit check-receipt`: a recipient verifies a receipt offline, from it and the registry.

The broker key is a real one, generated into a fresh home and registered
there, as ``ixb keys generate --broker`` does; no Kafka is involved.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from broker.app.assembly import provision_keys
from broker.app.settings import Settings
from broker.auditlog.checkpoints import Checkpointer
from broker.auditlog.entries import AuditWriter
from broker.auditlog.receipts import receipt, receipt_to_json
from broker.cli.audit import audit_app
from broker.trust.keystore import Keystore
from broker.trust.records import KeyRole
from broker.trust.registry_file import RegistryFile
from broker.wire.codec import SchemaCatalog
from tests.support.audit import LOG_ID, SteppingClock, event

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    provision_keys(Settings(home=home), [])
    return home


@pytest.fixture
def document(home: Path, catalog: SchemaCatalog) -> dict[str, Any]:
    """A self-contained receipt for entry 5 of 12, under a checkpoint by the home's broker key."""
    settings = Settings(home=home)
    keystore = Keystore(settings.keystore_dir)
    registry = RegistryFile(settings.registry_path).current()
    record = keystore.newest_usable(registry, role=KeyRole.BROKER, nation=None)
    # signed while the key is valid: it was generated just now
    signed_at = SteppingClock(record.not_before + dt.timedelta(seconds=1))
    checkpointer = Checkpointer(LOG_ID, keystore.private_key(record.key_id), signed_at)
    writer = AuditWriter(catalog, "enforcer-1")
    values = [writer.entry(event(n)) for n in range(12)]
    checkpointer.extend(enumerate(values))
    issued = receipt(checkpointer.log, 6, checkpointer.checkpoint(), entry=values[6])
    return receipt_to_json(issued)


def _check(home: Path, tmp_path: Path, document: dict[str, Any]) -> Result:
    path = tmp_path / "receipt.json"
    path.write_text(json.dumps(document))
    return runner.invoke(
        audit_app, ["check-receipt", str(path)], env={"IXB_HOME": str(home), "COLUMNS": "300"}
    )


def _flip_hex(value: str) -> str:
    return format(int(value[0], 16) ^ 1, "x") + value[1:]


def test_a_self_contained_receipt_verifies_offline_and_says_what_the_entry_records(
    home: Path, tmp_path: Path, document: dict[str, Any]
) -> None:
    result = _check(home, tmp_path, document)

    assert result.exit_code == 0, result.output
    assert f"ok: entry 6 of {LOG_ID} is under the checkpoint of size 12" in result.output
    assert "delivered: DE -> FR, delivery 14ac577cdb2ef6d986078b4054cc9893" in result.output


def test_a_receipt_with_one_flipped_byte_fails_naming_the_entry_the_proof_or_the_checkpoint(
    home: Path, tmp_path: Path, document: dict[str, Any]
) -> None:
    entry = bytearray(base64.b64decode(document["entry"]))
    entry[-1] ^= 0x01
    tampered_entry = document | {"entry": base64.b64encode(bytes(entry)).decode()}
    path = list(document["audit_path"])
    path[0] = _flip_hex(path[0])
    tampered_proof = document | {"audit_path": path}
    signed = document["checkpoint"]
    tampered_checkpoint = document | {
        "checkpoint": signed | {"root_hash": _flip_hex(signed["root_hash"])}
    }

    named = {}
    for what, tampered in [
        ("entry", tampered_entry),
        ("proof", tampered_proof),
        ("checkpoint", tampered_checkpoint),
    ]:
        result = _check(home, tmp_path, tampered)
        assert result.exit_code == 1, (what, result.output)
        named[what] = result.output.split(":")[1].strip()

    assert named == {
        "entry": "receipt_entry_mismatch",
        "proof": "receipt_inclusion",
        "checkpoint": "checkpoint_signature",
    }


def test_a_file_that_is_not_a_receipt_is_refused_as_malformed(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "receipt.json"
    path.write_text("{not json")

    result = runner.invoke(
        audit_app, ["check-receipt", str(path)], env={"IXB_HOME": str(home), "COLUMNS": "300"}
    )

    assert result.exit_code == 1
    assert "malformed_receipt" in result.output
