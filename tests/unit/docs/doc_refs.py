"""Find the commands and NATS subjects a Markdown document names, and check them against the code.

What counts as a reference:
- a command: `tradeops …` in a code span (which may wrap over lines), on a line of a fenced
  block, or in plain prose when it carries an `--option`; the line stops at `|`, `;`, `&&` and a
  shell comment (` # …`);
- a subject: a code span, or a word in a fenced block, that starts with a subject root of the
  topology (`intent`, `risk`, `order`, `ledger`, `market`, `control`, `dlq`) or `_INBOX`, and
  continues with dot-separated tokens. `<SYM>`, `<agent>`, `*` and `>` are token wildcards.

A command is checked against the typer app's click tree: each word of its path is a command or
group, every `--option` exists on the command reached, it has no more positional arguments than
the command takes, and a concrete value given to a choice (`buy`, `executor`) is one of its
choices. A subject is checked against the subjects the topology declares (see `known_subjects`).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import typer

from contracts import AGENTS, Identity
from contracts import subjects as s
from contracts import topology as t

ROOT = Path(__file__).resolve().parents[3]

_FENCE = re.compile(r"^\s*(```|~~~)")
_SPAN = re.compile(r"`([^`]+)`")
# In prose an option's value is taken only when quoted or placeholder-like, not a next word.
_PROSE_VALUE = r"""(?:\s+(?:"[^"]*"|'[^']*'|[<A-Z0-9][^\s,;)]*))?"""
_PROSE_COMMAND = re.compile(rf"\btradeops(?:\s+[a-z][\w-]*)+(?:\s+--[a-z][\w-]*{_PROSE_VALUE})+")
_COMMENT = re.compile(r"\s#\s.*$")
_TOKEN = r"(?:[A-Za-z0-9_-]+|<[^<>\s]+>|\*|>)"
_PLACEHOLDER = re.compile(r"^(<[^<>]+>|[A-Z][A-Z0-9_]*|\.\.\.|…)$")


@dataclass(frozen=True)
class Ref:
    """One command or subject named by a document, and where."""

    source: str
    line: int
    text: str
    strict: bool = False
    """A subject given to a command (`nats sub …`) must be a whole subject, not a name's prefix."""

    @property
    def id(self) -> str:
        return f"{self.source}:{self.line}:{self.text}"


# -- the documents -----------------------------------------------------------------------------


def _split(text: str) -> tuple[str, list[tuple[int, str]]]:
    """Return the prose (fenced lines blanked, so offsets keep their line) and the fenced lines,
    a shell line continued with `\\` joined into one."""
    prose: list[str] = []
    fenced: list[tuple[int, str]] = []
    inside = False
    for number, line in enumerate(text.splitlines(), start=1):
        if _FENCE.match(line):
            inside = not inside
            prose.append("")
        elif inside:
            if fenced and fenced[-1][1].endswith("\\"):  # a shell line continued
                start, head = fenced.pop()
                fenced.append((start, head[:-1] + " " + line.strip()))
            else:
                fenced.append((number, line))
            prose.append("")
        else:
            prose.append(line)
    return "\n".join(prose), fenced


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _command_text(code: str) -> str | None:
    """Return `tradeops …` from a line of code, cut at a pipe, a list or a comment."""
    code = _COMMENT.sub("", code)
    start = re.search(r"(?<![^\s(])tradeops(?=\s|$)", code)
    if start is None:
        return None
    text = code[start.start() :]
    text = re.split(r"\s(?:\||;|&&)\s|;$", text)[0]
    return " ".join(text.split())


def _subjects_in(code: str, roots: Iterable[str]) -> Iterator[str]:
    alternatives = "|".join(re.escape(r) for r in sorted(roots, key=len, reverse=True))
    pattern = rf"(?<![\w.$/<-])(?:{alternatives})(?:\.{_TOKEN})+"
    for match in re.finditer(pattern, code):
        yield match.group(0)


def references(source: str, text: str, roots: Iterable[str]) -> tuple[list[Ref], list[Ref]]:
    """Return the commands and the subjects `text` names."""
    roots = tuple(roots)
    commands: list[Ref] = []
    subjects: list[Ref] = []
    prose, fenced = _split(text)
    for number, line in fenced:
        command = _command_text(line)
        if command:
            commands.append(Ref(source, number, command))
        strict = bool(re.match(r"^\s*(\$\s*)?nats\s", line))
        subjects += [Ref(source, number, x, strict) for x in _subjects_in(line, roots)]
    for span in _SPAN.finditer(prose):
        number = _line_of(prose, span.start())
        code = " ".join(span.group(1).split())
        command = _command_text(code)
        if command:
            commands.append(Ref(source, number, command))
        subjects += [Ref(source, number, x) for x in _subjects_in(code, roots)]
    plain = _SPAN.sub(lambda m: " " * len(m.group(0)), prose)
    for match in _PROSE_COMMAND.finditer(plain):
        commands.append(
            Ref(source, _line_of(plain, match.start()), " ".join(match.group(0).split()))
        )
    return commands, subjects


def doc_paths() -> list[Path]:
    """The documents whose claims are checked: the runbooks, the README, the client guide."""
    return [*sorted((ROOT / "knowledge" / "docs").glob("*.md")), ROOT / "README.md"] + [
        p for p in (ROOT / "docs" / "clients.md",) if p.exists()
    ]


def all_references(roots: Iterable[str]) -> tuple[list[Ref], list[Ref]]:
    roots = tuple(roots)
    commands: list[Ref] = []
    subjects: list[Ref] = []
    for path in doc_paths():
        found = references(str(path.relative_to(ROOT)), path.read_text(), roots)
        commands += found[0]
        subjects += found[1]
    return commands, subjects


# -- commands ----------------------------------------------------------------------------------


def _tokens(command: str) -> list[str]:
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    # `[--payload FILE]` documents an optional part: check what is inside the brackets.
    return [w.strip("[]") for w in words if w.strip("[]")]


# Typer 0.2x carries its own copy of click (`typer._click`); older ones use click itself. Both
# have the same shape, so the tree is walked by duck typing rather than by class.


def _is_group(node: Any) -> bool:
    return hasattr(node, "list_commands") and hasattr(node, "get_command")


def _is_option(param: Any) -> bool:
    return getattr(param, "param_type_name", "") == "option"


def _option_names(command: Any) -> dict[str, Any]:
    names: dict[str, Any] = {"--help": None}
    for param in command.params:
        if _is_option(param):
            for name in (*param.opts, *param.secondary_opts):
                names[name] = param
    return names


def _choices(param: Any) -> list[str] | None:
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return [str(member.value) for member in annotation]
    choices = getattr(getattr(param, "type", None), "choices", None)
    return [str(c) for c in choices] if choices else None


def _bad_choice(param: Any, value: str) -> list[str]:
    choices = _choices(param)
    if choices is None or _PLACEHOLDER.match(value) or value in choices:
        return []
    return [f"{value!r} is not one of {choices} for {param.name}"]


def command_tree(app: typer.Typer) -> Any:
    """The click-shaped command tree of `app`."""
    return typer.main.get_command(app)


def check_command(app: typer.Typer, command: str) -> list[str]:
    """Return what is wrong with one `tradeops …` line (nothing when the CLI accepts it)."""
    node = command_tree(app)
    words = _tokens(command)[1:]
    path = ["tradeops"]
    while words and _is_group(node) and not words[0].startswith("-"):
        ctx = node.context_class(node)
        child = node.get_command(ctx, words[0])
        if child is None:
            known = ", ".join(sorted(node.list_commands(ctx)))
            return [f"`{' '.join(path)}` has no command {words[0]!r} (it has: {known})"]
        path.append(words.pop(0))
        node = child
    where = " ".join(path)
    options = _option_names(node)
    arguments = [p for p in node.params if getattr(p, "param_type_name", "") == "argument"]
    problems: list[str] = []
    positional: list[str] = []
    while words:
        word = words.pop(0)
        if word in ("--", "-"):
            continue
        if not word.startswith("-"):
            positional.append(word)
            continue
        name, has_value, value = word.partition("=")
        if name not in options:
            known = ", ".join(sorted(options))
            problems.append(f"`{where}` has no option {name} (it has: {known})")
            if not has_value and words and not words[0].startswith("-"):
                words.pop(0)  # most likely its value: one mistake, one report
            continue
        param = options[name]
        takes_value = param is not None and not param.is_flag
        if takes_value and not has_value and words:
            value = words.pop(0)
        if takes_value and value:
            problems += _bad_choice(param, value)
    if _is_group(node) and positional:
        problems.append(f"`{where}` is a group; {positional[0]!r} is not one of its commands")
        return problems
    if not any(a.nargs == -1 for a in arguments) and len(positional) > len(arguments):
        names = " ".join(str(a.name).upper() for a in arguments) or "none"
        problems.append(
            f"`{where}` takes {len(arguments)} argument(s) ({names}), given {positional}"
        )
    for param, value in zip(arguments, positional, strict=False):
        problems += _bad_choice(param, value)
    return problems


# -- subjects ----------------------------------------------------------------------------------


def _is_catch_all(pattern: str) -> bool:
    # `risk.>` on a stream takes whatever is published under a root; naming it as "known" would let
    # any `risk.<anything>` through, so each root's subjects come from the specific declarations.
    return len(pattern.split(".")) == 2 and pattern.endswith(".>")


def known_subjects() -> frozenset[str]:
    """Every subject (pattern) the topology declares, without the per-root catch-alls.

    Streams' subjects, consumers' filters, what each identity publishes (OUTPUTS), follows
    (FOLLOWS) and requests (REQUESTS), the control subjects, each agent's dead letters, the
    operator's records on the DLQ stream (`dlq.retried.<id>`, `dlq.purged`) and each identity's
    inbox prefix.
    """
    patterns = {x for spec in t.STREAMS for x in spec.subjects}
    patterns |= {c.filter_subject for c in t.ALL_CONSUMERS}
    patterns |= {x for xs in (*t.OUTPUTS.values(), *t.FOLLOWS.values()) for x in xs}
    patterns |= {x for xs in t.REQUESTS.values() for x in xs}
    patterns |= {*s.CONTROL_SUBJECTS, s.DLQ_RETRIED, f"{s.DLQ_RETRIED}.*", s.DLQ_PURGED}
    patterns |= {s.dead_letters(a) for a in AGENTS}
    patterns |= {x for i in Identity for x in (s.inbox_prefix(i), f"{s.inbox_prefix(i)}.>")}
    return frozenset(p for p in patterns if not p.startswith("$") and not _is_catch_all(p))


def subject_roots(known: Iterable[str]) -> frozenset[str]:
    return frozenset(p.split(".")[0] for p in known)


def _wildcarded(subject: str) -> list[str]:
    return ["*" if x.startswith("<") else x for x in subject.split(".")]


def overlaps(a: list[str], b: list[str]) -> bool:
    """Whether some concrete subject matches both token lists (`*` one token, `>` the rest)."""
    for x, y in zip(a, b, strict=False):
        if ">" in (x, y):
            return True
        if x != y and "*" not in (x, y):
            return False
    return len(a) == len(b)


def check_subject(subject: str, known: Iterable[str], *, strict: bool = False) -> list[str]:
    """Return what is wrong with one subject a document names (nothing when the topology has it).

    In prose a subject may name a family by its leading tokens (`order.filled`, `dlq.executor`,
    `market.tick`) when a declared subject starts with them; given to a command (`strict`), it
    must match a declared subject whole.
    """
    tokens = _wildcarded(subject)
    patterns = [_wildcarded(p) for p in known]
    if any(overlaps(tokens, p) for p in patterns):
        return []
    family = any(overlaps([*tokens, ">"], p) for p in patterns)
    if family and not strict:
        return []
    root = tokens[0]
    nearby = sorted(p for p in known if p.split(".")[0] == root)
    if family:
        return [f"{subject!r} names only the start of a subject; a command needs one of {nearby}"]
    return [f"{subject!r} matches no subject of the topology (under {root}: {nearby})"]
