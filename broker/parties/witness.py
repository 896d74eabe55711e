"""A partner's witness: it cosigns a checkpoint only if it extends the last one it cosigned.

The broker signs its own checkpoints, so on its own it could show NL one
decision log and BE another (a split view). Each partner therefore runs a
witness (``ixb witness --nation BE``) with a key of its own, registered in
the partner registry as that nation's ``witness`` key. The witness keeps,
per log origin, the size and root of the last checkpoint it cosigned, and
cosigns a new checkpoint only when the broker proves it extends that one
(an RFC 6962 consistency proof). Two witnesses shown different logs can
then never both cosign both: whichever view a party is shown, it lacks the
other witnesses' cosignatures, and a verifier that requires a quorum of
them refuses it (broker/auditlog/witnessed.py).

:meth:`Witness.add_checkpoint` is c2sp.org/tlog-witness ``add-checkpoint``
as a function of the request body, with the specification's status codes
(broker/parties/witness_http.py serves it over HTTP, so any tlog-witness
client can push to it, and ixb's collector pushes to any tlog-witness):

====  ======================  ==================================================
code  reason                  the request ...
====  ======================  ==================================================
400   malformed_request       does not parse, or claims an old size past the new
404   unknown_origin          is for an origin that is not one of this deployment's logs
403   checkpoint_signature    carries no valid signature by a broker key under the origin
409   old_size_mismatch       names another old size than the witness's (the body says it)
422   inconsistent            has no valid proof from the witness's tree to the new one
                              (a fork: the request is kept as evidence), or a wrong
                              empty root
200   cosigned                extends the last cosigned tree: the body is the cosignature
====  ======================  ==================================================

The check of the old size and the update of the state are one step under
a lock, and the state is on disk before the cosignature is returned, as the
specification requires (broker/parties/witness_state.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

from broker.auditlog.log_notes import LogKey, OpenedNote, log_key_id, open_log_note
from broker.errors import DecodeError, VerificationError
from broker.parties.witness_state import Evidence, WitnessState
from broker.trust.merkle import verify_consistency
from broker.trust.note import Note, NoteSignature
from broker.trust.signatures import SigningKey
from broker.trust.tlog import AddCheckpoint, cosign, empty_tree_ok, parse_add_checkpoint

__all__ = ["SIZE_CONTENT_TYPE", "Answer", "Witness"]

log = structlog.get_logger("ixb.witness")

SIZE_CONTENT_TYPE = "text/x.tlog.size"
Clock = Callable[[], dt.datetime]


@dataclass(frozen=True, slots=True)
class Answer:
    """The witness's answer: an HTTP status, a reason code, a body and its type."""

    status: int
    reason: str
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"

    @property
    def cosigned(self) -> bool:
        return self.status == 200


class Witness:
    """One witness key and its state: cosigns consistent checkpoints of known logs.

    ``known_origin`` says whether an origin is one of the logs this witness
    serves (one of its deployment's audit partitions); ``log_keys`` gives
    the broker keys a checkpoint may be signed with, from the partner
    registry as it is now (a key rotated in is picked up at once). One
    event loop or thread at a time may call it; the state serialises
    processes sharing a directory.
    """

    __slots__ = ("_clock", "_key", "_known_origin", "_log_keys", "_state", "name")

    def __init__(
        self,
        key: SigningKey,
        state: WitnessState,
        *,
        known_origin: Callable[[str], bool],
        log_keys: Callable[[], Sequence[LogKey]],
        clock: Clock,
    ) -> None:
        self._key = key
        self.name = key.key_id  # the name in its cosignature lines: the registry's key id
        self._state = state
        self._known_origin = known_origin
        self._log_keys = log_keys
        self._clock = clock

    def add_checkpoint(self, body: bytes) -> Answer:
        """tlog-witness ``add-checkpoint``: the answer to ``body`` (table in the module doc)."""
        try:
            request = parse_add_checkpoint(body)
        except DecodeError as exc:
            return Answer(400, "malformed_request", f"{exc.reason}\n".encode())
        admitted = self._admit(request)
        if isinstance(admitted, Answer):
            return admitted
        return self._advance(request, admitted)

    def _admit(self, request: AddCheckpoint) -> OpenedNote | Answer:
        """The request's verified note, or the refusal that needs no state to decide."""
        if not self._known_origin(request.head.origin):
            return Answer(404, "unknown_origin", b"unknown log origin\n")
        try:
            opened = open_log_note(request.checkpoint.to_bytes(), self._log_keys())
        except VerificationError:
            return Answer(403, "checkpoint_signature", b"no valid log signature\n")
        if request.old_size > request.head.size:
            return Answer(400, "malformed_request", b"old size beyond the checkpoint\n")
        if not empty_tree_ok(request.head):
            return Answer(422, "inconsistent", b"a tree of size 0 has the empty root\n")
        return opened

    def _advance(self, request: AddCheckpoint, opened: OpenedNote) -> Answer:
        """Check against the cosigned tree and move on from it, as one step under the lock."""
        head = request.head
        origin = head.origin
        with self._state.locked(origin) as stored:
            if request.old_size != stored.size:
                size = f"{stored.size}\n".encode()
                return Answer(409, "old_size_mismatch", size, SIZE_CONTENT_TYPE)
            if not verify_consistency(
                stored.size, head.size, stored.root, head.root, request.proof
            ):
                self._state.keep_evidence(
                    Evidence(origin, stored.size, stored.root, request.body())
                )
                log.error(
                    "witness_refused_fork",
                    origin=origin,
                    cosigned_size=stored.size,
                    offered_size=head.size,
                )
                return Answer(422, "inconsistent", b"not consistent with the cosigned tree\n")
            line = self._cosign(request)
            log_lines = opened.note.signatures_by(origin, log_key_id(origin, opened.signer))
            self._state.store(stored.advanced(head, Note(head.text(), (*log_lines, line))))
        log.info("witness_cosigned", origin=origin, tree_size=head.size)
        return Answer(200, "cosigned", line.line().encode())

    def latest(self, origin_hash: str) -> bytes | None:
        """The last checkpoint cosigned for an origin, by the hex SHA-256 of the origin, or None.

        What tlog-witness's monitor endpoint serves: the log's note with this
        witness's cosignature, for auditors to hold outside the broker's reach.
        """
        return self._state.latest_note(origin_hash)

    def _cosign(self, request: AddCheckpoint) -> NoteSignature:
        timestamp = int(self._clock().timestamp())
        return cosign(
            self.name,
            self._key.ed25519_public_key(),
            self._key.sign_ed25519,
            request.checkpoint.text,
            timestamp,
        )
