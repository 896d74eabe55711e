"""The probe server answers /healthz, /readyz and /metrics over real HTTP, from real counters."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator

import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from broker.app.observability.metrics import EnforcerMetrics, Watched, reason_label
from broker.app.observability.server import ProbeServer, Readiness, serving
from broker.domain.decisions import DecisionInput
from broker.domain.report import HandlingCode, Marking, ReportType
from broker.enforcer.processor import EnforcerStats
from broker.enforcer.runtime.embargo import EmbargoStats
from broker.policy.bundle import PolicyBundle, load_bundle
from broker.policy.cache import CachedDecisionPoint
from broker.policy.rego import RegoDecisionPoint
from broker.resources import POLICIES_DIR
from broker.wire.codec import SchemaCatalog
from broker.wire.records import InboundRecord


async def _request(port: int, raw: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    response = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


async def _get(port: int, path: str) -> tuple[int, bytes]:
    return await _request(port, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())


def _samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


@pytest.fixture
async def readiness() -> Readiness:
    return Readiness()


@pytest.fixture
async def port(readiness: Readiness) -> AsyncIterator[int]:
    server = ProbeServer("127.0.0.1", 0, metrics=None, readiness=readiness)
    await server.start()
    try:
        yield server.address[1]
    finally:
        await server.close()


async def test_readyz_names_the_first_unmet_condition_until_the_group_is_joined(
    port: int, readiness: Readiness
) -> None:
    stop = asyncio.Event()
    readiness.stop = stop
    assert await _get(port, "/readyz") == (
        503,
        b"not ready: kafka clients not started\npartitions: 0\n",
    )
    joined, owned = False, 0
    readiness.joined = lambda: joined
    readiness.partitions = lambda: owned
    assert await _get(port, "/readyz") == (
        503,
        b"not ready: joining the submission group\npartitions: 0\n",
    )
    joined = True
    assert await _get(port, "/readyz") == (200, b"ready\npartitions: 0\n")
    owned = 3
    assert await _get(port, "/readyz") == (200, b"ready\npartitions: 3\n")
    stop.set()
    assert await _get(port, "/readyz") == (503, b"not ready: stopping\npartitions: 3\n")


async def test_healthz_answers_while_the_loop_runs_whatever_the_readiness(port: int) -> None:
    assert await _get(port, "/healthz") == (200, b"ok\n")
    assert await _get(port, "/healthz?verbose=1") == (200, b"ok\n")


async def test_unknown_paths_other_methods_and_garbage_get_http_errors(port: int) -> None:
    assert (await _get(port, "/admin"))[0] == 404
    assert (await _request(port, b"POST /readyz HTTP/1.1\r\n\r\n"))[0] == 405
    assert (await _request(port, b"hello\r\n\r\n"))[0] == 400
    status, body = await _request(port, b"HEAD /healthz HTTP/1.1\r\n\r\n")
    assert (status, body) == (200, b"")
    assert (await _get(port, "/metrics"))[0] == 404  # this server was given no metrics


async def test_a_client_sending_an_endless_line_is_cut_off_and_the_server_keeps_serving(
    port: int,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /" + b"a" * 20_000)
    await writer.drain()
    assert await reader.read() == b""
    writer.close()
    assert await _get(port, "/healthz") == (200, b"ok\n")


def _record(offset: int, age_s: float) -> InboundRecord:
    return InboundRecord(
        topic="ixb.submit.NL",
        partition=0,
        offset=offset,
        key=None,
        value=b"",
        headers=(),
        timestamp_ms=int((time.time() - age_s) * 1000),
    )


@pytest.fixture(scope="module")
def bundle() -> PolicyBundle:
    return load_bundle(POLICIES_DIR, SchemaCatalog.load())


@pytest.fixture
def cache(bundle: PolicyBundle) -> CachedDecisionPoint:
    return CachedDecisionPoint(RegoDecisionPoint(bundle), bundle.time_boundaries_s())


async def test_metrics_export_the_enforcers_own_counters_and_observed_durations(
    cache: CachedDecisionPoint,
) -> None:
    stats = EnforcerStats(
        submissions=7,
        completed=6,
        deliveries=4,
        held=1,
        batches=2,
        withheld=Counter({"no_agreement": 3, "nl-be:report_type_not_covered": 1}),
        rejected=Counter({"bad_signature": 2, "Not A Code!": 1}),
    )
    embargo = EmbargoStats(released=1, refused=1)
    asked = DecisionInput(
        origin="NL",
        recipient="BE",
        report_type=ReportType.SMUGGLING,
        marking=Marking.GREEN,
        handling_code=HandlingCode.H1,
        now_s=int(time.time()),
    )
    for _ in range(4):
        cache.decide(asked)  # one miss, three hits
    metrics = EnforcerMetrics(
        Watched(stats=stats, embargo=embargo, held=lambda: 5, decision_point=lambda: cache)
    )
    metrics.batch_acknowledged([_record(0, 0.2), _record(1, 2.0)], 0.03)

    samples = _samples(await metrics.exposition())

    assert samples["ixb_submissions_total", ()] == 7
    assert samples["ixb_submissions_completed_total", ()] == 6
    assert samples["ixb_deliveries_total", ()] == 5  # 4 direct, 1 released from embargo
    decisions = {
        labels: value for (name, labels), value in samples.items() if name == "ixb_decisions_total"
    }
    assert decisions == {
        (("outcome", "delivered"), ("reason", "allowed")): 4,
        (("outcome", "held"), ("reason", "embargo")): 1,
        (("outcome", "withheld"), ("reason", "nl-be:report_type_not_covered")): 1,
        (("outcome", "withheld"), ("reason", "no_agreement")): 3,
    }
    rejected = {
        labels: value for (name, labels), value in samples.items() if name == "ixb_rejected_total"
    }
    assert rejected == {
        (("reason", "bad_signature"),): 2,
        (("reason", "embargo_release_refused"),): 1,
        (("reason", "other"),): 1,
    }
    assert samples["ixb_held", ()] == 5
    assert samples["ixb_decision_cache_hit_ratio", ()] == 0.75
    assert samples["ixb_batch_seconds_count", ()] == 1
    assert samples["ixb_batch_seconds_bucket", (("le", "0.05"),)] == 1
    assert samples["ixb_batch_seconds_bucket", (("le", "0.025"),)] == 0
    assert samples["ixb_end_to_end_seconds_count", ()] == 2
    assert samples["ixb_end_to_end_seconds_bucket", (("le", "0.25"),)] == 1
    assert samples["ixb_end_to_end_seconds_bucket", (("le", "2.5"),)] == 2


async def test_two_enforcers_in_one_process_export_their_own_numbers(
    cache: CachedDecisionPoint,
) -> None:
    def metrics(submissions: int) -> EnforcerMetrics:
        return EnforcerMetrics(
            Watched(
                stats=EnforcerStats(submissions=submissions),
                embargo=EmbargoStats(),
                held=lambda: 0,
                decision_point=lambda: cache,
            )
        )

    first, second = metrics(1), metrics(2)
    assert _samples(await first.exposition())["ixb_submissions_total", ()] == 1
    assert _samples(await second.exposition())["ixb_submissions_total", ()] == 2


def test_a_reason_that_is_not_a_code_is_exported_as_other() -> None:
    assert (
        reason_label("test-nl-be:report_type_not_covered") == "test-nl-be:report_type_not_covered"
    )
    assert reason_label("bad_signature") == "bad_signature"
    assert reason_label("Adrian Varga") == "other"
    assert reason_label("") == "other"
    assert reason_label("x" * 121) == "other"


async def test_an_address_in_use_is_logged_and_the_enforcer_goes_on_without_probes() -> None:
    taken = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = taken.sockets[0].getsockname()[1]
    try:
        with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as captured:
            async with serving("127.0.0.1", port, metrics=None, readiness=Readiness()) as at:
                assert at is None
    finally:
        taken.close()
        await taken.wait_closed()
    [failed] = [e for e in captured if e["event"] == "probe_server_failed"]
    assert (failed["port"], failed["log_level"]) == (port, "error")
