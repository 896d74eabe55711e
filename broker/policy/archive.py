"""Policy bundle archives: every bundle the enforcer used, kept so a decision can be re-run.

An archive (``ixb.v1.PolicyBundleArchive``, stored in ``ixb.bundles`` keyed
by the content hash) holds the exact bytes of every file
:func:`broker.policy.bundle.load_bundle` reads: each ``*.rego`` module below
the bundle directory and each ``agreements/*.yaml`` (or ``.yml``) file,
under its '/'-separated relative path, sorted by path, so one bundle always
gives the same bytes.

The content hash is not computed here. It is the bundle's own: an archive is
made by loading the bundle from exactly the bytes archived, and loading an
archive loads those bytes again (from a temporary directory, through
``load_bundle``) and refuses the result unless its hash is the one
recorded. So an archive can never name one bundle and hold another, and a
re-run evaluates precisely what decided.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from broker.errors import ConfigurationError, DecodeError, VerificationError
from broker.policy.bundle import PolicyBundle, agreement_files, load_bundle
from broker.wire.codec import SchemaCatalog

__all__ = [
    "ARCHIVE_SCHEMA",
    "BundleArchive",
    "BundleFile",
    "archive_bundle",
    "bundle_files",
    "bundle_from_files",
    "decode_archive",
    "encode_archive",
    "load_archived_bundle",
]

ARCHIVE_SCHEMA = "ixb.v1.PolicyBundleArchive"
CHUNK_BYTES = 32 * 1024
"""Pieces a file is stored in: the decode guard refuses one bytes value over 64 KiB."""

_AGREEMENT_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True, slots=True)
class BundleFile:
    path: str  # relative, '/'-separated
    content: bytes


@dataclass(frozen=True, slots=True)
class BundleArchive:
    content_hash: str
    files: tuple[BundleFile, ...]


def bundle_files(directory: Path) -> tuple[BundleFile, ...]:
    """The exact bytes of the files ``load_bundle(directory)`` reads, sorted by path."""
    paths = {*directory.rglob("*.rego"), *agreement_files(directory / "agreements")}
    files = [BundleFile(p.relative_to(directory).as_posix(), p.read_bytes()) for p in paths]
    return tuple(sorted(files, key=lambda f: f.path))


def bundle_from_files(files: Iterable[BundleFile], catalog: SchemaCatalog) -> PolicyBundle:
    """Load a bundle from file contents, exactly as from a directory holding them."""
    with tempfile.TemporaryDirectory(prefix="ixb-bundle-") as tmp:
        root = Path(tmp)
        for file in files:
            _check_path(file.path)
            target = root.joinpath(*PurePosixPath(file.path).parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(file.content)
        return load_bundle(root, catalog)


def archive_bundle(
    directory: Path, catalog: SchemaCatalog, *, expected_hash: str | None = None
) -> tuple[PolicyBundle, bytes]:
    """Read the bundle's files once, load the bundle from them, and archive it.

    ``expected_hash`` is the hash of the bundle the enforcer is deciding
    with: if the directory changed since it was loaded, the archive would
    hold another bundle, so that is refused (ConfigurationError) and the
    caller archives again after its next reload.
    """
    files = bundle_files(directory)
    bundle = bundle_from_files(files, catalog)
    if expected_hash is not None and bundle.content_hash != expected_hash:
        raise ConfigurationError(
            f"{directory} now holds bundle {bundle.content_hash}, not {expected_hash}"
        )
    return bundle, encode_archive(catalog, BundleArchive(bundle.content_hash, files))


def encode_archive(catalog: SchemaCatalog, archive: BundleArchive) -> bytes:
    files = sorted(archive.files, key=lambda f: f.path)
    paths = [f.path for f in files]
    if len(set(paths)) != len(paths):
        raise ValueError("an archive holds each path once")
    for path in paths:
        _check_path(path)
    return catalog.encode(
        ARCHIVE_SCHEMA,
        {
            "content_hash": archive.content_hash,
            "files": [
                {
                    "path": f.path,
                    "chunks": [
                        f.content[i : i + CHUNK_BYTES]
                        for i in range(0, len(f.content), CHUNK_BYTES)
                    ],
                }
                for f in files
            ],
        },
    )


def decode_archive(catalog: SchemaCatalog, data: bytes) -> BundleArchive:
    """Decode an archive, refusing paths outside a bundle or out of order; hash not checked."""
    record = catalog.decode(data, ARCHIVE_SCHEMA)
    files = tuple(BundleFile(f["path"], b"".join(f["chunks"])) for f in record["files"])
    previous = ""
    for number, file in enumerate(files):
        try:
            _check_path(file.path)
        except ValueError as exc:
            raise DecodeError("unsafe_path", f"archived file {number}: {exc}") from exc
        if file.path <= previous:
            raise DecodeError("not_canonical", "archived files are not sorted by unique path")
        previous = file.path
    return BundleArchive(record["content_hash"], files)


def load_archived_bundle(catalog: SchemaCatalog, data: bytes) -> PolicyBundle:
    """The bundle an archive holds, for re-running past decisions.

    Refused with VerificationError ``bundle_hash_mismatch`` unless loading
    the archived files gives the recorded content hash, and
    ``bundle_unloadable`` if they do not load at all (an archive is only
    ever made of files that did).
    """
    archive = decode_archive(catalog, data)
    try:
        bundle = bundle_from_files(archive.files, catalog)
    except ConfigurationError as exc:
        raise VerificationError(
            "bundle_unloadable",
            f"the files archived as {archive.content_hash} do not load as a bundle",
            stage="archive",
        ) from exc
    if bundle.content_hash != archive.content_hash:
        raise VerificationError(
            "bundle_hash_mismatch",
            f"the archived files load as {bundle.content_hash}, "
            f"the archive claims {archive.content_hash}",
            stage="archive",
        )
    return bundle


def _check_path(path: str) -> None:
    """Only relative paths to files ``load_bundle`` reads: nothing may land elsewhere."""
    pure = PurePosixPath(path)
    if (
        not path
        or "\\" in path
        or "\x00" in path
        or pure.is_absolute()
        or any(part in ("", ".", "..") for part in path.split("/"))
    ):
        raise ValueError("not a plain relative path")
    is_module = pure.suffix == ".rego"
    is_agreement = pure.parent == PurePosixPath("agreements") and pure.suffix in _AGREEMENT_SUFFIXES
    if not (is_module or is_agreement):
        raise ValueError("not a Rego module or an agreements/ file")
