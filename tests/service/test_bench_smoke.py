"""A short smoke of the bundled load-test tool against the real server: it
must run, count every answer, and see no error. (Timings are reported by
bench/compare, never asserted.)"""
import json
import os
import subprocess

BENCH = os.path.join(os.path.dirname(os.environ.get("PYEXECD", "build/server/pyexecd")), "..",
                     "bench", "pyexec-bench")


def test_pyexec_bench_smoke(server):
    for workload in ("trivial", "pandas"):
        out = subprocess.run(
            [BENCH, "--json", "-c", "4", "-d", "2s", "-w", "0", "-W", workload,
             f"http://127.0.0.1:{server.port}/execute"],
            capture_output=True, text=True, timeout=60, check=True)
        report = json.loads(out.stdout)
        assert report["requests"] > 0, report
        assert report["errors"]["total"] == 0, report
        assert report["status"] == {"200": report["requests"]}, report
