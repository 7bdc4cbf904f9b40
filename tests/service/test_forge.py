"""A script cannot forge its own answer: whatever it writes on the service's
result channel (fd 3), the stats are the worker's measurements (the kernel's
numbers), the caps the worker's, and a forged frame cannot turn its run into a
service fault. A forged frame ends the run, as returning that value then
would: the child is killed and leaves nothing running."""
import os

import pytest

from conftest import Server, children_of, temp_dirs, until, worker_pids

# Long enough for seconds of CPU on a machine shared with much else; a server
# started elsewhere (the container test) is asked for its default instead.
LONG_MS = 120000


@pytest.fixture(scope="module")
def server():
    s = Server("--workers", "2", "--timeout-ms", str(LONG_MS), "--cpu-ms", str(LONG_MS))
    s.long_ms = LONG_MS
    yield s
    assert s.stop() == 0


def run(server, body):
    """Run forge(body) with as long a deadline as the server allows."""
    long_ms = getattr(server, "long_ms", None)
    if long_ms is None:
        return server.execute(forge(body))
    return server.execute(forge(body), timeout_ms=long_ms, timeout=long_ms / 1000 + 30)

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
    now come from the kernel, wall_ms from the worker's clock."""
    status, data = run(server, [
        "burn(3.0)",
        "send(frame(RESULT, struct.pack('=QQ', 1, 1) + OK))",  # the old stats-first layout
        "send(frame(RESULT, OK))",
        "os._exit(0)",
    ])
    assert status == 400 and data["type"] == "exception", data  # not a record: tampering
    assert data["stats"]["cpu_ms"] >= 3000, data
    assert data["stats"]["wall_ms"] >= 3000, data
    assert data["stats"]["max_rss_kb"] > 10000, data


def test_a_forged_frame_alone_is_no_better_than_returning(server):
    status, data = run(server, ["burn(1.0)", "send(frame(RESULT, OK))", "os._exit(0)"])
    # exactly what `return "forged"` gives, with the real stats
    assert (status, data["result"]) == (200, "forged"), data
    assert data["stats"]["cpu_ms"] >= 900, data
    assert data["stats"]["max_rss_kb"] > 10000, data


@pytest.mark.parametrize(
    "after",
    [
        "raise ValueError('after the forgery')",
        "os._exit(3)",
        "burn(60)",
        "return 'honest'",
    ],
    ids=["raise", "exit3", "loop", "return"],
)
def test_a_forged_success_ends_the_run(server, after):
    """The script chose to stop at its frame: answered with the forged value
    (what returning it then gives), whatever it meant to do next."""
    status, data = run(server, ["send(frame(RESULT, OK))", after])
    assert (status, data["result"]) == (200, "forged"), data
    assert data["stats"]["wall_ms"] < 14000, data  # not the 60 s loop's



def test_a_forged_frame_leaves_nothing_running(server):
    """Threads burning CPU and writing files after the frame: the child is
    killed at the frame, reaped after the reply, and its temp dir removed."""
    status, data = run(server, [
        "import threading",
        "def spin(n):",
        "    while True:",
        "        open(f'spin-{n}', 'w').write('x' * 4096)",
        "for n in range(2):",
        "    threading.Thread(target=spin, args=(n,), daemon=True).start()",
        "send(frame(RESULT, OK))",
        "burn(60)",
    ])
    assert (status, data["result"]) == (200, "forged"), data
    assert data["stats"]["wall_ms"] < 50000, data

    def settled():
        # each worker's spare alone (no script left running, not even as a
        # zombie), and the temp dir the threads wrote in gone
        return all(
            len(children_of(w)) == 1
            and not any(os.path.exists(os.path.join(d, "spin-0")) for d in temp_dirs(w))
            for w in worker_pids(server)
        )

    until(settled, "the killed child to be reaped and its temp dir removed", 60)


def test_stats_count_every_thread(server):
    """cpu_ms is the process's CPU clock: every thread's, exited ones too."""
    status, data = run(server, [
        "import threading",
        "def spin():",
        "    end = time.thread_time() + 1.0",
        "    while time.thread_time() < end:",
        "        pass",
        "ts = [threading.Thread(target=spin) for _ in range(2)]",
        "[t.start() for t in ts]",
        "[t.join() for t in ts]",
        "send(frame(RESULT, OK))",
        "burn(60)",
    ])
    assert (status, data["result"]) == (200, "forged"), data
    assert data["stats"]["cpu_ms"] >= 2000, data


def test_peak_rss_is_the_kernels(server):
    """200 MB touched and freed before a forged frame that claims 1 KiB: the
    high-water mark is the kernel's."""
    status, data = run(server, [
        "big = b'\\x01' * (200 << 20)",
        "del big",
        "send(frame(RESULT, b'{\"type\":\"ok\",\"result\":{\"max_rss_kb\":1}}'))",
        "burn(60)",
    ])
    assert (status, data["result"]) == (200, {"max_rss_kb": 1}), data
    assert data["stats"]["max_rss_kb"] >= 200 * 1024, data


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
    assert status == 400 and data["type"] == "exception", data  # the frame ended the run
