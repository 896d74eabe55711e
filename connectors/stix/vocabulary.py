"""The fixed STIX 2.1 objects and identifiers ixb speaks with (docs/STIX.md).

Everything here is a constant or a pure function of its arguments, because
deterministic identifiers are what let a partner fetch the same delivery
twice without storing it twice:

- ixb's own objects (its identity, its extension-definition, the SIENA
  handling-code markings) have hash-derived ids under :data:`IXB_NAMESPACE`;
- the objects made from one delivery have hash-derived ids over the delivery id and
  the report path they come from (``subjects[0]``), so the same delivery
  always gives the same ids and two deliveries never share one;
- cyber observables (``email-addr``, ``ipv4-addr``, ``url``) have the ids the
  STIX specification prescribes (UUIDv5 over the id-contributing properties
  under the STIX namespace), so they meet the same values from other sources;
- the TLP 2.0 marking-definitions are the ones OASIS published, reproduced
  exactly: TLP 2.0 is not predefined in STIX 2.1, so a bundle carries them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from typing import Any

from broker import HandlingCode, Marking

SPEC_VERSION = "2.1"

# ixb's own namespace for its deterministic ids; fixed forever (a change re-identifies all).
IXB_NAMESPACE = uuid.UUID("6cb54fad-f8ef-4ef0-ba90-4ee0d87ddaa0")
# The STIX 2.1 namespace for SCO ids (STIX 2.1 §2.9).
SCO_NAMESPACE = uuid.UUID("00abedb4-aa42-466c-9c01-fed23315a9b7")

# The fixed creation time of ixb's own objects: the day this mapping was published.
IXB_OBJECTS_CREATED = "2026-12-01T00:00:00.000Z"


def ixb_id(stix_type: str, name: str) -> str:
    """A deterministic STIX id of ``stix_type`` for ``name`` under ixb's namespace.

    UUIDv4 in form (STIX 2.1 §2.9 asks SDOs and SROs for version 4), its 122
    bits taken from SHA-256 over the namespace, the type and the name instead
    of from a random source: as unpredictable to a reader, and the same every
    time the same thing is mapped.
    """
    digest = hashlib.sha256(IXB_NAMESPACE.bytes + f"{stix_type}/{name}".encode()).digest()
    return f"{stix_type}--{uuid.UUID(bytes=digest[:16], version=4)}"


def sco_id(stix_type: str, contributing: dict[str, Any]) -> str:
    """The id STIX 2.1 §2.9 prescribes for an SCO with these id-contributing properties."""
    canonical = json.dumps(contributing, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f"{stix_type}--{uuid.uuid5(SCO_NAMESPACE, canonical)}"


def timestamp(value: dt.datetime) -> str:
    """RFC 3339 in UTC with millisecond precision, as STIX 2.1 §3.2 writes timestamps."""
    utc = value.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_timestamp(value: str) -> dt.datetime:
    """A STIX timestamp (``...Z``, any sub-second precision) as an aware UTC datetime."""
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("a STIX timestamp is in UTC and ends in Z")
    return parsed.astimezone(dt.UTC)


IXB_IDENTITY_ID = ixb_id("identity", "ixb")
IXB_EXTENSION_ID = ixb_id("extension-definition", "ixb-border-report-v1")

IXB_IDENTITY: dict[str, Any] = {
    "type": "identity",
    "spec_version": SPEC_VERSION,
    "id": IXB_IDENTITY_ID,
    "created": IXB_OBJECTS_CREATED,
    "modified": IXB_OBJECTS_CREATED,
    "name": "ixb intelligence-exchange broker",
    "identity_class": "system",
    "description": "Publishes the ixb STIX extension and attests derived values.",
}

# The new object types this extension defines (docs/STIX.md, "Objects of the extension").
SUBJECT_TYPE = "x-ixb-subject"
TRAVEL_DOCUMENT_TYPE = "x-ixb-travel-document"
VEHICLE_TYPE = "x-ixb-vehicle"
INDICATOR_TYPE = "x-ixb-indicator"
NEW_TYPES = frozenset({SUBJECT_TYPE, TRAVEL_DOCUMENT_TYPE, VEHICLE_TYPE, INDICATOR_TYPE})

IXB_EXTENSION_DEFINITION: dict[str, Any] = {
    "type": "extension-definition",
    "spec_version": SPEC_VERSION,
    "id": IXB_EXTENSION_ID,
    "created_by_ref": IXB_IDENTITY_ID,
    "created": IXB_OBJECTS_CREATED,
    "modified": IXB_OBJECTS_CREATED,
    "name": "ixb border-security report",
    "description": (
        "Border-security reports exchanged through ixb: the report's type, SIENA "
        "handling code and 4x4 grading, each value's provenance (signed by the "
        "originator, derived by the broker under an agreement, or withheld), and the "
        "object types STIX 2.1 has none for: subjects, travel documents, vehicles and "
        "indicators without a cyber-observable type."
    ),
    "schema": "docs/STIX.md of the ixb distribution, section 'The ixb extension', version 1.0",
    "version": "1.0",
    "extension_types": ["new-sdo", "property-extension"],
}

# TLP 2.0 as OASIS published it (cti-stix-common-objects, extension-definition
# -specifications/tlp-2.0): fixed ids, created 2022-10-01, defined by extension.
TLP2_EXTENSION_ID = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
TLP2_IDS: dict[Marking, str] = {
    Marking.CLEAR: "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    Marking.GREEN: "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    Marking.AMBER: "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    Marking.AMBER_STRICT: "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    Marking.RED: "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}
# TLP 1.0 as STIX 2.1 predefines it (§7.2.1.4), accepted inbound: WHITE is CLEAR.
TLP1_IDS: dict[str, Marking] = {
    "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9": Marking.CLEAR,
    "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da": Marking.GREEN,
    "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82": Marking.AMBER,
    "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed": Marking.RED,
}
TLP_BY_ID: dict[str, Marking] = {**{v: k for k, v in TLP2_IDS.items()}, **TLP1_IDS}


def tlp2_marking(marking: Marking) -> dict[str, Any]:
    """The official TLP 2.0 marking-definition object for ``marking``."""
    level = marking.value.removeprefix("TLP:").lower()
    return {
        "type": "marking-definition",
        "spec_version": SPEC_VERSION,
        "id": TLP2_IDS[marking],
        "created": "2022-10-01T00:00:00.000Z",
        "name": marking.value,
        "extensions": {
            TLP2_EXTENSION_ID: {"extension_type": "property-extension", "tlp_2_0": level}
        },
    }


SIENA_MEANING: dict[HandlingCode, str] = {
    HandlingCode.H0: "purpose-limited: use only for the purpose for which it was provided",
    HandlingCode.H1: "not for use in court without the originator's permission",
    HandlingCode.H2: "no onward sharing without the originator's consent",
    HandlingCode.H3: "other restrictions apply; ask the originator",
}
SIENA_IDS: dict[HandlingCode, str] = {
    code: ixb_id("marking-definition", f"siena-{code.value}") for code in HandlingCode
}
SIENA_BY_ID: dict[str, HandlingCode] = {v: k for k, v in SIENA_IDS.items()}


def siena_marking(code: HandlingCode) -> dict[str, Any]:
    """The ixb marking-definition for a SIENA handling code, built as TLP 2.0's are.

    A marking (not only a report property) because a handling code restricts
    use of every object it travels with, exactly as TLP does, and tools that
    filter or propagate markings then carry it along.
    """
    return {
        "type": "marking-definition",
        "spec_version": SPEC_VERSION,
        "id": SIENA_IDS[code],
        "created_by_ref": IXB_IDENTITY_ID,
        "created": IXB_OBJECTS_CREATED,
        "name": f"SIENA:{code.value}",
        "extensions": {
            IXB_EXTENSION_ID: {
                "extension_type": "property-extension",
                "handling_code": code.value,
                "statement": SIENA_MEANING[code],
            }
        },
    }
