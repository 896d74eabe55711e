"""A test double that denies aiokafka one compression codec, as if its library were missing.

This is the fault measured in production: a consumer without the library
for a codec some producer used cannot decode that producer's batches. aiokafka
asks ``aiokafka.codec.has_<codec>()`` before it decodes a batch, so answering
no there (for the test's duration, in this process) is that consumer; the
broker, the producer and the batches on it stay real.
"""

from __future__ import annotations

import aiokafka.codec  # noqa: TID251 - the double reaches into the client to deny it a codec
import pytest


def deny_codec_double(monkeypatch: pytest.MonkeyPatch, codec: str) -> None:
    """Until the test ends, aiokafka in this process cannot decode ``codec`` batches."""
    assert hasattr(aiokafka.codec, f"has_{codec}"), codec
    monkeypatch.setattr(aiokafka.codec, f"has_{codec}", lambda: False)
