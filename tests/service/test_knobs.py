"""Every value the configuration table allows starts a service that serves:
the smallest and the largest of each knob, read from common/config.h (the one
copy of the table), and the limits a small configuration answers with."""
import os
import re
import socket

import pytest

from conftest import Server

CONFIG_H = os.path.join(os.path.dirname(__file__), "../../common/config.h")


def knobs():
    """[(flag, min, max)] of every integer knob in the table."""
    text = open(CONFIG_H).read()
    names = dict(re.findall(r"#define (\w+) (\d+)\n", text))
    rows = re.findall(r'X\(\s*\w+,\s*"([\w-]+)",\s*"\w+",\s*(-?\w+),\s*(-?\w+),\s*(-?\w+),', text)
    assert len(rows) >= 15, rows
    return [(flag, int(names.get(lo, lo)), int(names.get(hi, hi))) for flag, _, lo, hi in rows]


# Values this shared test machine cannot afford, and why.
TOO_BIG_HERE = {("workers", 256): "256 warm interpreters take more memory than the test machine spares"}


def extremes():
    for flag, lo, hi in knobs():
        for value in (lo, hi):
            marks = []
            if (flag, value) in TOO_BIG_HERE:
                marks = [pytest.mark.skip(reason=TOO_BIG_HERE[(flag, value)])]
            if (flag, value) == ("namespaces", 0) and os.geteuid() != 0:  # test_outlives.py
                marks = [pytest.mark.skip(reason="a normal user's pyexecd refuses --namespaces 0")]
            yield pytest.param(flag, value, marks=marks, id=f"{flag}={value}")


def port_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.mark.parametrize("flag,value", extremes())
def test_each_extreme_starts_and_serves(flag, value):
    if flag == "port" and value and not port_free(value):
        pytest.skip(f"port {value} is in use on this machine")
    workers = [] if flag == "workers" else ["--workers", "1"]
    s = Server(*workers, f"--{flag}", str(value))
    try:
        status, data = s.execute("def main():\n    return 41 + 1")
        if flag == "timeout-ms" and value < 100:  # a limit too short for any script
            assert status in (200, 400) and data.get("result", 42) == 42, data
            assert status == 200 or data["type"] == "timeout", data
        else:
            assert (status, data.get("result")) == (200, 42), data
    finally:
        assert s.stop() == 0


def test_a_small_memory_cap_serves_and_is_enforced(make_server):
    s = make_server("--workers", "1", "--memory-mb", "128")
    status, data = s.execute("def main():\n    return len(bytearray(64 << 20))")
    assert (status, data.get("result")) == (200, 64 << 20), data
    status, data = s.execute("def main():\n    return len(bytearray(200 << 20))")
    assert status == 400 and data["type"] == "memory_limit", data


def test_a_short_timeout_serves_and_is_enforced(make_server):
    s = make_server("--workers", "1", "--timeout-ms", "1000")
    status, data = s.execute("def main():\n    return 'quick'")
    assert (status, data.get("result")) == (200, "quick"), data
    status, data = s.execute("import time\ndef main():\n    time.sleep(5)\n    return 'late'")
    assert status == 400 and data["type"] == "timeout" and "1000 ms" in data["error"], data


def test_the_largest_body_never_overruns_a_worker(make_server):
    """A body under --body-kb whose input, re-encoded for the script, is over
    what a worker reads is refused with 413, and no worker dies of it."""
    s = make_server("--workers", "2", "--body-kb", "131072")
    # 6 bytes a number in the body, 23 ("1.0000000000000001e+300") in the frame
    n = (128 << 20) // 23 + 1000
    body = '{"script": "def main(x):\\n    return len(x)", "input": [' + ",".join(["1e300"] * n) + "]}"
    assert len(body) < 131072 << 10
    status, _, data = s.request("POST", "/execute", body, {"Content-Type": "application/json"}, timeout=120)
    assert status == 413 and data["type"] == "payload_too_large", data
    for _ in range(4):
        status, data = s.execute("def main():\n    return 'alive'")
        assert (status, data.get("result")) == (200, "alive"), data
    assert not [line for line in s.lines if line and "worker" in line and "exited" in line], s.lines


def test_a_budget_for_one_script_at_a_time_starts_with_no_queue(make_server):
    """A 1200 MiB limit at 100% overcommit admits one 700 MiB script at a
    time; with --queue 0 the start-up self-test's probes for the other
    workers wait for the first one's answer instead of being refused (which
    failed the self-test and kept the service from starting)."""
    s = make_server("--workers", "3", "--queue", "0", "--memory-limit-mb", "1200",
                    "--memory-overcommit", "100")
    status, _, health = s.request("GET", "/health")
    assert status == 200 and health["workers"]["total"] == 3, health
    assert health["memory"]["budget_mb"] < 2 * health["memory"]["script_limit_mb"], health
    status, data = s.execute("def main():\n    return 41 + 1")
    assert (status, data.get("result")) == (200, 42), data
