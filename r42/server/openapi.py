"""GET /openapi.json (OpenAPI 3.1) and GET /docs, generated from the gateway's route table.

One source of truth: each operation comes from its entry in ROUTES (method, path, whether a key is
needed) and its handler's docstring. The docstring's first sentence is the summary, the rest the
description; `?name=` in it documents a query parameter, `{name}` in the path a path parameter,
and a line `OpenAPI: Request -> Response` names the request and response schemas (components
below; `-` for none). A route without such a line takes a JSON object in and out (POST, PUT,
PATCH) or gives one (GET, DELETE).

/docs is a small page of its own (inline script and style under a nonce, no CDN) that fetches
/openapi.json and lists the operations.
"""

from __future__ import annotations

import re
import secrets
from typing import TYPE_CHECKING, Any

import orjson

from r42 import __version__ as VERSION
from r42.privacy_judge import MAX_TEMPLATE_CHARS
from r42.server.call import Call
from r42.server.http import Response

if TYPE_CHECKING:
    from r42.server.app import Gateway, Route

SCHEMA_LINE = re.compile(r"^\s*OpenAPI:\s*([\w-]+)\s*->\s*([\w-]+)\s*$", re.MULTILINE)
QUERY = re.compile(r"[?&]([a-z_]+)=")
PATH_PARAMETER = re.compile(r"{(\w+)}")
_OBJECT = {"type": "object"}
_CIRCUITS = {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/Circuit"}}
_MESSAGES = {"type": "array", "items": {"type": "object", "properties": {"role": {"type": "string"}}}}

SCHEMAS: dict[str, dict[str, Any]] = {
    "Object": {"type": "object", "description": "A JSON object (see the description)."},
    "Error": {
        "type": "object",
        "description": "OpenAI's error shape (Anthropic's on /v1/messages: {type, error, request_id}).",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                    "code": {"type": ["string", "null"]},
                    "param": {"type": ["string", "null"]},
                },
            }
        },
    },
    "ChatRequest": {
        "type": "object",
        "required": ["messages"],
        "properties": {
            "model": {"type": "string", "description": "a catalog model, or auto / r42 / r42/<mode> to route"},
            "messages": _MESSAGES,
            "stream": {"type": "boolean"},
            "tools": {"type": "array"},
            "max_tokens": {"type": "integer"},
            "temperature": {"type": "number"},
        },
    },
    "ChatCompletion": {
        "type": "object",
        "description": "chat.completion, or a text/event-stream of chunks when stream is true",
        "properties": {
            "id": {"type": "string"},
            "object": {"type": "string"},
            "model": {"type": "string"},
            "choices": {"type": "array"},
            "usage": {"type": "object"},
        },
    },
    "MessagesRequest": {
        "type": "object",
        "required": ["messages"],
        "properties": {
            "model": {"type": "string"},
            "messages": _MESSAGES,
            "max_tokens": {"type": "integer"},
            "system": {},
            "stream": {"type": "boolean"},
            "tools": {"type": "array"},
        },
    },
    "Message": {
        "type": "object",
        "description": "Anthropic's message, or its event stream when stream is true",
        "properties": {
            "id": {"type": "string"},
            "type": {"type": "string"},
            "role": {"type": "string"},
            "content": {"type": "array"},
            "usage": {"type": "object"},
        },
    },
    "TokenCount": {"type": "object", "properties": {"input_tokens": {"type": "integer"}}},
    "Document": {
        "type": "object",
        "description": "A pipe document (docs/pipe.md): {messages} or {prompt}, or text/plain",
        "properties": {"messages": _MESSAGES, "prompt": {"type": "string"}, "mode": {"type": "string"}},
    },
    "ScoredDocument": {
        "type": "object",
        "properties": {
            "score": {
                "type": "object",
                "properties": {
                    "complexity": {"type": "number"},
                    "domain": {"type": "string"},
                    "tokens": {"type": "integer"},
                },
            }
        },
    },
    "RankedDocument": {
        "type": "object",
        "properties": {
            "score": _OBJECT,
            "ranking": {
                "type": "object",
                "properties": {
                    "mode": {"type": "string"},
                    "candidates": {"type": "array"},
                    "excluded": {
                        "type": "object",
                        "additionalProperties": {"type": "integer"},
                        "description": "models left out, counted by reason (unhealthy: ... for open circuits)",
                    },
                },
            },
        },
    },
    "Feedback": {
        "type": "object",
        "required": ["request_id", "verdict"],
        "properties": {
            "request_id": {"type": "string"},
            "verdict": {"enum": ["good", "bad"]},
            "reason": {"type": "string"},
        },
    },
    "ModelList": {"type": "object", "properties": {"object": {"type": "string"}, "data": {"type": "array"}}},
    "Health": {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"type": "string"},
            "version": {"type": "string"},
            "uptime_s": {"type": "number"},
            "providers": {"type": "object", "additionalProperties": {"type": "boolean"}},
            "health": {
                "type": "object",
                "description": "with ?verbose=1: circuits by provider and by model",
                "properties": {"enabled": {"type": "boolean"}, "providers": _CIRCUITS, "models": _CIRCUITS},
            },
        },
    },
    "Circuit": {
        "type": "object",
        "properties": {
            "state": {"enum": ["closed", "half_open", "open"]},
            "attempts": {"type": "integer"},
            "failures": {"type": "integer"},
            "consecutive_failures": {"type": "integer"},
            "errors": {"type": "object", "additionalProperties": {"type": "integer"}},
            "latency_ms_p50": {"type": ["number", "null"]},
            "ttft_ms_p50": {"type": ["number", "null"]},
            "reason": {"type": "string"},
            "probe_after": {"type": ["number", "null"]},
        },
    },
    "PrivacyPromptUpdate": {
        "type": "object",
        "required": ["template"],
        "additionalProperties": False,
        "properties": {
            "template": {
                "type": "string",
                "maxLength": MAX_TEMPLATE_CHARS,
                "description": "the judge's prompt; {prompt} (exactly once) is replaced by the judged prompt",
            }
        },
    },
    "PrivacyPrompt": {
        "type": "object",
        "properties": {
            "user": {"type": "string"},
            "template": {"type": "string", "description": "what the privacy judge asks for this user"},
            "source": {"enum": ["yours", "default"]},
            "default": {"type": "string", "description": "the privacy_judge_prompt setting, else r42's own"},
            "updated": {"type": ["string", "null"], "description": "when the user saved their own (UTC)"},
        },
    },
    "Text": {"type": "string"},
}
MEDIA = {"Text": "text/plain", "Html": "text/html", "Form": "application/x-www-form-urlencoded"}


def describe(handler: Any) -> tuple[str, str, str | None, str | None]:
    """(summary, description, request schema, response schema) from a handler's docstring."""
    doc = (handler.__doc__ or "").strip()
    found = SCHEMA_LINE.search(doc)
    request, response = (found.group(1), found.group(2)) if found else (None, None)
    text = " ".join(SCHEMA_LINE.sub("", doc).split())
    return summary_of(text), text, request, response


def summary_of(text: str) -> str:
    """The first sentence, without a leading "GET /path ...:" that repeats the route, at most 100 characters."""
    text = re.sub(r"^(GET|POST|PUT|PATCH|DELETE) /\S*( \{.*?\}| \(.*?\)| [^:{(]*)?:\s+", "", text)
    first = re.split(r"(?<=\.)\s", text, maxsplit=1)[0].rstrip(".")
    if len(first) > 100:
        first = first[:100].rsplit(" ", 1)[0].rstrip(",;:(") + "…"
    return first[:1].upper() + first[1:]


def operation(method: str, path: str, route: Route, ids: set[str]) -> dict[str, Any]:
    summary, description, request, response = describe(route.handler)
    op_id = re.sub(r"\W+", "_", f"{method.lower()}{path}").strip("_")
    while op_id in ids:
        op_id += "_"
    ids.add(op_id)
    module = route.handler.__module__.rsplit(".", 1)[-1]
    out: dict[str, Any] = {
        "operationId": op_id,
        "summary": summary or op_id,
        "description": description,
        "tags": [module],
    }
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in PATH_PARAMETER.findall(path)
    ]
    parameters += [
        {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
        for name in dict.fromkeys(QUERY.findall(description))
    ]
    if parameters:
        out["parameters"] = parameters
    if request is None and method in ("POST", "PUT", "PATCH"):
        request = "Object"
    if request not in (None, "-"):
        out["requestBody"] = {"required": True, "content": _content(request)}
    ok: dict[str, Any] = {"description": "OK"}
    if response is None:
        response = "Object"
    if response != "-":
        ok["content"] = _content(response)
    out["responses"] = {"200": ok, "default": {"description": "an error", "content": _content("Error")}}
    out["security"] = [{"bearer": []}, {"apiKey": []}] if route.auth else []
    if route.admin:
        out["description"] += " Admin keys only (403 for others)."
    return out


def _content(schema: str) -> dict[str, Any]:
    if schema in MEDIA:
        return {MEDIA[schema]: {"schema": {"type": "string"}}}
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}


def document(routes: dict[tuple[str, str], Route]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of these routes."""
    paths: dict[str, dict[str, Any]] = {}
    ids: set[str] = set()
    for (method, path), route in routes.items():
        paths.setdefault(path, {})[method.lower()] = operation(method, path, route, ids)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "r42 gateway",
            "version": VERSION,
            "description": "OpenAI- and Anthropic-compatible LLM router (r42 serve). Every /v1 route is "
            "also served under /api.",
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "a gateway key, r42_..."},
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            },
        },
    }


def openapi_json(gw: Gateway, call: Call) -> Response:
    """The OpenAPI 3.1 document of every endpoint, generated from the route table.
    OpenAPI: - -> Object"""
    body = orjson.dumps(document(gw.routes))
    return Response(200, body, [("Content-Type", "application/json"), ("Cache-Control", "no-cache")])


DOCS_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>r42 gateway API</title>
<style nonce="NONCE">body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;padding:16px;max-width:1100px;color:#111827}
h1{font-size:22px}details{border:1px solid #d1d5db;border-radius:6px;margin:6px 0;padding:6px 10px;background:#f9fafb}
summary{cursor:pointer}code{font-size:13px}.m{display:inline-block;min-width:64px;font-weight:600}
.GET{color:#047857}.POST{color:#1d4ed8}.PUT,.PATCH{color:#b45309}.DELETE{color:#b91c1c}.muted{color:#4b5563}
pre{background:#fff;border:1px solid #e5e7eb;padding:8px;overflow-x:auto}</style></head><body>
<h1>r42 gateway API</h1><p class="muted">Generated from <a href="/openapi.json">/openapi.json</a>
(OpenAPI 3.1). <span id="version"></span></p><div id="ops" role="list">loading…</div>
<script nonce="NONCE">
(function(){
function el(tag,text,cls){var e=document.createElement(tag);if(text)e.textContent=text;if(cls)e.className=cls;return e}
function ref(c){if(!c)return'-';var k=Object.keys(c)[0],s=c[k].schema||{};return(s.$ref||'').split('/').pop()||k}
fetch('/openapi.json').then(function(r){return r.json()}).then(function(spec){
var box=document.getElementById('ops');box.textContent='';
document.getElementById('version').textContent='version '+spec.info.version;
Object.keys(spec.paths).forEach(function(path){var item=spec.paths[path];
Object.keys(item).forEach(function(method){var op=item[method],d=el('details');d.setAttribute('role','listitem');
var s=el('summary');s.appendChild(el('span',method.toUpperCase(),'m '+method.toUpperCase()));
s.appendChild(el('code',path));s.appendChild(document.createTextNode(' '+op.summary));d.appendChild(s);
d.appendChild(el('p',op.description));
var p=(op.parameters||[]).map(function(x){return x.name+' ('+x.in+')'}).join(', ');
if(p)d.appendChild(el('p','Parameters: '+p));
if(op.requestBody)d.appendChild(el('p','Request body: '+ref(op.requestBody.content)));
d.appendChild(el('p','Response: '+ref(op.responses['200'].content)));
var key='Needs a gateway key (Authorization: Bearer r42_… or x-api-key)';
d.appendChild(el('p',op.security.length?key:'No key needed','muted'));
box.appendChild(d)})})
}).catch(function(e){document.getElementById('ops').textContent='could not load /openapi.json: '+e})})();
</script></body></html>"""


def docs_page(gw: Gateway, call: Call) -> Response:
    """A page that lists every endpoint from /openapi.json (self-contained: no CDN).
    OpenAPI: - -> Html"""
    nonce = secrets.token_urlsafe(16)
    csp = (
        f"default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; connect-src 'self';"
        " base-uri 'none'; frame-ancestors 'none'"
    )
    headers = [
        ("Content-Type", "text/html; charset=utf-8"),
        ("Content-Security-Policy", csp),
        ("X-Content-Type-Options", "nosniff"),
    ]
    return Response(200, DOCS_PAGE.replace("NONCE", nonce).encode(), headers)
