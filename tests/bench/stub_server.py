"""A stand-in for pyexecd in pyexec-bench's own tests (not a baseline).

POST /execute answers 200 {"result": {"ok": true}, ...}; a script containing
"raise" answers 400 {"type": "exception"}; one containing "hang" is never
answered (until the client goes away). --close answers with Connection: close.
--instance-per-answer names a new X-Pyexec-Instance in every answer (a
hostile or very scaled-out server).
Binds 127.0.0.1 on a free port and prints "listening on 127.0.0.1:PORT".
"""
import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms stall
    close_each = False
    instance_per_answer = False
    answers = 0

    def log_message(self, *args):
        pass

    def answer(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.instance_per_answer:
            Handler.answers += 1  # racy across threads; distinct enough for the test
            self.send_header("X-Pyexec-Instance", f"instance-{Handler.answers:06d}-" + "x" * 200)
        if self.close_each:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path != "/execute":
            return self.answer(404, {"error": "no such path", "type": "not_found"})
        script = json.loads(raw).get("script", "")
        if "hang" in script:
            threading.Event().wait(30)  # the client's --timeout fires first
            self.close_connection = True
            return
        if "raise" in script:
            return self.answer(400, {"error": "boom", "type": "exception", "traceback": ""})
        return self.answer(200, {"result": {"ok": True}, "stdout": "", "stderr": ""})


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # clients hanging up mid-answer at the end of a run are normal


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--close", action="store_true")
    parser.add_argument("--instance-per-answer", action="store_true")
    args = parser.parse_args()
    Handler.close_each = args.close
    Handler.instance_per_answer = args.instance_per_answer
    server = QuietServer(("127.0.0.1", 0), Handler)
    print(f"listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
