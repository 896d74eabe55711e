"""Fuzz target: hostile bytes into the report decoder and the envelope parser.

Every input is tried four ways, as the broker would meet it:

1. ``SchemaCatalog.decode`` for the report schema, then validation as a report;
2. ``open_envelope``, and the report decoder again on the payload of any
   envelope that opens (the signature is not checked: the fuzzer cannot sign);
3. the pre-decode guard on the report body: whatever it lets through,
   fastavro must read to the end, raising at most a ``ValueError``;
4. ``read_sealed``, the first thing intake does with a record, and an open
   with a key of the fuzzer's own (it holds the key the seeds are sealed to,
   so a mutation may get as far as the AEAD).

A :class:`~broker.errors.RejectedInput` (and, for 3, an ``AvroGuardError``)
is an expected refusal; any other exception is a crash.

With atheris 3.0.0 installed (``pip install atheris==3.0.0``)::

    python fuzz/decode_verify.py --write-seeds fuzz/corpus
    python fuzz/decode_verify.py fuzz/corpus -atheris_runs=100000

Without it, the same ``test_one_input`` runs over random mutations of the
seed corpus built below, for a bounded number of iterations::

    python fuzz/decode_verify.py --iterations 20000 --seed 1

and a crashing input is written to ``crash-<sha256 prefix>`` in the
current directory before the exception propagates.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as dt
import hashlib
import importlib
import io
import random
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import fastavro

from broker.domain.report import ThreatReport
from broker.errors import RejectedInput
from broker.trust.envelopes import Signer, open_envelope
from broker.trust.records import KeyRecord, KeyRole
from broker.trust.sealing.envelope import Opener, read_sealed, seal
from broker.trust.sealing.keys import X25519, DecryptionKey, Keyring
from broker.trust.sealing.parties import BROKER_PARTY
from broker.trust.signatures import ED25519, SigningKey
from broker.wire.codec import HEADER_LEN, SchemaCatalog
from broker.wire.guard import AvroGuardError, check
from broker.wire.report import REPORT_SCHEMA, decode_report, encode_report

CATALOG = SchemaCatalog.load()
REPORT = CATALOG.schema(REPORT_SCHEMA)
SEALED_TOPIC = "ixb.submit.NL"
_PRIVATE = DecryptionKey.generate(X25519, prefix="broker-seal")
_READER = KeyRecord(
    key_id=_PRIVATE.key_id,
    role=KeyRole.BROKER,
    algorithm=X25519,
    public_key=_PRIVATE.public_key_b64(),
    not_before=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
)
OPENER = Opener(Keyring([_PRIVATE]), BROKER_PARTY)


def test_one_input(data: bytes) -> None:
    """One fuzz input; returns normally for any expected refusal."""
    with contextlib.suppress(RejectedInput):
        decode_report(CATALOG, data)
    with contextlib.suppress(RejectedInput):
        envelope = open_envelope(CATALOG, data)
        decode_report(CATALOG, envelope.payload)
    if data[:HEADER_LEN] == REPORT.header:
        _guarded_read(data[HEADER_LEN:])
    with contextlib.suppress(RejectedInput):
        OPENER.open(read_sealed(CATALOG, data), topic=SEALED_TOPIC)


def _guarded_read(body: bytes) -> None:
    """What the guard passes, fastavro reads to the end (a bad UUID may still fail)."""
    try:
        check(REPORT.parsed, body)
    except AvroGuardError:
        return
    stream = io.BytesIO(body)
    try:
        fastavro.schemaless_reader(stream, REPORT.parsed, None)
    except UnicodeDecodeError:
        raise
    except ValueError:
        return
    if stream.tell() != len(body):
        raise AssertionError("the guard and fastavro disagree on where the body ends")


# --- seed corpus -------------------------------------------------------------


def _report(**changes: Any) -> ThreatReport:
    fields: dict[str, Any] = {
        "report_id": uuid.UUID("5d1c1a52-8d0b-4b8e-9a43-0b8c6f4b2e11"),
        "issued_at": dt.datetime(2025, 3, 14, 9, 26, 53, tzinfo=dt.UTC),
        "observed_at": dt.datetime(2025, 3, 13, 22, 0, tzinfo=dt.UTC),
        "origin": "NL",
        "agency": "KMar",
        "report_type": "human_trafficking",
        "marking": "TLP:AMBER+STRICT",
        "handling_code": "H2",
        "source_reliability": "B",
        "information_credibility": 2,
        "title": "Van with concealed compartment at Hazeldonk",
        "summary": "Six persons found in a modified cargo space — één bestuurder.",
        "location": {
            "latitude": 51.4897,
            "longitude": 4.7631,
            "precision_m": 250,
            "country": "NL",
            "border_sector": "Zuid",
            "crossing_point": "Hazeldonk A16",
        },
        "subjects": [
            {
                "role": "facilitator",
                "full_name": "Jan Jansen",
                "date_of_birth": "1981-07-04",
                "nationality": "NL",
                "travel_documents": [
                    {"document_type": "passport", "number": "NX1234567", "issuing_country": "NL"},
                    {"document_type": "id_card", "number": "IDNL998877"},
                ],
            },
            {"role": "victim", "nationality": "ER"},
        ],
        "vehicles": [{"kind": "van", "registration": "VX-123-B", "flag": "BE"}],
        "indicators": [
            {"kind": "phone_number", "value": "+31600000000"},
            {"kind": "route", "value": "Antwerpen → Breda"},
        ],
        "related_report_ids": [uuid.UUID("0f6b2c36-8e61-4f0e-a2b8-7a0f5f3f0c9a")],
    }
    fields.update(changes)
    return ThreatReport.model_validate(fields)


def seed_corpus() -> list[bytes]:
    """Reports, full and minimal, bare and in signed envelopes."""
    full = encode_report(CATALOG, _report())
    minimal = encode_report(
        CATALOG,
        _report(summary=None, location=None, subjects=(), vehicles=(), indicators=()),
    )
    signer = Signer("NL-fuzz-1", SigningKey.generate(ED25519, prefix="NL"), CATALOG)
    signed = [signer.seal(full), signer.seal(minimal)]
    sealed = [seal(CATALOG, s, topic=SEALED_TOPIC, to=[_READER]) for s in signed]
    return [full, minimal, *signed, *sealed]


# --- the fallback when atheris is not installed --------------------------------

_INTERESTING = [b"\x00", b"\x01", b"\x02", b"\x7f", b"\x80", b"\xff", b"\xc3", b"\xed\xa0\x80"]
_HUGE = [b"\xfe\xff\xff\xff\xff\xff\xff\xff\x7f", b"\xff" * 11, b"\x01", b"\x80" * 5 + b"\x01"]


def mutate(data: bytes, corpus: list[bytes], rng: random.Random) -> bytes:
    """One to four random edits, mostly after the header so the schema is still found."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        low = 0 if rng.random() < 0.05 or len(out) <= HEADER_LEN else HEADER_LEN
        at = rng.randint(low, max(low, len(out)))
        edit = rng.randrange(7)
        if edit == 0 and at < len(out):
            out[at] ^= 1 << rng.randrange(8)
        elif edit == 1 and at < len(out):
            out[at] = rng.randrange(256)
        elif edit == 2:
            out[at:at] = rng.choice(_INTERESTING)
        elif edit == 3:
            out[at:at] = rng.choice(_HUGE)  # a huge or negative count, length or index
        elif edit == 4:
            del out[at : at + rng.randint(1, 16)]
        elif edit == 5:
            del out[at:]
        else:
            other = rng.choice(corpus)
            start = rng.randrange(len(other))
            out[at:at] = other[start : start + rng.randint(1, 64)]
    return bytes(out)


def run_without_atheris(iterations: int, seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 (reproducible mutations, not cryptography)
    corpus = seed_corpus()
    outcomes: collections.Counter[str] = collections.Counter()
    for _ in range(iterations):
        data = mutate(rng.choice(corpus), corpus, rng)
        try:
            test_one_input(data)
        except BaseException:
            crash = Path(f"crash-{hashlib.sha256(data).hexdigest()[:16]}")
            crash.write_bytes(data)
            print(f"crash: input written to {crash}", file=sys.stderr)
            raise
        outcomes[_outcome(data)] += 1
    print(f"{iterations} inputs, no crash; report decoder outcomes:")
    for outcome, count in outcomes.most_common():
        print(f"  {count:7d}  {outcome}")


def _outcome(data: bytes) -> str:
    try:
        decode_report(CATALOG, data)
    except RejectedInput as exc:
        return f"refused: {exc.reason}"
    return "accepted"


def _atheris() -> ModuleType | None:
    try:
        return importlib.import_module("atheris")
    except ModuleNotFoundError:
        return None


def main() -> None:
    if "--write-seeds" in sys.argv:
        folder = Path(sys.argv[sys.argv.index("--write-seeds") + 1])
        folder.mkdir(parents=True, exist_ok=True)
        for index, seed in enumerate(seed_corpus()):
            (folder / f"seed-{index}").write_bytes(seed)
        return
    atheris = _atheris()
    if atheris is not None:
        atheris.instrument_all()
        atheris.Setup(sys.argv, test_one_input)
        atheris.Fuzz()
        return
    parser = argparse.ArgumentParser(description="Fuzz the decoders without atheris.")
    parser.add_argument("--iterations", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    arguments, rest = parser.parse_known_args()
    iterations = arguments.iterations
    for option in rest:  # honour atheris's run count, ignore its other options
        if option.startswith("-atheris_runs="):
            iterations = int(option.partition("=")[2])
    run_without_atheris(iterations, arguments.seed)


if __name__ == "__main__":
    main()
