"""Every record names its schema, and the fingerprint is the one the Avro specification gives.

The recipe below is written from the specification alone (Parsing Canonical
Form, then the 64-bit Rabin fingerprint CRC-64-AVRO), not from fastavro, so
it is the referee a partner can copy: README, "Partners' tools".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from broker.cli.main import app
from broker.resources import SCHEMAS_DIR
from broker.wire.codec import FINGERPRINT_HEADER, SCHEMA_HEADER, SchemaCatalog, schema_headers

PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
KEEP = ("name", "type", "fields", "symbols", "items", "values", "size")  # [STRIP] and [ORDER]
EMPTY = 0xC15D213AA4D7A795


def canonical(  # noqa: PLR0911 - one return per rule of the specification reads best
    schema: Any, namespace: str = "", seen: set[str] | None = None
) -> Any:
    """The Parsing Canonical Form of ``schema`` (Avro specification, 'Parsing Canonical Form')."""
    seen = set() if seen is None else seen
    if isinstance(schema, str):
        if schema in PRIMITIVES:
            return schema
        return schema if "." in schema else f"{namespace}.{schema}" if namespace else schema
    if isinstance(schema, list):
        return [canonical(s, namespace, seen) for s in schema]
    kind = schema["type"]
    if kind in PRIMITIVES:
        return kind  # [PRIMITIVES]; a logicalType is stripped with everything else
    if kind in ("record", "enum", "fixed"):
        name = schema["name"]
        space = schema.get("namespace", namespace)
        full = name if "." in name else f"{space}.{name}" if space else name  # [FULLNAMES]
        if full in seen:
            return full
        seen.add(full)
        space = full.rpartition(".")[0]
        out: dict[str, Any] = {"name": full, "type": kind}
        if kind == "record":
            out["fields"] = [
                {"name": f["name"], "type": canonical(f["type"], space, seen)}
                for f in schema["fields"]
            ]
        elif kind == "enum":
            out["symbols"] = schema["symbols"]
        else:
            out["size"] = schema["size"]
        return out
    if kind == "array":
        return {"type": "array", "items": canonical(schema["items"], namespace, seen)}
    if kind == "map":
        return {"type": "map", "values": canonical(schema["values"], namespace, seen)}
    return canonical(kind, namespace, seen)


def crc64_avro(data: bytes) -> int:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (EMPTY & -(fp & 1))
        table.append(fp)
    fp = EMPTY
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


def spec_fingerprint(schema_json: str) -> bytes:
    form = json.dumps(canonical(json.loads(schema_json)), separators=(",", ":"))
    return crc64_avro(form.encode()).to_bytes(8, "little")  # as single-object encoding writes it


def test_every_shipped_schema_has_the_fingerprint_the_specification_gives() -> None:
    catalog = SchemaCatalog.load()
    files = sorted(SCHEMAS_DIR.glob("*.avsc"))
    assert len(files) >= 10
    for path in files:
        text = path.read_text()
        name = json.loads(text)["namespace"] + "." + json.loads(text)["name"]
        assert catalog.schema(name).fingerprint == spec_fingerprint(text), name


def test_the_recipe_drops_logical_types_as_the_specification_says() -> None:
    with_logical = '{"type":"record","name":"T","namespace":"x","fields":[{"name":"t","type":{"type":"long","logicalType":"timestamp-millis"}}]}'  # noqa: E501
    plain = '{"type":"record","name":"T","namespace":"x","fields":[{"name":"t","type":"long"}]}'
    assert spec_fingerprint(with_logical) == spec_fingerprint(plain)


def test_a_record_value_gets_headers_naming_its_schema_and_fingerprint(
    catalog: SchemaCatalog,
) -> None:
    name = "ixb.v1.Disclosure"
    value = catalog.encode(name, {"salt": b"\x00" * 16, "path": "title", "value": b"\x02a"})
    headers = dict(schema_headers(value, (("ixb-origin", b"NL"), (SCHEMA_HEADER, b"stale"))))
    assert headers[SCHEMA_HEADER] == name.encode()
    assert headers[FINGERPRINT_HEADER] == f"crc-64-avro:{value[2:10].hex()}".encode()
    assert headers["ixb-origin"] == b"NL"
    assert len(schema_headers(value, (("ixb-origin", b"NL"), (SCHEMA_HEADER, b"stale")))) == 3


def test_a_value_of_no_known_schema_keeps_its_headers_unchanged() -> None:
    kept = (("ixb-origin", b"NL"),)
    assert schema_headers(b"\xc3\x01" + b"\xff" * 8 + b"body", kept) == kept
    assert schema_headers(b"{}", kept) == kept


def test_ixb_schemas_export_writes_what_the_specification_recipe_checks(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["schemas", "export", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert len(index) == len(list(SCHEMAS_DIR.glob("*.avsc")))
    for entry in index:
        text = (tmp_path / "out" / f"{entry['name']}.avsc").read_text()
        assert entry["fingerprint"] == f"crc-64-avro:{spec_fingerprint(text).hex()}"
        assert entry["fingerprint_uint64"] == int.from_bytes(spec_fingerprint(text), "little")
        form = (tmp_path / "out" / f"{entry['name']}.canonical.json").read_text()
        assert "logicalType" not in form
        assert json.loads(form) == canonical(json.loads(text))
