"""Nothing a script does outlives its request: no byte of an earlier request
is readable by a later one, no file, directory or thread survives it, and
every later request gets a clean temp dir with its full cap."""
import hashlib
import json
import os
import subprocess
import time

import pytest

from conftest import AS_USER, PYEXECD, Server, all_temp_dirs, sealed

# Rounds of (token request, scan) per residue run; PYEXEC_RESIDUE_ROUNDS=20
# for the long form.
ROUNDS = int(os.environ.get("PYEXEC_RESIDUE_ROUNDS", "6"))

# An earlier request: every channel carries its own token. Only the script
# and input tokens are in the request; the others are derived inside the
# child from the key, so they exist only on the output path.
TOKEN_SCRIPT = """# {script_token}
import hashlib, os, sys
def token(key, what):
    return 'ZqX' + hashlib.sha256((key + what).encode()).hexdigest()[:21]
def main(arg):
    key = arg['key']
    pad = 'p' * arg['pad']
    print(pad + token(key, 'stdout') + pad)
    sys.stderr.write(pad + token(key, 'stderr') + pad)
    os.write(1, token(key, 'fd1').encode())
    os.makedirs('d/e', exist_ok=True)
    open('d/e/' + token(key, 'file'), 'w').write(pad)
    if arg['fail']:
        raise ValueError(token(key, 'error'))
    return [pad, token(key, 'result')]
"""

# The scan: every writable mapping of this child, [heap] and [stack]
# included, copied (ctypes, no system call) into a private buffer and searched
# for each token as its two halves, compared where they meet: the script never
# holds a whole token. Text tokens all start with one marker, so one pass of
# find() over memory serves them all; the few binary ones are searched each.
# The control token is joined on purpose and must be found.
SCAN_SCRIPT = """import ctypes, mmap
def main(arg):
    control = bytes.fromhex(''.join(arg['control']))
    marker = bytes.fromhex(arg['marker'])
    text, binary = {}, []
    for name, head, tail in arg['text'] + [['control', *arg['control']]]:
        text[bytes.fromhex(head)] = (name, bytes.fromhex(tail))
    hlen = len(next(iter(text)))
    for name, head, tail in arg['binary']:
        binary.append((name, bytes.fromhex(head), bytes.fromhex(tail)))
    size = 16 << 20
    buf = mmap.mmap(-1, size)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    found = {}
    scanned = 0
    def hit(name):
        found[name] = found.get(name, 0) + 1
    for line in open('/proc/self/maps'):
        f = line.split()
        lo, hi = (int(x, 16) for x in f[0].split('-'))
        if 'rw' not in f[1] or lo <= addr < hi or (len(f) > 5 and f[5] in ('[vvar]', '[vsyscall]')):
            continue
        at = lo
        while at < hi:
            n = min(size, hi - at)
            ctypes.memmove(addr, at, n)
            scanned += n
            pos = buf.find(marker, 0, n)
            while pos >= 0:
                name, tail = text.get(buf[pos:pos + hlen], (None, None))
                if name and buf[pos + hlen:pos + hlen + len(tail)] == tail:
                    hit(name)
                pos = buf.find(marker, pos + 1, n)
            for name, h, t in binary:
                pos = buf.find(h, 0, n)
                while pos >= 0:
                    if buf[pos + len(h):pos + len(h) + len(t)] == t:
                        hit(name)
                    pos = buf.find(h, pos + 1, n)
            at += n - 64 if n == size else n
    del control
    return {'found': found, 'scanned': scanned}
"""

MARKER = b"ZqX"


def tok(key, what):
    return "ZqX" + hashlib.sha256((key + what).encode()).hexdigest()[:21]


def split(name, token):
    """[name, first half, second half], as hex of the bytes searched for."""
    b = token.encode() if isinstance(token, str) else token
    return [name, b[:len(b) // 2].hex(), b[len(b) // 2:].hex()]


def residue_run(server, rounds):
    """rounds x (a request leaving tokens everywhere, then a scan of the next
    child's memory for every token so far). Returns the hits."""
    seed = os.urandom(16).hex()
    text, binary, hits = [], [], []
    for i in range(rounds):
        key = hashlib.sha256(f"{seed}-{i}".encode()).hexdigest()
        script_token, input_token = tok(key, "script"), tok(key, "input")
        fail = i % 3 == 2
        arg = {"key": key, "pad": (i % 4) * 100000, "fail": fail, "input": input_token}
        # Distinctive limits: the request frame's numbers are searched too.
        timeout_ms, memory_mb = 14000 + 7 * i + 3, 500 - 3 * i
        script = TOKEN_SCRIPT.format(script_token=script_token)
        status, data = server.execute(script, input=arg, timeout_ms=timeout_ms, memory_mb=memory_mb, timeout=300)
        assert status == (400 if fail else 200), data
        assert tok(key, "stdout") in data["stdout"] and tok(key, "fd1") in data["stdout"]
        assert tok(key, "stderr") in data["stderr"]
        assert tok(key, "error" if fail else "result") in json.dumps(data)
        text += [
            split(f"{i}:{what}", tok(key, what))
            for what in ("script", "input", "stdout", "stderr", "fd1", "file", "error" if fail else "result")
        ]
        # The request frame's header as the worker holds it (limits, then the
        # script's length), and the limits as the worker's structs hold them
        # on its stack: the timeout (padded to 8 bytes) before the CPU limit
        # it gives (the same number here) and before the stdout cap.
        frame = b"".join(n.to_bytes(4, "little") for n in (timeout_ms, memory_mb, len(script.encode())))
        binary.append(split(f"{i}:frame", frame))
        for name, after in (("limits", timeout_ms), ("caps", 1 << 20)):
            binary.append(split(f"{i}:{name}", timeout_ms.to_bytes(8, "little") + after.to_bytes(8, "little")))
        # Each scan looks for every text token so far, and for the numbers of
        # the request just before it (one find() each: what the worker wiped
        # stays wiped, so the scan after each request is the one to look).
        control = split("control", tok(seed, f"control{i}"))[1:]
        arg = {"marker": MARKER.hex(), "text": text, "binary": binary[-3:], "control": control}
        status, data = server.execute(SCAN_SCRIPT, input=arg, timeout=300)
        assert status == 200, data
        found = data["result"]["found"]
        assert found.pop("control", 0) >= 1, data["result"]  # the scan sees what is there
        assert data["result"]["scanned"] > 1 << 20
        hits.append(found)
    return hits


# ctest sets ASAN_OPTIONS for a PYEXEC_SANITIZE build: there ASan checks the
# scan's own reads, and every redzone it must read past is a fault.
@pytest.mark.skipif("ASAN_OPTIONS" in os.environ, reason="ASan faults on the redzones a whole-memory scan reads")
def test_no_residue_of_earlier_requests_in_a_later_childs_memory():
    # A scan reads all of its memory: room for a busy machine.
    s = Server("--workers", "1", "--timeout-ms", "240000", "--cpu-ms", "240000")
    try:
        hits = residue_run(s, ROUNDS)
        assert not any(hits), hits
    finally:
        assert s.stop() == 0


# --- The temp dir: whatever a script leaves there goes with its request ---

TMP_KB = 16384


@pytest.fixture(scope="module", params=["root", "user", "measured"])
def one_worker(request):
    """One worker, started as root, as a normal user (in a user namespace of
    its own), or as root without namespaces (no tmpfs: the worker measures
    and removes the temp dir)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to start pyexecd every way")
    flags = ["--namespaces", "0"] if request.param == "measured" else []
    s = Server("--workers", "1", "--tmp-kb", str(TMP_KB), *flags, wrap=AS_USER if request.param == "user" else ())
    s.mode = request.param
    s.namespaces = s.request("GET", "/health")[2]["sandbox"]["namespaces"]
    s.tmpfs = "mount-ro" in s.namespaces or "scratch-tmpfs" in s.namespaces
    yield s
    scratch = [os.readlink(f"/proc/{w}/cwd") for w in worker_pids(s)]
    assert all(d.startswith("/tmp/pyexec-") for d in scratch), scratch
    assert s.stop() == 0
    for d in scratch:  # nothing left on disk after shutdown
        assert not os.path.exists(d)


def worker_pids(s):
    tree = s.descendants()
    template = [pid for pid, ppid, _ in tree if ppid == s.proc.pid]
    return [pid for pid, ppid, _ in tree if ppid in template]


def scratch_entries(s):
    """{temp dir: its entries} for every temp dir in the worker's scratch dir
    (its cwd), as the worker sees it: it may have a mount namespace of its
    own, and then the temp dirs sit in batch-* dirs there, finished ones
    sealed. Besides the temp dirs, the scratch dir holds batches only."""
    out = {}
    for w in worker_pids(s):
        root = f"/proc/{w}/cwd"
        assert all(n.startswith(("run-", "batch-")) for n in os.listdir(root)), os.listdir(root)
        for d in all_temp_dirs(w):
            try:
                out[d] = os.listdir(d)
            except FileNotFoundError:
                pass  # removed meanwhile
    return out


# The next request's view: what it finds in its temp dir, and the proof that
# it may fill it to its cap.
CLEAN = """import os
def main(kb):
    found = sorted(n for n in os.listdir('.') if not (n == 'out' and not os.listdir('out')))
    with open('fill', 'wb') as f:
        f.write(b'x' * ((kb - 512) << 10))
    return found
"""


def next_request_is_unhurt(s):
    status, data = s.execute(CLEAN, input=TMP_KB)
    assert (status, data.get("result")) == (200, []), data
    # and soon nothing of either request is left beside the spare's empty dir
    # (without a tmpfs, a big tree is removed by a process of the worker's)
    deadline = time.monotonic() + 60
    while True:
        left = scratch_entries(s)
        if len([d for d in left if not sealed(d)]) <= 1 and not any(left.values()):
            break
        assert time.monotonic() < deadline, left
        time.sleep(0.05)


DEEP = """import os
def main(depth):
    for i in range(depth):
        os.mkdir('level-%04d' % i)
        os.chdir('level-%04d' % i)
    with open('bottom', 'wb') as f:
        f.write(b'x' * (12 << 20))
    return depth
"""


def test_a_deep_tree_is_removed(one_worker):
    # 1,000 levels of 10-byte names: a path of 11,000 bytes, past PATH_MAX.
    status, data = one_worker.execute(DEEP, input=1000)
    assert (status, data.get("result")) == (200, 1000), data
    next_request_is_unhurt(one_worker)


MANY = """import os
def main(n):
    made = 0
    try:
        for i in range(n):
            open('f%07d' % i, 'w').close()
            made += 1
            if made % 1000 == 0:
                print(made, flush=True)
    except OSError as e:
        return {'made': made, 'errno': e.errno}
    return {'made': made}
"""


def test_a_million_files_meet_the_file_cap(one_worker):
    status, data = one_worker.execute(MANY, input=1_000_000)
    if one_worker.tmpfs:  # the temp dir's tmpfs has 10,000 inodes
        assert status == 200 and data["result"]["errno"] == 28, data
        assert 9_000 <= data["result"]["made"] <= 10_000, data
    else:
        # Measured: over 10,000 entries counts as over the cap. A slow disk
        # may reach the wall-clock limit first, short of the cap.
        assert status == 400 and data["type"] in ("killed", "timeout"), data
        made = int(data["stdout"].split()[-1]) if data["stdout"] else 0
        assert "temp dir" in data["error"] if made > 10_000 else made <= 10_000, data
    next_request_is_unhurt(one_worker)


CHMOD = """import os
def main(mode):
    os.makedirs('hidden/deeper')
    with open('hidden/deeper/bytes', 'wb') as f:
        f.write(b'x' * (4 << 20))
    os.chmod('hidden/deeper', mode)
    os.chmod('hidden', mode)
    os.chmod('.', mode)
    return oct(mode)
"""


@pytest.mark.parametrize("mode", [0o000, 0o300, 0o500])
def test_a_directory_made_unreadable_is_removed(one_worker, mode):
    status, data = one_worker.execute(CHMOD, input=mode)
    assert (status, data.get("result")) == (200, oct(mode)), data
    next_request_is_unhurt(one_worker)


# --- Threads: a documented cap, met with a clean error ---

# Small stacks: memory alone would stop it at a few dozen threads otherwise.
THREADS = """import threading
def main(n):
    threading.stack_size(64 << 10)
    stop = threading.Event()
    started = 0
    try:
        for _ in range(n):
            threading.Thread(target=stop.wait, daemon=True).start()
            started += 1
    except RuntimeError as e:
        error = str(e)
    else:
        error = None
    stop.set()
    return {'started': started, 'error': error}
"""


def test_a_thread_bomb_meets_the_thread_cap(one_worker):
    status, data = one_worker.execute(THREADS, input=3000)
    # the child's whole stderr on failure: a sanitizer's report is long
    assert status == 200, f"{data.get('error')}\n{data.get('stderr')}"
    # 64 tasks of the uid: the main thread and 63 more (fewer when another
    # process runs under the same uid, e.g. another pyexecd's worker 0)
    assert data["result"]["error"] == "can't start new thread", data
    assert 32 <= data["result"]["started"] <= 63, data
    status, data = one_worker.execute(THREADS, input=10)
    assert (status, data["result"]) == (200, {"started": 10, "error": None}), data


# --- Run as a normal user, a script shares the worker's uid ---

# Every dir above its temp dir up to /tmp: the batch and the scratch dir.
CHMOD_SCRATCH = """import glob, os
def main():
    hit = []
    d = os.path.dirname(os.getcwd())
    while d not in ('/', '/tmp'):
        try:
            os.chmod(d, 0)
            hit.append(d)
        except OSError:
            pass
        d = os.path.dirname(d)
    for d in glob.glob('/tmp/pyexec-*'):
        try:
            os.chmod(d, 0)
            hit.append(d)
        except OSError:
            pass
    return len(hit)
"""


def test_a_scratch_dir_made_unwritable_breaks_no_later_request(make_server):
    if os.geteuid() != 0:
        pytest.skip("needs root to start pyexecd as another user")
    s = make_server("--workers", "2", wrap=AS_USER)
    status, data = s.execute(CHMOD_SCRATCH)
    # its batch and its scratch dir (a normal user's pyexecd has a mount
    # namespace per worker, so its temp dirs are in batches)
    assert status == 200 and data["result"] >= 2, data
    for _ in range(6):  # both workers, each more than once
        status, data = s.execute("def main():\n    return 'fine'")
        assert (status, data.get("result")) == (200, "fine"), data



def test_a_normal_user_without_namespaces_is_refused():
    """Started as a normal user, only each worker's user namespace keeps a
    script (under the service's own uid) from its scratch space, the host's
    network tables and an unbounded thread count: without it pyexecd does
    not start, and says what to do."""
    if os.geteuid() != 0:
        pytest.skip("needs root to start pyexecd as another user")
    proc = subprocess.run([*AS_USER, PYEXECD, "--port", "0", "--namespaces", "0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc
    assert "--namespaces 0 is refused" in proc.stderr and "as root" in proc.stderr, proc.stderr
    assert "ready" not in proc.stderr, proc.stderr



def test_a_normal_user_started_with_sigchld_ignored_starts():
    """Whoever starts pyexecd may leave SIGCHLD ignored (a daemon's own
    setting, a launcher's), and exec keeps it so. A normal user's pyexecd
    still finds the user namespaces this host grants, starts, and serves."""
    if os.geteuid() != 0:
        pytest.skip("needs root to start pyexecd as another user")
    ignoring = ["/usr/bin/python3", "-c", "import os, signal, sys; "
                "signal.signal(signal.SIGCHLD, signal.SIG_IGN); os.execv(sys.argv[1], sys.argv[1:])"]
    s = Server("--workers", "1", wrap=[*AS_USER, *ignoring])
    try:
        assert "user" in s.request("GET", "/health")[2]["sandbox"]["namespaces"]
        status, data = s.execute("def main():\n    return 'fine'")
        assert (status, data.get("result")) == (200, "fine"), data
    finally:
        assert s.stop() == 0

FALLOCATE = """import ctypes, os, time
def main(mb):
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open('hidden', os.O_CREAT | os.O_WRONLY)
    # FALLOC_FL_KEEP_SIZE: blocks without a size, which RLIMIT_FSIZE does not see
    r = libc.fallocate(fd, 1, ctypes.c_long(0), ctypes.c_long(mb << 20))
    if r:
        return 'refused: %d' % ctypes.get_errno()
    time.sleep(2)
    return 'kept %d MiB' % mb
"""


def test_hidden_fallocate_bytes_are_bounded(one_worker):
    status, data = one_worker.execute(FALLOCATE, input=256)
    if one_worker.tmpfs:  # the temp dir's tmpfs refuses past its size
        assert status == 200 and data["result"] in ("refused: 27", "refused: 28"), data  # EFBIG or ENOSPC
    else:  # measured: the blocks count
        assert status == 400 and data["type"] == "killed" and "temp dir" in data["error"], data
    next_request_is_unhurt(one_worker)


NET_TABLES = """def main():
    return {t: len(open('/proc/self/net/' + t).read().splitlines()) - 1 for t in ('tcp', 'tcp6', 'udp', 'unix')}
"""


def test_the_hosts_network_tables_are_invisible(one_worker):
    if "net" not in one_worker.namespaces:
        pytest.skip("no network namespace: the host's tables show (SECURITY.md)")
    # The test client's own connection is in the host's table, not here.
    status, data = one_worker.execute(NET_TABLES)
    assert (status, data.get("result")) == (200, {"tcp": 0, "tcp6": 0, "udp": 0, "unix": 0}), data
