"""The ingestor's intake checks: what a submission may carry, and when two are the same intent."""

from __future__ import annotations

import json
import uuid

import pytest
from nats.aio.msg import Msg

from agents.ingestor.agent import content_hash, decode_submission
from bus import Rejected
from contracts import SubmitIntent


def submission(quantity: str = "0.5", **extra: str) -> bytes:
    body = {"intent_id": str(uuid.uuid4()), "account": "paper-1", "symbol": "BTC-USD",
            "side": "buy", "quantity": quantity, **extra}  # fmt: skip
    return json.dumps(body).encode()


def delivery(data: bytes, headers: dict[str, str] | None = None) -> Msg:
    return Msg(None, subject="intent.submitted.BTC-USD", reply="$JS.ACK.x", data=data,  # type: ignore[arg-type]
               headers=headers)  # fmt: skip


def test_one_quantity_spelled_two_ways_is_one_intent_and_another_quantity_is_not() -> None:
    def digest(quantity: str) -> str:
        return content_hash(SubmitIntent.model_validate_json(submission(quantity)))

    assert digest("0.5") == digest("0.50") == digest("0.500")
    assert digest("10") == digest("10.0")
    assert digest("0.5") != digest("0.51")


def test_a_submission_setting_a_server_header_is_refused_reserved_header() -> None:
    for headers in ({"Status": "409"}, {"Nats-Sequence": "1"}, {"nats-pending-messages": "x"}):
        with pytest.raises(Rejected) as refused:
            decode_submission(delivery(submission(), headers))
        assert refused.value.code == "reserved_header"
    intent = decode_submission(delivery(submission(), {"Nats-Msg-Id": "abc", "X-Trace": "t"}))
    assert intent.symbol == "BTC-USD"
