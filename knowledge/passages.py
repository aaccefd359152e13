"""The firm's documents as passages: one per `## ` section, plus each document's preamble."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DOCS_DIR = Path(__file__).resolve().parent / "docs"
"""The documents shipped with the package (`knowledge/docs/*.md`)."""

SPLITTER_VERSION = "1"
"""Bumped when the splitting rules change, so cached indexes are rebuilt."""


@dataclass(frozen=True)
class Passage:
    """One section of one document."""

    source: str
    """Document file name, e.g. `kill-switch-runbook.md`."""
    section: str
    """The section heading as written (the document title for the preamble)."""
    text: str
    """The section body, without its heading."""

    @property
    def ref(self) -> str:
        """The citation form `<file>#<section heading>`."""
        return f"{self.source}#{self.section}"

    def embedding_text(self) -> str:
        """Return what is embedded: the heading gives the body its topic."""
        return f"{self.section}\n{self.text}"


def _is_fence(line: str) -> bool:
    return line.lstrip().startswith(("```", "~~~"))


def split_markdown(source: str, text: str) -> list[Passage]:
    """Split one Markdown document into passages on its `## ` headings.

    The text before the first `## ` heading becomes a passage titled by the document's `# `
    heading (or the file name). Headings inside fenced code blocks are body text.
    """
    title: str | None = None
    preamble: list[str] = []
    sections: list[tuple[str, list[str]]] = []
    in_fence = False
    for line in text.splitlines():
        if _is_fence(line):
            in_fence = not in_fence
        elif not in_fence and line.startswith("## "):
            sections.append((line[3:].strip(), []))
            continue
        elif not in_fence and not sections and title is None and line.startswith("# "):
            title = line[2:].strip()
            continue
        (sections[-1][1] if sections else preamble).append(line)
    passages = []
    for heading, lines in [(title or source, preamble), *sections]:
        body = "\n".join(lines).strip()
        if body:
            passages.append(Passage(source=source, section=heading, text=body))
    return passages


def doc_files(docs_dir: Path) -> list[Path]:
    """Return the Markdown documents of `docs_dir`, sorted by name."""
    files = sorted(docs_dir.glob("*.md"))
    if not files:
        raise FileNotFoundError(
            f"no Markdown documents (*.md) in {docs_dir}; point the index at the knowledge/docs "
            "directory or add documents there"
        )
    return files


def load_passages(docs_dir: Path = DEFAULT_DOCS_DIR) -> list[Passage]:
    """Return every passage of every document in `docs_dir`, in file then section order."""
    passages: list[Passage] = []
    for path in doc_files(docs_dir):
        passages.extend(split_markdown(path.name, path.read_text(encoding="utf-8")))
    return passages


def fingerprint(docs_dir: Path, model_name: str, extra: Iterable[str] = ()) -> str:
    """Return the sha256 of the documents' names and contents, the model and the splitter."""
    digest = hashlib.sha256()
    for part in (f"model={model_name}", f"splitter={SPLITTER_VERSION}", *extra):
        digest.update(part.encode())
        digest.update(b"\0")
    for path in doc_files(docs_dir):
        digest.update(path.name.encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()
