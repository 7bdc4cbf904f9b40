"""pyexec-bench over TLS, as against a Cloud Run service: a throwaway CA and
server certificate made with the openssl CLI, a TLS front (tls_front.py,
round robin, optionally requiring a header) forwarding to the real pyexecd
(PYEXECD) or to the stub. Runs are bounded (-n or short -d) and stay on the
loopback interface."""
import json
import os
import re
import shutil
import socket
import subprocess
import threading

import pytest

from benchutil import HERE, PYTHON, Server, bench_json, run_bench

PYEXECD = os.environ.get("PYEXECD", os.path.join(HERE, "..", "..", "build", "server", "pyexecd"))
REPO = os.path.dirname(os.path.dirname(HERE))
TOKEN = "Bearer test-identity-token"

# The name the certificates are made for, and the loopback address it resolves
# to first (what pyexec-bench will connect to); the front listens there.
LOOPBACK = socket.getaddrinfo("localhost", None, type=socket.SOCK_STREAM)[0][4][0]


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_cert(d, name, san):
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
    (d / f"{name}.ext").write_text(
        f"subjectAltName={san}\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", "-extfile", f"{name}.ext",
            cwd=d)
    return str(d / f"{name}.pem"), str(d / f"{name}.key")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """ca.pem; 'good' for localhost and 127.0.0.1 / ::1; 'wrong' for another name."""
    if not shutil.which("openssl"):
        pytest.fail("the openssl CLI (Debian package openssl) is needed")
    d = tmp_path_factory.mktemp("pki")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=pyexec-bench test CA", cwd=d)
    return {"ca": str(d / "ca.pem"),
            "good": make_cert(d, "good", f"DNS:localhost,IP:{LOOPBACK}"),
            "wrong": make_cert(d, "wrong", "DNS:not-this-host.example")}


class Pyexecd:
    """The real server on a free loopback port, one worker; its JSON log
    lines (stdout) are kept, to see what arrived."""

    def __init__(self):
        self.proc = subprocess.Popen([PYEXECD, "--host", "127.0.0.1", "--port", "0",
                                      "--workers", "1"], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.logs = []
        self.port = None
        for _ in range(200):  # bounded: start-up prints a few lines
            line = self.proc.stderr.readline()
            if not line:
                raise RuntimeError("pyexecd exited during start-up")
            m = re.search(r"listening on [^ ]+:(\d+)", line)
            if m:
                self.port = int(m.group(1))
            if re.search(r"ready: \d+ workers warm", line):
                break
        assert self.port, "pyexecd never said where it listens"
        threading.Thread(target=self._drain, daemon=True).start()
        threading.Thread(target=lambda: self.proc.stderr.read(), daemon=True).start()

    def _drain(self):
        for line in self.proc.stdout:
            self.logs.append(line)

    def request_ids(self):
        ids = set()
        for line in list(self.logs):
            try:
                ids.add(json.loads(line).get("request_id"))
            except ValueError:
                pass
        return ids

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def pyexecd():
    server = Pyexecd()
    yield server
    server.stop()


def front(backends, cert=None, *flags):
    argv = [PYTHON, os.path.join(HERE, "tls_front.py"), "--host", LOOPBACK, *flags]
    for port in backends:
        argv += ["--backend", f"127.0.0.1:{port}"]
    if cert:
        argv += ["--cert", cert[0], "--key", cert[1]]
    else:
        argv += ["--plain"]
    return Server(argv, pattern=r"listening on (\S+):(\d+)")


@pytest.fixture(scope="module")
def tls_front(pki, pyexecd):
    """TLS for localhost in front of pyexecd; Authorization required."""
    server = front([pyexecd.port], pki["good"], "--require-header", "Authorization")
    yield server
    server.stop()


def https(server, host="localhost", path="/execute"):
    return f"https://{host}:{server.port}{path}"


def test_cacert_and_header_get_only_200s_and_the_header_arrives(pki, pyexecd, tls_front):
    out = bench_json("-n", "40", "-c", "2", "-w", "0", "--cacert", pki["ca"],
                     "-H", f"Authorization: {TOKEN}", "-H", "X-Request-Id: bench-tls-header",
                     https(tls_front))
    assert out["status"] == {"200": 40}, out
    assert out["errors"]["total"] == 0
    assert out["url"].startswith("https://localhost:")
    tls = out["tls"]
    assert tls["verified"] is True and tls["trust"] == pki["ca"]
    assert tls["version"] in ("TLSv1.2", "TLSv1.3")
    assert tls["handshakes"] == 2 and tls["handshake_ms"]["count"] == 2
    # The front refuses requests without Authorization, so 200s prove it
    # arrived; pyexecd logs the X-Request-Id it was sent.
    assert "bench-tls-header" in pyexecd.request_ids()
    assert tls_front.stdout.readline().strip() == "sni localhost"


def test_without_cacert_the_run_stops_at_verification(tls_front):
    # -d 30s: were the failure counted instead of fatal, this would run 30 s.
    proc = run_bench("-d", "30s", "-c", "4", "-w", "0", "-H", f"Authorization: {TOKEN}",
                     https(tls_front), timeout=20)
    assert proc.returncode == 1, proc
    assert "certificate verification failed" in proc.stderr
    # X509_verify_cert_error_string() of a CA the system store does not hold.
    assert re.search(r"self.signed certificate|unable to get local issuer", proc.stderr), proc.stderr
    assert proc.stdout == ""


def test_wrong_host_name_is_refused(pki, pyexecd):
    server = front([pyexecd.port], pki["wrong"])
    try:
        proc = run_bench("-n", "5", "-w", "0", "--cacert", pki["ca"], https(server), timeout=20)
        assert proc.returncode == 1
        assert "certificate verification failed for localhost" in proc.stderr
        assert "hostname mismatch" in proc.stderr
    finally:
        server.stop()


def test_address_not_in_certificate_is_refused(pki, pyexecd):
    server = front([pyexecd.port], pki["wrong"])
    try:
        literal = f"[{LOOPBACK}]" if ":" in LOOPBACK else LOOPBACK
        proc = run_bench("-n", "5", "-w", "0", "--cacert", pki["ca"], https(server, literal),
                         timeout=20)
        assert proc.returncode == 1
        assert "IP address mismatch" in proc.stderr
    finally:
        server.stop()


def test_insecure_runs_and_says_so_loudly(tls_front):
    proc = run_bench("-n", "10", "-c", "1", "-w", "0", "-k", "-H", f"Authorization: {TOKEN}",
                     https(tls_front))
    assert proc.returncode == 0, proc.stderr
    assert "200: 10" in proc.stdout
    assert proc.stdout.count("TLS CERTIFICATE NOT VERIFIED") == 2  # at the top and the bottom
    proc = run_bench("--json", "-n", "5", "-c", "1", "-w", "0", "--insecure", "-H",
                     f"Authorization: {TOKEN}", https(tls_front))
    assert proc.returncode == 0, proc.stderr
    assert "WARNING: -k/--insecure" in proc.stderr  # for whoever watches a --json run
    out = json.loads(proc.stdout)
    assert out["tls"]["verified"] is False and out["tls"]["trust"] == "NOT VERIFIED"
    assert out["errors"]["tls"] == 0


def test_missing_header_401s_are_counted_not_fatal(pki, tls_front):
    out = bench_json("-n", "20", "-c", "2", "-w", "0", "--cacert", pki["ca"], https(tls_front))
    assert out["status"] == {"401": 20}
    assert out["error_types"] == {"unauthorized": 20}
    assert out["errors"]["total"] == 0


def test_metrics_breakdown_when_reachable(pki, tls_front):
    proc = run_bench("-n", "30", "-c", "2", "-w", "0", "--cacert", pki["ca"],
                     "-H", f"Authorization: {TOKEN}", https(tls_front))
    assert proc.returncode == 0, proc.stderr
    for words in ("server view", "one instance's view", "queue wait", "fork", "execution",
                  "total"):
        assert words in proc.stdout, proc.stdout
    out = bench_json("-n", "30", "-c", "2", "-w", "0", "--cacert", pki["ca"],
                     "-H", f"Authorization: {TOKEN}", https(tls_front))
    stages = out["server"]["stages"]
    # Every measured request ran on the one pyexecd (the scrape itself may add one).
    assert stages["execution"]["count"] == 30
    assert 30 <= stages["total"]["count"] <= 32
    assert 0 < stages["execution"]["p50_le_ms"] <= stages["execution"]["p99_le_ms"]
    assert 0 < stages["execution"]["mean_ms"] <= stages["execution"]["p99_le_ms"]


def test_metrics_skipped_cleanly_when_not_reachable(stub):
    proc = run_bench("-n", "10", "-c", "1", "-w", "0", stub.url)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"server view  skipped: /metrics .*HTTP 501", proc.stdout), proc.stdout
    out = bench_json("-n", "10", "-c", "1", "-w", "0", stub.url)
    assert "HTTP 501" in out["server"]["skipped"]
    assert out["status"] == {"200": 10}
    out = bench_json("-n", "5", "-c", "1", "-w", "0", "--no-metrics", stub.url)
    assert out["server"] is None


def test_metrics_unreachable_port_is_skipped(tmp_path):
    with socket.socket() as holder:  # bound, never listening: refused
        holder.bind(("127.0.0.1", 0))
        out = bench_json("-n", "2", "-c", "1", "-w", "0", f"http://127.0.0.1:{holder.getsockname()[1]}/x")
    assert "cannot connect" in out["server"]["skipped"]


def test_metrics_that_never_answer_are_skipped_in_bounded_time():
    # Connections complete in the kernel's backlog; nothing ever answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/execute"
        out = bench_json("-n", "2", "-c", "2", "-w", "0", "-t", "300ms", url)
    assert out["errors"]["timeout"] == 2
    assert "no complete answer within 10 s" in out["server"]["skipped"]


def test_two_instances_behind_round_robin_are_counted(pki, pyexecd):
    second = Pyexecd()
    server = front([pyexecd.port, second.port], pki["good"])
    try:
        out = bench_json("-n", "40", "-c", "2", "-w", "0", "--cacert", pki["ca"], https(server))
        assert out["status"] == {"200": 40}
        instances = out["instances"]
        assert len(instances) == 2, instances
        assert sum(instances.values()) == 40
        assert all(re.fullmatch(r"[0-9a-f]{16}", i) for i in instances)
        proc = run_bench("-n", "10", "-c", "1", "-w", "0", "--cacert", pki["ca"], https(server))
        assert "instances    2 seen" in proc.stdout
    finally:
        server.stop()
        second.stop()


def test_instance_table_is_bounded():
    stub = Server([PYTHON, os.path.join(HERE, "stub_server.py"), "--instance-per-answer"])
    try:
        out = bench_json("-n", "100", "-c", "1", "-w", "0", "--no-metrics", stub.url)
    finally:
        stub.stop()
    assert out["status"] == {"200": 100}
    assert len(out["instances"]) == 64
    assert out["instances_other"] == 36
    # Long ids are cut, never overflow.
    assert all(len(i) == 95 and i.startswith("instance-") for i in out["instances"])


def test_instance_names_the_revision(tmp_path):
    env = dict(os.environ, K_REVISION="pyexec-00042-abc")
    proc = subprocess.Popen([PYEXECD, "--host", "127.0.0.1", "--port", "0", "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        port = None
        for _ in range(200):
            line = proc.stderr.readline()
            m = re.search(r"listening on [^ ]+:(\d+)", line)
            if m:
                port = int(m.group(1))
                break
        # Any answer carries the header, even before the workers are warm.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = s.recv(4096)
                assert chunk
                head += chunk
        assert re.search(rb"\r\nX-Pyexec-Instance: pyexec-00042-abc/[0-9a-f]{16}\r\n", head), head
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_reconnects_resume_the_tls_session(pki, pyexecd):
    server = front([pyexecd.port], pki["good"], "--close")
    try:
        out = bench_json("-n", "20", "-c", "1", "-w", "0", "--cacert", pki["ca"], https(server))
        assert out["status"] == {"200": 20}
        assert out["errors"]["total"] == 0
        assert out["connects"]["reconnects"] >= 19
        tls = out["tls"]
        assert tls["handshakes"] >= 20
        assert tls["resumed"] >= tls["handshakes"] - 2, tls  # all but the first (or two)
    finally:
        server.stop()


def test_tls_to_a_plain_server_is_counted_not_fatal(stub):
    out = bench_json("-n", "3", "-c", "1", "-w", "0", "-k", f"https://127.0.0.1:{stub.port}/execute")
    assert out["errors"]["tls"] == 3
    assert out["errors"]["tls_first"]
    assert out["requests"] == 0


def test_ramp_writes_one_series_row_per_second(stub, tmp_path):
    series = tmp_path / "series.csv"
    out = bench_json("-R", "20:80", "-d", "3s", "-w", "0", "-c", "4", "--series", str(series),
                     stub.url)
    assert out["mode"] == "open-loop" and out["rate"] == 20 and out["rate_end"] == 80
    lines = series.read_text().splitlines()
    assert lines[0] == "second,target_rps,sent,answered,rps,p50_ms,p99_ms,non_2xx,errors"
    rows = [dict(zip(lines[0].split(","), line.split(","))) for line in lines[1:]]
    assert [r["second"] for r in rows] == ["0", "1", "2"]
    assert out["series"] == {"file": str(series), "rows": 3}
    targets = [float(r["target_rps"]) for r in rows]
    assert targets == [30.0, 50.0, 70.0]
    sent = [int(r["sent"]) for r in rows]
    assert sent[0] < sent[1] < sent[2]
    # The ramp's integral: (20 + 80) / 2 * 3 s = 150 sends.
    assert abs(sum(sent) - 150) <= 3
    assert sum(int(r["answered"]) for r in rows) == out["requests"]
    assert all(float(r["p50_ms"]) <= float(r["p99_ms"]) for r in rows)


def test_plot_draws_the_series(stub, tmp_path):
    pytest.importorskip("matplotlib")
    series = tmp_path / "series.csv"
    bench_json("-R", "10:40", "-d", "2s", "-w", "0", "-c", "2", "--series", str(series), stub.url)
    png = tmp_path / "series.png"
    proc = subprocess.run([PYTHON, os.path.join(REPO, "bench", "plot"), str(series), "-o", str(png)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR" and len(data) > 1000


def test_plot_refuses_a_file_that_is_not_a_series(tmp_path):
    pytest.importorskip("matplotlib")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    proc = subprocess.run([PYTHON, os.path.join(REPO, "bench", "plot"), str(bad)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "not a pyexec-bench --series file" in proc.stderr
