"""``ixb taxii serve`` against the real enforcer and Kafka, read with taxii2-client.

Two nations publish to each other; each reads its own collection as the
TAXII client a partner would use, and nothing of the other's. Every object
fetched passes stix2-validator.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import ipaddress
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from stix2validator import ValidationOptions, validate_instance
from taxii2client.exceptions import TAXIIServiceException
from taxii2client.v21 import Collection, Server, as_pages

from broker.app.settings import Settings
from broker.cli.taxii import ServeOptions, serve, store_file, users_file
from connectors.stix import InboundDefaults, bundle_to_reports
from connectors.stix.taxii_source import poll_collection
from connectors.taxii.auth import add_user
from connectors.taxii.feeder import FeedCounts
from connectors.taxii.server import collection_id
from tests.factories import make_report
from tests.integration.conftest import Exchange

pytestmark = pytest.mark.integration
T = TypeVar("T")


class Running:
    """A TAXII server task and the secrets of its two users."""

    def __init__(self, url: str, secrets: dict[str, str], counts: dict[str, FeedCounts]) -> None:
        self.url = url
        self.secrets = secrets
        self.counts = counts

    def server(self, nation: str, secret: str | None = None) -> Server:
        return Server(self.url, user=nation.lower(), password=secret or self.secrets[nation])

    def collection(self, of: str, *, as_nation: str) -> Collection:
        root = self.url.removesuffix("taxii2/")
        return Collection(
            f"{root}ixb/collections/{collection_id(of)}/",
            user=as_nation.lower(),
            password=self.secrets[as_nation],
        )

    async def wait_for(self, nation: str, deliveries: int, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.counts[nation].added + self.counts[nation].already_held < deliveries:
            if time.monotonic() > deadline:
                raise AssertionError(f"{nation}: {self.counts[nation]} of {deliveries}")
            await asyncio.sleep(0.1)


def secrets_for(settings: Settings) -> dict[str, str]:
    path = users_file(settings)
    if path.exists():
        return json.loads((path.parent / "test-secrets.json").read_text())  # type: ignore[no-any-return]
    made = {n: add_user(path, n.lower(), n) for n in ("NL", "BE")}
    (path.parent / "test-secrets.json").write_text(json.dumps(made))
    return made


@contextlib.asynccontextmanager
async def taxii_server(
    exchange: Exchange, options: ServeOptions | None = None
) -> AsyncIterator[Running]:
    secrets = secrets_for(exchange.settings)
    stop, listening = asyncio.Event(), asyncio.get_running_loop().create_future()
    counts: dict[str, FeedCounts] = {}
    task = asyncio.create_task(
        serve(
            exchange.settings,
            exchange.bootstrap,
            options or ServeOptions(("NL", "BE"), port=0),
            stop,
            on_listening=listening.set_result,
            counts=counts,
        )
    )
    try:
        url = await asyncio.wait_for(listening, timeout=20)
        yield Running(url, secrets, counts)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=20)


async def off_loop(work: Callable[[], T]) -> T:
    """taxii2-client is synchronous: run it beside the server's event loop."""
    return await asyncio.to_thread(work)


def every_object(collection: Collection, **filters: Any) -> list[dict[str, Any]]:
    return [
        obj
        for page in as_pages(collection.get_objects, per_request=7, **filters)
        for obj in page.get("objects", [])
    ]


def read_as(running: Running, nation: str) -> tuple[list[str], list[dict[str, Any]]]:
    """What ``nation`` finds: the collections it sees, and every object of the first."""
    [root] = running.server(nation).api_roots
    collections = root.collections
    return [c.id for c in collections], every_object(collections[0])


async def publish(exchange: Exchange, origin: str, count: int) -> None:
    await exchange.publish(origin, [exchange.seal(make_report(origin)) for _ in range(count)])


async def test_each_nation_reads_only_its_own_verified_feed_over_taxii(
    exchange: Exchange,
) -> None:
    await publish(exchange, "NL", 3)
    await publish(exchange, "BE", 2)
    await exchange.wait_completed(5)
    async with taxii_server(exchange) as running:
        await running.wait_for("BE", 3)
        await running.wait_for("NL", 2)
        for nation, reports in (("BE", 3), ("NL", 2)):
            visible, objects = await off_loop(functools.partial(read_as, running, nation))
            assert visible == [collection_id(nation)]
            assert sum(o["type"] == "report" for o in objects) == reports
            assert len({(o["id"], o.get("modified")) for o in objects}) == len(objects)
            for obj in objects:
                result = validate_instance(obj, ValidationOptions(version="2.1"))
                assert result.errors == [], obj["id"]
            origins = {
                next(iter(o["extensions"].values()))["origin"]
                for o in objects
                if o["type"] == "report"
            }
            assert origins == {"NL" if nation == "BE" else "BE"}


async def test_a_nation_asking_for_anothers_collection_is_refused(exchange: Exchange) -> None:
    async with taxii_server(exchange) as running:
        foreign = running.collection("NL", as_nation="BE")
        with pytest.raises(requests.HTTPError) as refused:
            await off_loop(foreign.get_objects)
        assert refused.value.response is not None
        assert refused.value.response.status_code == 403
        with pytest.raises(requests.HTTPError) as unknown:
            await off_loop(lambda: running.server("BE", secret="not-the-secret").api_roots)
        assert unknown.value.response is not None
        assert unknown.value.response.status_code == 401


async def test_pagination_and_added_after_follow_the_specification(exchange: Exchange) -> None:
    await publish(exchange, "NL", 4)
    await exchange.wait_completed(4)
    async with taxii_server(exchange) as running:
        await running.wait_for("BE", 4)
        collection = running.collection("BE", as_nation="BE")
        manifest = await off_loop(lambda: collection.get_manifest(limit=1000))
        entries = manifest["objects"]
        assert manifest["more"] is False
        assert len(entries) == len({e["id"] for e in entries})  # one version of each
        page = await off_loop(lambda: collection.get_objects(limit=5))
        assert (len(page["objects"]), page["more"]) == (5, True)
        after = await off_loop(lambda: collection.get_objects(limit=5, next=page["next"]))
        assert not {o["id"] for o in after["objects"]} & {o["id"] for o in page["objects"]}
        middle = entries[len(entries) // 2]["date_added"]
        later = await off_loop(lambda: every_object(collection, added_after=middle))
        expected = [e["id"] for e in entries if e["date_added"] > middle]
        assert [o["id"] for o in later] == expected
        reports = await off_loop(lambda: every_object(collection, type="report"))
        assert len(reports) == 4
        one = reports[0]
        fetched = await off_loop(lambda: collection.get_object(one["id"]))
        assert fetched["objects"] == [one]
        versions = await off_loop(lambda: collection.object_versions(one["id"]))
        assert versions["versions"] == [one["modified"]]


async def test_a_restarted_server_serves_nothing_twice(exchange: Exchange) -> None:
    await publish(exchange, "NL", 2)
    await exchange.wait_completed(2)
    async with taxii_server(exchange) as running:
        await running.wait_for("BE", 2)
        collection = running.collection("BE", as_nation="BE")
        before = await off_loop(lambda: every_object(collection))
    await publish(exchange, "NL", 1)
    await exchange.wait_completed(3)
    async with taxii_server(exchange) as running:
        await running.wait_for("BE", 3)
        assert running.counts["BE"].already_held == 2
        collection = running.collection("BE", as_nation="BE")
        after = await off_loop(lambda: every_object(collection))
    assert [o["id"] for o in after[: len(before)]] == [o["id"] for o in before]
    assert sum(o["type"] == "report" for o in after) == 3
    assert len({o["id"] for o in after}) == len(after)
    assert store_file(exchange.settings).exists()


async def test_requests_the_specification_refuses_get_taxii_error_objects(
    exchange: Exchange,
) -> None:
    async with taxii_server(exchange) as running:
        collection = running.collection("BE", as_nation="BE")
        base = collection.url
        auth = ("be", running.secrets["BE"])
        taxii = {"Accept": "application/taxii+json;version=2.1"}

        def ask(method: str, url: str, **kw: Any) -> requests.Response:
            return requests.request(method, url, auth=auth, timeout=10, **kw)

        wrong_type = await off_loop(lambda: ask("GET", base, headers={"Accept": "text/html"}))
        bad_limit = await off_loop(lambda: ask("GET", f"{base}objects/?limit=0", headers=taxii))
        write = await off_loop(lambda: ask("POST", f"{base}objects/", headers=taxii, json={}))
        status = await off_loop(
            lambda: ask("GET", f"{base.split('collections')[0]}status/x/", headers=taxii)
        )
        for response, code in ((wrong_type, 406), (bad_limit, 400), (write, 403), (status, 404)):
            assert response.status_code == code
            assert response.headers["Content-Type"] == "application/taxii+json;version=2.1"
            assert response.json()["http_status"] == str(code)
        with pytest.raises(TAXIIServiceException):
            await off_loop(lambda: collection.add_objects({"type": "bundle", "objects": []}))


async def test_an_adapter_polling_a_taxii_collection_gets_the_reports_it_holds(
    exchange: Exchange,
) -> None:
    reports = [make_report("NL") for _ in range(3)]
    await exchange.publish("NL", [exchange.seal(r) for r in reports])
    await exchange.wait_completed(3)
    async with taxii_server(exchange) as running:
        await running.wait_for("BE", 3)
        url = running.collection("BE", as_nation="BE").url
        bundle = await off_loop(
            functools.partial(
                poll_collection, url, user="be", password=running.secrets["BE"], per_request=9
            )
        )
    polled = bundle_to_reports(bundle, InboundDefaults(origin="NL"))
    assert sorted(str(r.report_id) for r in polled) == sorted(str(r.report_id) for r in reports)
    assert {r.title for r in polled} == {r.title for r in reports}
    assert all(r.summary is None for r in polled)  # as BE was given them: withheld


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as an operator's PKI would issue."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ixb-taxii-test")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_over_tls_a_client_that_trusts_the_certificate_reads_its_feed(
    exchange: Exchange, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # requests lets these override a session's own trust: the client must trust our cert.
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    await publish(exchange, "NL", 1)
    await exchange.wait_completed(1)
    cert, key = self_signed(tmp_path)
    options = ServeOptions(("NL", "BE"), port=0, tls_cert=cert, tls_key=key)
    async with taxii_server(exchange, options) as running:
        await running.wait_for("BE", 1)
        assert running.url.startswith("https://127.0.0.1:")
        collection = Collection(
            running.collection("BE", as_nation="BE").url,
            user="be",
            password=running.secrets["BE"],
            verify=str(cert),
        )
        objects = await off_loop(functools.partial(every_object, collection, type="report"))
        assert len(objects) == 1
        untrusting = Collection(collection.url, user="be", password=running.secrets["BE"])
        with pytest.raises(requests.exceptions.SSLError):
            await off_loop(untrusting.get_objects)
