"""The service suite against a pyexecd already running in a container.

tests/container/run.sh starts the image under runc or runsc (gVisor) and runs
this file with PYEXEC_URL (the server) and PYEXEC_RUNTIME (runc or runsc).
The cases are the service tier's: every conformance case (tests/conformance), the escape probes
(test_escape.py's tables), the forged result frames (test_forge.py), and each
error type a script or client can cause.
What the sandbox degrades to is read from /health and asserted per runtime.
"""
import os
import sys
import threading
import urllib.parse

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../service"))
from conftest import Client, check_case, load_cases  # noqa: E402
from test_escape import ESCAPES, RAW, check_escape, check_raw_syscall, still_serving  # noqa: E402

# Collected here too, against the container's server: a script's writes to the
# result channel change nothing, and the argument rules leave its own calls.
from test_escape import test_own_process_calls_still_work  # noqa: E402,F401
from test_forge import (  # noqa: E402,F401
    test_a_forged_success_ends_the_run,
    test_forged_result_over_the_cap,
    test_forged_setup_failure_is_not_a_500,
    test_forged_stats_are_not_believed,
    test_peak_rss_is_the_kernels,
    test_script_exit_codes_are_never_a_service_fault,
)

URL = os.environ.get("PYEXEC_URL", "http://127.0.0.1:8080")
RUNTIME = os.environ.get("PYEXEC_RUNTIME", "runc")
CASES = load_cases()


@pytest.fixture(scope="module")
def server():
    u = urllib.parse.urlsplit(URL)
    return Client(u.hostname, u.port)


@pytest.fixture(scope="module")
def health(server):
    status, _, health = server.request("GET", "/health")
    assert status == 200 and health["status"] == "ok", health
    return health


@pytest.fixture(scope="module")
def sandbox(health):
    return health["sandbox"]


@pytest.fixture(scope="module")
def sandbox_uids(health):
    """The container starts pyexecd as root; worker i drops its children to
    65534 - i (--user), so concurrent scripts never share a uid."""
    return range(65534 - health["workers"]["total"] + 1, 65535)


# --- /health: the layers in force, per runtime ------------------------------


def test_health_names_layers_in_force(sandbox, sandbox_uids):
    # Everywhere: seccomp allowlist, no_new_privs, the drop from root.
    assert sandbox["seccomp"] is True and sandbox["no_new_privs"] is True
    assert sandbox["privdrop"] is True and sandbox["uid"] in sandbox_uids and sandbox["gid"] in sandbox_uids
    if RUNTIME == "runsc":
        # gVisor has no Landlock, and refuses SECCOMP_RET_KILL_PROCESS.
        assert sandbox["landlock"] == "unavailable"
        assert sandbox["seccomp_bad_arch"] == "kill_thread"
    else:
        # runc on this host's kernel, under podman's default seccomp profile
        # (which allows the landlock_* calls).
        assert isinstance(sandbox["landlock"], int) and sandbox["landlock"] >= 1
        assert sandbox["seccomp_bad_arch"] == "kill_process"


# --- conformance -------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_conformance(server, case):
    if "server" in case:
        pytest.skip(f"needs pyexecd started with {' '.join(case['server'])}; the image runs with its defaults")
    check_case(server, case)


# --- escapes -----------------------------------------------------------------


def documented_degradation(name, sandbox):
    """SECURITY.md, "What degrades where": the probes a host without these
    layers cannot refuse. None is an escape from what that table promises."""
    if name == "read_passwd" and sandbox["landlock"] == "unavailable":
        return "without Landlock, reads rest on the uid drop; /etc/passwd is world-readable"
    if name == "dns" and sandbox["landlock"] == "unavailable":
        # No socket is made: glibc answers 'localhost' from /etc/hosts, which
        # is readable without Landlock. test_no_name_resolution checks DNS.
        return "getaddrinfo('localhost') reads /etc/hosts (world-readable without Landlock)"
    if name in ("stat_proc_parent", "stat_proc_1") and "proc-hidepid" not in sandbox["namespaces"]:
        # Landlock (or, without it, the uid) shuts the entries; that the pid
        # exists, and its owner, show without a private /proc.
        return "no private /proc (no mount namespace): stat shows other pids"
    if name in ("list_parent_fds", "read_parent_maps") and RUNTIME == "runsc":
        # gVisor shows them to every uid, dumpable or not (SECURITY.md,
        # "gVisor and other processes' /proc entries").
        return "gVisor: /proc/<pid>/fd and maps are readable by every uid"
    if name == "read_parent_environ" and RUNTIME == "runsc":
        # gVisor shows every /proc/<pid>/environ to every uid. The worker's
        # holds only LANG and PATH (pyexecd starts the template with those);
        # test_service_environment_unreadable checks no secret shows.
        return "gVisor: /proc/<pid>/environ is world-readable; the worker's is LANG and PATH"
    return None


@pytest.mark.parametrize("name", sorted(ESCAPES))
def test_escape_refused(server, sandbox, name):
    reason = documented_degradation(name, sandbox)
    if reason:
        pytest.skip(reason)
    check_escape(server, name)


@pytest.mark.parametrize("name", sorted(RAW))
def test_raw_syscall_refused(server, name):
    check_raw_syscall(server, name)


def test_no_name_resolution(server):
    """A name that needs a DNS query (not /etc/hosts) must not resolve."""
    script = "import socket\ndef main():\n    socket.getaddrinfo('dns.google', 443)\n    return 'ESCAPED'"
    status, data = server.execute(script)
    assert status == 400 and data["type"] == "exception", data


def test_service_environment_unreadable(server):
    """run.sh gives the container a secret-looking variable (PYEXEC_CANARY
    names its value): no /proc file a script can open may show it."""
    canary = os.environ.get("PYEXEC_CANARY")
    if not canary:
        pytest.skip("PYEXEC_CANARY not set")
    script = (
        "import os\n"
        "def main():\n"
        "    seen = {}\n"
        "    for pid in range(1, 200):  # listing /proc may be refused; the pids are small\n"
        "        for f in ('environ', 'cmdline'):\n"
        "            try:\n"
        "                seen[f'/proc/{pid}/{f}'] = open(f'/proc/{pid}/{f}', 'rb').read().decode('latin1')\n"
        "            except OSError:\n"
        "                pass\n"
        "    return seen\n"
    )
    status, data = server.execute(script)
    assert status == 200, data
    leaks = sorted(path for path, text in data["result"].items() if canary in text)
    assert leaks == [], f"the container's environment is readable by a script at {leaks}"


WRITABLE_PROBE = r"""
import os
def main():
    here = os.path.realpath(os.getcwd())
    skip = ('/proc', '/sys', here)
    writable = []
    for top, dirs, files in os.walk('/'):
        dirs[:] = [d for d in dirs if not os.path.join(top, d).startswith(skip)]
        path = os.path.join(top, '.pyexec-write-probe')
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError:
            continue
        os.close(fd)
        os.unlink(path)
        writable.append(top)
    return {'cwd': here, 'writable': writable}
"""


def test_child_can_write_only_its_temp_dir(server):
    """Every directory of the container's file system, tried for real."""
    status, data = server.execute(WRITABLE_PROBE)
    assert status == 200, data
    print(f"{RUNTIME}: child's temp dir {data['result']['cwd']}, other writable dirs: {data['result']['writable']}")
    assert data["result"]["writable"] == []


def test_no_inherited_socket_or_stray_fd(server):
    script = (
        "import os, stat\n"
        "def main():\n"
        "    fds = [fd for fd in range(1024) if os.path.exists(f'/proc/self/fd/{fd}')]\n"
        "    return {'fds': fds, 'sockets': [fd for fd in fds if stat.S_ISSOCK(os.fstat(fd).st_mode)]}\n"
    )
    status, data = server.execute(script)
    assert status == 200, data
    assert data["result"] == {"fds": [0, 1, 2, 3], "sockets": []}


def test_runs_unprivileged_with_clean_environment(server, sandbox_uids):
    script = "import os\ndef main():\n    return [os.getuid(), os.geteuid(), os.getgroups(), sorted(os.environ)]"
    status, data = server.execute(script)
    assert status == 200, data
    uid, euid, groups, env = data["result"]
    assert uid == euid and uid in sandbox_uids and groups == []
    assert set(env) <= {"PATH", "HOME", "TMPDIR", "LANG", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS", "MPLBACKEND", "MPLCONFIGDIR"}
    assert "PORT" not in env and "PYEXEC_HOST" not in env


# --- each error type -----------------------------------------------------------

SCRIPT_ERRORS = [
    ("syntax_error", {"script": "def main(:\n    pass"}),
    ("missing_main", {"script": "x = 1"}),
    ("exception", {"script": "def main():\n    return 1/0"}),
    ("result_not_serializable", {"script": "def main():\n    return object()"}),
    ("timeout", {"script": "import threading\ndef main():\n    threading.Event().wait(30)", "timeout_ms": 500}),
    ("timeout", {"script": "def main():\n    while True: pass", "timeout_ms": 1000}),
    ("memory_limit", {"script": "def main():\n    return len(bytearray(300 << 20))", "memory_mb": 200}),
    ("output_limit", {"script": "def main():\n    return 'x' * (11 << 20)"}),
    ("killed", {"script": "import os, signal\ndef main():\n    os.kill(os.getpid(), signal.SIGSEGV)"}),
    ("exited", {"script": "import sys\ndef main():\n    sys.exit(3)"}),
    ("exited", {"script": "import os\ndef main():\n    os._exit(2)"}),
    ("invalid_request", {"script": "def main(): pass", "scrpt": 1}),
    ("invalid_request", {"script": ""}),
    ("invalid_request", {"script": "def main(): pass", "timeout_ms": 99999999}),
]


@pytest.mark.parametrize("want,body", SCRIPT_ERRORS, ids=[f"{t}-{i}" for i, (t, _) in enumerate(SCRIPT_ERRORS)])
def test_error_type(server, want, body):
    status, data = server.execute(**body)
    assert status == 400 and data["type"] == want, data
    assert data["error"]
    if want == "killed":
        assert data["signal"] == "SIGSEGV"
    still_serving(server)


def test_http_error_types(server):
    status, _, data = server.request("GET", "/nope")
    assert status == 404 and data["type"] == "not_found"
    status, headers, data = server.request("GET", "/execute")
    assert status == 405 and data["type"] == "method_not_allowed" and headers["Allow"] == "POST"
    status, _, data = server.request("POST", "/execute", b'{"script": "def main(): pass"}', {"Content-Type": "text/plain"})
    assert status == 415 and data["type"] == "unsupported_media_type"
    status, data = server.execute("def main(): return 1\n" + "#" * (101 * 1024))
    assert status == 413 and data["type"] == "payload_too_large"
    status, _, data = server.request("POST", "/execute", b"not json", {"Content-Type": "application/json"})
    assert status == 400 and data["type"] == "invalid_request"


def test_concurrent_requests_no_cross_talk(server):
    script = "import numpy as np\ndef main(n):\n    print(n)\n    return int(np.arange(n).sum())"
    out = {}

    def one(n):
        out[n] = server.execute(script, input=n)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(10, 26)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for n, (status, data) in out.items():
        assert status == 200 and data["result"] == n * (n - 1) // 2 and data["stdout"] == f"{n}\n", data


def test_metrics_and_root(server):
    status, _, data = server.request("GET", "/")
    assert status == 200 and data["service"] == "pyexec"
    status, headers, text = server.request("GET", "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    assert b"pyexec_requests_total" in text
