"""The comparison baselines answer the built-in workloads correctly, so
bench/compare measures real work (short, bounded runs)."""
import os
import shutil

import pytest

from benchutil import PYTHON, Server, bench_json

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BASELINES = os.path.join(REPO, "bench", "baselines")
FLOOR = os.environ.get("PYEXEC_FLOOR", "pyexec-floor")


def all_ok(server, workload, n, connections=2):
    out = bench_json("-n", str(n), "-c", str(connections), "-w", "0", "-W", workload, server.url)
    assert out["status"] == {"200": n}, out
    assert out["errors"]["total"] == 0
    return out


@pytest.fixture(params=["floor", "fork"])
def warm_server(request):
    if request.param == "floor":
        server = Server([FLOOR, "--port", "0"])
    else:
        server = Server([PYTHON, os.path.join(BASELINES, "fork_server.py"), "--port", "0"])
    yield server
    server.stop()


@pytest.mark.parametrize("workload", ["trivial", "numpy", "pandas"])
def test_warm_baselines_run_every_workload(warm_server, workload):
    all_ok(warm_server, workload, 20)


def test_warm_baseline_reports_script_errors(warm_server, tmp_path):
    body = tmp_path / "raise.json"
    body.write_text('{"script": "def main():\\n    raise ValueError(1)\\n"}')
    out = bench_json("-n", "4", "-c", "1", "-w", "0", "-b", str(body), warm_server.url)
    assert out["status"] == {"400": 4}
    assert out["error_types"] == {"exception": 4}


@pytest.mark.skipif(not shutil.which("gunicorn"), reason="Debian package gunicorn not installed")
def test_subprocess_baseline_runs_pandas():
    server = Server([shutil.which("gunicorn"), "--chdir", BASELINES, "--workers", "2",
                     "--bind", "127.0.0.1:0", "subprocess_server:app"],
                    pattern=r"Listening at: http://([\d.]+):(\d+)", stream="stderr")
    try:
        all_ok(server, "trivial", 4)
        all_ok(server, "pandas", 2)
    finally:
        server.stop()
