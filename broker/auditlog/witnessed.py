"""Which partners' witnesses cosigned a checkpoint, and whether that makes a quorum.

A cosignature counts for a nation when it verifies under that nation's
``witness`` key in the partner registry (key name = the registry's key id,
c2sp.org/tlog-cosignature v1) and the key was valid at the time the
cosignature states. A nation counts once however many of its keys cosigned.
A quorum of k means k distinct nations: a broker that shows two witnesses
two different logs gets at most one of them on each, so with k of n > n/2
no view it shows one party can also be shown to another (broker/parties/witness.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from broker.errors import VerificationError
from broker.trust.note import Note
from broker.trust.records import KeyRecord, KeyRole, PartnerRegistry
from broker.trust.signatures import ed25519_public_key
from broker.trust.tlog import verify_cosignature

__all__ = ["Cosigned", "WitnessKeys", "merged"]


@dataclass(frozen=True, slots=True)
class Cosigned:
    """A nation's witness cosigned: with which key, and when it says it did."""

    nation: str
    key_id: str
    at: dt.datetime


class WitnessKeys:
    """The registry's witness keys, to count cosignatures by nation."""

    __slots__ = ("_keys",)

    def __init__(self, registry: PartnerRegistry) -> None:
        self._keys: tuple[KeyRecord, ...] = tuple(
            k for k in registry.records() if k.role is KeyRole.WITNESS
        )

    def __len__(self) -> int:
        return len({k.nation for k in self._keys})

    def cosigners(self, note: Note) -> dict[str, Cosigned]:
        """Per nation, a valid cosignature of its witness on ``note`` (the earliest stated)."""
        found: dict[str, Cosigned] = {}
        for key in self._keys:
            assert key.nation is not None  # witness keys name their nation
            verified = verify_cosignature(note, key.key_id, ed25519_public_key(key))
            if verified is None:
                continue
            at = dt.datetime.fromtimestamp(verified.timestamp, dt.UTC)
            if not key.valid_at(at):
                continue
            known = found.get(key.nation)
            if known is None or at < known.at:
                found[key.nation] = Cosigned(key.nation, key.key_id, at)
        return found

    def require(self, note: Note, quorum: int, *, what: str) -> Mapping[str, Cosigned]:
        """The cosigners, if at least ``quorum`` nations cosigned; else VerificationError."""
        found = self.cosigners(note)
        if len(found) < quorum:
            named = ", ".join(sorted(found)) or "none"
            raise VerificationError(
                "no_quorum",
                f"{what} is cosigned by {len(found)} of the {quorum} witnesses required ({named})",
                stage="audit",
            )
        return found


def merged(notes: Iterable[Note]) -> Note:
    """One note with every signature line of notes with the same text (the same tree head)."""
    notes = list(notes)
    if not notes:
        raise ValueError("nothing to merge")
    first = notes[0]
    if any(n.text != first.text for n in notes):
        raise ValueError("only notes of the same checkpoint text merge")
    result = first
    for other in notes[1:]:
        result = result.with_signatures(other.signatures)
    return result
