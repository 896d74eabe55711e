"""Configuration, read once at the edge (the CLI) and passed down as typed values.

Every setting can come from the environment with the ``IXB_`` prefix, e.g.
``IXB_KAFKA_BOOTSTRAP=kafka-1:9092``. Library code never reads the
environment itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from broker.resources import POLICIES_DIR
from broker.wire.codec import DEFAULT_MAX_MESSAGE_BYTES

_HOST_PORT = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(?P<port>[0-9]{1,5})")


def _host_port(value: str) -> str:
    """``host:port`` (an IPv6 host in brackets) with a port up to 65535, or empty."""
    match = _HOST_PORT.fullmatch(value)
    if value and (match is None or int(match["port"]) > 65535):
        raise ValueError("expected host:port (port 0 picks a free one), or empty for none")
    return value


def split_host_port(value: str) -> tuple[str, int]:
    """``("127.0.0.1", 9464)`` from ``127.0.0.1:9464``; brackets come off an IPv6 host."""
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IXB_", frozen=True, extra="ignore")

    kafka_bootstrap: str | None = Field(
        default=None,
        description="host:port[,host:port]; unset means the embedded broker started by "
        "`ixb kafka up` (its address is read from <home>/kafka-bootstrap)",
    )
    client_config: Path | None = Field(
        default=None,
        description="a Kafka client configuration (`ixb credentials issue` writes one: "
        "bootstrap.servers, security.protocol=SSL, the CA, the party's certificate and key); "
        "its bootstrap.servers applies unless IXB_KAFKA_BOOTSTRAP is set",
    )
    pki_dir: Path | None = Field(
        default=None,
        description="the federation CA and the certificates `ixb pki` issued (default <home>/pki)",
    )
    kafka_engine: Literal["kafka", "tansu"] = Field(
        default="kafka",
        description="the embedded broker that `ixb kafka up`, the demo, the bench and the "
        "tests start: Apache Kafka 4 (KRaft, from its Maven Central jars; needs a JDK >= 17 "
        "and Maven the first time) or Tansu (no JVM; memory only, no idempotent producer)",
    )
    kafka_idempotence: bool = Field(
        default=True,
        description="producers ask Kafka for idempotence (a retried send never writes twice); "
        "off only for a broker that cannot serve it (Tansu)",
    )
    engine_cache: Path = Field(
        default_factory=lambda: Path.home() / ".cache" / "ixb",
        description="where the embedded engines are cached, one folder per engine and version",
    )
    home: Path = Field(default=Path(".ixb"), description="keystore, registry, local state")
    policies_dir: Path = POLICIES_DIR
    topic_namespace: str = ""
    group_id: str = "ixb-enforcer"
    max_message_bytes: Annotated[int, Field(gt=1024)] = DEFAULT_MAX_MESSAGE_BYTES
    consumer_session_timeout_ms: Annotated[int, Field(ge=1000)] = Field(
        default=10_000,
        description="group session timeout; the demo, the bench and the tests give the "
        "Kafka they start a shorter one (broker/kafka/embedded, group_session_timeout_ms)",
    )
    batch_max_records: Annotated[int, Field(ge=1, le=100_000)] = 500
    max_clock_skew_s: Annotated[int, Field(ge=0)] = 300
    max_report_age_s: Annotated[int, Field(ge=60)] = Field(
        default=3600,
        description="a report issued longer ago is refused as stale; report ids are "
        "remembered this long for replay protection",
    )
    opa_url: str | None = Field(
        default=None,
        description="OPA server to decide with, e.g. http://opa:8181; "
        "unset means Rego evaluated in-process (regopy)",
    )
    opa_manage: Literal["push", "verify"] = Field(
        default="push",
        description="push: upload the bundle's Rego and agreements to the server; "
        "verify: only check that the server already holds exactly them",
    )
    opa_timeout_s: Annotated[float, Field(gt=0, le=30)] = 2.0
    policy_retry_initial_s: Annotated[float, Field(gt=0, le=60)] = Field(
        default=0.5,
        description="how long a partition waits after a submission the policy could not "
        "decide before it is tried again; doubled at each further failure in a row",
    )
    policy_retry_max_s: Annotated[float, Field(gt=0, le=600)] = Field(
        default=30.0, description="the longest such wait, however long the engine stays down"
    )
    policy_check_interval_s: Annotated[float, Field(ge=0)] = Field(
        default=1.0, description="how often the enforcer looks for changed policy files"
    )
    metrics_addr: Annotated[str, AfterValidator(_host_port)] = Field(
        default="127.0.0.1:9464",
        description="host:port where the enforcer serves /metrics (Prometheus), /healthz "
        "and /readyz; port 0 picks a free one; empty: no server",
    )
    audit_checkpoint_every: Annotated[int, Field(ge=1)] = Field(
        default=1000,
        description="the running broker signs a decision-log checkpoint after this many entries",
    )
    audit_checkpoint_interval_s: Annotated[float, Field(gt=0)] = Field(
        default=10.0,
        description="... or after this many seconds, when the log grew since the last one",
    )
    log_origin: Annotated[str, Field(pattern=r"^[^\s+/][^\s+]*[^\s+/]$|^[^\s+/]$")] = Field(
        default="ixb.local",
        description="the decision log's name in C2SP checkpoints: each partition's origin "
        "line is <log_origin>/<topic>/<partition>; unique per deployment a witness serves",
    )
    witnesses: str = Field(
        default="",
        description="comma-separated URL prefixes of the partners' tlog-witnesses the "
        "broker pushes every checkpoint to (e.g. http://witness.be.example:7380)",
    )
    witness_timeout_s: Annotated[float, Field(gt=0, le=60)] = 5.0
    witness_listen: Annotated[str, AfterValidator(_host_port)] = Field(
        default="127.0.0.1:7380", description="host:port where `ixb witness` serves tlog-witness"
    )
    witness_quorum: Annotated[int, Field(ge=0)] = Field(
        default=0,
        description="cosignatures of distinct partners' witnesses `ixb audit verify` and "
        "`check-receipt` require on a checkpoint before they trust it (0: none)",
    )

    @property
    def pki_path(self) -> Path:
        return self.pki_dir or self.home / "pki"

    @property
    def registry_path(self) -> Path:
        return self.home / "registry.json"

    @property
    def keystore_dir(self) -> Path:
        return self.home / "keys"

    @property
    def pseudonym_secrets_dir(self) -> Path:
        return self.home / "secrets" / "pseudonyms"

    @property
    def witness_urls(self) -> tuple[str, ...]:
        return tuple(u.strip() for u in self.witnesses.split(",") if u.strip())

    def witness_dir(self, nation: str) -> Path:
        """Where ``ixb witness --nation`` keeps its state (one file per log origin)."""
        return self.home / "witness" / nation

    @property
    def reload_request_file(self) -> Path:
        """Touched by `ixb agreements reload`; running enforcers watch it."""
        return self.home / "policy-reload-request"

    @property
    def embedded_bootstrap_file(self) -> Path:
        return self.home / "kafka-bootstrap"

    @property
    def embedded_engine_file(self) -> Path:
        """Which engine `ixb kafka up` runs (what its producers may ask of it)."""
        return self.home / "kafka-engine"

    def environment(self, inherited: Mapping[str, str]) -> dict[str, str]:
        """``inherited`` without its IXB_ variables, plus these settings as IXB_ variables.

        For an ixb subprocess (tests, the bench, the resilience run) that must
        run with exactly these settings: each is read back the way it was
        given here. An unset optional one stays unset. ``IXB_NATIVE`` is no
        setting but the process's choice of implementation (broker/native.py):
        it is inherited, so ``IXB_NATIVE=0 make bench`` runs the reference in
        the enforcers too.
        """
        env = {k: v for k, v in inherited.items() if not k.startswith("IXB_") or k == "IXB_NATIVE"}
        for name, value in self.model_dump(mode="json").items():
            if value is not None:
                env[f"IXB_{name.upper()}"] = value if isinstance(value, str) else json.dumps(value)
        return env
