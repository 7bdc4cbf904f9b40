"""What TLS costs pyexec-bench's side: the same closed-loop run against pyexecd
through the same local front end (tests/bench/tls_front.py, Python ssl), once
over plain HTTP and once over TLS, with keep-alive and with the front closing
every connection after its answer (a TLS handshake per request, resumed).
Used by bench/tls-cost and bench/compare.

A throwaway CA and certificate are made with the openssl CLI in a temporary
directory. Runs alternate between the variants (medians reported) so drift
of the shared machine hits all alike. The client's CPU comes from wait4()'s
rusage of each pyexec-bench process: its start-up (process, OpenSSL and the CA
file, the first connection and handshake) is measured by a one-request run of
each variant and taken off, so "client CPU µs/request" is what every further
request costs. Everything stays on 127.0.0.1.
"""
import json
import os
import re
import statistics
import subprocess
import tempfile

import servers

FRONT = os.path.join(servers.REPO, "tests", "bench", "tls_front.py")
VARIANTS = [  # label, TLS, front closes each connection
    ("plain HTTP, keep-alive", False, False),
    ("TLS, keep-alive", True, False),
    ("plain HTTP, new connection per request", False, True),
    ("TLS, new connection per request (resumed)", True, True),
]


def make_pki(d):
    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
            "-subj", "/CN=tls-cost CA")
    openssl("req", *ec, "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=localhost")
    with open(os.path.join(d, "srv.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "1", "-out", "srv.pem", "-extfile", "srv.ext")
    return [os.path.join(d, n) for n in ("ca.pem", "srv.pem", "srv.key")]


class Front:
    def __init__(self, backend_port, cert, key, tls, close):
        argv = [servers.PYTHON, FRONT, "--backend", f"127.0.0.1:{backend_port}"]
        argv += ["--cert", cert, "--key", key] if tls else ["--plain"]
        if close:
            argv.append("--close")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, start_new_session=True)
        line = self.proc.stdout.readline()
        m = re.search(r"listening on ([\d.]+):(\d+)", line)
        if not m:
            self.stop()
            raise RuntimeError(f"the front did not start: {line!r}")
        scheme, host = ("https", "localhost") if tls else ("http", "127.0.0.1")
        self.url = f"{scheme}://{host}:{m.group(2)}/execute"

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def run(bench, url, ca, workload, connections, duration=None, requests=None):
    length = ["-n", str(requests)] if requests else ["-d", f"{duration}s"]
    argv = [bench, "--json", "--no-metrics", "-w", "0", "-c", str(connections), *length,
            "-W", workload, url]
    if url.startswith("https"):
        argv[1:1] = ["--cacert", ca]
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    if proc.returncode != 0:
        raise RuntimeError(f"pyexec-bench failed on {url}")
    result = json.loads(text)
    tls = result["tls"] or {}
    return {"rps": result["requests_per_s"], "p50": result["latency_ms"]["p50"],
            "p99": result["latency_ms"]["p99"], "requests": result["requests"],
            "cpu_us": (usage.ru_utime + usage.ru_stime) * 1e6,
            "handshakes": tls.get("handshakes", 0), "resumed": tls.get("resumed", 0),
            "hs_p50": (tls.get("handshake_ms") or {}).get("p50"),
            "connect_p50": result["connects"]["connect_ms"]["p50"],
            "non200": sum(n for s, n in result["status"].items() if s != "200")
            + result["errors"]["total"]}


def measure(bench, pyexecd_port, workload="trivial", connections=8, duration=5, rounds=3):
    """Per variant: (startup CPU µs runs, measured runs)."""
    fronts = []
    with tempfile.TemporaryDirectory() as d:
        ca, cert, key = make_pki(d)
        try:
            fronts = [Front(pyexecd_port, cert, key, tls, close) for _, tls, close in VARIANTS]
            for front in fronts:  # warm every path once, unmeasured
                run(bench, front.url, ca, workload, connections, 1)
            results = [[] for _ in VARIANTS]
            startup = [[] for _ in VARIANTS]
            for _ in range(rounds):
                for i, front in enumerate(fronts):
                    startup[i].append(run(bench, front.url, ca, workload, 1,
                                          requests=1)["cpu_us"])
                    results[i].append(run(bench, front.url, ca, workload, connections,
                                          duration))
        finally:
            for front in fronts:
                front.stop()
    return startup, results


def markdown(startup, results, workload, connections, duration, rounds):
    lines = [
        f"pyexecd behind a local front end (`tests/bench/tls_front.py`: Python `ssl`, one "
        f"process, forwarding to pyexecd over plain HTTP), workload `{workload}`, "
        f"{connections} connections, closed loop, {duration:g} s per run, variants "
        f"alternated {rounds}x, medians. Client CPU: pyexec-bench's own user + system time "
        "(wait4), start-up (one-request run) taken off.",
        "",
        "| path | req/s | p50 ms | p99 ms | client start-up CPU ms | client CPU µs/request "
        "| connect p50 ms | TLS handshakes (resumed) | handshake p50 ms | non-200 + errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (label, tls, _), runs, starts in zip(VARIANTS, results, startup):
        fixed = statistics.median(starts)
        for r in runs:
            r["per_request"] = max(r["cpu_us"] - fixed, 0) / max(r["requests"] - 1, 1)
        med = {k: statistics.median(r[k] for r in runs)
               for k in ("rps", "p50", "p99", "per_request", "connect_p50", "non200")}
        last = runs[-1]
        hs = f"{last['handshakes']} ({last['resumed']})" if tls else "–"
        hs_p50 = f"{statistics.median(r['hs_p50'] for r in runs):.3f}" if tls else "–"
        lines.append(
            f"| {label} | {med['rps']:.1f} | {med['p50']:.3f} | {med['p99']:.3f} | "
            f"{fixed / 1000:.1f} | {med['per_request']:.0f} | {med['connect_p50']:.3f} | "
            f"{hs} | {hs_p50} | {med['non200']:.0f} |")
    lines += ["", f"1-minute load average right after: {os.getloadavg()[0]:.1f} on "
              f"{os.cpu_count()} CPUs."]
    return "\n".join(lines) + "\n"
