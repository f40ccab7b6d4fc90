"""The Cockpit as an analyst uses it, in a real browser: JupyterLab headless, Debian's
Chromium driven by Playwright, clicks and typing only, against an embedded sandbox whose
state is checked from the test process afterwards.

Fails on "Error displaying widget", on a chart drawn without traces, and on a message
left over from an earlier action. Screenshots of each step go to artifacts/screenshots/.
Skipped without /usr/bin/chromium and the python packages, unless ETORO_NB_REQUIRE_BROWSER
is set (as in CI)."""

from __future__ import annotations

import re
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest

import etoro_nb
from etoro_nb.sandbox import SandboxServer
from tests.browser_support import (
    REQUIRE_ENV,
    SCREENSHOTS,
    browser_marks,
    browser_requirements,
    jupyterlab,
    launch_chromium,
    run_all_cells,
    write_cockpit_notebook,
)

WAIT_MS = 60_000  # first render includes JupyterLab's load and the kernel's start
MESSAGES = ".etoro-nb-ok, .etoro-nb-error, .etoro-nb-consent, .etoro-nb-secret"

pytestmark = browser_marks(300)


class Analyst:
    """The page, with the checks every step ends with."""

    def __init__(self, page: Any) -> None:
        from playwright.sync_api import expect

        self.page = page
        expect.set_options(timeout=30_000)  # each click runs Python in the kernel first
        self.expect = expect
        self.cockpit = page.locator(".enb-cockpit")
        self.step = 0

    def tab(self, title: str) -> None:
        self.cockpit.locator(".lm-TabBar-tab", has_text=re.compile(f"^{title}$")).click()

    def visible(self, selector: str, **kw: Any) -> Any:
        return self.cockpit.locator(f"{selector} >> visible=true", **kw)

    def button(self, name: str) -> Any:
        return self.cockpit.get_by_role("button", name=name).locator("visible=true")

    def field(self, label: str) -> Any:
        return self.visible(".widget-inline-hbox", has=self.page.locator(
            "label", has_text=re.compile(f"^{label}$"))).locator("input").first

    def check_scope(self, scope: str) -> None:
        self.visible(".widget-checkbox", has_text=scope).first.locator("input").check()

    def messages(self) -> list[str]:
        return [t.strip() for t in self.cockpit.locator(MESSAGES).all_text_contents()
                if t.strip()]

    def only_message(self, *expected: str) -> None:
        """The messages anywhere in the cockpit (hidden tabs included) are exactly these:
        nothing said by an earlier action is left. Waits (as ``expect`` does) for the
        kernel to answer the last click, up to its timeout."""
        def exact() -> bool:
            texts = self.messages()
            return len(texts) == len(expected) and all(
                want in text for text, want in zip(texts, expected, strict=True))
        deadline = time.monotonic() + 30
        while not exact() and time.monotonic() < deadline:
            self.page.wait_for_timeout(200)  # polling interval, bounded by the deadline
        assert exact(), f"expected only {expected}, the cockpit shows: {self.messages()}"

    def sound(self, shot: str) -> None:
        """No broken widget, every drawn chart has traces; then a screenshot."""
        body = self.page.locator("body").inner_text()
        assert "Error displaying widget" not in body and "Traceback" not in body
        charts = self.page.locator(".enb-cockpit .js-plotly-plot")
        for i in range(charts.count()):
            chart = charts.nth(i)
            traces = chart.evaluate("gd => (gd.data || []).length")
            drawn = chart.locator("g.trace, g.hm, .heatmaplayer image").count()
            assert traces > 0 and drawn > 0, f"chart {i} drew no traces ({traces}, {drawn})"
        self.step += 1
        self.page.screenshot(path=SCREENSHOTS / f"cockpit-{self.step:02d}-{shot}.png")


def test_cockpit_as_an_analyst_uses_it(browser_sandbox: SandboxServer, tmp_path: Path) -> None:
    missing = browser_requirements()
    assert missing is None, f"{REQUIRE_ENV} is set but the browser test needs: {missing}"
    from playwright.sync_api import sync_playwright

    creds = browser_sandbox.credentials
    root = tmp_path / "nb"
    root.mkdir()
    write_cockpit_notebook(root / "cockpit.ipynb", sandbox=browser_sandbox,
                           ledger=tmp_path / "notebook-ledger.sqlite")
    problems: list[str] = []
    copied = ""
    with jupyterlab(root, tmp_path / "jupyter") as lab, sync_playwright() as pw:
        browser = launch_chromium(pw)
        context = browser.new_context(viewport={"width": 1400, "height": 1600})
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=lab.url)
        page = context.new_page()
        try:
            (SCREENSHOTS / "cockpit-failure.png").unlink(missing_ok=True)
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            page.set_default_timeout(30_000)
            copied = _use_the_cockpit(page, lab)
        except Exception as exc:
            with suppress(Exception):
                page.screenshot(path=SCREENSHOTS / "cockpit-failure.png")
            raise AssertionError(f"{exc}\npage errors: {problems}\njupyterlab log:\n"
                                 f"{lab.log_tail()}") from exc
        finally:
            browser.close()

    # What the page did, seen from the sandbox: the portfolio is gone, and the copied
    # secret was the minted token's (revoked now: refused).
    with etoro_nb.connect(creds.api_key, creds.user_key, base_url=creds.base_url,
                          ledger=tmp_path / "check-ledger.sqlite") as client:
        assert client.agent_portfolios.list() == []
        assert copied.startswith("etnb_")
        with pytest.raises(etoro_nb.errors.AuthenticationError):
            client.as_agent(copied).me()


def _use_the_cockpit(page: Any, lab: Any) -> str:
    """The steps of the issue, as clicks and typing; returns the secret the Copy button put
    on the clipboard."""
    a = Analyst(page)
    expect = a.expect
    page.goto(lab.notebook_url("cockpit.ipynb"))
    expect(run_all_cells(page, timeout_ms=WAIT_MS)).to_have_count(3, timeout=WAIT_MS)
    expect(a.cockpit).to_be_visible(timeout=WAIT_MS)
    expect(a.cockpit.locator(".etoro-nb-env").first).to_contain_text("SANDBOX")
    expect(a.visible(".etoro-nb-portfolios")).to_contain_text("No agent portfolios yet")
    a.sound("rendered")

    # 1. Create a portfolio: it appears in the grid.
    page.get_by_placeholder("6 to 10 characters").fill("webui01")
    expect(a.visible(".widget-html", has_text="name ✓")).to_be_visible()
    a.check_scope("trade.demo:read")
    a.button("Create portfolio").click()
    expect(a.visible(".etoro-nb-ok")).to_contain_text("Created webui01 with token agent.")
    grid = a.visible(".etoro-nb-portfolios")
    expect(grid.locator("tbody tr", has_text="webui01")).to_have_count(1)
    expect(page.get_by_placeholder("6 to 10 characters")).to_have_value("")  # form reset
    a.button("I have copied it: dismiss").click()
    a.only_message("Created webui01")
    a.sound("created")

    # 2. Select it, mint a token, confirm consent, copy the secret, dismiss it.
    grid.locator("tbody tr", has_text="webui01").locator("td").first.click()
    expect(grid.locator("tbody tr.selected", has_text="webui01")).to_have_count(1)
    expect(a.cockpit.locator(".enb-status")).to_contain_text("Selected: webui01")
    a.tab("Delegation")
    tokens = a.visible(".etoro-nb-tokens")
    expect(tokens).to_contain_text("agent")
    a.field("Token name").fill("webtok")
    a.check_scope("trade.demo:read")
    a.check_scope("trade.demo:write")
    a.button("Mint token").click()
    expect(a.visible(".etoro-nb-consent")).to_contain_text("demo practice account")
    a.only_message("demo practice account")  # "Created webui01" is gone
    a.sound("consent")
    a.button("Confirm").click()
    expect(a.visible(".etoro-nb-ok")).to_contain_text("Minted webtok.")
    expect(tokens.locator("tbody tr", has_text="webtok")).to_have_count(1)
    expect(a.visible(".etoro-nb-secret")).to_contain_text("webtok")
    a.visible(".enb-copy").click()
    secret: str = page.evaluate("navigator.clipboard.readText()")
    assert secret.startswith("etnb_")
    a.sound("minted")
    a.button("I have copied it: dismiss").click()
    fields = a.cockpit.locator(".etoro-nb-secret-value input")
    for i in range(fields.count()):  # each view's secret field: none holds a secret
        expect(fields.nth(i)).to_have_value("")
    a.only_message("Minted webtok.")

    # 3. The Activity tab shows the new requests, and charts with traces.
    a.tab("Activity")
    requests = a.visible(".etoro-nb-requests")
    expect(requests).to_contain_text("createAgentPortfolioUserTokenV2")
    expect(requests).to_contain_text("webui01")
    expect(a.visible(".js-plotly-plot")).to_have_count(3)
    a.sound("activity")

    # 4. Revoke, then delete.
    a.tab("Delegation")
    tokens.locator("tbody tr", has_text="webtok").locator("td").first.click()
    a.button("Revoke…").click()
    expect(a.visible(".etoro-nb-consent")).to_contain_text("Revoking webtok")
    a.only_message("Revoking webtok")
    a.button("Confirm").click()
    expect(a.visible(".etoro-nb-ok")).to_contain_text("Revoked webtok.")
    expect(tokens.locator("tbody tr", has_text="webtok")).to_contain_text("revoked")
    a.sound("revoked")
    a.tab("Portfolios")
    a.button("Delete…").click()
    expect(a.visible(".etoro-nb-consent")).to_contain_text("Deleting webui01")
    a.button("Confirm").click()
    expect(a.visible(".etoro-nb-ok")).to_contain_text("Deleted webui01.")
    expect(a.visible(".etoro-nb-portfolios")).to_contain_text("No agent portfolios yet")
    a.only_message("Deleted webui01.")
    a.sound("deleted")
    return secret
