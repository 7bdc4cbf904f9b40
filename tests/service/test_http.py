"""HTTP behaviour of the real server: keep-alive, chunked bodies, routes."""
import json
import socket


def test_keep_alive_several_requests_one_connection(server):
    c = server.conn()
    try:
        for i in range(5):
            body = json.dumps({"script": f"def main():\n    return {i}"})
            c.request("POST", "/execute", body, {"Content-Type": "application/json"})
            r = c.getresponse()
            assert r.status == 200 and json.loads(r.read())["result"] == i
            assert r.getheader("Connection") == "keep-alive"
    finally:
        c.close()


def test_chunked_body(server):
    body = json.dumps({"script": "def main():\n    return 'chunked'"}).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(
            b"POST /execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        for i in range(0, len(body), 7):
            part = body[i : i + 7]
            s.sendall(b"%x\r\n%s\r\n" % (len(part), part))
        s.sendall(b"0\r\n\r\n")
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    head, _, payload = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert json.loads(payload)["result"] == "chunked"


def test_expect_100_continue(server):
    body = json.dumps({"script": "def main():\n    return 'go'"}).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(
            b"POST /execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Expect: 100-continue\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        assert s.recv(64).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(body)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200")
    assert json.loads(reply.partition(b"\r\n\r\n")[2])["result"] == "go"


def test_request_id_echoed(server):
    c = server.conn()
    c.request("GET", "/health", headers={"X-Request-Id": "abc-123"})
    r = c.getresponse()
    r.read()
    assert r.getheader("X-Request-Id") == "abc-123"
    c.close()


def test_health_reports_pool_and_versions(server):
    status, _, data = server.request("GET", "/health")
    assert status == 200 and data["status"] == "ok"
    assert data["workers"]["total"] == 2 and data["workers"]["ready"] == 2
    assert data["python"].startswith("3.11") and data["numpy"] and data["pandas"]
    assert "seccomp" in data["sandbox"]


def test_root_lists_endpoints(server):
    status, _, data = server.request("GET", "/")
    assert status == 200 and data["service"] == "pyexec"
    assert "POST /execute" in data["endpoints"]


def test_log_line_links_the_trace(server):
    for header, value in (("X-Cloud-Trace-Context", "105445aa7843bc8bf206b12000100000/1;o=1"),
                          ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")):
        c = server.conn()
        c.request("GET", "/health", headers={header: value, "X-Request-Id": f"trace-{header}"})
        c.getresponse().read()
        c.close()
    cloud = server.wait_log("trace-X-Cloud-Trace-Context")
    w3c = server.wait_log("trace-traceparent")
    assert cloud["logging.googleapis.com/trace"] == "105445aa7843bc8bf206b12000100000"
    assert w3c["logging.googleapis.com/trace"] == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_log_line_per_request_without_script(server):
    marker = "very_secret_marker_in_script"
    c = server.conn()
    c.request("POST", "/execute", json.dumps({"script": f"def main():\n    return '{marker}'"}),
              {"Content-Type": "application/json", "X-Request-Id": "no-script-in-logs"})
    assert c.getresponse().status == 200
    c.close()
    last = server.wait_log("no-script-in-logs")
    with server.cond:
        logs = [json.loads(l) for l in server.logs if l]
    assert last["httpRequest"]["status"] == 200 and last["type"] == "ok"
    assert last["severity"] == "INFO" and last["request_id"]
    assert not any(marker in json.dumps(l) for l in logs)


def test_log_line_for_a_path_that_is_not_utf8(server):
    """The path is the client's bytes: invalid UTF-8 in it is logged as
    U+FFFD, not left out of the log with the whole line."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as c:
        c.sendall(b"GET /caf\xe9/\xff\xc3 HTTP/1.1\r\nHost: x\r\nX-Request-Id: path-not-utf8\r\n"
                  b"Connection: close\r\n\r\n")
        reply = b""
        while chunk := c.recv(4096):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 404"), reply
    line = server.wait_log("path-not-utf8")
    assert line["httpRequest"]["requestUrl"] == "/caf\ufffd/\ufffd\ufffd", line
    assert line["message"] == "GET /caf\ufffd/\ufffd\ufffd 404 not_found", line
    assert line["httpRequest"]["status"] == 404 and line["type"] == "not_found", line
