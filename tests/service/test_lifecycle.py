"""The process tree under load and faults: isolation between requests,
overload, a worker killed mid-request, and shutdown."""
import errno
import glob
import json
import os
import signal
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import (AS_USER, Client, Unready, all_temp_dirs, children_of, metric, proc_stat,
                      scratch, sealed, temp_dirs, until, wait_for_temp_file, worker_pids)

# Marks its temp dir as running, then waits until the test drops a file named
# "go" into that dir (the test sees it through the worker's root): the test,
# not a clock, decides when it ends.
UNTIL_GO = (
    "import os, time\n"
    "def main():\n"
    "    open('running', 'w').close()\n"
    "    for _ in range(6000):\n"
    "        if os.path.exists('go'):\n"
    "            return 'done'\n"
    "        time.sleep(0.01)\n"
    "    return 'never released'\n"
)


def release(run_dir):
    open(os.path.join(run_dir, "go"), "w").close()


def test_concurrent_requests_no_cross_talk(server):
    script = "def main(token):\n    print(token)\n    return {'token': token}"

    def one(i):
        token = f"tok-{i}-{os.urandom(4).hex()}"
        status, data = server.execute(script, input=token)
        return token, status, data

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(one, range(32)))
    for token, status, data in results:
        assert status == 200, data
        assert data["result"] == {"token": token} and data["stdout"] == token + "\n"


def test_random_numbers_differ_across_requests(server):
    script = "import random, numpy as np\ndef main():\n    return [random.random(), float(np.random.rand())]"
    seen = [tuple(server.execute(script)[1]["result"]) for _ in range(6)]
    assert len({s[0] for s in seen}) == 6 and len({s[1] for s in seen}) == 6


def test_no_request_data_in_a_later_childs_memory(server):
    secret = "S3CRET-" + os.urandom(8).hex()
    status, data = server.execute(
        f"import os\ndef main(data):\n    x = '{secret}'\n    return [x + data, os.getppid()]", input=secret)
    assert status == 200, data
    worker = data["result"][1]
    # Scan every readable private mapping of a later child for the secret. The
    # needle is built at run time so the scanning script holds no copy.
    scan = (
        "def main(parts):\n"
        "    needle = ''.join(parts).encode()\n"
        "    hits = 0\n"
        "    for line in open('/proc/self/maps'):\n"
        "        f = line.split()\n"
        "        if 'r' not in f[1] or len(f) > 5 and f[5].startswith('['):\n"
        "            continue\n"
        "        lo, hi = (int(x, 16) for x in f[0].split('-'))\n"
        "        try:\n"
        "            with open('/proc/self/mem', 'rb') as m:\n"
        "                m.seek(lo)\n"
        "                hits += m.read(hi - lo).count(needle)\n"
        "        except OSError:\n"
        "            pass\n"
        "    return [hits, os.getppid()]\n"
    )
    scan = "import os\n" + scan
    # Until a later child of each worker, the secret's one included, was
    # scanned: dispatch prefers the worker whose spare came last, so which
    # worker takes a request is not a fixed rotation.
    workers = set()
    for _ in range(40):
        status, data = server.execute(scan, input=[secret[:5], secret[5:]])
        assert status == 200, data
        hits, parent = data["result"]
        assert hits == 0
        workers.add(parent)
        if worker in workers and len(workers) == 2:
            break
    assert worker in workers and len(workers) == 2, (worker, workers)


def test_queue_full_is_503_with_retry_after(make_server):
    s = make_server("--workers", "1", "--queue", "0")
    started = threading.Event()
    out = {}

    def slow():
        started.set()
        out["slow"] = s.execute("import threading\ndef main():\n    threading.Event().wait(3)\n    return 1")

    t = threading.Thread(target=slow)
    t.start()
    started.wait()
    wait_idle_below(s, 1)
    status, headers, data = s.request(
        "POST", "/execute", json.dumps({"script": "def main(): return 2"}), {"Content-Type": "application/json"}
    )
    assert status == 503 and data["type"] == "overloaded"
    assert headers["Retry-After"] == "1"
    t.join()
    assert out["slow"][0] == 200


def wait_idle_below(s, n, timeout=60):
    """Wait until fewer than n workers are idle, as /health reports it."""
    until(lambda: s.request("GET", "/health")[2]["workers"]["idle"] < n, "the workers to become busy", timeout)


def worker_of(run_dir):
    """The pid of the worker whose scratch dir holds run_dir (/proc/PID/cwd/...)."""
    return int(run_dir.split("/proc/")[1].split("/")[0])


def test_worker_killed_mid_request_is_retried_elsewhere(make_server):
    """The worker running a script dies: the request runs again on the other
    worker and succeeds; the dead worker is replaced."""
    s = make_server("--workers", "2")
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("r", s.execute(UNTIL_GO)))
    mark = len(s.lines)
    t.start()
    first = wait_for_temp_file(s, "running")
    os.kill(worker_of(first), signal.SIGKILL)
    # The retry marks a temp dir of the other worker; let it finish.
    retry = wait_for_temp_file(s, "running", other_than=first)
    assert worker_of(retry) != worker_of(first)
    release(retry)
    t.join()
    assert out["r"][0] == 200 and out["r"][1]["result"] == "done", out["r"]
    s.wait_line(r"worker \d ready", start=mark)
    until(lambda: s.request("GET", "/health")[2]["workers"]["ready"] == 2, "the worker's replacement")
    assert s.request("GET", "/health")[2]["respawns"] == 1
    assert s.execute("def main(): return 3")[1]["result"] == 3


def test_worker_killed_twice_is_internal(make_server):
    """Retried once only: when the second worker running the same request
    dies too, the answer is 500 internal, and the pool is whole again."""
    s = make_server("--workers", "1")
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("r", s.execute(UNTIL_GO)))
    t.start()
    first = wait_for_temp_file(s, "running")
    os.kill(worker_of(first), signal.SIGKILL)
    retry = wait_for_temp_file(s, "running", other_than=first)  # on the replacement worker
    assert worker_of(retry) != worker_of(first)
    os.kill(worker_of(retry), signal.SIGKILL)
    t.join()
    status, data = out["r"]
    assert (status, data["type"]) == (500, "internal"), data
    until(lambda: s.request("GET", "/health")[2]["workers"]["ready"] == 1, "the worker's replacement")
    assert s.execute("def main(): return 3")[1]["result"] == 3


def test_sigterm_exits_cleanly_and_leaves_nothing(make_server):
    s = make_server("--workers", "2")
    assert s.execute("def main():\n    open('f', 'w').write('x')\n    return 1")[0] == 200
    # until both workers hold their next spare: template, 2 workers, 2 spares
    until(lambda: len(s.descendants()) >= 5, "both workers' spare children")
    tree = s.descendants()
    template = [pid for pid, ppid, _ in tree if ppid == s.proc.pid]
    workers = [pid for pid, ppid, _ in tree if ppid in template]
    dirs = [os.readlink(f"/proc/{pid}/cwd") for pid in workers]  # each worker's scratch dir
    assert all(d.startswith("/tmp/pyexec-") and os.path.isdir(d) for d in dirs), dirs
    assert s.stop() == 0
    for pid, ppid, start in tree:
        stat = proc_stat(pid)
        if stat and stat[1] == start:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ")[:80]
            with open(f"/proc/{pid}/status") as f:
                state = [l for l in f if l.startswith("State")]
            raise AssertionError(f"{pid} ({cmd}, {state}, was child of {ppid}) outlived pyexecd: {s.lines}")
    for d in dirs:  # the template removed the scratch dirs it made
        assert not os.path.exists(d), d


@pytest.mark.parametrize("flags", [[], ["--namespaces", "0"]], ids=["tmpfs", "measured"])
def test_killed_template_leaves_no_scratch_dir(make_server, flags):
    """A template killed with SIGKILL cannot remove its workers' scratch dirs
    (which hold the spares' temp dirs where no tmpfs covers them): the
    acceptor removes every dir with its own prefix before the next template
    starts, and at exit."""
    if flags and os.geteuid() != 0:
        pytest.skip("a normal user's pyexecd refuses --namespaces 0")
    s = make_server("--workers", "2", *flags)
    assert s.execute("def main():\n    open('f', 'w').write('x')\n    return 1")[0] == 200
    until(lambda: len(s.descendants()) >= 5, "both workers' spare children")

    def template():
        kids = [pid for pid, ppid, _ in s.descendants() if ppid == s.proc.pid]
        return kids[0] if len(kids) == 1 else None

    old_template = template()
    old = [os.readlink(f"/proc/{w}/cwd") for w in worker_pids(s)]
    prefix = old[0][: -len("XXXXXX")]
    assert prefix.startswith("/tmp/pyexec-") and all(d.startswith(prefix) for d in old), old
    os.kill(old_template, signal.SIGKILL)
    until(lambda: template() not in (None, old_template)
          and s.request("GET", "/health")[2]["workers"]["ready"] == 2, "a new template and its workers")
    for d in old:
        assert not os.path.exists(d), (d, os.listdir(d))
    new = [os.readlink(f"/proc/{w}/cwd") for w in worker_pids(s)]
    assert all(d.startswith(prefix) for d in new) and not set(new) & set(old), (old, new)
    assert s.execute("def main(): return 3")[1]["result"] == 3
    assert s.stop() == 0
    assert glob.glob(prefix + "*") == []


def test_sigterm_lets_in_flight_request_finish(make_server):
    s = make_server("--workers", "1")
    out = {}

    def run():
        out["r"] = s.execute("import threading\ndef main():\n    threading.Event().wait(1)\n    return 'finished'")

    t = threading.Thread(target=run)
    t.start()
    wait_idle_below(s, 1)
    s.proc.send_signal(signal.SIGTERM)
    t.join()
    assert out["r"][0] == 200 and out["r"][1]["result"] == "finished"
    assert s.proc.wait(30) == 0


def test_template_killed_while_draining_answers_and_exits(make_server):
    """SIGTERM with a request running, then the template dies before it
    finishes (taking its worker along): the request is answered at once, not
    left waiting for a worker that is gone, and pyexecd exits 0."""
    s = make_server("--workers", "1", "--shutdown-timeout-ms", "600000")
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("r", s.execute(UNTIL_GO, timeout=300)))
    t.start()
    wait_for_temp_file(s, "running")
    template = [pid for pid, ppid, _ in s.descendants() if ppid == s.proc.pid]
    assert len(template) == 1, template
    mark = len(s.lines)
    s.proc.send_signal(signal.SIGTERM)
    s.wait_line(r"shutting down", start=mark)
    os.kill(template[0], signal.SIGKILL)
    t.join(60)
    assert not t.is_alive(), f"the request was never answered: {s.lines[mark:]}"
    status, data = out["r"]
    assert status in (500, 503) and data["type"] in ("internal", "overloaded"), data
    assert s.proc.wait(60) == 0


def test_temp_dirs_removed_after_requests(server):
    for _ in range(4):
        assert server.execute("def main():\n    open('junk', 'w').write('x' * 1000)\n    return 1")[0] == 200
    def only_an_empty_dir(w):
        # The waiting spare's, untouched. Removal comes after the reap, so a
        # served child's dir may still be there a moment.
        dirs = temp_dirs(w)
        try:
            return len(dirs) == 1 and os.listdir(dirs[0]) == []
        except FileNotFoundError:
            return False

    for w in worker_pids(server):
        # As the worker sees its scratch dir (through its mount namespace).
        until(lambda: only_an_empty_dir(w), f"worker {w} to remove its children's temp dirs")


# Leaves files at two depths and one in out/ (collected once the child is dead).
LEAVES_FILES = (
    "import os\ndef main():\n    os.makedirs('a/b')\n"
    "    open('a/b/f', 'w').write('x' * 100000)\n    open('out/r.txt', 'w').write('r')\n"
    "    return os.getcwd()"
)


def tmpfs_temp_dirs(s, w):
    """Skip where temp dirs are plain directories (no mount namespace: /health
    says); where they are tmpfs mounts, they are in a batch."""
    namespaces = s.request("GET", "/health")[2]["sandbox"]["namespaces"]
    if "mount-ro" not in namespaces and "scratch-tmpfs" not in namespaces:
        pytest.skip("temp dirs are not tmpfs mounts here (no mount namespace for the worker)")
    until(lambda: glob.glob(os.path.join(scratch(w), "batch-*")), f"worker {w}'s batch of temp dirs")


def mounts_in(w, scratch_path):
    """Mount points under the worker's scratch dir, from its mountinfo."""
    with open(f"/proc/{w}/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(scratch_path + "/")]


def test_finished_temp_dirs_sealed_then_unmounted_in_batches(make_server):
    """A finished request's tmpfs temp dir is emptied and made read-only where
    it stands, and its batch of 16 is unmounted whole once full: after 40
    requests that each leave files, the worker holds one batch whose
    finished dirs are empty and refuse writes (even root's), and its mounts
    are the batch's and no more."""
    s = make_server("--workers", "1")
    (w,) = worker_pids(s)
    tmpfs_temp_dirs(s, w)

    def settled():
        # the spare's empty dir the only one in use, in the only batch
        live = temp_dirs(w)
        try:
            return len(live) == 1 and os.listdir(live[0]) == [] and len(batches()) == 1
        except FileNotFoundError:
            return False

    def batches():
        return glob.glob(os.path.join(scratch(w), "batch-*"))

    seen_batches, most_sealed = set(), 0
    for _ in range(40):
        status, data = s.execute(LEAVES_FILES)
        assert status == 200, data
        assert list(data["files"]) == ["r.txt"], data
        until(settled, f"worker {w} to seal its children's temp dirs")
        seen_batches.update(batches())
        most_sealed = max(most_sealed, len([d for d in all_temp_dirs(w) if sealed(d)]))
    # Sealed where they stand (not each unmounted), and batch after batch.
    assert most_sealed >= 10 and len(seen_batches) >= 3, (most_sealed, seen_batches)
    dirs = all_temp_dirs(w)
    finished = [d for d in dirs if sealed(d)]
    assert len(dirs) <= 17 and len(finished) == len(dirs) - 1, dirs
    for d in finished:
        assert os.listdir(d) == [], d
        with pytest.raises(OSError) as e:
            open(os.path.join(d, "x"), "w")
        assert e.value.errno == errno.EROFS, (d, e.value)
    # The batch and its temp dirs are all the mounts under scratch: 40
    # requests, 2 batches unmounted whole, nothing left over.
    real = os.readlink(scratch(w))
    assert len(mounts_in(w, real)) == 1 + len(dirs), mounts_in(w, real)


def test_a_big_finished_temp_dir_is_unmounted_alone(make_server):
    """A temp dir with more entries than the worker empties in passing (64)
    is unmounted at once, not sealed: its dir is gone, the next request
    runs, and nothing of it stays mounted."""
    s = make_server("--workers", "1")
    (w,) = worker_pids(s)
    tmpfs_temp_dirs(s, w)
    status, data = s.execute(
        "import os\ndef main():\n    for i in range(200):\n        open(f'f{i}', 'w').close()\n"
        "    return os.getcwd()")
    assert status == 200, data
    real = os.readlink(scratch(w))
    mine = data["result"]
    assert mine.startswith(real + "/"), (mine, real)
    gone = scratch(w) + mine[len(real):]
    until(lambda: mine not in mounts_in(w, real) and not os.path.exists(gone),
          "the big temp dir to be unmounted and removed")
    assert s.execute("def main(): return 'next'")[1]["result"] == "next"


@pytest.mark.parametrize("user", ["root", "normal"])
def test_finished_temp_dirs_out_of_reach(make_server, user):
    """A script reads the worker's mounts from its own mountinfo and tries
    to write into every other temp dir and batch there: sealed, detached or
    outside its Landlock rules, none takes a file. Also with the service run
    as a normal user, where a script shares the worker's uid."""
    if user == "normal" and os.geteuid() != 0:
        pytest.skip("needs root to start pyexecd as another user")
    wrap = AS_USER if user == "normal" else ()
    s = make_server("--workers", "1", wrap=wrap)
    (w,) = worker_pids(s)
    tmpfs_temp_dirs(s, w)
    for _ in range(3):
        assert s.execute(LEAVES_FILES)[0] == 200
    status, data = s.execute(
        "import os\ndef main():\n    own, tried, written = os.getcwd(), 0, []\n"
        "    for line in open('/proc/self/mountinfo'):\n        mp = line.split()[4]\n"
        "        if ('/run-' in mp or '/batch-' in mp) and mp != own:\n            tried += 1\n"
        "            for make in (lambda: open(mp + '/x', 'w').close(), lambda: os.mkdir(mp + '/d')):\n"
        "                try:\n                    make()\n                    written.append(mp)\n"
        "                except OSError:\n                    pass\n"
        "    return {'tried': tried, 'written': written}")
    assert status == 200, data
    assert data["result"]["tried"] >= 3 and data["result"]["written"] == [], data["result"]


def test_client_disconnect_kills_the_script(make_server):
    s = make_server("--workers", "1")
    body = json.dumps({"script": "import threading\ndef main():\n    threading.Event().wait(60)"}).encode()
    with socket.create_connection(("127.0.0.1", s.port), timeout=10) as c:
        c.sendall(
            b"POST /execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        wait_idle_below(s, 1)  # the script is running
    # The client is gone: the worker must be free long before the script's 60 s.
    until(lambda: s.request("GET", "/health")[2]["workers"]["idle"] == 1, "the abandoned script to be killed", 30)
    assert s.execute("def main(): return 'next'")[1]["result"] == "next"


def test_template_reaps_a_failed_worker_before_any_spawn_request():
    """As root with --user=1 --workers=2, worker 1 cannot get a uid of its own
    and fails its set-up; the acceptor asks for it again only after a growing
    back-off (server/channel.c). Within that back-off, with no spawn request
    to wake it, the template has reaped the dead worker (no zombie) and
    removed its scratch dir: its SIGCHLD alone is enough."""
    if os.geteuid() != 0:
        pytest.skip("a normal user's workers all get the service's uid")
    s = Unready("--user=1", "--workers=2")
    try:
        client = Client("127.0.0.1", s.port)
        template = children_of(s.proc.pid)[0][0]
        with open(f"/proc/{template}/cmdline", "rb") as f:
            prefix = [a.decode()[len("--template-scratch="):] for a in f.read().split(b"\0")
                      if a.startswith(b"--template-scratch=")][0]
        for delay in ("0.8", "1.6"):
            s.wait_for(lambda lines: any("worker 1 failed during set-up" in l and f"retry in {delay} s" in l
                                         for l in lines))
            respawns = metric(client, "pyexec_worker_respawns_total")

            def settled():
                kids = children_of(template)
                return all(state != "Z" for _, state in kids) and len(glob.glob(prefix + "*")) == 1

            until(settled, "the failed worker reaped and its scratch dir removed", timeout=30)
            # No spawn request came meanwhile: the template woke on SIGCHLD.
            assert metric(client, "pyexec_worker_respawns_total") == respawns, s.lines
            assert len(children_of(template)) == 1, s.lines  # worker 0 alone
    finally:
        s.stop()
    assert glob.glob(prefix + "*") == []

