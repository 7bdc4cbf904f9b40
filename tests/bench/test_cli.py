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
    (["https://example.run.app"], "https is not supported"),
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
                   "--workload", "--body", "--json"):
        assert option in proc.stdout
