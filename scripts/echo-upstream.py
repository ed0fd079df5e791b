#!/usr/bin/env python3
"""A tiny example upstream for trying Sluice: prints each request it receives
(method, path, headers, body) and answers with a JSON echo of it.

Usage: python3 scripts/echo-upstream.py [PORT [HOST]]   (default 9000 on 127.0.0.1, loopback only;
docker-compose.yml passes 0.0.0.0 so that the forwarder containers reach it)
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Echo(BaseHTTPRequestHandler):
    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        text = body.decode("utf-8", "replace")
        print(f"--- {self.command} {self.path}", flush=True)
        for k, v in self.headers.items():
            print(f"{k}: {v}", flush=True)
        print(text, flush=True)
        answer = json.dumps({"method": self.command, "path": self.path, "body": text,
                             "idempotency_key": self.headers.get("Idempotency-Key")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
    host = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1"
    ThreadingHTTPServer((host, port), Echo).serve_forever()
