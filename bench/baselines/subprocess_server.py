"""COMPARISON BASELINE for bench/compare — not part of pyexec, never shipped.

The design most public code-execution services use: a Flask app under gunicorn
that starts a fresh /usr/bin/python3 per request, which imports the script as a
module and prints json.dumps of main()'s result. Whatever the script imports
(numpy, pandas) is imported anew every time. No sandbox beyond the process.
Run: gunicorn --chdir bench/baselines -b 127.0.0.1:PORT subprocess_server:app
"""
import json
import os
import subprocess
import tempfile

from flask import Flask, Response, request

PYTHON = "/usr/bin/python3"  # Debian's, with numpy and pandas

# Runs in the fresh interpreter: import the script from its directory, call main.
RUNNER = """
import importlib, json, sys
sys.path.insert(0, sys.argv[1])
req = json.load(sys.stdin)
script = importlib.import_module("user_script")
result = script.main(req["input"]) if "input" in req else script.main()
sys.stdout.write(json.dumps({"result": result, "stdout": "", "stderr": ""}))
"""

ENV = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
           NUMEXPR_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")

app = Flask(__name__)


def json_response(status, obj):
    return Response(json.dumps(obj), status=status, mimetype="application/json")


@app.get("/health")
def health():
    return json_response(200, {"status": "ok"})


@app.post("/execute")
def execute():
    req = request.get_json(force=True, silent=True)
    if not isinstance(req, dict) or not isinstance(req.get("script"), str):
        return json_response(400, {"error": "body must be {\"script\": ...}",
                                   "type": "invalid_request"})
    with tempfile.TemporaryDirectory() as workdir:
        with open(os.path.join(workdir, "user_script.py"), "w") as f:
            f.write(req["script"])
        try:
            proc = subprocess.run([PYTHON, "-c", RUNNER, workdir], input=json.dumps(req),
                                  capture_output=True, text=True, timeout=15, env=ENV)
        except subprocess.TimeoutExpired:
            return json_response(400, {"error": "timed out", "type": "timeout"})
    if proc.returncode != 0:
        return json_response(400, {"error": proc.stderr[-2000:], "type": "exception"})
    return Response(proc.stdout, status=200, mimetype="application/json")
