"""Policy bundle archives: exact round trip to the same content hash, and tampering refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from broker.errors import ConfigurationError, DecodeError, VerificationError
from broker.policy.archive import (
    ARCHIVE_SCHEMA,
    CHUNK_BYTES,
    BundleArchive,
    BundleFile,
    archive_bundle,
    bundle_files,
    decode_archive,
    encode_archive,
    load_archived_bundle,
)
from broker.policy.bundle import load_bundle
from broker.resources import POLICIES_DIR
from broker.wire.codec import SchemaCatalog


@pytest.fixture
def real_policies(tmp_path: Path) -> Path:
    """A copy of the shipped policies: the real Rego module and the four agreements."""
    target = tmp_path / "policies"
    shutil.copytree(POLICIES_DIR, target)
    return target


def test_an_archived_bundle_loads_back_with_the_same_hash_modules_and_agreements(
    catalog: SchemaCatalog, real_policies: Path
) -> None:
    loaded = load_bundle(real_policies, catalog)

    bundle, data = archive_bundle(real_policies, catalog, expected_hash=loaded.content_hash)
    restored = load_archived_bundle(catalog, data)

    assert bundle.content_hash == loaded.content_hash
    assert restored.content_hash == loaded.content_hash
    assert restored.modules == loaded.modules
    assert restored.agreements == loaded.agreements
    assert restored.data() == loaded.data()


def test_the_archive_holds_exactly_the_files_the_bundle_loader_reads(
    catalog: SchemaCatalog, real_policies: Path
) -> None:
    (real_policies / "README.md").write_text("not part of the bundle\n")
    (real_policies / "agreements" / "notes.txt").write_text("nor this\n")

    archive = decode_archive(catalog, archive_bundle(real_policies, catalog)[1])

    paths = [f.path for f in archive.files]
    assert paths == sorted(paths)
    assert "ixb/sharing.rego" in paths
    assert {p for p in paths if p.startswith("agreements/")} == {
        f"agreements/{p.name}" for p in (real_policies / "agreements").glob("*.yaml")
    }
    assert not any(p.endswith((".md", ".txt")) for p in paths)
    rego = next(f for f in archive.files if f.path == "ixb/sharing.rego")
    assert rego.content == (real_policies / "ixb" / "sharing.rego").read_bytes()


def test_the_same_bundle_always_archives_to_the_same_bytes(
    catalog: SchemaCatalog, real_policies: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "copy"
    shutil.copytree(real_policies, elsewhere)

    assert archive_bundle(real_policies, catalog)[1] == archive_bundle(elsewhere, catalog)[1]


def test_an_archive_whose_files_do_not_give_its_recorded_hash_is_refused(
    catalog: SchemaCatalog, real_policies: Path
) -> None:
    files = bundle_files(real_policies)
    rego = next(f for f in files if f.path.endswith(".rego"))
    edited = tuple(
        BundleFile(f.path, f.content + b"\n# edited\n") if f is rego else f for f in files
    )
    honest_hash = load_bundle(real_policies, catalog).content_hash

    with pytest.raises(VerificationError) as refused:
        load_archived_bundle(catalog, encode_archive(catalog, BundleArchive(honest_hash, edited)))

    assert refused.value.reason == "bundle_hash_mismatch"


def test_an_archive_with_an_agreement_that_no_longer_loads_is_refused(
    catalog: SchemaCatalog, real_policies: Path
) -> None:
    files = (*bundle_files(real_policies), BundleFile("agreements/zz.yaml", b"id: [unclosed"))
    honest_hash = load_bundle(real_policies, catalog).content_hash

    with pytest.raises(VerificationError) as refused:
        load_archived_bundle(catalog, encode_archive(catalog, BundleArchive(honest_hash, files)))

    assert refused.value.reason == "bundle_unloadable"


def test_archiving_is_refused_when_the_directory_no_longer_holds_the_bundle_in_use(
    catalog: SchemaCatalog, real_policies: Path
) -> None:
    in_use = load_bundle(real_policies, catalog).content_hash
    rego = real_policies / "ixb" / "sharing.rego"
    rego.write_text(rego.read_text() + "\n# changed since\n")

    with pytest.raises(ConfigurationError, match="now holds bundle"):
        archive_bundle(real_policies, catalog, expected_hash=in_use)


@pytest.mark.parametrize(
    "path",
    [
        "../escape.rego",
        "/etc/x.rego",
        "ixb/./x.rego",
        "ixb//x.rego",
        "a\\b.rego",
        "notes.md",
        "other/a.yaml",
    ],
)
def test_an_archive_naming_a_path_outside_a_bundle_is_refused_before_anything_is_written(
    catalog: SchemaCatalog, path: str
) -> None:
    record = {"content_hash": "sha256:x", "files": [{"path": path, "chunks": [b"package x\n"]}]}

    with pytest.raises(DecodeError) as refused:
        decode_archive(catalog, catalog.encode(ARCHIVE_SCHEMA, record))

    assert refused.value.reason == "unsafe_path"


def test_an_archive_with_files_out_of_order_is_refused(catalog: SchemaCatalog) -> None:
    files = [{"path": p, "chunks": [b"package x\n"]} for p in ("b.rego", "a.rego")]
    record = {"content_hash": "sha256:x", "files": files}

    with pytest.raises(DecodeError) as refused:
        decode_archive(catalog, catalog.encode(ARCHIVE_SCHEMA, record))

    assert refused.value.reason == "not_canonical"


def test_a_module_larger_than_the_decode_limit_for_one_value_round_trips_in_chunks(
    catalog: SchemaCatalog, real_policies: Path
) -> None:
    rego = real_policies / "ixb" / "sharing.rego"
    padding = "".join(f"# padding line {i:06d} to make the module large\n" for i in range(3000))
    rego.write_text(rego.read_text() + padding)
    loaded = load_bundle(real_policies, catalog)
    assert rego.stat().st_size > 2 * CHUNK_BYTES

    restored = load_archived_bundle(catalog, archive_bundle(real_policies, catalog)[1])

    assert restored.content_hash == loaded.content_hash
