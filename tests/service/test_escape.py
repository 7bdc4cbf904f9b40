"""The escape suite: every way out the sandbox promise (SECURITY.md) closes, attempted
through /execute. Each probe returns "ESCAPED" if the forbidden thing worked;
none may, and the service must keep serving after each."""
import os
import re
import signal
import subprocess
import threading

import pytest

from conftest import AS_USER, PYEXECD, Server, wait_for_temp_file

ESCAPES = {
    "socket_to_own_port": "import socket\ndef main(port):\n    socket.create_connection(('127.0.0.1', port), 2)\n    return 'ESCAPED'",
    "dns": "import socket\ndef main(port):\n    socket.getaddrinfo('localhost', 80)\n    return 'ESCAPED'",
    "os_system": "import os\ndef main(port):\n    return 'ESCAPED' if os.system('true') == 0 else 'refused'",
    "subprocess": "import subprocess\ndef main(port):\n    subprocess.run(['/bin/true'])\n    return 'ESCAPED'",
    "os_fork": "import os\ndef main(port):\n    if os.fork() == 0:\n        os._exit(0)\n    return 'ESCAPED'",
    "multiprocessing": (
        "import multiprocessing\ndef work():\n    pass\n"
        "def main(port):\n    p = multiprocessing.Process(target=work)\n    p.start()\n    p.join()\n    return 'ESCAPED'"
    ),
    "kill_parent": "import os, signal\ndef main(port):\n    os.kill(os.getppid(), signal.SIGKILL)\n    return 'ESCAPED'",
    "kill_everyone": "import os, signal\ndef main(port):\n    os.kill(-1, signal.SIGKILL)\n    return 'ESCAPED'",
    "read_parent_environ": "import os\ndef main(port):\n    open(f'/proc/{os.getppid()}/environ', 'rb').read()\n    return 'ESCAPED'",
    "read_parent_mem": (
        "import os\ndef main(port):\n    with open(f'/proc/{os.getppid()}/mem', 'rb') as f:\n"
        "        f.seek(0x400000)\n        f.read(16)\n    return 'ESCAPED'"
    ),
    "write_root": "def main(port):\n    open('/pyexec-escape', 'w').write('x')\n    return 'ESCAPED'",
    "write_etc": "def main(port):\n    open('/etc/pyexec-escape', 'w').write('x')\n    return 'ESCAPED'",
    "write_tmp": "def main(port):\n    open('/tmp/pyexec-escape', 'w').write('x')\n    return 'ESCAPED'",
    "symlink_to_etc": (
        "import os\ndef main(port):\n    os.symlink('/etc', 'etc')\n"
        "    open('etc/pyexec-escape', 'w').write('x')\n    return 'ESCAPED'"
    ),
    "read_passwd": "def main(port):\n    open('/etc/passwd').read()\n    return 'ESCAPED'",
    "fill_disk": (
        "def main(port):\n    with open('big', 'wb') as f:\n"
        "        for _ in range(64):\n            f.write(b'x' * (1 << 20))\n    return 'ESCAPED'"
    ),
    # Signals by file ownership, aimed at the worker.
    "fcntl_setown_parent": (
        "import fcntl, os\ndef main(port):\n    r, w = os.pipe()\n"
        "    fcntl.fcntl(r, fcntl.F_SETOWN, os.getppid())\n    return 'ESCAPED'"
    ),
    "fcntl_setsig": (
        "import fcntl, os, signal\ndef main(port):\n    r, w = os.pipe()\n"
        "    fcntl.fcntl(r, fcntl.F_SETSIG, signal.SIGUSR1)\n    return 'ESCAPED'"
    ),
    "fcntl_o_async": (
        "import fcntl, os\ndef main(port):\n    r, w = os.pipe()\n"
        "    fcntl.fcntl(r, fcntl.F_SETFL, os.O_ASYNC | os.O_NONBLOCK)\n    return 'ESCAPED'"
    ),
    # Watching other requests and processes.
    "fcntl_notify_shared_dir": (
        "import fcntl, os\ndef main(port):\n    fd = os.open('/usr/lib/python3.11', os.O_RDONLY)\n"
        "    fcntl.fcntl(fd, fcntl.F_NOTIFY, fcntl.DN_ACCESS | fcntl.DN_MULTISHOT)\n    return 'ESCAPED'"
    ),
    "cpu_clock_of_parent": (
        "import os, time\ndef main(port):\n"
        "    clock = ((~os.getppid()) << 3) | 2  # its CPU clock, CPUCLOCK_SCHED\n"
        "    time.clock_gettime(clock)\n    return 'ESCAPED'"
    ),
    "cpu_clock_of_pid_1": (
        "import time\ndef main(port):\n    time.clock_getres(((~1) << 3) | 2)\n    return 'ESCAPED'"
    ),
    "getsid_parent": "import os\ndef main(port):\n    os.getsid(os.getppid())\n    return 'ESCAPED'",
    "getpgid_parent": "import os\ndef main(port):\n    os.getpgid(os.getppid())\n    return 'ESCAPED'",
    "sched_getaffinity_parent": "import os\ndef main(port):\n    os.sched_getaffinity(os.getppid())\n    return 'ESCAPED'",
    "sched_getparam_parent": "import os\ndef main(port):\n    os.sched_getparam(os.getppid())\n    return 'ESCAPED'",
    "sched_getscheduler_parent": "import os\ndef main(port):\n    os.sched_getscheduler(os.getppid())\n    return 'ESCAPED'",
    "getpriority_parent": "import os\ndef main(port):\n    os.getpriority(os.PRIO_PROCESS, os.getppid())\n    return 'ESCAPED'",
    "stat_proc_parent": "import os\ndef main(port):\n    os.stat(f'/proc/{os.getppid()}')\n    return 'ESCAPED'",
    "stat_proc_1": "import os\ndef main(port):\n    os.stat('/proc/1')\n    return 'ESCAPED'",
    "list_parent_fds": "import os\ndef main(port):\n    os.listdir(f'/proc/{os.getppid()}/fd')\n    return 'ESCAPED'",
    "read_parent_maps": "import os\ndef main(port):\n    open(f'/proc/{os.getppid()}/maps').read()\n    return 'ESCAPED'",
    "fill_disk_many_files": (
        "def main(port):\n    for i in range(64):\n"
        "        with open(f'f{i}', 'wb') as f:\n            f.write(b'x' * (1 << 20))\n    return 'ESCAPED'"
    ),
}

# Raw syscalls through ctypes, by name: the arguments after the number. The
# numbers are the running architecture's (syscall_number). Those after
# perf_event_open are refused whatever their arguments (sandbox_probe has a
# deny_ test for each); unconfined, some of these arguments would give EFAULT
# or EINVAL instead, so EPERM is the filter's answer.
RAW = {
    "socket": (2, 1, 0),
    "execve": (0, 0, 0),
    "ptrace": (0, 0, 0),
    "io_uring_setup": (1, 0, 0),
    "bpf": (0, 0, 0),
    "userfaultfd": (0, 0, 0),
    "unshare": (0, 0, 0),
    "mount": (0, 0, 0),
    "keyctl": (0, 0, 0),
    "perf_event_open": (0, 0, 0),
    "socketpair": (1, 1, 0),
    "pidfd_open": (1, 0, 0),
    "kcmp": (1, 1, 0),
    "memfd_create": (0, 0, 0),
    "msgget": (0, 0o1600, 0),
    "semget": (0, 1, 0o1600),
    "shmget": (0, 4096, 0o1600),
    "inotify_init1": (0, 0, 0),
    "fanotify_init": (0, 0, 0),
    "timerfd_create": (1, 0, 0),
    "timer_create": (1, 0, 0),
    "mlock": (0, 0, 0),
    "personality": (0xFFFFFFFF, 0, 0),
    "seccomp": (2, 0, 0),
    "landlock_create_ruleset": (0, 0, 1),
    "chroot": (0, 0, 0),
    "setns": (0, 0, 0),
}
_numbers = {}


def syscall_number(name):
    """name's syscall number on this machine's architecture, from the C
    library's headers (the C compiler that builds pyexec preprocesses them)."""
    if not _numbers:
        out = subprocess.run(["cc", "-E", "-dM", "-include", "sys/syscall.h", "-x", "c", "/dev/null"],
                             capture_output=True, text=True, check=True).stdout
        for m in re.finditer(r"^#define __NR_(\w+) (\d+)$", out, re.M):
            _numbers[m.group(1)] = int(m.group(2))
    assert name in _numbers, f"no __NR_{name} in this architecture's headers"
    return _numbers[name]
RAW_SCRIPT = (
    "import ctypes\n"
    "def main(args):\n"
    "    libc = ctypes.CDLL(None, use_errno=True)\n"
    "    r = libc.syscall(*args)\n"
    "    return {'r': r, 'errno': ctypes.get_errno()}\n"
)


def still_serving(server):
    status, data = server.execute("def main():\n    return 'alive'")
    assert (status, data["result"]) == (200, "alive")


def has_scratch_tmpfs(server):
    return "scratch-tmpfs" in server.request("GET", "/health")[2]["sandbox"].get("namespaces", [])


def check_escape(server, name):
    """ESCAPES[name] is refused and the service serves on (the container test
    runs this too). Every refusal is an exception the script sees, except:
    os.system reports its failure as -1, and without a tmpfs of --tmp-kb
    (no mount namespace: /health says so) the worker stops a script that
    writes more than its temp dir may hold."""
    status, data = server.execute(ESCAPES[name], input=server.port)
    if name == "os_system":
        assert (status, data.get("result")) == (200, "refused"), data
    elif name == "fill_disk_many_files" and not has_scratch_tmpfs(server):
        assert (status, data["type"]) == (400, "killed") and "temp dir" in data["error"], data
    else:
        assert (status, data["type"]) == (400, "exception"), data
    still_serving(server)


def check_raw_syscall(server, name):
    status, data = server.execute(RAW_SCRIPT, input=[syscall_number(name), *RAW[name]])
    assert status == 200, data
    assert data["result"] == {"r": -1, "errno": 1}, data  # EPERM
    still_serving(server)


@pytest.mark.parametrize("name", sorted(ESCAPES))
def test_escape_refused(server, name):
    namespaces = server.request("GET", "/health")[2]["sandbox"]["namespaces"]
    if name in ("stat_proc_parent", "stat_proc_1") and "proc-hidepid" not in namespaces:
        # SECURITY.md, "What degrades where": e.g. started unprivileged.
        pytest.skip("no private /proc (no mount namespace): stat shows that other pids exist")
    check_escape(server, name)


@pytest.mark.parametrize("name", sorted(RAW))
def test_raw_syscall_refused(server, name):
    check_raw_syscall(server, name)


def test_service_dir_not_writable(server):
    target = os.path.dirname(os.path.abspath(server.proc.args[0]))
    script = "import os\ndef main(d):\n    open(os.path.join(d, 'escape'), 'w').write('x')\n    return 'ESCAPED'"
    status, data = server.execute(script, input=target)
    assert status == 400 and data["type"] == "exception"
    assert not os.path.exists(os.path.join(target, "escape"))


def test_no_inherited_socket_or_stray_fd(server):
    script = (
        "import os, stat\n"
        "def main():\n"
        "    fds = [fd for fd in range(1024) if os.path.exists(f'/proc/self/fd/{fd}')]\n"
        "    socks = [fd for fd in fds if stat.S_ISSOCK(os.fstat(fd).st_mode)]\n"
        "    return {'fds': fds, 'sockets': socks}\n"
    )
    status, data = server.execute(script)
    assert status == 200, data
    assert data["result"]["sockets"] == []
    assert data["result"]["fds"] == [0, 1, 2, 3]  # request, stdout, stderr, result


def test_signals_start_at_their_defaults(server):
    """No handler, ignored signal or blocked mask of the worker's reaches the
    script: only SIGPIPE and SIGXFSZ are ignored (a write fails with an
    error Python raises, instead of killing the child)."""
    script = ("def main():\n"
              "    return {l.split(':')[0]: int(l.split()[1], 16) for l in open('/proc/self/status')\n"
              "            if l.startswith(('SigBlk', 'SigIgn', 'SigCgt'))}")
    status, data = server.execute(script)
    assert status == 200, data
    ignored = 1 << (signal.SIGPIPE - 1) | 1 << (signal.SIGXFSZ - 1)
    assert data["result"] == {"SigBlk": 0, "SigIgn": ignored, "SigCgt": 0}


def test_seccomp_in_force_inside_user_code(server):
    script = "def main():\n    return [l for l in open('/proc/self/status') if l.startswith('Seccomp:')][0].split()[1]"
    status, data = server.execute(script)
    assert (status, data["result"]) == (200, "2")


def test_environment_is_clean(make_server):
    s = make_server("--workers", "1", env={"SECRET_TOKEN": "hunter2"})
    status, data = s.execute("import os\ndef main():\n    return dict(os.environ)")
    assert status == 200
    env = data["result"]
    assert "SECRET_TOKEN" not in env and "hunter2" not in str(env)
    assert set(env) <= {"PATH", "HOME", "TMPDIR", "LANG", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                        "NUMEXPR_NUM_THREADS", "MPLBACKEND", "MPLCONFIGDIR"}


def test_runs_unprivileged(server):
    script = (
        "import os\n"
        "def main():\n"
        "    status = dict(l.split(':', 1) for l in open('/proc/self/status'))\n"
        "    return {'ids': [os.getuid(), os.geteuid(), os.getgid(), os.getegid()], 'groups': os.getgroups(),\n"
        "            'caps': [int(status[k], 16) for k in ('CapInh', 'CapPrm', 'CapEff', 'CapAmb')],\n"
        "            'no_new_privs': int(status['NoNewPrivs'])}\n"
    )
    status, data = server.execute(script)
    assert status == 200, data
    r = data["result"]
    uid, euid, gid, egid = r["ids"]
    if os.geteuid() == 0:  # worker i runs its children as 65534 - i, no groups
        assert uid == euid and uid in (65534, 65533) and (gid, egid) == (uid, uid) and r["groups"] == []
    else:  # started by a normal user, scripts run as that user
        assert [uid, euid, gid, egid] == [os.getuid(), os.geteuid(), os.getgid(), os.getegid()]
    assert r["caps"] == [0, 0, 0, 0] and r["no_new_privs"] == 1, r


def test_concurrent_requests_run_as_different_uids(server):
    if os.geteuid() != 0:
        pytest.skip("privilege drop needs root")
    # Both wait for a "go" the test drops into their temp dirs once it has
    # seen both running: they ran at the same time, on the two workers.
    script = (
        "import os, time\n"
        "def main():\n"
        "    open('running', 'w').close()\n"
        "    for _ in range(6000):\n"
        "        if os.path.exists('go'):\n"
        "            return [os.getuid(), os.getgid()]\n"
        "        time.sleep(0.01)\n"
        "    return 'never released'\n"
    )
    out = []
    threads = [threading.Thread(target=lambda: out.append(server.execute(script))) for _ in range(2)]
    for t in threads:
        t.start()
    first = wait_for_temp_file(server, "running")
    second = wait_for_temp_file(server, "running", other_than=first)
    for d in (first, second):
        open(os.path.join(d, "go"), "w").close()
    for t in threads:
        t.join()
    assert all(status == 200 for status, _ in out), out
    ids = sorted(tuple(data["result"]) for _, data in out)
    assert ids == [(65533, 65533), (65534, 65534)]


def test_cannot_read_concurrent_requests_temp_files(server):
    """The thief runs entirely while the holder's file exists: the test sees
    the file (through the worker's root) before it sends the thief, and lets
    the holder end (a "go" file in its dir) only once the thief has answered."""
    secret = "S3CRET-" + os.urandom(6).hex()
    holder = (
        "import os, time\n"
        "def main(secret):\n"
        "    open('secret.txt', 'w').write(secret)\n"
        "    for _ in range(6000):\n"
        "        if os.path.exists('go'):\n"
        "            return 'held'\n"
        "        time.sleep(0.01)\n"
        "    return 'never released'\n"
    )
    thief = (
        "import glob, os\n"
        "def main():\n"
        "    found = []\n"
        "    for root in ('/tmp', '/var/tmp', '/dev/shm', os.path.dirname(os.getcwd())):\n"
        "        for path in glob.glob(root + '/**/secret.txt', recursive=True):\n"
        "            try:\n"
        "                found.append(open(path).read())\n"
        "            except OSError:\n"
        "                pass\n"
        "    return found\n"
    )
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("h", server.execute(holder, input=secret)))
    t.start()
    held_dir = wait_for_temp_file(server, "secret.txt")
    try:
        status, data = server.execute(thief)
    finally:
        open(os.path.join(held_dir, "go"), "w").close()
        t.join()
    assert out["h"][0] == 200 and out["h"][1]["result"] == "held", out["h"]
    assert status == 200 and data["result"] == [], data


def test_self_test_catches_an_unconfined_child():
    """pyexecd-unconfined is pyexecd with the child's confinement compiled out
    (a benchmark build). Its start-up self-test must notice."""
    binary = os.path.join(os.path.dirname(PYEXECD), "pyexecd-unconfined")
    s = Server("--workers", "1", binary=binary)
    try:
        assert any("self-test failed as it must" in l for l in s.lines if l)
        assert s.request("GET", "/health")[2]["sandbox"] == {"confined": False}
    finally:
        s.stop()


def test_own_process_calls_still_work(server):
    """What the argument rules leave a script: its own clocks, pid 0 and its
    own pid, fcntl for blocking and close-on-exec, and locks on its own
    files (sqlite3 needs them)."""
    script = (
        "import fcntl, os, sqlite3, time\n"
        "def main():\n"
        "    me = os.getpid()\n"
        "    time.process_time(); time.thread_time(); time.clock_getres(time.CLOCK_PROCESS_CPUTIME_ID)\n"
        "    time.sleep(0.001)\n"
        "    for pid in (0, me):\n"
        "        os.getsid(pid); os.getpgid(pid); os.sched_getaffinity(pid)\n"
        "        os.sched_getparam(pid); os.sched_getscheduler(pid)\n"
        "        os.getpriority(os.PRIO_PROCESS, pid)\n"
        "    r, w = os.pipe()\n"
        "    os.set_blocking(r, False); os.set_inheritable(r, True)\n"
        "    with open('lock', 'w') as f:\n"
        "        fcntl.flock(f, fcntl.LOCK_EX); fcntl.lockf(f, fcntl.LOCK_UN)\n"
        "    db = sqlite3.connect('data.db')\n"
        "    db.execute('create table t (x)'); db.execute('insert into t values (41)'); db.commit()\n"
        "    return db.execute('select x + 1 from t').fetchone()[0]\n"
    )
    status, data = server.execute(script)
    assert (status, data.get("result")) == (200, 42), data


def test_service_processes_are_not_dumpable(make_server):
    """The template and workers are not dumpable, so their /proc entries
    (fd, maps, environ, mem) need ptrace rights over them even for a process
    of the same uid: that is what shuts them where Landlock is missing and
    the service runs as a normal user. Linux shows it as the entries' owner
    (root for a process that is not dumpable; /proc/<pid> itself keeps it)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to start pyexecd as another user")
    s = make_server("--workers", "2", wrap=AS_USER)
    tree = s.descendants()
    template = [pid for pid, ppid, _ in tree if ppid == s.proc.pid]
    assert len(template) == 1, tree
    service = template + [pid for pid, ppid, _ in tree if ppid == template[0]]
    assert len(service) == 3, tree  # the template and two workers
    for pid in service:
        assert os.stat(f"/proc/{pid}/maps").st_uid == 0, pid
    status, data = s.execute(
        "import os\ndef main():\n    out = []\n"
        "    for f in ('maps', 'environ', 'fd'):\n"
        "        try:\n"
        "            p = f'/proc/{os.getppid()}/{f}'\n"
        "            os.listdir(p) if f == 'fd' else open(p).read()\n"
        "            out.append(f)\n"
        "        except OSError:\n"
        "            pass\n"
        "    return out\n"
    )
    assert (status, data.get("result")) == (200, []), data
