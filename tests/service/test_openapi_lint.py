"""server/openapi.json keeps what client generators and Redocly's recommended
rules need: an operationId on every operation (unique: generated clients name
their methods after it), a 4xx answer on every operation, servers, and the
optional bearer scheme (Cloud Run's identity token). Reads the file; no
server needed."""
import json
import os

import pytest

DOC = os.path.join(os.path.dirname(__file__), "../../server/openapi.json")
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


@pytest.fixture(scope="module")
def doc():
    with open(DOC) as f:
        return json.load(f)


def operations(doc):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield path, method, op


def test_every_operation_has_a_unique_operation_id(doc):
    ids = [op.get("operationId") for _, _, op in operations(doc)]
    assert all(ids), [(p, m) for p, m, op in operations(doc) if not op.get("operationId")]
    assert len(set(ids)) == len(ids)


def test_every_operation_has_a_summary_and_a_4xx(doc):
    for path, method, op in operations(doc):
        assert op.get("summary"), (path, method)
        codes = list(op["responses"])
        assert any(c.startswith("2") for c in codes), (path, method)
        assert any(c.startswith("4") for c in codes), (path, method, codes)


def test_servers_present(doc):
    assert doc["servers"] and all(s["url"] for s in doc["servers"])
    for s in doc["servers"]:
        assert not s["url"].endswith("/") and "example.com" not in s["url"]


def test_bearer_scheme_declared_and_optional(doc):
    schemes = doc["components"]["securitySchemes"]
    assert any(s["type"] == "http" and s["scheme"] == "bearer" for s in schemes.values())
    # Global security lists {} too: a token is accepted, never required by pyexec.
    assert {} in doc["security"]
    for requirement in doc["security"]:
        assert set(requirement) <= set(schemes)


def test_every_ref_resolves(doc):
    def refs(node):
        if isinstance(node, dict):
            if "$ref" in node:
                yield node["$ref"]
            for v in node.values():
                yield from refs(v)
        elif isinstance(node, list):
            for v in node:
                yield from refs(v)

    used = set(refs(doc))
    for ref in used:
        node = doc
        for part in ref.lstrip("#/").split("/"):
            node = node[part]
    # No component defined and never used (Redocly: no-unused-components).
    for kind, items in doc["components"].items():
        if kind == "securitySchemes":
            continue
        for name in items:
            assert f"#/components/{kind}/{name}" in used, f"unused {kind}/{name}"
