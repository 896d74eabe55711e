"""Selecting (the broker): which disclosures to pass on, and the values it derived.

The broker never changes a disclosure: it withholds a field by leaving its
disclosures out (:func:`select`), and what it derives under an agreement
(pseudonyms, generalisations) it encodes exactly as a disclosure would carry
it (:func:`derived_values`) and attests it itself (broker/trust/attestation.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from broker import native
from broker.trust.sd import _native
from broker.trust.sd.disclosure import Disclosure
from broker.trust.sd.layout import ReportLayout, encode_value


def select(
    layout: ReportLayout, disclosures: Iterable[Disclosure], withheld: Iterable[str]
) -> list[Disclosure]:
    """The disclosures to pass on when the fields ``withheld`` are withheld.

    Patterns are field paths as agreements write them (``subjects[].full_name``,
    ``[]`` for any index). A pattern withholds its own disclosure and all
    beneath it; ``subjects[]`` means ``subjects``, as in
    :func:`broker.domain.fields.withhold`. A pattern that names no disclosable
    field is an error, never a silent no-op.
    """
    covered = layout.coverage(withheld)
    if covered is None:
        return list(disclosures)
    if native.ACTIVE:
        return _native.uncovered(disclosures, covered.patterns)
    return [d for d in disclosures if not covered(d.path)]


def derived_values(
    layout: ReportLayout, record: Mapping[str, Any], fields: Iterable[str]
) -> list[tuple[str, bytes]]:
    """``(concrete path, encoded value)`` for every value of ``record`` under ``fields``.

    ``record`` is the report after the broker's rules were applied; the
    values come out exactly as disclosures would carry them (the same paths,
    the same Avro types, structure included), so the recipient rebuilds a
    derived value the way it rebuilds a disclosed one.
    """
    covered = layout.coverage(fields)
    if covered is None:
        return []
    return [
        (path, encode_value(schema, value, path))
        for path, schema, value in layout.values(record)
        if covered(path)
    ]
