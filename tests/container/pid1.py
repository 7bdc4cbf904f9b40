"""Orphan check for a pyexecd container (tests/container/run.sh): SIGKILL a
worker (its spare child is orphaned and reparented to the container's PID 1)
and then the template (every worker and child orphaned). Once /health is
ready again, no zombie may stay: PID 1 must reap what it inherits."""
import argparse
import subprocess
import time

from health import get_health

# Run inside the container with its own python3: one line per process.
PS = r"""
import os
for p in os.listdir('/proc'):
    if not p.isdigit():
        continue
    try:
        stat = open(f'/proc/{p}/stat').read()
        cmd = open(f'/proc/{p}/cmdline', 'rb').read().split(b'\0')
    except OSError:
        continue
    rest = stat.rsplit(')', 1)[1].split()
    print(p, rest[1], rest[0], (cmd[0].decode() or '-') + (' template' if b'--template-fd=3' in cmd else ''))
"""

ap = argparse.ArgumentParser()
ap.add_argument("--url", required=True)
ap.add_argument("--container", required=True)
args = ap.parse_args()


def procs():
    out = subprocess.run(
        ["podman", "exec", args.container, "/usr/bin/python3", "-I", "-c", PS], check=True, capture_output=True, text=True
    ).stdout
    rows = [line.split(None, 3) for line in out.splitlines()]
    return [{"pid": int(p), "ppid": int(pp), "state": st, "cmd": cmd} for p, pp, st, cmd in rows]


def health():
    return get_health(args.url)


def wait(what, cond, limit=30):
    deadline = time.monotonic() + limit
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)  # poll interval; cond() is what we wait for (ok-sleep)


def kill(pid):
    """SIGKILL pid in the container; False if it had already exited."""
    script = f"import os\ntry:\n    os.kill({pid}, 9)\nexcept ProcessLookupError:\n    raise SystemExit(3)"
    done = subprocess.run(["podman", "exec", args.container, "/usr/bin/python3", "-I", "-c", script])
    if done.returncode not in (0, 3):
        raise SystemExit(f"podman exec failed: {done.returncode}")
    return done.returncode == 0


def live_tree():
    """(template, its workers) among the live processes."""
    live = [p for p in procs() if p["state"] != "Z"]
    pids = {p["pid"]: p for p in live}
    templates = [p for p in live if p["cmd"].endswith(" template") and not pids.get(p["ppid"], {}).get("cmd", "").endswith(" template")]
    if len(templates) != 1:
        return None, []
    return templates[0], [p for p in live if p["ppid"] == templates[0]["pid"]]


def ready_again(victim):
    """Every worker warm or parked (idle ones beyond --warm-workers exit), one
    live process for each warm one, and the victim gone."""
    h = health()
    w = h.get("workers", {})
    if h.get("status") != "ok" or w["ready"] + w["parked"] != w["total"]:
        return False
    template, workers = live_tree()
    alive = {template["pid"]} | {p["pid"] for p in workers} if template else set()
    return template is not None and len(workers) == w["ready"] and victim not in alive


def no_zombies():
    return not [p for p in procs() if p["state"] == "Z"]


ok = True
table = procs()
init = next(p for p in table if p["pid"] == 1)
template, workers = live_tree()
print(f"PID 1 is {init['cmd']}; pyexecd template pid {template['pid']}, workers {[w['pid'] for w in workers]}")
for label in ("a worker", "the template"):
    # An idle worker beyond --warm-workers may exit (park) between the
    # listing and the kill: then list again and take another.
    for _ in range(5):
        template, workers = live_tree()
        victim = workers[0]["pid"] if label == "a worker" else template["pid"]
        if kill(victim):
            break
    else:
        raise SystemExit(f"PID 1: could not kill {label}: each one had exited before the kill")
    wait(f"pyexecd to recover from losing {label}", lambda: ready_again(victim))
    try:
        wait("every zombie to be reaped", no_zombies, limit=5)
        print(f"PID 1: killed {label}: recovered, no zombie left")
    except AssertionError:
        zombies = [p for p in procs() if p["state"] == "Z"]
        print(f"PID 1: killed {label}: zombies left: {zombies}")
        ok = False
print("PID 1: PASS" if ok else "PID 1: FAIL")
raise SystemExit(0 if ok else 1)
