"""Operations: /metrics in Prometheus text format, /openapi.json checked
against the live server's answers."""
import json
import re

import jsonschema
import pytest

SAMPLE = re.compile(r'^([a-z_]+)(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? (-?[0-9.e+]+|\+Inf)$')


def scrape(server):
    c = server.conn()
    c.request("GET", "/metrics")
    r = c.getresponse()
    text = r.read().decode()
    c.close()
    assert r.status == 200
    assert r.getheader("Content-Type").startswith("text/plain; version=0.0.4")
    samples = {}
    for line in text.splitlines():
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) [a-z_]+ ", line), line
            continue
        m = SAMPLE.match(line)
        assert m, line
        samples[line.rsplit(" ", 1)[0]] = float(line.rsplit(" ", 1)[1])
    return samples


def test_metrics_count_outcomes_and_latency(make_server):
    s = make_server("--workers", "1")
    before = scrape(s)
    assert before["pyexec_workers"] == 1 and before["pyexec_workers_ready"] == 1
    assert s.execute("def main(): return 1")[0] == 200
    assert s.execute("def main(): return 1/0")[0] == 400
    assert s.execute("def main(): return 2")[0] == 200
    after = scrape(s)
    assert after['pyexec_requests_total{status="200",type="ok"}'] >= 2
    assert after['pyexec_requests_total{status="400",type="exception"}'] == 1
    assert after["pyexec_execution_seconds_count"] == 3
    assert after["pyexec_fork_seconds_count"] >= 2  # each reply reports its worker's last fork
    assert after["pyexec_queue_wait_seconds_count"] == 3
    buckets = [v for k, v in after.items() if k.startswith("pyexec_execution_seconds_bucket")]
    assert buckets == sorted(buckets) and buckets[-1] == 3  # cumulative, ending at +Inf
    assert after["pyexec_queue_depth"] == 0 and after["pyexec_worker_respawns_total"] == 0
    assert after["pyexec_connections"] >= 1


@pytest.fixture(scope="module")
def spec(server):
    status, headers, doc = server.request("GET", "/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.1")
    return doc


def check(spec, path, method, status, body):
    """Validate body against the schema the document gives for this answer."""
    op = spec["paths"][path][method.lower()]
    answer = op["responses"][str(status)]
    if "$ref" in answer:
        answer = spec["components"]["responses"][answer["$ref"].rsplit("/", 1)[1]]
    schema = dict(answer["content"]["application/json"]["schema"])
    schema["components"] = spec["components"]  # so "#/components/..." refs resolve
    jsonschema.Draft202012Validator(schema).validate(body)


def test_openapi_matches_live_answers(server, spec):
    cases = [
        ("/execute", {"script": "def main():\n    print('x')\n    return {'a': [1, 2]}"}),
        ("/execute", {"script": "def main():\n    return 1/0"}),
        ("/execute", {"script": "def main(:"}),
        ("/execute", {"script": "def main(): pass", "nope": 1}),
        ("/execute", {"script": "import os, signal\ndef main():\n    os.kill(os.getpid(), signal.SIGSEGV)"}),
        ("/execute", {"script": "def main(): return 1", "input": None, "timeout_ms": 5000, "memory_mb": 100}),
    ]
    for path, body in cases:
        status, _, answer = server.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        check(spec, path, "POST", status, answer)
    status, _, answer = server.request("POST", "/execute", "x", {"Content-Type": "text/plain"})
    check(spec, "/execute", "POST", status, answer)
    for path in ("/health", "/"):
        status, _, answer = server.request("GET", path)
        check(spec, path, "GET", status, answer)


def test_openapi_lists_exactly_the_served_endpoints(server, spec):
    for path, ops in spec["paths"].items():
        for method in ops:
            status, _, _ = server.request(method.upper(), path, "{}" if method == "post" else None,
                                          {"Content-Type": "application/json"})
            assert status != 404 and status != 405, (method, path)
    status, _, root = server.request("GET", "/")
    served = {e.split(" ", 1)[1] for e in root["endpoints"]}
    assert served == set(spec["paths"])
    assert root["version"] == spec["info"]["version"]


def test_request_schema_agrees_with_validation(server, spec):
    schema = dict(spec["components"]["schemas"]["ExecuteRequest"])
    validator = jsonschema.Draft202012Validator(schema)
    for body in ({"script": "def main(): return 1"}, {"script": ""}, {"script": "x", "extra": 1}, {"input": 1}):
        ok_by_schema = validator.is_valid(body)
        status, _, _ = server.request("POST", "/execute", json.dumps(body), {"Content-Type": "application/json"})
        assert ok_by_schema == (status == 200), (body, status)
