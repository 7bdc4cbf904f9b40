"""Every conformance case (tests/conformance/cases.json) against the real
server with its sandbox on; each answer to POST /execute must also match the
schema server/openapi.json gives for its status. A case that names server
flags gets a server started with them."""
import pytest

from conftest import Server, check_case, load_cases
from test_ops import check as check_schema

CASES = load_cases()
DEFAULT = ("--workers", "2")


@pytest.fixture(scope="module")
def servers():
    started = {}

    def get(flags):
        if flags not in started:
            started[flags] = Server(*flags)
        return started[flags]

    yield get
    for s in started.values():
        assert s.stop() == 0


@pytest.fixture(scope="module")
def spec(servers):
    status, _, doc = servers(DEFAULT).request("GET", "/openapi.json")
    assert status == 200
    return doc


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_case(servers, spec, case):
    status, _, body = check_case(servers(tuple(case.get("server", DEFAULT))), case)
    if (case.get("method", "POST"), case.get("path", "/execute")) == ("POST", "/execute"):
        check_schema(spec, "/execute", "POST", status, body)
