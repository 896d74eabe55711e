"""TAXII 2.1's wire rules: media types, error objects, and the query parameters of a request.

Kept apart from the handlers so each rule is stated once, as the
specification states it (TAXII 2.1, OASIS Standard, sections 1.6, 3.3-3.6).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Mapping

from aiohttp import web

from connectors.taxii.store import Query, taxii_time

TAXII_MEDIA_TYPE = "application/taxii+json;version=2.1"
STIX_MEDIA_TYPE = "application/stix+json;version=2.1"
MAX_PAGE = 100


class TaxiiError(Exception):
    """An error the client gets as a TAXII error message (section 3.6.1)."""

    def __init__(self, status: int, title: str, description: str) -> None:
        super().__init__(title)
        self.status = status
        self.title = title
        self.description = description

    def response(self) -> web.Response:
        return taxii_json(
            {"title": self.title, "description": self.description, "http_status": str(self.status)},
            status=self.status,
            headers={"WWW-Authenticate": 'Basic realm="ixb TAXII"'} if self.status == 401 else None,
        )


def taxii_json(
    body: object, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    response = web.json_response(body, status=status, content_type="application/taxii+json")
    # aiohttp would append a charset; TAXII names only its version parameter.
    response.headers["Content-Type"] = TAXII_MEDIA_TYPE
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def check_accept(accept: str | None) -> None:
    """Refuse (406) a client that accepts no TAXII 2.1 media type (section 1.6.8.1)."""
    if accept is None:
        return
    for offered in accept.split(","):
        kind, *parameters = (p.strip().lower() for p in offered.split(";"))
        version = [p for p in parameters if p.startswith("version=")]
        if kind in ("*/*", "application/*"):
            return
        if kind == "application/taxii+json" and (not version or version == ["version=2.1"]):
            return
    raise TaxiiError(406, "Not Acceptable", f"this server speaks {TAXII_MEDIA_TYPE}")


def parse_time(name: str, value: str) -> str:
    """A timestamp parameter in the store's form, or a 400 naming the parameter."""
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise TaxiiError(400, "Bad Request", f"{name} is not a timestamp") from None
    if parsed.tzinfo is None:
        raise TaxiiError(400, "Bad Request", f"{name} must be in UTC (end in Z)")
    return taxii_time(parsed)


def encode_next(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode().rstrip("=")


def decode_next(token: str) -> int:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        kind, _, seq = text.partition(":")
        if kind != "seq" or not seq.isdigit():
            raise ValueError(kind)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise TaxiiError(400, "Bad Request", "next is not a token this server issued") from None
    return int(seq)


def _split(values: list[str]) -> tuple[str, ...]:
    return tuple(v.strip() for value in values for v in value.split(",") if v.strip())


def parse_query(params: Mapping[str, str], multi: Mapping[str, list[str]]) -> Query:
    """The filters of a request (section 3.4): added_after, limit, next and match[...]."""
    known = {
        "added_after",
        "limit",
        "next",
        "match[id]",
        "match[type]",
        "match[version]",
        "match[spec_version]",
    }
    unknown = sorted(set(params) - known)
    if unknown:
        raise TaxiiError(400, "Bad Request", f"unsupported parameter {unknown[0]}")
    limit = MAX_PAGE
    if "limit" in params:
        if not params["limit"].isdigit() or int(params["limit"]) < 1:
            raise TaxiiError(400, "Bad Request", "limit must be a positive integer")
        limit = min(int(params["limit"]), MAX_PAGE)
    versions = _split(multi.get("match[version]", [])) or ("last",)
    return Query(
        added_after=parse_time("added_after", params["added_after"])
        if "added_after" in params
        else None,
        ids=_split(multi.get("match[id]", [])),
        types=_split(multi.get("match[type]", [])),
        versions=tuple(
            v if v in ("first", "last", "all") else parse_time("match[version]", v)
            for v in versions
        ),
        spec_versions=_split(multi.get("match[spec_version]", [])),
        after_seq=decode_next(params["next"]) if "next" in params else 0,
        limit=limit,
    )
