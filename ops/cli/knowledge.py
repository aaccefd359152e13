"""`tradeops knowledge build | ask`: the retrieval index over the firm's documents."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from knowledge import DEFAULT_DOCS_DIR, KnowledgeIndex, default_cache_dir
from ops.cli.errors import fail
from ops.cli.options import DEFAULT_DATA_DIR, DataDir, ExitCode, exit_codes_epilog

DocsDir = Annotated[
    Path,
    typer.Option(
        "--docs-dir",
        help="The Markdown documents to index (default: the ones shipped with tradeops).",
        exists=True,
        file_okay=False,
    ),
]


knowledge_app = typer.Typer(
    help="The firm's documents and the analyst's retrieval index over them.",
    no_args_is_help=True,
)


def _open(data_dir: Path, docs_dir: Path, force: bool = False) -> KnowledgeIndex:
    try:
        return KnowledgeIndex.open(default_cache_dir(data_dir), docs_dir, force=force)
    except (FileNotFoundError, RuntimeError) as exc:
        fail(str(exc), ExitCode.PROBLEMS)


@knowledge_app.command("build", epilog=exit_codes_epilog(0, 1))
def build(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    docs_dir: DocsDir = DEFAULT_DOCS_DIR,
    force: Annotated[
        bool, typer.Option(help="Rebuild even when the cached index is up to date.")
    ] = False,
) -> None:
    """Embed the documents and cache the index (only when they changed, unless --force)."""
    started = time.perf_counter()
    index = _open(data_dir, docs_dir, force)
    elapsed = time.perf_counter() - started
    action = "built" if index.rebuilt else "up to date"
    sources = len({p.source for p in index.passages})
    typer.echo(
        f"knowledge index {action}: {len(index)} passages from {sources} documents, "
        f"cached in {default_cache_dir(data_dir)} ({elapsed:.1f}s)"
    )


@knowledge_app.command("ask", epilog=exit_codes_epilog(0, 1, 2))
def ask(
    question: Annotated[str, typer.Argument(help="A question in plain words.")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
    docs_dir: DocsDir = DEFAULT_DOCS_DIR,
    k: Annotated[int, typer.Option("--k", min=1, max=20, help="Passages to show.")] = 4,
    full: Annotated[bool, typer.Option(help="Print whole passages.")] = False,
) -> None:
    """Print the passages that best answer QUESTION, with source#section and score."""
    index = _open(data_dir, docs_dir)
    for rank, hit in enumerate(index.search([question], k)[0], start=1):
        typer.echo(f"{rank}. {hit.ref}  (score {hit.score:.3f})")
        text = hit.passage.text if full else _excerpt(hit.passage.text)
        typer.echo("   " + text.replace("\n", "\n   "))
        typer.echo("")


def _excerpt(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"
