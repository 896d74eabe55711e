"""Partners with witness keys, a broker key, and logs to show them: real keys, real trees.

:class:`Federation` holds a keystore with the broker's key and one witness key
per nation, registered in an in-memory partner registry, and a witness per
nation over its own state directory. :class:`ShownLog` is a log as a broker
shows it: leaves, a tree, and its checkpoints as ixb signs them (the C2SP
note signed by the broker key under the log's origin).
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from broker.auditlog.checkpoints import Checkpoint, broker_note_keys, sign_checkpoint
from broker.auditlog.log_notes import origin_of
from broker.auditlog.witness_client import WitnessReply
from broker.errors import TransportError
from broker.parties.witness import Answer, Witness
from broker.parties.witness_state import WitnessState
from broker.trust.keystore import Keystore
from broker.trust.merkle import MerkleLog, leaf_hash
from broker.trust.records import KeyRole, PartnerRegistry
from broker.trust.signatures import SigningKey
from broker.trust.tlog import add_checkpoint_body

LOG_ID = "ixb.audit/0"
ORIGIN = origin_of(LOG_ID)
START = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


class SteppingClock:
    def __init__(self, start: dt.datetime = START) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        self.now += dt.timedelta(seconds=1)
        return self.now


@dataclass
class Federation:
    """A broker key and a witness per nation, all registered in one registry."""

    home: Path
    nations: tuple[str, ...] = ("NL", "BE", "DE")
    keystore: Keystore = field(init=False)
    broker: SigningKey = field(init=False)
    registry: PartnerRegistry = field(init=False)
    witness_keys: dict[str, SigningKey] = field(init=False)
    witnesses: dict[str, Witness] = field(init=False)
    clock: SteppingClock = field(default_factory=SteppingClock)

    def __post_init__(self) -> None:
        self.keystore = Keystore(self.home / "keys")
        before = START - dt.timedelta(days=1)
        broker, self.broker = self.keystore.generate(role=KeyRole.BROKER, nation=None, now=before)
        records = [broker]
        self.witness_keys = {}
        for nation in self.nations:
            record, key = self.keystore.generate(role=KeyRole.WITNESS, nation=nation, now=before)
            records.append(record)
            self.witness_keys[nation] = key
        self.registry = PartnerRegistry(records)
        self.witnesses = {n: self.witness(n) for n in self.nations}

    def witness(self, nation: str) -> Witness:
        """A witness for ``nation`` over its state directory (a fresh object: a restart)."""
        return Witness(
            self.witness_keys[nation],
            WitnessState(self.home / "witness" / nation),
            known_origin=lambda origin: origin.startswith("ixb.local/ixb.audit/"),
            log_keys=lambda: broker_note_keys(self.registry),
            clock=self.clock,
        )

    def log(self, values: list[bytes]) -> ShownLog:
        return ShownLog(self, values)


@dataclass
class ShownLog:
    """A log as the broker shows it to someone: its leaves, tree and signed checkpoints."""

    federation: Federation
    values: list[bytes]
    tree: MerkleLog = field(init=False)

    def __post_init__(self) -> None:
        self.tree = MerkleLog()
        for value in self.values:
            self.tree.append(leaf_hash(value))

    def checkpoint(self, size: int | None = None) -> Checkpoint:
        size = self.tree.size if size is None else size
        return sign_checkpoint(self.federation.broker, LOG_ID, size, self.tree.root_at(size), START)

    def request(self, old: int, size: int | None = None) -> bytes:
        """The add-checkpoint body for the checkpoint of ``size``, proving it from ``old``."""
        checkpoint = self.checkpoint(size)
        provable = 0 < old <= checkpoint.tree_size
        proof = self.tree.consistency_proof(old, checkpoint.tree_size) if provable else []
        return add_checkpoint_body(old, proof, checkpoint.note)

    def push(self, nation: str, size: int | None = None) -> Answer:
        """What the broker does: offer the checkpoint, learning the witness's size on 409."""
        witness = self.federation.witnesses[nation]
        answer = witness.add_checkpoint(self.request(0, size))
        if answer.status == 409:
            answer = witness.add_checkpoint(self.request(int(answer.body), size))
        return answer


def values(count: int, tag: bytes = b"entry") -> list[bytes]:
    return [tag + b"-" + str(i).encode() for i in range(count)]


class InProcessWitness:
    """A real :class:`Witness`, called in this process instead of over HTTP."""

    def __init__(self, witness: Witness, url: str) -> None:
        self.witness = witness
        self.url = url

    async def add_checkpoint(self, body: bytes) -> WitnessReply:
        answer = self.witness.add_checkpoint(body)
        return WitnessReply(answer.status, answer.body)


class UnreachableWitness:
    """Test double: a witness whose every request fails to connect (an injected fault)."""

    url = "http://unreachable.invalid"

    async def add_checkpoint(self, body: bytes) -> WitnessReply:
        raise TransportError("witness unreachable (injected)")


class GarblingWitness(InProcessWitness):
    """Test double: a real witness whose answer is corrupted on the way (an injected fault)."""

    async def add_checkpoint(self, body: bytes) -> WitnessReply:
        reply = await super().add_checkpoint(body)
        name, encoded = reply.body.rstrip(b"\n").rsplit(b" ", 1)
        raw = bytearray(base64.b64decode(encoded))
        raw[-1] ^= 1
        return WitnessReply(reply.status, name + b" " + base64.b64encode(bytes(raw)) + b"\n")
