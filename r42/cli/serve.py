"""`r42 serve`: the OpenAI- and Anthropic-compatible gateway (r42.server) on HOST:PORT."""

from __future__ import annotations

import errno
import socket
import sys
import threading
from typing import TYPE_CHECKING, Callable, TextIO

import click

from r42.cli.options import SettingOption, mode_option
from r42.errors import UsageError

if TYPE_CHECKING:
    from r42.config import Settings


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    envvar="R42_SERVE_HOST",
    show_envvar=True,
    help="Address to listen on (0.0.0.0 for every interface).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=4242,
    show_default=True,
    envvar="R42_SERVE_PORT",
    show_envvar=True,
    help="Port to listen on.",
)
@click.option("--no-auth", is_flag=True, help="Accept requests without a gateway key (loopback addresses only).")
@mode_option
@click.option(
    "--max-body",
    type=click.IntRange(min=1024),
    default=None,
    cls=SettingOption,
    envvar="R42_SERVE_MAX_BODY",
    show_envvar=True,
    help="Largest request body in bytes (413 above) [default: 32 MiB].",
)
@click.option(
    "--max-concurrency",
    type=click.IntRange(min=1),
    default=None,
    cls=SettingOption,
    envvar="R42_SERVE_MAX_CONCURRENCY",
    show_envvar=True,
    help="Requests handled at once (503 above) [default: 256].",
)
@click.option(
    "--access-log",
    "access_log",
    metavar="FILE",
    default=None,
    help="Append one line per request (time, status, method, path, model, ms, request id) to FILE; "
    "- for stderr [default: stderr on a terminal, else none].",
)
@click.option(
    "--workers",
    default="1",
    show_default=True,
    metavar="N|auto",
    envvar="R42_SERVE_WORKERS",
    show_envvar=True,
    help="Worker processes accepting on the one port (auto: one per core); limits hold across them.",
)
def serve(
    host: str,
    port: int,
    no_auth: bool,
    mode: str | None,
    max_body: int | None,
    max_concurrency: int | None,
    access_log: str | None,
    workers: str,
) -> None:
    """Serve the OpenAI and Anthropic APIs with r42's routing.

    \b
    OpenAI clients:    base URL http://HOST:PORT/v1, model "auto", "r42/<mode>" or a catalog id
    Anthropic clients: ANTHROPIC_BASE_URL=http://HOST:PORT
    Every endpoint but /health, /, /v1/models, /openapi.json and /docs needs a gateway key (r42 keys create USER),
    sent as `Authorization: Bearer KEY` or `x-api-key: KEY`. Stop with Ctrl-C (requests in flight finish).

    \b
    Examples:
      r42 keys create alice && r42 serve
      r42 serve --no-auth --port 8080
      r42 serve --host 0.0.0.0 --workers auto --access-log /var/log/r42/access.log
      ANTHROPIC_BASE_URL=http://127.0.0.1:4242 ANTHROPIC_AUTH_TOKEN=r42_... claude
    """
    from r42.config import load_settings
    from r42.server import build
    from r42.server.workers import worker_count

    try:
        count = worker_count(workers)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    settings = load_settings({"mode": mode, "serve_max_body": max_body, "serve_max_concurrency": max_concurrency})
    if count > 1:
        _serve_workers(settings, host, port, no_auth, access_log, count)
        return
    gateway, server = build(settings, host, port, no_auth)
    try:
        server.bind()
    except OSError as exc:
        gateway.close()
        in_use = exc.errno == errno.EADDRINUSE
        reason = "the address is already in use" if in_use else (exc.strerror or type(exc).__name__)
        hint = "choose another --port, or stop the server using it"
        raise UsageError(f"cannot listen on {host}:{port}: {reason}", hint) from None
    log_file = _access_log_file(access_log)
    if log_file is not None:
        gateway.access_log = _line_writer(log_file)
    if no_auth:
        click.echo("r42: warning: --no-auth: anyone who can reach this address can use your provider keys", err=True)
    where = f"http://{host}:{server.bound[1] if server.bound else port}"
    click.echo(f"r42 serve: listening on {where} (OpenAI: {where}/v1, Anthropic: {where}); Ctrl-C stops", err=True)
    try:
        server.run()
    finally:
        gateway.close()
        if log_file is not None and log_file is not sys.stderr:
            log_file.close()
        click.echo("r42 serve: stopped", err=True)


def _serve_workers(settings: Settings, host: str, port: int, no_auth: bool, access_log: str | None, count: int) -> None:
    """`--workers N`: open the port and the access log here, then fork N workers that share them."""
    from r42.server import Gateway, is_loopback, limits_of
    from r42.server.http import HTTPServer
    from r42.server.workers import Supervisor, listeners, serving_on

    if no_auth and not is_loopback(host):
        raise UsageError(
            f"--no-auth is only allowed on a loopback address, not {host}",
            "bind to 127.0.0.1, or create keys with `r42 keys create USER`",
        )
    limits = limits_of(settings)
    try:
        socks = listeners(host, port, count)
    except OSError as exc:
        reason = (
            "the address is already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or type(exc).__name__)
        )
        raise UsageError(
            f"cannot listen on {host}:{port}: {reason}", "choose another --port, or stop the server using it"
        ) from None
    log_file = _access_log_file(access_log)

    def work(sock: socket.socket) -> None:
        gateway = Gateway(settings, no_auth=no_auth, limits=limits)
        if log_file is not None:
            gateway.access_log = _line_writer(log_file)
        try:
            server = HTTPServer(
                gateway, host, port, limits, on_error=gateway.http_error, before_body=gateway.before_body
            )
            serving_on(server, sock).run()
        finally:
            gateway.close()

    if no_auth:
        click.echo("r42: warning: --no-auth: anyone who can reach this address can use your provider keys", err=True)
    where = f"http://{host}:{socks[0].getsockname()[1]}"
    click.echo(
        f"r42 serve: listening on {where} with {count} workers (OpenAI: {where}/v1, Anthropic: {where}); Ctrl-C stops",
        err=True,
    )
    try:
        Supervisor(count, socks, work, grace=limits.grace).run()
    finally:
        for sock in socks:
            sock.close()
        if log_file is not None and log_file is not sys.stderr:
            log_file.close()
        click.echo("r42 serve: stopped", err=True)


def _access_log_file(path: str | None) -> TextIO | None:
    """Where the access log goes: FILE (appended), stderr for "-" or when stderr is a terminal, else nowhere."""
    if path is None:
        return sys.stderr if sys.stderr.isatty() else None
    if path == "-":
        return sys.stderr
    try:
        return open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - open while serving
    except OSError as exc:
        raise click.UsageError(f"cannot open the access log {path}: {exc.strerror}") from None


def _line_writer(file: TextIO) -> Callable[[str], None]:
    """A thread-safe writer of whole lines (requests end on worker threads and on the event loop)."""
    lock = threading.Lock()

    def write(line: str) -> None:
        with lock:
            file.write(line + "\n")
            file.flush()

    return write
