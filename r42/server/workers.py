"""`r42 serve --workers N`: N worker processes accepting on one port.

The supervisor (the process `r42 serve` started as) opens the listening sockets, then forks the
workers before it starts any thread; each worker builds its own Gateway (its own event loop,
threads and store connections) and its HTTPServer accepts on a socket it inherited
(`HTTPServer.sock`). The supervisor only watches:

- a worker that dies without being asked to is started again (after a pause that grows while
  workers keep dying at once, so a worker that cannot start does not spin);
- SIGINT or SIGTERM stops every worker with SIGTERM, which finishes the requests in flight (the
  server's grace period), then the supervisor exits; a worker still there after the grace period
  and a margin is killed.

How connections reach the workers (`listeners`): on Linux each worker has a socket of its own,
all bound to the one port with SO_REUSEPORT, and the kernel spreads new connections evenly over
them (by a hash of the client's address and port). One socket shared by every worker, as on other
systems, lets the first worker to wake take every connection that is waiting: a client that opens
64 keep-alive connections at once had all 64 served by one worker while the other idled. The
supervisor keeps every worker's socket open, so a worker that is restarted takes over its socket
and the connections queued on it meanwhile wait for it rather than being reset.

Per-key limits, budgets and revocation are shared through the store (see Gateway.admit), so they
hold whichever worker answers. The access log is one file opened once, before the fork: every
worker appends whole lines to it (O_APPEND, one write per line).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

from r42.server.http import HTTPServer

RESTART_PAUSE_MAX = 5.0  # seconds between restarts of workers that keep dying
STOP_MARGIN = 5.0  # seconds past the grace period before a stopping worker is killed
POLL = 0.1  # seconds between looks at the workers


def worker_count(text: str | int) -> int:
    """`auto` (the number of cores this process may run on) or a whole number of 1 or more."""
    if isinstance(text, int):
        count = text
    elif text.strip().lower() == "auto":
        return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))
    else:
        try:
            count = int(text)
        except ValueError:
            raise ValueError(f"--workers must be a whole number or auto, not {text!r}") from None
    if count < 1:
        raise ValueError(f"--workers must be 1 or more, not {count}")
    return count


BACKLOG = 1024


def spreads_connections() -> bool:
    """Does the kernel balance new connections over sockets sharing a port with SO_REUSEPORT?
    Linux does; BSD and macOS accept the option but hand every connection to one socket."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def listeners(host: str, port: int, count: int) -> list[socket.socket]:
    """The listening sockets of `count` workers (OSError when the address is taken): one each,
    sharing the port through SO_REUSEPORT, where the kernel spreads connections over them; else
    one socket that every worker accepts on."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if count == 1 or not spreads_connections():
        return [socket.create_server((host, port), family=family, backlog=BACKLOG)]
    if port != 0:
        # SO_REUSEPORT would let this server join another one of the same user already on the
        # port; a plain bind first fails there as a single server does (EADDRINUSE).
        socket.create_server((host, port), family=family).close()
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            socks.append(socket.create_server((host, port), family=family, backlog=BACKLOG, reuse_port=True))
            port = socks[0].getsockname()[1]  # port 0: the others join the port the first was given
    except OSError:
        for sock in socks:
            sock.close()
        raise
    return socks


def serving_on(server: HTTPServer, sock: socket.socket) -> HTTPServer:
    """`server`, set to accept on `sock` (its own, or one shared by every worker) instead of binding."""
    server.sock = sock
    server.bound = sock.getsockname()[:2]
    return server


Worker = Callable[[socket.socket], None]


@dataclass
class Supervisor:
    """Keeps `count` workers running `work(sock)` until told to stop: worker i on socks[i] (all on
    the one socket when there is one), and a restarted worker on the socket of the one it replaces."""

    count: int
    socks: list[socket.socket]
    work: Worker
    grace: float = 30.0
    say: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)
    workers: dict[int, int] = field(default_factory=dict)  # pid -> slot (its socket's index)
    stopping: bool = False
    restarts: int = 0

    def run(self) -> int:
        """Serve until SIGINT or SIGTERM; returns the exit status (0)."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for slot in range(self.count):
                self._spawn(slot)
            self._watch()
            self._stop_all()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0

    def _on_signal(self, signum: int, frame: object) -> None:
        self.stopping = True

    def _spawn(self, slot: int) -> None:
        sock = self.socks[slot % len(self.socks)]
        pid = os.fork()
        if pid == 0:  # the worker
            status = 1
            try:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    signal.signal(sig, signal.SIG_DFL)  # the worker's server installs its own
                for other in self.socks:
                    if other is not sock:
                        other.close()  # the supervisor keeps them; this worker accepts on its own only
                self.work(sock)
                status = 0
            except BaseException as exc:  # noqa: BLE001 - report and exit: the supervisor restarts us
                self.say(f"r42 serve: worker {os.getpid()} failed: {type(exc).__name__}: {exc}")
            finally:
                sys.stderr.flush()
                os._exit(status)
        self.workers[pid] = slot

    def _reap(self) -> list[tuple[int, int, int]]:
        """Workers that have ended since the last look: (pid, slot, exit code or -signal)."""
        ended = []
        while self.workers:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.workers.clear()
                break
            if pid == 0:
                break
            if pid in self.workers:
                ended.append((pid, self.workers.pop(pid), os.waitstatus_to_exitcode(status)))
        return ended

    def _watch(self) -> None:
        quiet_since = time.monotonic()
        while not self.stopping:
            time.sleep(POLL)
            for pid, slot, code in self._reap():
                if self.stopping:
                    break
                now = time.monotonic()
                self.restarts = self.restarts + 1 if now - quiet_since < 10 else 1
                quiet_since = now
                pause = min(RESTART_PAUSE_MAX, 0.1 * 2 ** (self.restarts - 1))
                how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
                self.say(f"r42 serve: worker {pid} {how}; starting another in {pause:.1f} s")
                self._sleep(pause)
                if not self.stopping:
                    self._spawn(slot)

    def _sleep(self, seconds: float) -> None:
        until = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < until:
            time.sleep(min(POLL, seconds))

    def _stop_all(self) -> None:
        """SIGTERM to every worker (each finishes its requests in flight), then wait for them."""
        for pid in list(self.workers):
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace + STOP_MARGIN
        while self.workers and time.monotonic() < deadline:
            self._reap()
            time.sleep(POLL / 2)
        for pid in list(self.workers):
            _signal(pid, signal.SIGKILL)
        while self.workers:
            self._reap()
            time.sleep(POLL / 2)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
