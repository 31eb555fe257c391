"""`r42 serve`: an OpenAI- and Anthropic-compatible HTTP gateway on the standard library.

    r42.server.http         HTTP/1.1 on asyncio streams, handlers on worker threads, limits, shutdown
    r42.server.app          the route table (ROUTES: path -> handler function), auth, per-key limits,
                            request ids, the routing log (one row per request, by call.finish())
    r42.server.call         Call (one request, recorded once when it ends), read_json, json_response
    r42.server.chat         /v1/chat/completions and /v1/messages (routing, streaming, translation)
    r42.server.passthrough  /v1/messages straight to Anthropic upstreams (the executor's Fallback policy)
    r42.server.info         /health, /, /metrics, /v1/models, /v1/classify, /api/recommend, /v1/feedback
    r42.server.metrics      Prometheus text format
    r42.server.errors       OpenAI- and Anthropic-shaped errors

Imports go one way: app imports the endpoint modules (chat, info; chat imports passthrough), and
they import only call, errors and http (the Gateway type only for type checking). A new endpoint is
a function `(gw, call) -> Response | None` in an endpoint module and one line in app.ROUTES.

The core (routing, executor, store) is shared with the CLI; this package only speaks HTTP.
"""

from __future__ import annotations

import ipaddress
import socket
import threading

from r42.config import Settings
from r42.errors import UsageError
from r42.server.app import Gateway
from r42.server.http import HTTPServer, ServerLimits

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4242


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(host, None))
        except (OSError, ValueError):
            return False


def limits_of(settings: Settings) -> ServerLimits:
    return ServerLimits(
        max_body=int(settings.serve_max_body),
        max_concurrency=int(settings.serve_max_concurrency),
        grace=float(settings.serve_grace),
    )


def build(
    settings: Settings,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    no_auth: bool = False,
    limits: ServerLimits | None = None,
) -> tuple[Gateway, HTTPServer]:
    if no_auth and not is_loopback(host):
        raise UsageError(
            f"--no-auth is only allowed on a loopback address, not {host}",
            "bind to 127.0.0.1, or create keys with `r42 keys create USER`",
        )
    limits = limits or limits_of(settings)
    gateway = Gateway(settings, no_auth=no_auth, limits=limits)
    server = HTTPServer(gateway, host, port, limits, on_error=gateway.http_error, before_body=gateway.before_body)
    return gateway, server


class Running:
    """A gateway serving on a background thread (tests, benchmarks): `.url`, `.stop()`."""

    def __init__(self, gateway: Gateway, server: HTTPServer) -> None:
        self.gateway = gateway
        self.server = server
        self.thread = threading.Thread(
            target=server.run, kwargs={"install_signals": False}, name="r42-serve", daemon=True
        )

    def start(self) -> "Running":
        self.thread.start()
        if not self.server.ready.wait(10):
            raise RuntimeError("the gateway did not start")
        return self

    @property
    def url(self) -> str:
        assert self.server.bound is not None, "start the gateway first"
        host, port = self.server.bound
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self.server.stop()
        self.thread.join(timeout=30)
        self.gateway.close()

    def __enter__(self) -> "Running":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_in_thread(
    settings: Settings,
    host: str = DEFAULT_HOST,
    port: int = 0,
    no_auth: bool = False,
    limits: ServerLimits | None = None,
) -> Running:
    gateway, server = build(settings, host, port, no_auth, limits)
    return Running(gateway, server)
