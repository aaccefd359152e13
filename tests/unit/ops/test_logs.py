"""`tradeops logs`: where each log is, its last lines, following through truncation and rotation."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from ops.cli.main import app
from ops.logs import Follower, log_files, tail


def test_every_process_of_the_stack_has_its_log(tmp_path: Path) -> None:
    files = log_files(tmp_path)
    assert list(files) == ["stack", "nats-server", "postgres",
                           "ingestor", "analyst", "risk", "executor", "ledger"]  # fmt: skip
    assert files["ingestor"] == tmp_path / "logs" / "ingestor.log"
    assert files["postgres"] == tmp_path / "pg" / "log"


def test_tail_reads_the_last_lines_of_a_file_larger_than_a_block(tmp_path: Path) -> None:
    path = tmp_path / "big.log"
    path.write_text("".join(f"line {i} {'x' * 200}\n" for i in range(2000)))
    assert [line.split()[1] for line in tail(path, 3)] == ["1997", "1998", "1999"]
    assert len(tail(path, 5000)) == 2000
    assert tail(path, 0) == []


def test_follower_sees_appended_lines_whole_and_survives_truncation_and_rotation(
    tmp_path: Path,
) -> None:
    path = tmp_path / "agent.log"
    path.write_text("old\n")
    follower = Follower.at_end(path)
    assert follower.poll() == []
    with path.open("a") as f:
        f.write("one\ntw")
    assert follower.poll() == ["one"]
    with path.open("a") as f:
        f.write("o\n")
    assert follower.poll() == ["two"]
    path.write_text("rewritten, and longer than before\n")  # truncated, then written again
    assert follower.poll() == ["rewritten, and longer than before"]
    with path.open("a") as f:
        f.write("next\n")
    assert follower.poll() == ["next"]
    path.write_text("short\n")
    assert follower.poll() == ["short"]
    path.rename(tmp_path / "agent.log.1")
    (tmp_path / "agent.log").write_text("a new file, a longer first line than before\n")
    assert follower.poll() == ["a new file, a longer first line than before"]


def test_a_log_that_appears_later_is_read_from_its_start(tmp_path: Path) -> None:
    path = tmp_path / "later.log"
    follower = Follower.at_end(path)
    assert follower.poll() == []
    path.write_text("first\n")
    assert follower.poll() == ["first"]


def test_unknown_name_is_one_line_listing_the_known_ones(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["logs", "brokr", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: no log named 'brokr'; known: stack, nats-server, postgres, ingestor, analyst, "
        "risk, executor, ledger"
    ]


def test_every_log_prefixed_by_its_name(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "risk.log").write_text("r1\nr2\n")
    (tmp_path / "logs" / "nats-server.log").write_text("n1\n")
    result = CliRunner().invoke(app, ["logs", "-n", "1", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0
    assert result.output.splitlines() == ["nats-server | n1", "risk        | r2"]
    alone = CliRunner().invoke(app, ["logs", "risk", "--data-dir", str(tmp_path)])
    assert alone.output.splitlines() == ["r1", "r2"]
