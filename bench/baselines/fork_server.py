"""COMPARISON BASELINE for bench/compare — not part of pyexec, never shipped.

The strongest pure-Python design: one stdlib ThreadingHTTPServer process that
imports numpy and pandas once, then os.fork()s a child per request; the child
runs the script's main() and sends json.dumps of the result back over a pipe.
No sandbox, no limits. Usage: /usr/bin/python3 fork_server.py [--port N]
(binds 127.0.0.1; port 0 picks a free one; prints "listening on HOST:PORT").
"""
import os

# As in pyexecd: no BLAS thread pools, set before numpy is imported.
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import threading  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402

import gc  # noqa: E402

import numpy  # noqa: E402,F401  (warm: children inherit it)
import pandas  # noqa: E402,F401

# Keep the collector off the inherited heap: otherwise a child's first full
# collection touches every object and copies most of the parent's pages.
gc.collect()
gc.freeze()

# Forks are serialised: fork() while another thread holds a lock is unsafe, and
# one child per CPU at a time is what pyexecd allows too.
FORK_LOCK = threading.Lock()
CHILD_SLOTS = threading.BoundedSemaphore(os.cpu_count() or 1)


def run_in_child(body):
    try:
        req = json.loads(body)
        ns = {"__name__": "__main__"}
        exec(compile(req["script"], "<script>", "exec"), ns)
        result = ns["main"](req["input"]) if "input" in req else ns["main"]()
        return 200, json.dumps({"result": result, "stdout": "", "stderr": ""}).encode()
    except Exception as e:  # the script's fault, reported like pyexecd does
        return 400, json.dumps({"error": str(e), "type": "exception"}).encode()


def execute(body):
    with CHILD_SLOTS:
        read_end, write_end = os.pipe()
        with FORK_LOCK:
            pid = os.fork()
        if pid == 0:
            os.close(read_end)
            status, out = 500, b'{"error": "child failed", "type": "internal"}'
            try:
                status, out = run_in_child(body)
            finally:
                os.write(write_end, b"%03d" % status + out)
                os._exit(0)
        os.close(write_end)
        chunks = []
        while True:
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        os.close(read_end)
        os.waitpid(pid, 0)
    data = b"".join(chunks)
    if len(data) < 3:
        return 500, b'{"error": "the child died", "type": "killed"}'
    return int(data[:3]), data[3:]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms stall

    def log_message(self, *args):
        pass

    def reply(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.reply(200, b'{"status": "ok"}')

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.reply(*execute(body))


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # clients hanging up mid-answer at the end of a run are normal


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    port = parser.parse_args().port
    server = QuietServer(("127.0.0.1", port), Handler)
    print(f"listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
