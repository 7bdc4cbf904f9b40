"""Fixtures for pyexec-bench's tests: the stub server, plain or closing."""
import os

import pytest

from benchutil import HERE, PYTHON, Server


@pytest.fixture
def stub():
    server = Server([PYTHON, os.path.join(HERE, "stub_server.py")])
    yield server
    server.stop()


@pytest.fixture
def closing_stub():
    server = Server([PYTHON, os.path.join(HERE, "stub_server.py"), "--close"])
    yield server
    server.stop()
