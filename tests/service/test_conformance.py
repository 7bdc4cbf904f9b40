"""Every conformance case (tests/conformance/cases.json) against the real
server with its sandbox on. A case that names server flags gets a server
started with them."""
import pytest

from conftest import Server, check_case, load_cases

CASES = load_cases()


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


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_case(servers, case):
    check_case(servers(tuple(case.get("server", ("--workers", "2")))), case)
