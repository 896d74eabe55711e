"""Collecting the partners' cosignatures for each new checkpoint, and publishing them.

The checkpoint publisher (broker/enforcer/runtime/checkpoint_publisher.py)
offers every checkpoint it signed, with the log's tree; this task pushes
the newest of each log to every configured witness as c2sp.org/tlog-witness
``add-checkpoint``, with the consistency proof from the size that witness
last cosigned, and publishes the checkpoint again on
``ixb.audit.checkpoints`` with the cosignatures gathered appended to its
note. Verifiers merge the lines of every copy of a checkpoint.

- A witness's size is learnt from its answers: the first request claims 0,
  a 409 names the witness's size and the request is made once more from
  there. A witness ahead of the checkpoint (another enforcer process pushed
  a newer one) is left for the next checkpoint.
- Only lines that verify under a witness key of the registry are kept: a
  line a witness sends under a registered name that does not verify would
  make a verifier refuse the whole note (c2sp.org/signed-note).
- A witness that refuses (422: it holds a tree this one does not extend)
  is logged as an error: either the broker forked or the witness did.
- A witness that cannot be reached costs its cosignature on this
  checkpoint, not the checkpoint: signing goes on, and the next checkpoint
  is offered again. Quorum is the verifiers' demand (broker/auditlog/witnessed.py).

Offers replace the previous unprocessed offer of the same log, so a slow
witness delays cosignatures, never the enforcer: memory is one checkpoint
per log.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence
from typing import Protocol

import structlog

from broker.auditlog.checkpoints import Checkpoint, encode_checkpoint
from broker.auditlog.witness_client import WitnessReply
from broker.auditlog.witnessed import WitnessKeys
from broker.enforcer.runtime.commit import CommitPath, Outputs
from broker.errors import DecodeError, TransportError
from broker.kafka.base import BatchProducer
from broker.trust.merkle import MerkleLog
from broker.trust.note import Note, NoteSignature, parse_note
from broker.trust.tlog import add_checkpoint_body
from broker.wire.codec import SchemaCatalog
from broker.wire.records import OutboundRecord
from broker.wire.topics import TopicNames

__all__ = ["CosignStats", "Cosigner", "WitnessEndpoint"]

log = structlog.get_logger("ixb.cosigning")


class WitnessEndpoint(Protocol):
    """A tlog-witness (broker/auditlog/witness_client.py talks to one over HTTP)."""

    @property
    def url(self) -> str: ...

    async def add_checkpoint(self, body: bytes) -> WitnessReply: ...


@dataclasses.dataclass
class CosignStats:
    asked: int = 0  # add-checkpoint requests made
    cosignatures: int = 0  # valid cosignatures gathered
    published: int = 0  # cosigned checkpoints acknowledged by Kafka
    refused: int = 0  # requests a witness refused (not a size conflict)
    unreachable: int = 0  # requests that got no answer


class Cosigner:
    """Pushes checkpoints to witnesses and publishes them with the cosignatures; one task."""

    def __init__(
        self,
        *,
        witnesses: Sequence[WitnessEndpoint],
        witness_keys: Callable[[], WitnessKeys],
        producer: BatchProducer,
        catalog: SchemaCatalog,
        topics: TopicNames,
        retry_after_s: float = 1.0,
    ) -> None:
        self._witnesses = tuple(witnesses)
        self._witness_keys = witness_keys
        self._commits = CommitPath(producer)
        self._catalog = catalog
        self._topics = topics
        self._retry_after_s = retry_after_s
        self._offers: dict[str, tuple[Checkpoint, MerkleLog]] = {}
        self._offered = asyncio.Event()
        self._sizes: dict[tuple[str, str], int] = {}  # (witness, log id) -> size it cosigned
        self._unsent: list[Checkpoint] = []
        self.stats = CosignStats()

    def offer(self, checkpoint: Checkpoint, tree: MerkleLog) -> None:
        """Cosign ``checkpoint`` (of ``tree``, which may have grown since) when next possible."""
        self._offers[checkpoint.log_id] = (checkpoint, tree)
        self._offered.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop``: cosign and publish what is offered."""
        while not stop.is_set():
            waiting = asyncio.create_task(self._offered.wait())
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait((waiting, stopping), return_when=asyncio.FIRST_COMPLETED)
            waiting.cancel()
            stopping.cancel()
            if not stop.is_set():
                await self.flush()

    async def flush(self) -> None:
        """Cosign every offer now and publish what was cosigned (also the last round at stop).

        Cosigned checkpoints Kafka does not acknowledge are sent again with
        the next ones, not cosigned again.
        """
        self._offered.clear()
        offers, self._offers = list(self._offers.values()), {}
        for checkpoint, tree in offers:
            cosigned = await self.cosign(checkpoint, tree)
            if cosigned is not None:
                self._unsent.append(cosigned)
        if not self._unsent:
            return
        records = [
            OutboundRecord(
                self._topics.audit_checkpoints,
                c.log_id.encode(),
                encode_checkpoint(self._catalog, c),
            )
            for c in self._unsent
        ]
        try:
            await self._commits.send(Outputs(records=records))
        except TransportError as exc:
            log.warning("cosigned_checkpoints_not_acknowledged", error=str(exc))
            await asyncio.sleep(self._retry_after_s)
            self._offered.set()  # try the send again at the next round
            return
        self.stats.published += len(self._unsent)
        self._unsent = []

    async def cosign(self, checkpoint: Checkpoint, tree: MerkleLog) -> Checkpoint | None:
        """``checkpoint`` with every witness's valid cosignature added; None if it got none."""
        try:
            note = parse_note(checkpoint.note)
        except DecodeError:
            return None  # never signed so: nothing for a witness to check
        asked = [self._ask(w, checkpoint, tree) for w in self._witnesses]
        answers = await asyncio.gather(*asked)
        keys = self._witness_keys()
        added: list[NoteSignature] = []
        for lines in answers:
            for line in lines:
                if keys.cosigners(Note(note.text, (line,))):
                    added.append(line)
        if not added:
            return None
        self.stats.cosignatures += len(added)
        return dataclasses.replace(checkpoint, note=note.with_signatures(added).to_bytes())

    async def _ask(
        self, witness: WitnessEndpoint, checkpoint: Checkpoint, tree: MerkleLog
    ) -> list[NoteSignature]:
        """The witness's cosignature lines for ``checkpoint``; none if it did not cosign."""
        where = (witness.url, checkpoint.log_id)
        size = checkpoint.tree_size
        old = self._sizes.get(where, 0)
        for _ in range(2):  # once from what we believe, once from what the witness says
            if old > size:
                return []  # the witness cosigned a newer checkpoint already
            proof = tree.consistency_proof(old, size) if old else []
            self.stats.asked += 1
            try:
                reply = await witness.add_checkpoint(
                    add_checkpoint_body(old, proof, checkpoint.note)
                )
            except TransportError as exc:
                self.stats.unreachable += 1
                log.warning("witness_unreachable", witness=witness.url, error=str(exc))
                return []
            if reply.status == 200:
                self._sizes[where] = size
                return _lines(reply.body, witness.url)
            if reply.status == 409 and (learnt := _size(reply.body)) is not None:
                old = learnt
                self._sizes[where] = learnt
                continue
            self.stats.refused += 1
            log.error(
                "witness_refused_checkpoint",
                witness=witness.url,
                log_id=checkpoint.log_id,
                tree_size=size,
                status=reply.status,
            )
            return []
        return []


def _lines(body: bytes, witness: str) -> list[NoteSignature]:
    """The signature lines of a 200 answer, read as the signatures of a note."""
    try:
        return list(parse_note(b"x\n\n" + body).signatures)
    except DecodeError:
        log.warning("witness_answer_malformed", witness=witness)
        return []


def _size(body: bytes) -> int | None:
    text = body.decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None
