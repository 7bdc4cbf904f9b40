"""Faults survived: processes killed, children misbehaving, hostile clients.
After each, the pool is full again, the next request succeeds, and nothing is
left behind: no zombie, no leaked descriptor, no temp dir."""
import json
import os
import resource
import signal
import socket
import threading

import pytest

from conftest import Server, children_of, metric, temp_dirs, until

HOLD = "import threading\ndef main():\n    threading.Event().wait({secs})\n    return 'held'"


def tree(s):
    """{role: [(pid, state)]} for template, workers and children."""
    template = children_of(s.proc.pid)
    assert len(template) == 1, template
    workers = children_of(template[0][0])
    kids = [k for w, _ in workers for k in children_of(w)]
    return {"template": template, "workers": workers, "children": kids}


def settled_fd_count(s, worker):
    """The worker's open descriptors once it holds its spare child again (the
    spare's four pipes are forked after each reply), with the service idle.
    None when the test is not root: a worker is not dumpable, so only root may
    list its descriptors."""
    def settled():
        # the spare waits for its request (S); anything else is a retired
        # child still dying (R, D) or already dead (Z)
        states = [st for _, st in children_of(worker)]
        return states.count("S") == 1 and set(states) <= {"S", "Z"}

    # Every worker's spare has said READY (IPC_SPARE, sent once the worker has
    # closed the spare's ends of its pipes): a spare just forked may already
    # sleep (S) while its worker still holds those four descriptors.
    workers = len(tree(s)["workers"])
    until(lambda: metric(s, "pyexec_spare_children") == workers, "every worker's spare to be ready")
    until(settled, "the worker's spare child")
    return len(os.listdir(f"/proc/{worker}/fd")) if os.geteuid() == 0 else None


def healthy(s):
    """The service is back to normal and has left nothing behind."""
    def warm():
        status, _, h = s.request("GET", "/health")
        return status == 200 and h["workers"]["ready"] == h["workers"]["total"]

    until(warm, "every worker to be warm again")
    h = s.request("GET", "/health")[2]
    assert s.execute("def main(): return 'ok'")[1]["result"] == "ok"
    t = tree(s)
    assert "Z" not in [st for _, st in t["template"] + t["workers"]], t
    assert len(t["workers"]) == h["workers"]["total"]
    for w, _ in t["workers"]:
        # Children killed after their reply are reaped without blocking on
        # them, as they die; soon only the spare is left (and its temp dir).
        until(lambda: len(children_of(w)) == 1, f"worker {w} to reap its dead children")
        # Only the spare's temp dir is left (it is made before the spare is
        # forked), looked at where the worker sees it: inside its mount
        # namespace when there is one.
        until(lambda: len(temp_dirs(w)) == 1, f"worker {w} to remove its children's temp dirs")


@pytest.fixture
def s():
    server = Server("--workers", "2")
    yield server
    assert server.stop() == 0


def test_sigkill_template_mid_request():
    """The template's death takes its worker and the running child with it
    (PR_SET_PDEATHSIG); the request is retried once, on the worker of the
    restarted template, and succeeds. One worker, so the retry cannot land on
    a second worker that is dying too."""
    s = Server("--workers", "1")
    try:
        out = {}
        t = threading.Thread(target=lambda: out.setdefault("r", s.execute(HOLD.format(secs=1))))
        mark = len(s.lines)
        t.start()
        until(lambda: s.request("GET", "/health")[2]["workers"]["idle"] == 0, "the script to start")
        os.kill(tree(s)["template"][0][0], signal.SIGKILL)
        t.join()
        status, data = out["r"]
        assert (status, data.get("result")) == (200, "held"), data
        s.wait_line(r"worker 0 ready", start=mark)
        healthy(s)
    finally:
        assert s.stop() == 0


def test_sigkill_spare_child(s):
    killed = []
    for w, _ in tree(s)["workers"]:
        settled_fd_count(s, w)  # only its spare left: the self-test's child is reaped
        for child, _ in children_of(w):
            os.kill(child, signal.SIGKILL)
            killed.append((w, child))
    # until each is dead (a zombie its worker has not reaped yet)
    until(lambda: all(dict(children_of(w)).get(c) == "Z" for w, c in killed), "the spares to die")
    for i in range(4):
        status, data = s.execute(f"def main(): return {i}")
        assert (status, data.get("result")) == (200, i), data
    healthy(s)


@pytest.mark.parametrize(
    "script, kind",
    [
        ("import os, signal\ndef main():\n    os.kill(os.getpid(), signal.SIGSTOP)", "timeout"),
        ("import ctypes\ndef main():\n    ctypes.string_at(0)", "killed"),
        ("def main():\n    x = []\n    while True:\n        x.append(bytearray(1 << 24))", "memory_limit"),
        ("def main():\n    return [open('/dev/null') for _ in range(1000)]", "exception"),
        ("def main():\n    open('big', 'wb').write(b'x' * (64 << 20))", "exception"),
        ("import os\ndef main():\n    os.close(3)\n    return 1", "exited"),
        ("import os\ndef main():\n    os.write(3, b'\\xff' * 100000)\n    return 1", "exception"),
        ("import os\ndef main():\n    os.write(3, b'\\x06\\x00\\x00\\x00\\xff\\xff\\xff\\xff')\n    return 1", "exception"),
    ],
    ids=["sigstop", "segfault", "memory", "nofile", "fsize", "close_result", "garbage_result", "huge_frame_claim"],
)
def test_misbehaving_child(s, script, kind):
    workers = [w for w, _ in tree(s)["workers"]]
    fds = {w: settled_fd_count(s, w) for w in workers}
    status, data = s.execute(script, timeout_ms=3000, memory_mb=100)
    assert status == 400 and data["type"] == kind, data
    healthy(s)
    if os.geteuid() == 0:  # else the workers' descriptors cannot be listed
        for w in workers:
            assert settled_fd_count(s, w) == fds[w], "a worker leaked descriptors"


def test_child_closes_stdout_and_stderr(s):
    status, data = s.execute("import os\ndef main():\n    os.close(1)\n    os.close(2)\n    return 7")
    assert (status, data["result"]) == (200, 7)
    healthy(s)


def test_slowloris_is_cut_off():
    s = Server("--workers", "1", "--idle-timeout-ms", "300")
    try:
        with socket.create_connection(("127.0.0.1", s.port), timeout=10) as c:
            c.sendall(b"POST /execute HTTP/1.1\r\nHost: x\r\nContent-Le")
            assert c.recv(1024) == b""  # closed by the server, not by our timeout
        with socket.create_connection(("127.0.0.1", s.port), timeout=10) as c:
            c.sendall(b"POST /execute HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"scr")
            assert c.recv(1024) == b""
        healthy(s)
    finally:
        assert s.stop() == 0


def test_many_idle_connections_and_the_connection_cap():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    s = Server("--workers", "1", "--max-connections", "1100")
    idle = []
    try:
        for _ in range(1000):
            idle.append(socket.create_connection(("127.0.0.1", s.port), timeout=10))
        assert s.execute("def main(): return 'still serving'")[1]["result"] == "still serving"
        extra = [socket.create_connection(("127.0.0.1", s.port), timeout=10) for _ in range(150)]
        idle += extra
        refused = 0
        for c in extra:
            c.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            reply = c.recv(4096)
            if reply.startswith(b"HTTP/1.1 503"):
                assert json.loads(reply.partition(b"\r\n\r\n")[2])["type"] == "overloaded"
                assert c.recv(4096) == b""  # and closed
                refused += 1
            else:  # under the cap: served
                assert reply.startswith(b"HTTP/1.1 200"), reply
        assert refused >= 50  # 1,150 open, a cap of 1,100
    finally:
        for c in idle:
            c.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    healthy(s)
    assert s.stop() == 0


def test_a_worker_lost_while_out_of_descriptors_comes_back():
    """Client connections take every descriptor the acceptor may open; a
    worker that dies then cannot be given a new channel. Once descriptors are
    free again it is asked for again: the pool is never left a worker short
    for good."""
    s = Server("--workers", "2", "--idle-timeout-ms", "600000", wrap=("prlimit", "--nofile=256:256", "--"))  # the scripts' own limit is 256
    try:
        idle = []
        try:
            while True:  # until the acceptor can take no more (it then closes new ones unanswered)
                c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
                c.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                try:
                    answered = c.recv(4096).startswith(b"HTTP/1.1 ")
                except (ConnectionResetError, socket.timeout):
                    answered = False
                if not answered:
                    c.close()
                    break
                idle.append(c)
                assert len(idle) < 256, "the acceptor never ran out of descriptors"
            mark = len(s.lines)
            os.kill(tree(s)["workers"][0][0], signal.SIGKILL)
            s.wait_line(r"(socketpair|no channel for worker \d+): Too many open files", start=mark)
        finally:
            for c in idle:
                c.close()
        until(lambda: s.request("GET", "/health")[2]["workers"]["ready"] == 2, "the lost worker's replacement", 30)
        healthy(s)
    finally:
        assert s.stop() == 0


def nofile_limits(pid):
    """(soft, hard) RLIMIT_NOFILE of a process, from /proc/PID/limits."""
    with open(f"/proc/{pid}/limits") as f:
        line = [l for l in f if l.startswith("Max open files")][0]
    return tuple(int(v) for v in line.split()[3:5])


def test_acceptor_raises_its_descriptor_limit():
    """Started with a soft RLIMIT_NOFILE below --max-connections, the
    acceptor raises it to the hard limit, and says so when even that is below
    what --max-connections and the workers need; a script's own limit is the
    sandbox's, whatever the service was started with."""
    s = Server("--workers", "1", wrap=("prlimit", "--nofile=256:1024", "--"))
    try:
        assert nofile_limits(s.proc.pid) == (1024, 1024)
        s.wait_line(r"at most 1024 open descriptors \(RLIMIT_NOFILE\), below the 1057 that --max-connections 1024 and 1 workers need")
        status, data = s.execute("import resource\ndef main(): return resource.getrlimit(resource.RLIMIT_NOFILE)")
        assert (status, data["result"]) == (200, [256, 256]), data
    finally:
        assert s.stop() == 0


def test_a_low_hard_descriptor_limit_still_serves():
    """Started with a hard RLIMIT_NOFILE below the sandbox's 256, the service
    still starts and serves: a script gets the lower limit, never a set-up
    failure (a user namespace may not raise a hard limit)."""
    s = Server("--workers", "1", wrap=("prlimit", "--nofile=100:100", "--"))
    try:
        status, data = s.execute("import resource\ndef main(): return resource.getrlimit(resource.RLIMIT_NOFILE)")
        assert (status, data["result"]) == (200, [100, 100]), data
    finally:
        assert s.stop() == 0


def test_temp_dir_cap_without_a_tmpfs():
    """Without namespaces (--namespaces 0: as where the host grants no mount
    namespace), there is no tmpfs of --tmp-kb: the worker measures the temp
    dir instead."""
    if os.geteuid() != 0:
        pytest.skip("a normal user's pyexecd refuses --namespaces 0")
    s = Server("--workers", "1", "--tmp-kb", "4096", "--namespaces", "0")
    try:
        assert s.request("GET", "/health")[2]["sandbox"]["namespaces"] == []
        for files in (256, 16):  # caught while writing; caught by the last look
            script = f"def main():\n    for i in range({files}):\n        open(f'f{{i}}', 'wb').write(b'x' * (1 << 20))\n    return 'wrote'"
            status, data = s.execute(script)
            assert status == 400 and data["type"] == "killed", data
            assert "temp dir" in data["error"]
        status, data = s.execute("def main():\n    open('small', 'wb').write(b'x' * (1 << 20))\n    return 'ok'")
        assert (status, data["result"]) == (200, "ok")
    finally:
        assert s.stop() == 0
