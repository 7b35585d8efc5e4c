"""A real HTTP server on 127.0.0.1 with well-behaved and faulty endpoints, for download tests."""

from __future__ import annotations

import gzip
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from shakegen.data import corpus

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
        elif path == "/endless":  # more than any socket buffer holds: a client that leaves breaks the write
            self._send(200, b"", length=len(BODY) * 100)
            for _ in range(100):
                self.wfile.write(BODY)
        elif path == "/crash":  # a real error in a handler: it must still be reported
            raise RuntimeError("a handler failed")
        elif path == "/slow":
            time.sleep(1.5)  # past the tests' 0.5 s client timeout, with room for a loaded machine
            self._send(200, BODY)
        else:
            self._send(404, b"missing")


class QuietServer(ThreadingHTTPServer):
    """A server for which a client that hangs up early is expected, not an error worth a traceback.

    Download tests abandon responses on purpose (a bad length, a truncated body, a timeout):
    writing the rest then fails with a broken pipe or a reset, and socketserver would print
    "Exception occurred during processing of request" for each. Those are counted in
    ``disconnects``; any other error is still printed, so a real one stands out.
    """

    daemon_threads = True
    disconnects = 0

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], ConnectionError):  # BrokenPipeError, ConnectionResetError, ...
            self.disconnects += 1
            return
        super().handle_error(request, client_address)


class Server:
    def __enter__(self):
        Handler.counts = {}
        self.httpd = QuietServer(("127.0.0.1", 0), Handler)
        # The loop looks for shutdown's request every 10 ms (socketserver's default, half a second, is waited out).
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        return self

    def hits(self, path):
        return Handler.counts.get(path, 0)

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
