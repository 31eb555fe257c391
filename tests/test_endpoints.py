"""A custom endpoint stored with `r42 keys set --base-url` becomes a provider for rank."""

from __future__ import annotations

import socket

import orjson

from tests.helpers import run


def test_custom_endpoint_is_ranked_and_removed_again(isolated_env):
    with socket.socket() as server:  # a listening port stands in for a local vLLM / LM Studio
        server.bind(("127.0.0.1", 0))
        server.listen()
        base = f"http://127.0.0.1:{server.getsockname()[1]}/v1"
        stored = run(["keys", "set", "myvllm", "--base-url", base, "--model", "llama3-8b"], input="")
        assert stored.exit_code == 0, stored.stderr
        layer = (isolated_env / "catalog.endpoints.yaml").read_text()
        assert "myvllm/llama3-8b" in layer and base in layer
        ranked = run(["rank", "--provider", "myvllm", "--all"], input="hi")
        assert ranked.exit_code == 0, ranked.stderr
        assert [c["model"] for c in orjson.loads(ranked.stdout)["ranking"]["candidates"]] == ["myvllm/llama3-8b"]
    assert run(["keys", "rm", "myvllm"]).exit_code == 0
    assert not (isolated_env / "catalog.endpoints.yaml").exists()
    gone = run(["rank", "--provider", "myvllm"], input="hi")
    assert orjson.loads(gone.stdout)["ranking"]["candidates"] == []


def test_a_secret_never_lands_in_the_layer(isolated_env):
    secret = "sk-custom-0123456789abcdefghijklmnop"
    assert (
        run(
            ["keys", "set", "remotevllm", "--base-url", "https://vllm.example.test/v1", "--model", "m"], input=secret
        ).exit_code
        == 0
    )
    assert secret not in (isolated_env / "catalog.endpoints.yaml").read_text()
