"""A real HTTP server on 127.0.0.1 with well-behaved and faulty endpoints, for download tests."""

from __future__ import annotations

import gzip
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from shakegen import corpus

BODY = corpus.EMBEDDED_CORPUS.read_bytes()
GZIPPED = gzip.compress(BODY, mtime=0)


class Handler(BaseHTTPRequestHandler):
    counts: dict[str, int] = {}
    lock = threading.Lock()

    def log_message(self, *args):
        pass

    def _send(self, status, body=b"", content_type="text/plain; charset=utf-8", length=None, headers=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for key, value in headers:
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        with self.lock:
            hits = self.counts[self.path] = self.counts.get(self.path, 0) + 1
        path = self.path
        if path == "/input.txt":
            self._send(200, BODY)
        elif path == "/gzip/input.txt":
            # As CDNs and raw-file hosts do: compressed on the wire, Content-Length of the
            # compressed bytes. Sent whatever the client asked for ("compress anyway").
            self._send(200, GZIPPED, headers=[("Content-Encoding", "gzip")])
        elif path == "/gzip/truncated":
            self._send(200, GZIPPED[:5000], length=len(GZIPPED), headers=[("Content-Encoding", "gzip")])
            self.close_connection = True
        elif path == "/bad-length":
            self._send(200, BODY, length="about a megabyte")
            self.close_connection = True
        elif path == "/hostile-429":
            self._send(429, b"go away", headers=[("Retry-After", "86400")]) if hits == 1 else self._send(200, BODY)
        elif path == "/flaky-503":
            self._send(503, b"busy") if hits == 1 else self._send(200, BODY)
        elif path == "/always-503":
            self._send(503, b"busy")
        elif path == "/limited-429":
            self._send(429, b"slow down", headers=[("Retry-After", "1")]) if hits == 1 else self._send(200, BODY)
        elif path == "/truncated":
            self._send(200, BODY[:1000], length=len(BODY))
            self.close_connection = True
        elif path == "/wrong.txt":
            self._send(200, BODY[:-1] + b"?")
        elif path == "/html":
            self._send(200, b"<html><body>Not found</body></html>", content_type="text/html")
        elif path == "/slow":
            time.sleep(3)
            self._send(200, BODY)
        else:
            self._send(404, b"missing")


class Server:
    def __enter__(self):
        Handler.counts = {}
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        return self

    def hits(self, path):
        return Handler.counts.get(path, 0)

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
