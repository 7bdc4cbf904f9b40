"""Charts and warm modules through the live service: matplotlib with Agg,
its font cache built once, --preload and what /health says about it."""
import base64
import glob
import os
import signal
import subprocess

import pytest

from conftest import PYEXECD, Server, children_of, proc_stat, until

CHART = """
import matplotlib.pyplot as plt
def main():
    fig, ax = plt.subplots()
    ax.plot([1, 2, 3, 4], [1, 4, 2, 3])
    ax.set_title("sales")
    fig.savefig("out/chart.png", dpi=100)
    plt.show()
    plt.close(fig)
    return plt.get_backend()
"""

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# ctest sets ASAN_OPTIONS for a PYEXEC_SANITIZE build, whose allocator makes
# matplotlib's import and first figure too slow for the start-up wait and the
# wall-clock limit; the normal build runs these.
slow_under_asan = pytest.mark.skipif("ASAN_OPTIONS" in os.environ,
                                     reason="matplotlib under ASan's allocator outlasts the limits")


@pytest.fixture(scope="module")
def charts():
    s = Server("--workers", "1", "--preload", "numpy,pandas,matplotlib.pyplot")
    yield s
    assert s.stop() == 0


def check_png(body):
    f = body["files"]["chart.png"]
    data = base64.b64decode(f["base64"])
    assert data.startswith(PNG_SIGNATURE)
    assert f["media_type"] == "image/png" and f["size"] == len(data) > 1000


@slow_under_asan
def test_chart_png_with_preload(charts):
    for _ in range(2):  # the second child must not depend on what the first did
        status, body = charts.execute(CHART)
        assert status == 200, body
        assert body["result"].lower() == "agg"
        assert body["stderr"] == ""
        check_png(body)


@slow_under_asan
def test_health_lists_warm_modules(charts):
    status, _, body = charts.request("GET", "/health")
    assert status == 200
    assert list(body["preload"]) == ["numpy", "pandas", "matplotlib.pyplot"]
    assert body["preload"]["matplotlib.pyplot"]  # matplotlib's version


@slow_under_asan
def test_chart_without_preload_uses_the_prebuilt_font_cache(server):
    status, body = server.execute(CHART, timeout_ms=14000)
    assert status == 200, body
    check_png(body)
    # matplotlib says so on stderr when it scans the fonts itself.
    assert "font cache" not in body["stderr"], body["stderr"]
    status, _, health = server.request("GET", "/health")
    assert list(health["preload"]) == ["numpy", "pandas"]


def test_preload_scipy(make_server):
    s = make_server("--workers", "1", "--preload", "numpy, pandas,scipy,scipy.stats")
    status, body = s.execute("import sys\ndef main(): return 'scipy.stats' in sys.modules")
    assert status == 200 and body["result"] is True, body


@pytest.mark.parametrize("preload, named", [("numpy,no_such_module_x", "no_such_module_x"),
                                            ("numpy,not-a-name", "not-a-name")])
def test_failing_import_stops_start_up_naming_it(preload, named):
    p = subprocess.run([PYEXECD, "--host", "127.0.0.1", "--port", "0", "--workers", "1", "--preload", preload],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode != 0
    assert named in p.stderr, p.stderr


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")[:-1]
    except OSError:
        return []


@slow_under_asan
def test_template_killed_during_font_scan_leaves_nothing(tmp_path):
    """SIGKILL the template while matplotlib's font scan runs (held stopped so
    it cannot finish first): the scan dies with the template, and its dir,
    which carries the service's scratch prefix, is removed by the acceptor."""
    with open(tmp_path / "stderr", "w") as err:
        proc = subprocess.Popen([PYEXECD, "--host", "127.0.0.1", "--port", "0", "--workers", "1"],
                                stdout=subprocess.DEVNULL, stderr=err)
    scan = None
    try:
        def template():
            kids = [pid for pid, _ in children_of(proc.pid)]
            return kids[0] if len(kids) == 1 else None

        until(template, "the template")
        tpl = template()
        prefix = [a[len(b"--template-scratch="):].decode() for a in _cmdline(tpl)
                  if a.startswith(b"--template-scratch=")][0]
        assert prefix.startswith("/tmp/pyexec-"), prefix
        scan_cmd = [b"/usr/bin/python3", b"-I", b"-c", b"import matplotlib.font_manager"]

        def scanning():
            return [pid for pid, _ in children_of(tpl) if _cmdline(pid) == scan_cmd]

        until(scanning, "the font scan")
        scan = scanning()[0]
        os.kill(scan, signal.SIGSTOP)
        scan_start = proc_stat(scan)[1]
        with open(f"/proc/{scan}/environ", "rb") as f:
            env = dict(v.split(b"=", 1) for v in f.read().split(b"\0") if v)
        directory = env[b"MPLCONFIGDIR"].decode()
        assert os.path.isdir(directory), directory
        os.kill(tpl, signal.SIGKILL)
        proc.wait(60)  # a template that never got ready ends the service

        def scan_gone():
            stat = proc_stat(scan)
            return stat is None or stat[1] != scan_start or state(scan) == "Z"

        until(scan_gone, "the font scan to die with the template", timeout=30)
        assert directory.startswith(prefix), (directory, prefix)
        assert glob.glob(prefix + "*") == [], (tmp_path / "stderr").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if scan and _cmdline(scan) == scan_cmd:
            os.kill(scan, signal.SIGKILL)


def state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None
