"""Running the sandbox app as a real HTTP server on 127.0.0.1, in a background thread."""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from etoro_nb.sandbox.app import ConnectionDropped, create_app
from etoro_nb.sandbox.config import SandboxConfig
from etoro_nb.sandbox.core import Credentials, Sandbox


class _HideInjectedDrops(logging.Filter):
    """Keep uvicorn from logging our own injected connection drops as app errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ConnectionDropped))


def quiet_injected_drops() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _HideInjectedDrops) for f in logger.filters):
        logger.addFilter(_HideInjectedDrops())


# A proxy trusted with --trust-proxy runs on the sandbox's own machine.
LOOPBACK = "127.0.0.1,::1"


def uvicorn_options(config: SandboxConfig) -> dict[str, Any]:
    """How uvicorn serves a sandbox, shared by ``start`` and ``etoro-nb sandbox serve``.

    uvicorn trusts ``X-Forwarded-For`` from loopback unless told otherwise, which would
    let any local caller claim an address a token's IP whitelist allows; the sandbox
    reads it only with ``trust_proxy``, and then only from a loopback proxy.
    """
    return {"proxy_headers": config.trust_proxy, "forwarded_allow_ips": LOOPBACK,
            "log_level": "warning", "access_log": False}


@dataclass
class SandboxServer:
    """A sandbox serving HTTP: ``base_url``, ``credentials``, ``stop()``.

    Also a context manager. ``sandbox`` gives direct access to its clock, faults and
    state for tests and notebooks.
    """

    sandbox: Sandbox
    base_url: str
    _server: uvicorn.Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    @property
    def credentials(self) -> Credentials:
        config = self.sandbox.config
        return Credentials(self.base_url, config.api_key, config.user_key)

    def stop(self) -> None:
        """Stop serving and close the state database; safe to call twice."""
        if self._thread.is_alive():
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self.sandbox.close()

    def __enter__(self) -> SandboxServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def start(
    config: SandboxConfig | None = None, *, host: str = "127.0.0.1", port: int = 0,
    **overrides: Any,
) -> SandboxServer:
    """Start a sandbox server in a background thread and wait until it accepts requests.

    ``port=0`` picks a free ephemeral port. Keyword overrides change fields of
    ``config`` (e.g. ``start(seed=7, clock=datetime(...))``).
    """
    config = (config or SandboxConfig()).replace(**overrides) if overrides else (
        config or SandboxConfig())
    sandbox = Sandbox(config)
    # proto=IPPROTO_TCP matters: asyncio disables Nagle only on sockets whose proto says
    # TCP, and accepted sockets inherit it. With proto 0, every keep-alive response whose
    # body is written after its headers waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    quiet_injected_drops()
    uv_config = uvicorn.Config(create_app(sandbox), lifespan="off", **uvicorn_options(config))
    server = uvicorn.Server(uv_config)
    def run() -> None:
        server.run(sockets=[sock])

    thread = threading.Thread(target=run, name=f"etoro-nb-sandbox-{bound_port}", daemon=True)
    thread.start()
    while not server.started and thread.is_alive():  # uvicorn says when it listens
        time.sleep(0.01)
    if not server.started:
        sandbox.close()
        raise RuntimeError("the sandbox server did not start")
    return SandboxServer(sandbox, f"http://{host}:{bound_port}", server, thread)
