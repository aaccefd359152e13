"""Dead-letter messages whose deliveries ran out, from the server's MAX_DELIVERIES advisory."""

from __future__ import annotations

from collections.abc import Sequence

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from bus.deadletter import MaxDeliveriesAdvisory, dead_letter
from bus.errors import Rejected, Transient
from bus.handling import BatchHandler, Delivery, one_by_one
from bus.publisher import Emit
from contracts import Identity, parse


def decode_advisory(msg: Msg) -> MaxDeliveriesAdvisory:
    return parse(MaxDeliveriesAdvisory, msg.data)


def exhausted_handler(js: JetStreamContext, agent: Identity) -> BatchHandler[MaxDeliveriesAdvisory]:
    """Return a handler that reads the original message by sequence and dead-letters it."""

    async def handle(item: Delivery[MaxDeliveriesAdvisory]) -> Sequence[Emit]:
        advisory = item.value
        try:
            raw = await js.get_msg(advisory.stream, seq=advisory.stream_seq, direct=True)
        except NotFoundError as exc:
            raise Rejected(
                "original_missing",
                f"{advisory.stream} #{advisory.stream_seq} is no longer in the stream",
            ) from exc
        except Exception as exc:
            raise Transient(f"reading {advisory.stream} #{advisory.stream_seq}: {exc!r}") from exc
        return [
            dead_letter(
                agent=agent,
                reason="max_deliveries",
                error=(
                    f"not processed after {advisory.deliveries} deliveries to "
                    f"{advisory.consumer}; see the agent's log for each attempt's error"
                ),
                subject=raw.subject or "",
                headers=raw.headers,
                data=raw.data or b"",
                stream=advisory.stream,
                stream_seq=advisory.stream_seq,
                delivery_count=advisory.deliveries,
            )
        ]

    return one_by_one(handle)
