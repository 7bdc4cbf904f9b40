"""A stand-in for Cloud Run's front end in pyexec-bench's tests (not shipped).

Terminates TLS (--cert/--key; --plain for none) and forwards each request to
the next --backend in turn (round robin), like a load balancer in front of
several instances. --require-header NAME answers 401 JSON itself when the
request lacks it, as Cloud Run does without an identity token. --close ends
each connection after its answer, as front ends closing idle connections do.
Binds HOST (default 127.0.0.1) on a free port and prints
"listening on HOST:PORT"; prints "sni NAME" once, for the first handshake.
"""
import argparse
import http.client
import itertools
import json
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "te",
              "trailer", "upgrade", "proxy-connection"}


class Front(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # a run opens its connections at once
    def handle_error(self, request, client_address):
        pass  # refused handshakes and clients leaving mid-answer are expected


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def setup(self):
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()  # in this connection's thread, not the acceptor's
        super().setup()
        self.backends = {}

    def answer(self, status, headers, body):
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if self.server.close_each:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def forward(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        required = self.server.require_header
        if required and not self.headers.get(required):
            data = json.dumps({"error": f"{required} header required",
                               "type": "unauthorized"}).encode()
            return self.answer(401, [("Content-Type", "application/json")], data)
        with self.server.lock:
            host, port = next(self.server.rotation)
        conn = self.backends.get((host, port))
        if conn is None:
            conn = self.backends[(host, port)] = http.client.HTTPConnection(host, port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        conn.request(self.command, self.path, body=body, headers=headers)
        response = conn.getresponse()
        self.answer(response.status, response.getheaders(), response.read())

    do_GET = do_POST = forward


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--plain", action="store_true")
    parser.add_argument("--backend", action="append", required=True, help="HOST:PORT")
    parser.add_argument("--require-header")
    parser.add_argument("--close", action="store_true")
    args = parser.parse_args()

    family = __import__("socket").AF_INET6 if ":" in args.host else __import__("socket").AF_INET
    Front.address_family = family
    server = Front((args.host, 0), Handler)
    server.lock = threading.Lock()
    server.rotation = itertools.cycle([(b.rsplit(":", 1)[0], int(b.rsplit(":", 1)[1]))
                                       for b in args.backend])
    server.require_header = args.require_header
    server.close_each = args.close
    if not args.plain:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
        seen = []

        def sni(sock, name, context):
            if not seen:
                seen.append(name)
                print(f"sni {name}", flush=True)

        ctx.sni_callback = sni
        server.socket = ctx.wrap_socket(server.socket, server_side=True,
                                        do_handshake_on_connect=False)
    print(f"listening on {args.host}:{server.server_address[1]}", flush=True)
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
