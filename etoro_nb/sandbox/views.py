"""JSON shapes of the contract, built from sandbox rows.

Field names and casing follow the subset document exactly, including where it mixes
``positionID`` and ``positionId`` between operations. Where the document declares a
number as an integer (the deprecated v1 open-order echo), the value is rounded to one.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from etoro_nb.sandbox.delegation import SCOPE_ID_OF, Principal
from etoro_nb.sandbox.market import ANCHOR, BY_ID, UNIVERSE, Instrument, PriceSimulator
from etoro_nb.sandbox.trading import ORDER_TYPE_ID, STATUS, Trading
from etoro_nb.sandbox.validation import iso

ACCOUNT_CURRENCY_USD = 1
CLOSE_ORDER_TYPE = 18
SETTLEMENT_TYPE_ID = {"cfd": 0, "real": 1}


# -- delegation ---------------------------------------------------------------------------
def _expiry(token: dict[str, Any]) -> dict[str, Any]:
    # The list and create schemas declare expiresAt as a non-nullable date-time, so a
    # token that never expires leaves the field out there.
    return {"expiresAt": iso(token["expires_at"])} if token["expires_at"] else {}


def token_item(token: dict[str, Any]) -> dict[str, Any]:
    """AgentPortfolioUserTokenItem: a token as listed, never with its secret."""
    return {
        "userTokenId": token["id"],
        "userTokenName": token["name"],
        "clientId": token["client_id"],
        "externalApplicationName": token["application"],
        "ipsWhitelist": list(token["ips"]),
        **_expiry(token),
        "scopeIds": [SCOPE_ID_OF[s] for s in token["scopes"]],
        "scopeNames": list(token["scopes"]),
        "createdAt": token["created_at"],
    }


def created_token_item(token: dict[str, Any], secret: str, *, v2: bool) -> dict[str, Any]:
    """The first token inside a create response (v1 or v2 shape), with its secret."""
    out: dict[str, Any] = {
        "userTokenId": token["id"],
        "userToken": secret,
        "userTokenName": token["name"],
        "clientId": token["client_id"],
        "ipsWhitelist": list(token["ips"]),
    }
    if v2:
        out["scopes"] = [{"name": s} for s in token["scopes"]]
    else:
        out["scopeIds"] = [SCOPE_ID_OF[s] for s in token["scopes"]]
        out["scopeNames"] = list(token["scopes"])
    out.update(_expiry(token))
    return out


def minted_token(token: dict[str, Any], secret: str) -> dict[str, Any]:
    """CreateUserTokenResponse (v1 and v2 mint)."""
    return {
        "userTokenId": token["id"],
        "userToken": secret,
        "userTokenName": token["name"],
        "clientId": token["client_id"],
        "ipsWhitelist": list(token["ips"]),
        "scopeNames": list(token["scopes"]),
        "expiresAt": iso(token["expires_at"]) if token["expires_at"] else None,
        "createdAt": token["created_at"],
    }


def portfolio_head(portfolio: dict[str, Any]) -> dict[str, Any]:
    return {
        "agentPortfolioId": portfolio["id"],
        "agentPortfolioName": portfolio["name"],
        "agentPortfolioGcid": portfolio["gcid"],
        "agentPortfolioVirtualBalance": portfolio["virtual_balance"],
        "mirrorId": portfolio["mirror_id"],
    }


def portfolio_item(portfolio: dict[str, Any], tokens: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        **portfolio_head(portfolio),
        "createdAt": portfolio["created_at"],
        "userTokens": [token_item(t) for t in tokens],
    }


def partial_create(portfolio: dict[str, Any]) -> dict[str, Any]:
    head = portfolio_head(portfolio)
    # CreateAgentPortfolioPartialResponse declares the virtual balance as an integer.
    head["agentPortfolioVirtualBalance"] = round(portfolio["virtual_balance"])
    return {**head, "userTokenCreated": False}


def me(principal: Principal) -> dict[str, Any]:
    owner = principal.kind == "owner"
    return {
        "gcid": principal.gcid,
        "realCid": principal.real_cid,
        "demoCid": principal.demo_cid,
        "username": principal.username,
        "firstName": "Sandbox" if owner else None,
        "middleName": None,
        "lastName": "Owner" if owner else None,
        "playerLevel": 1,
        "gender": 0,
        "language": 1,
        "dateOfBirth": "1990-01-01" if owner else "",
        "lei": None,
        "scopes": list(principal.scopes),
    }


# -- trading ------------------------------------------------------------------------------
def position(pos: sqlite3.Row, trading: Trading | None, now: datetime) -> dict[str, Any]:
    """Position; with ``trading`` given it carries its unrealised P&L."""
    out: dict[str, Any] = {
        "positionID": pos["position_id"],
        "CID": pos["cid"],
        "openDateTime": pos["opened_at"],
        "openRate": pos["open_rate"],
        "instrumentID": pos["instrument_id"],
        "mirrorID": pos["mirror_id"],
        "parentPositionID": pos["parent_position_id"],
        "isBuy": bool(pos["is_buy"]),
        "takeProfitRate": pos["take_profit"],
        "stopLossRate": pos["stop_loss"],
        "amount": round(pos["amount"], 2),
        "leverage": pos["leverage"],
        "orderID": pos["order_id"],
        "orderType": ORDER_TYPE_ID["mkt"],
        "units": pos["units"],
        "totalFees": 0.0,
        "initialAmountInDollars": round(pos["initial_amount"], 2),
        "isTslEnabled": bool(pos["is_tsl"]),
        "stopLossVersion": 1,
        "isSettled": pos["settlement"] == "real",
        "redeemStatusID": 0,
        "initialUnits": pos["initial_units"],
        "isPartiallyAltered": pos["units"] < pos["initial_units"],
        "unitsBaseValueDollars": round(pos["units"] * pos["open_rate"], 2),
        "isDiscounted": False,
        "openPositionActionType": 0,
        "settlementTypeID": SETTLEMENT_TYPE_ID[pos["settlement"]],
        "isDetached": False,
        "openConversionRate": 1.0,
        "pnlVersion": 1,
        "totalExternalFees": 0.0,
        "totalExternalTaxes": 0.0,
        "isNoTakeProfit": pos["take_profit"] == 0,
        "isNoStopLoss": pos["stop_loss"] == 0,
        "lotCount": pos["units"],
    }
    if trading is not None:
        pnl, rate = trading.unrealized(pos, now)
        exposure = pos["units"] * rate
        out["unrealizedPnL"] = {
            "pnL": round(pnl, 2),
            "pnlAssetCurrency": round(pnl, 2),
            "exposureInAccountCurrency": round(exposure, 2),
            "exposureInAssetCurrency": round(exposure, 2),
            "marginInAccountCurrency": round(pos["amount"], 2),
            "marginInAssetCurrency": round(pos["amount"], 2),
            "marginCurrencyId": ACCOUNT_CURRENCY_USD,
            "assetCurrencyId": ACCOUNT_CURRENCY_USD,
            "closeRate": rate,
            "closeConversionRate": 1.0,
            "timestamp": iso(now),
        }
    return out


def pending_order(order: sqlite3.Row, *, pnl_shape: bool) -> dict[str, Any]:
    """A waiting entry order: ``Order`` in the PnL view, its upper-case twin otherwise."""
    fields = {
        "openDateTime": order["created_at"],
        "isBuy": bool(order["is_buy"]),
        "takeProfitRate": order["take_profit"] or 0.0,
        "stopLossRate": order["stop_loss"] or 0.0,
        "rate": order["trigger_rate"],
        "amount": order["amount"],
        "leverage": order["leverage"],
        "units": order["units"] or 0.0,
        "isTslEnabled": bool(order["is_tsl"]),
        "executionType": 1,
        "isDiscounted": False,
    }
    if pnl_shape:
        return {"orderId": order["order_id"], "cid": order["cid"],
                "instrumentId": order["instrument_id"], **fields,
                "isNoTakeProfit": not order["take_profit"],
                "isNoStopLoss": not order["stop_loss"]}
    return {"orderID": order["order_id"], "CID": order["cid"],
            "instrumentID": order["instrument_id"], **fields}


def mirror(m: sqlite3.Row, positions: list[dict[str, Any]], *, pnl_shape: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "mirrorID": m["mirror_id"],
        "CID": m["cid"],
        "parentCID": m["parent_cid"],
        "stopLossPercentage": 0.0,
        "isPaused": False,
        "copyExistingPositions": False,
        "availableAmount": round(m["available_amount"], 2),
        "stopLossAmount": 0.0,
        "initialInvestment": m["initial_investment"],
        "depositSummary": m["initial_investment"],
        "withdrawalSummary": 0.0,
        "positions": positions,
        "parentUsername": m["parent_username"],
        "closedPositionsNetProfit": round(m["closed_net_profit"], 2),
        "startedCopyDate": m["started_at"],
        "pendingForClosure": False,
        "parentMirrors": [],
        "mirrorCalculationType": 0,
        "ordersForOpen": [],
        "ordersForClose": [],
        "ordersForCloseMultiple": [],
        "delayedOrderForClose": [],
        "delayedOrderForOpen": [],
        "mirrorStatusID": 0,
    }
    if not pnl_shape:
        out.update(entryOrders=[], exitOrders=[])
    return out


def client_portfolio(
    trading: Trading, cid: int, now: datetime, *, with_pnl: bool
) -> dict[str, Any]:
    """PortfolioResponse or PortfolioResponseWithPnl for one account."""
    engine = trading if with_pnl else None
    own = trading.positions(cid)
    mirrors = trading.mirrors(cid)
    mirror_views = []
    unrealized = sum(trading.unrealized(p, now)[0] for p in own)
    for m in mirrors:
        copies = trading.positions(cid, mirror_id=m["mirror_id"])
        unrealized += sum(trading.unrealized(p, now)[0] for p in copies)
        mirror_views.append(
            mirror(m, [position(p, engine, now) for p in copies], pnl_shape=with_pnl)
        )
    body: dict[str, Any] = {
        "positions": [position(p, engine, now) for p in own],
        "credit": round(trading.delegation.credit(cid), 2),
        "mirrors": mirror_views,
        "orders": [pending_order(o, pnl_shape=with_pnl) for o in trading.pending_orders(cid)],
        "ordersForOpen": [],
        "ordersForClose": [],
        "ordersForCloseMultiple": [],
        "bonusCredit": 0.0,
        "stockOrders": [],
        "entryOrders": [],
        "exitOrders": [],
    }
    if with_pnl:
        body["unrealizedPnL"] = round(unrealized, 2)
        body["accountCurrencyId"] = ACCOUNT_CURRENCY_USD
    return {"clientPortfolio": body}


def unified_order(order: sqlite3.Row) -> dict[str, Any]:
    return {"token": order["token"], "orderId": order["order_id"],
            "referenceId": order["reference_id"]}


def v1_open(order: sqlite3.Row, *, by_units: bool) -> dict[str, Any]:
    """The deprecated v1 echo; its schema types amount and rates as integers."""
    body: dict[str, Any] = {
        "instrumentID": order["instrument_id"],
        "amount": round(order["amount"]),
        "isBuy": bool(order["is_buy"]),
        "leverage": order["leverage"],
        "stopLossRate": round(order["stop_loss"] or 0),
        "takeProfitRate": round(order["take_profit"] or 0),
        "isTslEnabled": bool(order["is_tsl"]),
        "mirrorID": 0,
        "totalExternalCosts": 0,
        "orderID": order["order_id"],
        "orderType": ORDER_TYPE_ID[order["order_type"]],
        "statusID": STATUS[order["status"]][0],
        "CID": order["cid"],
        "openDateTime": order["created_at"],
        "lastUpdate": order["updated_at"],
    }
    if by_units:
        body["amountInUnits"] = order["units"]
        body["lotCount"] = round(order["units"] or 0)
    return {"orderForOpen": body, "token": order["token"]}


def v1_close(result: dict[str, Any], token: str, now: datetime) -> dict[str, Any]:
    pos = result["position"]
    return {
        "orderForClose": {
            "positionID": pos["position_id"],
            "instrumentID": pos["instrument_id"],
            "unitsToDeduct": result["units"],
            "orderID": result["order_id"],
            "orderType": CLOSE_ORDER_TYPE,
            "statusID": STATUS["executed"][0],
            "CID": pos["cid"],
            "openDateTime": iso(now),
            "lastUpdate": iso(now),
        },
        "token": token,
    }


def _execution(trading: Trading, order: sqlite3.Row) -> list[dict[str, Any]]:
    if order["position_id"] is None:
        return []
    pos = trading.conn.execute(
        "SELECT * FROM positions WHERE position_id = ?", (order["position_id"],)
    ).fetchone()
    bid_ask_spread = BY_ID[pos["instrument_id"]].kind.spread
    return [{
        "positionId": pos["position_id"],
        "state": "closed" if pos["closed_at"] else "open",
        "investedAmountCurrency": pos["initial_amount"],
        "initialExposureAccountCurrency": round(pos["initial_amount"] * pos["leverage"], 2),
        "initialExposureAssetCurrency": round(pos["initial_amount"] * pos["leverage"], 2),
        "addedFunds": 0.0,
        "marginAccountCurrency": pos["amount"],
        "marginAssetCurrency": pos["amount"],
        "remainingUnits": pos["units"],
        "remainingContracts": None,
        "stopLossRate": pos["stop_loss"] or None,
        "takeProfitRate": pos["take_profit"] or None,
        "openingData": {
            "openTime": order["created_at"],
            "orderId": order["order_id"],
            "executionTime": pos["opened_at"],
            "units": pos["initial_units"],
            "contracts": None,
            "avgPrice": pos["open_rate"],
            "avgConversionRate": 1.0,
            "marketSpread": bid_ask_spread,
            "markup": 0.0,
            "priceId": pos["position_id"],
            "fees": 0.0,
            "taxes": 0.0,
        },
    }]


def order_info(trading: Trading, order: sqlite3.Row, gcid: int) -> dict[str, Any]:
    """GetOrderInfoResponse (v2 lookup)."""
    inst = BY_ID[order["instrument_id"]]
    status_id, status_name = STATUS[order["status"]]
    return {
        "accountId": order["cid"],
        "gcid": gcid,
        "portfolioId": 1,
        "orderId": order["order_id"],
        "action": "open",
        "transaction": "buy" if order["is_buy"] else "sell",
        "type": order["order_type"],
        "etoroOrderTypeId": ORDER_TYPE_ID[order["order_type"]],
        "status": {"id": status_id, "name": status_name, "errorCode": 0, "errorMessage": None},
        "asset": {
            "symbol": inst.symbol,
            "instrumentId": inst.instrument_id,
            "currency": "USD",
            "settlementType": order["settlement"],
            "leverage": order["leverage"],
            "side": "long" if order["is_buy"] else "short",
        },
        "orderCurrency": "usd",
        "requestedAmount": None if order["units"] is not None else order["amount"],
        "requestedUnits": order["units"],
        "requestedContracts": None,
        "frozenAmount": order["amount"] if order["status"] == "pending" else 0.0,
        "requestedTriggerRate": order["trigger_rate"],
        "openStopLossRate": order["stop_loss"] or None,
        "openTakeProfitRate": order["take_profit"] or None,
        "stopLossType": ("trailing" if order["is_tsl"] else "fixed") if order["stop_loss"] else None,
        "totalCosts": 0.0,
        "positionsToClose": [],
        "positionExecutions": _execution(trading, order),
        "requestTime": order["created_at"],
        "lastUpdate": order["updated_at"],
        "openActionType": "customer",
        "requestType": "byUnits" if order["units"] is not None else "byAmount",
    }


def v1_order_info(trading: Trading, order: sqlite3.Row) -> dict[str, Any]:
    """OrderForOpenInfoResponse (deprecated v1 lookup)."""
    positions = []
    if order["position_id"] is not None:
        pos = trading.conn.execute(
            "SELECT * FROM positions WHERE position_id = ?", (order["position_id"],)
        ).fetchone()
        positions.append({
            "positionID": pos["position_id"],
            "orderType": ORDER_TYPE_ID[order["order_type"]],
            "occurred": pos["opened_at"],
            "rate": pos["open_rate"],
            "units": pos["initial_units"],
            "conversionRate": 1.0,
            "amount": pos["initial_amount"],
            "isOpen": pos["closed_at"] is None,
        })
    return {
        "token": order["token"],
        "orderID": order["order_id"],
        "CID": order["cid"],
        "referenceID": order["reference_id"],
        "statusID": STATUS[order["status"]][0],
        "orderType": ORDER_TYPE_ID[order["order_type"]],
        "openActionType": 0,
        "errorCode": 0,
        "instrumentID": order["instrument_id"],
        "amount": order["amount"],
        "units": order["units"] if order["units"] is not None else (
            positions[0]["units"] if positions else 0.0),
        "requestOccurred": order["created_at"],
        "positions": positions,
    }


def trade(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "netProfit": round(row["net_profit"], 2),
        "closeRate": row["close_rate"],
        "closeTimestamp": row["closed_at"],
        "positionId": row["position_id"],
        "instrumentId": row["instrument_id"],
        "isBuy": bool(row["is_buy"]),
        "leverage": row["leverage"],
        "openRate": row["open_rate"],
        "openTimestamp": row["opened_at"],
        "stopLossRate": row["stop_loss"],
        "takeProfitRate": row["take_profit"],
        "trailingStopLoss": bool(row["is_tsl"]),
        "orderId": row["order_id"],
        "socialTradeId": row["mirror_id"],  # copies name their mirror; own trades 0
        "parentPositionId": row["parent_position_id"],
        "investment": round(row["investment"], 2),
        "initialInvestment": round(row["initial_investment"], 2),
        "fees": 0.0,
        "units": row["units"],
    }


# -- market data --------------------------------------------------------------------------
def rate(prices: PriceSimulator, inst: Instrument, now: datetime) -> dict[str, Any]:
    bid, ask = prices.quote(inst.instrument_id, now)
    mid = round((bid + ask) / 2, inst.kind.decimals + 1)
    return {
        "instrumentID": inst.instrument_id,
        "ask": ask,
        "bid": bid,
        "lastExecution": mid,
        "conversionRateAsk": 1.0,
        "conversionRateBid": 1.0,
        "date": iso(now),
        "unitMargin": mid,
        "unitMarginAsk": ask,
        "unitMarginBid": bid,
        "priceRateID": int(now.timestamp() * 1000) % 2**31,
        "bidDiscounted": bid,
        "askDiscounted": ask,
        "unitMarginBidDiscounted": bid,
        "unitMarginAskDiscounted": ask,
    }


def _change(prices: PriceSimulator, inst: Instrument, now: datetime, days: int) -> float:
    then = prices.mid(inst.instrument_id, now - timedelta(days=days))
    return round((prices.mid(inst.instrument_id, now) / then - 1) * 100, 2)


def instrument(prices: PriceSimulator, inst: Instrument, now: datetime) -> dict[str, Any]:
    """Every field of the contract's Instrument, for projection by ``fields``."""
    bid, ask = prices.quote(inst.instrument_id, now)
    mid = prices.mid(inst.instrument_id, now)
    day = _change(prices, inst, now, 1)
    week = _change(prices, inst, now, 7)
    month = _change(prices, inst, now, 30)
    pop = inst.popularity
    return {
        "instrumentId": inst.instrument_id,
        "displayname": inst.name,
        "popularityUniques7Day": pop // 4,
        "instrumentTypeID": inst.kind.type_id,
        "instrumentType": inst.kind.name,
        "exchangeID": inst.exchange_id,
        "symbol": inst.symbol,
        "isOpen": True,
        "internalAssetClassId": inst.kind.asset_class_id,
        "internalInstrumentDisplayName": inst.name,
        "isInternalInstrument": False,
        "internalSymbolFull": inst.symbol,
        "isHiddenFromClient": False,
        "internalInstrumentId": inst.instrument_id,
        "internalCryptoTypeId": 1 if inst.kind.name == "Crypto" else 0,
        "internalExchangeId": inst.exchange_id,
        "internalExchangeName": inst.exchange_name,
        "internalAssetClassName": inst.kind.name,
        "logo35x35": f"https://etoro-nb.invalid/logos/{inst.symbol.lower()}-35.png",
        "logo50x50": f"https://etoro-nb.invalid/logos/{inst.symbol.lower()}-50.png",
        "logo150x150": f"https://etoro-nb.invalid/logos/{inst.symbol.lower()}-150.png",
        "dailyPriceChange": day,
        "absDailyPriceChange": abs(day),
        "weeklyPriceChange": week,
        "monthlyPriceChange": month,
        "isDelisted": False,
        "isCurrentlyTradable": True,
        "isExchangeOpen": True,
        "internalClosingPrice": round(prices.mid(inst.instrument_id, now.replace(
            hour=0, minute=0, second=0, microsecond=0)), inst.kind.decimals),
        "isActiveInPlatform": True,
        "isBuyEnabled": True,
        "currentRate": round(mid, inst.kind.decimals),
        "threeMonthPriceChange": _change(prices, inst, now, 91),
        "sixMonthPriceChange": _change(prices, inst, now, 182),
        "oneYearPriceChange": _change(prices, inst, now, 365),
        "currMonthPriceChange": month,
        "currQuarterPriceChange": _change(prices, inst, now, 91),
        "currYearPriceChange": _change(prices, inst, now, 365),
        "lastYearPriceChange": _change(prices, inst, now, 365),
        "lastTwoYearsPriceChange": _change(prices, inst, now, 730),
        "oneMonthAgoPriceChange": month,
        "twoMonthsAgoPriceChange": _change(prices, inst, now, 61),
        "threeMonthsAgoPriceChange": _change(prices, inst, now, 91),
        "sixMonthsAgoPriceChange": _change(prices, inst, now, 182),
        "oneYearAgoPriceChange": _change(prices, inst, now, 365),
        "cvtBid": bid,
        "cvtAsk": ask,
        "cvtBiNoSpread": round(mid, inst.kind.decimals),
        "cvtAskNoSpread": round(mid, inst.kind.decimals),
        "traders7DayChange": 0.0,
        "traders14DayChange": 0.0,
        "traders30DayChange": 0.0,
        "popularityUniques14Day": pop // 2,
        "popularityUniques30Day": pop,
        "internalIndustryId": 0,
        "internalStockIndustryName": "",
        "popularityUniques": pop,
        "holdingPct": 0.0,
        "buyHoldingPct": 100.0,
        "sellHoldingPct": 0.0,
        "buyPctChange24Hours": 0.0,
        "absBuyPctChange24Hours": 0.0,
        "industryNameId": 0,
        "sectorNameId": 0,
    }


@cache
def instrument_fields() -> frozenset[str]:
    """The field names ``fields`` may project (and filters may compare)."""
    return frozenset(instrument(PriceSimulator(0), UNIVERSE[0], ANCHOR))
