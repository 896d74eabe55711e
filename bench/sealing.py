"""Seal and open cost per suite: ``python -m bench.sealing`` (also a phase of ``make bench``).

One thread, a 3 KiB payload (about a delivery statement with its proof), the
median of several runs of many calls each, in CPU time of the measuring
thread (so a busy machine slows the run, not the figures), through ixb's own code
(broker/trust/sealing/envelope.py) including the Avro envelope:

* ``seal/record``: a fresh content key per record, sealed with HPKE to one
  reader (what the enforcer does for each delivery);
* ``seal/batch``: one content key per reader for a whole batch, each record
  only AES-256-GCM with a fresh nonce (one encapsulation per recipient per
  batch);
* ``open/record`` and ``open/batch``: the recipient's side of each, the
  latter with the opener's cache of unsealed content keys;
* ``seal/submission``: what an agency pays per report (broker and its own
  data-protection authority as readers).

The figures decide whether the hot path needs per-batch encapsulation: the
enforcer's whole per-report budget at the measured throughput is about a
millisecond (README, "Performance").
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from broker.trust.records import KeyRecord, KeyRole
from broker.trust.sealing.envelope import ContentKey, Opener, read_sealed, seal
from broker.trust.sealing.keys import SEAL_ALGORITHMS, DecryptionKey, Keyring
from broker.wire.codec import SchemaCatalog

PAYLOAD = os.urandom(3 * 1024)
TOPIC = "ixb.deliver.BE"
RUNS = 5
CALLS = 400


def _per_call_us(work: Callable[[int], object], calls: int = CALLS) -> float:
    """CPU microseconds per call: this thread's CPU time, not the wall clock.

    On a machine shared with other work (here: two cores, several test runs)
    the wall clock measures the queue for a core as much as the cryptography.
    """
    timings = []
    for _ in range(RUNS):
        started = time.thread_time()
        for i in range(calls):
            work(i)
        timings.append((time.thread_time() - started) / calls * 1e6)
    return statistics.median(timings)


def _key(algorithm: str, role: KeyRole, nation: str | None) -> tuple[KeyRecord, DecryptionKey]:
    private = DecryptionKey.generate(algorithm, prefix=f"{nation or role.value}-seal")
    record = KeyRecord(
        key_id=private.key_id,
        role=role,
        nation=nation,
        algorithm=private.algorithm,
        public_key=private.public_key_b64(),
        not_before=dt.datetime.now(dt.UTC),
    )
    return record, private


def measure_suite(catalog: SchemaCatalog, algorithm: str) -> dict[str, float]:
    """Microseconds per call of each operation above, for ``algorithm``."""
    be, be_private = _key(algorithm, KeyRole.AGENCY, "BE")
    broker, _ = _key(algorithm, KeyRole.BROKER, None)
    auditor, _ = _key(algorithm, KeyRole.AUDITOR, "NL")
    batch = ContentKey(TOPIC, [be])
    per_record = [
        read_sealed(catalog, seal(catalog, PAYLOAD, topic=TOPIC, to=[be])) for _ in range(CALLS)
    ]
    per_batch = [read_sealed(catalog, batch.seal(catalog, PAYLOAD)) for _ in range(CALLS)]
    keyring = Keyring([be_private])

    def open_each(records: list[Any]) -> Callable[[int], object]:
        def work(i: int) -> object:
            return Opener(keyring, "BE").open(records[i], topic=TOPIC)  # no cache: a fresh opener

        return work

    shared = Opener(keyring, "BE")
    return {
        "seal_record_us": _per_call_us(lambda _: seal(catalog, PAYLOAD, topic=TOPIC, to=[be])),
        "seal_batch_us": _per_call_us(lambda _: batch.seal(catalog, PAYLOAD)),
        "open_record_us": _per_call_us(open_each(per_record)),
        "open_batch_us": _per_call_us(lambda i: shared.open(per_batch[i], topic=TOPIC)),
        "seal_submission_us": _per_call_us(
            lambda _: seal(catalog, PAYLOAD, topic="ixb.submit.NL", to=[broker, auditor])
        ),
        "sealed_overhead_bytes": float(
            len(seal(catalog, PAYLOAD, topic=TOPIC, to=[be])) - len(PAYLOAD)
        ),
    }


def measure(catalog: SchemaCatalog | None = None) -> dict[str, dict[str, float]]:
    catalog = catalog or SchemaCatalog.load()
    return {
        algorithm: {k: round(v, 1) for k, v in measure_suite(catalog, algorithm).items()}
        for algorithm in SEAL_ALGORITHMS
    }


def figures() -> dict[str, float]:
    """:func:`measure` flattened for bench-results.json: ``sealing_<suite>_<figure>``."""
    return {
        f"sealing_{algorithm.replace('-', '').replace('+', '_')}_{name}": value
        for algorithm, measured in measure().items()
        for name, value in measured.items()
    }


def main() -> None:
    for algorithm, figures in measure().items():
        print(
            f"{algorithm:>18}: seal {figures['seal_record_us']:6.1f} µs/record, "
            f"{figures['seal_batch_us']:5.1f} µs/record batched; "
            f"open {figures['open_record_us']:6.1f} µs/record, "
            f"{figures['open_batch_us']:5.1f} µs batched; "
            f"submission (2 readers) {figures['seal_submission_us']:6.1f} µs; "
            f"+{figures['sealed_overhead_bytes']:.0f} B"
        )


if __name__ == "__main__":
    main()
