"""`ixb keys`: an operator generates, rotates, revokes, lists, exports and co-signs keys."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from broker.cli.keys import keys_app
from broker.trust.governance import TrustedGovernance, parse_document
from broker.trust.registry_file import RegistryFile

runner = CliRunner()


class Ixb:
    """``ixb keys`` with IXB_HOME set to one home."""

    def __init__(self, home: Path) -> None:
        self.home = home

    def __call__(self, *args: str) -> Result:
        return runner.invoke(
            keys_app, list(args), env={"IXB_HOME": str(self.home), "COLUMNS": "300"}
        )

    def ok(self, *args: str) -> str:
        result = self(*args)
        assert result.exit_code == 0, result.output
        return result.stdout

    def rows(self) -> dict[str, list[str]]:
        """``keys list`` by key id: role, nation, algorithm, from, until, revoked, status."""
        lines = self.ok("list").splitlines()
        return {cells[0]: cells[1:] for cells in (line.split("\t") for line in lines)}

    @property
    def registry(self) -> Path:
        return self.home / "registry.json"


@pytest.fixture
def ixb(tmp_path: Path) -> Ixb:
    return Ixb(tmp_path / "home")


def test_generating_a_key_on_a_fresh_home_registers_it_under_a_new_governance_key(
    ixb: Ixb,
) -> None:
    said = ixb.ok("generate", "--nation", "NL")

    rows = ixb.rows()
    assert "registered in" in said
    assert sorted((r[0], r[1], r[2], r[6]) for r in rows.values()) == [
        ("agency", "NL", "ed25519", "active"),
        ("governance", "-", "ed25519", "active"),
    ]
    assert parse_document(ixb.registry.read_bytes()).version == 1


def test_a_hybrid_broker_key_is_listed_with_its_algorithm(ixb: Ixb) -> None:
    ixb.ok("generate", "--broker", "--algorithm", "ed25519+ml-dsa-65")

    [broker] = [r for r in ixb.rows().values() if r[0] == "broker"]

    assert broker[2] == "ed25519+ml-dsa-65"


def test_generate_needs_exactly_one_kind_of_key(ixb: Ixb) -> None:
    assert ixb("generate").exit_code != 0
    assert ixb("generate", "--broker", "--nation", "NL").exit_code != 0


def test_an_unknown_algorithm_is_refused_and_nothing_is_registered(ixb: Ixb) -> None:
    result = ixb("generate", "--nation", "NL", "--algorithm", "rsa")

    assert result.exit_code == 2
    assert "unknown signature algorithm" in result.output
    assert not ixb.registry.exists()


def test_rotating_leaves_the_old_key_valid_for_the_overlap(ixb: Ixb) -> None:
    ixb.ok("generate", "--nation", "NL")
    [old] = [k for k, r in ixb.rows().items() if r[0] == "agency"]

    ixb.ok("rotate", "--nation", "NL", "--overlap", "2h")
    rows = ixb.rows()

    [new] = [k for k, r in rows.items() if r[0] == "agency" and k != old]
    ends = dt.datetime.fromisoformat(rows[old][4])
    assert rows[old][6] == "active"
    assert rows[new][6] == "active"
    assert rows[new][4] == "-"
    assert (
        dt.timedelta(hours=1, minutes=59) < ends - dt.datetime.now(dt.UTC) <= dt.timedelta(hours=2)
    )


def test_a_revocation_takes_effect_at_its_time(ixb: Ixb) -> None:
    ixb.ok("generate", "--nation", "NL")
    ixb.ok("generate", "--nation", "BE")
    nl, be = (next(k for k, r in ixb.rows().items() if r[1] == nation) for nation in ("NL", "BE"))

    ixb.ok("revoke", nl, "--reason", "key_compromise")
    ixb.ok("revoke", be, "--at", "2999-01-01T00:00:00Z")
    rows = ixb.rows()

    assert rows[nl][6] == "revoked"
    assert rows[be][5] == "2999-01-01T00:00:00+00:00"
    assert rows[be][6] == "active"
    [record] = [k for k in RegistryFile(ixb.registry).current().records() if k.key_id == nl]
    assert record.revocation_reason == "key_compromise"


def test_a_revocation_time_without_a_zone_is_refused(ixb: Ixb) -> None:
    ixb.ok("generate", "--nation", "NL")
    [nl] = [k for k, r in ixb.rows().items() if r[1] == "NL"]

    result = ixb("revoke", nl, "--at", "2025-06-01T12:00:00")

    assert result.exit_code != 0
    assert "time zone" in result.output


def test_a_threshold_above_the_governance_keys_is_refused_before_a_key_is_made(
    ixb: Ixb,
) -> None:
    ixb.ok("generate", "--governance")
    keys_before = sorted((ixb.home / "keys").iterdir())

    result = ixb("generate", "--governance", "--threshold", "3")

    assert result.exit_code == 2
    assert "threshold 3" in result.output
    assert sorted((ixb.home / "keys").iterdir()) == keys_before, "no orphan private key"


def test_revoking_a_key_that_is_not_registered_fails(ixb: Ixb) -> None:
    ixb.ok("generate", "--nation", "NL")

    result = ixb("revoke", "NL-000000000000")

    assert result.exit_code == 2
    assert "not in the registry" in result.output


def test_the_exported_registry_and_anchor_let_a_partner_pin_this_governance(
    ixb: Ixb, tmp_path: Path
) -> None:
    ixb.ok("generate", "--nation", "NL")
    partner = tmp_path / "partner" / "registry.json"
    partner.parent.mkdir()
    ixb.ok("export", "--anchor", "--out", str(partner.with_name("registry.json.anchor.json")))

    partner.write_bytes(ixb.ok("export").encode())

    anchor = TrustedGovernance.model_validate_json(
        partner.with_name("registry.json.anchor.json").read_text()
    )
    assert [k.role for k in anchor.keys] == ["governance"]
    assert RegistryFile(partner).current().nations() == frozenset({"NL"})


def test_a_change_short_of_the_threshold_is_proposed_and_installed_by_a_second_signature(
    ixb: Ixb, tmp_path: Path
) -> None:
    ixb.ok("generate", "--governance")
    ixb.ok("generate", "--governance", "--threshold", "2")
    governance = RegistryFile(ixb.registry).current().governance
    assert governance is not None
    assert governance.threshold == 2
    away = tmp_path / "held-elsewhere.pem"  # the second holder keeps their key elsewhere
    (ixb.home / "keys" / f"{governance.key_ids[1]}.pem").rename(away)

    said = ixb.ok("generate", "--nation", "NL")
    proposal = ixb.home / "registry.json.proposal.json"

    assert "proposal written" in said
    assert RegistryFile(ixb.registry).current().nations() == frozenset()
    assert len(json.loads(proposal.read_text())["signatures"]) == 1

    away.rename(ixb.home / "keys" / f"{governance.key_ids[1]}.pem")
    said = ixb.ok("sign", str(proposal))

    assert "installed registry version 3" in said
    assert RegistryFile(ixb.registry).current().nations() == frozenset({"NL"})
    assert not proposal.exists()


def test_signing_a_proposal_without_any_governance_key_fails(ixb: Ixb, tmp_path: Path) -> None:
    ixb.ok("generate", "--nation", "NL")
    proposal = tmp_path / "proposal.json"
    proposal.write_bytes(ixb.registry.read_bytes())
    for pem in (ixb.home / "keys").glob("governance-*.pem"):
        pem.unlink()

    result = ixb("sign", str(proposal))

    assert result.exit_code == 2
    assert "none of the governance keys" in result.output


def test_listing_a_rolled_back_registry_fails_with_the_reason(ixb: Ixb) -> None:
    ixb.ok("generate", "--nation", "NL")
    old = ixb.registry.read_bytes()
    ixb.ok("generate", "--nation", "BE")
    ixb.registry.write_bytes(old)

    result = ixb("list")

    assert result.exit_code == 2
    assert "registry_rollback" in result.output


def test_keys_listed_as_json_are_one_document_per_key_matching_the_plain_rows(ixb: Ixb) -> None:
    ixb.ok("generate", "--nation", "NL")
    ixb.ok("generate", "--broker", "--algorithm", "ed25519+ml-dsa-65")

    documents = [json.loads(line) for line in ixb.ok("list", "--json").splitlines()]

    rows = ixb.rows()
    assert sorted(d["key_id"] for d in documents) == sorted(rows)
    for document in documents:
        role, nation, algorithm, *_, status = rows[document["key_id"]]
        assert (document["role"], document["nation"] or "-") == (role, nation)
        assert (document["algorithm"], document["status"]) == (algorithm, status)
        assert document["revoked_at"] is None
