"""Real servers for the tests that need them, from Debian's packages, on loopback with a temporary
directory: Redis (redis-server), nginx and PostgreSQL. A test using one is skipped only when the
server's binary is not installed (.ci/run installs it)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, process: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:g} s")


def redis_server(directory: Path) -> Iterator[str]:
    """A redis-server on 127.0.0.1 with its files in `directory`; yields its URL."""
    binary = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    command = [
        binary,
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--dir",
        str(directory),
        "--save",
        "",
        "--appendonly",
        "no",
        "--protected-mode",
        "yes",
        "--daemonize",
        "no",
        "--logfile",
        str(directory / "redis.log"),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, process)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


NGINX_CONF = """
worker_processes 1;
error_log {prefix}/error.log warn;
pid {prefix}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    upstream r42 {{
{servers}
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://r42;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_next_upstream error timeout;
            proxy_next_upstream_tries 1;
        }}
    }}
}}
"""


def nginx_balancer(directory: Path, upstream_ports: list[int]) -> Iterator[int]:
    """nginx on 127.0.0.1 balancing over the given local ports (round robin); yields its port."""
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if binary is None:
        pytest.skip("nginx is not installed (apt-get install nginx)")
    port = free_port()
    servers = "\n".join(f"        server 127.0.0.1:{p};" for p in upstream_ports)
    conf = directory / "nginx.conf"
    conf.write_text(NGINX_CONF.format(prefix=directory, servers=servers, port=port))
    process = subprocess.Popen(
        [binary, "-p", str(directory), "-c", str(conf), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port, process)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"


def postgres_bin() -> Path | None:
    """The directory of Debian's PostgreSQL server binaries (the newest version), or None."""
    found = sorted(Path("/").glob(PG_BIN_GLOB.lstrip("/")), key=lambda p: int(p.parent.name), reverse=True)
    return next((p for p in found if (p / "initdb").exists()), None)


def _as_postgres() -> dict:
    # PostgreSQL refuses to run as root: run it as the `postgres` user that Debian's package creates.
    return {"user": "postgres", "group": "postgres", "extra_groups": []} if os.geteuid() == 0 else {}


def postgres_server() -> Iterator[str]:
    """A PostgreSQL server on 127.0.0.1 with a temporary data directory (trust authentication,
    loopback only, no fsync: a test server); yields the URL of its `postgres` database."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    directory = Path(tempfile.mkdtemp(prefix="r42-pg-"))
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    data = directory / "data"
    subprocess.run(
        [str(bin_dir / "initdb"), "-D", str(data), "-U", "r42", "--auth=trust", "-E", "UTF8"],
        check=True,
        **_as_postgres(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    port = free_port()
    options = [
        *("-c", "listen_addresses=127.0.0.1", "-p", str(port), "-c", f"unix_socket_directories={directory}"),
        *("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"),
        *("-c", "max_connections=300", "-c", "shared_buffers=32MB"),
    ]
    log = open(directory / "postgres.log", "wb")  # noqa: SIM115 - open while the server runs
    process = subprocess.Popen(
        [str(bin_dir / "postgres"), "-D", str(data), *options], stdout=log, stderr=log, **_as_postgres()
    )
    try:
        wait_port(port, process, timeout=30)
        url = f"postgresql://r42@127.0.0.1:{port}/postgres"
        _wait_ready(url, process)
        yield url
    finally:
        process.send_signal(signal.SIGINT)  # "fast" shutdown; SIGTERM ("smart") would wait for clients
        process.wait(timeout=20)
        log.close()
        shutil.rmtree(directory, ignore_errors=True)


def _wait_ready(url: str, process: subprocess.Popen, timeout: float = 30.0) -> None:
    """The port opens before the server accepts logins ("the database system is starting up")."""
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(url, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def fresh_database(server_url: str, name: str) -> str:
    """An empty database `name` on the server (dropped first if a crashed run left it); its URL."""
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + "/" + name


def drop_database(server_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
