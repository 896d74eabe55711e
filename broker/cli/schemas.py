"""``ixb schemas``: the Avro schemas of every topic, for partners' own decoders and registries.

``export`` writes each schema as shipped, its Parsing Canonical Form and its
fingerprint (the 8 bytes after ``C3 01`` in every value, and the
``ixb-schema-fingerprint`` header) so a partner can check its own
computation against ours. ``register`` puts them in a schema registry that
speaks the Confluent Schema Registry REST API (Confluent, Karapace and
Apicurio's compatibility API do), one subject per record full name (the
RecordNameStrategy: ixb topics carry several record types).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import fastavro
import requests
import typer
from fastavro.schema import to_parsing_canonical_form
from rich.console import Console

from broker.errors import ConfigurationError, TransportError
from broker.resources import SCHEMAS_DIR

schemas_app = typer.Typer(help="The Avro schemas of ixb's records, for partners.")
out = Console()
err = Console(stderr=True)

REGISTRY_MEDIA_TYPE = "application/vnd.schemaregistry.v1+json"


def exported(source: Path = SCHEMAS_DIR) -> list[dict[str, Any]]:
    """Every shipped schema: full name, text as shipped, canonical form, fingerprint."""
    entries = []
    for path in sorted(source.glob("*.avsc")):
        text = path.read_text()
        parsed = fastavro.parse_schema(json.loads(text))
        if not isinstance(parsed, dict):
            raise ConfigurationError(f"{path}: a message schema must be a named record")
        form = to_parsing_canonical_form(parsed)
        fingerprint = bytes.fromhex(fastavro.schema.fingerprint(form, "CRC-64-AVRO"))
        entries.append(
            {
                "name": str(parsed["name"]),
                "schema": text,
                "canonical_form": form,
                "fingerprint": f"crc-64-avro:{fingerprint.hex()}",
                "fingerprint_uint64": int.from_bytes(fingerprint, "little"),
            }
        )
    return entries


@schemas_app.command("export")
def export_command(
    directory: Annotated[Path, typer.Argument(help="where to write (created if missing)")],
) -> None:
    """Write every schema, its canonical form and fingerprint, and an index.json."""
    directory.mkdir(parents=True, exist_ok=True)
    entries = exported()
    for entry in entries:
        (directory / f"{entry['name']}.avsc").write_text(entry["schema"])
        (directory / f"{entry['name']}.canonical.json").write_text(entry["canonical_form"])
    index = [{k: v for k, v in e.items() if k not in ("schema", "canonical_form")} for e in entries]
    (directory / "index.json").write_text(json.dumps(index, indent=2) + "\n")
    for entry in entries:
        out.print(f"{entry['fingerprint']}  {entry['name']}", soft_wrap=True)


def register(url: str, entries: list[dict[str, Any]], *, timeout_s: float = 10.0) -> dict[str, int]:
    """Register each schema under its full name; returns the registry's id for each."""
    ids: dict[str, int] = {}
    for entry in entries:
        target = f"{url.rstrip('/')}/subjects/{entry['name']}/versions"
        try:
            response = requests.post(
                target,
                json={"schemaType": "AVRO", "schema": entry["schema"]},
                headers={"Content-Type": REGISTRY_MEDIA_TYPE, "Accept": REGISTRY_MEDIA_TYPE},
                timeout=timeout_s,
            )
        except requests.RequestException as exc:
            raise TransportError(f"schema registry unreachable: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise ConfigurationError(
                f"schema registry refused {entry['name']}: HTTP {response.status_code}"
            )
        ids[entry["name"]] = int(response.json()["id"])
    return ids


@schemas_app.command("register")
def register_command(
    url: Annotated[str, typer.Argument(help="the registry's base URL")],
) -> None:
    """Register every schema in a Confluent-API schema registry (subject = full name)."""
    try:
        ids = register(url, exported())
    except (ConfigurationError, TransportError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    for name, schema_id in ids.items():
        out.print(f"{name}: id {schema_id}")
