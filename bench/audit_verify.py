"""How fast ``ixb audit verify`` checks a log: ``python -m bench.audit_verify [--entries N]``.

Builds a log as the enforcer will write it (four writers taking turns, a
signed Ed25519 checkpoint every 1000 entries, by the real AuditWriter and
Checkpointer), then verifies it with the real verifier and prints the rate.
No Kafka: the records are held in memory, so this is the verifier's own cost.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

from broker.auditlog.checkpoints import (
    Checkpoint,
    Checkpointer,
    checkpoint_verifier,
    encode_checkpoint,
    log_id_of,
)
from broker.auditlog.entries import AuditEvent, AuditWriter, Outcome, SubmissionRef
from broker.auditor.verify import verify_log
from broker.trust.records import KeyRecord, KeyRole, PartnerRegistry
from broker.trust.signatures import ED25519, SigningKey
from broker.wire.codec import SchemaCatalog

WRITERS = 4
CHECKPOINT_EVERY = 1000
LOG_ID = log_id_of("ixb.audit", 0)


def _event(number: int, at: dt.datetime) -> AuditEvent:
    """A delivered entry as fan-out writes it: the usual and the largest kind."""
    digest = number.to_bytes(32, "big")
    return AuditEvent(
        Outcome.DELIVERED,
        at=at,
        origin="NL",
        recipient="BE",
        report_id=f"00000000-0000-4000-8000-{number:012d}",
        submission=SubmissionRef("ixb.submit.NL", number % 6, number, digest),
        delivery_id=digest.hex()[:32],
        delivery_sha256=digest,
        agreement_id="schengen-frontier-cooperation",
        agreement_version=2,
        policy_bundle_hash="sha256:" + "ab" * 32,
        withheld_fields=("subjects[].travel_documents[].number",),
        derived_fields=("location", "subjects[].date_of_birth"),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=100_000)
    entries = parser.parse_args().entries
    catalog = SchemaCatalog.load()
    signer = SigningKey.generate(ED25519, prefix="bench-audit")
    now = dt.datetime.now(dt.UTC)
    record = KeyRecord(
        key_id=signer.key_id,
        role=KeyRole.BROKER,
        public_key=signer.public_key_b64(),
        not_before=now - dt.timedelta(days=1),
    )
    writers = [AuditWriter(catalog) for _ in range(WRITERS)]
    checkpointer = Checkpointer(
        LOG_ID, signer, lambda: now, every_entries=CHECKPOINT_EVERY, every_s=3600
    )

    started = time.perf_counter()
    records: list[tuple[int, bytes]] = []
    checkpoints: list[Checkpoint] = []
    for number in range(entries):
        value = writers[number % WRITERS].entry(_event(number, now))
        records.append((number, value))
        checkpoint = checkpointer.append(number, value)
        if checkpoint is not None:
            checkpoints.append(checkpoint)
    encoded = [encode_checkpoint(catalog, c) for c in checkpoints]
    built_s = time.perf_counter() - started

    verify = checkpoint_verifier(PartnerRegistry([record]))
    started = time.perf_counter()
    report = verify_log(LOG_ID, records, encoded, verify, catalog=catalog)
    verify_s = time.perf_counter() - started

    assert report.ok, report.problem
    size = sum(len(v) for _, v in records)
    print(
        f"built {entries} entries ({size / entries:.0f} B each) and {len(checkpoints)} "
        f"checkpoints in {built_s:.2f} s ({entries / built_s:,.0f} entries/s)"
    )
    print(
        f"verified {report.entries} entries, {report.checkpoints} checkpoints, "
        f"{report.consistency_steps} consistency steps in {verify_s:.2f} s "
        f"({report.entries / verify_s:,.0f} entries/s)"
    )


if __name__ == "__main__":
    main()
