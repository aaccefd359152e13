"""The documents name only commands, options and subjects that exist.

Operators follow the runbooks during incidents, the analyst cites them, and clients in other
languages follow docs/clients.md: a command the CLI does not have, or a subject nothing publishes,
is a wrong instruction at the worst moment. Each reference is a test case named
`<file>:<line>:<text>`, so a failure says where to fix the document.
"""

from __future__ import annotations

import uuid

import pytest

from contracts import Identity
from contracts import subjects as s
from ops.cli import app
from tests.unit.docs.doc_refs import (
    Ref,
    all_references,
    check_command,
    check_subject,
    command_tree,
    doc_paths,
    known_subjects,
    references,
    subject_roots,
)

KNOWN = known_subjects()
ROOTS = subject_roots(KNOWN)
COMMANDS, SUBJECTS = all_references(ROOTS)


def _ids(ref: Ref) -> str:
    return ref.id


@pytest.mark.parametrize("ref", COMMANDS, ids=_ids)
def test_each_documented_command_exists_with_its_options(ref: Ref) -> None:
    problems = check_command(app, ref.text)

    assert not problems, f"{ref.source}:{ref.line}: {ref.text}\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("ref", SUBJECTS, ids=_ids)
def test_each_documented_subject_is_in_the_topology(ref: Ref) -> None:
    problems = check_subject(ref.text, KNOWN, strict=ref.strict)

    assert not problems, f"{ref.source}:{ref.line}: {ref.text}\n  " + "\n  ".join(problems)


def test_the_documents_are_read_and_name_commands_and_subjects() -> None:
    names = {p.name for p in doc_paths()}
    sources = {r.source.rsplit("/", 1)[-1] for r in COMMANDS + SUBJECTS}

    assert {"README.md", "dead-letter-runbook.md", "kill-switch-runbook.md"} <= names
    assert "clients.md" in names, "docs/clients.md, the guide for clients, is checked too"
    assert {"README.md", "dead-letter-runbook.md", "kill-switch-runbook.md"} <= sources
    assert len(COMMANDS) >= 30 and len(SUBJECTS) >= 20


def test_the_roots_are_the_topologys() -> None:
    assert {"intent", "risk", "order", "ledger", "market", "control", "dlq", "_INBOX"} == ROOTS


# -- the checker itself: it must be able to fail ------------------------------------------------

FAKE_DOC = """\
# A runbook that lies

Run `tradeops dlq retry ledger 57 --reason "fixed"` and watch `dlq.audit`.

```bash
tradeops dlq list executor          # list one agent's letters
tradeops approvals list
tradeops intent submit AAPL hold 10
nats sub market.tick
nats --server tls://127.0.0.1:4222 \\
  sub 'market.tick.>'
```

Then, in prose, tradeops kill --because "drill" and publish on `intent.submited.<SYM>`.
Real ones: `tradeops dlq retry 57 --payload fixed.json`, `intent.submitted.<SYM>`, `dlq.<agent>`,
`tradeops dlq list --agent executor --json`, `market.tick` and `control.kill`.
"""


def _problems(text: str) -> dict[str, list[str]]:
    commands, subjects = references("fake.md", text, ROOTS)
    found = {r.id: check_command(app, r.text) for r in commands}
    found |= {r.id: check_subject(r.text, KNOWN, strict=r.strict) for r in subjects}
    return found


def test_a_fake_document_s_false_commands_options_and_subjects_are_reported() -> None:
    problems = _problems(FAKE_DOC)
    wrong = {ref for ref, found in problems.items() if found}

    assert wrong == {
        'fake.md:3:tradeops dlq retry ledger 57 --reason "fixed"',
        "fake.md:3:dlq.audit",
        "fake.md:6:tradeops dlq list executor",
        "fake.md:7:tradeops approvals list",
        "fake.md:8:tradeops intent submit AAPL hold 10",
        "fake.md:9:market.tick",
        'fake.md:14:tradeops kill --because "drill"',
        "fake.md:14:intent.submited.<SYM>",
    }
    text = "\n".join(x for found in problems.values() for x in found)
    assert "has no option --reason" in text and "takes 1 argument(s)" in text
    assert "has no command 'approvals'" in text and "'hold' is not one of" in text
    assert "has no option --because" in text and "names only the start" in text
    assert problems["fake.md:10:market.tick.>"] == []  # `nats … \` continued: one line
    assert problems["fake.md:15:tradeops dlq retry 57 --payload fixed.json"] == []
    assert problems["fake.md:16:tradeops dlq list --agent executor --json"] == []


def test_a_code_span_wrapped_over_two_lines_is_one_command() -> None:
    text = "Use `tradeops dlq purge\n--before 7d --ticket 1` to clean up.\n"

    (command,), _ = references("wrapped.md", text, ROOTS)

    assert command.text == "tradeops dlq purge --before 7d --ticket 1"
    assert check_command(app, command.text) == [
        f"`tradeops dlq purge` has no option --ticket (it has: {_options('dlq', 'purge')})"
    ]


def test_wildcards_and_placeholders_match_one_token_or_the_rest() -> None:
    def ok(subject: str, *, strict: bool = False) -> bool:
        return not check_subject(subject, KNOWN, strict=strict)

    fill = s.intent_event(s.ORDER_FILLED, "BTC-USD", uuid.uuid4())
    assert ok(fill, strict=True) and ok("order.>", strict=True) and ok("control.*", strict=True)
    assert ok(s.dead_letter(Identity.EXECUTOR, uuid.uuid4()), strict=True)
    assert ok("intent.submitted.<SYM>", strict=True) and ok("_INBOX.client.>", strict=True)
    assert ok(s.DLQ_PURGED, strict=True) and ok(f"{s.DLQ_RETRIED}.<INTENT_ID>", strict=True)
    # a family named by its first tokens: fine in prose, not as a command's subject
    for family in ("order.filled", "ledger.posted.<ACCOUNT>", "dlq.executor", "market.tick"):
        assert ok(family) and not ok(family, strict=True), family
    for wrong in ("order.cancelled.<SYM>", "control.halt", "dlq.audit", "dlq.x.y"):
        assert not ok(wrong), wrong
    assert not ok("market.tick.AAPL.extra") and not ok("_INBOX.nobody.>")


def _options(*path: str) -> str:
    node = command_tree(app)
    for word in path:
        node = node.get_command(node.context_class(node), word)
    names = {"--help"} | {
        name
        for p in node.params
        if p.param_type_name == "option"
        for name in p.opts + p.secondary_opts
    }
    return ", ".join(sorted(names))
