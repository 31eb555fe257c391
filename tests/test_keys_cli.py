"""`r42 keys`: what goes to stdout and stderr, secrets never on argv or in lists, exit codes."""

from __future__ import annotations

import io
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import orjson
import pytest
from click.testing import CliRunner

from r42 import store
from r42.cli import cli
from r42.errors import ExitCode
from r42.terminal import Terminal
from tests.helpers import run


pytestmark = pytest.mark.usefixtures("store_backend")  # each test on SQLite and on PostgreSQL (tests/conftest.py)

SECRET = "sk-test-DO-NOT-PRINT-0123456789abcdef"


def on_terminal(args: list[str], input: str | None = None, stdin_tty: bool = False):
    """Run with a Terminal whose stdout is a TTY; returns (exit code, stdout text, click result)."""
    out = io.BytesIO()
    term = Terminal(stdin=io.BytesIO((input or "").encode()), stdout=out, stdout_isatty=True, stdin_isatty=stdin_tty)
    result = CliRunner().invoke(cli, args, input=input, obj=term, catch_exceptions=False)
    return result.exit_code, out.getvalue().decode(), result


def test_create_prints_only_the_key_on_stdout():
    result = run(["keys", "create", "alice", "--rpm", "60", "--rpd", "1000", "--budget", "12.5"])
    assert result.exit_code == 0, result.stderr
    key = result.stdout.strip()
    assert key.startswith("r42_") and len(key) >= 36 and "\n" not in key
    assert "shown once" in result.stderr and key not in result.stderr
    record = store.authenticate(key)
    assert record is not None and (record.user, record.rpm, record.rpd, record.budget_usd) == ("alice", 60, 1000, 12.5)


def test_create_json():
    result = run(["keys", "create", "bob", "--json"])
    doc = orjson.loads(result.stdout)
    assert doc["user"] == "bob" and doc["key"].startswith(doc["prefix"]) and doc["revoked"] is None


def test_bad_limits_are_usage_errors():
    result = run(["keys", "create", "alice", "--rpm", "-1"])
    assert result.exit_code == ExitCode.USAGE
    result = run(["keys", "create", "alice", "--rpd", str(2**63)])  # more than the store holds
    assert result.exit_code == ExitCode.USAGE and "Traceback" not in result.stderr


def test_list_piped_is_json_without_secrets(monkeypatch):
    key = run(["keys", "create", "alice", "--rpm", "5"]).stdout.strip()
    assert run(["keys", "set", "anthropic"], input=SECRET).exit_code == 0
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-SECRET-0123456789")
    run(["keys", "set", "openai"], input=SECRET + "-2")
    result = run(["keys", "list"])
    assert result.exit_code == 0, result.stderr
    assert SECRET not in result.stdout and "sk-env-SECRET" not in result.stdout and key not in result.stdout
    doc = orjson.loads(result.stdout)
    [entry] = doc["keys"]
    assert (
        entry["user"] == "alice"
        and key.startswith(entry["prefix"])
        and entry["rpm"] == 5
        and entry["last_used"] is None
    )
    sources = {(c["provider"], c["source"]): c["used"] for c in doc["credentials"]}
    assert sources[("anthropic", "store")] is True
    assert sources[("openai", "env OPENAI_API_KEY")] is True
    assert sources[("openai", "store")] is False  # the environment is looked at first


def test_list_on_a_terminal_is_a_table():
    key = run(["keys", "create", "alice", "--budget", "3"]).stdout.strip()
    run(["keys", "set", "openai", "--user", "alice"], input=SECRET)
    code, out, result = on_terminal(["keys", "list"])
    assert code == 0
    assert "alice" in out and key[:12] + "…" in out and "$3" in out and "budget/month" in out
    assert "openai" in out and "store" in out and SECRET not in out and key not in out


def test_list_with_no_store_says_so_and_creates_nothing(isolated_env):
    code, out, _ = on_terminal(["keys", "list"])
    assert code == 0 and "no gateway keys" in out
    assert not (isolated_env / "r42.db").exists()


def test_set_reads_stdin_and_get_prints_the_secret():
    result = run(["keys", "set", "openai"], input=SECRET + "\n")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "" and SECRET not in result.stderr
    assert "created the master key" in result.stderr
    got = run(["keys", "get", "openai"])
    assert got.exit_code == 0 and got.stdout == SECRET + "\n"


def test_set_prompts_without_echo_on_a_terminal():
    code, out, result = on_terminal(["keys", "set", "openai", "--user", "alice"], input=SECRET + "\n", stdin_tty=True)
    assert code == 0, result.output
    assert SECRET not in result.output and SECRET not in out
    assert "openai key" in result.stderr
    assert store.get_secret("openai", "alice").secret == SECRET
    assert store.get_secret("openai") is None  # only for alice


def test_the_secret_cannot_be_given_on_the_command_line():
    result = run(["keys", "set", "openai", SECRET], input="")
    assert result.exit_code == ExitCode.USAGE
    assert store.list_credentials() == []


def test_set_with_empty_input_is_a_usage_error():
    result = run(["keys", "set", "openai"], input="")
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.startswith("r42: error: no key given for openai") and result.stderr.count("\n") == 1


def test_unknown_provider_suggests_a_name():
    result = run(["keys", "set", "opnai"], input=SECRET)
    assert result.exit_code == ExitCode.USAGE and "did you mean openai" in result.stderr


def test_get_and_rm_of_a_missing_credential():
    assert run(["keys", "get", "openai"]).exit_code == ExitCode.NO_CREDENTIALS
    result = run(["keys", "rm", "openai"])
    assert result.exit_code == ExitCode.ERROR and "no stored credential for openai" in result.stderr


def test_rm_removes_only_what_was_named():
    run(["keys", "set", "openai"], input=SECRET)
    run(["keys", "set", "openai", "--user", "alice"], input="sk-alice-0123456789")
    assert run(["keys", "rm", "openai", "--user", "alice"]).exit_code == 0
    assert run(["keys", "get", "openai", "--user", "alice"]).stdout == SECRET + "\n"  # falls back to the global key
    assert run(["keys", "rm", "openai"]).exit_code == 0
    assert run(["keys", "get", "openai"]).exit_code == ExitCode.NO_CREDENTIALS


def test_revoke_and_rotate():
    first = run(["keys", "create", "alice", "--rpm", "9"]).stdout.strip()
    rotated = run(["keys", "rotate", "alice"])
    assert rotated.exit_code == 0
    second = rotated.stdout.strip()
    assert second != first and store.authenticate(first) is None and store.authenticate(second).rpm == 9
    assert first[:12] in rotated.stderr
    result = run(["keys", "revoke", second[:12]])
    assert result.exit_code == 0 and "revoked" in result.stderr and store.authenticate(second) is None
    missing = run(["keys", "revoke", second[:12]])
    assert missing.exit_code == ExitCode.ERROR and second[12:] not in missing.stderr


def test_a_wrong_master_key_is_one_line_and_exit_6(monkeypatch):
    run(["keys", "set", "openai"], input=SECRET)
    monkeypatch.setenv("R42_MASTER_KEY", "Zm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyMTI=")
    result = run(["keys", "get", "openai"])
    assert result.exit_code == ExitCode.CONFIG
    assert result.stderr.startswith("r42: error: wrong master key") and result.stderr.count("\n") == 1
    assert SECRET not in result.stderr and result.stdout == ""


@pytest.mark.sqlite_file
@pytest.mark.parametrize("content", [b"garbage " * 1000, None])
def test_a_broken_store_is_one_line_and_exit_6(isolated_env, content):
    import sqlite3

    path = isolated_env / "r42.db"
    if content is None:  # a foreign database
        raw = sqlite3.connect(path)
        raw.execute("CREATE TABLE t (x)")
        raw.close()
    else:
        path.write_bytes(content)
    before = path.read_bytes()
    for args in (["keys", "list"], ["keys", "create", "alice"], ["log"], ["stats"]):
        result = run(args, input=SECRET)
        assert result.exit_code == ExitCode.CONFIG, (args, result.stderr)
        assert result.stderr.startswith("r42: error: ") and result.stderr.count("\n") == 1 and result.stdout == ""
    assert path.read_bytes() == before


class ModelsHandler(BaseHTTPRequestHandler):
    seen_auth: list[str | None] = []

    def do_GET(self):  # noqa: N802 - http.server's name
        ModelsHandler.seen_auth.append(self.headers.get("Authorization"))
        body = json.dumps({"object": "list", "data": [{"id": "llama3"}, {"id": "qwen2.5-coder"}]}).encode()
        self.send_response(200 if self.path == "/v1/models" else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture
def models_server():
    server = HTTPServer(("127.0.0.1", 0), ModelsHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    ModelsHandler.seen_auth = []
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_a_custom_endpoint_lists_its_models(models_server):
    result = run(["keys", "set", "myvllm", "--base-url", models_server], input="vllm-key-0123456789")
    assert result.exit_code == 0, result.stderr
    assert ModelsHandler.seen_auth == ["Bearer vllm-key-0123456789"]
    assert "2 models" in result.stderr
    assert sorted(m["id"] for m in store.custom_models()) == ["myvllm/llama3", "myvllm/qwen2.5-coder"]
    assert store.custom_providers()["myvllm"]["local"] is True
    assert run(["keys", "get", "myvllm"]).stdout == "vllm-key-0123456789\n"
    listed = orjson.loads(run(["keys", "list"]).stdout)["credentials"]
    assert listed == [
        {
            "provider": "myvllm",
            "user": None,
            "source": "store",
            "base_url": models_server,
            "models": ["llama3", "qwen2.5-coder"],
            "used": True,
        }
    ]


def test_a_keyless_endpoint_with_named_models_and_an_unreachable_one():
    result = run(["keys", "set", "lms2", "--base-url", "http://127.0.0.1:9/v1", "--model", "phi4"], input="")
    assert result.exit_code == 0, result.stderr
    assert [m["id"] for m in store.custom_models()] == ["lms2/phi4"]
    unreachable = run(["keys", "set", "lms3", "--base-url", "http://127.0.0.1:9/v1"], input="")
    assert unreachable.exit_code == 0 and "could not list the models" in unreachable.stderr
    assert run(["keys", "set", "openai", "--base-url", "http://127.0.0.1:9/v1"], input="").exit_code == ExitCode.USAGE
    assert run(["keys", "set", "openai", "--model", "x"], input=SECRET).exit_code == ExitCode.USAGE
