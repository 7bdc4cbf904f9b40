"""pyexec-bench's command line: bad arguments exit 2 with a clear message."""
import pytest

from benchutil import run_bench


@pytest.mark.parametrize("args, message", [
    ([], "missing URL"),
    (["-c", "0", "http://127.0.0.1:1"], "--connections"),
    (["-c", "many", "http://127.0.0.1:1"], "--connections"),
    (["-d", "forever", "http://127.0.0.1:1"], "--duration"),
    (["-n", "-3", "http://127.0.0.1:1"], "--requests"),
    (["-d", "1s", "-n", "10", "http://127.0.0.1:1"], "not both"),
    (["-R", "0", "http://127.0.0.1:1"], "--rate"),
    (["-W", "tensorflow", "http://127.0.0.1:1"], "unknown workload"),
    (["-W", "numpy", "-b", "x.json", "http://127.0.0.1:1"], "not both"),
    (["--bogus", "http://127.0.0.1:1"], "unknown option"),
    (["-c"], "needs a value"),
    (["ftp://example.run.app"], "only http:// and https://"),
    (["-H", "NoColon", "http://127.0.0.1:1"], "bad --header"),
    (["-H", ": value", "http://127.0.0.1:1"], "bad --header"),
    (["-H", "Bad Name: v", "http://127.0.0.1:1"], "bad --header"),
    (["-H", "X-A: 1\r\nX-B: 2", "http://127.0.0.1:1"], "line breaks"),
    (["-H", "content-length: 5", "http://127.0.0.1:1"], "sets this header itself"),
    (["-H", "Transfer-Encoding: chunked", "http://127.0.0.1:1"], "sets this header itself"),
    (["-H", "X-Big: " + "a" * 9000, "http://127.0.0.1:1"], "too long"),
    (["-H"], "needs a value"),
    (["-R", "10:", "http://127.0.0.1:1"], "--rate"),
    (["-R", "0:0", "http://127.0.0.1:1"], "--rate"),
    (["-R", "-5:10", "http://127.0.0.1:1"], "--rate"),
    (["-R", "5:10", "-n", "100", "http://127.0.0.1:1"], "ramp"),
    (["--cacert", "ca.pem", "http://127.0.0.1:1"], "need an https:// URL"),
    (["-k", "http://127.0.0.1:1"], "need an https:// URL"),
    (["-k", "--cacert", "ca.pem", "https://127.0.0.1:1"], "not both"),
    (["--metrics", "metrics", "http://127.0.0.1:1"], "--metrics must be a path"),
    (["http://127.0.0.1:99999/"], "port"),
    (["http://a:1", "http://b:2"], "extra arguments"),
    (["-b", "/nonexistent/body.json", "http://127.0.0.1:1"], "cannot read --body"),
])
def test_bad_arguments_exit_2(args, message):
    proc = run_bench(*args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert proc.stdout == ""


def test_help_exits_0_and_lists_options():
    proc = run_bench("--help")
    assert proc.returncode == 0
    for option in ("--connections", "--duration", "--requests", "--warmup", "--rate",
                   "--workload", "--body", "--json", "--header", "--cacert", "--insecure",
                   "--series", "--metrics", "--no-metrics", "START:END", "http[s]://"):
        assert option in proc.stdout


def test_too_many_headers_exit_2():
    args = []
    for i in range(33):
        args += ["-H", f"X-H{i}: v"]
    proc = run_bench(*args, "http://127.0.0.1:1")
    assert proc.returncode == 2
    assert "at most 32" in proc.stderr


@pytest.mark.parametrize("args, message", [
    (["--cacert", "/nonexistent/ca.pem", "https://127.0.0.1:1/"], "cannot load --cacert"),
    (["--series", "/nonexistent/dir/s.csv", "http://127.0.0.1:1/"], "cannot write --series"),
])
def test_unusable_files_exit_1(args, message):
    proc = run_bench("-n", "1", "-w", "0", *args)
    assert proc.returncode == 1
    assert message in proc.stderr
