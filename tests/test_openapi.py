"""GET /openapi.json and /docs: generated from the route table, every route documented, valid OpenAPI 3.1."""

from __future__ import annotations

import re

import httpx
import orjson
import pytest
from openapi_spec_validator import validate

from r42.config import load_settings
from r42.server import serve_in_thread
from r42.server.app import ROUTES
from r42.server.openapi import SCHEMAS, describe, document


@pytest.fixture(scope="module")
def spec():
    return document(ROUTES)


def test_the_document_validates_as_openapi_3_1(spec):
    assert spec["openapi"].startswith("3.1")
    validate(spec)


def test_every_route_is_documented(spec):
    for (method, path), route in ROUTES.items():
        operation = spec["paths"].get(path, {}).get(method.lower())
        assert operation is not None, f"{method} {path} is missing"
        summary, _, request, response = describe(route.handler)
        assert summary, f"{method} {path}: its handler {route.handler.__name__} has no docstring"
        assert operation["summary"] == summary
        for name in (request, response):
            assert name in (None, "-", "Text", "Html", "Form") or name in SCHEMAS, f"{method} {path}: unknown {name}"
        assert (operation["security"] == []) is (not route.auth)
    documented = {(m.upper(), p) for p, item in spec["paths"].items() for m in item}
    assert documented == set(ROUTES)


def test_parameters_and_schemas_come_from_paths_and_docstrings(spec):
    revoke = spec["paths"]["/v1/admin/keys/{prefix}"]["delete"]
    assert revoke["parameters"][0] == {"name": "prefix", "in": "path", "required": True, "schema": {"type": "string"}}
    health = spec["paths"]["/health"]["get"]
    assert {"name": "verbose", "in": "query", "required": False, "schema": {"type": "string"}} in health["parameters"]
    assert health["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/Health")
    chat = spec["paths"]["/v1/chat/completions"]["post"]
    assert chat["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/ChatRequest")
    assert "OpenAPI:" not in chat["description"]
    ids = [op["operationId"] for item in spec["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


def test_served_document_and_self_contained_docs_page():
    with serve_in_thread(load_settings(), no_auth=False) as running:
        served = httpx.get(running.url + "/openapi.json")
        assert served.status_code == 200 and served.headers["content-type"].startswith("application/json")
        assert served.json() == orjson.loads(orjson.dumps(document(ROUTES)))
        assert "/docs" in served.json()["paths"] and "/openapi.json" in served.json()["paths"]
        page = httpx.get(running.url + "/docs")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "script-src 'nonce-" in page.headers["content-security-policy"]
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", page.text)  # nothing from another host
        assert "fetch('/openapi.json')" in page.text
