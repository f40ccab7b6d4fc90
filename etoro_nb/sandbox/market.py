"""The simulated market: a fixed instrument universe and seeded, reproducible prices.

Prices follow a geometric random walk built in three layers so any instant can be priced
without replaying history: daily knots form a random walk from a fixed anchor date;
within a day, hourly points form a Brownian bridge between two knots; within an hour,
minute points form a bridge between two hourly points; between minutes the price is
interpolated linearly. The same seed and instant always give the same price, whatever
was asked before. Candle highs and lows are taken over minute points for intervals up
to an hour and over hourly points above that (documented in docs/sandbox.md).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)
DAY = 86_400
HOUR = 3_600
MINUTE = 60

INTERVALS: dict[str, int] = {
    "OneMinute": MINUTE,
    "FiveMinutes": 5 * MINUTE,
    "TenMinutes": 10 * MINUTE,
    "FifteenMinutes": 15 * MINUTE,
    "ThirtyMinutes": 30 * MINUTE,
    "OneHour": HOUR,
    "FourHours": 4 * HOUR,
    "OneDay": DAY,
    "OneWeek": 7 * DAY,
}


@dataclass(frozen=True)
class InstrumentType:
    type_id: int
    name: str
    asset_class_id: int
    max_leverage: int
    decimals: int
    annual_vol: float
    spread: float  # ask - bid, as a fraction of the mid price


STOCK = InstrumentType(5, "Stocks", 5, 5, 2, 0.30, 0.0010)
ETF = InstrumentType(6, "ETF", 6, 5, 2, 0.18, 0.0008)
CRYPTO = InstrumentType(10, "Crypto", 10, 2, 2, 0.65, 0.0100)
CURRENCY = InstrumentType(1, "Currencies", 1, 30, 5, 0.08, 0.0002)


@dataclass(frozen=True)
class Instrument:
    instrument_id: int
    symbol: str
    name: str
    kind: InstrumentType
    base_price: float
    exchange_id: int
    exchange_name: str
    popularity: int


UNIVERSE: tuple[Instrument, ...] = (
    Instrument(1, "EURUSD", "EUR/USD", CURRENCY, 1.0850, 1, "FX", 91_000),
    Instrument(2, "GBPUSD", "GBP/USD", CURRENCY, 1.2700, 1, "FX", 64_000),
    Instrument(4, "AUDUSD", "AUD/USD", CURRENCY, 0.6600, 1, "FX", 22_000),
    Instrument(5, "NZDUSD", "NZD/USD", CURRENCY, 0.6050, 1, "FX", 18_000),
    Instrument(1001, "AAPL", "Apple", STOCK, 228.50, 4, "NASDAQ", 310_000),
    Instrument(1002, "GOOG", "Alphabet", STOCK, 171.30, 4, "NASDAQ", 180_000),
    Instrument(1003, "MSFT", "Microsoft", STOCK, 415.80, 4, "NASDAQ", 205_000),
    Instrument(1004, "AMZN", "Amazon.com", STOCK, 186.40, 4, "NASDAQ", 220_000),
    Instrument(1005, "META", "Meta Platforms", STOCK, 560.10, 4, "NASDAQ", 150_000),
    Instrument(1111, "TSLA", "Tesla Motors", STOCK, 248.90, 4, "NASDAQ", 400_000),
    Instrument(1137, "NVDA", "NVIDIA", STOCK, 122.60, 4, "NASDAQ", 380_000),
    Instrument(1042, "JPM", "JPMorgan Chase", STOCK, 211.70, 5, "NYSE", 60_000),
    Instrument(1046, "KO", "Coca-Cola", STOCK, 69.80, 5, "NYSE", 45_000),
    Instrument(3000, "SPY", "SPDR S&P 500 ETF", ETF, 571.40, 5, "NYSE", 120_000),
    Instrument(3006, "QQQ", "Invesco QQQ Trust", ETF, 487.20, 4, "NASDAQ", 95_000),
    Instrument(3025, "GLD", "SPDR Gold Shares", ETF, 245.10, 5, "NYSE", 40_000),
    Instrument(3031, "VTI", "Vanguard Total Stock Market ETF", ETF, 282.30, 5, "NYSE", 30_000),
    Instrument(100000, "BTC", "Bitcoin", CRYPTO, 63_250.0, 8, "Crypto", 650_000),
    Instrument(100001, "ETH", "Ethereum", CRYPTO, 2_650.0, 8, "Crypto", 330_000),
    Instrument(100017, "XRP", "XRP", CRYPTO, 0.585, 8, "Crypto", 140_000),
    Instrument(100063, "SOL", "Solana", CRYPTO, 148.0, 8, "Crypto", 170_000),
    Instrument(100043, "ADA", "Cardano", CRYPTO, 0.352, 8, "Crypto", 90_000),
)

BY_ID: dict[int, Instrument] = {i.instrument_id: i for i in UNIVERSE}
BY_SYMBOL: dict[str, Instrument] = {i.symbol.upper(): i for i in UNIVERSE}


def _gauss(*key: object) -> random.Random:
    return random.Random(":".join(str(k) for k in key))


class PriceSimulator:
    """Mid prices, quotes and candles for the universe, reproducible from a seed."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._knots: dict[int, dict[int, float]] = {i.instrument_id: {0: 0.0} for i in UNIVERSE}

    # -- the three layers -------------------------------------------------------------
    def _knot(self, iid: int, day: int) -> float:
        """Log-return of the daily knot ``day`` days after the anchor."""
        knots = self._knots[iid]
        if day in knots:
            return knots[day]
        sigma = BY_ID[iid].kind.annual_vol / math.sqrt(365.0)
        step = 1 if day > 0 else -1
        last = max(knots) if day > 0 else min(knots)
        for d in range(last + step, day + step, step):
            z = _gauss(self.seed, iid, "d", d).gauss(0.0, 1.0)
            knots[d] = knots[d - step] + step * sigma * z - 0.5 * sigma * sigma * step
        return knots[day]

    @lru_cache(maxsize=4096)  # noqa: B019 - the simulator lives as long as its sandbox
    def _hours(self, iid: int, day: int) -> tuple[float, ...]:
        """25 log points at each hour of ``day``, a bridge between two daily knots."""
        return self._bridge(self._knot(iid, day), self._knot(iid, day + 1), 24, iid, "h", day)

    @lru_cache(maxsize=16384)  # noqa: B019
    def _minutes(self, iid: int, hour: int) -> tuple[float, ...]:
        """61 log points at each minute of the ``hour``-th hour after the anchor."""
        day, h = divmod(hour, 24)
        hours = self._hours(iid, day)
        return self._bridge(hours[h], hours[h + 1], 60, iid, "m", hour)

    def _bridge(
        self, start: float, end: float, steps: int, iid: int, level: str, index: int
    ) -> tuple[float, ...]:
        sigma = BY_ID[iid].kind.annual_vol / math.sqrt(365.0 * (24 if level == "h" else 1440))
        rng = _gauss(self.seed, iid, level, index)
        walk = [0.0]
        for _ in range(steps):
            walk.append(walk[-1] + rng.gauss(0.0, sigma))
        total = walk[-1]
        return tuple(
            start + (end - start) * k / steps + walk[k] - total * k / steps
            for k in range(steps + 1)
        )

    # -- public ------------------------------------------------------------------------
    def mid(self, instrument_id: int, at: datetime) -> float:
        """The mid price of an instrument at an instant."""
        inst = BY_ID[instrument_id]
        seconds = (at - ANCHOR).total_seconds()
        minute_index = math.floor(seconds / MINUTE)
        hour, minute = divmod(minute_index, 60)
        minutes = self._minutes(instrument_id, hour)
        frac = (seconds - minute_index * MINUTE) / MINUTE
        log_return = minutes[minute] + (minutes[minute + 1] - minutes[minute]) * frac
        return inst.base_price * math.exp(log_return)

    def _log_at_grid(self, instrument_id: int, seconds: int, resolution: int) -> float:
        if resolution == HOUR:
            day, h = divmod(seconds // HOUR, 24)
            return self._hours(instrument_id, day)[h]
        hour, minute = divmod(seconds // MINUTE, 60)
        return self._minutes(instrument_id, hour)[minute]

    def quote(self, instrument_id: int, at: datetime) -> tuple[float, float]:
        """(bid, ask) at an instant, rounded to the instrument's precision."""
        inst = BY_ID[instrument_id]
        mid = self.mid(instrument_id, at)
        half = mid * inst.kind.spread / 2.0
        digits = inst.kind.decimals
        bid = round(mid - half, digits)
        ask = round(mid + half, digits)
        if ask <= bid:
            ask = round(bid + 10.0**-digits, digits)
        return bid, ask

    def candles(
        self, instrument_id: int, interval: str, count: int, now: datetime
    ) -> list[dict[str, object]]:
        """The ``count`` candles up to ``now`` (the last one still open), oldest first."""
        step = INTERVALS[interval]
        inst = BY_ID[instrument_id]
        now_s = int((now - ANCHOR).total_seconds())
        # Weeks start on Monday, as on eToro's charts; ANCHOR is a Thursday.
        shift = 3 * DAY if interval == "OneWeek" else 0
        current = ((now_s + shift) // step) * step - shift
        resolution = MINUTE if step <= HOUR else HOUR
        digits = inst.kind.decimals
        out: list[dict[str, object]] = []
        for k in range(count - 1, -1, -1):
            start = current - k * step
            end = min(start + step, now_s)
            grid = range(math.ceil(start / resolution) * resolution, end + 1, resolution)
            logs = [self._log_at_grid(instrument_id, s, resolution) for s in grid]
            open_ = self.mid(instrument_id, ANCHOR + timedelta(seconds=start))
            close = self.mid(instrument_id, ANCHOR + timedelta(seconds=end))
            points = [open_, close, *(inst.base_price * math.exp(v) for v in logs)]
            volume = _gauss(self.seed, instrument_id, "v", step, start).uniform(0.5, 1.5)
            out.append(
                {
                    "instrumentID": instrument_id,
                    "fromDate": _iso(ANCHOR + timedelta(seconds=start)),
                    "open": round(open_, digits),
                    "high": round(max(points), digits),
                    "low": round(min(points), digits),
                    "close": round(close, digits),
                    "volume": round(volume * inst.popularity * step / DAY, 2),
                }
            )
        return out


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def find_instrument(instrument_id: int | None, symbol: str | None) -> Instrument | None:
    """The instrument named by id or by symbol (case-insensitive), if it exists."""
    if instrument_id is not None:
        return BY_ID.get(instrument_id)
    if symbol is not None:
        return BY_SYMBOL.get(symbol.upper())
    return None
