"""OOM ordering in a memory-limited cgroup: several memory-hungry scripts at
once in a pyexecd whose cgroup holds less than their limits sum to. The kernel
must kill scripts (answered memory_limit), never the acceptor, the template or
a worker, and every request gets its answer.

Needs root and a writable memory cgroup (v2 with the memory controller, or
v1's memory hierarchy); skipped otherwise. The cgroup is made here and removed
afterwards; pyexecd is moved into it by a shell that writes its own pid into
cgroup.procs and then execs pyexecd, so every process it forks is inside.
"""
import os
import threading
import time

import pytest

from conftest import Server

LIMIT_MB = 512  # Cloud Run's default instance size
HOG = ("def main():\n    keep = []\n    while True:\n"
       "        keep.append(bytearray(8 << 20))\n")


def memory_cgroup_parent():
    """(kind, dir under which a memory cgroup can be made) or None."""
    if os.geteuid() != 0:
        return None
    v2 = "/sys/fs/cgroup"
    try:
        with open(os.path.join(v2, "cgroup.subtree_control")) as f:
            if "memory" in f.read().split():
                return "v2", v2
    except OSError:
        pass
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if "memory" in controllers.split(","):
                d = "/sys/fs/cgroup/memory" + path.rstrip("/")
                if os.access(os.path.join(d, "cgroup.procs"), os.W_OK):
                    return "v1", d
    return None


@pytest.fixture
def cgroup():
    found = memory_cgroup_parent()
    if not found:
        pytest.skip("needs root and a writable memory cgroup (v2 memory controller or v1)")
    kind, parent = found
    path = os.path.join(parent, f"pyexec-test-{os.getpid()}")
    os.mkdir(path)
    limit = "memory.max" if kind == "v2" else "memory.limit_in_bytes"
    with open(os.path.join(path, limit), "w") as f:
        f.write(str(LIMIT_MB << 20))
    if kind == "v2":
        with open(os.path.join(path, "memory.swap.max"), "w") as f:
            f.write("0")
    elif os.path.exists(os.path.join(path, "memory.memsw.limit_in_bytes")):
        with open(os.path.join(path, "memory.memsw.limit_in_bytes"), "w") as f:
            f.write(str(LIMIT_MB << 20))
    yield kind, path
    deadline = time.monotonic() + 30
    while True:  # the last processes may still be exiting
        try:
            os.rmdir(path)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def oom_kills(kind, path):
    name = "memory.events" if kind == "v2" else "memory.oom_control"
    with open(os.path.join(path, name)) as f:
        for line in f:
            key, value = line.split()
            if key == "oom_kill":
                return int(value)
    return 0


def test_scripts_are_killed_never_the_service(cgroup):
    kind, path = cgroup
    wrap = ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', path]
    s = Server("--timeout-ms", "20000", wrap=wrap)
    try:
        with open(os.path.join(path, "cgroup.procs")) as f:
            assert str(s.proc.pid) in f.read().split()
        # The budget saw the cgroup's limit and lowered the per-script limit.
        status, _, health = s.request("GET", "/health")
        assert status == 200
        mem = health["memory"]
        assert mem["limit_mb"] == LIMIT_MB and mem["source"].startswith("cgroup")
        assert mem["script_limit_mb"] < LIMIT_MB
        # Enough at once that their limits sum to far more than the cgroup has.
        n = min(health["workers"]["total"], mem["budget_mb"] // mem["script_limit_mb"])
        assert n * mem["script_limit_mb"] > LIMIT_MB
        # The template (the acceptor's child) and the workers (the template's).
        tree = s.descendants()
        template = {pid for pid, ppid, _ in tree if ppid == s.proc.pid}
        service = {pid: start for pid, ppid, start in tree
                   if pid in template or ppid in template}
        before = oom_kills(kind, path)

        answers = [None] * n

        def one(i):
            answers[i] = s.execute(HOG, timeout=120)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(150)
        assert all(a is not None for a in answers), answers
        assert oom_kills(kind, path) > before, "the cgroup's OOM killer never ran"
        for status, body in answers:
            assert (status, body["type"]) == (400, "memory_limit"), body
        # The acceptor, template and every worker are the same processes as before.
        assert s.proc.poll() is None
        now = {pid: start for pid, _, start in s.descendants()}
        lost = [pid for pid, start in service.items() if now.get(pid) != start]
        assert not lost, f"service processes gone: {lost}"
        assert s.execute("def main():\n    return 7")[1]["result"] == 7
    finally:
        assert s.stop() == 0

