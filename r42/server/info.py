"""The endpoints around the answers: /health, the status page, /metrics, the model lists and the
two pipe stages over HTTP (/v1/classify = `r42 score`, /api/recommend = `r42 rank`)."""

from __future__ import annotations

import html
import time
from typing import TYPE_CHECKING, Any

from r42 import __version__ as VERSION
from r42.document import text_document
from r42.modes import MODES
from r42.server.call import Call, json_response, presented_key, read_json
from r42.server.validate import document
from r42.server.errors import GatewayError
from r42.server.http import Response

if TYPE_CHECKING:  # the gateway imports this module for its route table
    from r42.server.app import Gateway

ALIAS_IDS = ("auto", "r42", "route42", *(f"r42/{mode}" for mode in MODES))


def health(gw: Gateway, call: Call) -> Response:
    """Liveness and which providers are reachable (yes or no only: no key sources, no URLs).
    With ?verbose=1 also each provider's and model's circuit (state, attempts and failures in
    the window, error kinds, median latency and time to first token).
    OpenAPI: - -> Health"""
    router = gw.router_for(None)
    providers = {pid: router.availability.check(p).ok for pid, p in sorted(gw.router.catalog.providers.items())}
    body: dict[str, Any] = {
        "status": "ok",
        "version": VERSION,
        "uptime_s": round(time.time() - gw.started, 1),
        "providers": providers,
    }
    if (call.request.query.get("verbose") or ["0"])[0] not in ("0", "", "false", "no"):
        body["health"] = health_report(gw)
    return json_response(body)


def health_report(gw: Gateway) -> dict[str, Any]:
    """Circuits by provider and by model (empty until attempts were made); `enabled` false when
    the health setting is off."""
    board = gw.router.health
    circuits = board.circuits() if board is not None else {}
    out: dict[str, Any] = {"enabled": board is not None, "providers": {}, "models": {}}
    for key, summary in circuits.items():
        kind, _, ident = key.partition(":")
        out["providers" if kind == "provider" else "models"][ident] = summary
    return out


def metrics(gw: Gateway, call: Call) -> Response:
    """Prometheus text: requests, errors, latency and TTFT histograms, tokens, cost, and the
    provider and model health gauges.
    OpenAPI: - -> Text"""
    body = gw.metrics.render()
    if gw.router.health is not None:
        from r42.health import prometheus_lines

        body += ("\n".join(prometheus_lines(gw.router.health.circuits())) + "\n").encode()
    return Response(200, body, [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")])


def models(gw: Gateway, call: Call) -> Response:
    """Routing aliases, then the catalog models the caller can reach (their own keys count).
    Anthropic's list shape when the request carries anthropic-version.
    OpenAPI: - -> ModelList"""
    user = _optional_user(gw, call)
    router = gw.router_for(user)
    reachable = [
        m for m in gw.router.catalog.models if router.availability.check(gw.router.catalog.providers[m.provider]).ok
    ]
    if call.request.headers.get("anthropic-version"):
        data: list[dict[str, Any]] = [
            {
                "type": "model",
                "id": alias,
                "display_name": f"r42 routing ({alias})",
                "created_at": "1970-01-01T00:00:00Z",
            }
            for alias in ALIAS_IDS
        ]
        data += [
            {"type": "model", "id": m.id, "display_name": m.name, "created_at": "1970-01-01T00:00:00Z"}
            for m in reachable
        ]
        return json_response({"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]})
    data = [{"id": alias, "object": "model", "created": 0, "owned_by": "r42"} for alias in ALIAS_IDS]
    data += [{"id": m.id, "object": "model", "created": 0, "owned_by": m.provider} for m in reachable]
    return json_response({"object": "list", "data": data})


def _optional_user(gw: Gateway, call: Call) -> str | None:
    """The caller's user when a valid key came with this public request, else None."""
    if gw.no_auth or not presented_key(call.request):
        return None
    try:
        return gw.authenticate(call.request).user
    except GatewayError:
        return None


def _document(call: Call) -> dict[str, Any]:
    content_type = call.request.headers.get("content-type", "")
    if content_type.startswith("text/plain"):
        try:
            return text_document(call.request.body.decode("utf-8"))
        except UnicodeDecodeError:
            raise GatewayError(400, "the body is not UTF-8 text", "invalid_body") from None
    return document(read_json(call))


def classify(gw: Gateway, call: Call) -> Response:
    """`r42 score` over HTTP: the document with its `score` added.
    OpenAPI: Document -> ScoredDocument"""
    doc = _document(call)
    router = gw.router_for(call.caller.user)
    return json_response({**doc, "score": router.score(doc)})


def recommend(gw: Gateway, call: Call) -> Response:
    """`r42 rank` over HTTP: the document with `score` and `ranking` (mode from X-R42-Mode or the
    document's `mode`, X-R42-Force-Route local|cloud, ?top=N candidates). Providers and models whose
    circuit is open are left out with an `unhealthy: ...` reason.
    OpenAPI: Document -> RankedDocument"""
    doc = _document(call)
    headers = call.request.headers
    mode = headers.get("x-r42-mode") or doc.get("mode") or gw.settings.mode
    if mode not in MODES:
        raise GatewayError(400, f"mode must be one of {', '.join(MODES)}", "invalid_mode")
    force = (headers.get("x-r42-force-route") or headers.get("x-force-route") or "").lower() or None
    if force not in (None, "local", "cloud"):
        raise GatewayError(400, "X-R42-Force-Route must be local or cloud", "invalid_force_route")
    try:
        top = int((call.request.query.get("top") or ["10"])[0])
    except ValueError:
        raise GatewayError(400, "top must be a whole number", "invalid_top") from None
    router = gw.router_for(call.caller.user)
    score = router.score(doc)
    ranking = router.rank(score, router.constraints(mode=mode, force=force))
    return json_response({**doc, "score": score, "ranking": router.ranking_document(ranking, score, max(1, top))})


PAGE = (
    '<!doctype html><html><head><meta charset="utf-8"><title>r42 gateway</title>\n'
    "<style>body{{font:14px system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse}}"
    "td,th{{padding:2px 10px;text-align:left;border-bottom:1px solid #ddd}}</style>\n"
    "</head><body><h1>r42 gateway</h1>\n"
    "<p>version {version} &middot; up {uptime} &middot; {requests} requests &middot; {inflight} in flight</p>\n"
    "<p>OpenAI base URL: <code>/v1</code> &middot; Anthropic base URL: <code>/</code> &middot; "
    '<a href="/metrics">/metrics</a> &middot; <a href="/health">/health</a></p>\n'
    "<h2>Recent routing decisions</h2>\n"
    "<table><tr><th>time (UTC)</th><th>endpoint</th><th>status</th><th>model</th><th>mode</th>"
    "<th>complexity</th><th>domain</th><th>latency ms</th><th>ttft ms</th></tr>\n"
    "{rows}</table></body></html>"
)


def status_page(gw: Gateway, call: Call) -> Response:
    """Version, uptime, request count and the last decisions: no prompts, users or keys.
    OpenAPI: - -> Html"""
    rows = []
    for item in reversed(list(gw.recent)):
        cells = [
            time.strftime("%H:%M:%S", time.gmtime(item["time"])),
            item["endpoint"],
            item["status"],
            item["model"] or "",
            item["mode"] or "direct",
            "" if item["complexity"] is None else f"{item['complexity']:.2f}",
            item["domain"] or "",
            item["latency_ms"] if item["latency_ms"] is not None else "",
            item["ttft_ms"] if item["ttft_ms"] is not None else "",
        ]
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    uptime = int(time.time() - gw.started)
    page = PAGE.format(
        version=VERSION,
        uptime=f"{uptime // 3600}h {uptime % 3600 // 60}m {uptime % 60}s",
        requests=gw.metrics.total_requests,
        inflight=gw.metrics.inflight,
        rows="\n".join(rows) or '<tr><td colspan="9">none yet</td></tr>',
    )
    return Response(200, page.encode(), [("Content-Type", "text/html; charset=utf-8")])


def feedback(gw: Gateway, call: Call) -> Response:
    """`r42 feedback` over HTTP: {"request_id": X-R42-Request-Id of an answer, "verdict": "good" |
    "bad", "reason": "..."}. A key's user rates only their own answers (404 for anyone else's).
    OpenAPI: Feedback -> Object"""
    from r42.store import NotFoundError
    from r42.store.feedback import add_feedback

    doc = read_json(call)
    request_id, verdict, reason = doc.get("request_id"), doc.get("verdict"), doc.get("reason")
    if not isinstance(request_id, str) or verdict not in ("good", "bad"):
        raise GatewayError(400, 'send {"request_id": "...", "verdict": "good" or "bad"}', "invalid_feedback")
    try:
        entry = add_feedback(request_id, verdict, reason if isinstance(reason, str) else None, user=call.caller.user)
    except NotFoundError as exc:
        raise GatewayError(404, exc.message, "not_found") from None
    return json_response(entry)
