"""litewitness (filippo.io/torchwood), the ecosystem's tlog-witness, cosigning ixb's log.

What it took: litewitness keeps its key in an ssh-agent and its state in
SQLite; it is told about ixb's log with ``witnessctl add-log`` (the origin,
``<IXB_LOG_ORIGIN>/<topic>/<partition>``) and ``add-key`` (the broker key's
Ed25519 vkey under that origin, as ixb prints it). Its key is registered in
ixb's partner registry as a nation's witness key, under the name it signs
with. Then ixb's broker pushes to it exactly as to ixb's own witness.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from broker.auditlog.checkpoints import checkpoint_verifier, decode_checkpoint
from broker.auditlog.witness_client import WitnessClient
from broker.auditlog.witnessed import WitnessKeys
from broker.auditor.verify import verify_log
from broker.enforcer.runtime.cosigning import Cosigner
from broker.kafka.memory import MemoryCluster
from broker.trust.note import SIG_ED25519, parse_note, vkey
from broker.trust.records import KeyRecord, KeyRole
from broker.trust.tlog import add_checkpoint_body
from broker.wire.codec import SchemaCatalog
from broker.wire.topics import TopicNames
from tests.support.audit import LOG_ID, build_log
from tests.support.witnessing import ORIGIN, Federation, values

pytestmark = pytest.mark.interop

NAME = "lite-witness-BE"  # a registry key id is also a valid note key name


@dataclass
class LiteWitness:
    url: str
    public_key: bytes


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_for(check: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not come up")
        time.sleep(0.05)


def _accepts(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def federation(tmp_path: Path) -> Federation:
    return Federation(tmp_path)


@pytest.fixture
def litewitness(
    litewitness_bin: tuple[Path, Path],
    federation: Federation,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiteWitness]:
    """litewitness serving on a free port, knowing ixb's log and the broker's key."""
    for tool in ("ssh-agent", "ssh-add", "ssh-keygen"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} (OpenSSH) is needed: litewitness keeps its key in an ssh-agent")
    server, control = litewitness_bin
    work = tmp_path_factory.mktemp("lw")
    socket_path = Path(f"/tmp/ixb-lw-{os.getpid()}-{work.name}.sock")  # a short path for ssh-agent
    key = work / "witness"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    env = {**os.environ, "SSH_AUTH_SOCK": str(socket_path)}
    agent = subprocess.Popen(
        ["ssh-agent", "-a", str(socket_path), "-D"], env=env, stdout=subprocess.DEVNULL
    )
    processes = [agent]
    try:
        _wait_for(socket_path.exists, "ssh-agent")
        subprocess.run(["ssh-add", "-q", str(key)], env=env, check=True, capture_output=True)
        fingerprint = subprocess.run(
            ["ssh-keygen", "-lf", f"{key}.pub"], check=True, capture_output=True, text=True
        ).stdout.split()[1]
        blob = base64.b64decode((work / "witness.pub").read_text().split()[1])
        public_key = blob[-32:]  # the SSH wire form ends with the raw Ed25519 key
        database = work / "litewitness.db"
        broker = vkey(ORIGIN, SIG_ED25519, federation.broker.ed25519_public_key())
        for args in (
            ["add-log", "-origin", ORIGIN],
            ["add-key", "-origin", ORIGIN, "-key", broker],
        ):
            subprocess.run(
                [str(control), args[0], "-db", str(database), *args[1:]],
                check=True,
                capture_output=True,
            )
        port = _free_port()
        processes.append(
            subprocess.Popen(
                [
                    str(server),
                    "-db",
                    str(database),
                    "-name",
                    NAME,
                    "-key",
                    fingerprint,
                    "-ssh-agent",
                    str(socket_path),
                    "-listen",
                    f"127.0.0.1:{port}",
                ],
                env=env,
                stderr=subprocess.DEVNULL,
            )
        )
        _wait_for(lambda: _accepts(port), "litewitness")
        registered = KeyRecord(
            key_id=NAME,
            role=KeyRole.WITNESS,
            nation="BE",
            public_key=base64.b64encode(public_key).decode(),
            not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=400),
        )
        federation.registry = federation.registry.with_key(registered)
        yield LiteWitness(f"http://127.0.0.1:{port}", public_key)
    finally:
        for process in reversed(processes):
            process.terminate()
            process.wait(timeout=10)
        socket_path.unlink(missing_ok=True)


async def test_litewitness_cosigns_ixb_checkpoints_the_broker_pushes_and_verify_counts_it(
    litewitness: LiteWitness, federation: Federation, catalog: SchemaCatalog
) -> None:
    built = build_log(catalog, federation.broker, 25, writers=2, every=10)
    cluster = MemoryCluster()
    cosigner = Cosigner(
        witnesses=[WitnessClient(litewitness.url)],
        witness_keys=lambda: WitnessKeys(federation.registry),
        producer=cluster.producer(),
        catalog=catalog,
        topics=TopicNames(),
    )

    for checkpoint in built.checkpoints:  # size 10, then 20: the second proven from the first
        cosigner.offer(checkpoint, built.checkpointer.log)
        await cosigner.flush()

    published = [
        decode_checkpoint(catalog, v or b"") for v in cluster.values(TopicNames().audit_checkpoints)
    ]
    assert [c.tree_size for c in published] == [10, 20]
    assert cosigner.stats.refused == 0
    cosigners = WitnessKeys(federation.registry).cosigners(parse_note(published[-1].note))
    assert set(cosigners) == {"BE"}
    assert cosigners["BE"].key_id == NAME
    report = verify_log(
        LOG_ID,
        built.records,
        [*built.checkpoints, *published],
        checkpoint_verifier(federation.registry),
        catalog=catalog,
        witnesses=WitnessKeys(federation.registry),
        quorum=1,
    )
    assert report.ok, report.problem
    assert report.witnessed_size == 20


async def test_litewitness_refuses_a_fork_of_an_ixb_log_it_cosigned(
    litewitness: LiteWitness, federation: Federation
) -> None:
    client = WitnessClient(litewitness.url)
    honest = federation.log(values(10))
    forked = federation.log([b"forged", *values(10)[1:]])
    first = await client.add_checkpoint(honest.request(0))
    assert first.status == 200

    same_size = await client.add_checkpoint(add_checkpoint_body(10, [], forked.checkpoint().note))
    wrong_old = await client.add_checkpoint(forked.request(0))

    assert same_size.status == 422  # the same size with another root: not consistent
    assert wrong_old.status == 409
    assert wrong_old.body.strip() == b"10"
