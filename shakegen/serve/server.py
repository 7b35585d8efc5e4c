"""Binding the socket and running uvicorn for ``shakegen serve``.

The socket is bound before the model is loaded, so a port in use fails at once, and
``--port 0`` lets the system pick a free port, which is then printed.
"""

from __future__ import annotations

import socket
from typing import Callable

from shakegen.errors import ShakegenError
from shakegen.serve.gate import is_loopback
from shakegen.serve.limits import Limits

__all__ = ["ServeError", "bind", "check_cors_origins", "host_rule", "is_loopback", "serve"]


class ServeError(ShakegenError, OSError):
    """The server cannot listen where asked."""


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port``.

    Raises:
        ServeError: the address is taken, not this machine's, or cannot be resolved.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as error:
        raise ServeError(f"Cannot listen on {host}:{port}: {error.strerror or error}. Check --host.") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as error:
        sock.close()
        raise ServeError(
            f"Cannot listen on {host}:{port}: {error.strerror or error}. "
            "Choose another --port (0 picks a free one) or another --host."
        ) from None
    return sock


def host_rule(host: str, sock: socket.socket, allow_hosts: tuple[str, ...] = ()):
    """The Host names a server bound to ``host`` (as given to --host) on ``sock`` answers to.

    Raises:
        GateError (a ValueError): an --allow-host value that is not a host name.
    """
    from shakegen.serve.gate import HostRule

    address = sock.getsockname()[0]
    rule = HostRule.for_server(host, allow_hosts)
    return HostRule(rule.names | {address.lower()}, rule.any_ip, rule.any_host)


def check_cors_origins(origins: tuple[str, ...]) -> tuple[str, ...]:
    """``origins`` normalized (``scheme://host[:port]``). Raises GateError (a ValueError) for one that is not."""
    from shakegen.serve.gate import normalized_origin

    return tuple(normalized_origin(origin) for origin in origins)


def serve(
    sock: socket.socket,
    run,
    which: str,
    limits: Limits,
    token: str | None = None,
    message: Callable[[str], None] = lambda text: None,
    hosts=None,
    cors_origins: tuple[str, ...] = (),
    engine: str = "auto",
) -> None:
    """Load ``run`` with the Python API and serve it on ``sock`` until interrupted.

    Args:
        hosts: the ``HostRule`` of the Host names answered (see ``host_rule``).
        cors_origins: web origins of other sites whose pages may use the API.
        engine: ``auto``, ``numpy`` or ``tensorflow`` (see ``shakegen.load``).
    Raises:
        CheckpointError: no run there, or a damaged one.
    """
    import uvicorn

    import shakegen
    from shakegen.serve.app import create_app
    from shakegen.serve.worker import ModelWorker

    model = shakegen.load(run, which, engine)
    # Whatever samples a single request is ready now (TensorFlow's sampler compiled, if it is that),
    # not on the first visitor's request.
    model.generate("\n", length=1, random_seed=0)
    worker = ModelWorker(model, limits.validate())
    app = create_app(worker, token, hosts, cors_origins)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    message(
        f"Serving {worker.card['run']} ({which}) on http://{shown}:{port}/ "
        f"(API docs: http://{shown}:{port}/docs{'; token required on /v1' if token else ''}). Ctrl+C stops."
    )
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        worker.close()
