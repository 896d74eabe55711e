"""Sign and verify cost per algorithm: ``python -m bench.signatures``.

One thread, a 1 KiB message (about a report), the median of several runs of
many calls each. ``verify`` reuses the parsed public key, as the broker does
(``broker.trust.signatures`` caches it); ``parse`` is the one-off cost of
reading a public key first seen.
"""

from __future__ import annotations

import base64
import datetime as dt
import statistics
import time
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA65PublicKey

from broker.trust.records import KeyRecord, KeyRole
from broker.trust.signatures import (
    ALGORITHMS,
    ED25519,
    ED25519_PUBLIC_BYTES,
    SigningKey,
    verify_signature,
)

MESSAGE = bytes(range(256)) * 4
RUNS = 5


def _per_call_us(work: Callable[[], object], calls: int) -> float:
    timings = []
    for _ in range(RUNS):
        started = time.perf_counter()
        for _ in range(calls):
            work()
        timings.append((time.perf_counter() - started) / calls * 1e6)
    return statistics.median(timings)


def _measure(algorithm: str) -> str:
    key = SigningKey.generate(algorithm, prefix="NL")
    record = KeyRecord(
        key_id=key.key_id,
        role=KeyRole.AGENCY,
        nation="NL",
        algorithm=key.algorithm,
        public_key=key.public_key_b64(),
        not_before=dt.datetime.now(dt.UTC),
    )
    raw = base64.b64decode(record.public_key)
    signature = key.sign(MESSAGE)

    def parse() -> None:
        Ed25519PublicKey.from_public_bytes(raw[:ED25519_PUBLIC_BYTES])
        if algorithm != ED25519:
            MLDSA65PublicKey.from_public_bytes(raw[ED25519_PUBLIC_BYTES:])

    calls = 2000 if algorithm == ED25519 else 300
    sign = _per_call_us(lambda: key.sign(MESSAGE), calls)
    verify = _per_call_us(lambda: verify_signature(record, signature, MESSAGE), calls)
    parsed = _per_call_us(parse, calls)
    return (
        f"{algorithm:>18}: sign {sign:7.1f} µs  verify {verify:7.1f} µs  "
        f"parse key {parsed:6.1f} µs  signature {len(signature)} B"
    )


def main() -> None:
    for algorithm in ALGORITHMS:
        print(_measure(algorithm))


if __name__ == "__main__":
    main()
