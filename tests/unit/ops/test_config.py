"""`config init` writes the defaults, `config show` says what is in effect and hides secrets."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest

from agents.settings import CONFIG_ENV, Settings, load_settings
from ops.config import FILE_NAME, effective, redact, render_effective, sources, template


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No TRADEOPS_* variable of the developer's shell leaks in (load_settings sets one)."""
    monkeypatch.setenv(CONFIG_ENV, "")  # recorded, so the one load_settings sets is undone
    for name in list(os.environ):
        if name.startswith("TRADEOPS_"):
            monkeypatch.delenv(name)


def defaults(data_dir: Path) -> Settings:
    os.environ.pop(CONFIG_ENV, None)
    return Settings(data_dir=data_dir)


def test_the_template_loads_back_into_exactly_the_defaults(tmp_path: Path) -> None:
    (tmp_path / FILE_NAME).write_text(template())
    loaded = load_settings(tmp_path)
    assert os.environ[CONFIG_ENV] == str(tmp_path / FILE_NAME)  # the file was read
    assert loaded == defaults(tmp_path)


def test_the_template_sets_every_section_and_explains_its_values() -> None:
    text = template()
    doc = tomllib.loads(text)
    assert set(doc) == set(Settings.model_fields) - {"data_dir", "database_url", "nats_url"}
    assert "# Postgres URL; when unset, `tradeops up` starts an embedded Postgres" in text
    assert "# one of: offline, openai, azure, openai_compatible" in text
    assert "# a secret: set TRADEOPS_ANALYST__API_KEY in the environment instead" in text
    assert "\n[limits]\n" in text and "\n[[instruments]]\n" in text


def test_an_edited_template_changes_only_what_was_edited(tmp_path: Path) -> None:
    edited = template().replace('max_notional_usd = "250000"', 'max_notional_usd = "1000"')
    (tmp_path / FILE_NAME).write_text(edited)
    loaded = load_settings(tmp_path)
    want = defaults(tmp_path)
    assert loaded.limits.max_notional_usd == 1000
    assert loaded.model_copy(update={"limits": want.limits}) == want


def test_secrets_are_redacted_whole_and_inside_urls() -> None:
    doc = {
        "database_url": "postgresql://trader:hunter2@db:5432/tradeops",
        "analyst": {"api_key": "sk-live", "max_tokens_per_day": 5, "model": "gpt"},
        "nats_url": "tls://a:4222,tls://b:4222",
        "unset": {"api_key": None},
    }
    assert redact(doc) == {
        "database_url": "postgresql://trader:***@db:5432/tradeops",
        "analyst": {"api_key": "***", "max_tokens_per_day": 5, "model": "gpt"},
        "nats_url": "tls://a:4222,tls://b:4222",
        "unset": {"api_key": None},
    }


def test_show_marks_each_changed_value_with_its_source_env_winning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / FILE_NAME
    path.write_text('nats_port = 4300\n[limits]\nmax_leverage = "3"\n[analyst]\nmodel = "x"\n')
    environ = {"TRADEOPS_NATS_PORT": "4400", "TRADEOPS_ANALYST__API_KEY": "sk-live"}
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(tmp_path)
    assert settings.nats_port == 4400
    assert sources(settings, environ, path) == {
        ("nats_port",): "env TRADEOPS_NATS_PORT",
        ("limits", "max_leverage"): FILE_NAME,
        ("analyst", "model"): FILE_NAME,
        ("analyst", "api_key"): "env TRADEOPS_ANALYST__API_KEY",
    }
    text = render_effective(settings, environ)
    assert "nats_port = 4400  # env TRADEOPS_NATS_PORT" in text
    assert 'api_key = "***"  # env TRADEOPS_ANALYST__API_KEY' in text
    assert "sk-live" not in text
    doc = effective(settings, environ)
    assert doc["config_file"] == str(path)
    assert doc["settings"]["analyst"]["api_key"] == "***"
    assert doc["sources"]["limits.max_leverage"] == FILE_NAME


def test_show_of_the_defaults_marks_nothing(tmp_path: Path) -> None:
    settings = load_settings(tmp_path)
    assert sources(settings, {}, None) == {}
    assert "  # env" not in render_effective(settings, {})
