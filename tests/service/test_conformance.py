"""Every public conformance case, against the real server with its sandbox on."""
import pytest

from conftest import load_cases

CASES = load_cases()


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_case(server, case):
    request = dict(case["request"])
    if case["name"] == "infinite_loop_times_out":
        request["timeout_ms"] = 1000  # the cases allow lowering it to keep the suite fast
    status, body = server.execute(**request)
    assert status == case["status"], body
    for key, want in case["expect"].items():
        assert body[key] == want, (key, body)
    if status == 200:
        assert set(body) >= {"result", "stdout", "stderr", "stats"}
        assert set(body["stats"]) == {"wall_ms", "cpu_ms", "max_rss_kb"}
    else:
        assert isinstance(body["error"], str) and body["error"]
