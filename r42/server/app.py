"""The gateway: the routing table, authentication, per-key limits, request ids, the routing log.

`Gateway` is the handler the HTTP layer calls for every request: on a worker thread, or on the
event loop for endpoints with an `on_loop` form (chat completions). Either way it finds the
endpoint, checks the key (every endpoint but /health, / and the model lists needs one), applies the
key's limits, runs the endpoint and turns failures into the endpoint's error shape. The endpoints
themselves live in r42.server.chat (completions and messages) and r42.server.info (the rest).
"""

from __future__ import annotations

import itertools
import os
import random
import sys
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, replace
from typing import Any, Awaitable, Callable

from r42.availability import AvailabilityChecker, CredentialCache
from r42.config import Settings
from r42.errors import R42Error
from r42.executor import Executor, Limits
from r42.routing import Router
from r42.server import admin, chat, dashboard, info, me, openapi
from r42.server.call import JSON, Call, Caller, presented_key
from r42.server.errors import GatewayError, anthropic_body, from_core, openai_body
from r42.server.http import Channel, ClientGone, Request, Response, ServerLimits
from r42.server.metrics import Metrics

DEFAULT_MAX_OUTPUT = 8192  # tokens a reply may take when neither the request nor the catalog says
AVAILABILITY_TTL = 60.0  # seconds a user's provider availability is reused
CREDENTIAL_TTL = 5.0  # seconds a provider credential found for a user is reused


Endpoint = Callable[["Gateway", Call], Response | None]
LoopEndpoint = Callable[["Gateway", Call], Awaitable[Response | None]]


@dataclass(frozen=True)
class Route:
    handler: Endpoint  # run on a worker thread
    auth: bool = True
    flavour: str = "openai"
    on_loop: LoopEndpoint | None = None  # its coroutine form, run on the event loop
    admin: bool = False  # only admin keys (r42 keys create NAME --admin); 403 for others


_CHAT = Route(chat.chat_completions, on_loop=chat.chat_completions_on_loop)

# The route table: a new endpoint is a function in an endpoint module and one line here.
ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "/health"): Route(info.health, auth=False),
    ("GET", "/"): Route(info.status_page, auth=False),
    ("GET", "/metrics"): Route(info.metrics),
    ("GET", "/v1/models"): Route(info.models, auth=False),
    ("GET", "/api/models"): Route(info.models, auth=False),
    ("POST", "/v1/chat/completions"): _CHAT,
    ("POST", "/api/chat/completions"): _CHAT,
    ("POST", "/chat/completions"): _CHAT,
    ("POST", "/v1/messages"): Route(chat.messages, flavour="anthropic"),
    ("POST", "/v1/messages/count_tokens"): Route(chat.count_tokens, flavour="anthropic"),
    ("POST", "/v1/classify"): Route(info.classify),
    ("POST", "/api/recommend"): Route(info.recommend),
    ("POST", "/v1/feedback"): Route(info.feedback),
    # "{prefix}" and "{provider}" match one path segment (find_route)
    ("POST", "/v1/admin/keys"): Route(admin.admin_create_key, admin=True),
    ("GET", "/v1/admin/keys"): Route(admin.admin_list_keys, admin=True),
    ("DELETE", "/v1/admin/keys"): Route(admin.admin_revoke_key, admin=True),
    ("DELETE", "/v1/admin/keys/{prefix}"): Route(admin.admin_revoke_key, admin=True),
    ("PATCH", "/v1/admin/keys/{prefix}"): Route(admin.admin_update_key, admin=True),
    ("GET", "/v1/me/credentials"): Route(me.me_credentials),
    ("PUT", "/v1/me/credentials/{provider}"): Route(me.me_put_credential),
    ("DELETE", "/v1/me/credentials/{provider}"): Route(me.me_delete_credential),
    ("GET", "/v1/me/usage"): Route(me.me_usage),
    ("GET", "/v1/me/privacy-prompt"): Route(me.me_privacy_prompt),
    ("PUT", "/v1/me/privacy-prompt"): Route(me.me_put_privacy_prompt),
    ("DELETE", "/v1/me/privacy-prompt"): Route(me.me_delete_privacy_prompt),
    # the dashboard checks its own session cookie or key
    ("GET", "/dashboard"): Route(dashboard.dashboard_page, auth=False),
    ("GET", "/dashboard/data"): Route(dashboard.dashboard_data, auth=False),
    ("POST", "/dashboard/login"): Route(dashboard.dashboard_login, auth=False),
    ("POST", "/dashboard/logout"): Route(dashboard.dashboard_logout, auth=False),
    ("POST", "/dashboard/privacy-prompt"): Route(dashboard.dashboard_privacy_prompt, auth=False),
    # the API's own description, generated from this table (r42/server/openapi.py)
    ("GET", "/openapi.json"): Route(openapi.openapi_json, auth=False),
    ("GET", "/docs"): Route(openapi.docs_page, auth=False),
}
# Every /v1 route is served under /api too (/api/classify, /api/feedback, /api/messages, ...).
ROUTES.update(
    {(method, "/api" + path[3:]): route for (method, path), route in list(ROUTES.items()) if path.startswith("/v1/")}
)
# one trailing segment, under /v1 and its /api twin
PATH_PARAMETERS = {
    f"/{root}/{path}": name
    for root in ("v1", "api")
    for path, name in (("admin/keys", "{prefix}"), ("me/credentials", "{provider}"))
}


def route_path(path: str) -> str:
    """The ROUTES path for a request path: /v1/admin/keys/r42_AbCd1234 -> /v1/admin/keys/{prefix}."""
    head, _, tail = path.rpartition("/")
    parameter = PATH_PARAMETERS.get(head)
    return f"{head}/{parameter}" if parameter and tail else path


def find_route(method: str, path: str) -> Route | None:
    return ROUTES.get((method, route_path(path)))


Job = tuple[Callable[[], None], Callable[[], None] | None]


class LogWriter:
    """Writes routing-log rows and key usage on one background thread, so that no request waits
    for SQLite; `flush()` waits until everything queued so far is written.

    The jobs of a DELAY window are written together in one transaction (at most MAX_BATCH per
    commit): one commit for many requests instead of one each. The jobs queued while a batch is
    written wait for the next window too (unless the batch was full: a backlog is written at once),
    else a slow commit (PostgreSQL's) would leave the writer committing a request or two at a time,
    each commit with the rollup's cells, at several times the CPU per request. Queuing is a deque
    append, with no lock or wake-up per request (only the first job of a window sets the event). A
    crash loses at most one window. Should a batch fail, its jobs are run again one by one, so one
    bad row costs only itself."""

    MAX_BATCH = 256
    DELAY = 0.05  # seconds a window collects rows before they are committed

    def __init__(self) -> None:
        self.jobs: deque[Job] = deque()
        self.wake = threading.Event()
        self.queued = itertools.count(1)  # next() is atomic: the number of jobs queued so far
        self.last = 0  # the number of the latest job queued, which flush() waits for
        self.written = 0
        self.progress = threading.Condition()
        self.stopping = False
        self.warned = False
        self.thread = threading.Thread(target=self._run, name="r42-log", daemon=True)
        self.thread.start()

    def put(self, job: Callable[[], None], after: Callable[[], None] | None = None) -> None:
        """Queue `job` (SQLite writes); `after` runs once the job's rows are committed or have
        failed for good."""
        self.jobs.append((job, after))
        self.last = next(self.queued)
        if not self.wake.is_set():
            self.wake.set()

    def _run(self) -> None:
        from r42.store import close_thread_connection

        while True:
            self.wake.wait()
            if not self.stopping:
                self.window()
            self.wake.clear()  # a job queued from now on sets it again: the next window
            while self.jobs:
                batch: list[Job] = []
                while self.jobs and len(batch) < self.MAX_BATCH:
                    batch.append(self.jobs.popleft())
                self._write(batch)
                with self.progress:
                    self.written += len(batch)
                    self.progress.notify_all()
                if len(batch) < self.MAX_BATCH and not self.stopping:
                    break  # what came in meanwhile waits for its window
            if self.stopping:
                close_thread_connection()
                return

    def window(self) -> None:
        """Let more jobs come in before a batch is written."""
        time.sleep(self.DELAY)

    def _write(self, jobs: list[Job]) -> None:
        from r42.store.db import batch
        from r42.store.rollup import deferred

        try:
            if len(jobs) > 1:
                try:
                    with batch() as conn, deferred(conn):  # the rollup's cells once per batch, not per row
                        for job, _ in jobs:
                            job()
                    return
                except Exception:  # noqa: BLE001 - rolled back: write them one by one below
                    pass
            for job, _ in jobs:
                try:
                    job()
                except Exception as exc:  # noqa: BLE001 - the log must never take the gateway down
                    if not self.warned:
                        self.warned = True
                        print(f"r42: warning: could not write the routing log: {exc}", file=sys.stderr)
        finally:
            for _, after in jobs:
                if after is not None:
                    after()

    def flush(self, timeout: float = 30.0) -> None:
        target = self.last
        self.wake.set()
        with self.progress:
            self.progress.wait_for(lambda: self.written >= target, timeout)

    def close(self) -> None:
        self.stopping = True
        self.wake.set()
        self.thread.join(timeout=10)


class Gateway:
    """What the server holds for its whole life: settings, catalog, metrics, the log writer."""

    def __init__(self, settings: Settings, no_auth: bool = False, limits: ServerLimits | None = None) -> None:
        self.settings = settings
        self.no_auth = no_auth
        self.limits = limits or ServerLimits()
        self.routes = ROUTES  # what /openapi.json describes
        self.router = Router.from_settings(settings)
        if self.router.health is not None:  # provider health, shared through the store off the request path
            self.router.health.start(settings.health_sync)
        self.executor_limits = Limits.from_settings(settings)
        self.metrics = Metrics()
        self.recent: deque[dict[str, Any]] = deque(maxlen=50)
        self.log = LogWriter()
        self.credentials = CredentialCache(CREDENTIAL_TTL)
        self.started = time.time()
        self._routers: dict[str | None, tuple[float, Router]] = {}
        self.access_log: Callable[[str], None] | None = None  # told one line per request (r42 serve's access log)
        self._routers_lock = threading.Lock()
        from r42.webhooks import Dispatcher, Policy

        self.webhooks = Dispatcher(Policy.from_env()).start()  # events to operators' endpoints, off the request path
        self.shared = shared_state(settings)  # Redis counters and messages when redis_url is set

    # --- the handler the HTTP layer calls -----------------------------------------------------

    def __call__(self, request: Request, channel: Channel) -> Response | None:
        """On a worker thread."""
        call, route = self._begin(request, channel)
        try:
            self._allow(call, route)
            assert route is not None  # _allow answered 404/405 otherwise
            return self._done(call, route.handler(self, call))
        except (GatewayError, R42Error, ClientGone) as exc:
            return self._failed(call, exc)
        except Exception as exc:  # noqa: BLE001 - a handler bug: logged as an error with its type
            return self._crashed(call, exc)
        finally:
            self._end(call, route)

    def on_loop(self, request: Request, channel: Channel) -> Awaitable[Response | None] | None:
        """The HTTP layer asks first: endpoints with an `on_loop` form run on the event loop
        (chat completions: the upstream call is awaited, no thread hop); the rest go to a worker."""
        route = find_route(request.method, request.path)
        if route is None or route.on_loop is None:
            return None
        return self._serve_on_loop(request, channel, route.on_loop)

    async def _serve_on_loop(self, request: Request, channel: Channel, handler: LoopEndpoint) -> Response | None:
        call, route = self._begin(request, channel)
        try:
            self._allow(call, route)
            return self._done(call, await handler(self, call))
        except (GatewayError, R42Error, ClientGone) as exc:
            return self._failed(call, exc)
        except Exception as exc:  # noqa: BLE001 - a handler bug: logged as an error with its type
            return self._crashed(call, exc)
        finally:
            self._end(call, route)

    def _begin(self, request: Request, channel: Channel) -> tuple[Call, Route | None]:
        request.id = new_request_id()
        route = find_route(request.method, request.path)
        flavour = route.flavour if route else ("anthropic" if request.path.startswith("/v1/messages") else "openai")
        with self.metrics.lock:
            self.metrics.inflight += 1
        call = Call(request, channel, Caller(), route_path(request.path), flavour)  # /v1/admin/keys/{prefix}
        if route is not None and route.auth:
            call.record = self._record
        return call, route

    def _allow(self, call: Call, route: Route | None) -> None:
        """404/405 for an unknown endpoint; the key and its limits where the endpoint needs them."""
        if route is None:
            raise self._not_found(call.request)
        if route.auth:
            call.caller = self.authenticate(call.request)
            if route.admin:
                admin.require_admin(call.caller)
            self.admit(call)

    def _done(self, call: Call, response: Response | None) -> Response | None:
        if response is not None:
            call.status = response.status
            present = {name.lower() for name, _ in response.headers}  # handlers may have set them already
            if "x-r42-request-id" not in present:
                response.headers.append(("X-R42-Request-Id", call.id))
            if not any(name.startswith("x-ratelimit-") for name in present):
                response.headers.extend(call.caller.rate_headers)
        return response

    def _failed(self, call: Call, exc: Exception) -> Response:
        """The endpoint's error response (ClientGone is re-raised: there is no one to answer)."""
        if isinstance(exc, ClientGone):
            call.status, call.error_kind = 499, "client_closed"
            raise exc
        call.failed_upstream(exc)
        error = exc if isinstance(exc, GatewayError) else from_core(exc)  # type: ignore[arg-type]
        call.status, call.error_kind = error.status, error.code or f"http {error.status}"
        return self.error_response(call, error)

    def _crashed(self, call: Call, exc: Exception) -> Response:
        """A bug, not a bad request: a 500 whose routing-log row says `error` and the exception's
        type (never its text, which may quote the prompt); the HTTP layer finishes a started stream."""
        call.status, call.error_kind = 500, f"internal_error {type(exc).__name__}"
        if call.outcome != "error":
            call.ended("error", call.route, f"internal error ({type(exc).__name__})")
        print(
            f"r42: error: {call.request.method} {call.request.path} {call.id}: internal error ({type(exc).__name__})",
            file=sys.stderr,
        )
        if os.environ.get("R42_DEBUG"):
            traceback.print_exception(exc)
        if call.channel.started:
            raise exc
        return self.error_response(call, GatewayError(500, f"internal error ({type(exc).__name__})", "internal_error"))

    def _end(self, call: Call, route: Route | None) -> None:
        if call.caller.key is not None or self.no_auth:  # not for a request that failed authentication
            call.finish()
        with self.metrics.lock:
            self.metrics.inflight -= 1
        self.metrics.request(
            call.endpoint if route else "unknown",
            call.status,
            time.perf_counter() - call.request.started,
            call.error_kind,
        )
        if self.access_log is not None:
            self.access_log(access_line(call))

    def _not_found(self, request: Request) -> GatewayError:
        path = route_path(request.path)
        if any(known == path for _, known in ROUTES):
            allowed = ", ".join(sorted(m for m, p in ROUTES if p == path))
            return GatewayError(
                405, f"{request.method} is not allowed on {request.path}", "method_not_allowed", [("Allow", allowed)]
            )
        return GatewayError(404, f"no endpoint {request.path}", "not_found")

    def error_response(self, call: Call, error: GatewayError) -> Response:
        body = anthropic_body(error, call.id) if call.flavour == "anthropic" else openai_body(error, call.id)
        headers = [("Content-Type", JSON), ("X-R42-Request-Id", call.id), *error.headers, *call.caller.rate_headers]
        return Response(error.status, body, headers)

    def http_error(self, request: Request | None, status: int, message: str) -> Response:
        """Errors the HTTP layer finds before a handler runs (413, 431, 408, 503...)."""
        flavour = "anthropic" if request is not None and request.path.startswith("/v1/messages") else "openai"
        request_id = (request.id if request is not None and request.id else None) or new_request_id()
        error = GatewayError(status, message, f"http_{status}")
        body = anthropic_body(error, request_id) if flavour == "anthropic" else openai_body(error, request_id)
        self.metrics.request("http", status, 0.0, f"http {status}")
        return Response(status, body, [("Content-Type", JSON), ("X-R42-Request-Id", request_id)])

    def before_body(self, request: Request) -> Response | None:
        """Before `100 Continue` (on a worker): the 404/405 or 401 a request would get, so that it
        is refused before its body is uploaded; None lets the body come."""
        route = ROUTES.get(("GET" if request.method == "HEAD" else request.method, request.path))
        request.id = request.id or new_request_id()
        flavour = route.flavour if route else "openai"
        call = Call(request, None, Caller(), request.path, flavour)  # type: ignore[arg-type]
        try:
            if route is None:
                raise self._not_found(request)
            if route.auth:
                self.authenticate(request)
        except GatewayError as exc:
            self.metrics.request("http", exc.status, 0.0, exc.code or f"http {exc.status}")
            return self.error_response(call, exc)
        return None

    # --- auth and limits ----------------------------------------------------------------------

    def authenticate(self, request: Request) -> Caller:
        if self.no_auth:
            return Caller()
        key = presented_key(request)
        if not key:
            raise GatewayError(
                401,
                "missing gateway key: send it as `Authorization: Bearer r42_...` or `x-api-key: r42_...`",
                "missing_api_key",
                [("WWW-Authenticate", 'Bearer realm="r42"')],
            )
        from r42.store import authenticate_cached

        record = authenticate_cached(key)
        if record is None:
            raise GatewayError(
                401, "invalid or revoked gateway key", "invalid_api_key", [("WWW-Authenticate", 'Bearer realm="r42"')]
            )
        if record.expires is not None:
            admin.refuse_expired(record)
        return Caller(record.user, record)

    def admit(self, call: Call) -> None:
        """Per-key requests per minute and day and monthly budget (429 with Retry-After).

        A key with limits is checked and counted in the store in one transaction (store.admit), so
        the limits hold across threads, `--workers` processes and servers sharing the store; a
        refused request counts for nothing. A key with a budget also holds its request's worst-case
        cost once the request is planned (`reserve_budget`)."""
        record = call.caller.key
        if record is None:
            return
        from r42.store import admit, has_limits, spent_this_month

        if not has_limits(record):
            return
        if self.shared is not None:
            admission = self.shared_call(
                lambda: self.shared.admit(record, call.id, lambda: spent_this_month(record.id))
            )
        else:
            admission = admit(record)
        call.caller.rate_headers = rate_headers(record, admission.used, admission.hit)
        if admission.hit is not None:
            raise limit_error(admission.hit)
        call.usage_id, call.shared = admission.usage_id, self.shared is not None
        if record.budget_usd is not None:
            call.reserve = self.reserve_budget

    def shared_call(self, action: Callable[[], Any]) -> Any:
        """A call to the Redis counters; when Redis fails, 503 with Retry-After (never unlimited)."""
        from r42.store.shared import SharedError

        try:
            return action()
        except SharedError as exc:
            raise GatewayError(
                503, f"the limits cannot be checked now ({exc})", "limits_unavailable", [("Retry-After", "1")]
            ) from None

    def reserve_budget(self, call: Call, candidates: list[str], request: dict[str, Any]) -> None:
        """Hold the worst case of this request against the key's budget (429 when it is spent)."""
        from r42.store import reserve

        if call.caller.key is None or (call.usage_id is None and not call.shared):
            return
        tokens = int((call.score or {}).get("tokens") or 0)
        worst = self.worst_case_usd(candidates, request, tokens)
        if self.shared is not None and call.shared:
            key = call.caller.key
            hit = self.shared_call(lambda: self.shared.reserve(key, call.id, worst))
        else:
            assert call.usage_id is not None
            hit = reserve(call.caller.key, call.usage_id, worst)
        if hit is not None:
            call.usage_id, call.shared = None, False  # this request does not count
            raise limit_error(hit)
        call.held_usd = worst

    def worst_case_usd(self, candidates: list[str], request: dict[str, Any], prompt_tokens: int) -> float:
        """The most this request can cost on any of its candidates: the prompt's tokens in, and
        `max_tokens` (else the model's largest output) out, at the candidate's prices."""
        from r42.executor import cost_of

        asked = request.get("max_completion_tokens") or request.get("max_tokens")
        worst = 0.0
        for name in candidates:
            target = self.router.catalog.resolve(name)
            if target is None:
                continue
            model = target.model
            out = asked if isinstance(asked, int) and asked > 0 else None
            if out is None:
                out = (model.max_output or model.context or DEFAULT_MAX_OUTPUT) if model else DEFAULT_MAX_OUTPUT
            worst = max(worst, cost_of(target, prompt_tokens, out) or 0.0)
        return worst

    # --- per-user routing ----------------------------------------------------------------------

    def router_for(self, user: str | None) -> Router:
        """The router with this user's view of which providers are available (their own
        credentials count), refreshed every AVAILABILITY_TTL seconds."""
        now = time.monotonic()
        with self._routers_lock:
            cached = self._routers.get(user)
            if cached is not None and now - cached[0] < AVAILABILITY_TTL:
                return cached[1]
        builtin = bool(self.settings.serve_builtin_local)  # may clients start the built-in model?
        checker = AvailabilityChecker(self.settings.local_probe_timeout, user=user, builtin=builtin)
        router = replace(self.router, availability=checker, user=user)
        with self._routers_lock:
            self._routers[user] = (now, router)
        return router

    def router_warm(self, user: str | None) -> bool:
        """Is this user's router fresh? A cold one probes local servers and reads the store while
        ranking, which must not stall the event loop."""
        cached = self._routers.get(user)
        return cached is not None and time.monotonic() - cached[0] < AVAILABILITY_TTL - 1.0

    def executor_for(self, user: str | None, limits: Limits | None = None) -> Executor:
        from r42.server.upstream import pooled_open

        return Executor(
            self.router.catalog,
            limits or self.executor_limits,
            user=user,
            opener=pooled_open,
            redact_cloud=self.router.settings.sensitive_policy == "redact",
            credential_of=self.credentials,
            health=self.router.health,
        )

    # --- after each request ---------------------------------------------------------------------

    def _record(self, call: Call) -> None:
        """Queue the request's routing-log row and key usage (never the prompt or the answer);
        called once per request, by call.finish()."""
        route = call.route or {}
        status, score = call.outcome, call.score or {}
        usage = route.get("usage") or {}
        latency_ms = route.get("latency_ms") or int((time.perf_counter() - call.request.started) * 1000)
        row: dict[str, Any] = {
            "endpoint": call.endpoint,
            "status": status,
            "model": route.get("model"),
            "user": call.caller.user,
            "mode": call.mode,
            "complexity": score.get("complexity"),
            "domain": score.get("domain"),
            "attempts": route.get("attempts"),
            "input_tokens": usage.get("input_tokens"),
            "output_tokens": usage.get("output_tokens"),
            "cost_usd": route.get("cost_usd"),
            "latency_ms": latency_ms,
            "ttft_ms": route.get("ttft_ms"),
            "request_id": call.id,
            "key_id": call.caller.key.id if call.caller.key else None,
            "error": call.error,
            "retention_days": self.settings.log_retention_days,
            "at": time.time(),  # when the request ended, not when its batch is written
        }
        self.recent.append(
            {
                k: row[k]
                for k in (
                    "endpoint",
                    "status",
                    "model",
                    "mode",
                    "complexity",
                    "domain",
                    "latency_ms",
                    "ttft_ms",
                    "error",
                )
            }
            | {"time": row["at"]}
        )
        if route.get("model") and status == "ok":
            self.metrics.answered(call.endpoint, route["model"], route)
        key = call.caller.key
        cost = float(route.get("cost_usd") or 0.0)

        usage_id, shared, held = call.usage_id, call.shared, call.held_usd

        def write() -> None:
            from r42.store import has_limits, record_usage, settle, write_route
            from r42.webhooks import usage_recorded

            try:
                write_route(**row)
            finally:
                if key is not None and usage_id is not None:
                    settle(key.id, usage_id, cost, at=row["at"])  # admitted with limits: counted already
                elif key is not None and (shared or not has_limits(key)):
                    record_usage(key.id, cost, at=row["at"])
                if key is not None and shared and self.shared is not None:
                    self.shared.settle(key, held, cost)
                if key is not None and (usage_id is not None or shared or not has_limits(key)):
                    usage_recorded(key, row["at"])  # rate_limit.warning, budget.threshold

        self.log.put(write)

    def close(self) -> None:
        self.log.close()
        if self.router.health is not None:
            self.router.health.close()
        self.webhooks.close()


def access_line(call: Call) -> str:
    """`2026-12-02T15:04:05Z 200 POST /v1/chat/completions local/smollm2-135m-instruct 812 ms req_...`"""
    ms = int((time.perf_counter() - call.request.started) * 1000)
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return (
        f"{at} {call.status} {call.request.method} {call.request.path} "
        f"{(call.route or {}).get('model') or '-'} {ms} ms {call.id}"
    )


_ids = random.Random()  # seeded from os.urandom once; ids must be unique, not unguessable


def new_request_id() -> str:
    """req_ and 96 random bits: a Mersenne Twister draw, as os.urandom costs ~18 µs a call here."""
    return f"req_{_ids.getrandbits(96):024x}"


def shared_state(settings: Settings) -> Any:
    """The Redis counters when `redis_url` is set (r42.store.shared), listening for key changes."""
    url = getattr(settings, "redis_url", "")
    if not url:
        return None
    from r42.store import keys
    from r42.store.shared import Shared

    shared = Shared.connect(url)
    shared.subscribe("keys", lambda message: keys.forget_keys())
    return shared


def limit_error(hit: Any) -> GatewayError:
    """The 429 for a LimitHit, with Retry-After."""
    what = {"rpm": "requests per minute", "rpd": "requests per day", "budget": "USD per month"}[hit.limit]
    return GatewayError(
        429,
        f"this key's limit of {hit.value:g} {what} is reached; retry in {hit.retry_after_s} s",
        f"{hit.limit}_limit_exceeded",
        [("Retry-After", str(hit.retry_after_s))],
    )


def rate_headers(record: Any, used: Any, hit: Any) -> list[tuple[str, str]]:
    """X-RateLimit-* for the tightest request limit of the key."""
    now = time.time()
    for limit, count, oldest, window in (
        ("rpm", used.requests_minute, used.oldest_minute, 60),
        ("rpd", used.requests_day, used.oldest_day, 86_400),
    ):
        value = getattr(record, limit)
        if value is None:
            continue
        remaining = max(0, value - count - (0 if hit else 1))
        reset = max(1, int((oldest or now) + window - now) + 1)
        return [
            ("X-RateLimit-Limit", str(value)),
            ("X-RateLimit-Remaining", str(remaining)),
            ("X-RateLimit-Reset", str(reset)),
        ]
    return []
