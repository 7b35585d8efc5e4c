"""The checks every request passes before a route sees it: Host, Origin, token, content type, size.

A server on 127.0.0.1 without a token is reachable from every web page the user opens, so:

- Host: a request must name this server (the address it is bound to; for loopback also
  ``localhost``, ``127.0.0.1`` and ``[::1]``; any IP address when bound to all of them) or a
  name given with ``--allow-host``. A DNS-rebinding page, whose own name now points here,
  is refused (421) before it can read anything.
- Origin: a browser names the page a request comes from. A page of another site is refused
  (403) unless its origin is given with ``--cors-origin``; that one gets CORS headers,
  preflights included, so its scripts can read the answers.
- Content type: a body must be ``application/json`` in UTF-8 (415 otherwise). A page of
  another site can send ``text/plain`` or a form without asking (a CORS "simple" request);
  it cannot send JSON without a preflight, which is refused unless allowed.
- Token: with ``--token``, every /v1 route needs ``Authorization: Bearer TOKEN``, compared
  in constant time as UTF-8 bytes, stripped of surrounding white space on both sides.
- Size: a body over ``--max-request-bytes`` is refused (413) before anything parses it.

No FastAPI here: the middleware is plain ASGI, and the rules are plain functions.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

WILDCARD_HOSTS = ("", "0.0.0.0", "::")
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
PREFLIGHT_MAX_AGE = "600"


class GateError(ValueError):
    """A ``--allow-host`` or ``--cors-origin`` value that cannot be used."""


def _ip(name: str):
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def normalized_host(name: str) -> str:
    """A host name as compared: lower case, no brackets around IPv6, no trailing dot."""
    return name.strip().lower().removeprefix("[").removesuffix("]").rstrip(".")


def host_of_header(value: str) -> str | None:
    """The host name of a Host header (``name``, ``name:port``, ``[v6]:port``); None if malformed."""
    value = value.strip()
    if value.startswith("["):
        name, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
        return normalized_host(name) if _ip(name) else None
    name, colon, port = value.rpartition(":")
    if not colon:
        name = value
    elif not port.isdigit():
        return None
    if not name or any(character in name for character in "/\\@ ?#[]:"):
        return None
    return normalized_host(name)


@dataclass(frozen=True)
class HostRule:
    """The Host names a server answers to."""

    names: frozenset[str]
    any_ip: bool = False  # bound to every address: any IP literal names this machine
    any_host: bool = False  # --allow-host '*'

    @classmethod
    def for_server(cls, bound_host: str, allowed: tuple[str, ...] = ()) -> "HostRule":
        """The rule of a server bound to ``bound_host`` (as given to --host), with ``--allow-host`` names.

        Raises:
            GateError: an allowed name that is not a host name.
        """
        extra = set()
        for name in allowed:
            if name.strip() == "*":
                return cls(frozenset(), any_host=True)
            parsed = host_of_header(name)
            if parsed is None or parsed != normalized_host(name):
                raise GateError(
                    f"{name!r} is not a host name; give a name or address without scheme or port, "
                    "such as shakegen.example or 192.168.1.5 (or '*' for any)."
                )
            extra.add(parsed)
        bound = normalized_host(bound_host)
        names = {bound} | extra
        if bound in WILDCARD_HOSTS:
            return cls(frozenset(names | {"localhost", socket.gethostname().lower()}), any_ip=True)
        if is_loopback(bound):
            names |= set(LOOPBACK_NAMES)
        return cls(frozenset(names))

    def allows(self, header: str | None) -> bool:
        """Whether a request with this Host header (None: none sent, as in HTTP/1.0) may pass."""
        if header is None or self.any_host:
            return True
        name = host_of_header(header)
        if name is None:
            return False
        return name in self.names or (self.any_ip and _ip(name) is not None)

    def describe(self) -> str:
        if self.any_host:
            return "any host"
        shown = sorted(f"[{name}]" if ":" in name else name for name in self.names)
        return ", ".join(shown) + (" or any IP address" if self.any_ip else "")


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    host = normalized_host(host)
    if host == "localhost":
        return True
    address = _ip(host)
    return address is not None and address.is_loopback


def normalized_origin(origin: str) -> str:
    """An origin as compared: ``scheme://host[:port]``, lower case, no path or trailing slash.

    Raises:
        GateError: not an origin.
    """
    parts = urlsplit(origin.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/") or parts.query:
        raise GateError(
            f"{origin!r} is not a web origin; give scheme, host and port only, such as https://app.example:8443."
        )
    return f"{parts.scheme}://{parts.netloc}".lower()


def same_origin(origin: str, host_header: str | None) -> bool:
    """Whether a browser's Origin names the host the request was sent to (a page of this server)."""
    parts = urlsplit(origin.strip())
    return host_header is not None and parts.scheme in ("http", "https") and parts.netloc.lower() == host_header.lower()


def _utf8_or_latin1(raw: bytes) -> set[str]:
    """The texts a header's bytes may mean: UTF-8 (curl, browsers) and Latin-1 (Python's http.client)."""
    texts = {raw.decode("latin-1")}
    try:
        texts.add(raw.decode("utf-8"))
    except UnicodeDecodeError:
        pass
    return texts


def token_matches(authorization: bytes, token: str) -> bool:
    """Whether an Authorization header's bytes carry ``Bearer token``, both sides stripped, compared as UTF-8."""
    expected = token.strip().encode("utf-8")
    for text in _utf8_or_latin1(authorization):
        scheme, _, given = text.strip().partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode("utf-8", "replace"), expected):
            return True
    return False


def json_content_type(value: str | None) -> bool:
    """Whether a Content-Type is JSON in UTF-8: ``application/json``, with no charset or ``utf-8``."""
    if value is None:
        return False
    media, *parameters = (part.strip().lower() for part in value.split(";"))
    for parameter in parameters:
        name, _, setting = parameter.partition("=")
        if name.strip() == "charset" and setting.strip().strip('"') not in ("utf-8", "utf8"):
            return False
    return media == "application/json"


class Gate:
    """Pure ASGI middleware: Host, Origin (and CORS), the bearer token on /v1 routes, the content
    type and the cap on a body's bytes, in that order.

    The body is read here (at most ``max_request_bytes`` of it) and handed on whole, so an
    oversized request is refused before anything parses it, whatever its Content-Length says.
    """

    def __init__(
        self,
        app,
        token: str | None,
        max_request_bytes: int,
        hosts: HostRule,
        cors_origins: tuple[str, ...] = (),
    ):
        self.app, self.max_request_bytes, self.hosts = app, max_request_bytes, hosts
        self.token = token.strip() if token is not None else None
        self.cors_origins = frozenset(normalized_origin(origin) for origin in cors_origins)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        raw_headers = {key.decode("latin-1").lower(): value for key, value in scope["headers"]}
        headers = {key: value.decode("latin-1") for key, value in raw_headers.items()}
        host, origin = headers.get("host"), headers.get("origin")
        if not self.hosts.allows(host):
            return await _answer(
                send,
                421,
                f"This server does not answer to the host {host!r}: it answers to {self.hosts.describe()}. "
                "If that name is this server's, start it with --allow-host NAME.",
            )
        cors: list = []
        if origin is not None and not same_origin(origin, host):
            if _comparable_origin(origin) not in self.cors_origins:
                return await _answer(
                    send,
                    403,
                    f"Requests from web pages of other sites are refused: the origin {origin!r} is not this "
                    "server's. To let that site's pages use this server, start it with --cors-origin ORIGIN.",
                )
            cors = [(b"access-control-allow-origin", origin.encode("latin-1")), (b"vary", b"Origin")]
            if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
                return await _preflight(send, cors)
        send = _adding_headers(send, cors + [(b"x-content-type-options", b"nosniff")])
        if self.token is not None and scope["path"].startswith("/v1"):
            if not token_matches(raw_headers.get("authorization", b""), self.token):
                return await _answer(
                    send,
                    401,
                    "This server needs a token: send the header 'Authorization: Bearer TOKEN'.",
                    [(b"www-authenticate", b"Bearer")],
                )
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        if not json_content_type(headers.get("content-type")):
            given = headers.get("content-type")
            return await _answer(
                send,
                415,
                "The request body must be sent as JSON in UTF-8, with the header 'Content-Type: application/json' "
                f"({'none was sent' if given is None else f'got {given!r}'}); with curl: "
                "-H 'Content-Type: application/json'.",
            )
        too_large = (
            f"The request body is larger than this server's limit of {self.max_request_bytes:,} bytes "
            "(shakegen serve --max-request-bytes).",
            f"at most {self.max_request_bytes:,} bytes",
        )
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_request_bytes:
            return await _answer(send, 413, too_large[0], allowed=too_large[1])
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_request_bytes:
                return await _answer(send, 413, too_large[0], allowed=too_large[1])
        handed = False

        async def replay():
            nonlocal handed
            if not handed:
                handed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()  # after the body: a disconnect, when the client goes

        await self.app(scope, replay, send)


def _comparable_origin(origin: str) -> str | None:
    try:
        return normalized_origin(origin)
    except GateError:
        return None  # "null" (a sandboxed page, a file) and anything else malformed


def _adding_headers(send, extra: list):
    async def sending(message):
        if message["type"] == "http.response.start":
            message = {**message, "headers": list(message.get("headers", [])) + extra}
        await send(message)

    return sending


async def _preflight(send, cors: list) -> None:
    """The answer to an allowed origin's CORS preflight: what it may send."""
    headers = cors + [
        (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
        (b"access-control-allow-headers", b"Authorization, Content-Type"),
        (b"access-control-max-age", PREFLIGHT_MAX_AGE.encode()),
        (b"content-length", b"0"),
    ]
    await send({"type": "http.response.start", "status": 204, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


async def _answer(send, status: int, detail: str, headers: list | None = None, allowed: str | None = None) -> None:
    """A refusal in the API's error shape; ASCII-escaped JSON, whatever the detail quotes."""
    body = {"detail": detail} if allowed is None else {"detail": detail, "allowed": allowed}
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
            + (headers or []),
        }
    )
    await send({"type": "http.response.body", "body": payload})
