"""PlaygroundPanel: eToro's REST playground in the notebook, for any operation of the
contract, sent as the owner or as an agent token, and recorded like any other call."""

from __future__ import annotations

import html
import json
import shlex
from typing import Any

import ipywidgets as w

from etoro_nb._base import Call
from etoro_nb.client import EtoroClient, operation_call
from etoro_nb.errors import APIError, EtoroError
from etoro_nb.models import MintedToken
from etoro_nb.operations import OWNER_ONLY, OperationInfo, catalogue
from etoro_nb.resources.agent_portfolios import minted_from
from etoro_nb.scopes import SCOPES
from widgets._common import ConfirmBox, Feedback, SecretReveal, environment_badge, panel_repr
from widgets.state import CockpitState
from widgets.view import View

RATE_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset",
                "retry-after", "x-request-id")
MASK = "**********"


def scope_note(info: OperationInfo) -> str:
    """Who may call the operation, in words: the scope an agent token needs, or the owner."""
    if info.scope_required == OWNER_ONLY:
        return "owner only: an agent token is refused"
    scope = SCOPES.get(info.scope_required or "")
    if scope is None:
        return "no particular scope"
    return f"an agent token needs {scope.short}: {scope.meaning}"


class PlaygroundPanel(View):
    """Pick an operation, fill its form, send it, read the answer and the curl line. What
    it changes shows at once in the other views of the shared state."""

    def __init__(self, client: EtoroClient, *, state: CockpitState | None = None) -> None:
        self._ops = catalogue()
        self.badge = environment_badge(client)
        self.operation = w.Dropdown(
            description="Operation",
            options=[(f"{op.method} {op.route}  ({oid})", oid) for oid, op in self._ops.items()],
            layout=w.Layout(width="95%"))
        self.summary = w.HTML()
        self.as_agent = w.ToggleButtons(options=[("as owner", False), ("as agent token", True)],
                                        value=False)
        self.agent_token = w.Password(description="Agent token",
                                      placeholder="paste the agent's token secret")
        self.params = w.VBox()
        self.body = w.Textarea(description="Body", layout=w.Layout(width="95%", height="160px"))
        self.send_button = w.Button(description="Send", button_style="primary")
        self.status = w.HTML()
        self.headers = w.HTML()
        self.response = w.Textarea(description="Response",
                                   layout=w.Layout(width="95%", height="220px"))
        self.curl = w.Textarea(description="curl", layout=w.Layout(width="95%", height="80px"))
        self.feedback = Feedback()
        self.confirm = ConfirmBox()
        self.secret = SecretReveal()  # a minted token's secret, once; never in the response
        # A pasted agent token is taken out of the widget (whose state reaches the browser
        # and a saved notebook) into this client, and the field is cleared.
        self._agent: EtoroClient | None = None
        self._fields: dict[str, tuple[str, w.Text]] = {}
        self.operation.observe(lambda _: self.load_operation(), "value")
        self.send_button.on_click(lambda _: self.send())
        super().__init__(client, state, [
            self.badge, self.operation, self.summary, w.HBox([self.as_agent, self.agent_token]),
            self.params, self.body, self.send_button, self.confirm, self.status, self.headers,
            self.secret, self.response, self.curl, self.feedback])
        self.load_operation()
        self.start()

    def render(self) -> None:
        """Nothing of the shared state is shown here: the answers are the playground's own."""

    def __repr__(self) -> str:
        who = "agent token" if self.as_agent.value else "owner"
        return panel_repr(self, self.client, f"{self.operation.value} as {who}")

    def load_operation(self) -> None:
        """Build the form for the chosen operation, prefilled from the document."""
        op = self._ops[self.operation.value]
        self.summary.value = (f"<b>{op.method} {html.escape(op.route)}</b>: "
                              f"{html.escape(op.summary)}"
                              + (" <i>(deprecated)</i>" if op.deprecated else "")
                              + f"<br><small>{html.escape(scope_note(op))}</small>")
        # Path and query parameters only: the client sends the keys and the request id.
        self._fields = {p.name: (p.location, w.Text(value=p.example,
                                                    description=p.name + (" *" if p.required
                                                                          else "")))
                        for p in op.parameters}
        self.params.children = [field for _, field in self._fields.values()]
        body = op.example_body()
        self.body.value = "" if body is None else json.dumps(body, indent=2)
        self.body.layout.display = "none" if body is None else ""

    def send(self) -> None:
        """Send the form through the client (quota, retries and ledger apply)."""
        self.begin()
        try:
            body = json.loads(self.body.value) if self.body.value.strip() else None
        except ValueError as exc:
            self.feedback.value = (f'<span style="color:#b00020">Body: not valid JSON '
                                   f'({html.escape(str(exc))})</span>')
            return
        path_params = {n: f.value for n, (where, f) in self._fields.items() if where == "path"}
        query = {n: f.value for n, (where, f) in self._fields.items()
                 if where == "query" and f.value != ""}
        caller = self.client
        pasted, self.agent_token.value = self.agent_token.value, ""  # never left in the widget
        if self.as_agent.value:
            if pasted:
                try:
                    self._agent = self.client.as_agent(pasted)
                except EtoroError as exc:
                    self.feedback.show_error(exc)
                    return
                self.agent_token.placeholder = "token held for this session; paste to replace"
            if self._agent is None:
                self.feedback.value = '<span style="color:#b00020">Agent token: paste one</span>'
                return
            caller = self._agent
        try:
            call = operation_call(self.operation.value, path_params, query, body, None)
        except EtoroError as exc:
            self.feedback.show_error(exc)
            return

        def send() -> None:
            self._send(caller, call, path_params)

        if call.real_money:
            where = ("simulated in this sandbox" if self.client.environment == "sandbox"
                     else "with REAL money on your live eToro account")
            self.confirm.ask(f"{call.method} {call.path} trades on the real account ({where}); "
                             "its copies move the owner's money in the mirror.", send)
            return
        send()

    def _send(self, caller: EtoroClient, call: Call, path_params: dict[str, str]) -> None:
        try:
            answer = caller.call(call.operation, path_params=path_params, query=call.params,
                                 body=call.json)
        except APIError as exc:
            self._show(exc.status, exc.headers, exc.body, call)
            self.feedback.show_error(exc)
            return
        except EtoroError as exc:
            self.feedback.show_error(exc)
            return
        if call.method != "GET":  # it may have changed portfolios or tokens: every view shows it
            self.state.refresh()
        self._show(answer.status, dict(answer.headers), answer.body, call)

    def _show(self, status: int, headers: dict[str, str], body: Any, call: Call) -> None:
        colour = "#1b7f3b" if 200 <= status < 300 else "#b00020"
        self.status.value = f'<b style="color:{colour}">HTTP {status}</b>'
        shown = {k: v for k, v in ((k.lower(), v) for k, v in headers.items())
                 if k in RATE_HEADERS}
        self.headers.value = "<br>".join(f"<code>{html.escape(k)}: {html.escape(v)}</code>"
                                         for k, v in sorted(shown.items()))
        shown_body, minted = redact_secrets(body, call.path)
        self.response.value = "" if body is None else json.dumps(shown_body, indent=2)
        if minted:
            self.secret.show(minted[0])
        self.curl.value = curl_line(self.client.base_url + call.path, call.method, call.params,
                                    call.json, shown.get("x-request-id", "<uuid>"))


def redact_secrets(body: Any, path: str) -> tuple[Any, list[MintedToken]]:
    """The answer as shown, every ``userToken`` secret masked; and the tokens it minted
    (for the one-time reveal). The portfolio id comes from the token's object or the path."""
    minted: list[MintedToken] = []

    def walk(value: Any, portfolio_id: str) -> Any:
        if isinstance(value, list):
            return [walk(v, portfolio_id) for v in value]
        if not isinstance(value, dict):
            return value
        portfolio_id = str(value.get("agentPortfolioId") or portfolio_id)
        if isinstance(value.get("userToken"), str):
            minted.append(minted_from(value, portfolio_id))
            value = {**value, "userToken": MASK}
        return {k: walk(v, portfolio_id) for k, v in value.items()}

    parts = path.split("/")
    in_path = parts[parts.index("agent-portfolios") + 1] if "agent-portfolios" in parts[:-1] else ""
    return walk(body, in_path), minted


def curl_line(url: str, method: str, params: dict[str, Any] | None, body: Any,
              request_id: str) -> str:
    """The equivalent curl command, with both keys masked."""
    if params:
        from urllib.parse import urlencode

        url += "?" + urlencode(params)
    parts = ["curl", "-X", method, shlex.quote(url),
             "-H", shlex.quote("x-api-key: $ETORO_API_KEY"),
             "-H", shlex.quote("x-user-key: $ETORO_USER_KEY"),
             "-H", shlex.quote(f"x-request-id: {request_id}")]
    if body is not None:
        parts += ["-H", shlex.quote("content-type: application/json"),
                  "-d", shlex.quote(json.dumps(body))]
    return " ".join(parts)
