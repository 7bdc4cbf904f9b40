"""Start and stop the servers bench/compare and bench/check-vs-wrk measure.

Each server is started in its own session (process group) on 127.0.0.1 and a
free port, waited for with a bounded readiness poll, and stopped with its whole
group (gunicorn workers and forked children included). Used only by the bench
scripts; never part of the service.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
PYTHON = "/usr/bin/python3"  # Debian's, with numpy and pandas; never the PATH one

# name -> (label, what it is)
SERVERS = {
    "pyexecd": ("pyexecd", "this service: C acceptor, pre-forked warm workers, sandboxed child per request"),
    "subprocess": ("flask+subprocess", "COMPARISON ONLY: Flask under gunicorn, fresh /usr/bin/python3 per request"),
    "fork": ("python fork", "COMPARISON ONLY: stdlib ThreadingHTTPServer, numpy/pandas imported once, os.fork per request"),
    "floor": ("C floor", "COMPARISON ONLY: embedded CPython + imports, fork per request, no sandbox or limits"),
    "unconfined": ("pyexecd unconfined", "BENCH ONLY: pyexecd built without the child's privilege drop, "
                   "Landlock and seccomp (target pyexecd-unconfined): what the sandbox costs"),
}

_running = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_built(build_dir, targets):
    """Configure and build targets; returns {target: path or None}."""
    if not os.path.exists(os.path.join(build_dir, "CMakeCache.txt")):
        subprocess.run(["cmake", "-S", REPO, "-B", build_dir], check=False,
                       stdout=subprocess.DEVNULL)
    paths = {}
    for target in targets:
        subprocess.run(["cmake", "--build", build_dir, "--target", target, "-j2"], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        paths[target] = find_binary(build_dir, target)
    return paths


def find_binary(build_dir, name):
    for sub in ("bench", "server", ""):
        path = os.path.join(build_dir, sub, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def command(name, port, binaries, flags=()):
    if name == "pyexecd":
        return [binaries["pyexecd"], "--host=127.0.0.1", f"--port={port}", *flags], None
    if name == "subprocess":
        gunicorn = shutil.which("gunicorn") or "/usr/bin/gunicorn"
        return [gunicorn, "--chdir", os.path.join(BENCH_DIR, "baselines"), "--workers",
                str(os.cpu_count() or 1), "--bind", f"127.0.0.1:{port}", "--timeout", "120",
                "subprocess_server:app"], None
    if name == "fork":
        return [PYTHON, os.path.join(BENCH_DIR, "baselines", "fork_server.py"), "--port",
                str(port)], None
    if name == "floor":
        return [binaries["pyexec-floor"], "--port", str(port)], None
    if name == "unconfined":
        return [binaries["pyexecd-unconfined"], "--host=127.0.0.1", f"--port={port}", *flags], None
    raise ValueError(name)


class Server:
    def __init__(self, name, binaries, ready_timeout=60, flags=()):
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/execute"
        argv, env = command(name, self.port, binaries, flags)
        self.log = open(os.devnull, "w")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=self.log, env=env,
                                     start_new_session=True)
        _running.append(self)
        self._wait_ready(ready_timeout)

    def _wait_ready(self, timeout):
        # Bounded poll of GET /health: pyexecd answers 503 until every worker is warm.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health",
                                            timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} not ready within {timeout} s")

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            except ProcessLookupError:
                pass
        self.log.close()
        if self in _running:
            _running.remove(self)


def stop_all(*_):
    for server in list(_running):
        server.stop()


def install_cleanup():
    """Stop every started server on exit, Ctrl-C or SIGTERM (the script's trap)."""
    import atexit
    atexit.register(stop_all)

    def on_signal(signum, _frame):
        stop_all()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)


def run_bench(bench, url, workload, connections, duration, warmup, extra=(), requests=None):
    """One pyexec-bench run of duration seconds (or, given, exactly requests
    requests); returns its --json object."""
    import json
    window = ["-n", str(requests)] if requests else ["-d", f"{duration}s"]
    argv = [bench, "--json", "-c", str(connections), *window, "-w", f"{warmup}s",
            "-W", workload, "-t", "60s", *extra, url]
    proc = subprocess.run(argv, capture_output=True, text=True,
                          timeout=(duration or 0) + warmup + 300)
    if proc.returncode != 0:
        raise RuntimeError(f"pyexec-bench failed: {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def machine():
    """The machine, for the record: nproc, CPU model, kernel, memory, versions."""
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    versions = subprocess.run(
        [PYTHON, "-c", "import sys, numpy, pandas; print(sys.version.split()[0], "
         "numpy.__version__, pandas.__version__)"],
        capture_output=True, text=True).stdout.split()
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": os.uname().release,
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "python": versions[0] if versions else "?",
        "numpy": versions[1] if len(versions) > 1 else "?",
        "pandas": versions[2] if len(versions) > 2 else "?",
    }


def _stat_fields(pid):
    """Fields of /proc/PID/stat after the command name: [state, ppid, ...]."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def _tree(pid):
    """pid and every process below it, and each one's parent."""
    parent = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                parent[int(name)] = int(_stat_fields(name)[1])
            except (OSError, IndexError, ValueError):
                pass
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo += [c for c, pp in parent.items() if pp == p]
    return tree, parent


def tree_cpu_seconds(pid):
    """CPU time used so far by pid's process tree: each live process's own user +
    system time plus that of the children it has reaped (so a per-request child
    counts once it is reaped; one still dying is missed, a millisecond or two)."""
    ticks = 0
    for p in _tree(pid)[0]:
        try:
            f = _stat_fields(p)
        except OSError:
            continue
        ticks += sum(int(x) for x in f[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def tree_pss(pid):
    """[(pid, ppid, Pss kB)] for pid and every process below it (Linux smaps_rollup)."""
    procs, parent = _tree(pid)
    tree = []
    for p in procs:
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                pss = next(int(l.split()[1]) for l in f if l.startswith("Pss:"))
        except (OSError, StopIteration):
            continue
        tree.append((p, parent.get(p), pss))
    return tree
