"""Each user's own privacy-judge template: the store, GET/PUT/DELETE /v1/me/privacy-prompt against a
real `r42 serve`, and the gateway's judge asking a loopback "local model" with the requesting
user's template. The dashboard's form is tested in test_dashboard.py and test_dashboard_browser.py."""

from __future__ import annotations

import http.client
from typing import Iterable

import orjson
import pytest
from hypothesis import given, strategies as st

from r42 import store
from r42.config import load_settings
from r42.errors import InputError
from r42.privacy_judge import DEFAULT_PROMPT, MAX_TEMPLATE_CHARS, check_template
from r42.server import serve_in_thread
from r42.store.prompts import reset_template, set_template, template_for
from tests.fakes import OpenAIFake
from tests.helpers import json_lines, run
from tests.test_admin_api import call

ALICE_TEMPLATE = "ALICE-RULES: anything about my health is private.\n{prompt}\nYES or NO?"
HEALTH = "My doctor says my diagnosis is type 2 diabetes. What should I eat this week?"


# ---- the check and the store --------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad, says",
    [
        ("no placeholder", "exactly once (found no)"),
        ("{prompt} and {prompt}", "exactly once (found 2 times)"),
        ("{prompt}" + "x" * MAX_TEMPLATE_CHARS, "at most 4,000"),
        ("bell \x07 {prompt}", "control characters"),
        (42, "must be a string"),
    ],
)
def test_bad_templates_are_refused_with_a_reason(bad, says):
    with pytest.raises(InputError) as info:
        check_template(bad)
    assert says in info.value.one_line()


@given(st.text(st.characters(min_codepoint=32), max_size=200), st.text(st.characters(min_codepoint=32), max_size=200))
def test_any_text_with_one_placeholder_is_a_template(before, after):
    template = f"{before}{{prompt}}{after}"
    if template.count("{prompt}") == 1:
        assert check_template(template) == template


def test_store_own_template_reset_and_the_default():
    assert template_for("alice", None).as_dict() | {"updated": None} == {
        "user": "alice",
        "template": DEFAULT_PROMPT,
        "source": "default",
        "default": DEFAULT_PROMPT,
        "updated": None,
    }
    assert template_for("alice", "Global {prompt}").template == "Global {prompt}"  # the setting is the default
    assert reset_template("alice", "test") is False  # no store yet: nothing to reset, none created
    set_template("alice", actor="test", template=ALICE_TEMPLATE)
    set_template("alice", actor="test", template=ALICE_TEMPLATE + " ")  # saving again replaces it
    mine = template_for("alice", "Global {prompt}")
    assert mine.own and mine.template == ALICE_TEMPLATE + " " and mine.default == "Global {prompt}"
    assert mine.as_dict()["updated"].endswith("Z")
    assert not template_for("bob", None).own
    with pytest.raises(InputError):
        set_template("alice", actor="test", template="no placeholder")
    assert template_for("alice", None).template == ALICE_TEMPLATE + " "  # a refused one changes nothing
    assert reset_template("alice", "test") is True and reset_template("alice", "test") is False
    assert template_for("alice", None).template == DEFAULT_PROMPT


def test_a_store_from_before_the_table_upgrades_and_keeps_its_keys(isolated_env):
    from r42.store import db
    from tests.helpers import store_before

    raw = store_before(isolated_env / "r42.db", "privacy_prompts")
    raw.execute("INSERT INTO users (name, created) VALUES ('old', 0)")
    raw.close()
    assert template_for("old", None).template == DEFAULT_PROMPT  # reads the old schema's store: upgraded
    set_template("old", ALICE_TEMPLATE, "test")
    assert template_for("old", None).own and store.list_users() == ["old"]
    assert db.connect().execute("PRAGMA user_version").fetchone()[0] == db.SCHEMA_VERSION


# ---- the API ---------------------------------------------------------------------------------------


@pytest.fixture
def gateway():
    with serve_in_thread(load_settings()) as running:
        yield running


PATH = "/v1/me/privacy-prompt"


def test_a_user_reads_edits_and_resets_their_own_template(gateway):
    alice, bob = store.create_key("alice").key, store.create_key("bob").key
    status, body = call(gateway.url, "GET", PATH, alice)
    assert status == 200 and body["source"] == "default" and body["template"] == body["default"] == DEFAULT_PROMPT
    status, body = call(gateway.url, "PUT", PATH, alice, {"template": ALICE_TEMPLATE})
    assert status == 200 and body == call(gateway.url, "GET", PATH, alice)[1]
    assert body["source"] == "yours" and body["template"] == ALICE_TEMPLATE and body["user"] == "alice"
    assert call(gateway.url, "GET", "/api/me/privacy-prompt", alice)[1]["template"] == ALICE_TEMPLATE  # the twin
    assert call(gateway.url, "GET", PATH, bob)[1]["source"] == "default"  # only hers
    status, body = call(gateway.url, "DELETE", PATH, alice)
    assert status == 200 and body["source"] == "default" and body["template"] == DEFAULT_PROMPT
    assert call(gateway.url, "DELETE", PATH, alice)[0] == 200  # resetting a default is no error
    entries = json_lines(run(["keys", "audit", "--action", "privacy_prompt"]).stdout)
    assert [(e["action"], e["target"], e["actor"]) for e in entries] == [
        ("privacy_prompt.set", "alice", f"key:{alice[:12]} (alice)"),
        ("privacy_prompt.reset", "alice", f"key:{alice[:12]} (alice)"),
    ]
    assert ALICE_TEMPLATE not in str(entries)  # the audit log says who and when, not the text


@pytest.mark.parametrize(
    "body, param",
    [
        ({"template": "no placeholder"}, "template"),
        ({"template": "{prompt}{prompt}"}, "template"),
        ({"template": "{prompt}" + "x" * MAX_TEMPLATE_CHARS}, "template"),
        ({"template": 7}, "template"),
        ({}, "template"),
        ({"template": "{prompt}", "user": "bob"}, "user"),
        (["{prompt}"], None),
    ],
)
def test_bad_bodies_are_400_naming_the_field(gateway, body, param):
    alice = store.create_key("alice").key
    status, answer = call(gateway.url, "PUT", PATH, alice, body)
    assert status == 400, answer
    assert answer["error"]["param"] == param
    assert call(gateway.url, "GET", PATH, alice)[1]["source"] == "default"


def test_an_admin_edits_another_users_template_and_others_cannot(gateway):
    ops, alice = store.create_key("ops", admin=True).key, store.create_key("alice").key
    store.create_key("bob")
    status, body = call(gateway.url, "PUT", PATH + "?user=bob", ops, {"template": "Bob: {prompt}"})
    assert status == 200 and body["user"] == "bob" and body["source"] == "yours"
    assert call(gateway.url, "GET", PATH, ops)[1]["source"] == "default"  # the admin's own is untouched
    assert call(gateway.url, "GET", PATH + "?user=bob", alice)[0] == 403  # not for a plain key
    assert call(gateway.url, "PUT", PATH + "?user=bob", alice, {"template": "{prompt}"})[0] == 403
    assert call(gateway.url, "GET", PATH + "?user=alice", alice)[0] == 200  # naming oneself is fine
    assert call(gateway.url, "GET", PATH + "?user=nobody", ops)[0] == 404
    assert call(gateway.url, "DELETE", PATH + "?user=bob", ops)[1]["source"] == "default"
    entries = json_lines(run(["keys", "audit", "--action", "privacy_prompt"]).stdout)
    assert [(e["action"], e["target"], e["actor"]) for e in entries] == [
        ("privacy_prompt.set", "bob", f"key:{ops[:12]} (ops)"),
        ("privacy_prompt.reset", "bob", f"key:{ops[:12]} (ops)"),
    ]


def test_no_key_is_401_and_no_auth_has_no_user(gateway):
    assert call(gateway.url, "GET", PATH)[0] == 401
    assert call(gateway.url, "POST", PATH, store.create_key("alice").key, {})[0] == 405
    with serve_in_thread(load_settings(), no_auth=True) as open_gateway:
        assert call(open_gateway.url, "GET", PATH)[0] == 403


# ---- the gateway's judge uses the requesting user's template ---------------------------------------


class JudgingModel(OpenAIFake):
    """A loopback "local model" that answers the judge YES only when asked with Alice's template
    (every request is recorded, so the test sees which template each judgement used)."""

    def decide(self, texts: Iterable[str], tool_names: list[str], tool_result: str | None):  # type: ignore[override]
        joined = "\n".join(texts)
        self.reply = "YES" if "ALICE-RULES" in joined else "NO" if "YES or NO" in joined else "a local answer"
        return super().decide(texts, tool_names, tool_result)


@pytest.fixture
def judging(monkeypatch):
    """LM Studio (the judge and the local answerer) and OpenAI (the cloud), both loopback fakes."""
    from r42 import availability

    monkeypatch.setattr(availability, "builtin_model_installed", lambda: False)
    with JudgingModel() as local, OpenAIFake(reply="a cloud answer") as cloud:
        monkeypatch.setenv("R42_LMSTUDIO_BASE_URL", local.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_BASE_URL", cloud.base_url)
        monkeypatch.setenv("R42_PRIVACY_JUDGE", "1")
        monkeypatch.setenv("R42_LOCAL_DISCOVERY", "0")  # LM Studio's catalog models, as in test_privacy.py
        with serve_in_thread(load_settings()) as running:
            yield running, local, cloud


def ask(
    url: str, key: str, headers: dict[str, str] | None = None, prompt: str = HEALTH
) -> tuple[int, dict[str, str], dict]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    body = {"model": "auto", "messages": [{"role": "user", "content": prompt}]}
    conn.request(
        "POST",
        "/v1/chat/completions",
        orjson.dumps(body),
        {"Content-Type": "application/json", "Authorization": f"Bearer {key}", **(headers or {})},
    )
    response = conn.getresponse()
    data = orjson.loads(response.read())
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


def judge_requests(fake: OpenAIFake) -> list[str]:
    texts = [orjson.dumps(r.body).decode() for r in fake.requests if r.method == "POST"]
    return [t for t in texts if "YES or NO" in t]


def test_the_gateway_judges_each_users_prompts_with_their_own_template(judging):
    gateway, local, cloud = judging
    alice, bob = store.create_key("alice").key, store.create_key("bob").key
    assert call(gateway.url, "PUT", PATH, alice, {"template": ALICE_TEMPLATE})[0] == 200

    # bob: the default template, the judge says NO, the cloud may answer
    status, headers, body = ask(gateway.url, bob, {"X-R42-Force-Route": "cloud"})
    assert status == 200, body
    [bobs] = judge_requests(local)
    assert "Private (YES or NO)?" in bobs and "ALICE-RULES" not in bobs and "diabetes" in bobs
    assert len(cloud.requests) == 1 and headers["x-r42-model"].startswith("openai/")
    assert headers["x-r42-privacy-judge"].startswith("not private (lmstudio/")

    # alice: her template, the judge says YES, the prompt stays on the local model
    status, headers, body = ask(gateway.url, alice)
    assert status == 200, body
    alices = judge_requests(local)[1]
    assert "ALICE-RULES" in alices and "Private (YES or NO)?" not in alices and "diabetes" in alices
    assert headers["x-r42-model"].startswith("lmstudio/") and body["choices"][0]["message"]["content"]
    assert headers["x-r42-privacy-judge"].startswith("private (lmstudio/")
    status, _, body = ask(gateway.url, alice, {"X-R42-Force-Route": "cloud"})
    assert status == 400 and "judged_private" in body["error"]["message"]  # never the cloud, even when asked
    assert len(cloud.requests) == 1

    # after a reset alice gets the default again
    call(gateway.url, "DELETE", PATH, alice)
    assert ask(gateway.url, alice, {"X-R42-Force-Route": "cloud"})[0] == 200
    assert "Private (YES or NO)?" in judge_requests(local)[-1] and len(cloud.requests) == 2


def test_with_the_judge_on_a_prompt_without_privacy_cues_is_not_judged(judging):
    """Planned on the event loop when the router is warm (no local model to ask), then a prompt with
    cues on the same warm router still reaches the judge (planning moves to a worker thread for it)."""
    gateway, local, _ = judging
    alice = store.create_key("alice").key
    for _ in range(2):  # the first request warms the router
        status, headers, body = ask(gateway.url, alice, prompt="Write a haiku about autumn leaves.")
        assert status == 200 and body["choices"][0]["message"]["content"], body
        assert "x-r42-privacy-judge" not in headers
    assert judge_requests(local) == []
    status, headers, _ = ask(gateway.url, alice)
    assert status == 200 and headers["x-r42-privacy-judge"].startswith("not private (lmstudio/")
    assert len(judge_requests(local)) == 1


def test_the_messages_endpoint_and_streams_are_judged_too(judging):
    """/v1/messages (Anthropic's shape) and a streamed chat completion go through the same judge."""
    import anthropic
    import openai

    gateway, local, cloud = judging
    alice = store.create_key("alice").key
    call(gateway.url, "PUT", PATH, alice, {"template": ALICE_TEMPLATE})
    client = anthropic.Anthropic(base_url=gateway.url, api_key=alice, max_retries=0)
    raw = client.messages.with_raw_response.create(
        model="auto", max_tokens=50, messages=[{"role": "user", "content": HEALTH}]
    )
    assert raw.headers["x-r42-privacy-judge"].startswith("private (lmstudio/")
    assert raw.headers["x-r42-model"].startswith("lmstudio/")
    chat = openai.OpenAI(base_url=gateway.url + "/v1", api_key=alice, max_retries=0)
    with chat.chat.completions.with_streaming_response.create(
        model="auto", messages=[{"role": "user", "content": HEALTH}], stream=True
    ) as streamed:
        assert streamed.headers["x-r42-privacy-judge"].startswith("private (lmstudio/")
        assert "".join(streamed.iter_lines())
    assert [t.count("ALICE-RULES") for t in judge_requests(local)] == [1, 1]
    assert cloud.requests == []


def test_without_a_local_model_the_judge_notes_it_and_routing_goes_on(monkeypatch):
    """No local model to ask: the request is routed on the pattern finder alone (no prompt judged)."""
    from r42 import availability

    monkeypatch.setattr(availability, "builtin_model_installed", lambda: False)
    with OpenAIFake(reply="a cloud answer") as cloud:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_BASE_URL", cloud.base_url)
        monkeypatch.setenv("R42_PRIVACY_JUDGE", "1")
        with serve_in_thread(load_settings()) as running:
            alice = store.create_key("alice").key
            call(running.url, "PUT", PATH, alice, {"template": ALICE_TEMPLATE})
            status, headers, body = ask(running.url, alice)
    assert status == 200, body
    assert headers["x-r42-privacy-judge"] == "undecided (no local model to ask)"
    assert "ALICE-RULES" not in str([r.body for r in cloud.requests]) and len(cloud.requests) == 1


# ---- the CLI: r42 keys privacy-prompt --------------------------------------------------------------


def test_the_operator_shows_sets_and_resets_a_users_template(tmp_path):
    store.create_key("alice")
    shown = run(["keys", "privacy-prompt", "alice"])
    assert shown.exit_code == 0 and shown.stdout == DEFAULT_PROMPT + "\n" and "the default" in shown.stderr
    source = tmp_path / "judge.txt"
    source.write_text(ALICE_TEMPLATE + "\n")
    result = run(["keys", "privacy-prompt", "alice", "--set", str(source)])
    assert result.exit_code == 0 and result.stdout == "" and "own privacy-judge template" in result.stderr
    assert template_for("alice", None).template == ALICE_TEMPLATE  # the file's last newline dropped
    doc = orjson.loads(run(["keys", "privacy-prompt", "alice", "--json"]).stdout)
    assert doc["source"] == "yours" and doc["template"] == ALICE_TEMPLATE
    assert run(["keys", "privacy-prompt", "alice", "--set", "-"], input="Stdin {prompt}").exit_code == 0
    assert template_for("alice", None).template == "Stdin {prompt}"
    assert run(["keys", "privacy-prompt", "alice", "--reset"]).exit_code == 0
    assert not template_for("alice", None).own
    actions = [e["action"] for e in json_lines(run(["keys", "audit", "--action", "privacy_prompt"]).stdout)]
    assert actions == ["privacy_prompt.set", "privacy_prompt.set", "privacy_prompt.reset"]


@pytest.mark.parametrize(
    "args, stdin, code, says",
    [
        (["alice", "--set", "-"], "no placeholder", 2, "exactly once"),
        (["alice", "--set", "/nonexistent/judge.txt"], None, 2, "cannot read /nonexistent/judge.txt"),
        (["alice", "--set", "-", "--reset"], None, 2, "exclude each other"),
        (["nobody"], None, 1, "no gateway user 'nobody'"),
    ],
)
def test_cli_mistakes_are_one_line_errors(args, stdin, code, says):
    store.create_key("alice")
    result = run(["keys", "privacy-prompt", *args], input=stdin)
    assert result.exit_code == code, result.stderr
    assert result.stderr.startswith("r42: error: ") and says in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not template_for("alice", None).own


def test_setting_and_resetting_a_template_are_audited_without_the_text():
    from r42.store import audit

    set_template("alice", ALICE_TEMPLATE, "admin:ops")
    assert reset_template("alice", "admin:ops") and not reset_template("alice", "admin:ops")
    entries = [(e.actor, e.action, e.target) for e in audit.read(action=None)]
    assert ("admin:ops", "privacy_prompt.set", "alice") in entries
    assert entries.count(("admin:ops", "privacy_prompt.reset", "alice")) == 1  # nothing reset, nothing recorded
    assert all(ALICE_TEMPLATE not in str(e.detail) for e in audit.read())
