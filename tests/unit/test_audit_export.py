"""The audit export: JSON Lines that parse, and an HTML report that is whole and escaped."""

from __future__ import annotations

import datetime as dt
import io
import json
from html.parser import HTMLParser

from broker.auditlog.entries import AuditEvent, AuditWriter, Outcome, SubmissionRef
from broker.auditor.export import render_html, write_jsonl
from broker.auditor.summary import FlowSummary
from broker.auditor.verify import verify_log
from broker.trust.merkle import leaf_hash
from broker.wire.codec import SchemaCatalog
from tests.support.audit import (
    LOG_ID,
    NATIONS,
    START,
    Ed25519CheckpointSigner,
    build_log,
    edited,
    verifier,
)

GENERATED = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)
_VOID = {"meta", "br", "img", "hr", "input", "link"}


class _TagBalance(HTMLParser):
    """Checks every element is closed in order (void elements and SVG self-closing aside)."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.errors: list[str] = []
        self.text: list[str] = []
        self.tags: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "script" or any(name.startswith("on") for name, _ in attrs):
            self.scripts += 1
        if tag not in _VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.open[-1:] or 'nothing'}")
            return
        self.open.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parsed(document: str) -> _TagBalance:
    parser = _TagBalance()
    parser.feed(document)
    parser.close()
    return parser


def test_every_entry_is_one_json_line_with_its_offset_index_leaf_hash_and_fields(
    catalog: SchemaCatalog,
) -> None:
    built = build_log(catalog, Ed25519CheckpointSigner(), 12, writers=2, every=5)
    out = io.StringIO()

    written = write_jsonl(out, catalog, LOG_ID, built.records)

    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert written == len(lines) == 12
    for index, line in enumerate(lines):
        assert (line["offset"], line["index"], line["log_id"]) == (index, index, LOG_ID)
        assert line["leaf_hash"] == leaf_hash(built.values[index]).hex()
        assert line["writer"] == f"writer-{index % 2}"
        assert line["writer_seq"] == index // 2
        assert line["outcome"] in {o.value for o in Outcome}
    delivered = next(line for line in lines if line["outcome"] == "delivered")
    assert len(bytes.fromhex(delivered["delivery_sha256"])) == 32
    assert len(bytes.fromhex(delivered["submission"]["sha256"])) == 32
    assert dt.datetime.fromisoformat(delivered["at"]).tzinfo is not None


def test_an_entry_that_does_not_decode_is_still_a_line_saying_why(catalog: SchemaCatalog) -> None:
    out = io.StringIO()

    write_jsonl(out, catalog, LOG_ID, [(0, b"\xc3\x01\x00")])

    [line] = [json.loads(text) for text in out.getvalue().splitlines()]
    assert line["undecodable"] == "not_single_object"
    assert line["index"] == 0


def test_the_html_report_is_whole_has_no_scripts_and_names_every_nation(
    catalog: SchemaCatalog,
) -> None:
    signer = Ed25519CheckpointSigner()
    built = build_log(catalog, signer, 40, writers=3, every=10)
    summary = FlowSummary()
    write_jsonl(io.StringIO(), catalog, LOG_ID, built.records, summary)
    report = verify_log(LOG_ID, built.records, built.checkpoints, verifier(signer), catalog=catalog)

    document = render_html(summary, [report], generated_at=GENERATED)

    parsed = _parsed(document)
    assert parsed.errors == []
    assert parsed.open == []
    assert parsed.scripts == 0
    assert "svg" in parsed.tags
    text = " ".join(parsed.text)
    for nation in NATIONS:
        assert f"{nation} → " in text
    assert "verified" in text
    assert "bad_signature" in text  # refusals by reason
    assert "subjects[].full_name" in text  # what was withheld
    assert "http" not in document.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_the_html_report_shows_a_failed_verification_with_its_reason_and_entry(
    catalog: SchemaCatalog,
) -> None:
    signer = Ed25519CheckpointSigner()
    built = build_log(catalog, signer, 30, writers=3, every=10)
    values = list(built.values)
    values[4] = edited(catalog, values[4], lambda record: record.update(origin="US"))
    records = list(enumerate(values))
    report = verify_log(LOG_ID, records, built.checkpoints, verifier(signer), catalog=catalog)

    document = render_html(FlowSummary(), [report], generated_at=GENERATED)

    text = " ".join(_parsed(document).text)
    assert "chain_broken" in text
    assert "offset 4" in text


def test_text_from_the_log_is_escaped_and_cannot_become_markup(catalog: SchemaCatalog) -> None:
    writer = AuditWriter(catalog, "w")
    hostile = '<script>alert("x")</script>'
    value = writer.entry(
        AuditEvent(
            Outcome.REFUSED,
            at=START,
            origin="NL",
            submission=SubmissionRef("ixb.submit.NL", 0, 0, bytes(32)),
            reasons=(hostile,),
        )
    )
    withheld = writer.entry(
        AuditEvent(
            Outcome.DELIVERED,
            at=START,
            origin="NL",
            recipient="<b>BE</b>",
            withheld_fields=("a&b",),
        )
    )
    summary = FlowSummary()
    write_jsonl(io.StringIO(), catalog, LOG_ID, [(0, value), (1, withheld)], summary)

    document = render_html(summary, [], generated_at=GENERATED, title="audit <of> NL & BE")

    parsed = _parsed(document)
    assert parsed.errors == []
    assert parsed.scripts == 0
    assert "b" not in parsed.tags
    assert hostile in " ".join(parsed.text)
    assert "&lt;script&gt;" in document
    assert "a&amp;b" in document


def test_an_entry_the_log_holds_twice_is_two_lines_but_counted_once(
    catalog: SchemaCatalog,
) -> None:
    built = build_log(catalog, Ed25519CheckpointSigner(), 12, writers=2, every=5)
    once, twice = FlowSummary(), FlowSummary()
    write_jsonl(io.StringIO(), catalog, LOG_ID, built.records, once)
    # The producer re-sent entries 3 and 7 after their acknowledgement was lost.
    values = [*built.values[:8], built.values[3], built.values[7], *built.values[8:]]
    out = io.StringIO()

    written = write_jsonl(out, catalog, LOG_ID, list(enumerate(values)), twice)

    assert written == 14  # line n is still entry n
    assert (twice.entries, twice.repeats, once.repeats) == (14, 2, 0)
    assert twice.flows == once.flows
    assert (twice.refusals, twice.withheld) == (once.refusals, once.withheld)
    assert "entries held twice (re-sent), counted once</td><td>2<" in render_html(
        twice, [], generated_at=GENERATED
    )


def test_another_entry_under_a_used_number_is_counted_not_taken_for_a_copy(
    catalog: SchemaCatalog,
) -> None:
    built = build_log(catalog, Ed25519CheckpointSigner(), 4, writers=1, every=5)
    # Entry 1 rewritten under its own writer and number, and appended: not a re-send.
    forged = edited(catalog, built.values[1], lambda r: r.update(outcome="refused"))
    summary = FlowSummary()

    write_jsonl(io.StringIO(), catalog, LOG_ID, list(enumerate([*built.values, forged])), summary)

    assert (summary.entries, summary.repeats) == (5, 0)
    assert summary.total(Outcome.REFUSED) == 1 + sum(
        1 for v in built.values if catalog.decode(v, "ixb.v1.AuditEntry")["outcome"] == "refused"
    )
