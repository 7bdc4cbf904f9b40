"""Cross-check pyexec-bench against wrk on the same server and workload:
requests/s and p50 must agree within a tolerance (10%). Used by
bench/check-vs-wrk and bench/compare."""
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def lua_script(body):
    # wrk needs a Lua script for a POST body; a Lua long string holds the JSON as is.
    return ("wrk.method = \"POST\"\n"
            "wrk.headers[\"Content-Type\"] = \"application/json\"\n"
            f"wrk.body = [==[{body}]==]\n")


def parse_wrk(text):
    rps = float(re.search(r"Requests/sec:\s*([\d.]+)", text).group(1))
    match = re.search(r"^\s*50%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
    p50 = float(match.group(1)) * UNITS[match.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return {"rps": rps, "p50": p50,
            "errors": (int(non2xx.group(1)) if non2xx else 0)
            + (sum(int(g) for g in errors.groups()) if errors else 0)}


def run_wrk(url, body, connections, duration):
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(lua_script(body))
        script = f.name
    try:
        proc = subprocess.run([shutil.which("wrk") or "/usr/bin/wrk", "-t1", f"-c{connections}",
                               f"-d{max(1, round(duration))}s", "--latency", "-s", script, url],
                              capture_output=True, text=True, timeout=duration + 60)
    finally:
        os.unlink(script)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed: {(proc.stderr or proc.stdout).strip()}")
    return parse_wrk(proc.stdout)


def run_ours(bench, url, workload, connections, duration):
    # Same length as wrk's run (wrk takes whole seconds).
    proc = subprocess.run([bench, "--json", "-w", "0", "-c", str(connections), "-d",
                           f"{max(1, round(duration))}s", "-W", workload, url],
                          capture_output=True, text=True, timeout=duration + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"pyexec-bench failed: {proc.stderr.strip()}")
    out = json.loads(proc.stdout)
    errors = out["errors"]["total"] + sum(n for s, n in out["status"].items()
                                          if not s.startswith("2"))
    return {"rps": out["requests_per_s"], "p50": out["latency_ms"]["p50"], "errors": errors}


def body_of(bench, workload):
    proc = subprocess.run([bench, "--print-body", "-W", workload], capture_output=True,
                          text=True, check=True)
    return proc.stdout


def check(bench, url, workload, connection_counts, duration, rounds=3, tolerance=0.10):
    """Alternate wrk and pyexec-bench `rounds` times per connection count (so
    drift of the server hits both alike) and compare the medians; returns rows
    and whether all agree."""
    body = body_of(bench, workload)
    rows, ok = [], True
    for connections in connection_counts:
        runs = {"wrk": [], "pyexec-bench": []}
        for _ in range(rounds):
            runs["wrk"].append(run_wrk(url, body, connections, duration))
            runs["pyexec-bench"].append(run_ours(bench, url, workload, connections, duration))
        # Medians: one run disturbed by something else on the machine does not decide.
        mid = {tool: {k: statistics.median(r[k] for r in rs) for k in ("rps", "p50", "errors")}
               for tool, rs in runs.items()}
        row = {"connections": connections, "wrk": mid["wrk"], "ours": mid["pyexec-bench"]}
        row["rps_diff"] = row["ours"]["rps"] / row["wrk"]["rps"] - 1
        row["p50_diff"] = row["ours"]["p50"] / row["wrk"]["p50"] - 1
        row["agree"] = abs(row["rps_diff"]) <= tolerance and abs(row["p50_diff"]) <= tolerance
        ok = ok and row["agree"]
        rows.append(row)
    return rows, ok


def markdown(rows, server_label, workload, duration, rounds):
    lines = [
        f"Server: {server_label}, workload `{workload}`, closed loop, {duration} s per run, "
        f"runs alternated {rounds}x per tool, medians compared; wrk run as `wrk -t1 -cN --latency "
        f"-s post.lua`. Agreement required: within 10%.",
        "",
        "| connections | wrk req/s | pyexec-bench req/s | diff | wrk p50 ms | pyexec-bench p50 ms | diff | agree |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['connections']} | {r['wrk']['rps']:.1f} | {r['ours']['rps']:.1f} | "
            f"{r['rps_diff'] * 100:+.1f}% | {r['wrk']['p50']:.3f} | {r['ours']['p50']:.3f} | "
            f"{r['p50_diff'] * 100:+.1f}% | {'yes' if r['agree'] else '**no**'} |")
    return "\n".join(lines) + "\n"
