"""The rows the grids show, built from the shared state's frames: money with thousands
separators and two decimals, times in UTC to the minute, statuses as coloured badges,
long ids shortened (the whole id in the tooltip). Every text cell is HTML-escaped here."""

from __future__ import annotations

import html
from datetime import datetime
from typing import Any

import polars as pl

from etoro_nb import scopes as scope_names
from etoro_nb.agent.controls import Controls
from etoro_nb.charts import style
from widgets._common import badge
from widgets.state import Snapshot

# A token's status has one colour in the grids and the charts (``style.STATUS_COLOURS``).
STATUS_COLOURS = {**style.STATUS_COLOURS, "paused": "#b00020", "running": "#1b7f3b",
                  "no policy": "#888888", "ok": "#1b7f3b", "refused": "#b00020",
                  "failed": "#b00020"}
ID_CHARS = 8


def money(value: float | None) -> str:
    return "" if value is None else f"{value:,.2f}"


def signed_money(value: float | None) -> str:
    if value is None:
        return ""
    colour = "#1b7f3b" if value > 0 else "#b00020" if value < 0 else "inherit"
    return f'<span style="color:{colour}">{value:+,.2f}</span>'


def when(value: datetime | None, *, never: str = "") -> str:
    return never if value is None else f"{value:%Y-%m-%d %H:%M}"


def short_id(value: Any) -> str:
    """An id cut to its first characters, the whole id in the tooltip."""
    text = "" if value is None else str(value)
    shown = text if len(text) <= ID_CHARS + 1 else text[:ID_CHARS] + "…"
    return f'<span class="enb-id" title="{html.escape(text)}">{html.escape(shown)}</span>'


def status(text: str) -> str:
    return badge(text, STATUS_COLOURS.get(text, "#555555"))


def text(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def portfolio_rows(data: Snapshot) -> pl.DataFrame:
    """One row per agent portfolio: money from the owner's side, tokens, policy state."""
    acct = {r["portfolio_id"]: r for r in data.accounting.iter_rows(named=True)}
    live = data.tokens.filter(pl.col("status").is_in(["active", "expiring"]))
    counts = dict(live.group_by("portfolio_id").len().iter_rows())
    rows = []
    for p in data.portfolios:
        a = acct.get(p.id, {})
        pnl = None if not a else (a["realized_pnl_usd"] or 0) + (a["unrealized_pnl_usd"] or 0)
        rows.append({"portfolio_id": p.id, "Name": text(p.name),
                     "Invested USD": money(a.get("investment_usd")),
                     "Value USD": money(a.get("mirror_value_usd")), "P&L USD": signed_money(pnl),
                     "Positions": str(a.get("open_positions", "")),
                     "Live tokens": str(counts.get(p.id, 0)),
                     "Agent": status(_agent_state(data.controls.get(p.id))),
                     "Created (UTC)": when(p.created_at), "Id": short_id(p.id)})
    return _frame(rows, ["portfolio_id", "Name", "Invested USD", "Value USD", "P&L USD",
                         "Positions", "Live tokens", "Agent", "Created (UTC)", "Id"])


def _agent_state(controls: Controls | None) -> str:
    if controls is not None and controls.paused:
        return "paused"
    return "running" if controls is not None and controls.policy is not None else "no policy"


def token_rows(tokens: pl.DataFrame, unused: dict[str, list[str]]) -> pl.DataFrame:
    """One row per token of the frame given: scopes, status badge, expiry, whitelist and an
    over-privilege flag (scopes granted and never used while others were)."""
    rows = []
    for t in tokens.sort("token_name").iter_rows(named=True):
        flags = ""
        if unused.get(t["token_id"]):
            flags = badge(f"over-privileged: {len(unused[t['token_id']])} unused scope(s)",
                          "#b00020")
        rows.append({"token_id": t["token_id"], "Token": text(t["token_name"]),
                     "Scopes": text(", ".join(scope_names.short(s) for s in t["scopes"])),
                     "Status": status(t["status"]),
                     "Expires (UTC)": when(t["expires_at"], never="never"),
                     "Whitelist": text(", ".join(t["ips_whitelist"]) or "any"),
                     "Flags": flags, "Created (UTC)": when(t["created_at"]),
                     "Id": short_id(t["token_id"])})
    return _frame(rows, ["token_id", "Token", "Scopes", "Status", "Expires (UTC)", "Whitelist",
                         "Flags", "Created (UTC)", "Id"])


POLICY_COLUMNS = {"max_order_amount_usd": "Max order USD", "max_leverage": "Max leverage",
                  "max_open_positions": "Max positions",
                  "max_gross_exposure_usd": "Max exposure USD",
                  "max_orders_per_day": "Orders/day", "max_daily_loss_usd": "Daily loss USD"}


def policy_rows(data: Snapshot) -> pl.DataFrame:
    """One row per agent portfolio: whether its agent runs or is paused, and its policy's
    version and main limits (blank: no limit)."""
    rows = []
    for p in data.portfolios:
        c = data.controls.get(p.id) or Controls(p.id)
        limits = c.policy.limits() if c.policy else {}
        row = {"portfolio_id": p.id, "Portfolio": text(p.name), "Agent": status(_agent_state(c)),
               "Version": str(c.version or ""), "Changed (UTC)": when(c.changed_at)}
        for field, title in POLICY_COLUMNS.items():
            value = limits.get(field)
            row[title] = money(value) if field.endswith("_usd") and value is not None else text(value)
        row["Denied"] = text(", ".join(map(str, limits.get("denied_instruments", ()))))
        rows.append(row)
    return _frame(rows, ["portfolio_id", "Portfolio", "Agent", "Version", *POLICY_COLUMNS.values(),
                         "Denied", "Changed (UTC)"])


def policy_summary(data: Snapshot, portfolio_id: str | None) -> str:
    """One line on a portfolio's risk policy and agent (HTML), for the Delegation view."""
    if portfolio_id is None:
        return ""
    c = data.controls.get(portfolio_id) or Controls(portfolio_id)
    limits = c.policy.limits() if c.policy else {}
    shown = ", ".join(f"{POLICY_COLUMNS.get(k, k.replace('_', ' '))} {text(v)}"
                      for k, v in limits.items() if k in POLICY_COLUMNS)
    policy = (f"policy v{c.version}" + (f": {shown}" if shown else "")) if c.policy else \
        "no risk policy (no limits)"
    return (f'<div class="enb-policy-line">Agent {status("paused" if c.paused else "running")} · {policy} '
            "<small>(edit it in Policies)</small></div>")


def request_rows(usage: pl.DataFrame, data: Snapshot, *, limit: int = 200) -> pl.DataFrame:
    """The latest requests (one row per request, newest first): who sent it, for which
    portfolio and token, the operation, its status and its request id."""
    names = data.names()
    tokens = dict(zip(data.tokens["token_id"], data.tokens["token_name"], strict=True))
    rows = []
    latest = usage.unique("request_id", keep="last", maintain_order=True).reverse().head(limit)
    for r in latest.iter_rows(named=True):
        ok = r["status"] is not None and r["status"] < 400
        rows.append({"request_id": r["request_id"], "Time (UTC)": when(r["ts"]),
                     "By": text(r["principal"]),
                     "Portfolio": text(names.get(r["portfolio_id"], r["portfolio_id"] or "")),
                     "Token": text(tokens.get(r["token_id"], "")),
                     "Operation": text(r["operation_id"]),
                     "Status": badge(str(r["status"] or "no answer"),
                                     STATUS_COLOURS["ok" if ok else "refused"]),
                     "Error": text(r["error_code"]), "Request id": short_id(r["request_id"])})
    return _frame(rows, ["request_id", "Time (UTC)", "By", "Portfolio", "Token", "Operation",
                         "Status", "Error", "Request id"])


def _frame(rows: list[dict[str, str]], columns: list[str]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={c: pl.String for c in columns})
