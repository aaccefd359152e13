"""Splitting the firm's documents into passages, and their fingerprint."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge import DEFAULT_DOCS_DIR, fingerprint, load_passages, split_markdown

DOC = """\
# Kill Switch Runbook

How operators halt trading.

## Trading states

ACTIVE, REDUCING and HALTED.

## Kill switch commands

```bash
## not a heading: inside a code block
tradeops kill --reason "runaway"
```

Every control message is recorded.

## Empty section
"""


def test_split_on_level_two_headings_gives_source_section_and_text() -> None:
    passages = split_markdown("kill-switch-runbook.md", DOC)

    assert [p.section for p in passages] == [
        "Kill Switch Runbook",
        "Trading states",
        "Kill switch commands",
    ]
    assert {p.source for p in passages} == {"kill-switch-runbook.md"}
    assert passages[1].text == "ACTIVE, REDUCING and HALTED."
    assert passages[1].ref == "kill-switch-runbook.md#Trading states"


def test_heading_inside_code_fence_stays_in_the_section_body() -> None:
    commands = split_markdown("k.md", DOC)[2]

    assert "## not a heading: inside a code block" in commands.text
    assert commands.text.endswith("Every control message is recorded.")


def test_document_without_title_names_its_preamble_after_the_file() -> None:
    passages = split_markdown("notes.md", "Loose text.\n\n## Only section\nBody.")

    assert [(p.section, p.text) for p in passages] == [
        ("notes.md", "Loose text."),
        ("Only section", "Body."),
    ]


def test_shipped_documents_split_into_every_level_two_section() -> None:
    passages = load_passages(DEFAULT_DOCS_DIR)
    headings = sum(
        1
        for path in DEFAULT_DOCS_DIR.glob("*.md")
        for line in path.read_text().splitlines()
        if line.startswith("## ")
    )

    sources = {p.source for p in passages}
    assert sources == {path.name for path in DEFAULT_DOCS_DIR.glob("*.md")}
    # every `## ` section plus one preamble per document
    assert len(passages) == headings + len(sources)
    assert "risk-limits-policy.md#Order size: max_quantity and max_notional" in {
        p.ref for p in passages
    }


def test_fingerprint_changes_with_content_and_model_only(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# A\n\n## One\ntext\n")
    first = fingerprint(tmp_path, "model-1")

    assert fingerprint(tmp_path, "model-1") == first
    assert fingerprint(tmp_path, "model-2") != first
    (tmp_path / "a.md").write_text("# A\n\n## One\ntext changed\n")
    assert fingerprint(tmp_path, "model-1") != first


def test_empty_docs_directory_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no Markdown documents \(\*\.md\)"):
        load_passages(tmp_path)
