"""Run a request on ranked candidates, best first, falling back until one answers.

The executor moves on after failures that are about the model or the provider (connection errors,
timeouts, 408, 409, 429, 5xx, overloaded, context too long, tools unsupported) and stops at any
other 4xx, which would fail everywhere. A short Retry-After is waited out once; a long one means
moving on. Attempts are bounded by `max_attempts` and an overall deadline.

Streaming: chunks are held back until the first token arrives, so a candidate that fails before
then is replaced silently; once a token has been handed out, a failure ends the stream with
StreamBrokenError. Every attempt is recorded for the `route` key of the pipe document.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field, replace
from typing import Any, AsyncIterator, Awaitable, Callable, Generator, Iterator, Mapping

from r42 import clock as wall_clock
from r42.availability import BUILTIN_LOCAL, base_url_of, find_credential
from r42.catalog import Catalog, Target
from r42.config import Settings
from r42.errors import AllFailedError, ExitCode, NoCandidateError, NoCredentialsError, R42Error
from r42.formats.openai import Accumulator, chunk_has_token
from r42.privacy import Redaction, StreamRestorer, redact_messages, restore_chunk, restore_response
from r42.providers import Adapter, Endpoint, ProviderError, open_adapter


LOCAL_MAX_TOKENS = 1024  # output bound for local servers when the request sets none


class CandidatesFailed(AllFailedError):
    """Every candidate tried failed (or one failed in a way that would fail everywhere)."""

    def __init__(
        self, message: str, attempts: list["Attempt"], hint: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, hint)
        self.attempts = attempts
        self.retry_after = retry_after  # the shortest Retry-After an upstream asked for, in seconds


class ProvidersMissing(CandidatesFailed, NoCredentialsError):
    """No candidate's provider is configured here (no credential, no base URL, not installed)."""

    exit_code = ExitCode.NO_CREDENTIALS


class NotConfigured(ProviderError):
    """The provider has no credential or base URL here; `hint` says what to set."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(None, message, retryable=True)
        self.hint = hint


class StreamBrokenError(R42Error):
    """The answering model failed after part of its answer had been written."""

    def __init__(self, message: str, route: dict[str, Any]) -> None:
        super().__init__(message, "the answer above is incomplete; run the prompt again")
        self.route = route


@dataclass
class Attempt:
    model: str
    ok: bool
    status: int | None = None
    error: str | None = None
    ms: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "ok": self.ok, "status": self.status, "error": self.error, "ms": self.ms}

    def line(self) -> str:
        status = f" {self.status}" if self.status else ""
        return f"{self.model}:{status} {self.error or 'ok'} ({self.ms} ms)"


@dataclass
class Result:
    response: dict[str, Any]
    route: dict[str, Any]


@dataclass(frozen=True)
class Limits:
    max_attempts: int = 4
    connect_timeout: float = 5.0
    first_byte_timeout: float = 120.0
    deadline: float = 300.0
    retry_after_max: float = 5.0

    @classmethod
    def from_settings(cls, settings: Settings, max_attempts: int | None = None) -> "Limits":
        return cls(
            max_attempts=max_attempts or settings.max_attempts,
            connect_timeout=settings.connect_timeout,
            first_byte_timeout=settings.first_byte_timeout,
            deadline=settings.deadline,
            retry_after_max=settings.retry_after_max,
        )


Notify = Callable[[Attempt, "Target | None"], None]  # told of each failed attempt and what comes next


@dataclass
class Executor:
    catalog: Catalog
    limits: Limits = field(default_factory=Limits)
    env: Mapping[str, str] | None = None
    user: str | None = None
    on_failure: Notify | None = None
    sleep: Callable[[float], None] = time.sleep
    async_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep  # the same wait in complete_async / stream_async
    clock: Callable[[], float] = time.monotonic
    opener: Callable[[Endpoint], Adapter] = open_adapter  # the gateway passes one that reuses connections
    redact_cloud: bool = False  # sensitive values become placeholders for cloud providers (sensitive_policy=redact)
    credential_of: Callable[..., Any] = find_credential  # the gateway passes a cached one (CredentialCache)
    health: Any = None  # an r42.health.Board told of every attempt that reached a provider

    def body_for(self, target: Target, request: dict[str, Any]) -> tuple[dict[str, Any], Redaction | None]:
        """The request as this target gets it: its own model name, and redacted for a cloud
        provider when redaction is on (the Redaction puts the values back into the answer)."""
        body = {**request, "model": target.upstream}
        if target.provider.id == BUILTIN_LOCAL:
            from r42.localmodel import with_defaults  # temperature 0, max_tokens 256 unless the request sets them

            body = with_defaults(body)
        if target.provider.local and "max_tokens" not in body and "max_completion_tokens" not in body:
            # A local server generates until its context is full when no limit is given (8,192
            # tokens, minutes on a laptop, longer when a small model loops): give it a bound.
            body["max_tokens"] = (
                min(LOCAL_MAX_TOKENS, target.model.max_output or LOCAL_MAX_TOKENS) if target.model else LOCAL_MAX_TOKENS
            )
        if not self.redact_cloud or target.provider.local:
            return body, None
        messages, redaction = redact_messages(request.get("messages") or [])
        return ({**body, "messages": messages}, redaction) if redaction.by_placeholder else (body, None)

    # --- resolving candidates ------------------------------------------------------------------

    def target(self, name: str) -> Target:
        """A candidate by id or alias; an unknown model of a known provider is allowed as is."""
        target = self.catalog.resolve(name)
        if target is None or not target.upstream:
            known = ", ".join(sorted(self.catalog.providers))
            raise NoCandidateError(f"unknown model {name!r}", f"use provider/model with a provider among: {known}")
        return target

    def endpoint(self, target: Target, read_timeout: float | None = None) -> Endpoint:
        """Base URL and credential of the target's provider; ProviderError when it has none."""
        provider = target.provider
        env = os.environ if self.env is None else self.env
        base_url = base_url_of(provider, env)
        if base_url is None and provider.id == BUILTIN_LOCAL:
            base_url = _builtin_server()
        if base_url is None:
            setting = provider.base_url_env
            raise NotConfigured(f"no base URL for {provider.id} (set {setting})", f"set {setting}")
        key = None
        if provider.key_env:
            credential = self.credential_of(provider, env, self.user)
            if credential is None and not (provider.base_url_env and env.get(provider.base_url_env)):
                keys = " or ".join(provider.key_env)
                raise NotConfigured(f"no credential (set {keys})", f"set {keys}, or run r42 keys set {provider.id}")
            key = credential.secret if credential else None
        timeout = self.limits.first_byte_timeout if read_timeout is None else read_timeout
        return Endpoint(provider.id, provider.protocol, base_url, key, self.limits.connect_timeout, timeout)

    # --- running -------------------------------------------------------------------------------

    def complete(self, request: dict[str, Any], candidates: list[str]) -> Result:
        """The first successful answer, trying candidates best first."""
        run = Fallback(self, candidates)
        for target, adapter in run.tries():
            with _closing(adapter):
                body, redaction = self.body_for(target, request)
                try:
                    response = adapter.complete(body)
                except ProviderError as exc:
                    run.failed(target, exc)
                    continue
            return run.answered(target, response, redaction)
        raise run.all_failed()

    def stream(self, request: dict[str, Any], candidates: list[str]) -> "StreamRun":
        return StreamRun(self, request, candidates)

    # --- on an event loop (r42 serve): the same walk, awaiting the upstream --------------------

    def runs_async(self, candidates: list[str]) -> bool:
        """Can complete_async / stream_async serve these candidates? Only OpenAI-protocol
        providers qualify (the SDK adapters block), not the built-in model (starting it blocks),
        and not an endpoint behind an environment proxy (that one goes through httpx)."""
        from r42.providers.http11 import proxied

        env = os.environ if self.env is None else self.env
        for name in candidates[: self.limits.max_attempts]:
            try:
                provider = self.target(name).provider
            except R42Error:
                continue
            if provider.protocol != "openai" or provider.id == BUILTIN_LOCAL:
                return False
            url = base_url_of(provider, env)
            if url is not None and proxied(url):
                return False
        return True

    async def complete_async(self, request: dict[str, Any], candidates: list[str]) -> Result:
        """complete() on the running event loop; see runs_async() for which candidates qualify."""
        run = Fallback(self, candidates)
        for target, wait in run.steps():
            if wait:
                await self.async_sleep(wait)
            adapter = run.open(target, _async_adapter)
            if adapter is None:
                continue
            body, redaction = self.body_for(target, request)
            try:
                response = await adapter.complete(body)
            except ProviderError as exc:
                run.failed(target, exc)
                continue
            return run.answered(target, response, redaction)
        raise run.all_failed()

    def stream_async(self, request: dict[str, Any], candidates: list[str]) -> "AsyncStreamRun":
        return AsyncStreamRun(self, request, candidates)

    def observe(self, target: Target, attempt: Attempt, ttft_ms: int | None) -> None:
        """Tell the health board how an attempt that reached its provider ended."""
        if self.health is not None:
            from r42.health import Outcome, error_kind

            kind = "ok" if attempt.ok else error_kind(attempt.status, attempt.error)
            outcome = Outcome(
                wall_clock.now(), target.provider.id, target.id, attempt.ok, attempt.status, kind, attempt.ms, ttft_ms
            )
            self.health.record(outcome)

    def note_failure(self, attempt: Attempt, following: Target | None) -> None:
        if self.on_failure is not None:
            self.on_failure(attempt, following)


class StreamRun:
    """Iterate for the chunks of the answer; afterwards `.result` holds the response and route.

    Chunks of a candidate are held back until its first token, so that a failure before then
    moves on to the next candidate without the consumer seeing anything of the failed one.
    """

    def __init__(self, executor: Executor, request: dict[str, Any], candidates: list[str]) -> None:
        self.executor = executor
        self.request = request
        self.candidates = candidates
        self.result: Result | None = None
        self.model: str | None = None  # the model that is answering, once its first token came
        self.redaction: Redaction | None = None

    def __iter__(self) -> Generator[dict[str, Any], None, None]:
        run = Fallback(self.executor, self.candidates)
        for target, adapter in run.tries():
            with _closing(adapter):
                gate = self._gate(run, target)
                try:
                    for chunk in adapter.stream(gate.body):
                        yield from gate.feed(chunk)
                    yield from gate.end()
                except ProviderError as exc:
                    if self.model is not None:
                        raise self._broken(run, target, exc, gate.acc) from None
                    run.failed(target, exc)
                    continue
            self._finished(run, target, gate.acc)
            return
        raise run.all_failed()

    def _gate(self, run: "Fallback", target: Target) -> "_FirstToken":
        body, self.redaction = self.executor.body_for(target, self.request)
        return _FirstToken(self, run, target, body)

    def _finished(self, run: "Fallback", target: Target, acc: Accumulator) -> None:
        run.succeeded(target)
        self.result = Result(acc.result(), run.route(target, acc.usage, run.ttft_ms, redacted=self.redaction))

    def _broken(self, run: "Fallback", target: Target, exc: ProviderError, acc: Accumulator) -> StreamBrokenError:
        run.failed(target, exc, notify=False)
        route = run.route(target, acc.usage, run.ttft_ms)
        return StreamBrokenError(f"{target.id} failed after the answer had started: {exc}", route)


class AsyncStreamRun(StreamRun):
    """StreamRun on the running event loop: `async for chunk in run`."""

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        run = Fallback(self.executor, self.candidates)
        for target, wait in run.steps():
            if wait:
                await self.executor.async_sleep(wait)
            adapter = run.open(target, _async_adapter)
            if adapter is None:
                continue
            gate = self._gate(run, target)
            chunks = adapter.stream(gate.body)
            try:
                async for chunk in chunks:
                    for held in gate.feed(chunk):
                        yield held
                for held in gate.end():
                    yield held
            except ProviderError as exc:
                if self.model is not None:
                    raise self._broken(run, target, exc, gate.acc) from None
                run.failed(target, exc)
                continue
            finally:
                await chunks.aclose()  # releases the upstream connection when the consumer left early
            self._finished(run, target, gate.acc)
            return
        raise run.all_failed()


class _FirstToken:
    """One candidate's chunks, held back until its first token: a failure before then moves on
    to the next candidate without the consumer seeing anything of this one."""

    def __init__(self, stream: StreamRun, run: "Fallback", target: Target, body: dict[str, Any]) -> None:
        self.stream = stream
        self.run = run
        self.target = target
        self.body = body
        self.acc = Accumulator()
        self.held: list[dict[str, Any]] = []
        self.restorer = StreamRestorer(stream.redaction) if stream.redaction is not None else None

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        if self.restorer is not None:
            restore_chunk(chunk, self.restorer)
        self.acc.add(chunk)
        if self.stream.model is not None:
            return [chunk]
        self.held.append(chunk)
        return self._release() if chunk_has_token(chunk) else []

    def end(self) -> list[dict[str, Any]]:
        """A complete answer without any token (empty text) is still an answer."""
        return self._release() if self.stream.model is None else []

    def _release(self) -> list[dict[str, Any]]:
        self.stream.model = self.target.id
        self.run.first_token()
        held, self.held = self.held, []
        return held


def _async_adapter(endpoint: Endpoint) -> Any:
    from r42.providers.openai_compat import AsyncOpenAICompatAdapter

    return AsyncOpenAICompatAdapter(endpoint)


class Fallback:
    """The one retry and fallback policy, used for every upstream call (the executor's walks and
    the gateway's Anthropic pass-through): candidates best first, at most `max_attempts`
    attempts, an overall deadline, a short Retry-After waited out once (a long one moves on), a
    non-retryable failure stops the walk. It also keeps the attempts and timings of the route."""

    def __init__(self, executor: Executor, candidates: list[str]) -> None:
        self.x = executor
        self.limits = executor.limits
        self.candidates = candidates
        self.start = executor.clock()
        self.attempts: list[Attempt] = []
        self.stopped: str | None = None  # why the walk ended early
        self.retry_wait: float | None = None
        self.attempt_start = self.start
        self.ttft_ms: int | None = None
        self.attempt_ttft_ms: int | None = None  # the answering attempt's own time to first token
        self.upcoming: list[Target] = []
        self.opened = False  # did the last open() give an adapter?
        self.missing: list[str] = []  # what to set, for each attempt whose provider is not configured
        self.retry_after: float | None = None  # the shortest Retry-After of the failed attempts

    def remaining(self) -> float:
        return self.limits.deadline - (self.x.clock() - self.start)

    def leftover(self) -> Limits:
        """The limits that remain for the candidates after these (attempts and time used count)."""
        return replace(
            self.limits,
            max_attempts=max(1, self.limits.max_attempts - len(self.attempts)),
            deadline=max(self.remaining(), 0.001),
        )

    def tries(self, opener: Callable[[Endpoint], Any] | None = None) -> Iterator[tuple[Target, Any]]:
        """(target, what `opener` made of its endpoint: the executor's adapter by default) for each
        attempt to make, in order, within the limits."""
        for target, wait in self.steps():
            if wait:
                self.x.sleep(wait)  # a short Retry-After: wait it out, then try again
            adapter = self.open(target, opener or self.x.opener)
            if adapter is not None:
                yield target, adapter

    def steps(self) -> Iterator[tuple[Target, float]]:
        """(target, seconds to wait before trying it) for each attempt, in order. The consumer
        waits, then calls open(), which checks the attempt count and the deadline."""
        if not self.candidates:
            raise NoCandidateError("no candidate to run the prompt on", "see the ranking's excluded reasons")
        for index, name in enumerate(self.candidates):
            try:
                target = self.x.target(name)
            except R42Error as exc:
                self.attempts.append(Attempt(name, False, None, exc.message, 0))
                continue
            self.upcoming = [t for t in (self._peek(n) for n in self.candidates[index + 1 :]) if t][:1]
            wait, waited = 0.0, False
            while self.stopped is None:
                self.opened = False
                yield target, wait
                if not self.opened or self.retry_wait is None or waited:
                    break
                wait, waited = self.retry_wait, True
            if self.stopped is not None:
                return

    def open(self, target: Target, opener: Callable[[Endpoint], Any]) -> Any:
        """The adapter for this attempt, or None (stopped by the limits, or no endpoint)."""
        if not self._may_start():
            return None
        adapter = self._open(target, opener)
        self.opened = adapter is not None
        return adapter

    def _peek(self, name: str) -> Target | None:
        try:
            return self.x.target(name)
        except R42Error:
            return None

    def _may_start(self) -> bool:
        if len(self.attempts) >= self.limits.max_attempts:
            self.stopped = f"stopped after {len(self.attempts)} attempts (--max-attempts)"
            return False
        if self.remaining() <= 0:
            self.stopped = f"deadline of {self.limits.deadline:g}s reached"
            return False
        return True

    def _open(self, target: Target, opener: Callable[[Endpoint], Any]) -> Any:
        self.retry_wait = None
        self.attempt_start = self.x.clock()
        try:
            read_timeout = min(self.limits.first_byte_timeout, max(self.remaining(), 0.001))
            return opener(self.x.endpoint(target, read_timeout))
        except ProviderError as exc:
            if isinstance(exc, NotConfigured):
                self.missing.append(exc.hint)
            self.failed(target, exc)
        except R42Error as exc:  # e.g. the built-in model is not installed
            if isinstance(exc, NoCredentialsError):
                self.missing.append(exc.hint or exc.message)
            self.failed(target, ProviderError(None, exc.one_line(), retryable=True))
        return None

    def _ms(self) -> int:
        return int(round((self.x.clock() - self.attempt_start) * 1000))

    def first_token(self) -> None:
        self.ttft_ms = int(round((self.x.clock() - self.start) * 1000))
        self.attempt_ttft_ms = self._ms()

    def failed(self, target: Target, exc: ProviderError, notify: bool = True) -> None:
        attempt = Attempt(target.id, False, exc.status, exc.message, self._ms())
        self.attempts.append(attempt)
        if self.opened:  # it reached the provider (not a missing credential or base URL)
            self.x.observe(target, attempt, None)
        if exc.retry_after is not None:
            self.retry_after = min(
                exc.retry_after, self.retry_after if self.retry_after is not None else exc.retry_after
            )
        if not exc.retryable:
            self.stopped = f"{target.id} rejected the request (HTTP {exc.status}); other models would too"
        elif (
            exc.retry_after is not None
            and exc.retry_after <= self.limits.retry_after_max
            and exc.retry_after < self.remaining()
        ):
            self.retry_wait = exc.retry_after
        if notify:
            following = (
                None
                if self.stopped
                else (target if self.retry_wait is not None else (self.upcoming[0] if self.upcoming else None))
            )
            self.x.note_failure(attempt, following)

    def succeeded(self, target: Target) -> None:
        attempt = Attempt(target.id, True, 200, None, self._ms())
        self.attempts.append(attempt)
        self.x.observe(target, attempt, self.attempt_ttft_ms)

    def answered(self, target: Target, response: dict[str, Any], redaction: Redaction | None) -> Result:
        """The Result of a whole answer (sensitive values put back when they were redacted)."""
        self.succeeded(target)
        if redaction is not None:
            restore_response(response, redaction)
        return Result(response, self.route(target, response.get("usage"), ttft_ms=None, redacted=redaction))

    def route(
        self, target: Target, usage: dict[str, Any] | None, ttft_ms: int | None, redacted: Redaction | None = None
    ) -> dict[str, Any]:
        input_tokens, output_tokens = _tokens(usage)
        route: dict[str, Any] = {
            "model": target.id,
            "attempts": [a.as_dict() for a in self.attempts],
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
            "cost_usd": cost_of(target, input_tokens, output_tokens),
            "latency_ms": int(round((self.x.clock() - self.start) * 1000)),
            "ttft_ms": ttft_ms,
        }
        if redacted is not None:
            route["redacted"] = redacted.kinds()  # which kinds of values were replaced, never the values
        return route

    def all_failed(self) -> CandidatesFailed:
        tried = len(self.attempts)
        reason = f"; {self.stopped}" if self.stopped else ""
        if tried == 0:
            return CandidatesFailed(f"no attempt could be made{reason}", self.attempts)
        if len(self.missing) == tried:
            models = ", ".join(a.model for a in self.attempts)
            hint = "; ".join(dict.fromkeys(self.missing))
            return ProvidersMissing(f"no provider configured for {models}", self.attempts, hint)
        return CandidatesFailed(
            f"every candidate failed ({tried} attempt{'s' if tried != 1 else ''}{reason})",
            self.attempts,
            "see the attempts above; r42 rank shows the candidates",
            self.retry_after,
        )


def _tokens(usage: dict[str, Any] | None) -> tuple[int | None, int | None]:
    if not usage:
        return None, None
    return usage.get("prompt_tokens"), usage.get("completion_tokens")


def cost_of(target: Target, input_tokens: int | None, output_tokens: int | None) -> float | None:
    """USD from the provider's usage and the catalog's prices per million tokens; None if unknown."""
    price_in, price_out = target.prices
    if price_in is None or price_out is None or input_tokens is None or output_tokens is None:
        return None
    return round((input_tokens * price_in + output_tokens * price_out) / 1e6, 8)


def _builtin_server() -> str:
    from r42 import localmodel  # the llama.cpp server: started on first use, stopped at exit

    return localmodel.ensure_server()


class _closing:
    def __init__(self, adapter: Adapter) -> None:
        self.adapter = adapter

    def __enter__(self) -> Adapter:
        return self.adapter

    def __exit__(self, *exc: object) -> None:
        self.adapter.close()
