"""Service tests drive the real pyexecd binary over real loopback sockets.

PYEXECD (set by ctest) names the binary. Each Server is started on port 0 and
waited for by reading its own log lines ("listening on", "ready"), never by
sleeping.
"""
import base64
import glob
import http.client
import json
import os
import re
import signal
import subprocess
import threading
import time

import pytest

PYEXECD = os.environ.get("PYEXECD", os.path.join(os.path.dirname(__file__), "../../build/server/pyexecd"))
CASES = os.environ.get("PYEXEC_CASES", os.path.join(os.path.dirname(__file__), "../conformance/cases.json"))
START_TIMEOUT = 60


class Client:
    """Requests to a pyexecd at host:port (Server starts one; the container
    test talks to one in a container)."""

    def __init__(self, host, port):
        self.host, self.port = host, port

    def conn(self, timeout=60):
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=60):
        c = self.conn(timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            if r.getheader("Content-Type", "").startswith("application/json"):
                data = json.loads(data)
            return r.status, dict(r.getheaders()), data
        finally:
            c.close()

    def execute(self, script=None, timeout=60, **fields):
        body = dict(fields)
        if script is not None:
            body["script"] = script
        status, headers, data = self.request(
            "POST", "/execute", json.dumps(body), {"Content-Type": "application/json"}, timeout
        )
        return status, data


class Server(Client):
    def __init__(self, *flags, env=None, binary=PYEXECD, wrap=()):
        self.flags = ["--host", "127.0.0.1", "--port", "0", *flags]
        self.port = None
        self.lines = []  # stderr lines, in order
        self.logs = []  # stdout JSON log lines
        self.cond = threading.Condition()
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [*wrap, binary, *self.flags],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=full_env,
            text=True,
        )
        threading.Thread(target=self._read, args=(self.proc.stderr, self.lines), daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stdout, self.logs), daemon=True).start()
        m = self.wait_line(r"listening on [^ ]+:(\d+)")
        super().__init__("127.0.0.1", int(m.group(1)))
        self.wait_line(r"ready: \d+ workers warm")

    def _read(self, stream, into):
        for line in stream:
            with self.cond:
                into.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            into.append(None)  # EOF
            self.cond.notify_all()

    def wait_line(self, pattern, start=0, timeout=START_TIMEOUT):
        """Wait until a stderr line at index >= start matches; return the match."""
        rx = re.compile(pattern)
        found = []

        def seen():
            for line in self.lines[start:]:
                if line is None:
                    raise AssertionError(f"pyexecd ended before {pattern!r}: {self.lines}")
                m = rx.search(line)
                if m:
                    found.append(m)
                    return True
            return False

        with self.cond:
            assert self.cond.wait_for(seen, timeout), f"no {pattern!r} in {self.lines}"
        return found[0]

    def wait_log(self, request_id, timeout=30):
        """The JSON log line of the request with this X-Request-Id."""
        found = []

        def seen():
            for line in self.logs:
                if line and f'"request_id":"{request_id}"' in line:
                    found.append(json.loads(line))
                    return True
            return False

        with self.cond:
            assert self.cond.wait_for(seen, timeout), f"no log line for {request_id}"
        return found[0]

    def descendants(self):
        """[(pid, ppid, start time)] of every process below pyexecd (template,
        workers, children). The start time tells a pid reused later apart."""
        procs = {}
        for name in os.listdir("/proc"):
            if name.isdigit():
                stat = proc_stat(int(name))
                if stat:
                    procs[int(name)] = stat
        out, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            for child, (ppid, start) in procs.items():
                if ppid == pid:
                    out.append((child, ppid, start))
                    todo.append(child)
        return out

    def stop(self, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


@pytest.fixture(scope="module")
def server():
    s = Server("--workers", "2")
    yield s
    assert s.stop() == 0


@pytest.fixture
def make_server():
    started = []

    def make(*flags, **kw):
        s = Server(*flags, **kw)
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()


class Unready:
    """pyexecd started by hand, for a service that never says "ready" (which
    Server waits for): its stderr lines as they come, and its port once it
    listens. stop() ends it; its exit status must be 0."""

    def __init__(self, *flags):
        self.lines = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen([PYEXECD, "--host", "127.0.0.1", "--port", "0", *flags],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, daemon=True).start()
        self.wait_for(lambda lines: any("listening on" in l for l in lines))
        self.port = int(next(re.search(r":(\d+) with", l).group(1) for l in self.lines
                             if "listening on" in l))

    def _read(self):
        for line in self.proc.stderr:
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()

    def wait_for(self, condition, timeout=60):
        """Wait until condition(lines) holds; return a copy of the lines."""
        with self.cond:
            assert self.cond.wait_for(lambda: condition(self.lines), timeout), self.lines
            return list(self.lines)

    def stop(self):
        self.proc.terminate()
        assert self.proc.wait(30) == 0


def children_of(pid):
    """[(pid, state)] of pid's children."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue  # gone meanwhile
            if int(fields[1]) == pid:
                out.append((int(name), fields[0]))
    return out


def until(condition, what, timeout=60, interval=0.01):
    """Poll condition() every interval seconds until it holds; fail after
    timeout seconds. The sleep leaves the CPUs to the processes being waited for."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def worker_pids(server):
    """The workers: children of the template (the acceptor's only child)."""
    tree = server.descendants()
    template = [pid for pid, ppid, _ in tree if ppid == server.proc.pid]
    assert len(template) == 1, tree
    return [pid for pid, ppid, _ in tree if ppid == template[0]]


def scratch(worker):
    """The worker's scratch dir, where its children's temp dirs are, as the
    worker sees it (its cwd): with a mount namespace of its own, a tmpfs on
    that dir which the host's /tmp does not show."""
    return f"/proc/{worker}/cwd"


# Prefix of a command that runs pyexecd as a normal user (the tests run as root).
AS_USER = ["setpriv", "--reuid=65000", "--regid=65000", "--clear-groups"]


def sealed(path):
    """A finished request's tmpfs temp dir, emptied and made read-only until
    its batch is unmounted (worker/dying.c); False once it is gone."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def all_temp_dirs(worker):
    """Every run-* temp dir the worker holds, as it sees them: in its scratch
    dir, or in a batch-* dir there when each is a tmpfs of its own; sealed
    ones included."""
    root = scratch(worker)
    found = glob.glob(os.path.join(root, "run-*")) + glob.glob(os.path.join(root, "batch-*", "run-*"))
    return sorted(found)


def temp_dirs(worker):
    """all_temp_dirs but the sealed ones that are empty: those a child may
    still use, or that still hold something."""
    def done(d):
        try:
            return sealed(d) and not os.listdir(d)
        except OSError:
            return True  # gone meanwhile
    return [d for d in all_temp_dirs(worker) if os.path.isdir(d) and not done(d)]


def wait_for_temp_file(server, name, other_than=None, timeout=60):
    """Wait until a script has created `name` in its temp dir (one that is not
    other_than); return that dir (in a worker's scratch dir, as seen from here)."""
    found = []

    def seen():
        for w in worker_pids(server):
            found[:] = [d for d in temp_dirs(w) if os.path.exists(os.path.join(d, name)) and d != other_than]
            if found:
                return True
        return False

    try:
        until(seen, f"a script to create {name}", timeout)
    except AssertionError:
        seen_dirs = {w: {d: os.listdir(d) for d in temp_dirs(w)} for w in worker_pids(server)}
        raise AssertionError(f"no {name} in any temp dir after {timeout} s: {seen_dirs}; {server.lines[-5:]}") from None
    return found[0]


def proc_stat(pid):
    """(ppid, start time) of a live process, None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), int(fields[19])


def load_cases():
    """tests/conformance/cases.json (its README describes the format)."""
    with open(CASES) as f:
        return json.load(f)


def metric(client, name):
    """The value of an unlabelled metric in GET /metrics."""
    status, _, text = client.request("GET", "/metrics")
    assert status == 200
    for line in text.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} in /metrics")


def case_http(case):
    """(method, path, body bytes or None, headers) of a conformance case."""
    method, path = case.get("method", "POST"), case.get("path", "/execute")
    headers = {}
    content_type = case.get("content_type", "application/json")
    if method == "POST" and content_type is not None:
        headers["Content-Type"] = content_type
    if "body_text" in case:
        body = case["body_text"].encode()
    elif "body_base64" in case:
        body = base64.b64decode(case["body_base64"])
    elif "request" in case:
        request = case["request"]
        if "pad_script" in case:
            # A comment line brings the script to exactly pad_script bytes.
            script = request["script"] + "\n#"
            request = dict(request, script=script + "x" * (case["pad_script"] - len(script.encode())))
        body = json.dumps(request, ensure_ascii=False).encode()
    else:
        body = None
    if "pad_header" in case:
        name, size = case["pad_header"]
        headers[name] = "x" * size
    return method, path, body, headers


def check_case(client, case):
    """Send a conformance case to client and assert every expectation it
    lists; returns (status, headers, body)."""
    held = None
    if "hold" in case:
        # A request that must be running on a worker when the case's is sent:
        # sent first, then the busy gauge says it reached a worker. Closing its
        # connection afterwards kills its script.
        held = client.conn()
        held.request("POST", "/execute", json.dumps(case["hold"]), {"Content-Type": "application/json"})
        until(lambda: metric(client, "pyexec_workers_busy") >= 1, "the held request to reach a worker")
    try:
        status, headers, body = client.request(*case_http(case))
    finally:
        if held:
            held.close()
    assert status == case["status"], body
    assert isinstance(body, dict), body  # every answer is a JSON object
    for key, want in case["expect"].items():
        assert key in body and body[key] == want, (key, body)
    for key, want in case.get("expect_text", {}).items():
        assert json.dumps(body[key], ensure_ascii=False, separators=(",", ":")) == want, (key, body)
    for key, part in case.get("expect_in", {}).items():
        assert part in body[key], (key, body)
    lower = {k.lower(): v for k, v in headers.items()}
    for name, want in case.get("expect_headers", {}).items():
        assert lower.get(name.lower()) == want, (name, headers)
    if status == 200:
        assert set(body) >= {"result", "stdout", "stderr", "stats"}, body
        assert set(body["stats"]) == {"wall_ms", "cpu_ms", "max_rss_kb"}, body
    else:
        assert isinstance(body["error"], str) and body["error"], body
    return status, headers, body
