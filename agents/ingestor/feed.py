"""Market data: a seedable synthetic random walk, or a CSV replay (`ts,symbol,price[,volume]`)."""

from __future__ import annotations

import asyncio
import csv
import random
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

from agents.common.config import Instrument
from agents.ingestor.config import Feed, FeedMode
from contracts import Identity, MarketTick

CENT = Decimal("0.01")


@dataclass(frozen=True)
class Quote:
    symbol: str
    price: Decimal
    volume: Decimal | None = None


class RandomWalk:
    """Deterministic for a seed: the same seed gives the same price path."""

    def __init__(self, instruments: Sequence[Instrument], seed: int) -> None:
        self._rng = random.Random(seed)
        self._prices = {i.symbol: i.start_price for i in instruments}
        self._vol = {i.symbol: i.volatility_bps for i in instruments}

    def step(self) -> list[Quote]:
        quotes = []
        for symbol, price in self._prices.items():
            shock = Decimal(str(round(self._rng.gauss(0.0, 1.0), 6)))
            move = price * self._vol[symbol] * shock / Decimal(10000)
            new = max((price + move).quantize(CENT, ROUND_HALF_EVEN), CENT)
            self._prices[symbol] = new
            quotes.append(Quote(symbol, new))
        return quotes


@dataclass(frozen=True)
class CsvRow:
    ts: datetime
    quote: Quote


def read_csv(path: Path) -> list[CsvRow]:
    """Parse `ts,symbol,price[,volume]` (ISO-8601 or epoch seconds); a header row is allowed."""
    rows: list[CsvRow] = []
    with path.open(newline="") as handle:
        for number, record in enumerate(csv.reader(handle), start=1):
            if not record or (number == 1 and record[0].strip().lower() == "ts"):
                continue
            if len(record) not in (3, 4):
                raise ValueError(f"{path}:{number}: expected ts,symbol,price[,volume]")
            raw_ts, symbol, price = (x.strip() for x in record[:3])
            ts = (
                datetime.fromtimestamp(float(raw_ts), UTC)
                if raw_ts.replace(".", "", 1).isdigit()
                else datetime.fromisoformat(raw_ts)
            )
            if ts.tzinfo is None:
                ts = ts.replace(tzinfo=UTC)
            volume = Decimal(record[3].strip()) if len(record) == 4 else None
            rows.append(CsvRow(ts, Quote(symbol, Decimal(price), volume)))
    return rows


async def quotes(feed: Feed, instruments: Sequence[Instrument]) -> AsyncIterator[list[Quote]]:
    """Yield batches of quotes at the configured pace."""
    if feed.mode is FeedMode.CSV:
        if feed.csv_path is None:
            raise ValueError("feed.mode = 'csv' needs feed.csv_path")
        rows = read_csv(feed.csv_path)
        previous: datetime | None = None
        for row in rows:
            if previous is not None and feed.speed > 0:
                await asyncio.sleep(max((row.ts - previous).total_seconds() / feed.speed, 0.0))
            previous = row.ts
            yield [row.quote]
        return
    walk = RandomWalk(instruments, feed.seed)
    while True:
        yield walk.step()
        await asyncio.sleep(feed.interval_ms / 1000)


def tick_of(quote: Quote, producer: Identity = Identity.INGESTOR) -> MarketTick:
    return MarketTick(
        event_id=uuid.uuid4(),
        producer=producer,
        symbol=quote.symbol,
        price=quote.price,
        volume=quote.volume,
        observed_at=datetime.now(UTC),
    )
