"""Files in, files out and standard input, through the live service: the
request fields stdin and files, the response's files from out/, and what a
hostile client or script can do with them."""
import base64
import hashlib

import pytest


def csv_of(size):
    """A CSV of about size bytes: columns i, 2*i."""
    rows, n, i = ["i,j\n"], 4, 0
    while n < size:
        row = f"{i},{2 * i}\n"
        rows.append(row)
        n += len(row)
        i += 1
    return "".join(rows), i


# --- input files ------------------------------------------------------------


def test_csv_in_pandas_reads_it(server):
    text, rows = csv_of(2000)
    status, body = server.execute(
        "import pandas as pd\ndef main():\n    df = pd.read_csv('data.csv')\n"
        "    return {'rows': len(df), 'sum': int(df.j.sum())}",
        files={"data.csv": text},
    )
    assert status == 200, body
    assert body["result"] == {"rows": rows, "sum": sum(2 * i for i in range(rows))}


def test_nested_paths_and_working_directory(server):
    status, body = server.execute(
        "import os\ndef main():\n"
        "    return {'cwd_files': sorted(os.listdir('.')), 'out': os.listdir('out'),\n"
        "            'deep': open('a/b/c/d/e/f/g/h.txt').read(), 'cwd': os.getcwd() == os.environ['TMPDIR']}",
        files={"a/b/c/d/e/f/g/h.txt": "eight levels", "a/x.txt": "", "top.txt": "t"},
    )
    assert status == 200, body
    assert body["result"] == {"cwd_files": ["a", "out", "top.txt"], "out": [], "deep": "eight levels", "cwd": True}


def test_binary_by_base64_keeps_every_byte(server):
    data = bytes(range(256)) * 40
    status, body = server.execute(
        "import hashlib\ndef main():\n    return hashlib.sha256(open('blob.bin', 'rb').read()).hexdigest()",
        files={"blob.bin": {"base64": base64.b64encode(data).decode()}},
    )
    assert status == 200, body
    assert body["result"] == hashlib.sha256(data).hexdigest()


def test_text_files_are_utf8(server):
    status, body = server.execute(
        "def main():\n    return open('t.txt', 'rb').read().hex()", files={"t.txt": "é€😀"}
    )
    assert status == 200, body
    assert bytes.fromhex(body["result"]).decode() == "é€😀"


def test_five_mib_csv_with_default_settings(server):
    text, rows = csv_of(5 << 20)
    script = "import pandas as pd\ndef main():\n    return len(pd.read_csv('big.csv'))"
    status, body = server.execute(script, files={"big.csv": text})
    assert status == 200, body
    assert body["result"] == rows
    status, body = server.execute(script, files={"big.csv": {"base64": base64.b64encode(text.encode()).decode()}})
    assert status == 200, body
    assert body["result"] == rows


@pytest.mark.parametrize(
    "path",
    ["../x", "/etc/x", "a/../../b", "", "a//b", "a/", ".", "./a", "a/./b", "..", "1/2/3/4/5/6/7/8/9", "out/x",
     "n" * 256 + "/x"],
)
def test_bad_paths_refused_naming_them(server, path):
    status, body = server.execute("def main(): return 1", files={path: "x"})
    assert status == 400, body
    assert body["type"] == "invalid_request"
    shown = path if len(path) <= 80 else path[:80]
    assert f'"{shown}' in body["error"], body["error"]


def test_nul_in_a_path_refused(server):
    raw = '{"script": "def main(): return 1", "files": {"a\\u0000b": "x"}}'
    status, _, body = server.request("POST", "/execute", raw, {"Content-Type": "application/json"})
    assert status == 400 and body["type"] == "invalid_request"
    assert "NUL" in body["error"]


def test_file_and_directory_at_once_refused(server):
    status, body = server.execute("def main(): return 1", files={"a": "x", "a/b": "y"})
    assert status == 400 and '"a/b"' in body["error"], body


@pytest.mark.parametrize(
    "value, words",
    [
        ([], "not an array"),
        (5, "not an integer"),
        (None, "not null"),
        ({}, "an object with other keys"),
        ({"base64": "QQ==", "name": "x"}, "an object with other keys"),
        ({"b64": "QQ=="}, "an object with other keys"),
        ({"base64": 5}, "must be a string"),
        ({"base64": "not base64!"}, "not valid base64"),
        ({"base64": "QUJD="}, "not valid base64"),
    ],
)
def test_bad_values_refused(server, value, words):
    status, body = server.execute("def main(): return 1", files={"f.bin": value})
    assert status == 400, body
    assert body["type"] == "invalid_request"
    assert '"f.bin"' in body["error"] and words in body["error"], body["error"]


def test_files_must_be_an_object(server):
    for value in ([], "x", 1, None):
        status, body = server.execute("def main(): return 1", files=value)
        assert status == 400 and '"files"' in body["error"], body


def test_too_many_files_is_413(server):
    status, body = server.execute("def main(): return 1", files={f"f{i}": "" for i in range(1001)})
    assert status == 413, body
    assert body["type"] == "payload_too_large" and "1001 files" in body["error"]
    status, body = server.execute(
        "import os\ndef main(): return len(os.listdir('d'))", files={f"d/f{i}": "" for i in range(1000)}
    )
    assert status == 200 and body["result"] == 1000, body


def test_files_over_the_size_cap_is_413(server):
    chunk = "x" * (3 << 20)
    status, body = server.execute("def main(): return 1", files={"a": chunk, "b": chunk, "c": chunk})
    assert status == 413, body
    assert body["type"] == "payload_too_large" and '"c"' in body["error"]


# --- standard input -------------------------------------------------------------


def test_stdin_input_and_read(server):
    status, body = server.execute(
        "import sys\ndef main():\n    first = input()\n    return [first, sys.stdin.read()]",
        stdin="line one\nline two\nthe end",
    )
    assert status == 200, body
    assert body["result"] == ["line one", "line two\nthe end"]


def test_stdin_large_and_unicode(server):
    text = "é" * 300000
    status, body = server.execute("import sys\ndef main(): return len(sys.stdin.read())", stdin=text)
    assert status == 200 and body["result"] == len(text), body


def test_no_stdin_is_end_of_file_at_once(server):
    status, body = server.execute(
        "import sys, os\ndef main():\n    try:\n        input()\n        eof = False\n"
        "    except EOFError:\n        eof = True\n    return [eof, sys.stdin.read(), os.read(0, 10).decode()]",
        timeout_ms=5000,
    )
    assert status == 200, body
    assert body["result"] == [True, "", ""]


def test_stdin_wrong_type_refused(server):
    for value in (5, None, ["x"], {"base64": "QQ=="}):
        status, body = server.execute("def main(): return 1", stdin=value)
        assert status == 400 and '"stdin"' in body["error"], body


# --- files out ----------------------------------------------------------------


def test_out_files_nested_with_size_and_media_type(server):
    status, body = server.execute(
        "import os, json\ndef main():\n    os.makedirs('out/reports/2024', exist_ok=True)\n"
        "    open('out/summary.json', 'w').write(json.dumps({'a': 1}))\n"
        "    open('out/reports/2024/t.csv', 'w').write('x\\n1\\n')\n"
        "    open('out/raw.bin', 'wb').write(bytes(range(256)))\n"
        "    open('not-out.txt', 'w').write('stays')\n    return 1",
    )
    assert status == 200, body
    files = body["files"]
    assert sorted(files) == ["raw.bin", "reports/2024/t.csv", "summary.json"]
    assert base64.b64decode(files["raw.bin"]["base64"]) == bytes(range(256))
    assert files["raw.bin"]["size"] == 256 and files["raw.bin"]["media_type"] == "application/octet-stream"
    assert files["reports/2024/t.csv"] == {"base64": base64.b64encode(b"x\n1\n").decode(), "size": 4,
                                           "media_type": "text/csv"}
    assert files["summary.json"]["media_type"] == "application/json"
    assert "truncated" not in body


def test_no_out_files_no_key(server):
    status, body = server.execute("def main(): return 1")
    assert status == 200 and "files" not in body, body


def test_out_files_on_a_script_error(server):
    status, body = server.execute(
        "def main():\n    open('out/partial.txt', 'w').write('so far')\n    raise ValueError('late')"
    )
    assert status == 400 and body["type"] == "exception", body
    assert base64.b64decode(body["files"]["partial.txt"]["base64"]) == b"so far"


def test_out_files_on_a_timeout(server):
    status, body = server.execute(
        "import time\ndef main():\n    open('out/progress.txt', 'w').write('half')\n    time.sleep(60)",
        timeout_ms=500,
    )
    assert status == 400 and body["type"] == "timeout", body
    assert base64.b64decode(body["files"]["progress.txt"]["base64"]) == b"half"


def test_links_and_fifos_in_out_are_not_followed(server):
    status, body = server.execute(
        "import os\ndef main():\n    tried = {}\n"
        "    open('secret.txt', 'w').write('in the working dir')\n"
        "    os.symlink('/etc/passwd', 'out/passwd')\n"
        "    os.symlink('../secret.txt', 'out/secret')\n"
        "    os.symlink('/etc', 'out/etc')\n"
        "    for name, make in (('fifo', lambda: os.mkfifo('out/fifo')),\n"
        "                       ('hardlink', lambda: os.link('/etc/passwd', 'out/hardlink'))):\n"
        "        try:\n            make()\n            tried[name] = 'made'\n"
        "        except OSError as e:\n            tried[name] = type(e).__name__\n"
        "    open('out/real.txt', 'w').write('ok')\n    return tried",
        timeout_ms=10000,
    )
    assert status == 200, body
    # Only the regular file the script owns comes back: never a link's target,
    # never a FIFO (whose open would block without O_NONBLOCK).
    assert list(body["files"]) == ["real.txt"], body


def test_a_thread_still_writing_cannot_stall_the_answer(server):
    status, body = server.execute(
        "import threading\ndef spin():\n    with open('out/growing.bin', 'wb') as f:\n"
        "        while True:\n            f.write(b'x' * 4096)\n            f.flush()\n            f.seek(0)\n"
        "def main():\n    threading.Thread(target=spin, daemon=True).start()\n"
        "    import time; time.sleep(0.05)\n    return 'returned'",
        timeout_ms=10000,
    )
    assert status == 200 and body["result"] == "returned", body
    f = body["files"]["growing.bin"]
    assert len(base64.b64decode(f["base64"])) == f["size"] <= 4096


def test_deep_nesting_and_many_entries_are_bounded(server):
    status, body = server.execute(
        "import os\ndef main():\n    d = 'out'\n    for i in range(40):\n        d += '/d'\n"
        "        os.mkdir(d)\n        open(d + '/f', 'w').close()\n"
        "    os.mkdir('out/wide')\n    for i in range(5000):\n"
        "        os.close(os.open(f'out/wide/{i}', os.O_CREAT | os.O_WRONLY))\n    return 1",
        timeout_ms=14000,
    )
    # 5,000 entries: more than are ever collected, fewer than a temp dir may
    # hold (TMPDIR_MAX_ENTRIES, worker/tmpdir.h).
    assert status == 200, body
    assert "files" in body["truncated"]
    assert len(body["files"]) <= 1000
    assert max(k.count("/") for k in body["files"]) <= 16


def test_output_cap_truncates(make_server):
    s = make_server("--workers", "1", "--output-files-kb", "10")
    status, body = s.execute(
        "def main():\n    open('out/a.bin', 'wb').write(b'a' * 6000)\n"
        "    open('out/b.bin', 'wb').write(b'b' * 6000)\n    open('out/c.txt', 'w').write('small')\n"
        "    print('printed')\n    return 1"
    )
    assert status == 200, body
    assert sorted(body["files"]) == ["a.bin", "c.txt"]  # b.bin would pass 10 KiB
    assert body["truncated"] == ["files"]
    assert body["stdout"] == "printed\n"


def test_metrics_count_file_bytes(make_server):
    s = make_server("--workers", "1")
    status, body = s.execute(
        "def main():\n    open('out/o.bin', 'wb').write(open('i.bin', 'rb').read() * 2)\n    return 1",
        files={"i.bin": {"base64": base64.b64encode(b"12345").decode()}},
    )
    assert status == 200, body
    status, _, text = s.request("GET", "/metrics")
    lines = dict(l.split(" ", 1) for l in text.decode().splitlines() if l and not l.startswith("#"))
    assert lines["pyexec_input_file_bytes_total"] == "5"
    assert lines["pyexec_output_file_bytes_total"] == "10"


# --- the API document agrees ---------------------------------------------------


@pytest.fixture(scope="module")
def spec(server):
    status, _, doc = server.request("GET", "/openapi.json")
    assert status == 200
    return doc


def validator(spec, name):
    import jsonschema

    schema = dict(spec["components"]["schemas"][name])
    schema["components"] = spec["components"]
    return jsonschema.Draft202012Validator(schema)


def test_answers_with_files_match_the_document(server, spec):
    ok = validator(spec, "ExecuteResult")
    err = validator(spec, "ScriptError")
    status, body = server.execute("def main():\n    open('out/a.png', 'wb').write(b'x')\n    return 1")
    assert status == 200 and body["files"]
    ok.validate(body)
    status, body = server.execute("def main():\n    open('out/a.txt', 'w').write('x')\n    raise KeyError(1)")
    assert status == 400 and body["files"]
    err.validate(body)


@pytest.mark.parametrize(
    "files",
    [{"a.csv": "x"}, {"a/b/c": {"base64": "QQ=="}}, {"../x": "x"}, {"/x": "x"}, {"a//b": "x"}, {"./a": "x"},
     {"a/": "x"}, {"out/x": "x"}, {"out": "x"}, {"output/x": "x"}, {"a": 1}, {"a": {"base64": "QQ==", "x": 1}}],
)
def test_input_files_schema_agrees_with_validation(server, spec, files):
    schema = validator(spec, "ExecuteRequest")
    body = {"script": "def main(): return 1", "files": files}
    status, _ = server.execute(**body)
    assert schema.is_valid(body) == (status == 200), (files, status)
