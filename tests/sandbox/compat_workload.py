# Runs inside the fully confined child of python_compat (numpy and pandas were
# imported before the fork, as in the service's warm worker). Every check
# raises AssertionError on failure; the C side turns that into exit 1.
import json
import os
import sys
import tempfile
import threading

import numpy as np
import pandas as pd

tempfile.tempdir = os.getcwd()  # the private temp dir, as the service sets it


def refused(what, fn, *errors):
    try:
        fn()
    except errors or (OSError,):
        return
    raise AssertionError(f"{what} was not refused")


# --- real work must run -----------------------------------------------------
rng = np.random.default_rng(1)
m = rng.normal(size=(200, 200))
assert np.allclose(m @ np.linalg.inv(m), np.eye(200), atol=1e-6)
assert abs(np.fft.ifft(np.fft.fft(np.arange(64.0))).real.sum() - 2016.0) < 1e-6

df = pd.DataFrame({"k": np.arange(1000) % 7, "v": np.arange(1000, dtype=float)})
means = df.groupby("k")["v"].mean()
assert len(means) == 7 and means.loc[0] == df[df.k == 0].v.mean()
ts = pd.to_datetime(["2024-01-02", "2024-03-04T05:06:07"])
assert ts[1].hour == 5
assert pd.Timestamp("2024-06-01 12:00").tz_localize("Europe/Paris").utcoffset().seconds == 7200
assert json.loads(json.dumps({"mean": float(means.mean()), "when": ts[0].isoformat()}))

import csv, decimal, fractions, hashlib, statistics, time  # not imported before the fork

assert statistics.mean([1, 2, 3]) == 2 and hashlib.sha256(b"x").hexdigest()
time.localtime()
time.sleep(0.001)  # ok-sleep: the workload checks that nanosleep works confined

box = []
t = threading.Thread(target=lambda: box.append(float(np.sum(np.ones(1000)))))
t.start()
t.join()
assert box == [1000.0], box

with tempfile.NamedTemporaryFile("w+", delete=True) as f:
    f.write("hello")
    f.flush()
    f.seek(0)
    assert f.read() == "hello"
with tempfile.TemporaryDirectory() as d:
    with open(os.path.join(d, "a.csv"), "w", newline="") as f:
        csv.writer(f).writerow([1, 2])
    df.to_csv(os.path.join(d, "df.csv"))
    assert len(pd.read_csv(os.path.join(d, "df.csv"))) == 1000
print("printed from the sandbox")
sys.stdout.flush()
os.write(1, b"written to fd 1\n")
with open("/proc/self/status") as f:
    assert "Seccomp:\t2" in f.read()

# --- escapes must raise ordinary exceptions, and the interpreter lives on ----
import socket
import subprocess
import ctypes

refused("socket.socket()", lambda: socket.socket())
refused("socket.socketpair()", lambda: socket.socketpair())
refused("os.fork()", lambda: os.fork())
refused("subprocess.run", lambda: subprocess.run(["/bin/true"]))
assert os.system("true") != 0, "os.system started a program"
refused("open /etc/passwd", lambda: open("/etc/passwd"), PermissionError)
refused("write /tmp/x", lambda: open("/tmp/x", "w"), PermissionError)
refused("write /etc", lambda: open("/etc/pyexec-escape", "w"), PermissionError)
refused("kill parent", lambda: os.kill(os.getppid(), 0), PermissionError)
refused("read parent environ", lambda: open(f"/proc/{os.getppid()}/environ").read(),
        PermissionError)
refused("symlink to /etc", lambda: (os.symlink("/etc", "etc-link"),
                                     open("etc-link/passwd").read()), PermissionError)

# SYSCALLS (set by python_compat.c) numbers them for this architecture.
libc = ctypes.CDLL(None, use_errno=True)
for name, args in [("socket", (2, 1, 0)), ("execve", (0, 0, 0)), ("ptrace", (16, os.getppid(), 0)),
                   ("bpf", (0, 0, 0)), ("io_uring_setup", (1, 0, 0)), ("userfaultfd", (0, 0, 0)),
                   ("unshare", (0x20000000, 0, 0)), ("mount", (0, 0, 0))]:
    assert libc.syscall(SYSCALLS[name], *args) == -1, name  # noqa: F821
    assert ctypes.get_errno() == 1, (name, ctypes.get_errno())

assert float(np.mean([1.0, 2.0, 3.0])) == 2.0  # still alive and well
print("compat: all checks passed")
