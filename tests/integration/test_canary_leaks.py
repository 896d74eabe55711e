"""No withheld value leaks: canaries in every string field, searched for in every output.

NL publishes one valid report with a unique canary in every string field
(nation codes and UUIDs excepted: a valid report needs them as they are),
plus three refused submissions: a tampered copy of it, a report whose every
string field (nation codes too) is a canary and which fails validation, and
a truncated submission. The agreements say:

* BE gets the report with ``summary``, travel document numbers and
  indicators redacted, and names pseudonymised (``canary-nl-be``);
* FR gets it with names, document numbers and vehicles redacted, under a
  two-day embargo, so it waits on ``ixb.held`` (``canary-nl-fr``);
* DE is refused: its agreement does not cover smuggling (``canary-nl-de``).

Everything is sealed (issue 17): no canary appears in the raw bytes of any
record of any topic of the namespace, the submission topics included (found
by listing the cluster's topics, so a new output topic is covered the day it
appears), which is all the Kafka cluster's operator can read. Opened with
the one key each is sealed to, and only with it:

* ``ixb.deliver.BE``, with BE's key: exactly the values the NL-BE agreement
  lets through; no other party's key opens it;
* ``ixb.held``, with the broker's key: exactly the values the NL-FR
  agreement lets through, inside FR's delivery (the only held one;
  ``ixb.deliver.FR`` is empty until release);
* ``ixb.rejected.NL``: a refusal carries the original submission as NL sent
  it, sealed (nothing is lost, it can be re-driven); reason, detail, stage,
  key and headers carry no canary.

Nowhere else: not in the audit export, not in any log event (captured for
the enforcer's whole life, including shutdown), not in ``/metrics``, not in
any problem a reader reports. Exception messages reach the outside only as
a rejection's reason and detail (``str(exc)`` is exactly ``reason:
detail``) and in logs, both searched.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from broker.app.assembly import provision_keys
from broker.app.auditing import audit_source
from broker.app.settings import Settings
from broker.auditor.export import write_jsonl
from broker.auditor.use_cases import sign_checkpoints, verify_audit
from broker.domain.report import COUNTRY_CODE_FIELDS
from broker.enforcer.stages.fanout import HELD_SCHEMA
from broker.enforcer.stages.rejections import REJECTION_SCHEMA
from broker.errors import RejectedInput
from broker.kafka.admin import TopicAdmin
from broker.kafka.reader import read_topic
from broker.parties.recipient import FeedProblem, VerifiedDelivery
from broker.trust.keystore import Keystore
from broker.trust.records import KeyUse
from broker.trust.registry_file import RegistryFile
from broker.trust.sealing.envelope import Opener, read_sealed
from broker.trust.sealing.keys import DecryptionKey, Keyring
from broker.trust.sealing.parties import BROKER_PARTY, label_of
from broker.wire.codec import SchemaCatalog
from broker.wire.records import InboundRecord, OutboundRecord
from broker.wire.report import REPORT_SCHEMA, record_to_report, report_to_record
from broker.wire.topics import TopicNames
from tests.factories import make_report
from tests.integration.conftest import Exchange, enforcer, make_settings
from tests.support.canaries import Canaries, abstract, string_paths
from tests.support.probes import http_get
from tests.support.submissions import resealed, seal_record, tamper_signed_payload

pytestmark = pytest.mark.integration

AGREEMENTS = {
    "canary-nl-be": """
id: canary-nl-be
version: 1
title: Canary NL-BE
purpose: leak test
parties: [NL, BE]
valid_from: 2020-01-01T00:00:00Z
report_types: [smuggling]
max_marking: TLP:AMBER
field_rules:
  "*":
    - {field: summary, action: redact}
    - {field: "subjects[].full_name", action: pseudonymise}
    - {field: "subjects[].travel_documents[].number", action: redact}
    - {field: "indicators[].value", action: redact}
    - {field: location, action: generalise, to: 0.1deg}
""",
    "canary-nl-fr": """
id: canary-nl-fr
version: 1
title: Canary NL-FR
purpose: leak test
parties: [NL, FR]
valid_from: 2020-01-01T00:00:00Z
report_types: [smuggling]
max_marking: TLP:AMBER
field_rules:
  "*":
    - {field: "subjects[].full_name", action: redact}
    - {field: "subjects[].travel_documents[].number", action: redact}
    - {field: "vehicles[].registration", action: redact}
    - {field: "vehicles[].description", action: redact}
    - {action: embargo, after: 2d}
""",
    "canary-nl-de": """
id: canary-nl-de
version: 1
title: Canary NL-DE
purpose: leak test
parties: [NL, DE]
valid_from: 2020-01-01T00:00:00Z
report_types: [terrorism]
max_marking: TLP:AMBER
""",
}

# Who may see each string field of the valid report, by the agreements above.
SHARED_WITH: dict[str, set[str]] = {
    "agency": {"BE", "FR"},
    "title": {"BE", "FR"},
    "summary": {"FR"},
    "location.border_sector": {"BE", "FR"},
    "location.crossing_point": {"FR"},  # BE's location generalisation drops it
    "subjects[].full_name": set(),  # pseudonymised for BE, redacted for FR
    "subjects[].travel_documents[].number": set(),
    "vehicles[].registration": {"BE"},
    "vehicles[].description": {"BE"},
    "indicators[].value": {"FR"},
}


def is_nation_code(path: str) -> bool:
    return path.rsplit(".", 1)[-1] in COUNTRY_CODE_FIELDS


@dataclass(frozen=True, slots=True)
class Running:
    exchange: Exchange
    port: int


@contextlib.asynccontextmanager
async def observed_enforcer(settings: Settings) -> AsyncIterator[Running]:
    listening: asyncio.Future[tuple[str, int]] = asyncio.get_running_loop().create_future()
    async with enforcer(settings, on_listening=listening.set_result) as exchange:
        _, port = listening.result()  # told before started: no wait
        yield Running(exchange, port)


def party_keyrings(settings: Settings) -> dict[str, Keyring]:
    """Each party's own private sealing keys, by party label (``BE``, ``broker``, ...)."""
    keystore = Keystore(settings.keystore_dir)
    rings: dict[str, list[DecryptionKey]] = {}
    for key in RegistryFile(settings.registry_path).current().records():
        private = keystore.decryption_key(key.key_id) if key.use is KeyUse.SEALING else None
        if private is not None:
            rings.setdefault(label_of(key), []).append(private)
    return {party: Keyring(keys) for party, keys in rings.items()}


def opened(
    catalog: SchemaCatalog, record: InboundRecord, keyrings: dict[str, Keyring], party: str
) -> bytes:
    """The record's sealed value opened by ``party`` alone, for the topic it was read on."""
    sealed = read_sealed(catalog, record.value or b"")
    return Opener(keyrings[party], party).open(sealed, topic=record.topic)


def record_bytes(record: InboundRecord) -> bytes:
    """Everything a reader of the record gets: key, value and headers."""
    headers = b"".join(name.encode() + value for name, value in record.headers)
    return (record.key or b"") + b"\x00" + (record.value or b"") + b"\x00" + headers


async def read_namespace(bootstrap: str, topics: TopicNames) -> dict[str, list[InboundRecord]]:
    """Every record of every topic in the namespace, by topic."""
    admin = TopicAdmin(bootstrap)
    await admin.start()
    try:
        names = sorted(t for t in await admin.topics() if t.startswith(f"{topics.namespace}."))
    finally:
        await admin.close()
    return {
        name: [r async for r in read_topic(bootstrap, name, idle_timeout_s=2.0)] for name in names
    }


async def test_no_canary_reaches_an_output_its_agreement_does_not_allow(
    tmp_path: Path, kafka_bootstrap: str, policies_dir: Path
) -> None:
    for name, text in AGREEMENTS.items():
        (policies_dir / "agreements" / f"{name}.yaml").write_text(text)
    settings = make_settings(tmp_path, kafka_bootstrap, policies_dir)
    provision_keys(settings, ["NL", "BE", "FR", "DE"])  # a recipient needs its sealing key
    topics = TopicNames(settings.topic_namespace)
    admin = TopicAdmin(kafka_bootstrap)
    await admin.start()
    await admin.ensure([topics.submit("NL"), topics.held])
    await admin.close()

    catalog = SchemaCatalog.load()
    schema = catalog.schema(REPORT_SCHEMA).parsed
    shared = Canaries()  # the valid report's, decided on by the agreements
    refused = Canaries()  # the refused submissions' own
    valid = shared.plant(schema, report_to_record(make_report("NL")), skip=is_nation_code)
    record_to_report(valid)  # it is valid: the broker accepts it
    planted = {abstract(p) for p in shared.paths.values()}
    assert (
        planted == set(SHARED_WITH) == {p for p in string_paths(schema) if not is_nation_code(p)}
    ), "every string field of the schema is planted, and classified above"
    # Every string but the origin (which would be refused before validation, as a mismatch).
    invalid = refused.plant(schema, report_to_record(make_report("NL")), skip="origin".__eq__)
    assert {abstract(p) for p in refused.paths.values()} == string_paths(schema) - {"origin"}
    truncated = refused.plant(schema, report_to_record(make_report("NL")), skip=is_nation_code)

    submit = topics.submit("NL")
    sealed = seal_record(settings, catalog, valid, key_nation="NL")
    submissions = [
        OutboundRecord(submit, str(valid["report_id"]).encode(), sealed),
        resealed(
            settings,
            catalog,
            OutboundRecord(submit, b"tampered", sealed),
            lambda signed: tamper_signed_payload(catalog, signed),
        ),
        OutboundRecord(
            submit, b"invalid", seal_record(settings, catalog, invalid, key_nation="NL")
        ),
        OutboundRecord(
            submit, b"truncated", seal_record(settings, catalog, truncated, key_nation="NL")[:-40]
        ),
    ]

    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as captured:
        async with observed_enforcer(settings) as running:
            exchange = running.exchange
            await exchange.publish("NL", submissions)
            await exchange.wait_completed(len(submissions))
            status, metrics = await http_get(running.port, "/metrics")
            feeds = {n: await exchange.feed(n) for n in ("BE", "FR", "DE")}
            await sign_checkpoints(audit_source(settings), Keystore(settings.keystore_dir))
            outputs = await read_namespace(kafka_bootstrap, topics)
            _, audit_logs = await verify_audit(audit_source(settings))

    assert status == 200
    everything = shared.paths.keys() | refused.paths.keys()
    seen_anywhere: set[str] = set()

    def leaked(data: bytes | str) -> set[str]:
        """The canaries in ``data`` (searched as raw bytes), remembered as seen."""
        raw = data.encode() if isinstance(data, str) else data
        found = {t for t in everything if t.encode() in raw}
        seen_anywhere.update(found)
        return found

    # The raw bytes of every record of every topic, what the Kafka operator reads.
    for topic, records in outputs.items():
        assert [leaked(record_bytes(r)) for r in records] == [set()] * len(records), topic
    assert seen_anywhere == set()

    # Recipients' topics, opened each with the one key it is sealed to.
    keyring = party_keyrings(settings)
    for_be = shared.tokens_at({p for p, who in SHARED_WITH.items() if "BE" in who})
    for_fr = shared.tokens_at({p for p, who in SHARED_WITH.items() if "FR" in who})
    [be_delivery] = outputs.pop(topics.deliver("BE"))
    assert leaked(opened(catalog, be_delivery, keyring, "BE")) == for_be
    for other in sorted(keyring.keys() - {"BE"}):
        with pytest.raises(RejectedInput):
            opened(catalog, be_delivery, keyring, other)
    [held] = outputs.pop(topics.held)
    held_record = catalog.decode(opened(catalog, held, keyring, BROKER_PARTY), HELD_SCHEMA)
    assert held_record["topic"] == topics.deliver("FR")
    assert leaked(held_record["value"]) == for_fr
    assert outputs.pop(topics.deliver("FR"), []) == []  # under embargo
    assert outputs.pop(topics.deliver("DE"), []) == []  # refused

    # The origin's rejected topic: its own bytes, verbatim, and nothing else.
    reasons, originals = [], set()
    for record in outputs.pop(topics.rejected("NL")):
        rejection = catalog.decode(record.value or b"", REJECTION_SCHEMA)
        reasons.append(rejection["reason"])
        originals.add(rejection.pop("original_value"))
        assert leaked(repr(rejection)) == set(), rejection["reason"]
        assert leaked((record.key or b"") + b"".join(v for _, v in record.headers)) == set()
    assert sorted(reasons) == ["bad_signature", "invalid_report", "truncated"]
    assert originals == {s.value for s in submissions[1:]}, "exactly the sealed bytes NL sent"
    assert outputs[topics.submit("NL")], "the inputs were read too"
    assert outputs[topics.accepted], "the ledger was read"
    assert outputs[topics.audit], "the decision log was read"
    assert outputs[topics.audit_checkpoints], "checkpoints were signed and read"

    export = io.StringIO()
    for log_id, entries in audit_logs.items():
        write_jsonl(export, catalog, log_id, entries)
    assert export.getvalue()
    assert leaked(export.getvalue()) == set()

    assert captured, "capture_logs caught nothing: is structlog caching its loggers?"
    assert {e["event"]: leaked(repr(e)) for e in captured if leaked(repr(e))} == {}
    assert leaked(metrics) == set()
    problems = [i for items in feeds.values() for i in items if isinstance(i, FeedProblem)]
    assert problems == []
    [delivered] = [i for i in feeds["BE"] if isinstance(i, VerifiedDelivery)]
    assert leaked(repr(delivered.report)) == for_be  # all BE may see, and nothing else
    assert feeds["FR"] == feeds["DE"] == []
    assert seen_anywhere == for_be | for_fr, "no canary of any refused submission was seen"
