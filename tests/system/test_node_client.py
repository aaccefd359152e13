"""A client in another language: examples/node-client submits an intent over mutual TLS.

The stack is started as an operator starts it (`tradeops up --detach`, a separate process), the
Node.js example connects with the client identity's certificate from the stack's data dir and the
NATS URL from the stack's state file, and the intent's outcome is read as an operator reads it
(`tradeops intent show ID --json`): the client identity itself may read nothing but its inbox.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from contracts import SubmitIntent
from ops.stack.scratch import write_scratch_config
from ops.stack.state import read_state

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "node-client"
TRADEOPS = [sys.executable, "-m", "ops.cli"]
AGENTS = ("ingestor", "analyst", "risk", "executor", "ledger")


def _run(argv: list[str], timeout: float = 240, cwd: Path | None = None) -> Any:
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd
    )


def tradeops(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    result: subprocess.CompletedProcess[str] = _run([*TRADEOPS, *args], timeout)
    return result


def _installed_version(package: str) -> str | None:
    try:
        doc = json.loads((EXAMPLE / "node_modules" / package / "package.json").read_text())
    except (OSError, ValueError):
        return None
    return str(doc.get("version"))


@pytest.fixture(scope="module")
def node() -> str:
    """`node`, with the example's locked dependencies installed (once, kept in node_modules)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("node and npm are needed: `sh ops/tools/ensure-command.sh npm nodejs npm`")
    lock = json.loads((EXAMPLE / "package-lock.json").read_text())
    wanted = lock["packages"]["node_modules/nats"]["version"]
    if _installed_version("nats") != wanted:
        done = _run([npm, "ci", "--no-audit", "--no-fund"], timeout=300, cwd=EXAMPLE)
        assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"
    assert _installed_version("nats") == wanted
    return node


def submit(node: str, *args: str) -> subprocess.CompletedProcess[str]:
    result: subprocess.CompletedProcess[str] = _run(
        [node, str(EXAMPLE / "submit.mjs"), *args], timeout=60
    )
    return result


def test_the_example_s_body_is_a_valid_submit_intent(node: str) -> None:
    shown = submit(
        node,
        *("--dry-run", "--symbol", "ETH-USD", "--side", "sell", "--quantity", "1.25"),
        *("--limit", "3100.5", "--strategy", "mean-revert", "--rationale", "take profit"),
    )
    assert shown.returncode == 0, shown.stderr

    intent = SubmitIntent.model_validate_json(shown.stdout)

    assert (intent.symbol, str(intent.quantity), str(intent.limit_price)) == (
        "ETH-USD",
        "1.25",
        "3100.5",
    )
    assert intent.intent_id is not None and intent.account == "paper-1"


def test_usage_errors_exit_2_without_connecting(node: str) -> None:
    missing = submit(node, "--symbol", "BTC-USD", "--side", "buy")

    assert missing.returncode == 2 and "--quantity is required" in missing.stderr


@pytest.fixture(scope="module")
def stack() -> Iterator[Path]:
    """A stack started with `tradeops up --detach`, shared by this module's tests; stopped after.

    Its data dir is outside pytest's tmp tree, as `stack_dir`'s: the embedded Postgres runs as
    another user when root, and pytest resets its tmp root to 0700.
    """
    root = Path(tempfile.mkdtemp(prefix="tradeops-node-"))
    data_dir = root / "stack"
    write_scratch_config(data_dir, feed_interval_ms=100)
    up = tradeops("up", "--detach", "--data-dir", str(data_dir))
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        _wait_ready(data_dir)
        yield data_dir
    finally:
        down = tradeops("down", "--data-dir", str(data_dir))
        shutil.rmtree(root, ignore_errors=True)
        assert down.returncode == 0, down.stdout + down.stderr


def _wait_ready(data_dir: Path, timeout_s: float = 240) -> None:
    """Wait until every agent answers ready (the analyst builds its index at first start)."""
    deadline = time.monotonic() + timeout_s
    while True:
        shown = tradeops("status", "--json", "--data-dir", str(data_dir))
        doc = json.loads(shown.stdout) if shown.returncode == 0 else {}
        agents = {k: v for k, v in doc.get("components", {}).items() if k in AGENTS}
        if len(agents) == len(AGENTS) and all(c.get("ready") for c in agents.values()):
            return
        assert time.monotonic() < deadline, f"the stack is not ready: {shown.stdout}"
        time.sleep(1)


def _nats_url(data_dir: Path) -> str:
    """The URL a client uses, from the stack's state file (what `tradeops status` prints)."""
    state = read_state(data_dir)
    assert state is not None, f"no run file in {data_dir}"
    return state.nats.url


def _outcome(data_dir: Path, intent_id: str, timeout_s: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        shown = tradeops("intent", "show", intent_id, "--json", "--data-dir", str(data_dir))
        doc: dict[str, Any] = json.loads(shown.stdout) if shown.returncode == 0 else {}
        if doc.get("outcome") in {"filled", "rejected", "dead_lettered"}:
            kinds = Counter(e["kind"] for e in doc["events"])
            if doc["outcome"] != "filled" or kinds["ledger.posted"]:
                return doc
        assert time.monotonic() < deadline, f"no outcome for {intent_id}: {shown.stdout}"
        time.sleep(0.5)


def test_node_client_submits_over_mtls_reads_its_outcome_and_it_is_filled_once(
    node: str, stack: Path
) -> None:
    intent_id = str(uuid.uuid4())
    args = (
        *("--url", _nats_url(stack), "--certs", str(stack / "certs")),
        *("--symbol", "BTC-USD", "--side", "buy", "--quantity", "0.05"),
        *("--rationale", "adds to the BTC core position after the weekly rebalance review"),
        *("--intent-id", intent_id),
    )

    first = submit(node, *args)
    again = submit(node, *args, "--wait-ms", "0")  # a retried publish: same Nats-Msg-Id

    assert first.returncode == 0, first.stdout + first.stderr
    assert again.returncode == 0, again.stdout + again.stderr
    ack_line, outcome_line = first.stdout.splitlines()
    ack, answer, repeat = json.loads(ack_line), json.loads(outcome_line), json.loads(again.stdout)
    assert ack["intent_id"] == intent_id and ack["stream"] == "SUBMISSIONS"
    assert ack["duplicate"] is False and isinstance(ack["seq"], int)
    assert repeat["duplicate"] is True and repeat["seq"] == ack["seq"]
    assert answer == {"intent_id": intent_id, "outcome": "filled", "terminal": True, "reasons": []}

    trail = _outcome(stack, intent_id)

    assert trail["outcome"] == "filled", trail
    kinds = Counter(e["kind"] for e in trail["events"])
    assert kinds["order.filled"] == 1 and kinds["ledger.posted"] == 1, kinds
    submitted = [e for e in trail["events"] if e["subject"] == "intent.submitted.BTC-USD"]
    assert [e["seq"] for e in submitted] == [ack["seq"]]
    assert all(e["signature"] != "invalid" for e in trail["events"])


def test_node_client_reads_a_rejection_with_its_reason_and_exit_code(
    node: str, stack: Path
) -> None:
    rejected = submit(
        node,
        *("--url", _nats_url(stack), "--certs", str(stack / "certs")),
        *("--symbol", "BTC-USD", "--side", "buy", "--quantity", "50"),  # over max quantity
    )

    assert rejected.returncode == 10, rejected.stdout + rejected.stderr
    answer = json.loads(rejected.stdout.splitlines()[1])
    assert answer["outcome"] == "rejected" and answer["terminal"] is True
    assert answer["reasons"], answer


def test_the_client_certificate_without_its_inbox_prefix_gets_no_ack(
    node: str, stack: Path
) -> None:
    # A JetStream publish waits for its ack on an inbox; under the default `_INBOX.` prefix the
    # server refuses the client's subscription, so the publish fails instead of being confirmed.
    refused = submit(
        node,
        *("--url", _nats_url(stack), "--certs", str(stack / "certs")),
        *("--symbol", "BTC-USD", "--side", "buy", "--quantity", "0.01"),
        *("--inbox-prefix", "_INBOX", "--timeout-ms", "3000"),
    )

    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "no publish ack" in refused.stderr
