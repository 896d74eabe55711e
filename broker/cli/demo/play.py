"""``make demo``: seven nations, four agreements, a few dozen reports, end to end.

Starts the embedded broker (unless IXB_KAFKA_BOOTSTRAP points at a real
one), generates keys into a throw-away home, runs one enforcer, publishes
the scenario from every nation plus three reports that must not get through
(one no agreement allows, one tampered in transit, one signed by a
neighbour's key), then reads and verifies every nation's feed. Last, it
dumps the topics as the Kafka operator could (ciphertext: no published title
is found in any record) and copies a delivery onto another nation's topic,
where it opens for no one (broker/cli/demo/sealing.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import secrets
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from broker.app import logs
from broker.app.assembly import (
    load_catalog,
    open_publisher,
    provision_keys,
    resolve_bootstrap,
    signer_for,
)
from broker.app.enforcer_process import run_enforcer
from broker.app.settings import Settings
from broker.cli.console import print_json_line
from broker.cli.demo.access import show_kafka_refusal
from broker.cli.demo.console_demo import demo_password, print_console_hint, serve_demo_console
from broker.cli.demo.scenario import NATIONS, build
from broker.cli.demo.sealing import show_moved_delivery, show_operator_view
from broker.cli.demo.taxii import show_taxii
from broker.cli.render import print_delivery, print_rejection, rejection_json
from broker.domain.report import ThreatReport
from broker.enforcer.processor import EnforcerStats
from broker.enforcer.stages.fanout import HELD_SCHEMA
from broker.errors import IxbError
from broker.kafka.admin import TopicAdmin
from broker.kafka.embedded import SecureCluster, embedded_broker, group_session_timeout_ms
from broker.kafka.reader import read_topic
from broker.parties.recipient import FeedProblem, VerifiedDelivery, read_feed
from broker.trust.attestation import open_attested
from broker.trust.identities import Identity, Role
from broker.trust.keystore import Keystore
from broker.trust.records import KeyRole
from broker.trust.registry_file import RegistryFile
from broker.trust.sd.layout import ReportLayout
from broker.trust.sd.statement import DELIVERY_SCHEMA
from broker.trust.sd.submission import seal_submission
from broker.trust.sealing.envelope import SEALED_SCHEMA, Opener, read_sealed
from broker.trust.sealing.parties import BROKER_PARTY
from broker.trust.sealing.routes import sealed_submission
from broker.wire.codec import SchemaCatalog
from broker.wire.records import OutboundRecord
from broker.wire.report import report_to_record
from broker.wire.topics import TopicNames

PROCESS_TIMEOUT_S = 60.0


def run_demo(
    settings: Settings,
    console: Console,
    *,
    as_json: bool = False,
    console_port: int | None = None,
) -> int:
    """Play the scenario, telling it on ``console``; with ``as_json`` the summary goes to stdout.

    The summary (what each nation received, and the totals) is JSON Lines on
    stdout with ``as_json``; otherwise a table on a terminal and one
    tab-separated line per nation when piped. With ``console_port`` the
    scenario stays up afterwards with the browser console on it, until
    Ctrl-C (broker/cli/demo/console_demo.py); without, it ends by saying
    how to serve that, and a login to try.
    """
    logs.configure(level="ERROR")
    started = time.monotonic()
    try:
        password = demo_password(settings.home)  # before the run's own, temporary home
        with (
            tempfile.TemporaryDirectory(prefix="ixb-demo-") as home,
            _kafka(settings, console, pki=Path(home) / "pki") as (bootstrap, idempotence, operator),
        ):
            demo_settings = settings.model_copy(
                update={
                    "home": Path(home),
                    "pki_dir": Path(home) / "pki",
                    "topic_namespace": f"demo-{secrets.token_hex(3)}",
                    "consumer_session_timeout_ms": group_session_timeout_ms(
                        embedded=not settings.kafka_bootstrap
                    ),
                    "kafka_idempotence": settings.kafka_idempotence and idempotence,
                }
            )
            ok = asyncio.run(
                _scenario(demo_settings, bootstrap, console, as_json=as_json, operator=operator)
            )
            if ok and console_port is not None:
                asyncio.run(
                    serve_demo_console(
                        demo_settings, bootstrap, console, password=password, port=console_port
                    )
                )
    except IxbError as exc:
        console.print(f"[red]demo failed:[/red] {exc}")
        return 1
    console.print(f"\n[dim]demo finished in {time.monotonic() - started:.1f}s[/dim]")
    if ok and console_port is None:
        print_console_hint(console, password)
    return 0 if ok else 1


@contextlib.contextmanager
def _kafka(
    settings: Settings, console: Console, *, pki: Path
) -> Iterator[tuple[str, bool, Path | None]]:
    """The bootstrap, whether its broker serves idempotent producers, and the operator's config.

    The embedded Apache Kafka is secured as a deployment is (TLS, mTLS
    principals, the authorizer), its CA and super users' certificates made
    in ``pki``; this process speaks as its operator. The operator's client
    configuration is None for Tansu (no TLS) and for a cluster of the
    user's own (IXB_CLIENT_CONFIG's identity is bound).
    """
    if settings.kafka_bootstrap:
        console.print(
            f"using Kafka at [bold]{settings.kafka_bootstrap}[/bold] (IXB_KAFKA_BOOTSTRAP)"
        )
        yield resolve_bootstrap(settings), True, None
        return
    started = time.monotonic()
    secure = SecureCluster.prepare(pki) if settings.kafka_engine == "kafka" else None
    broker = embedded_broker(
        settings.kafka_engine, cache=settings.engine_cache, say=console.print, secure=secure
    )
    with broker:
        console.print(
            f"{broker.description} on [bold]{broker.bootstrap}[/bold] "
            f"[dim](started in {time.monotonic() - started:.1f}s)[/dim]"
        )
        operator = (
            None
            if secure is None
            else secure.write_client_config(Identity(Role.OPERATOR), broker.bootstrap)
        )
        yield broker.bootstrap, broker.idempotence, operator


async def _scenario(
    settings: Settings, bootstrap: str, console: Console, *, as_json: bool, operator: Path | None
) -> bool:
    registry = provision_keys(settings, list(NATIONS))
    console.print(f"registered {len(registry)} keys: the broker and {', '.join(NATIONS)}")

    # The submission topics first: the enforcer's pattern subscription then
    # sees them at once, not at its next metadata refresh (up to 5 s later).
    admin = TopicAdmin(bootstrap)
    await admin.start()
    try:
        await admin.ensure(TopicNames(settings.topic_namespace).submit(n) for n in NATIONS)
    finally:
        await admin.close()
    stats = EnforcerStats()
    stop, ready = asyncio.Event(), asyncio.Event()
    enforcer = asyncio.create_task(
        run_enforcer(settings, bootstrap, stop, started=ready, stats=stats)
    )
    await asyncio.wait_for(ready.wait(), timeout=30)

    scenario = build()
    published: dict[str, str] = {}  # report id -> title
    for nation, reports in scenario.reports.items():
        async with open_publisher(settings, bootstrap, nation) as publisher:
            await publisher.publish(reports)
            published.update({str(r.report_id): r.title for r in reports})
    async with open_publisher(settings, bootstrap, "NL") as publisher:
        await publisher.publish([scenario.unshareable])
        published[str(scenario.unshareable.report_id)] = scenario.unshareable.title
        tampered = publisher.seal(
            scenario.reports["NL"][0].model_copy(update={"report_id": uuid.uuid4()})
        )
        await publisher.send_sealed([_alter_a_value(load_catalog(settings), tampered)])
    async with open_publisher(settings, bootstrap, "BE") as publisher:
        await publisher.publish([scenario.embargoed])
    await _publish_impostor(settings, bootstrap, scenario.reports["NL"][1])
    total = sum(len(r) for r in scenario.reports.values()) + 4
    console.print(
        f"published {total} reports: {total - 4} scenario reports, one no agreement allows, "
        "one under a two-hour embargo, one tampered in transit, "
        "one signed with BE's key but claiming to be from NL"
    )

    deadline = time.monotonic() + PROCESS_TIMEOUT_S
    while stats.completed < total and time.monotonic() < deadline and not enforcer.done():  # noqa: ASYNC110 - polls counters, not an event
        await asyncio.sleep(0.1)
    stop.set()
    await enforcer
    if stats.completed < total:
        console.print(
            f"[red]enforcer processed only {stats.completed} of {total} submissions[/red]"
        )
        return False

    delivered_ids, received = await _show_feeds(settings, bootstrap, console, as_json=as_json)
    await _show_rejections(settings, bootstrap, console)
    nowhere = [title for rid, title in published.items() if rid not in delivered_ids]
    console.rule("[bold]Delivered to no one")
    for title in nowhere:
        console.print(f"  {title}")
    await _show_held(
        settings,
        bootstrap,
        console,
        published_titles={str(scenario.embargoed.report_id): scenario.embargoed.title},
    )
    topics = TopicNames(settings.topic_namespace)
    opaque = await show_operator_view(console, bootstrap, topics, NATIONS, published.values())
    moved_refused = await show_moved_delivery(
        console,
        bootstrap,
        topics=topics,
        catalog=load_catalog(settings),
        keystore=Keystore(settings.keystore_dir),
        registry=RegistryFile(settings.registry_path),
        sender="NL",
        recipient="BE",
        other="DE",
    )
    if as_json:
        print_json_line(
            {
                "submissions": stats.submissions,
                "deliveries": stats.deliveries,
                "held": stats.held,
                "withheld": dict(stats.withheld),
                "rejected": dict(stats.rejected),
                "delivered_to_no_one": len(nowhere),
            }
        )
    console.print(
        f"\n[bold]{stats.submissions}[/bold] submissions, "
        f"[bold]{stats.deliveries}[/bold] deliveries, "
        f"[bold]{stats.held}[/bold] held under embargo (ixb.held), "
        f"withheld by policy: {dict(stats.withheld.most_common(4))}, "
        f"rejected: {dict(stats.rejected)}"
    )
    over_taxii = await show_taxii(
        settings, bootstrap, console, nation="BE", other="NL", expected=received["BE"]
    )
    kafka_refused = await show_kafka_refusal(
        settings,
        bootstrap,
        console,
        operator_config=operator,
        nation="BE",
        other="NL",
        expected=received["BE"],
    )
    return (
        bool(delivered_ids)
        and kafka_refused
        and bool(stats.rejected)
        and bool(nowhere)
        and stats.held == 1
        and over_taxii
        and opaque
        and moved_refused
    )


SUMMARY_COLUMNS = ("nation", "reports", "from", "agreements", "withheld", "derived by the broker")


async def _show_feeds(
    settings: Settings, bootstrap: str, console: Console, *, as_json: bool
) -> tuple[set[str], Counter[str]]:
    """Print every nation's verified feed; the report ids delivered, and how many per nation."""
    catalog = load_catalog(settings)
    registry = RegistryFile(settings.registry_path)
    delivered: set[str] = set()
    counts: Counter[str] = Counter()
    rows: list[dict[str, Any]] = []
    for nation in NATIONS:
        console.rule(f"[bold]{nation}[/bold] inbound feed")
        received: list[VerifiedDelivery] = []
        async for item in read_feed(
            bootstrap=bootstrap,
            topics=TopicNames(settings.topic_namespace),
            nation=nation,
            catalog=catalog,
            registry=registry.current,
            keys=Keystore(settings.keystore_dir),
            idle_timeout_s=1.0,
        ):
            if isinstance(item, FeedProblem):
                console.print(f"[red]unverified delivery:[/red] {item.reason}")
                continue
            received.append(item)
            delivered.add(str(item.report.report_id))
        for delivery in received[:3]:
            print_delivery(console, delivery)
        if len(received) > 3:
            console.print(f"  [dim]... and {len(received) - 3} more[/dim]")
        counts[nation] = len(received)
        origins = Counter(d.origin for d in received)
        withheld = sorted({f for d in received for f in d.withheld_fields})
        derived = sorted({f"{x.field}: {x.describe()}" for d in received for x in d.derived_fields})
        rows.append(
            {
                "nation": nation,
                "reports": len(received),
                "from": dict(sorted(origins.items())),
                "agreements": sorted({d.agreement_id for d in received}),
                "withheld": withheld,
                "derived": derived,
            }
        )
    _print_summary(console, rows, as_json=as_json)
    return delivered, counts


def _print_summary(console: Console, rows: list[dict[str, Any]], *, as_json: bool) -> None:
    """JSON Lines, a table on a terminal, or one tab-separated line per nation when piped."""
    if as_json:
        for row in rows:
            print_json_line(row)
        return
    cells = [
        (
            row["nation"],
            str(row["reports"]),
            ", ".join(f"{o}×{c}" for o, c in row["from"].items()),
            ", ".join(row["agreements"]),
            row["withheld"],
            row["derived"],
        )
        for row in rows
    ]
    if not console.is_terminal:
        console.print("\t".join(SUMMARY_COLUMNS), markup=False)
        for *plain, withheld, derived in cells:
            line = [*plain, "; ".join(withheld) or "-", "; ".join(derived) or "-"]
            console.print("\t".join(line), markup=False)
        return
    summary = Table(title="What each nation received (verified)")
    for column in SUMMARY_COLUMNS:
        summary.add_column(column)
    for *plain, withheld, derived in cells:
        summary.add_row(*plain, "\n".join(withheld) or "-", "\n".join(derived) or "-")
    console.print(summary)


async def _show_held(
    settings: Settings, bootstrap: str, console: Console, *, published_titles: dict[str, str]
) -> None:
    """What waits on the held topic, and until when (released by a running enforcer).

    Held deliveries are sealed to the broker: this is the broker's view, opened with its key.
    """
    catalog = load_catalog(settings)
    console.rule("[bold]Held under embargo[/bold] (ixb.held, opened with the broker's key)")
    topics = TopicNames(settings.topic_namespace)
    broker = Opener(Keystore(settings.keystore_dir), BROKER_PARTY)
    async for record in read_topic(bootstrap, topics.held, idle_timeout_s=0.5):
        opened = broker.open(read_sealed(catalog, record.value or b""), topic=record.topic)
        held = catalog.decode(opened, HELD_SCHEMA)
        asked = json.loads(held["decision_input"])
        statement = catalog.decode(open_attested(catalog, held["value"]).payload, DELIVERY_SCHEMA)
        report_id = str(statement["report_id"])
        console.print(
            f"  {escape(published_titles.get(report_id, report_id))}: "
            f"{asked['origin']} → {asked['recipient']} not before "
            f"{held['not_before'].isoformat(timespec='seconds')} under {held['agreement_id']}"
        )


async def _show_rejections(settings: Settings, bootstrap: str, console: Console) -> None:
    catalog = load_catalog(settings)
    topics = TopicNames(settings.topic_namespace)
    console.rule("[bold]Refused at intake[/bold] (ixb.rejected.<ORIGIN>)")
    for nation in NATIONS:
        async for record in read_topic(bootstrap, topics.rejected(nation), idle_timeout_s=0.5):
            console.print(f"  [bold]{nation}[/bold]:", end=" ")
            print_rejection(console, rejection_json(catalog, record.value or b""))


async def _publish_impostor(
    settings: Settings, bootstrap: str, report_from_nl: ThreatReport
) -> None:
    """BE's key signs a report claiming to come from NL and sends it on BE's topic."""
    catalog = load_catalog(settings)
    be_signer = signer_for(settings, catalog, role=KeyRole.AGENCY, nation="BE")
    forged = report_from_nl.model_copy(update={"report_id": uuid.uuid4()})
    topic = TopicNames(settings.topic_namespace).submit("BE")
    signed = seal_submission(
        catalog, ReportLayout.from_catalog(catalog), be_signer, report_to_record(forged)
    )
    registry = RegistryFile(settings.registry_path).current()
    sealed = sealed_submission(
        catalog, registry, signed, topic=topic, origin="BE", at=dt.datetime.now(dt.UTC)
    )
    record = OutboundRecord(topic=topic, key=str(forged.report_id).encode(), value=sealed)
    async with open_publisher(settings, bootstrap, "BE") as publisher:
        await publisher.send_sealed([record])


def _alter_a_value(catalog: SchemaCatalog, record: OutboundRecord) -> OutboundRecord:
    """Change a byte on its way, as a man in the middle would: he cannot read what he changes,
    and the sealed record no longer opens."""
    sealed = catalog.decode(record.value, SEALED_SCHEMA)
    ciphertext = bytearray(sealed["ciphertext"])
    ciphertext[len(ciphertext) // 2] ^= 0x01
    sealed["ciphertext"] = bytes(ciphertext)
    altered = catalog.encode(SEALED_SCHEMA, sealed)
    return OutboundRecord(record.topic, record.key, altered, record.headers)
