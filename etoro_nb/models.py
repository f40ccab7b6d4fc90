"""Typed results of the contract's answers (pydantic), with friendly field names.

Each model reads the contract's JSON (``model_validate``) through field aliases, so the
wire names stay exactly the contract's while Python code reads ``portfolio.name``. The
client reads every answer through ``_base.read``, which turns a body of the wrong shape
into a ``ResponseFormatError``; this module depends on nothing else in the package.
A minted token's secret is a ``pydantic.SecretStr``: it prints as ``**********`` and is
revealed only by ``token.secret.get_secret_value()``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr


class Model(BaseModel):
    # defer_build: each model's validator is built on first use, not at import.
    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="ignore", defer_build=True)


# -- delegation ---------------------------------------------------------------------------
class UserToken(Model):
    """A user token as listed: never with its secret."""

    id: str = Field(alias="userTokenId")
    name: str = Field(alias="userTokenName")
    client_id: str | None = Field(default=None, alias="clientId")
    application: str | None = Field(default=None, alias="externalApplicationName")
    ips_whitelist: tuple[str, ...] = Field(default=(), alias="ipsWhitelist")
    expires_at: datetime | None = Field(default=None, alias="expiresAt")
    scopes: tuple[str, ...] = Field(default=(), alias="scopeNames")
    created_at: datetime | None = Field(default=None, alias="createdAt")


class MintedToken(UserToken):
    """A token just minted: the only time its secret exists outside the server."""

    secret: SecretStr = Field(alias="userToken")
    portfolio_id: str | None = None


class AgentPortfolio(Model):
    id: str = Field(alias="agentPortfolioId")
    name: str = Field(alias="agentPortfolioName")
    gcid: int = Field(alias="agentPortfolioGcid")
    virtual_balance: float = Field(alias="agentPortfolioVirtualBalance")
    mirror_id: int = Field(alias="mirrorId")
    created_at: datetime | None = Field(default=None, alias="createdAt")
    tokens: tuple[UserToken, ...] = Field(default=(), alias="userTokens")

    def token(self, name: str) -> UserToken | None:
        """The live token of that name, if any."""
        return next((t for t in self.tokens if t.name == name), None)

    def token_by_id(self, token_id: str | None) -> UserToken | None:
        """The live token with that id, if any."""
        return next((t for t in self.tokens if t.id == token_id), None)


class CreatedPortfolio(Model):
    """A new agent portfolio and its first token, with that token's secret."""

    portfolio: AgentPortfolio
    token: MintedToken


class Me(Model):
    gcid: int
    real_cid: int = Field(alias="realCid")
    demo_cid: int = Field(alias="demoCid")
    username: str
    first_name: str | None = Field(default=None, alias="firstName")
    last_name: str | None = Field(default=None, alias="lastName")
    scopes: tuple[str, ...] = ()


# -- trading ------------------------------------------------------------------------------
class UnrealizedPnL(Model):
    pnl: float = Field(alias="pnL")
    close_rate: float | None = Field(default=None, alias="closeRate")


class Position(Model):
    position_id: int = Field(validation_alias=AliasChoices("positionID", "positionId"))
    cid: int | None = Field(default=None, validation_alias=AliasChoices("CID", "cid"))
    instrument_id: int = Field(validation_alias=AliasChoices("instrumentID", "instrumentId"))
    is_buy: bool = Field(alias="isBuy")
    open_rate: float = Field(alias="openRate")
    opened_at: datetime | None = Field(default=None, alias="openDateTime")
    amount: float = 0.0
    units: float = 0.0
    leverage: int = 1
    stop_loss_rate: float = Field(default=0.0, alias="stopLossRate")
    take_profit_rate: float = Field(default=0.0, alias="takeProfitRate")
    mirror_id: int = Field(default=0, validation_alias=AliasChoices("mirrorID", "mirrorId"))
    parent_position_id: int = Field(
        default=0, validation_alias=AliasChoices("parentPositionID", "parentPositionId"))
    order_id: int | None = Field(default=None, validation_alias=AliasChoices("orderID", "orderId"))
    unrealized: UnrealizedPnL | None = Field(default=None, alias="unrealizedPnL")


class Mirror(Model):
    mirror_id: int = Field(validation_alias=AliasChoices("mirrorID", "mirrorId"))
    parent_cid: int | None = Field(default=None, validation_alias=AliasChoices("parentCID", "parentCid"))
    parent_username: str | None = Field(default=None, alias="parentUsername")
    initial_investment: float = Field(default=0.0, alias="initialInvestment")
    available_amount: float = Field(default=0.0, alias="availableAmount")
    closed_positions_net_profit: float = Field(default=0.0, alias="closedPositionsNetProfit")
    started_at: datetime | None = Field(default=None, alias="startedCopyDate")
    positions: tuple[Position, ...] = ()


class PendingOrder(Model):
    order_id: int = Field(validation_alias=AliasChoices("orderID", "orderId"))
    instrument_id: int = Field(validation_alias=AliasChoices("instrumentID", "instrumentId"))
    is_buy: bool = Field(alias="isBuy")
    rate: float | None = None
    amount: float = 0.0
    leverage: float = 1


class Portfolio(Model):
    """An account's portfolio (``clientPortfolio``); P&L fields are set by ``pnl()``."""

    credit: float = 0.0
    positions: tuple[Position, ...] = ()
    mirrors: tuple[Mirror, ...] = ()
    orders: tuple[PendingOrder, ...] = ()
    unrealized_pnl: float | None = Field(default=None, alias="unrealizedPnL")


class OrderPlaced(Model):
    """The answer to placing an order."""

    order_id: int = Field(validation_alias=AliasChoices("orderId", "orderID"))
    reference_id: str | None = Field(default=None, alias="referenceId")
    token: str | None = None


class OrderStatus(Model):
    id: int
    name: str


class OrderInfo(Model):
    """An order looked up by id or reference id (v2 lookup)."""

    order_id: int = Field(alias="orderId")
    account_id: int | None = Field(default=None, alias="accountId")
    status: OrderStatus
    type: str | None = None
    transaction: str | None = None
    requested_amount: float | None = Field(default=None, alias="requestedAmount")
    requested_units: float | None = Field(default=None, alias="requestedUnits")
    position_ids: tuple[int, ...] = ()
    raw: dict[str, Any] = Field(default_factory=dict, exclude=True)

    @classmethod
    def from_api(cls, body: dict[str, Any]) -> OrderInfo:
        ids = tuple(int(e["positionId"]) for e in body.get("positionExecutions") or ())
        return cls.model_validate({**body, "position_ids": ids, "raw": body})


class ClosedOrder(Model):
    order_id: int = Field(alias="orderID")
    position_id: int = Field(alias="positionID")
    units: float = Field(alias="unitsToDeduct")


class Trade(Model):
    """A closed trade from the history."""

    position_id: int = Field(alias="positionId")
    instrument_id: int = Field(alias="instrumentId")
    is_buy: bool = Field(alias="isBuy")
    leverage: int = 1
    units: float = 0.0
    open_rate: float = Field(alias="openRate")
    close_rate: float = Field(alias="closeRate")
    opened_at: datetime = Field(alias="openTimestamp")
    closed_at: datetime = Field(alias="closeTimestamp")
    net_profit: float = Field(alias="netProfit")
    investment: float = 0.0
    order_id: int | None = Field(default=None, alias="orderId")
    parent_position_id: int = Field(default=0, alias="parentPositionId")
    social_trade_id: int = Field(default=0, alias="socialTradeId")


# -- market data --------------------------------------------------------------------------
class Rate(Model):
    instrument_id: int = Field(alias="instrumentID")
    bid: float
    ask: float
    last: float | None = Field(default=None, alias="lastExecution")
    at: datetime | None = Field(default=None, alias="date")


class Candle(Model):
    instrument_id: int = Field(alias="instrumentID")
    start: datetime = Field(alias="fromDate")
    open: float
    high: float
    low: float
    close: float
    volume: float = 0.0
