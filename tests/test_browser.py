"""The panels in a real browser: JupyterLab headless, Debian's Chromium driven by Playwright,
against an embedded sandbox; the sandbox's state is checked from the test process.

Needs /usr/bin/chromium and the python packages jupyterlab, ipykernel, playwright and
nbformat (no ``playwright install``: the system Chromium is used). Skipped when they are
missing, unless ETORO_NB_REQUIRE_BROWSER is set (as in CI), where it must run."""

from __future__ import annotations

import re
from contextlib import suppress
from pathlib import Path

import etoro_nb
from etoro_nb.sandbox import SandboxServer
from etoro_nb.scopes import short
from tests.browser_support import (
    REQUIRE_ENV,
    SCREENSHOTS,
    browser_marks,
    browser_requirements,
    jupyterlab,
    launch_chromium,
    run_all_cells,
    write_panels_notebook,
)
from tests.helpers import DEMO_READ, DEMO_WRITE

WAIT_MS = 60_000  # first render includes JupyterLab's load and the kernel's start

pytestmark = browser_marks(240)


def _no_broken_widgets(text: str) -> None:
    assert "Error displaying widget" not in text
    assert "PortfolioPanel(children=" not in text and "DelegationPanel(children=" not in text
    assert "Traceback" not in text


def test_panels_in_jupyterlab_with_chromium(browser_sandbox: SandboxServer, tmp_path: Path) -> None:
    missing = browser_requirements()
    assert missing is None, f"{REQUIRE_ENV} is set but the browser test needs: {missing}"
    from playwright.sync_api import expect, sync_playwright

    creds = browser_sandbox.credentials
    root = tmp_path / "nb"
    root.mkdir()
    write_panels_notebook(root / "panels.ipynb", sandbox=browser_sandbox,
                          ledger=tmp_path / "notebook-ledger.sqlite")
    problems: list[str] = []  # uncaught page errors, reported with any failure

    with jupyterlab(root, tmp_path / "jupyter") as lab, sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 2400})
            (SCREENSHOTS / "failure.png").unlink(missing_ok=True)
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            page.set_default_timeout(30_000)
            page.goto(lab.notebook_url("panels.ipynb"))
            cells = run_all_cells(page, timeout_ms=WAIT_MS)
            expect(cells).to_have_count(4, timeout=WAIT_MS)  # markdown, connect, two panels

            badges = page.locator(".etoro-nb-env")
            expect(badges).to_have_count(2, timeout=WAIT_MS)
            for i in range(2):
                expect(badges.nth(i)).to_contain_text("SANDBOX")
            expect(cells.nth(1).locator(".jp-OutputArea")).to_contain_text("sandbox")
            _no_broken_widgets(page.locator("body").inner_text())
            page.screenshot(path=SCREENSHOTS / "01-rendered.png")

            # PortfolioPanel: create a portfolio whose first token reads the demo account.
            portfolio = cells.nth(2)
            portfolio.get_by_placeholder("6 to 10 characters").fill("webui01")
            portfolio.locator(".widget-checkbox", has_text=short(DEMO_READ)).locator(
                "input").check()
            portfolio.get_by_role("button", name="Create portfolio").click()
            expect(portfolio.locator(".etoro-nb-ok")).to_contain_text(
                "Created webui01 with token agent.")
            expect(portfolio.locator(".etoro-nb-portfolios")).to_contain_text("webui01")
            page.screenshot(path=SCREENSHOTS / "02-created.png")

            # The DelegationPanel of another cell shares the client's state: it shows webui01
            # and its token at once, without re-running its cell.
            delegation = cells.nth(3)
            expect(delegation.locator(".etoro-nb-tokens")).to_contain_text("agent",
                                                                          timeout=WAIT_MS)
            mint = delegation.locator(".widget-text", has=page.locator(
                "label", has_text=re.compile(r"^Token name$"))).locator("input")
            mint.fill("webtok")
            for scope in (DEMO_READ, DEMO_WRITE):  # the mint form's boxes come first
                delegation.locator(".widget-checkbox", has_text=short(scope)).first.locator(
                    "input").check()
            delegation.get_by_role("button", name="Mint token").click()
            # Demo trading authority asks for consent in plain words first.
            expect(delegation.locator(".etoro-nb-consent")).to_contain_text(
                "demo practice account")
            page.screenshot(path=SCREENSHOTS / "03-consent.png")
            delegation.get_by_role("button", name="Confirm").click()
            expect(delegation.locator(".etoro-nb-ok")).to_contain_text("Minted webtok.")
            expect(delegation.locator(".etoro-nb-tokens")).to_contain_text("webtok")
            expect(delegation.locator(".etoro-nb-secret")).to_contain_text("webtok")
            _no_broken_widgets(page.locator("body").inner_text())
            page.screenshot(path=SCREENSHOTS / "04-minted.png")
        except Exception as exc:
            with suppress(Exception):
                page.screenshot(path=SCREENSHOTS / "failure.png")
            with_context = f"page errors: {problems}\njupyterlab log:\n{lab.log_tail()}"
            raise AssertionError(f"{exc}\n{with_context}") from exc
        finally:
            browser.close()

    # The sandbox, seen from here, holds what the page asked for.
    with etoro_nb.connect(creds.api_key, creds.user_key, base_url=creds.base_url,
                          ledger=tmp_path / "check-ledger.sqlite") as client:
        assert client.environment == "sandbox"
        listed = client.agent_portfolios.list()
        assert [p.name for p in listed] == ["webui01"]
        tokens = {t.name: t for t in listed[0].tokens}
        assert set(tokens) == {"agent", "webtok"}
        assert set(tokens["agent"].scopes) == {DEMO_READ}
        assert set(tokens["webtok"].scopes) == {DEMO_READ, DEMO_WRITE}
    assert (tmp_path / "notebook-ledger.sqlite").exists()
