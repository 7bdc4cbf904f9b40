#!/usr/bin/python3
"""Soak pyexecd: a bounded mix of good, bad and hostile requests for a given
time, then check that nothing grew: acceptor RSS, every process's open
descriptors, worker RSS, process count and temp dirs.

    /usr/bin/python3 tests/soak/soak.py --duration 600
    /usr/bin/python3 tests/soak/soak.py --duration 60 --workers 2 --rate 20 --threads 4
    /usr/bin/python3 tests/soak/soak.py --duration 60 --url http://127.0.0.1:8080 --pid PID

By default it starts its own pyexecd (PYEXECD or --binary, else
build/server/pyexecd) on 127.0.0.1 with --workers N, a 2 MiB result cap and a
2 s idle timeout (so the cases below have known answers), and stops it at the
end (it must exit 0). With --url it attaches to a running server started with
those same flags (--result-kb 2048 --idle-timeout-ms 2000); the resource
checks then need --pid (the acceptor's pid), or are skipped.

The mix (weights in CASES): valid scripts (trivial, numpy, pandas, printing,
input echo), invalid requests (bad JSON, unknown field, wrong type, wrong
content type, 404, 405, 413), script errors (exception, syntax, no main),
timeouts (busy loop and sleep with a small timeout_ms), memory bombs (small
memory_mb), crashes (segfault via ctypes, os._exit, sys.exit), output floods
(stdout over the 1 MiB cap: 200 with truncated), big results (1 MiB: 200;
over the cap: output_limit), clients that disconnect mid-request or reset the
connection halfway through reading a 1 MiB answer, clients that
trickle their request, a slowloris cut off by the idle timeout, three
requests on one kept-alive connection, and GETs of /health and /metrics. Every answer is checked against the status and `type`
its case expects; a 500, a client-side timeout or a connection error is a
failure.

The load comes from --threads threads sharing one schedule of --rate requests
per second (slot k is due at start + k/rate, so the rate is held however the
answers come); each thread sends one request at a time. Everything is
bounded: the run ends at --duration (no more than rate x duration requests),
every socket has a 30 s timeout, only 127.0.0.1 is contacted.

At the start (after one warm-up round of every case) and at the end, once
each worker holds exactly its one spare child again, it records:
  acceptor RSS and fds, template fds, each worker's RSS and fds, the number of
  processes under pyexecd, the temp dirs /proc/<worker>/cwd/[batch-*/]run-*.
End vs start: fds, processes and temp dirs must be equal, the workers the same
pids (none respawned); RSS may grow by allocator slack (acceptor <= 4 MiB,
each worker <= 8 MiB). It prints every number and one summary line for
RELIABILITY.md, and exits 0 if everything held, 1 if not.
"""
import argparse
import collections
import glob
import http.client
import json
import os
import random
import socket
import struct
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "service"))
from conftest import Client, Server, children_of  # noqa: E402  (the service tests' server harness)

SOCKET_TIMEOUT = 30
ACCEPTOR_RSS_SLACK_KB = 4096
WORKER_RSS_SLACK_KB = 8192
SERVER_FLAGS = ["--result-kb", "2048", "--idle-timeout-ms", "2000"]

HOLD = "import time\ndef main():\n    time.sleep(2)\n    return 'held'"  # ok-sleep: pacing or the script's own work, not synchronisation


def js(**fields):
    return json.dumps(fields)


# ---- the cases: (name, weight, kind, request, expectation) -----------------
# kind "http": request = (method, path, body, headers); expect = (status, type
# or None, extra check or None). Other kinds are handled by their own function.

CT = {"Content-Type": "application/json"}


def script(src, **extra):
    return ("POST", "/execute", js(script=src, **extra), CT)


def has_result(value):
    return lambda d: d.get("result") == value


CASES = [
    # valid
    ("trivial", 10, "http", script("def main(): return 1"), (200, None, has_result(1))),
    ("input", 4, "http", script("def main(x): return x['a'] * 2", input={"a": 21}), (200, None, has_result(42))),
    ("numpy", 6, "http", script("import numpy as np\ndef main(): return float(np.arange(10).sum())"),
     (200, None, has_result(45.0))),
    ("pandas", 4, "http", script(
        "import pandas as pd\ndef main():\n    df = pd.DataFrame({'a': [1, 2, 3]})\n    return float(df['a'].mean())"),
     (200, None, has_result(2.0))),
    ("printing", 4, "http", script("def main():\n    print('hello')\n    return None"),
     (200, None, lambda d: d.get("stdout") == "hello\n")),
    # invalid requests
    ("bad_json", 3, "http", ("POST", "/execute", "{not json", CT), (400, "invalid_request", None)),
    ("unknown_field", 3, "http", ("POST", "/execute", js(script="def main(): return 1", scirpt=1), CT),
     (400, "invalid_request", None)),
    ("wrong_type", 2, "http", ("POST", "/execute", js(script="def main(): return 1", timeout_ms="1"), CT),
     (400, "invalid_request", None)),
    ("wrong_content_type", 3, "http", ("POST", "/execute", js(script="def main(): return 1"),
                                       {"Content-Type": "text/plain"}), (415, "unsupported_media_type", None)),
    ("not_found", 2, "http", ("GET", "/nope", None, {}), (404, "not_found", None)),
    ("method", 2, "http", ("GET", "/execute", None, {}), (405, "method_not_allowed", None)),
    ("too_large", 1, "http", script("x = 1\n" * 40000), (413, "payload_too_large", None)),
    # script errors
    ("exception", 3, "http", script("def main(): raise ValueError('no')"),
     (400, "exception", lambda d: "ValueError" in d.get("traceback", ""))),
    ("syntax", 2, "http", script("def main(:"), (400, "syntax_error", None)),
    ("no_main", 2, "http", script("x = 1"), (400, "missing_main", None)),
    # timeouts
    ("timeout_busy", 2, "http", script("def main():\n    while True: pass", timeout_ms=300), (400, "timeout", None)),
    ("timeout_sleep", 2, "http", script("import time\ndef main(): time.sleep(5)", timeout_ms=300),  # ok-sleep: pacing or the script's own work, not synchronisation
     (400, "timeout", None)),
    # memory bombs
    ("memory_bomb", 2, "http", script(
        "def main():\n    x = []\n    while True:\n        x.append(bytearray(1 << 24))", memory_mb=100),
     (400, "memory_limit", None)),
    # crashes
    ("segfault", 2, "http", script("import ctypes\ndef main(): ctypes.string_at(0)"),
     (400, "killed", lambda d: d.get("signal") == "SIGSEGV")),
    ("os_exit", 2, "http", script("import os\ndef main(): os._exit(3)"), (400, "exited", None)),
    ("sys_exit", 2, "http", script("import sys\ndef main(): sys.exit(2)"), (400, "exited", None)),
    # output floods and big results
    ("stdout_flood", 2, "http", script("import sys\ndef main():\n    sys.stdout.write('x' * (2 << 20))\n    return 1"),
     (200, None, lambda d: d.get("truncated") == ["stdout"] and d.get("result") == 1)),
    ("big_result", 2, "http", script("def main(): return 'y' * (1 << 20)"),
     (200, None, lambda d: len(d.get("result", "")) == 1 << 20)),
    ("result_over_cap", 1, "http", script("def main(): return 'z' * (3 << 20)"), (400, "output_limit", None)),
    # hostile clients
    ("disconnect", 2, "disconnect", None, None),
    ("slow_client", 2, "slow_client", None, None),
    ("hangup_mid_reply", 1, "hangup_mid_reply", None, None),
    ("slowloris", 1, "slowloris", None, None),
    ("keepalive", 3, "keepalive", None, None),
    # other endpoints
    ("health", 2, "http", ("GET", "/health", None, {}), (200, None, lambda d: d.get("status") == "ok")),
    ("metrics", 1, "http", ("GET", "/metrics", None, {}), (200, None, None)),
]


class Soak:
    def __init__(self, host, port, acceptor=None):
        self.host, self.port, self.acceptor = host, port, acceptor
        self.rss_trace = []  # acceptor RSS (KiB) at each tenth of the run
        self.lock = threading.Lock()
        self.outcomes = collections.Counter()  # (case, status, type) -> n
        self.failures = []  # (case, detail), first 50 kept
        self.nfail = 0
        self.sent = 0

    def record(self, case, status, kind, ok, detail=""):
        with self.lock:
            self.sent += 1
            self.outcomes[(case, status, kind)] += 1
            if not ok:
                self.nfail += 1
                if len(self.failures) < 50:
                    self.failures.append((case, status, kind, detail[:300]))

    # -- one request of each kind --------------------------------------------
    def run_http(self, name, req, expect):
        method, path, body, headers = req
        c = http.client.HTTPConnection(self.host, self.port, timeout=SOCKET_TIMEOUT)
        try:
            c.request(method, path, body=body, headers=headers)
            r = c.getresponse()
            raw = r.read()
        except (OSError, http.client.HTTPException) as e:
            self.record(name, "error", type(e).__name__, False, repr(e))
            return
        finally:
            c.close()
        data = {}
        if r.getheader("Content-Type", "").startswith("application/json"):
            try:
                data = json.loads(raw)
            except ValueError:
                self.record(name, r.status, "bad_json_reply", False, raw[:200].decode("latin-1"))
                return
        want_status, want_type, check = expect
        kind = data.get("type") if isinstance(data, dict) else None
        ok = r.status == want_status and kind == want_type
        if ok and check:
            ok = bool(check(data))
        if r.status == 405 and ok:
            ok = r.getheader("Allow") is not None
        self.record(name, r.status, kind, ok, "" if ok else raw[:300].decode("utf-8", "replace"))

    def run_disconnect(self, name):
        """Send a 2 s script and hang up while it runs: nobody to answer, the
        child must be killed (checked by the end-of-run counts)."""
        body = js(script=HOLD).encode()
        try:
            with socket.create_connection((self.host, self.port), timeout=SOCKET_TIMEOUT) as c:
                c.sendall(b"POST /execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                time.sleep(random.uniform(0.05, 0.3))  # the hang-up is the test, not a sync (ok-sleep)
        except OSError as e:
            self.record(name, "error", type(e).__name__, False, repr(e))
            return
        self.record(name, "hangup", None, True)

    def run_hangup_mid_reply(self, name):
        """Ask for a 1 MiB answer, read its first bytes, then reset the
        connection: the acceptor's write fails halfway (EPIPE/ECONNRESET)."""
        body = js(script="def main(): return 'w' * (1 << 20)").encode()
        try:
            with socket.create_connection((self.host, self.port), timeout=SOCKET_TIMEOUT) as c:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                c.sendall(b"POST /execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                head = c.recv(12)
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError as e:
            self.record(name, "error", type(e).__name__, False, repr(e))
            return
        self.record(name, "reset", None, head == b"HTTP/1.1 200", repr(head))

    def run_slow_client(self, name):
        """Trickle a valid request in pieces (well within the idle timeout),
        then read the answer a few bytes at a time."""
        body = js(script="def main(): return 'slow'").encode()
        msg = (b"POST /execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
        try:
            with socket.create_connection((self.host, self.port), timeout=SOCKET_TIMEOUT) as c:
                step = len(msg) // 6 + 1
                for i in range(0, len(msg), step):
                    c.sendall(msg[i:i + step])
                    time.sleep(0.05)  # pacing the trickle, not synchronising (ok-sleep)
                reply = b""
                while len(reply) < 1 << 20:
                    chunk = c.recv(16)
                    if not chunk:
                        break
                    reply += chunk
        except OSError as e:
            self.record(name, "error", type(e).__name__, False, repr(e))
            return
        head, _, payload = reply.partition(b"\r\n\r\n")
        ok = head.startswith(b"HTTP/1.1 200") and json.loads(payload or b"{}").get("result") == "slow"
        self.record(name, int(head[9:12] or 0) if head[:5] == b"HTTP/" else "garbled", None, ok,
                    reply[:300].decode("latin-1"))

    def run_keepalive(self, name):
        """Three requests on one kept-alive connection: an error answer must
        not spoil the connection for the next request."""
        c = http.client.HTTPConnection(self.host, self.port, timeout=SOCKET_TIMEOUT)
        got = []
        try:
            for body, path in (("{bad", "/execute"), (js(script="def main(): return 3"), "/execute"),
                               (js(script="def main(): return 4"), "/nope")):
                c.request("POST", path, body=body, headers=CT)
                r = c.getresponse()
                got.append((r.status, json.loads(r.read()).get("type")))
        except (OSError, http.client.HTTPException, ValueError) as e:
            self.record(name, "error", type(e).__name__, False, f"{got} then {e!r}")
            return
        finally:
            c.close()
        ok = got == [(400, "invalid_request"), (200, None), (404, "not_found")]
        self.record(name, "3x", None, ok, repr(got))

    def run_slowloris(self, name):
        """Half a header block, then silence: the server must close the
        connection after its idle timeout (2 s), long before our 30 s."""
        try:
            with socket.create_connection((self.host, self.port), timeout=SOCKET_TIMEOUT) as c:
                c.sendall(b"POST /execute HTTP/1.1\r\nHost: x\r\nContent-Le")
                reply = c.recv(4096)
        except socket.timeout:
            self.record(name, "error", "not_cut_off", False, "the server kept a slowloris 30 s")
            return
        except OSError as e:  # a reset is a close too
            self.record(name, "closed", type(e).__name__, True)
            return
        # closed outright, or answered with an error (e.g. 408) and closed
        ok = reply == b"" or reply.startswith(b"HTTP/1.1 4")
        self.record(name, "closed" if reply == b"" else int(reply[9:12]), None, ok, reply[:200].decode("latin-1"))

    def run_case(self, case):
        name, _, kind, req, expect = case
        if kind == "http":
            self.run_http(name, req, expect)
        else:
            getattr(self, "run_" + kind)(name)


# ---- resource snapshot -----------------------------------------------------


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def nfds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        for child, _ in children_of(todo.pop()):
            out.append(child)
            todo.append(child)
    return out


def snapshot(acceptor, timeout=60):
    """Resource numbers once the tree is quiet: every worker holds exactly its
    one spare child, sleeping (a retired child may still be dying first)."""
    deadline = time.monotonic() + timeout
    while True:
        template = children_of(acceptor)
        workers = sorted(p for p, _ in children_of(template[0][0])) if len(template) == 1 else []
        quiet = workers and all([st for _, st in children_of(w)] == ["S"] for w in workers)
        if quiet or time.monotonic() > deadline:
            break
        time.sleep(0.1)  # polling interval; the condition above is what we wait on (ok-sleep)
    snap = {
        "quiet": bool(quiet),
        "acceptor_rss_kb": rss_kb(acceptor),
        "acceptor_fds": nfds(acceptor),
        "template_fds": nfds(template[0][0]),
        "workers": workers,
        "worker_rss_kb": [rss_kb(w) for w in workers],
        "worker_fds": [nfds(w) for w in workers],
        "processes": len(descendants(acceptor)),
        "temp_dirs": sum(len(live_temp_dirs(w)) for w in workers),
        "batches": sum(len(glob.glob(f"/proc/{w}/cwd/batch-*")) for w in workers),
    }
    return snap


def live_temp_dirs(worker):
    """A worker's temp dirs, as it sees them, but the sealed ones (a finished
    request's tmpfs, emptied and read-only, which a batch holds until it is
    unmounted: worker/dying.c) that are empty indeed."""
    found = glob.glob(f"/proc/{worker}/cwd/run-*") + glob.glob(f"/proc/{worker}/cwd/batch-*/run-*")
    live = []
    for d in found:
        try:
            if not (os.statvfs(d).f_flag & os.ST_RDONLY) or os.listdir(d):
                live.append(d)
        except OSError:
            pass  # gone meanwhile
    return live


def compare(start, end):
    """[problem] of end against start."""
    bad = []
    if not end["quiet"]:
        bad.append("the workers never settled to one spare child each")
    if end["workers"] != start["workers"]:
        bad.append(f"workers changed (respawned?): {start['workers']} -> {end['workers']}")
    for key in ("acceptor_fds", "template_fds", "worker_fds", "processes", "temp_dirs", "batches"):
        if end[key] != start[key]:
            bad.append(f"{key}: {start[key]} -> {end[key]}")
    if end["acceptor_rss_kb"] - start["acceptor_rss_kb"] > ACCEPTOR_RSS_SLACK_KB:
        bad.append(f"acceptor RSS grew {start['acceptor_rss_kb']} -> {end['acceptor_rss_kb']} KiB")
    for a, b in zip(start["worker_rss_kb"], end["worker_rss_kb"]):
        if b - a > WORKER_RSS_SLACK_KB:
            bad.append(f"worker RSS grew {a} -> {b} KiB")
    return bad


# ---- main ------------------------------------------------------------------

def drive(soak, duration, rate, threads, seed):
    """Threads share one schedule: slot k is due at t0 + k / rate."""
    weighted = [c for c in CASES for _ in range(c[1])]
    t0 = time.monotonic()
    end = t0 + duration
    max_slots = int(rate * duration) + 1
    next_slot = [0]
    lock = threading.Lock()

    def loop(i):
        rng = random.Random(seed * 1000 + i)
        while True:
            with lock:
                k = next_slot[0]
                next_slot[0] += 1
            due = t0 + k / rate
            if k >= max_slots or due >= end:
                return
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # pacing to the schedule (ok-sleep)
            soak.run_case(rng.choice(weighted))

    ts = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(threads)]
    for t in ts:
        t.start()
    # the acceptor's RSS at tenths of the run: slack levels off, a leak climbs
    for tenth in range(1, 11):
        stop_at = t0 + duration * tenth / 10
        while time.monotonic() < stop_at and any(t.is_alive() for t in ts):
            ts[0].join(min(1.0, max(0.0, stop_at - time.monotonic())))
        if soak.acceptor:
            try:
                soak.rss_trace.append(rss_kb(soak.acceptor))
            except OSError:
                pass
    for t in ts:
        t.join(duration + 2 * SOCKET_TIMEOUT + 60)  # bounded even if a thread wedges
    return time.monotonic() - t0, sum(t.is_alive() for t in ts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, required=True, help="seconds of load")
    ap.add_argument("--workers", type=int, default=2, help="workers of the pyexecd started here (default 2)")
    ap.add_argument("--rate", type=float, default=20.0, help="requests per second, all threads (default 20)")
    ap.add_argument("--threads", type=int, default=4, help="client threads (default 4)")
    ap.add_argument("--seed", type=int, default=1, help="random seed of the mix (default 1)")
    ap.add_argument("--binary", default=os.environ.get("PYEXECD", os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "server", "pyexecd")))
    ap.add_argument("--url", help="attach to this running server instead (127.0.0.1 only)")
    ap.add_argument("--pid", type=int, help="with --url: the acceptor's pid, for the resource checks")
    args = ap.parse_args()
    if args.duration <= 0 or args.rate <= 0 or not 1 <= args.threads <= 64:
        ap.error("need --duration > 0, --rate > 0, 1 <= --threads <= 64")

    server = None
    if args.url:
        u = urllib.parse.urlparse(args.url)
        if u.hostname != "127.0.0.1":
            ap.error("--url must be on 127.0.0.1")
        host, port, acceptor = "127.0.0.1", u.port or 80, args.pid
    else:
        server = Server("--workers", str(args.workers), *SERVER_FLAGS, binary=args.binary)
        host, port, acceptor = "127.0.0.1", server.port, server.proc.pid

    ok = True
    try:
        soak = Soak(host, port)
        for case in CASES:  # warm-up: every path once, so lazy allocations are done
            soak.run_case(case)
        warm_failures = list(soak.failures)
        soak = Soak(host, port, acceptor)
        start = snapshot(acceptor) if acceptor else None
        print(f"start: {json.dumps(start)}", flush=True)

        elapsed, wedged = drive(soak, args.duration, args.rate, args.threads, args.seed)

        end = snapshot(acceptor) if acceptor else None
        print(f"end:   {json.dumps(end)}", flush=True)
        status, _, health = Client(host, port).request("GET", "/health")
        problems = compare(start, end) if acceptor else ["resource checks skipped (no --pid)"]
        if status != 200 or health.get("respawns", 0) != 0:
            problems.append(f"/health after the run: {status} {health}")
        if wedged:
            problems.append(f"{wedged} client threads never finished")
        if warm_failures:
            problems.append(f"warm-up failures: {warm_failures}")
        server_errors = sum(n for (_, st, _), n in soak.outcomes.items() if st == 500)
    finally:
        if server:
            code = server.stop()
            if code != 0:
                # e.g. a sanitizer report: show the end of its stderr
                tail = [line for line in server.lines if line is not None][-40:]
                print("\n".join(tail), file=sys.stderr)
                print(f"pyexecd exited {code}", file=sys.stderr)
                ok = False

    by_case = collections.defaultdict(collections.Counter)
    for (case, st, kind), n in sorted(soak.outcomes.items(), key=lambda x: (x[0][0], str(x[0][1]), str(x[0][2]))):
        by_case[case][f"{st}" + (f" {kind}" if kind else "")] += n
    print("outcomes by case:")
    for case, counts in by_case.items():
        print(f"  {case:18} {dict(counts)}")
    by_status = collections.Counter()
    for (_, st, _), n in soak.outcomes.items():
        by_status[str(st)] += n
    print(f"acceptor RSS at each tenth of the run (KiB): {soak.rss_trace}")
    for f in soak.failures:
        print(f"FAIL {f}")
    for p in problems:
        print(f"PROBLEM {p}")
    ok = ok and not problems and soak.nfail == 0 and server_errors == 0

    def pair(key):
        return f"{start[key]}→{end[key]}" if acceptor else "n/a"

    summary = (
        f"soak {elapsed:.0f} s, {args.threads} threads at {args.rate:g}/s, {args.workers} workers: "
        f"{soak.sent} requests ({', '.join(f'{k}: {v}' for k, v in sorted(by_status.items()))}), "
        f"{soak.nfail} unexpected, {server_errors} × 500; "
        f"acceptor RSS {pair('acceptor_rss_kb')} KiB, fds acceptor {pair('acceptor_fds')} "
        f"template {pair('template_fds')} workers {pair('worker_fds')}, "
        f"worker RSS {pair('worker_rss_kb')} KiB, processes {pair('processes')}, "
        f"temp dirs {pair('temp_dirs')}: {'PASS' if ok else 'FAIL'}"
    )
    print(summary)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
