"""The latest price per symbol, fed by `market.tick.*`; O(1) reads for any agent."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.errors import NotFoundError

from contracts import InvalidMessage, MarketTick, parse
from contracts import subjects as s
from contracts.topology import MARKET

log = logging.getLogger("tradeops.prices")


class PriceBook:
    """Latest tick per symbol; an older tick never replaces a newer one."""

    def __init__(self) -> None:
        self._latest: dict[str, MarketTick] = {}

    def update(self, tick: MarketTick) -> None:
        current = self._latest.get(tick.symbol)
        if current is None or tick.observed_at >= current.observed_at:
            self._latest[tick.symbol] = tick

    def get(self, symbol: str) -> MarketTick | None:
        return self._latest.get(symbol)

    def symbols(self) -> list[str]:
        return sorted(self._latest)

    async def follow(self, nc: NATS, symbols: Iterable[str]) -> None:
        """Subscribe to live ticks, then read the last stored tick of each symbol."""

        async def on_tick(msg: Msg) -> None:
            try:
                self.update(parse(MarketTick, msg.data))
            except InvalidMessage as exc:
                log.error("ignored malformed tick on %s: %s", msg.subject, exc)

        await nc.subscribe(s.every(s.MARKET_TICK), cb=on_tick)
        await self.bootstrap(nc, symbols)

    async def bootstrap(self, nc: NATS, symbols: Iterable[str]) -> None:
        js = nc.jetstream()
        for symbol in symbols:
            try:
                raw = await js.get_msg(MARKET, subject=s.of(s.MARKET_TICK, symbol), direct=True)
            except NotFoundError:
                continue
            try:
                self.update(parse(MarketTick, raw.data or b""))
            except InvalidMessage as exc:
                log.error("ignored malformed stored tick for %s: %s", symbol, exc)
