"""``ixb audit verify`` weighs checkpoints held outside the broker and the witnesses' cosignatures.

Measured before this change: whoever could write both ``ixb.audit`` and
``ixb.audit.checkpoints`` could delete every checkpoint (and edit or cut the
newest entries), or delete the newest checkpoints and cut the log back to
the previous one, and verify still passed. Each way is tried here against a
real log, real checkpoints signed by a registered broker key, and real
witnesses (broker/parties/witness.py).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from broker.auditlog.checkpoints import Checkpoint, checkpoint_verifier
from broker.auditlog.witnessed import WitnessKeys
from broker.auditor.verify import VerificationReport, verify_log
from broker.auditor.views import HeldCheckpoint
from broker.trust.note import parse_note
from broker.trust.tlog import add_checkpoint_body
from broker.wire.codec import SchemaCatalog
from tests.support.audit import LOG_ID, BuiltLog, build_log, edited
from tests.support.witnessing import Federation

ENTRIES = 64  # checkpoints at 20, 40, 60: four entries past the newest


@pytest.fixture
def federation(tmp_path: Path) -> Federation:
    return Federation(tmp_path)


@pytest.fixture
def built(catalog: SchemaCatalog, federation: Federation) -> BuiltLog:
    return build_log(catalog, federation.broker, ENTRIES, writers=3, every=20)


def cosigned(federation: Federation, checkpoint: Checkpoint, *nations: str) -> Checkpoint:
    """The checkpoint with the cosignatures of ``nations``' witnesses, each shown it first."""
    note = checkpoint.note
    for nation in nations:
        answer = federation.witnesses[nation].add_checkpoint(
            add_checkpoint_body(0, [], checkpoint.note)
        )
        assert answer.status == 200, answer
        note += answer.body
    return dataclasses.replace(checkpoint, note=note)


def held(checkpoint: Checkpoint, source: str = "witness BE") -> HeldCheckpoint:
    return HeldCheckpoint(
        checkpoint.tree_size, checkpoint.root_hash, parse_note(checkpoint.note), source
    )


def verify(
    catalog: SchemaCatalog,
    federation: Federation,
    records: list[tuple[int, bytes]],
    checkpoints: list[Checkpoint],
    *,
    held_elsewhere: tuple[HeldCheckpoint, ...] = (),
    quorum: int = 0,
) -> VerificationReport:
    return verify_log(
        LOG_ID,
        records,
        checkpoints,
        checkpoint_verifier(federation.registry),
        catalog=catalog,
        held=held_elsewhere,
        witnesses=WitnessKeys(federation.registry),
        quorum=quorum,
    )


def test_an_intact_log_says_how_many_entries_no_checkpoint_signs_yet_and_since_when(
    catalog: SchemaCatalog, federation: Federation, built: BuiltLog
) -> None:
    report = verify(catalog, federation, built.records, built.checkpoints)

    assert report.ok, report.problem
    assert (report.newest_size, report.unsigned) == (60, 4)
    entry = catalog.decode(built.values[60], "ixb.v1.AuditEntry")
    assert report.unsigned_since == entry["at"]


def test_deleting_every_checkpoint_no_longer_passes(
    catalog: SchemaCatalog, federation: Federation, built: BuiltLog
) -> None:
    report = verify(catalog, federation, built.records, [])

    assert report.problem is not None
    assert report.problem.reason == "no_checkpoint"
    assert f"{ENTRIES} entries" in report.problem.detail


def test_deleting_every_checkpoint_and_editing_the_newest_entries_no_longer_passes(
    catalog: SchemaCatalog, federation: Federation, built: BuiltLog
) -> None:
    values = list(built.values)
    values[-1] = edited(catalog, values[-1], lambda r: r.update(origin="XX"))

    report = verify(catalog, federation, list(enumerate(values)), [])

    assert report.problem is not None
    assert report.problem.reason == "no_checkpoint"


def test_cutting_the_log_back_to_the_previous_checkpoint_is_caught_by_a_checkpoint_held_elsewhere(
    catalog: SchemaCatalog, federation: Federation, built: BuiltLog
) -> None:
    newest = cosigned(federation, built.checkpoints[-1], "BE")
    cut = built.records[:40]

    unaided = verify(catalog, federation, cut, built.checkpoints[:2])
    aided = verify(catalog, federation, cut, built.checkpoints[:2], held_elsewhere=(held(newest),))

    assert unaided.ok  # the topics alone cannot show it: why checkpoints are held elsewhere
    assert aided.problem is not None
    assert aided.problem.reason == "checkpoint_beyond_log"
    assert "held from witness BE" in aided.problem.detail
    assert "entries 40..59 are gone" in aided.problem.detail


def test_editing_the_newest_entries_and_deleting_their_checkpoint_is_caught_by_a_held_one(
    catalog: SchemaCatalog, federation: Federation, built: BuiltLog
) -> None:
    values = built.values[:60]  # cut to the newest checkpoint, whose record is deleted
    values[59] = edited(catalog, values[59], lambda r: r.update(origin="XX"))  # no successor
    records = list(enumerate(values))

    unaided = verify(catalog, federation, records, built.checkpoints[:2])
    aided = verify(
        catalog,
        federation,
        records,
        built.checkpoints[:2],
        held_elsewhere=(held(built.checkpoints[-1], "audit-60.note"),),
    )

    assert unaided.ok  # the chains cannot see a writer's last entry edited
    assert (unaided.newest_size, unaided.unsigned) == (40, 20)
    assert aided.problem is not None
    assert aided.problem.reason == "checkpoint_root_mismatch"
    assert "held from audit-60.note" in aided.problem.detail


def test_a_quorum_is_met_by_enough_partners_witnesses_and_named(
    catalog: SchemaCatalog, federation: Federation, built: BuiltLog
) -> None:
    checkpoints = [*built.checkpoints[:2], cosigned(federation, built.checkpoints[2], "NL", "BE")]

    two = verify(catalog, federation, built.records, checkpoints, quorum=2)
    three = verify(catalog, federation, built.records, checkpoints, quorum=3)

    assert two.ok, two.problem
    assert (two.witnessed_size, two.cosigners) == (60, ("BE", "NL"))
    assert three.problem is not None
    assert three.problem.reason == "no_quorum"
    assert "by 2 (BE, NL)" in three.problem.detail


def test_cosignatures_on_separate_copies_of_one_checkpoint_add_up(
    catalog: SchemaCatalog, federation: Federation, built: BuiltLog
) -> None:
    newest = built.checkpoints[-1]
    by_nl = cosigned(federation, newest, "NL")
    by_be = cosigned(federation, newest, "BE")

    report = verify(catalog, federation, built.records, [by_nl, by_be], quorum=2)

    assert report.ok, report.problem
    assert report.cosigners == ("BE", "NL")


def test_a_broker_showing_two_logs_to_two_witnesses_gets_a_quorum_for_neither(
    catalog: SchemaCatalog, federation: Federation, built: BuiltLog
) -> None:
    other = build_log(catalog, federation.broker, ENTRIES, writers=2, every=20)  # its own chains
    shown_to_nl = cosigned(federation, built.checkpoints[-1], "NL")
    shown_to_be = cosigned(federation, other.checkpoints[-1], "BE")
    assert shown_to_nl.tree_size == shown_to_be.tree_size == 60
    assert shown_to_nl.root_hash != shown_to_be.root_hash

    # Each witness refuses the other's view: it does not extend what it cosigned.
    for nation, view in (("BE", shown_to_nl), ("NL", shown_to_be)):
        answer = federation.witnesses[nation].add_checkpoint(add_checkpoint_body(60, [], view.note))
        assert (answer.status, answer.reason) == (422, "inconsistent")

    log_a = verify(catalog, federation, built.records, [shown_to_nl], quorum=2)
    log_b = verify(catalog, federation, other.records, [shown_to_be], quorum=2)
    assert (log_a.problem and log_a.problem.reason, log_b.problem and log_b.problem.reason) == (
        "no_quorum",
        "no_quorum",
    )

    # An auditor holding both witnesses' latest checkpoints names the conflict.
    both = (held(shown_to_nl, "witness NL"), held(shown_to_be, "witness BE"))
    named = verify(catalog, federation, built.records, [shown_to_nl], held_elsewhere=both, quorum=2)
    assert named.problem is not None
    assert named.problem.reason == "split_view"
    assert "cosigned by BE" in named.problem.detail
    assert "cosigned by NL" in named.problem.detail
