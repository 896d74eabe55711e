"""The demo's look at sealing: what an operator dumping topics sees, and a moved delivery.

Everything ixb puts on Kafka that carries a value is sealed (issue 17): the
Kafka operator can read every record and sees ciphertext. And a delivery
copied onto another nation's topic, as someone with write access could,
opens for no one there, not even with its recipient's key.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Console

from broker.errors import RejectedInput
from broker.kafka.admin import TopicAdmin
from broker.kafka.producer import OutputProducer
from broker.kafka.reader import read_topic
from broker.parties.recipient import FeedProblem, read_feed
from broker.trust.keystore import Keystore
from broker.trust.registry_file import RegistryFile
from broker.trust.sealing.envelope import Opener, read_sealed
from broker.wire.codec import SchemaCatalog
from broker.wire.records import InboundRecord, OutboundRecord
from broker.wire.topics import TopicNames


async def show_operator_view(
    console: Console,
    bootstrap: str,
    topics: TopicNames,
    nations: Iterable[str],
    secrets: Iterable[str],
) -> bool:
    """Dump every submit, delivery and held topic as an operator would; True if no secret shows.

    ``secrets`` are plain values the scenario published (report titles):
    each is searched for in the raw bytes of every record.
    """
    console.rule("[bold]What the Kafka operator sees[/bold] (raw bytes of every record)")
    names = [*(topics.submit(n) for n in nations), *(topics.deliver(n) for n in nations)]
    records: list[InboundRecord] = []
    for name in [*names, topics.held]:
        records += [r async for r in read_topic(bootstrap, name, idle_timeout_s=0.5)]
    wanted = [s.encode() for s in secrets if s]
    found = sum(1 for r in records for s in wanted if s in (r.value or b""))
    sample = next((r for r in records if r.topic == topics.submit("NL")), None)
    if sample is not None and sample.value:
        console.print(
            f"  {sample.topic} offset {sample.offset}: {len(sample.value)} bytes, "
            f"begins {sample.value[:40].hex()}…"
        )
    console.print(
        f"  {len(records)} records on {len(names) + 1} topics searched for "
        f"{len(wanted)} published titles: [bold]{found}[/bold] found"
    )
    return bool(records) and found == 0


async def show_moved_delivery(
    console: Console,
    bootstrap: str,
    *,
    topics: TopicNames,
    catalog: SchemaCatalog,
    keystore: Keystore,
    registry: RegistryFile,
    sender: str,
    recipient: str,
    other: str,
) -> bool:
    """Copy one of ``recipient``'s deliveries onto ``other``'s topic; True if it opens for none."""
    console.rule(f"[bold]A delivery moved[/bold] from {recipient}'s topic to {other}'s")
    delivered = [
        r async for r in read_topic(bootstrap, topics.deliver(recipient), idle_timeout_s=0.5)
    ]
    original = next(
        (r for r in delivered if dict(r.headers).get("ixb-origin") == sender.encode()), None
    )
    if original is None or original.value is None:
        console.print(f"[red]no delivery from {sender} to {recipient} to move[/red]")
        return False
    moved = OutboundRecord(topics.deliver(other), original.key, original.value, original.headers)
    admin = TopicAdmin(bootstrap)
    producer = OutputProducer(bootstrap, admin, client_id="ixb-demo-operator")
    await admin.start()
    await producer.start()
    try:
        await producer.send_all([moved])
    finally:
        await producer.stop()
        await admin.close()
    problems = [
        item
        async for item in read_feed(
            bootstrap=bootstrap,
            topics=topics,
            nation=other,
            catalog=catalog,
            registry=registry.current,
            keys=keystore,
            idle_timeout_s=1.0,
        )
        if isinstance(item, FeedProblem)
    ]
    for problem in problems:
        console.print(f"  {other}'s reader: [red]{problem.reason}[/red]: {problem.detail}")
    try:
        Opener(keystore, recipient).open(read_sealed(catalog, moved.value), topic=moved.topic)
        reopened = "opens"
    except RejectedInput as exc:
        reopened = exc.reason
    console.print(f"  {recipient}'s own key, on {other}'s topic: [red]{reopened}[/red]")
    # In this home every key is at hand, so the reader tries them all: none opens it there.
    unopened = {"seal_unopenable", "not_sealed_to_us"}
    return len(problems) == 1 and problems[0].reason in unopened and reopened in unopened
