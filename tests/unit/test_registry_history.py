"""Registry versions archived as the enforcer used them; replays check signatures against them.

Measured before this change: a replay checked every signature against
today's registry, so a key revoked since (a compromise found later, the
revocation backdated) or dropped from the registry turned decisions that
were right when made into differences. Now every entry names the registry
version it was decided under, the enforcer archives that version before
anything decided under it is sent, and the replay takes it from the archive.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from broker.app.assembly import provision_keys
from broker.app.settings import Settings
from broker.auditlog.registry_archive import (
    RegistryArchiveWriter,
    RegistryHistory,
    decode_registry_archive,
    encode_registry_archive,
)
from broker.errors import DecodeError
from broker.trust.governance import content_hash, sign_document
from broker.trust.keystore import Keystore
from broker.trust.records import KeyRole, KeyUse, PartnerRegistry, RevocationReason
from broker.trust.registry_file import RegistryFile
from broker.wire.codec import SchemaCatalog
from tests.factories import make_report
from tests.support.replay import UNUSED_BOOTSTRAP, Recorder, write_agreement

T = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=1)


@pytest.fixture
def recorder(tmp_path: Path, catalog: SchemaCatalog, policies_dir: Path) -> Recorder:
    write_agreement(policies_dir)
    settings = Settings(
        home=tmp_path / "home",
        kafka_bootstrap=UNUSED_BOOTSTRAP,
        policies_dir=policies_dir,
        policy_check_interval_s=3600,
    )
    provision_keys(settings, ["NL", "BE", "DE"])
    return Recorder(settings, catalog, now=T)


def registry_file(recorder: Recorder) -> RegistryFile:
    settings = recorder.settings
    return RegistryFile(settings.registry_path, keystore=Keystore(settings.keystore_dir))


async def record_two_reports(recorder: Recorder) -> None:
    reports = [make_report("NL", issued_at=T - dt.timedelta(seconds=10)) for _ in range(2)]
    await recorder.batch([("NL", recorder.seal(r)) for r in reports])


def nl_key(registry: PartnerRegistry) -> str:
    [key] = [
        k.key_id
        for k in registry.records()
        if k.role is KeyRole.AGENCY and k.nation == "NL" and k.use is KeyUse.SIGNING
    ]
    return key


async def test_every_entry_names_the_registry_version_archived_with_its_batch(
    recorder: Recorder, catalog: SchemaCatalog
) -> None:
    await record_two_reports(recorder)

    [archived] = [decode_registry_archive(catalog, a) for a in recorder.registry_archives]
    document = registry_file(recorder).document()
    assert document is not None
    assert archived.content_hash == content_hash(document)
    assert {e.entry.event.registry_hash for e in recorder.entries} == {archived.content_hash}


async def test_a_key_revoked_since_with_a_backdated_time_still_replays_as_decided(
    recorder: Recorder,
) -> None:
    await record_two_reports(recorder)
    file = registry_file(recorder)
    registry = file.current()
    # A compromise found later: the key is revoked from before the decisions were made.
    file.save(
        registry.revoking(
            nl_key(registry), T - dt.timedelta(days=1), RevocationReason.KEY_COMPROMISE
        )
    )

    as_it_was = recorder.replayer().replay(recorder.entries, recorder.submissions)
    unarchived = recorder.replayer(registries=[]).replay(recorder.entries, recorder.submissions)

    assert as_it_was.ok, [(r.finding, r.differences) for r in as_it_was.findings]
    assert {r.finding for r in unarchived.replayed} == {"registry_not_archived"}


async def test_entries_written_without_a_registry_version_replay_against_todays_registry(
    recorder: Recorder,
) -> None:
    """What replays did before: today's registry makes the revoked key a false difference."""
    await record_two_reports(recorder)
    unnamed = [
        dataclasses.replace(
            e,
            entry=dataclasses.replace(
                e.entry, event=dataclasses.replace(e.entry.event, registry_hash=None)
            ),
        )
        for e in recorder.entries
    ]
    file = registry_file(recorder)
    registry = file.current()
    file.save(
        registry.revoking(
            nl_key(registry), T - dt.timedelta(days=1), RevocationReason.KEY_COMPROMISE
        )
    )

    result = recorder.replayer().replay(unnamed, recorder.submissions)

    assert {r.finding for r in result.replayed} == {"differs"}
    assert all(r.replayed is not None and r.replayed.outcome == "refused" for r in result.replayed)


def test_an_archive_whose_document_does_not_hash_as_claimed_is_refused(
    recorder: Recorder, catalog: SchemaCatalog
) -> None:
    document = registry_file(recorder).document()
    assert document is not None
    data = encode_registry_archive(catalog, document, None)
    record = catalog.decode(data, "ixb.v1.RegistryArchive")
    record["content_hash"] = "0" * 64

    with pytest.raises(DecodeError) as refused:
        decode_registry_archive(catalog, catalog.encode("ixb.v1.RegistryArchive", record))

    assert refused.value.reason == "registry_hash_mismatch"


def test_the_history_believes_a_governed_chain_and_not_a_version_other_keys_signed(
    recorder: Recorder, catalog: SchemaCatalog, tmp_path: Path
) -> None:
    file = registry_file(recorder)
    writer = RegistryArchiveWriter(catalog, "ixb.registry")
    archives = []
    for _ in range(2):  # two genuine versions, each signed by the governance before it
        document = file.document()
        assert document is not None
        archives.append(writer.record(document, content_hash(document)).value)
        keystore = Keystore(recorder.settings.keystore_dir)
        record, _ = keystore.generate(role=KeyRole.AGENCY, nation="FR")
        file.save(file.current().with_key(record))
    genuine = file.document()
    assert genuine is not None
    # A third version, signed by a governance key the chain never admitted.
    outsider = Keystore(tmp_path / "outsider")
    rogue, rogue_key = outsider.generate(role=KeyRole.GOVERNANCE, nation=None)
    rule = genuine.governance.model_copy(update={"key_ids": (rogue.key_id,)})
    forged = genuine.model_copy(
        update={
            "version": genuine.version + 1,
            "governance": rule,
            "keys": (*genuine.keys, rogue),
            "signatures": (),
        }
    )
    forged = sign_document(forged, [rogue_key])
    archives.append(writer.record(forged, content_hash(forged)).value)

    history = RegistryHistory(archives, catalog)

    assert len(history) == 2
    assert history.refused == {content_hash(forged): "registry_under_signed"}
    assert history.registry(content_hash(forged)) is None
