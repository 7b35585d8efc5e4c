"""The download tests' HTTP server (tests/httpserver.py) is quiet about clients that hang up
early, which those tests do on purpose, and still reports a real error in a handler."""

from __future__ import annotations

import socket
import struct
import time

import requests

from tests.httpserver import Server

WAIT_SECONDS = 60  # a bound on waiting, never an assertion
NOISE = "Exception occurred during processing of request"


def test_a_client_hanging_up_early_prints_nothing_and_a_real_error_still_does(capfd):
    with Server() as server:
        port = server.httpd.server_address[1]
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT_SECONDS) as client:
            client.sendall(b"GET /endless HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert client.recv(1)  # the server is writing its hundred megabytes
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset
        deadline = time.monotonic() + WAIT_SECONDS
        while server.httpd.disconnects < 1:
            assert time.monotonic() < deadline, "the server never noticed the client hang up"
            time.sleep(0.05)
        assert NOISE not in capfd.readouterr().err

        try:
            requests.get(server.base + "/crash", timeout=WAIT_SECONDS)
        except requests.ConnectionError:
            pass  # the handler died before it answered
        printed = ""
        while NOISE not in printed:
            assert time.monotonic() < deadline, "a real error was not reported"
            printed += capfd.readouterr().err
            time.sleep(0.05)
        assert "RuntimeError: a handler failed" in printed
