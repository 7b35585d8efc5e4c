"""What a web page of another site, or a DNS-rebinding one, can do to shakegen serve: nothing.

A real server process on 127.0.0.1: a Host that does not name it gets 421, a cross-site
Origin gets 403 unless allowed with --cors-origin (which then gets CORS headers, preflight
included), and the token matches as typed, stripped, in UTF-8. Content types and hostile
JSON are in test_serve.py's table of bad requests.
"""

from __future__ import annotations

import pytest
import requests
from click.testing import CliRunner

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve]'")

from shakegen.cli import main  # noqa: E402
from shakegen.serve.gate import HostRule, host_of_header, json_content_type, token_matches  # noqa: E402
from tests.test_serve import Server, tiny_run  # noqa: E402, F401

TOKEN = "pässwörd€ "  # a trailing space and characters beyond ASCII, as an environment may hold it
ALLOWED_HOST = "shakegen.test"
ALLOWED_ORIGIN = "https://app.example:8443"


@pytest.fixture(scope="module")
def server(tiny_run):  # noqa: F811
    running = Server(
        tiny_run,
        tiny_run.parent,
        "--allow-host",
        ALLOWED_HOST,
        "--cors-origin",
        ALLOWED_ORIGIN,
        env={"SHAKEGEN_TOKEN": TOKEN},
    )
    yield running
    running.stop()


GOOD = {"Authorization": "Bearer pässwörd€".encode()}  # what curl sends: the token's UTF-8 bytes
BODY = {"seed": "First", "length": 10, "random_seed": 1}


def call(server: Server, method: str, path: str, headers: dict, body=None) -> requests.Response:
    return requests.request(method, server.url + path, headers=headers, json=body, timeout=60)


@pytest.mark.parametrize(
    "host",
    ["evil.example", f"evil.example:{8000}", "127.0.0.1.evil.example", "localhost.evil.example", "[::2]", "a b", ""],
)
def test_a_host_that_does_not_name_the_server_is_refused_everywhere(server, host):
    # A DNS-rebinding page: its own name now points at 127.0.0.1, and its scripts read the answers.
    for method, path, body in [("GET", "/", None), ("GET", "/healthz", None), ("GET", "/v1/model", None)] + [
        ("POST", "/v1/generate", BODY),
        ("GET", "/openapi.json", None),
    ]:
        answer = call(server, method, path, {**GOOD, "Host": host}, body)
        assert answer.status_code == 421, (host, path, answer.text)
        assert "--allow-host" in answer.json()["detail"] and "\n" not in answer.json()["detail"]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LOCALHOST.", "[::1]", ALLOWED_HOST, "Shakegen.Test"])
def test_the_servers_own_names_and_allowed_hosts_pass(server, host):
    named = f"{host}:{server.port}"
    assert call(server, "GET", "/v1/model", {**GOOD, "Host": named}).status_code == 200
    assert call(server, "GET", "/healthz", {"Host": host}).status_code == 200  # the default port: no port given


@pytest.mark.parametrize("origin", ["https://evil.example", "http://localhost:1", "null", "http://127.0.0.1"])
def test_a_page_of_another_site_is_refused(server, origin):
    for method, path, body in [("POST", "/v1/generate", BODY), ("GET", "/v1/model", None), ("GET", "/healthz", None)]:
        answer = call(server, method, path, {**GOOD, "Origin": origin}, body)
        assert answer.status_code == 403, (origin, path, answer.text)
        assert "--cors-origin" in answer.json()["detail"]
        assert "access-control-allow-origin" not in answer.headers
    preflight = call(server, "OPTIONS", "/v1/generate", {"Origin": origin, "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 403 and "access-control-allow-origin" not in preflight.headers


def test_the_servers_own_page_and_an_allowed_origin_pass(server):
    own = call(server, "POST", "/v1/generate", {**GOOD, "Origin": server.url}, BODY)  # the page, same origin
    assert own.status_code == 200 and "access-control-allow-origin" not in own.headers
    allowed = call(server, "POST", "/v1/generate", {**GOOD, "Origin": ALLOWED_ORIGIN}, BODY)
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "Origin" in allowed.headers["vary"]
    # Its refusals carry the header too, so its script can read why.
    refused = call(server, "POST", "/v1/generate", {"Origin": ALLOWED_ORIGIN}, BODY)
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    preflight = call(
        server,
        "OPTIONS",
        "/v1/generate",
        {
            "Origin": ALLOWED_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "POST" in preflight.headers["access-control-allow-methods"]
    allowed_headers = preflight.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed_headers and "content-type" in allowed_headers


def test_the_token_matches_as_typed(server):
    for authorization in [
        "Bearer pässwörd€".encode(),  # UTF-8, as curl and browsers send it
        "bearer   pässwörd€  ".encode(),
        "Bearer pässwörd€ ".encode(),  # the configured token exactly, trailing space included
    ]:
        assert call(server, "GET", "/v1/model", {"Authorization": authorization}).status_code == 200, authorization
    for authorization in ["Bearer pässwörd".encode(), "Bearer pässwörd€€".encode(), b"Bearer p\xe4ssw\xf6rd", b""]:
        assert call(server, "GET", "/v1/model", {"Authorization": authorization}).status_code == 401, authorization


def test_token_comparison_without_a_server():
    assert token_matches(b"Bearer s3cret", "s3cret ")  # configured with a trailing space
    assert token_matches("Bearer caf\u00e9".encode("latin-1"), "caf\u00e9")  # Python's http.client sends Latin-1
    assert token_matches("Bearer caf\u00e9".encode(), " caf\u00e9")
    assert not token_matches(b"Basic s3cret", "s3cret") and not token_matches(b"Bearer s3cre", "s3cret")


def test_host_rules_without_a_server():
    loopback = HostRule.for_server("127.0.0.1")
    assert all(loopback.allows(host) for host in ["127.0.0.1:8000", "localhost", "[::1]:80", None])
    assert not any(loopback.allows(host) for host in ["evil.example", "127.0.0.2", "[::1", "x/y", "a:b:c"])
    everywhere = HostRule.for_server("0.0.0.0", ("shakegen.test",))
    assert (
        everywhere.allows("192.168.1.5:8000") and everywhere.allows("[fe80::1]") and everywhere.allows("shakegen.test")
    )
    assert not everywhere.allows("evil.example:8000")
    assert HostRule.for_server("127.0.0.1", ("*",)).allows("anything.example")
    assert host_of_header("[::1]:8000") == "::1" and host_of_header("Example.ORG.:1") == "example.org"
    assert json_content_type("application/json; charset=utf-8") and not json_content_type("application/jsonx")
    assert not json_content_type("text/plain") and not json_content_type(None)


@pytest.mark.parametrize(
    "option, value, words",
    [
        ("--allow-host", "http://evil.example", "not a host name"),
        ("--allow-host", "shakegen.test:8000", "not a host name"),
        ("--cors-origin", "app.example", "not a web origin"),
        ("--cors-origin", "https://app.example/page", "not a web origin"),
    ],
)
def test_bad_allow_host_and_cors_origin_values_are_refused_in_one_line(tiny_run, option, value, words):  # noqa: F811
    result = CliRunner().invoke(main, ["serve", "--checkpoint", str(tiny_run), "--port", "0", option, value])
    assert result.exit_code == 2, result.output
    assert option in result.output and words in result.output
