"""`r42 serve`: the OpenAI- and Anthropic-compatible gateway (r42.server) on HOST:PORT."""

from __future__ import annotations

import errno

import click

from r42.cli.options import mode_option
from r42.errors import UsageError


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, envvar="R42_SERVE_HOST", show_envvar=True, help="Address to listen on (0.0.0.0 for every interface).")
@click.option("--port", type=click.IntRange(0, 65535), default=4242, show_default=True, envvar="R42_SERVE_PORT", show_envvar=True, help="Port to listen on.")
@click.option("--no-auth", is_flag=True, help="Accept requests without a gateway key (loopback addresses only).")
@mode_option
@click.option("--max-body", type=click.IntRange(min=1024), default=None, envvar="R42_SERVE_MAX_BODY", show_envvar=True, help="Largest request body in bytes (413 above) [default: 32 MiB].")
@click.option("--max-concurrency", type=click.IntRange(min=1), default=None, envvar="R42_SERVE_MAX_CONCURRENCY", show_envvar=True, help="Requests handled at once (503 above) [default: 256].")
def serve(host: str, port: int, no_auth: bool, mode: str | None, max_body: int | None, max_concurrency: int | None) -> None:
    """Serve the OpenAI and Anthropic APIs with r42's routing.

    \b
    OpenAI clients:    base URL http://HOST:PORT/v1, model "auto", "r42/<mode>" or a catalog id
    Anthropic clients: ANTHROPIC_BASE_URL=http://HOST:PORT
    Every endpoint but /health, / and /v1/models needs a gateway key (r42 keys create USER),
    sent as `Authorization: Bearer KEY` or `x-api-key: KEY`. Stop with Ctrl-C (requests in flight finish).

    \b
    Examples:
      r42 keys create alice && r42 serve
      r42 serve --no-auth --port 8080
      ANTHROPIC_BASE_URL=http://127.0.0.1:4242 ANTHROPIC_AUTH_TOKEN=r42_... claude
    """
    from r42.config import load_settings
    from r42.server import build

    settings = load_settings({"mode": mode, "serve_max_body": max_body, "serve_max_concurrency": max_concurrency})
    gateway, server = build(settings, host, port, no_auth)
    try:
        server.bind()
    except OSError as exc:
        gateway.close()
        in_use = exc.errno == errno.EADDRINUSE
        reason = "the address is already in use" if in_use else (exc.strerror or type(exc).__name__)
        hint = "choose another --port, or stop the server using it"
        raise UsageError(f"cannot listen on {host}:{port}: {reason}", hint) from None
    if no_auth:
        click.echo("r42: warning: --no-auth: anyone who can reach this address can use your provider keys", err=True)
    where = f"http://{host}:{server.bound[1] if server.bound else port}"
    click.echo(f"r42 serve: listening on {where} (OpenAI: {where}/v1, Anthropic: {where}); Ctrl-C stops", err=True)
    try:
        server.run()
    finally:
        gateway.close()
        click.echo("r42 serve: stopped", err=True)
