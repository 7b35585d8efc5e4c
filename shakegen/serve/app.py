"""The FastAPI app of ``shakegen serve``: the routes of each group registered behind the ``Gate``.

Routes call the Python API only (through ``ModelWorker``), the same functions as
``shakegen generate`` and ``eval``, so the same request gives the same text as the CLI.
Every request first passes the ``Gate`` (Host, Origin, token, content type, size; see
``gate.py``), and the OpenAPI schema documents each answer a route can give. The routes
live by what they serve: ``server_routes`` (the page, health, the card), ``sampling_routes``
(generate, beam, suggest) and ``scoring_routes`` (evaluate, inspect).
"""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.security import HTTPBearer
from fastapi_offline import FastAPIOffline

import shakegen
from shakegen.serve.answers import ApiError, AsciiJSONResponse
from shakegen.serve.card import run_name
from shakegen.serve.gate import Gate, HostRule
from shakegen.serve.request_models import inspect_request_model, request_models
from shakegen.serve.sampling_routes import add_sampling_routes
from shakegen.serve.scoring_routes import add_scoring_routes
from shakegen.serve.server_routes import add_server_routes
from shakegen.serve.worker import ModelWorker


def create_app(
    worker: ModelWorker,
    token: str | None = None,
    hosts: HostRule | None = None,
    cors_origins: tuple[str, ...] = (),
) -> FastAPIOffline:
    """The app serving ``worker``'s model.

    Args:
        token: with one, every /v1 route needs ``Authorization: Bearer token``.
        hosts: the Host names answered (default: a server bound to 127.0.0.1's).
        cors_origins: web origins of other sites whose pages may use the API (CORS).
    """
    model, limits = worker.model, worker.limits
    app = FastAPIOffline(
        title="shakegen",
        version=shakegen.__version__,
        description=f"Character-level text generation from the run **{run_name(model)}** ({model.which} weights). "
        "Docs served from this machine: nothing is fetched from outside.\n\n"
        "Every request body is JSON (`Content-Type: application/json`, UTF-8; 415 otherwise). A request must name "
        "this server in its Host header (421 otherwise, see --allow-host), and a web page of another site is "
        "refused (403) unless its origin was allowed with --cors-origin. Every refusal is "
        '`{"detail": ..., "field": ..., "allowed": ...}`: one line, the field it is about and what that field '
        "accepts.",
        swagger_ui_parameters={"validatorUrl": None},  # Swagger UI would send the schema to an outside validator
    )
    app.add_middleware(
        Gate,
        token=token,
        max_request_bytes=limits.max_request_bytes,
        hosts=hosts or HostRule.for_server("127.0.0.1"),
        cors_origins=cors_origins,
    )
    # Declared for the docs' Authorize button only; the Gate middleware enforces the token.
    secured = [Depends(HTTPBearer(auto_error=False))] if token else []
    gated = (401, 403, 421) if token else (403, 421)
    posted = (400, *gated, 413, 415, 422)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError):
        return AsciiJSONResponse(error.to_json(), status_code=error.status)

    models = request_models(limits, len(model.vocabulary))
    add_server_routes(app, worker, secured, gated)
    add_sampling_routes(app, worker, models, secured, posted)
    add_scoring_routes(app, worker, models, inspect_request_model(limits, len(model.vocabulary)), secured, posted)
    return app
