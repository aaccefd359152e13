"""`tradeops dlq list | show | retry | purge`: the operator's dead-letter tools."""

from __future__ import annotations

import asyncio
import base64
import getpass
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from nats.aio.client import Client as NATS

from agents.settings import Settings, load_settings
from bus import Verifier
from contracts import Identity
from ops.audit.window import parse_time
from ops.cli.errors import fail
from ops.cli.options import DEFAULT_DATA_DIR, DataDir, ExitCode, exit_codes_epilog
from ops.client import connected, load_signer
from ops.dlq import (
    OriginalGone,
    PurgePlan,
    StoredDeadLetter,
    list_dead_letters,
    plan_purge,
    purge_dead_letters,
    retry_dead_letter,
    sha256,
)
from ops.dlq import get_dead_letter as fetch_dead_letter

T = TypeVar("T")

MAX_PAYLOAD_BYTES = 1024 * 1024
"""The largest repaired payload `dlq retry --payload` re-publishes (the server's max_payload)."""

dlq_app = typer.Typer(
    help="Dead letters: list, show, retry (original or repaired bytes), purge.",
    no_args_is_help=True,
)

DlqId = Annotated[
    int,
    typer.Argument(metavar="ID", min=1, max=2**63 - 1, help="The DLQ stream sequence."),
]


def _as_ops(settings: Settings, work: Callable[[NATS], Awaitable[T]]) -> T:
    async def go() -> T:
        async with connected(settings, Identity.OPS) as nc:
            return await work(nc)

    return asyncio.run(go())


def _payload(path: Path) -> bytes:
    """The file's bytes, read no further than the limit: a device such as /dev/zero or a file
    still growing has no honest size."""
    with path.open("rb") as file:
        data = file.read(MAX_PAYLOAD_BYTES + 1)
    if len(data) > MAX_PAYLOAD_BYTES:
        size = path.stat().st_size
        fail(
            f"{path} is {f'{size:,} bytes' if size > MAX_PAYLOAD_BYTES else 'unbounded'}; a "
            f"re-published message can be at most {MAX_PAYLOAD_BYTES:,} bytes",
            ExitCode.USAGE,
        )
    return data


def short_error(x: StoredDeadLetter, width: int = 60) -> str:
    text = " ".join(x.letter.error.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def letter_json(x: StoredDeadLetter, *, full: bool = False) -> dict[str, Any]:
    """Return a dead letter as JSON-ready data: a list row, or everything (`full`)."""
    letter = x.letter
    doc: dict[str, Any] = {
        "id": x.seq,
        "stored_at": x.stored_at.isoformat(),
        "agent": str(letter.agent),
        "reason": letter.reason,
        "original_subject": letter.original_subject,
        "intent_id": None if letter.intent_id is None else str(letter.intent_id),
        "error": letter.error if full else short_error(x),
        "retried_as": [f"{r.published_stream} #{r.published_seq}" for r in x.retries],
    }
    if not full:
        return doc
    meta = {
        "original_headers": letter.original_headers,
        "original_stream": letter.stream,
        "original_stream_seq": letter.stream_seq,
        "delivery_count": letter.delivery_count,
        "event_id": str(letter.event_id),
        "producer": str(letter.producer),
        "ts": letter.ts.isoformat(),
        "signature": x.signature,
        "retries": [r.model_dump(mode="json") for r in x.retries],
    }
    try:
        data = x.original
    except OriginalGone as gone:
        return doc | meta | {"original_gone": str(gone)}
    try:
        doc["original_text"] = data.decode("utf-8")
    except UnicodeDecodeError:
        doc["original_b64"] = base64.b64encode(data).decode()
    return doc | meta | {"original_sha256": sha256(data)}


def render_list(letters: list[StoredDeadLetter]) -> str:
    if not letters:
        return "no dead letters"
    rows = [("ID", "TIME (UTC)", "AGENT", "REASON", "SUBJECT", "INTENT", "RETRIED AS", "ERROR")]
    for x in letters:
        doc = letter_json(x)
        rows.append(
            (
                str(x.seq),
                f"{x.stored_at:%Y-%m-%d %H:%M:%S}",
                doc["agent"],
                doc["reason"],
                doc["original_subject"],
                doc["intent_id"] or "-",
                ", ".join(doc["retried_as"]) or "-",
                doc["error"],
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def render_show(x: StoredDeadLetter) -> str:
    doc = letter_json(x, full=True)
    letter = x.letter
    lines = [
        f"dead letter DLQ #{x.seq} on {x.subject} (signature {x.signature})",
        f"  stored at    {x.stored_at.isoformat()}",
        f"  agent        {letter.agent}",
        f"  reason       {letter.reason}",
        f"  error        {letter.error}",
        f"  original     {letter.original_subject} ({letter.stream} #{letter.stream_seq}, "
        f"delivered {letter.delivery_count}x)",
        f"  intent       {letter.intent_id or '-'}",
    ]
    for name, value in sorted(letter.original_headers.items()):
        lines.append(f"  header       {name}: {value}")
    for r in x.retries:
        lines.append(
            f"  retried as   {r.published_stream} #{r.published_seq} at {r.ts.isoformat()}"
            + (f" (repaired, sha256 {r.payload_sha256[:16]}…)" if r.repaired else "")
            + (f" by {r.requested_by}" if r.requested_by else "")
        )
    if "original_gone" in doc:
        lines.append(f"original bytes: {doc['original_gone']}")
        return "\n".join(lines)
    data = x.original
    if "original_text" in doc:
        lines.append(f"original bytes ({len(data)}, UTF-8 text, sha256 {sha256(data)}):")
        lines.append(doc["original_text"])
    else:
        lines.append(f"original bytes ({len(data)}, not UTF-8, base64, sha256 {sha256(data)}):")
        lines.append(doc["original_b64"])
    return "\n".join(lines)


@dlq_app.command("list", epilog=exit_codes_epilog(0, 4, 5))
def dlq_list(
    agent: Annotated[Identity | None, typer.Option(help="Only this agent's dead letters.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """List the dead letters in the DLQ stream (purged ones are gone), oldest first."""
    settings = load_settings(data_dir)
    letters = _as_ops(settings, lambda nc: list_dead_letters(nc, agent=agent))
    if as_json:
        typer.echo(json.dumps([letter_json(x) for x in letters], indent=2))
    else:
        typer.echo(render_list(letters))


@dlq_app.command("show", epilog=exit_codes_epilog(0, 2, 3, 4, 5))
def dlq_show(
    dlq_id: DlqId,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Show one dead letter: the error, the original bytes and headers, its retries."""
    settings = load_settings(data_dir)
    verifier = Verifier.from_dir(settings.certs_dir)
    letter = _as_ops(settings, lambda nc: fetch_dead_letter(nc, dlq_id, verifier))
    typer.echo(
        json.dumps(letter_json(letter, full=True), indent=2) if as_json else render_show(letter)
    )


@dlq_app.command("retry", epilog=exit_codes_epilog(0, 2, 3, 4, 5))
def dlq_retry(
    dlq_id: DlqId,
    payload: Annotated[
        Path | None,
        typer.Option(
            "--payload",
            help="Re-publish these (repaired) bytes instead of the original.",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ] = None,
    again: Annotated[
        bool, typer.Option("--again", help="Retry even though it was retried before.")
    ] = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Re-publish a dead letter's message to its original subject as ops, and record it."""
    settings = load_settings(data_dir)
    data = _payload(payload) if payload is not None else None
    signer = load_signer(settings, Identity.OPS)
    outcome = _as_ops(
        settings,
        lambda nc: retry_dead_letter(
            nc,
            signer,
            dlq_id,
            payload=data,
            again=again,
            requested_by=getpass.getuser(),
        ),
    )
    record = outcome.record
    kind = "repaired bytes" if record.repaired else "original bytes"
    typer.echo(
        f"retried DLQ #{dlq_id}: {kind} re-published on {record.original_subject} as "
        f"{record.published_stream} #{record.published_seq} "
        f"(recorded as DLQ #{outcome.record_seq})"
    )


@dlq_app.command("purge", epilog=exit_codes_epilog(0, 2, 4, 5))
def dlq_purge(
    before: Annotated[
        str,
        typer.Option(help="Remove dead letters stored before this time (ISO 8601, or 7d)."),
    ],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Remove old dead letters from the DLQ stream (the purge itself is recorded)."""
    try:
        when = parse_time(before)
    except ValueError as exc:
        fail(str(exc), ExitCode.USAGE)
    settings = load_settings(data_dir)
    signer = load_signer(settings, Identity.OPS)
    plan: PurgePlan = _as_ops(settings, lambda nc: plan_purge(nc, when))
    if not plan.letters:
        typer.echo(f"no dead letters stored before {when.isoformat()}; nothing removed")
        return
    if not yes:
        typer.confirm(
            f"remove {len(plan.letters)} dead letters stored before {when.isoformat()} "
            f"(DLQ #{plan.letters[0].seq}..#{plan.letters[-1].seq})?",
            abort=True,
        )
    outcome = _as_ops(
        settings,
        lambda nc: purge_dead_letters(nc, signer, plan, requested_by=getpass.getuser()),
    )
    agents = ", ".join(f"{a} {n}" for a, n in sorted(outcome.by_agent.items()))
    records = ", ".join(f"#{seq}" for seq in outcome.record_seqs)
    typer.echo(
        f"removed {outcome.removed} dead letters stored before {when.isoformat()} "
        f"({agents}); recorded as DLQ {records}"
    )
