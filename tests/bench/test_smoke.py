"""pyexec-bench end to end against the stub server (bounded by -n)."""
import json
import socket

from benchutil import bench_json, run_bench


def test_closed_loop_counts_every_answer(stub):
    out = bench_json("-n", "200", "-c", "4", "-w", "0", stub.url)
    assert out["mode"] == "closed-loop"
    assert out["requests"] == 200
    assert out["status"] == {"200": 200}
    # Plain HTTP keeps the errors object's fields exactly (scripts compare it whole).
    assert out["errors"] == {"total": 0, "connect": 0, "io": 0, "parse": 0, "timeout": 0}
    assert out["tls"] is None
    lat = out["latency_ms"]
    assert lat["count"] == 200
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p99.9"] <= lat["max"]
    assert out["requests_per_s"] > 0


def test_error_types_are_counted_not_fatal(stub, tmp_path):
    body = tmp_path / "raise.json"
    body.write_text(json.dumps({"script": "def main():\n    raise ValueError('x')\n"}))
    out = bench_json("-n", "50", "-c", "2", "-w", "0", "-b", str(body), stub.url)
    assert out["status"] == {"400": 50}
    assert out["error_types"] == {"exception": 50}
    assert out["latency_ms"]["count"] == 50


def test_open_loop_sends_exactly_n(stub):
    out = bench_json("-n", "100", "-c", "4", "-w", "0", "-R", "500", stub.url)
    assert out["mode"] == "open-loop"
    assert out["rate"] == 500
    assert out["requests"] == 100
    assert out["status"] == {"200": 100}
    assert out["unfinished"] == 0


def test_warmup_is_not_counted(stub):
    out = bench_json("-n", "30", "-c", "2", "-w", "300ms", stub.url)
    assert out["requests"] == 30
    assert out["warmup_s"] == 0.3


def test_reconnects_when_server_closes_each_connection(closing_stub):
    out = bench_json("-n", "60", "-c", "3", "-w", "0", closing_stub.url)
    assert out["status"] == {"200": 60}
    assert out["errors"]["total"] == 0


def test_refused_connections_are_counted_not_fatal():
    # A bound socket that never listens: connecting to it is refused.
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        out = bench_json("-n", "5", "-c", "1", "-w", "0", f"http://127.0.0.1:{port}/execute")
    assert out["errors"]["connect"] == 5
    assert out["requests"] == 0


def test_unanswered_requests_time_out(stub, tmp_path):
    body = tmp_path / "hang.json"
    body.write_text(json.dumps({"script": "def main():\n    hang()\n"}))
    out = bench_json("-n", "2", "-c", "2", "-w", "0", "-t", "200ms", "-b", str(body), stub.url)
    assert out["errors"]["timeout"] == 2


def test_duration_mode_text_report(stub):
    proc = run_bench("-d", "300ms", "-w", "0", "-c", "2", stub.url)
    assert proc.returncode == 0, proc.stderr
    for word in ("req/s", "p50", "p99", "p99.9", "status", "200:"):
        assert word in proc.stdout
