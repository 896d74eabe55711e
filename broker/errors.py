"""The one error tree of ixb.

Every error ixb raises derives from :class:`IxbError`. Each says whether
trying the same thing again later may succeed (``retriable``), which is what
the caller decides on: a retriable failure is held and retried, anything else
is refused with its ``reason`` code.

    IxbError
    ├── ConfigurationError      bad settings, agreements, keys or registry on disk
    │   └── RegistryRefused     the registry file is not believed; ``reason`` says why
    ├── RejectedInput           a message is refused; ``reason`` and ``stage`` say why
    │   ├── DecodeError         malformed, oversize or unknown-schema bytes
    │   └── VerificationError   missing key, bad signature, identity mismatch
    ├── PolicyUndecided         the decision point could not decide (never a deny)
    └── TransportError          Kafka could not be reached or did not acknowledge

Messages never contain payload values, salts or key material: they are
written to logs and to the rejected topic.
"""

from __future__ import annotations


class IxbError(Exception):
    """Root of every ixb error."""

    retriable: bool = False


class ConfigurationError(IxbError):
    """Settings, agreements, keys or the registry are missing or invalid."""


class RegistryRefused(ConfigurationError):
    """The partner registry on disk is refused: unsigned, under-signed, rolled back or forked.

    ``reason`` is a stable code (``registry_rollback``, ``registry_fork``,
    ``registry_under_signed``, ...). A reader that accepted a good registry
    before keeps using it; one that never did cannot verify anything.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class RejectedInput(IxbError):
    """A message is refused; ``reason`` is a stable machine-readable code."""

    def __init__(self, reason: str, detail: str, *, stage: str, retriable: bool = False) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.stage = stage
        self.retriable = retriable


class DecodeError(RejectedInput):
    """The bytes are not a well-formed message of a known schema within limits."""

    def __init__(self, reason: str, detail: str, *, stage: str = "decode") -> None:
        super().__init__(reason, detail, stage=stage)


class VerificationError(RejectedInput):
    """The signature, the signer or the claimed identity does not check out."""

    def __init__(self, reason: str, detail: str, *, stage: str = "signature") -> None:
        super().__init__(reason, detail, stage=stage)


class PolicyUndecided(IxbError):
    """The policy engine produced no decision: unavailable, erroring or undefined.

    Callers must hold or refuse the message as retriable; it is never a deny
    and never a delivery.
    """

    retriable = True


class TransportError(IxbError):
    """Kafka was unreachable or did not acknowledge an output."""

    retriable = True
