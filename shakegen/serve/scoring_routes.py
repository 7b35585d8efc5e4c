"""The scoring routes: /v1/evaluate (loss, perplexity, bits per character) and /v1/inspect (per character).

Both take turns with every other request on the model's thread (``ModelWorker``), and stop
when their client goes away (answering 204: nobody is there to read it).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from shakegen.errors import ShakegenError
from shakegen.serve.answers import (
    ApiError,
    AsciiJSONResponse,
    EvaluateAnswer,
    InspectAnswer,
    error_responses,
    library_error,
)
from shakegen.serve.card import run_name
from shakegen.serve.parsing import check_text_length, parse_body, request_body_schema
from shakegen.serve.request_models import InspectModels, RequestModels
from shakegen.serve.worker import ModelWorker


def add_scoring_routes(
    app: FastAPI, worker: ModelWorker, models: RequestModels, inspect_models: InspectModels, secured, posted
):
    """Register /v1/evaluate and /v1/inspect on ``app`` (``secured`` and ``posted`` as for the sampling routes)."""
    _add_evaluate(app, worker, models, secured, posted)
    _add_inspect(app, worker, inspect_models, secured, posted)


def _add_evaluate(app: FastAPI, worker: ModelWorker, models: RequestModels, secured: list, posted: tuple):
    @app.post(
        "/v1/evaluate",
        tags=["scoring"],
        dependencies=secured,
        openapi_extra=request_body_schema(models.evaluate),
        response_model=EvaluateAnswer,
        responses=error_responses(*posted),
    )
    async def evaluate(request: Request):
        """Score a text as ``shakegen eval --text`` does: loss (nats per character), perplexity, bits per character.

        The text is scored in turns with every other request (one compiled call of the model
        at a time), so other clients keep being served while a long text is scored; a client
        that goes away stops its evaluation. ``window`` is for protocol ``windows`` only."""
        body = parse_body(await request.body(), models.evaluate, models.allowed, models.evaluate_limit)
        if body.window is not None and body.protocol != "windows":
            raise ApiError(
                422,
                'window applies to protocol "windows" only; streaming carries the state through the whole text.',
                "window",
                models.allowed["window"],
            )
        try:
            report = await worker.evaluate(body.text, body.protocol, body.window, request.is_disconnected)
        except (ShakegenError, ValueError) as error:
            raise library_error(error, worker.model, "text", models.allowed) from None
        if report is None:  # the client went away: nobody to answer
            return Response(status_code=204)
        return JSONResponse({**report.to_json(), "run": run_name(worker.model)})


def _add_inspect(app: FastAPI, worker: ModelWorker, models: InspectModels, secured: list, posted: tuple):
    @app.post(
        "/v1/inspect",
        tags=["scoring"],
        dependencies=secured,
        openapi_extra=request_body_schema(models.request),
        response_model=InspectAnswer,
        responses=error_responses(*posted),
    )
    async def inspect(request: Request):
        """What the model expected at each character, as ``shakegen inspect --json``: per character its
        log-probability, bits, rank and top guesses (and the hidden units asked for), and a summary.

        The text is inspected in turns with every other request, a piece at a time; a client that
        goes away stops its inspection."""
        from shakegen.use.inspect import summarize

        body = parse_body(await request.body(), models.request, models.allowed)
        check_text_length(
            body.text, models.limit, models.allowed["text"]
        )  # once the fields are valid: a bad top_k is told first
        try:
            found = await worker.inspect(body.text, body.top_k, body.units, request.is_disconnected)
        except (ShakegenError, ValueError) as error:
            message = str(error)
            field = "units" if message.startswith(("A unit", "Layer", "Unit")) else "text"
            field = "top_k" if message.startswith("top_k") else field
            raise ApiError(422, str(error), field, models.allowed[field]) from None
        if found is None:
            return Response(status_code=204)
        return AsciiJSONResponse(
            {"run": run_name(worker.model), **found.to_json(), "summary": summarize(found).to_json()}
        )
