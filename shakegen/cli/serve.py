"""shakegen serve: check the server's options, bind its socket and serve a run over HTTP."""

from __future__ import annotations

import click

from shakegen.cli import ui
from shakegen.cli.shared import engine_option, run_folder, run_options
from shakegen.serve.limits import Limits as ServeLimits


@click.command()
@run_options("serve")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Anything but loopback lets other machines in (a warning is printed; use --token).",
)
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port; 0 picks a free one."
)
@click.option(
    "--token",
    envvar="SHAKEGEN_TOKEN",
    default=None,
    help="Require 'Authorization: Bearer TOKEN' on every /v1 route (/healthz and the page stay open). "
    "[env: SHAKEGEN_TOKEN]",
)
@click.option(
    "--max-length",
    type=click.IntRange(min=1),
    default=ServeLimits.max_length,
    show_default=True,
    help="Most new characters per sample a request may ask for.",
)
@click.option(
    "--max-seed-characters",
    type=click.IntRange(min=1),
    default=ServeLimits.max_seed_characters,
    show_default=True,
    help="Longest seed a request may send.",
)
@click.option(
    "--max-samples",
    type=click.IntRange(min=1, max=1024),
    default=ServeLimits.max_samples,
    show_default=True,
    help="Most samples one request may ask for.",
)
@click.option(
    "--max-request-bytes",
    type=click.IntRange(min=1),
    default=ServeLimits.max_request_bytes,
    show_default=True,
    help="Largest request body, in bytes.",
)
@click.option(
    "--max-evaluate-characters",
    type=click.IntRange(min=1),
    default=ServeLimits.max_evaluate_characters,
    show_default=True,
    help="Longest text /v1/evaluate scores (it takes turns with sampling; this bounds one request's share).",
)
@click.option(
    "--allow-host",
    "allow_hosts",
    multiple=True,
    metavar="NAME",
    help="Also answer requests whose Host header names NAME (a proxy's or DNS name of this machine; '*' for any, "
    "which gives up the defence against DNS rebinding). By default only the --host address (and, on loopback, "
    "localhost, 127.0.0.1 and [::1]). Repeatable.",
)
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    metavar="ORIGIN",
    help="Let web pages of ORIGIN (such as https://app.example) use the API: CORS headers and preflights for it. "
    "Pages of any other site are refused. Repeatable.",
)
@engine_option("samples and figures: auto as in generate and eval")
def serve(
    checkpoint_dir,
    which,
    host,
    port,
    token,
    max_length,
    max_seed_characters,
    max_samples,
    max_request_bytes,
    max_evaluate_characters,
    allow_hosts,
    cors_origins,
    engine,
):
    """Serve a run over HTTP: a JSON API, text streamed as server-sent events, and a web page.

    \b
    POST /v1/generate  seed, length, temperature, top_k, top_p, random_seed, num_samples, stream
    POST /v1/evaluate  text (protocol, window) -> loss, perplexity, bits per character
    POST /v1/inspect   text (top_k, units) -> per-character records, as shakegen inspect --json
    POST /v1/beam      seed, length, beams -> the likeliest continuations, as generate --beam
    POST /v1/suggest   text -> next characters and words and a continuation, as shakegen write
    GET  /v1/model     the run's card;  GET /healthz;  GET /docs (works offline);  GET / (the page)

    Bodies must be JSON (Content-Type: application/json); a request must name this server in
    its Host header (--allow-host adds names), and web pages of other sites are refused
    unless allowed with --cors-origin, so a page you visit cannot drive a local server.

    \b
    Needs the serve extra: pip install 'shakegen[serve]'. Example:
      shakegen serve --checkpoint checkpoints/quick
      curl -s localhost:8000/v1/generate -H 'Content-Type: application/json' -d '{"seed": "ROMEO:", "length": 200}'
    """
    try:
        from shakegen.serve import server
    except ImportError as error:
        raise click.ClickException(
            f"shakegen serve needs the serve extra ({error.name or error} is missing): pip install 'shakegen[serve]'."
        ) from None
    if token is not None and not token.strip():
        raise click.BadParameter("is empty; give a token, or unset SHAKEGEN_TOKEN for none.", param_hint="--token")
    limits = ServeLimits(max_length, max_seed_characters, max_samples, max_request_bytes, max_evaluate_characters)
    try:
        cors_origins = server.check_cors_origins(cors_origins)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--cors-origin") from None
    if not server.is_loopback(host):
        ui.message(
            f"[yellow]Warning:[/] listening on {host}: other machines can reach this server"
            + ("." if token else " and there is no --token; anyone who can reach it can use it.")
        )
    sock = server.bind(host, port)

    try:
        try:
            hosts = server.host_rule(host, sock, allow_hosts)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--allow-host") from None
        run_dir = run_folder(checkpoint_dir)
        ui.message(f"[dim]Loading {run_dir} ({which})...[/]")
        server.serve(
            sock,
            run_dir,
            which,
            limits,
            token,
            message=lambda text: ui.console.print(text, soft_wrap=True),
            hosts=hosts,
            cors_origins=cors_origins,
            engine=engine,
        )
    finally:
        sock.close()
