"""Helpers for pyexec-bench's tests: run the tool, start servers that
announce their port on a "listening on HOST:PORT" line (no sleeps)."""
import json
import os
import re
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.environ.get("PYEXEC_BENCH", "pyexec-bench")
PYTHON = os.environ.get("PYEXEC_PYTHON", "/usr/bin/python3")


def run_bench(*args, timeout=60):
    return subprocess.run([BENCH, *args], capture_output=True, text=True, timeout=timeout)


def bench_json(*args):
    proc = run_bench("--json", *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


class Server:
    """A child process that prints its address on one line before serving."""

    def __init__(self, argv, pattern=r"listening on ([\d.]+):(\d+)", stream="stdout", env=None):
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)
        self.stdout = self.proc.stdout
        source = self.proc.stdout if stream == "stdout" else self.proc.stderr
        for _ in range(200):  # bounded: the announcement comes within a few lines
            line = source.readline()
            if not line:
                raise RuntimeError(f"{argv[0]} exited: {self.proc.stderr.read()}")
            match = re.search(pattern, line)
            if match:
                self.host, self.port = match.group(1), int(match.group(2))
                self.url = f"http://{self.host}:{self.port}/execute"
                return
        raise RuntimeError(f"{argv[0]} never announced its port")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
