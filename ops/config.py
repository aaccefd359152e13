"""The settings file as an operator sees it: a commented template of the defaults, and the
effective settings with where each value came from and every secret redacted.

Both are rendered from the `Settings` model itself (its fields, defaults and attribute
docstrings, `agents/settings.py` and each agent's `config.py`), so neither can drift from what
the agents read. The template sets every value to its default, so it loads back into exactly
the defaults. Precedence, as `agents.settings` applies it: defaults < TOML file < `TRADEOPS_*`.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import json
import os
import re
import textwrap
import tomllib
from collections.abc import Iterator, Mapping
from enum import Enum
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel

from agents.settings import CONFIG_ENV, Settings

ENV_PREFIX = "TRADEOPS_"
FILE_NAME = "tradeops.toml"
REDACTED = "***"
_SECRET_NAMES = ("api_key", "password", "secret", "token", "private_key")
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]+:)[^@\s]+@", re.IGNORECASE)
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
NOT_IN_FILE = frozenset({"data_dir"})
"""Fields the data dir itself decides (`--data-dir`): never written to its file."""

HEADER = """\
# tradeops settings for this data dir, read by every `tradeops` command and agent.
# Precedence: built-in defaults < this file < TRADEOPS_* environment variables
# (nested keys joined by "__", e.g. TRADEOPS_LIMITS__MAX_NOTIONAL_USD=100000).
# Every value below is the built-in default: change what you need; a key you delete falls
# back to its default. Money, prices and quantities are decimal strings, as on the wire.
# Keep secrets (API keys, database passwords) in the environment, not in this file.
"""


def is_secret(name: str) -> bool:
    """Whether a field holds a secret, by its name (`api_key`, `*_password`, `*_token`, ...)."""
    return any(name == s or name.endswith(f"_{s}") for s in _SECRET_NAMES)


def redact(value: Any, name: str = "") -> Any:
    """Return `value` with secrets replaced: secret fields whole, passwords inside URLs."""
    if isinstance(value, Mapping):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, name) for v in value]
    if value is not None and is_secret(name):
        return REDACTED
    if isinstance(value, str):
        return _URL_PASSWORD.sub(lambda m: f"{m['head']}{REDACTED}@", value)
    return value


def env_name(path: tuple[str, ...]) -> str:
    """The environment variable that sets `path`, e.g. `TRADEOPS_LIMITS__MAX_NOTIONAL_USD`."""
    return ENV_PREFIX + "__".join(path).upper()


# -- docs of the model -------------------------------------------------------------------------


def field_docs(cls: type[BaseModel]) -> dict[str, str]:
    """Return the attribute docstring of each field (`x: int = 1` then `\"\"\"What x is.\"\"\"`)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not klass.__module__.startswith(("agents.", "contracts.", "ops.")):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        node = tree.body[0]
        body = node.body if isinstance(node, ast.ClassDef) else []
        for stmt, after in itertools.pairwise(body):
            if (
                isinstance(stmt, ast.AnnAssign)
                and isinstance(stmt.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                docs[stmt.target.id] = inspect.cleandoc(after.value.value)
    return docs


def section_doc(cls: type[BaseModel]) -> str:
    """The first paragraph of a section's class docstring, else of its module's."""
    module = inspect.getmodule(cls)
    for text in (cls.__dict__.get("__doc__"), module.__doc__ if module else None):
        if text and text.strip():
            paragraph = inspect.cleandoc(text).split("\n\n")[0]
            return textwrap.fill(" ".join(paragraph.split()), width=96)
    return ""


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The settings section (a BaseModel) a field holds, directly or as list items."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _choices(annotation: Any) -> list[str]:
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return [str(m.value) for m in annotation]
    return [c for arg in get_args(annotation) for c in _choices(arg)]


# -- TOML --------------------------------------------------------------------------------------


def _key(name: str) -> str:
    return name if _BARE_KEY.fullmatch(name) else json.dumps(name)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # a TOML basic string


def _comment(text: str) -> Iterator[str]:
    for line in text.splitlines():
        yield f"# {line}".rstrip()


class Renderer:
    """Writes a settings document (`model_dump(mode="json")`) as TOML with comments."""

    def __init__(self, note: Mapping[tuple[str, ...], str] | None = None, docs: bool = True):
        self.note = dict(note or {})
        """A trailing comment per key path (where `config show` says a value came from)."""
        self.docs = docs

    def _trail(self, path: tuple[str, ...]) -> str:
        return f"  # {self.note[path]}" if path in self.note else ""

    def _mapping(self, path: tuple[str, ...], item: Mapping[str, Any]) -> Iterator[str]:
        for k, v in item.items():
            yield f"{_key(str(k))} = {_value(v)}{self._trail((*path, str(k)))}"

    def _scalar(self, model: type[BaseModel], path: tuple[str, ...], value: Any) -> list[str]:
        name = path[-1]
        field = model.model_fields[name]
        lines: list[str] = []
        if self.docs:
            lines += _comment(field_docs(model).get(name, ""))
            if choices := _choices(field.annotation):
                lines.append(f"# one of: {', '.join(choices)}")
            if is_secret(name):
                lines.append(f"# a secret: set {env_name(path)} in the environment instead")
        if value is None:
            lines.append(f'# {_key(name)} = "..."  (unset){self._trail(path)}')
        else:
            lines.append(f"{_key(name)} = {_value(value)}{self._trail(path)}")
        return lines

    def table(
        self, model: type[BaseModel], doc: Mapping[str, Any], path: tuple[str, ...] = ()
    ) -> Iterator[str]:
        """Yield the lines of one table: its plain keys first, then its sub-tables."""
        later: list[tuple[str, Any]] = []
        for name in model.model_fields:
            if name not in doc or (not path and name in NOT_IN_FILE):
                continue
            value = doc[name]
            if isinstance(value, dict) or (
                isinstance(value, list) and value and isinstance(value[0], dict)
            ):
                later.append((name, value))
                continue
            yield from self._scalar(model, (*path, name), value)
        for name, value in later:
            yield from self._subtable(model, (*path, name), value)

    def _subtable(
        self, parent: type[BaseModel], path: tuple[str, ...], value: Any
    ) -> Iterator[str]:
        field = parent.model_fields[path[-1]]
        section = _model_of(field.annotation)
        dotted = ".".join(_key(p) for p in path)
        about = field_docs(parent).get(path[-1]) or (section_doc(section) if section else "")
        yield ""
        if self.docs and about:
            yield from _comment(about)
        if section is not None and get_origin(field.annotation) is dict:
            # A table of sections by name, e.g. `[storage.streams.SUBMISSIONS]`.
            for key, item in value.items():
                yield f"[{dotted}.{_key(str(key))}]" + self._trail((*path, str(key)))
                yield from Renderer(self.note, docs=False).table(section, item, (*path, key))
                yield ""
            return
        items = value if isinstance(value, list) else [value]
        for i, item in enumerate(items):
            header = f"[[{dotted}]]" if isinstance(value, list) else f"[{dotted}]"
            yield header + (self._trail(path) if i == 0 else "")
            if section is not None:
                yield from Renderer(self.note, docs=self.docs and i == 0).table(section, item, path)
            else:  # a plain mapping, e.g. health_ports
                yield from self._mapping(path, item)
            if i + 1 < len(items):
                yield ""


def template() -> str:
    """The commented `tradeops.toml` holding every default (loads back into the defaults)."""
    defaults = Settings.model_construct().model_dump(mode="json")
    return HEADER + "\n" + "\n".join(Renderer().table(Settings, defaults)) + "\n"


# -- the effective settings --------------------------------------------------------------------


def _paths(doc: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for key, value in doc.items():
        path = (*prefix, str(key).lower())
        yield path
        if isinstance(value, Mapping):
            yield from _paths(value, path)


def _leaves(doc: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """(path, value) of every value that is not a table (a list of tables is one value)."""
    for key, value in doc.items():
        path = (*prefix, str(key))
        if isinstance(value, Mapping):
            yield from _leaves(value, path)
        else:
            yield path, value


def _at(doc: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        doc = doc.get(key) if isinstance(doc, Mapping) else None
    return doc


def sources(
    settings: Settings, environ: Mapping[str, str], config_file: Path | None
) -> dict[tuple[str, ...], str]:
    """Where each value not at its default came from: the environment (which wins), else the
    TOML file. `data_dir` is left out: `--data-dir` decides it."""
    in_file: set[tuple[str, ...]] = set()
    if config_file is not None and config_file.exists():
        with config_file.open("rb") as f:
            in_file = set(_paths(tomllib.load(f)))
    fields = {name.lower() for name in Settings.model_fields}
    in_env = {
        tuple(name[len(ENV_PREFIX) :].lower().split("__"))
        for name in environ
        if name.upper().startswith(ENV_PREFIX) and name.upper() != CONFIG_ENV
    }
    in_env = {p for p in in_env if p[0] in fields}
    default = Settings.model_construct().model_dump(mode="json")
    out: dict[tuple[str, ...], str] = {}
    for path, value in _leaves(settings.model_dump(mode="json")):
        if path == ("data_dir",) or value == _at(default, path):
            continue
        covering = [path[:depth] for depth in range(len(path), 0, -1)]
        env = next((p for p in covering if p in in_env), None)
        if env is not None:
            out[path] = f"env {env_name(env)}"
        elif config_file is not None and any(p in in_file for p in covering):
            out[path] = config_file.name
        else:
            out[path] = "set"
    return out


def config_file_in_use() -> Path | None:
    """The TOML file `load_settings` read (it names it in `TRADEOPS_CONFIG`)."""
    named = os.environ.get(CONFIG_ENV)
    return Path(named) if named else None


def effective(settings: Settings, environ: Mapping[str, str]) -> dict[str, Any]:
    """The effective settings, redacted, with the file read and where each value came from."""
    config_file = config_file_in_use()
    return {
        "config_file": str(config_file) if config_file else None,
        "settings": redact(settings.model_dump(mode="json")),
        "sources": {
            ".".join(p): v for p, v in sorted(sources(settings, environ, config_file).items())
        },
    }


def render_effective(settings: Settings, environ: Mapping[str, str]) -> str:
    """`config show` as TOML: every value in effect, each non-default one marked with its
    source, secrets redacted."""
    config_file = config_file_in_use()
    note = sources(settings, environ, config_file)
    head = [
        f"# effective settings for {settings.data_dir}",
        f"# file: {config_file or '(none: defaults and environment only)'}",
        f"# secrets shown as {REDACTED}; a value not at its default is marked with its source",
        "",
    ]
    doc = redact(settings.model_dump(mode="json"))
    data_dir = f"data_dir = {_value(doc['data_dir'])}  # --data-dir"
    body = Renderer(note, docs=False).table(Settings, doc)
    return "\n".join([*head, data_dir, *body]) + "\n"
