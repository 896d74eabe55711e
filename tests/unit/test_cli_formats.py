"""What ``ixb publish --format`` reads, and the adapter defaults it takes from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from broker.cli.formats import InFormat, inbound_defaults, read_reports
from broker.cli.taxii import ServeOptions, _tls
from broker.errors import ConfigurationError, RejectedInput
from tests.unit.test_misp import PARTNER_EVENT

PARTNER_BUNDLE = Path(__file__).resolve().parents[1] / "data" / "stix" / "partner-report.json"


def test_the_grading_option_is_the_4x4_grading() -> None:
    parsed = inbound_defaults(
        "NL", marking="tlp:amber", handling_code="H2", grading="C4", report_type=None, ignore=None
    )
    assert (parsed.source_reliability, parsed.information_credibility) == ("C", 4)
    assert parsed.marking == "TLP:AMBER"
    with pytest.raises(ConfigurationError, match="4x4"):
        inbound_defaults(
            "NL", marking=None, handling_code=None, grading="E5", report_type=None, ignore=None
        )
    with pytest.raises(ConfigurationError, match="not a value"):
        inbound_defaults(
            "NL", marking=None, handling_code="H9", grading=None, report_type=None, ignore=None
        )


def test_a_stix_file_and_a_misp_export_are_read_as_reports(tmp_path: Path) -> None:
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(PARTNER_EVENT))
    chosen = inbound_defaults(
        "NL", marking=None, handling_code="H1", grading="B3", report_type=None, ignore=None
    )
    [from_stix] = read_reports(InFormat.STIX, PARTNER_BUNDLE, chosen)
    [from_misp] = read_reports(InFormat.MISP, event_file, chosen)
    assert from_stix.agency == "Koninklijke Marechaussee"
    assert from_misp.agency == "Policie CR"


def test_a_refusal_names_the_file_it_is_about(tmp_path: Path) -> None:
    bundle = json.loads(PARTNER_BUNDLE.read_text())
    bundle["objects"][2]["labels"] = ["x"]
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    chosen = inbound_defaults(
        "NL", marking=None, handling_code="H1", grading="B3", report_type=None, ignore=None
    )
    with pytest.raises(RejectedInput, match=str(path)):
        read_reports(InFormat.STIX, path, chosen)


def test_the_taxii_server_refuses_to_listen_beyond_loopback_without_tls(tmp_path: Path) -> None:
    assert _tls(ServeOptions(("NL",), host="127.0.0.1")) is None
    with pytest.raises(ConfigurationError, match="loopback"):
        _tls(ServeOptions(("NL",), host="0.0.0.0"))
    with pytest.raises(ConfigurationError, match="both"):
        _tls(ServeOptions(("NL",), tls_cert=tmp_path / "cert.pem"))
