"""A TAXII 2.1 server: one read-only collection of verified deliveries per recipient nation.

Endpoints (TAXII 2.1 section 4-5): discovery at ``/taxii2/``, one API root
``/ixb/``, its collections, and per collection the objects, one object, its
versions and the manifest, with ``added_after``, ``limit``/``next`` and
``match[id|type|version|spec_version]``. Status resources exist only for
writes, which this server refuses (its collections are ``can_write:
false``): every status id is therefore unknown (404).

Every request is authenticated (:mod:`connectors.taxii.auth`); a principal
sees only its own nations' collections, and asking for another's collection
is 403 (it exists, and the client may not read it). Errors are TAXII error
objects with no payload value in them.

Why no write collection: publishing means signing with the agency's own key
(decision 1, "verify before decode", starts at the originator's signature).
A TAXII server run by the broker's operator that accepted objects would
have to hold every agency's key. An agency publishes STIX through its own
adapter instead: ``ixb publish --format stix``, from a file or polled from a
TAXII collection of its own tools.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import structlog
from aiohttp import web

from connectors.stix.vocabulary import IXB_NAMESPACE
from connectors.taxii.auth import Authenticator, Credentials, Principal
from connectors.taxii.protocol import (
    STIX_MEDIA_TYPE,
    TAXII_MEDIA_TYPE,
    TaxiiError,
    check_accept,
    encode_next,
    parse_query,
    taxii_json,
)
from connectors.taxii.store import Query, Row, Store

log = structlog.get_logger("ixb.taxii")

API_ROOT = "ixb"
_PRINCIPAL = web.RequestKey("principal", Principal)
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def collection_id(nation: str) -> str:
    """The collection of ``nation``'s verified deliveries; the same on every server."""
    return str(uuid.uuid5(IXB_NAMESPACE, f"taxii-collection/deliveries/{nation}"))


@dataclass(frozen=True, slots=True)
class Collection:
    id: str
    nation: str

    def resource(self) -> dict[str, object]:
        return {
            "id": self.id,
            "title": f"ixb deliveries to {self.nation}",
            "description": (
                f"Reports other nations shared with {self.nation}, as the broker delivered "
                "them and the ixb recipient library verified them, in STIX 2.1."
            ),
            "can_read": True,
            "can_write": False,
            "media_types": [STIX_MEDIA_TYPE],
        }


class TaxiiApp:
    """The routes and their handlers over one store and one authenticator."""

    def __init__(self, store: Store, authenticator: Authenticator, nations: Iterable[str]) -> None:
        self.store = store
        self.authenticator = authenticator
        self.collections = {collection_id(n): Collection(collection_id(n), n) for n in nations}

    def build(self) -> web.Application:
        app = web.Application(middlewares=[self._errors, self._authenticate])
        root = f"/{API_ROOT}"
        collection = f"{root}/collections/{{cid}}"
        app.router.add_get("/taxii2/", self.discovery)
        app.router.add_get(f"{root}/", self.api_root)
        app.router.add_get(f"{root}/collections/", self.list_collections)
        app.router.add_get(f"{collection}/", self.get_collection)
        app.router.add_get(f"{collection}/manifest/", self.manifest)
        app.router.add_get(f"{collection}/objects/", self.objects)
        app.router.add_post(f"{collection}/objects/", self.refuse_write)
        app.router.add_get(f"{collection}/objects/{{oid}}/", self.one_object)
        app.router.add_delete(f"{collection}/objects/{{oid}}/", self.refuse_write)
        app.router.add_get(f"{collection}/objects/{{oid}}/versions/", self.versions)
        app.router.add_get(f"{root}/status/{{sid}}/", self.status)
        return app

    @web.middleware
    async def _errors(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except TaxiiError as exc:
            return exc.response()
        except web.HTTPMethodNotAllowed:
            return TaxiiError(405, "Method Not Allowed", "not a method of this endpoint").response()
        except web.HTTPNotFound:
            return TaxiiError(404, "Not Found", "no such TAXII resource").response()
        except Exception as exc:  # noqa: BLE001 - any fault is a 500 error object, never a trace
            log.error("taxii_request_failed", path=request.path, error=type(exc).__name__)
            return TaxiiError(500, "Internal Server Error", "the server failed").response()

    @web.middleware
    async def _authenticate(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        principal = self.authenticator.authenticate(
            Credentials(request.headers.get("Authorization"), peer)
        )
        if principal is None:
            raise TaxiiError(401, "Unauthorized", "credentials are missing or not valid")
        check_accept(request.headers.get("Accept"))
        request[_PRINCIPAL] = principal
        return await handler(request)

    def _collection(self, request: web.Request) -> Collection:
        found = self.collections.get(request.match_info["cid"])
        if found is None:
            raise TaxiiError(404, "Not Found", "no such collection")
        if found.nation not in request[_PRINCIPAL].nations:
            raise TaxiiError(403, "Forbidden", "this collection belongs to another nation")
        return found

    async def discovery(self, request: web.Request) -> web.Response:
        base = f"{request.scheme}://{request.host}"
        return taxii_json(
            {
                "title": "ixb TAXII 2.1",
                "description": "Verified border-security deliveries, one collection per nation.",
                "default": f"{base}/{API_ROOT}/",
                "api_roots": [f"{base}/{API_ROOT}/"],
            }
        )

    async def api_root(self, request: web.Request) -> web.Response:
        return taxii_json(
            {
                "title": "ixb deliveries",
                "description": "Each nation's verified feed as STIX 2.1 (docs/STIX.md).",
                "versions": [TAXII_MEDIA_TYPE],
                "max_content_length": 0,  # this root accepts no content
            }
        )

    async def list_collections(self, request: web.Request) -> web.Response:
        nations = request[_PRINCIPAL].nations
        visible = [c.resource() for c in self.collections.values() if c.nation in nations]
        return taxii_json({"collections": visible} if visible else {})

    async def get_collection(self, request: web.Request) -> web.Response:
        return taxii_json(self._collection(request).resource())

    async def refuse_write(self, request: web.Request) -> web.Response:
        self._collection(request)
        raise TaxiiError(403, "Forbidden", "this collection is read-only (can_write is false)")

    async def status(self, request: web.Request) -> web.Response:
        raise TaxiiError(404, "Not Found", "no such status: this server accepts no writes")

    def _page(self, request: web.Request, query: Query | None = None) -> tuple[list[Row], bool]:
        collection = self._collection(request)
        query = query or parse_query(request.query, _multi(request))
        return self.store.query(collection.id, query)

    async def objects(self, request: web.Request) -> web.Response:
        rows, more = self._page(request)
        return _envelope(rows, more, {"objects": [r.object() for r in rows]})

    async def one_object(self, request: web.Request) -> web.Response:
        query = parse_query(request.query, _multi(request))
        if query.ids:
            raise TaxiiError(400, "Bad Request", "match[id] is not a filter of this endpoint")
        rows, more = self._page(request, _with_id(query, request.match_info["oid"]))
        if not rows and query.after_seq == 0:
            raise TaxiiError(404, "Not Found", "no such object in this collection")
        return _envelope(rows, more, {"objects": [r.object() for r in rows]})

    async def versions(self, request: web.Request) -> web.Response:
        query = parse_query(request.query, _multi(request))
        if query.ids or query.versions != ("last",):
            raise TaxiiError(400, "Bad Request", "match[id] and match[version] do not apply here")
        everything = _with_id(query, request.match_info["oid"], versions=("all",))
        rows, more = self._page(request, everything)
        if not rows and query.after_seq == 0:
            raise TaxiiError(404, "Not Found", "no such object in this collection")
        return _envelope(rows, more, {"versions": [r.version for r in rows]})

    async def manifest(self, request: web.Request) -> web.Response:
        rows, more = self._page(request)
        entries = [
            {
                "id": r.id,
                "date_added": r.date_added,
                "version": r.version,
                "media_type": STIX_MEDIA_TYPE,
            }
            for r in rows
        ]
        return _envelope(rows, more, {"objects": entries})


def _multi(request: web.Request) -> dict[str, list[str]]:
    return {key: request.query.getall(key) for key in request.query}


def _with_id(query: Query, object_id: str, *, versions: tuple[str, ...] | None = None) -> Query:
    return Query(
        added_after=query.added_after,
        ids=(object_id,),
        types=query.types,
        versions=versions or query.versions,
        spec_versions=query.spec_versions,
        after_seq=query.after_seq,
        limit=query.limit,
    )


def _envelope(rows: list[Row], more: bool, body: dict[str, object]) -> web.Response:
    """A page with ``more``, ``next`` and the first and last ``date_added`` (section 3.3.1)."""
    if not rows:
        return taxii_json({"more": False})
    envelope: dict[str, object] = {"more": more, **body}
    if more:
        envelope["next"] = encode_next(rows[-1].seq)
    return taxii_json(
        envelope,
        headers={
            "X-TAXII-Date-Added-First": rows[0].date_added,
            "X-TAXII-Date-Added-Last": rows[-1].date_added,
        },
    )
