"""Prints what GET /health of the server at argv[1] says about the workers
and the confinement layers in force, on one line (tests/container/run.sh)."""
import json
import sys
import urllib.request

with urllib.request.urlopen(sys.argv[1] + "/health", timeout=10) as r:
    health = json.load(r)
print(json.dumps({"workers": health["workers"], "sandbox": health["sandbox"]}, separators=(",", ":")))
