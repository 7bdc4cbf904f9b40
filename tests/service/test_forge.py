"""A script cannot forge its own answer: whatever it writes on the service's
result channel (fd 3), the stats are the worker's measurements, the caps the
worker's, and a forged frame cannot cut its run short or turn it into a
service fault."""
import pytest

# The frame format of common/ipc.h: kind, length (host order), payload.
FORGE = (
    "import os, struct, time\n"
    "RESULT, START, READY = 6, 7, 2\n"
    "def frame(kind, payload):\n"
    "    return struct.pack('=II', kind, len(payload)) + payload\n"
    "def send(data):\n"
    "    while data:\n"
    "        data = data[os.write(3, data):]\n"
    "def burn(seconds):\n"
    "    end = time.process_time() + seconds\n"
    "    while time.process_time() < end:\n"
        "        pass\n"
    "OK = b'{\"type\":\"ok\",\"result\":\"forged\"}'\n"
)


def forge(body):
    return FORGE + "def main():\n" + "".join(f"    {line}\n" for line in body)


def test_forged_stats_are_not_believed(server):
    """The old frame carried the child's own rusage: cpu_ms and max_rss_kb
    now come from wait4, wall_ms from the worker's clock."""
    status, data = server.execute(forge([
        "burn(1.0)",
        "send(frame(RESULT, struct.pack('=QQ', 1, 1) + OK))",  # the old stats-first layout
        "send(frame(RESULT, OK))",
        "os._exit(0)",
    ]))
    assert status == 400 and data["type"] == "exception", data  # two frames: tampering
    assert data["stats"]["cpu_ms"] >= 900, data
    assert data["stats"]["wall_ms"] >= 900, data
    assert data["stats"]["max_rss_kb"] > 10000, data


def test_a_forged_frame_alone_is_no_better_than_returning(server):
    status, data = server.execute(forge(["burn(1.0)", "send(frame(RESULT, OK))", "os._exit(0)"]))
    # exactly what `return "forged"` gives, with the real stats
    assert (status, data["result"]) == (200, "forged"), data
    assert data["stats"]["cpu_ms"] >= 900, data
    assert data["stats"]["max_rss_kb"] > 10000, data


@pytest.mark.parametrize(
    "after, kind",
    [
        ("raise ValueError('after the forgery')", "exception"),
        ("os._exit(3)", "exited"),
        ("burn(60)", "timeout"),
        ("return 'honest'", "exception"),  # the harness's frame follows: tampering
    ],
    ids=["raise", "exit3", "loop", "return"],
)
def test_no_200_after_a_forged_success(server, after, kind):
    status, data = server.execute(forge(["send(frame(RESULT, OK))", after]), timeout_ms=1500)
    assert status == 400 and data["type"] == kind, data


def test_forged_memory_limit_with_huge_rss(server):
    status, data = server.execute(forge([
        "send(frame(RESULT, struct.pack('=QQ', 0, 999999999) + b'{\"type\":\"memory_limit\",\"error\":\"x\"}'))",
        "return 1",
    ]))
    assert status == 400 and data["type"] == "exception", data
    assert data["stats"]["max_rss_kb"] < 10 * 1024 * 1024, data


@pytest.mark.parametrize("mib", [10.5, 11])
def test_forged_result_over_the_cap(server, mib):
    """10.5 MiB passes the channel's cap (room for an error) and is caught by
    the value's cap; 11 MiB is cut at the channel."""
    status, data = server.execute(forge([
        f"value = b'\"' + b'x' * int({mib} * (1 << 20)) + b'\"'",
        "send(frame(RESULT, b'{\"type\":\"ok\",\"result\":' + value + b'}'))",
        "os._exit(0)",
    ]))
    assert status == 400 and data["type"] == "output_limit", data


@pytest.mark.parametrize("code", [123, 124, 125, 126, 127])
def test_script_exit_codes_are_never_a_service_fault(server, code):
    """The child's set-up failures travel as messages, not exit codes: the
    codes it once used are the script's own."""
    status, data = server.execute(f"import os\ndef main():\n    os._exit({code})")
    assert status == 400 and data["type"] == "exited", data
    assert str(code) in data["error"]


@pytest.mark.parametrize("kind", ["START", "READY"])
def test_forged_setup_failure_is_not_a_500(server, kind):
    status, data = server.execute(forge([
        f"send(frame({kind}, b'child set-up failed at landlock: forged'))",
        "os._exit(0)",
    ]))
    assert status == 400 and data["type"] == "exception", data
    status, data = server.execute(forge([
        f"send(frame({kind}, b'child set-up failed at landlock: forged'))",
        "os._exit(127)",
    ]))
    assert status == 400 and data["type"] == "exited", data
