"""Apache Kafka 4 (KRaft) from its Maven Central jars: one node, or a three-node cluster.

For tests, the demo, the bench and the resilience run. :class:`ApacheKafka`
formats each node's storage with Kafka's own ``kafka.tools.StorageTool``,
writes its configuration (:mod:`broker.kafka.embedded.kraft`), starts
``kafka.Kafka`` on free loopback ports under the watchdog (so no JVM
outlives its starter, even a SIGKILLed one) and returns once every node
answers metadata and the cluster counts all its brokers.

Fault tests drive one node at a time by id: :meth:`ApacheKafka.kill`
(SIGKILL), :meth:`ApacheKafka.restart` (the same node, ports and data, back
in the cluster), :meth:`ApacheKafka.freeze` and :meth:`ApacheKafka.thaw`
(SIGSTOP, SIGCONT); :meth:`ApacheKafka.active_controller` and
:meth:`ApacheKafka.partition_leaders` (or :meth:`ApacheKafka.partition_states`,
with the in-sync replicas) say where to aim. Data lives in a
temporary folder removed on :meth:`ApacheKafka.stop` unless ``workdir`` is
given.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from broker.errors import ConfigurationError, TransportError
from broker.kafka import security
from broker.kafka.admin import on_some_broker, wait_until_ready
from broker.kafka.embedded import kraft
from broker.kafka.embedded.engine import KAFKA_VERSION
from broker.kafka.embedded.nodes import KafkaNode, release_workdir, temporary_workdir
from broker.kafka.embedded.ports import free_loopback_ports
from broker.kafka.embedded.secure import SecureCluster
from broker.trust.identities import Identity, Role

FORMAT_TIMEOUT_S = 60.0
# A short-lived tool: the quick JIT tier and the serial collector start it soonest.
_TOOL_JVM = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xshare:auto"]


@dataclass(frozen=True, slots=True)
class Replicas:
    """One partition as the cluster reports it: its leader (-1: none) and in-sync replicas."""

    leader: int
    isr: frozenset[int]


class ApacheKafka:
    """``nodes`` combined KRaft nodes; use as a context manager or call start()/stop()."""

    idempotence = True

    def __init__(
        self,
        libs: Path,
        *,
        nodes: int = 1,
        port: int | None = None,
        advertised_port: int | None = None,
        workdir: Path | None = None,
        java: str | None = None,
        heap_mb: int = 1024,
        startup_timeout_s: float = 90.0,
        quick_start: bool = False,
        secure: SecureCluster | None = None,
    ) -> None:
        """``port`` and ``advertised_port`` (a proxy in front, in tests) only for one node.

        ``quick_start``: only the JVM's quick JIT tier (C1), which halves a
        node's start-up CPU (measured here: 2.0 s instead of 3.8 s, and 3-4 s
        instead of 7 s to answer on a loaded machine) at a cost to its peak
        throughput. For fault tests, whose nodes restart under load; not for
        the bench, which measures that throughput.

        ``secure``: TLS on every listener, client certificates required, the
        authorizer on; the cluster administers itself as the PKI's operator.
        """
        if nodes < 1 or (nodes > 1 and (port or advertised_port)):
            raise ConfigurationError("fixed ports are for a single node only")
        self.libs = libs
        self.startup_timeout_s = startup_timeout_s
        self._java = java or shutil.which("java")
        self._heap_mb = heap_mb
        self._quick_start = quick_start
        self._own_workdir = workdir is None
        self.workdir: Path | None = workdir  # without one, a temporary folder made by start
        self.cluster_id = kraft.cluster_id()
        free = iter(free_loopback_ports(2 * nodes))
        self.ports: dict[int, kraft.NodePorts] = {}
        for node_id in range(1, nodes + 1):
            client, controller = port or next(free), next(free)
            self.ports[node_id] = kraft.NodePorts(client, controller, advertised_port or client)
        self.nodes: dict[int, KafkaNode] = {}
        self.secure = secure

    @property
    def description(self) -> str:
        secured = ", TLS, mTLS principals, ACLs" if self.secure else ""
        if len(self.ports) == 1:
            return f"Apache Kafka {KAFKA_VERSION} (KRaft, one combined node{secured})"
        return (
            f"Apache Kafka {KAFKA_VERSION} (KRaft, {len(self.ports)} combined nodes, "
            f"replication factor 3, min.insync.replicas 2{secured})"
        )

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{p.advertised}" for _, p in sorted(self.ports.items()))

    @property
    def _addresses(self) -> list[str]:
        return [self.bootstrap, *(f"127.0.0.1:{p.advertised}" for p in self.ports.values())]

    @property
    def pids(self) -> list[int]:
        return [n.pid for n in self.nodes.values() if n.pid is not None]

    @property
    def running(self) -> bool:
        """Every node is alive (a frozen one too)."""
        return bool(self.nodes) and all(n.running for n in self.nodes.values())

    def start(self) -> ApacheKafka:
        """Format every node's storage, start them all, and wait until the cluster is whole."""
        if self._java is None:
            raise ConfigurationError("running Apache Kafka needs a JDK >= 17 (`java` on the PATH)")
        if not (self.libs / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file():
            raise ConfigurationError(f"no Apache Kafka {KAFKA_VERSION} jars in {self.libs}")
        workdir = self.workdir = self.workdir or temporary_workdir()
        command = self._jvm(workdir)
        try:
            self.nodes = {
                node_id: KafkaNode(node_id, ports, workdir / f"node-{node_id}", command)
                for node_id, ports in self.ports.items()
            }
            self._format(workdir)
            if self.secure is not None:
                for address in self._addresses:  # the cluster's, and each node's on its own
                    security.use(self.secure.client_config(Identity(Role.OPERATOR), address))
            for node in self.nodes.values():
                node.start()
            asyncio.run(self._until_whole(list(self.nodes.values()), warm_up=True))
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every node at once (each gets SIGTERM, then SIGKILL after its grace).

        Nodes whose data goes with them (no ``workdir`` given) are killed
        instead: a node holding thousands of partitions (a test session's)
        takes longer than its grace to close them all, and several nodes
        each wait on a controlled shutdown that needs the quorum being
        stopped around them.
        """
        if self._own_workdir:
            for node in self.nodes.values():
                node.kill(wait=False)
        for node in self.nodes.values():
            node.stop(wait=False)
        for node in self.nodes.values():
            node.stop()
        if self._own_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            release_workdir(self.workdir)
            self.workdir = None
            if self.secure is not None:
                for address in self._addresses:
                    security.forget(address)

    def kill(self, node_id: int) -> None:
        """SIGKILL node ``node_id``; its data stays for :meth:`restart`."""
        self.nodes[node_id].kill()

    def restart(self, node_id: int) -> None:
        """Start node ``node_id`` again on its ports and data; return once it is back."""
        node = self.nodes[node_id]
        if node.running:
            node.stop()
        node.start()
        asyncio.run(self._until_whole([node]))

    def freeze(self, node_id: int) -> None:
        """SIGSTOP: the node keeps its connections open and answers nothing."""
        self.nodes[node_id].freeze()

    def thaw(self, node_id: int) -> None:
        self.nodes[node_id].thaw()

    def active_controller(self) -> int | None:
        """The node that leads the metadata quorum, as the running nodes last recorded it.

        From each node's ``quorum-state`` file (Kafka rewrites it on every
        election): the leader of the newest epoch any running node knows.
        """
        known = [n.quorum_state() for n in self.nodes.values() if n.running]
        newest = max((k for k in known if k is not None), default=None)
        return newest[1] if newest is not None else None

    async def partition_leaders(self, topic: str) -> dict[int, int]:
        """Partition number -> the node id leading it (-1: no leader right now)."""
        states = await self.partition_states([topic])
        return {partition: state.leader for (_, partition), state in states.items()}

    async def partition_states(
        self, topics: Iterable[str], *, timeout_s: float = 15.0
    ) -> dict[tuple[str, int], Replicas]:
        """(topic, partition) -> its leader and in-sync replicas, in one request for all topics.

        A fault schedule asks this every few hundred milliseconds while a node
        is away; one admin client and one request keep each look short. The
        admin client asks a node picked at random from its metadata, which
        lists a dead node until the cluster fences it, and may pick it every
        time it retries (seen: a fault test failing on one such look); so a
        look that reached no live node is made again, with a new client,
        for up to ``timeout_s``.
        """
        wanted = list(topics)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                described = await self._describe(wanted)
                break
            except KafkaError as exc:
                if time.monotonic() > deadline:
                    raise TransportError(f"cannot describe {', '.join(wanted)}: {exc}") from exc
            await asyncio.sleep(0.2)
        return {
            (entry["topic"], p["partition"]): Replicas(p["leader"], frozenset(p["isr"]))
            for entry in described
            for p in entry.get("partitions", [])
        }

    async def _describe(self, topics: list[str]) -> list[Any]:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap,
            **security.client_options(self.bootstrap),
            request_timeout_ms=5000,
        )
        try:
            await admin.start()
            return await on_some_broker(lambda: admin.describe_topics(topics))
        finally:
            await admin.close()

    def _jvm(self, workdir: Path) -> list[str]:
        assert self._java is not None
        return [
            self._java,
            f"-Xms{min(256, self._heap_mb)}m",
            f"-Xmx{self._heap_mb}m",
            *(["-XX:TieredStopAtLevel=1"] if self._quick_start else []),
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={workdir / 'log4j2.properties'}",
            "-cp",
            str(self.libs / "*"),
            "kafka.Kafka",
        ]

    def _format(self, workdir: Path) -> None:
        """Write each node's files and run ``StorageTool format`` for all of them at once."""
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "log4j2.properties").write_text(kraft.log4j2_properties())
        formats = []
        tls = self.secure.broker_tls(workdir) if self.secure is not None else None
        for node in self.nodes.values():
            node.directory.mkdir(parents=True, exist_ok=True)
            properties = kraft.server_properties(node.node_id, self.ports, node.data_dir, tls)
            (node.directory / "server.properties").write_text(kraft.render(properties))
            assert self._java is not None
            command = [
                self._java,
                *_TOOL_JVM,
                f"-Dlog4j2.configurationFile={workdir / 'log4j2.properties'}",
                "-cp",
                str(self.libs / "*"),
                "kafka.tools.StorageTool",
                "format",
                "--cluster-id",
                self.cluster_id,
                "--config",
                str(node.directory / "server.properties"),
            ]
            formats.append(
                subprocess.Popen(  # noqa: S603 - the cached JDK tool, fixed arguments
                    command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
                )
            )
        failures = []
        for node, process in zip(self.nodes.values(), formats, strict=True):
            try:
                output, _ = process.communicate(timeout=FORMAT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                output, _ = process.communicate()
            if process.returncode != 0:
                failures.append(f"node {node.node_id}: {output.strip()[-800:]}")
        if failures:
            raise TransportError("kafka-storage format failed: " + "; ".join(failures))

    async def _until_whole(self, nodes: list[KafkaNode], *, warm_up: bool = False) -> None:
        """Each of ``nodes`` answers metadata, and the cluster lists every broker.

        ``warm_up``: also have the cluster make its consumer-offsets topic
        (Kafka makes it when a group first needs a coordinator), so the first
        group does not wait for it and its client does not log that wait as
        an error.
        """
        deadline = time.monotonic() + self.startup_timeout_s
        try:
            for node in nodes:
                await wait_until_ready(node.bootstrap, timeout_s=deadline - time.monotonic())
            await self._until_brokers(len(self.ports), deadline)
            if warm_up:
                await self._until_group_coordinator(deadline)
        except TransportError as exc:
            tails = "\n".join(f"node {n.node_id}:\n{n.log_tail()}" for n in nodes)
            dead = [n.node_id for n in nodes if not n.running]
            raise TransportError(
                f"{self.description} did not start{f' (node {dead} exited)' if dead else ''}: "
                f"{exc}\n{tails}"
            ) from exc

    async def _until_brokers(self, count: int, deadline: float) -> None:
        seen = 0
        while time.monotonic() < deadline:
            admin = AIOKafkaAdminClient(
                bootstrap_servers=self.bootstrap,
                **security.client_options(self.bootstrap),
                request_timeout_ms=2000,
            )
            try:
                await admin.start()
                seen = len((await admin.describe_cluster())["brokers"])
                if seen >= count:
                    return
            except (KafkaError, OSError):
                pass
            finally:
                await admin.close()
            await asyncio.sleep(0.2)
        raise TransportError(f"the cluster listed {seen} of {count} brokers in time")

    async def _until_group_coordinator(self, deadline: float) -> None:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap,
            **security.client_options(self.bootstrap),
            request_timeout_ms=2000,
        )
        try:
            await admin.start()
            while True:
                try:
                    await admin.find_coordinator("ixb-warm-up")
                    return
                except KafkaError as exc:
                    if time.monotonic() > deadline:
                        raise TransportError(f"no group coordinator in time: {exc}") from exc
                    await asyncio.sleep(0.1)
        except KafkaError as exc:
            raise TransportError(f"cannot reach the cluster: {exc}") from exc
        finally:
            await admin.close()

    def __enter__(self) -> ApacheKafka:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with contextlib.suppress(Exception):
            self.stop()
