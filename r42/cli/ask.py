"""`r42 ask`: run each prompt on the best ranked model, falling back when one fails.

Piped: the pipe document plus `response` (an OpenAI chat.completion) and `route`; with --stream,
NDJSON events instead. On a terminal: the answer as it arrives, with the model, complexity and
cost on stderr. -i: an interactive chat (r42.cli.interactive).
"""

from __future__ import annotations

import os
import sys
import uuid
from typing import Any, Iterator

import click

from r42.cli.complete import complete_models

from r42.cli.options import explain_option, mode_option, privacy_options, scorer_option
from r42.cli.pipe import input_options, run_stage, terminal_of
from r42.config import Settings, load_settings
from r42.document import dumps, error_document, messages_of, read_items
from r42.errors import R42Error
from r42.executor import Attempt, CandidatesFailed, Executor, Limits, Result, StreamBrokenError, StreamRun, Target, plan
from r42.formats.openai import request_body
from r42.ranking import privacy_explanation, weak_answer_note
from r42.routing import Router
from r42.terminal import Terminal


class Asker:
    """What one `r42 ask` run holds: router, executor and the user's choices; answers documents."""

    def __init__(self, settings: Settings, term: Terminal, model: str | None = None, force: str | None = None, max_attempts: int | None = None, explain: bool = False) -> None:
        self.settings = settings
        self.explain = explain
        self.term = term
        self.model = model
        self.force = force
        self.noted = False  # the weak-answer note goes to stderr once per run, not once per prompt
        self.router = Router.from_settings(settings)
        self.executor = Executor(
            self.router.catalog, Limits.from_settings(settings, max_attempts), on_failure=self._note_failure,
            redact_cloud=settings.sensitive_policy == "redact",
        )
        if model:
            self.executor.target(model)  # an unknown model or provider fails now, before any input is read

    @property
    def mode(self) -> str:
        return self.settings.mode

    def constraints(self):  # noqa: ANN201 - ranking.Constraints
        return self.router.constraints(mode=self.settings.mode, force=self.force)

    def prepare(self, doc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
        """(document with score and ranking, upstream request, candidates best first)."""
        messages = messages_of(doc)
        constraints = self.constraints()
        if self.settings.privacy_judge:
            doc = self.judged(doc)
        doc, candidates = plan(self.router, doc, constraints, self.model)
        if self.explain:
            for line in privacy_explanation(doc["score"], constraints, (doc.get("ranking") or {}).get("excluded") or {}):
                self.term.note(f"r42: {line}")
        return doc, request_body(doc, messages), candidates

    def judged(self, doc: dict[str, Any]) -> dict[str, Any]:
        """The document with its score after the privacy judge (a local model) looked at it."""
        from r42.privacy_judge import judge

        score = self.router.score(doc)
        record = judge(self.router, self.executor, doc, score, self.settings.privacy_judge_prompt)
        if record is None:
            return doc
        score = {**score, "signals": {**score["signals"], "privacy_judge": record}}
        if record["verdict"]:
            score["sensitive"] = sorted({*score["sensitive"], "judged_private"})
        if self.explain:
            verdict = {True: "private", False: "not private", None: "undecided"}[record["verdict"]]
            self.term.note(f"r42: privacy judge ({record.get('model') or record.get('note')}): {verdict}, cues {', '.join(record['cues'])}")
        return {**doc, "score": score}

    def answer(self, doc: dict[str, Any]) -> dict[str, Any]:
        """The document with `response` and `route` (non-streaming)."""
        doc, request, candidates = self.prepare(doc)
        try:
            result = self.executor.complete(request, candidates)
        except CandidatesFailed as exc:
            self._log(doc, exc)
            raise
        out = self._with_note({**doc, "response": result.response, "route": with_request_id(result.route)})
        self._log(out)
        return out

    def stream(self, doc: dict[str, Any]) -> tuple[dict[str, Any], StreamRun]:
        doc, request, candidates = self.prepare(doc)
        return doc, self.executor.stream(request, candidates)

    def finish(self, doc: dict[str, Any], result: Result | None, error: R42Error | None = None) -> dict[str, Any]:
        if result is None:
            out = doc
        else:
            out = self._with_note({**doc, "response": result.response, "route": with_request_id(result.route)})
        if isinstance(error, StreamBrokenError):
            out = {**out, "route": with_request_id(error.route)}
        self._log(out, error)
        return out

    def _with_note(self, out: dict[str, Any]) -> dict[str, Any]:
        """`route.note` when the answering model is below the quality the prompt needs; said on stderr once."""
        note = weak_answer_note(out)
        if note is None:
            return out
        if not self.noted:
            self.noted = True
            self.term.note(f"r42: note: {note}")
        return {**out, "route": {**out["route"], "note": note}}

    def _note_failure(self, attempt: Attempt, following: Target | None) -> None:
        then = f"; trying {following.id}" if following else ""
        self.term.note(f"r42: {attempt.line()}{then}")

    def _log(self, doc: dict[str, Any], error: R42Error | None = None) -> None:
        # STORE HOOK (routing log): the one place `r42 ask` records each request, answered or not.
        # Guarded so that ask works without the store module and a log failure never costs an answer.
        try:
            from r42.store import write_route_from_document
        except ImportError:
            return
        try:
            if isinstance(error, CandidatesFailed):
                doc = {**doc, "route": {"attempts": [a.as_dict() for a in error.attempts]}}
            write_route_from_document(doc, endpoint="ask", error=type(error).__name__ if error else None)
        except Exception as exc:  # noqa: BLE001 - logging must not break answering
            if os.environ.get("R42_DEBUG"):
                raise
            self.term.note(f"r42: warning: could not write the routing log: {exc}")


@click.command()
@input_options
@mode_option
@scorer_option
@click.option("--model", "model", metavar="PROVIDER/MODEL", default=None, shell_complete=complete_models, help="Ask this model directly (no ranking); an id or alias from the catalog.")
@click.option("--local", "force", flag_value="local", help="Only local models.")
@click.option("--cloud", "force", flag_value="cloud", help="Only cloud models.")
@click.option("--max-cost", type=click.FloatRange(min=0), default=None, envvar="R42_MAX_COST", show_envvar=True, help="Highest estimated USD per call.")
@click.option("--max-attempts", type=click.IntRange(min=1), default=None, envvar="R42_MAX_ATTEMPTS", show_envvar=True, help="Most models (and retries) to try per prompt [default: 4].")
@click.option("--stream", "stream", is_flag=True, help="Piped: write NDJSON events (start, delta, done) as the answer arrives.")
@click.option("--interactive", "-i", is_flag=True, help="Chat: history, and /info /route /mode /model /clear /exit.")
@privacy_options
@explain_option
@click.pass_context
def ask(ctx: click.Context, input_file, form, force_json, mode, scorer, model, force, max_cost, max_attempts, stream, interactive, sensitive_policy, explain) -> None:
    """Answer each prompt with the best ranked model, falling back when one fails.

    Scores and ranks first when the document has no `score`/`ranking` (a `ranking` already there is
    trusted: edit its candidates with jq). Adds `response` (an OpenAI chat.completion) and `route`
    (model, attempts, usage, cost_usd, latency_ms, ttft_ms).

    \b
    Exit codes: 3 no model fits, 4 no provider configured, 5 every candidate failed, 130 Ctrl-C.
    \b
    Examples:
      echo "What is the capital of France?" | r42 ask
      echo "Write a haiku" | r42 ask --stream --mode cost
      r42 ask -i
    """
    settings = load_settings({"mode": mode, "scorer": scorer, "max_cost": max_cost, "sensitive_policy": sensitive_policy})
    term = terminal_of(ctx)
    try:
        asker = Asker(settings, term, model, force, max_attempts, explain)
        if interactive or (input_file is None and term.stdin_isatty):
            from r42.cli.interactive import chat

            chat(asker)
        elif force_json or not term.stdout_isatty:
            if stream:
                _stream_events(ctx, asker, input_file, form)
            else:
                run_stage(ctx, asker.answer, lambda doc: "", input_file, form, True)
        else:
            _answer_on_terminal(ctx, asker, input_file, form)
    finally:
        _stop_local_model()


# --- on a terminal ------------------------------------------------------------------------------


def _answer_on_terminal(ctx: click.Context, asker: Asker, input_file, form: str | None) -> None:
    term = asker.term
    raw = input_file.read() if input_file is not None else term.stdin.read()
    items = read_items(raw, form or "auto")
    first_error: R42Error | None = None
    for index, item in enumerate(items):
        if index:
            term.write(b"\n")
        try:
            if item.error is not None:
                raise item.error
            answer_to_terminal(asker, item.doc)
        except R42Error as exc:
            if len(items) == 1:
                raise
            term.note(f"r42: error: line {item.line}: {exc.one_line()}")
            first_error = first_error or exc
    if first_error is not None:
        ctx.exit(int(first_error.exit_code))


def answer_to_terminal(asker: Asker, doc: dict[str, Any]) -> dict[str, Any]:
    """Stream the answer's text to stdout, then one line of route on stderr; the finished doc."""
    term = asker.term
    doc, run = asker.stream(doc)
    ended_with_newline = True
    try:
        for text in _texts(run):
            term.write(text.encode())
            ended_with_newline = text.endswith("\n")
    except StreamBrokenError as exc:
        term.write(b"\n")
        asker.finish(doc, None, exc)
        raise
    except CandidatesFailed as exc:
        asker.finish(doc, None, exc)
        raise
    assert run.result is not None
    calls = run.result.response["choices"][0]["message"].get("tool_calls") or []
    for call in calls:
        function = call["function"]
        term.write(f"{'' if ended_with_newline else chr(10)}[tool call] {function['name']}({function['arguments']})\n".encode())
        ended_with_newline = True
    if not ended_with_newline:
        term.write(b"\n")
    out = asker.finish(doc, run.result)
    term.note(summary_line(out))
    return out


def _texts(run: StreamRun) -> Iterator[str]:
    for chunk in run:
        for choice in chunk.get("choices") or []:
            text = (choice.get("delta") or {}).get("content")
            if text:
                yield text


def with_request_id(route: dict[str, Any]) -> dict[str, Any]:
    """A request id for `r42 feedback ID good|bad` and the routing log."""
    return {**route, "request_id": route.get("request_id") or uuid.uuid4().hex[:16]}


def summary_line(doc: dict[str, Any]) -> str:
    """model · complexity · cost · timings, for stderr under an answer."""
    route = doc["route"]
    parts = [route["model"]]
    score = doc.get("score")
    if score:
        parts.append(f"complexity {score['complexity']:.2f} ({score['level']})")
    cost = route.get("cost_usd")
    parts.append("cost unknown" if cost is None else f"${cost:.6f}")
    usage = route.get("usage") or {}
    if usage.get("output_tokens") is not None:
        parts.append(f"{usage['input_tokens']}+{usage['output_tokens']} tokens")
    timing = f"{route['latency_ms'] / 1000:.2f}s"
    if route.get("ttft_ms") is not None:
        timing += f" (first token {route['ttft_ms'] / 1000:.2f}s)"
    parts.append(timing)
    fallbacks = sum(1 for a in route["attempts"] if not a["ok"])
    if fallbacks:
        parts.append(f"after {fallbacks} failed attempt{'s' if fallbacks > 1 else ''}")
    if route.get("request_id"):
        parts.append(f"request {route['request_id']}")
    return "r42: " + " · ".join(parts)


# --- piped, --stream: NDJSON events --------------------------------------------------------------


def _stream_events(ctx: click.Context, asker: Asker, input_file, form: str | None) -> None:
    term = asker.term
    raw = input_file.read() if input_file is not None else term.stdin.read()
    items = read_items(raw, form or "auto")
    first_error: R42Error | None = None
    for item in items:
        try:
            if item.error is not None:
                raise item.error
            events_of(asker, item.doc, lambda event: term.write(dumps(event) + b"\n"))
        except R42Error as exc:
            term.write(dumps({"event": "error", **error_document(exc, item.line, item.doc)}) + b"\n")
            if len(items) == 1:
                raise
            first_error = first_error or exc
    if first_error is not None:
        ctx.exit(int(first_error.exit_code))


def events_of(asker: Asker, doc: dict[str, Any], emit) -> dict[str, Any]:  # noqa: ANN001
    """start (the answering model), delta (text or tool-call pieces), done (the whole document)."""
    doc, run = asker.stream(doc)
    started = False
    try:
        for chunk in run:
            if not started:
                emit({"event": "start", "model": run.model})
                started = True
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                if delta.get("content"):
                    emit({"event": "delta", "text": delta["content"]})
                if delta.get("tool_calls"):
                    emit({"event": "delta", "tool_calls": delta["tool_calls"]})
    except (StreamBrokenError, CandidatesFailed) as exc:
        asker.finish(doc, None, exc)
        raise
    assert run.result is not None
    out = asker.finish(doc, run.result)
    emit({"event": "done", **{k: v for k, v in out.items() if k != "event"}})
    return out


def _stop_local_model() -> None:
    """Stop the built-in llama.cpp server if this command started it (atexit would, later)."""
    localmodel = sys.modules.get("r42.localmodel")
    if localmodel is not None:
        localmodel.stop_server()
