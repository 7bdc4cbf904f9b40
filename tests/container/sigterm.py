"""SIGTERM check for a pyexecd container (tests/container/run.sh): with one
request in flight, `podman kill --signal TERM` must let that request finish
(200), and the container must exit 0 within 10 s of the signal."""
import argparse
import json
import subprocess
import threading
import time
import urllib.error
import urllib.request

from health import get_health

LIMIT_S = 10  # Cloud Run's grace period between SIGTERM and SIGKILL

ap = argparse.ArgumentParser()
ap.add_argument("--url", required=True)
ap.add_argument("--container", required=True)
args = ap.parse_args()


def health():
    return get_health(args.url)


answer = {}


def in_flight():
    body = json.dumps({"script": "import threading\ndef main():\n    threading.Event().wait(2)\n    return 'drained'"})
    req = urllib.request.Request(args.url + "/execute", body.encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            answer["status"], answer["body"] = r.status, json.load(r)
    except urllib.error.HTTPError as e:
        answer["status"], answer["body"] = e.code, json.load(e)


t = threading.Thread(target=in_flight)
t.start()
# The request is in flight once a worker reports busy.
deadline = time.monotonic() + 10
while True:
    workers = health()["workers"]
    if workers["ready"] > workers["idle"]:  # one busy (parked workers are neither)
        break
    assert time.monotonic() < deadline, f"the request never reached a worker: {workers}"
    time.sleep(0.02)  # poll interval; the condition above is what we wait for (ok-sleep)

start = time.monotonic()
subprocess.run(["podman", "kill", "--signal", "TERM", args.container], check=True, stdout=subprocess.DEVNULL)
code = subprocess.run(
    ["podman", "wait", args.container], check=True, capture_output=True, text=True, timeout=LIMIT_S + 20
).stdout.strip()
elapsed = time.monotonic() - start
t.join(30)

print(f"SIGTERM: exit code {code} after {elapsed:.2f} s; in-flight request answered {answer.get('status')} {answer.get('body', {}).get('result')}")
ok = code == "0" and elapsed < LIMIT_S and answer.get("status") == 200 and answer["body"].get("result") == "drained"
print("SIGTERM: PASS" if ok else "SIGTERM: FAIL")
raise SystemExit(0 if ok else 1)
