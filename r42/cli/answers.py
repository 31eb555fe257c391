"""Answering documents for `r42 ask` and its interactive chat: the `Asker` (router, executor and
the user's choices), the answer streamed to a terminal, the NDJSON events of --stream, and the
summary line under an answer. r42.cli.ask (the command) and r42.cli.interactive (the chat) both
build on this module; neither imports the other's internals.
"""

from __future__ import annotations

import os
import uuid
from typing import Any, Callable, Iterator

from r42.catalog import Target
from r42.config import Settings
from r42.document import messages_of
from r42.errors import R42Error
from r42.executor import Attempt, CandidatesFailed, Executor, Limits, Result, StreamBrokenError, StreamRun
from r42.formats.openai import request_body
from r42.ranking import Constraints, privacy_explanation, weak_answer_note
from r42.routing import Router
from r42.terminal import Terminal


class Asker:
    """What one `r42 ask` run holds: router, executor and the user's choices; answers documents."""

    def __init__(
        self,
        settings: Settings,
        term: Terminal,
        model: str | None = None,
        force: str | None = None,
        max_attempts: int | None = None,
        explain: bool = False,
    ) -> None:
        self.settings = settings
        self.explain = explain
        self.term = term
        self.model = model
        self.force = force
        self.noted = False  # the weak-answer note goes to stderr once per run, not once per prompt
        self.router = Router.from_settings(settings)
        self.executor = Executor(
            self.router.catalog,
            Limits.from_settings(settings, max_attempts),
            on_failure=self._note_failure,
            redact_cloud=settings.sensitive_policy == "redact",
            health=self.router.health,
        )
        if model:
            self.executor.target(model)  # an unknown model or provider fails now, before any input is read

    @property
    def mode(self) -> str:
        return self.settings.mode

    def constraints(self) -> Constraints:
        return self.router.constraints(mode=self.settings.mode, force=self.force)

    def prepare(self, doc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
        """(document with score and ranking, upstream request, candidates best first)."""
        messages = messages_of(doc)
        constraints = self.constraints()
        if self.settings.privacy_judge:
            doc = self.judged(doc)
        doc, candidates = self.router.plan(doc, constraints, self.model)
        if self.explain:
            for line in privacy_explanation(
                doc["score"], constraints, (doc.get("ranking") or {}).get("excluded") or {}
            ):
                self.term.note(f"r42: {line}")
        return doc, request_body(doc, messages), candidates

    def judged(self, doc: dict[str, Any]) -> dict[str, Any]:
        """The document with its score after the privacy judge (a local model) looked at it."""
        from r42.privacy_judge import VERDICTS, judged

        # the CLI user is whoever runs it: the global setting, not a gateway user's own template
        doc, record = judged(self.router, self.executor, doc, self.settings.privacy_judge_prompt)
        if record is not None and self.explain:
            self.term.note(
                f"r42: privacy judge ({record.get('model') or record.get('note')}): {VERDICTS[record['verdict']]}, "
                f"cues {', '.join(record['cues'])}"
            )
        return doc

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
        if self.router.health is not None:
            self.router.health.sync()  # this request's attempts, shared with other processes (never raises)
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
        term.write(
            f"{'' if ended_with_newline else chr(10)}[tool call] {function['name']}({function['arguments']})\n".encode()
        )
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


def events_of(asker: Asker, doc: dict[str, Any], emit: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
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
