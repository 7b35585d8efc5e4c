"""The FastAPI app of ``shakegen serve``: routes, the page and offline docs, behind the ``Gate``.

Routes call the Python API only (through ``ModelWorker``), the same functions as
``shakegen generate`` and ``eval``, so the same request gives the same text as the CLI.
Every request first passes the ``Gate`` (Host, Origin, token, content type, size; see
``gate.py``), and the OpenAPI schema documents each answer a route can give.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPBearer
from fastapi_offline import FastAPIOffline

import shakegen
from shakegen.errors import ShakegenError
from shakegen.serve.gate import Gate, HostRule
from shakegen.serve.schemas import (
    SSE_EVENT,
    ApiError,
    BeamAnswer,
    EvaluateAnswer,
    GenerateAnswer,
    InspectAnswer,
    SuggestAnswer,
    error_responses,
    inspect_request_model,
    parse_body,
    request_body_schema,
    request_models,
)
from shakegen.serve.worker import ModelWorker, run_name
from shakegen.use.sampling import TextCollector

PAGE = Path(__file__).parent / "static" / "index.html"
INSPECT_VIEW = Path(__file__).parent / "static" / "inspect_view.js"  # shared with shakegen inspect --html
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class AsciiJSONResponse(JSONResponse):
    """JSON with every non-ASCII character escaped: an error quoting any text always encodes."""

    def render(self, content) -> bytes:
        return json.dumps(content, allow_nan=False, separators=(",", ":")).encode("ascii")


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
    models = request_models(limits, len(model.vocabulary))
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
    page = PAGE.read_text(encoding="utf-8").replace("/*INSPECT_VIEW*/", INSPECT_VIEW.read_text(encoding="utf-8"))
    inspect_models = inspect_request_model(limits, len(model.vocabulary))

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError):
        return AsciiJSONResponse(error.to_json(), status_code=error.status)

    @app.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/healthz", tags=["server"], responses=error_responses(403, 421))
    async def healthz() -> dict:
        """Liveness: answers at once, even while a long sample or evaluation runs. No token needed.

        Counts what the model's thread does: samples and evaluations running, finished, and
        stopped early because their client went away, characters sampled and evaluation turns."""
        return {"status": "ok", "run": worker.card["run"], **worker.counters.to_json()}

    @app.get("/v1/model", tags=["model"], dependencies=secured, responses=error_responses(*gated))
    async def model_card() -> dict:
        """The run served: architecture, parameters, vocabulary, validation loss, training time, parent, limits."""
        return worker.card

    @app.post(
        "/v1/generate",
        tags=["sampling"],
        dependencies=secured,
        openapi_extra=request_body_schema(models.generate),
        response_model=GenerateAnswer,
        responses={
            200: {
                "description": 'The samples; with "stream": true, server-sent events instead.',
                "content": {"text/event-stream": {"schema": SSE_EVENT}},
            },
            **error_responses(*posted),
        },
    )
    async def generate(request: Request):
        """Sample text as ``shakegen generate`` does. With ``"stream": true``, server-sent events:
        ``start`` (random seed), ``text`` (``{"sample", "text"}`` as sampled, the seed first), ``done``."""
        body = parse_body(await request.body(), models.generate, models.allowed)
        try:
            plan = worker.plan(
                body.seed,
                body.length,
                body.temperature,
                body.top_k,
                body.top_p,
                body.num_samples,
                body.random_seed,
                body.skip_unknown,
                min_p=body.min_p,
                ban=body.ban,
                stop=body.stop,
                keep_stop=body.keep_stop,
                lines=body.lines,
            )
        except (ShakegenError, ValueError) as error:
            raise _library_error(error, model, "seed", models.allowed) from None
        if body.stream:
            return StreamingResponse(
                _events(worker, plan, request), media_type="text/event-stream", headers=SSE_HEADERS
            )
        started = time.perf_counter()
        collected = TextCollector(plan.num_samples, plan.prefix)
        async for block in worker.sample(plan, request.is_disconnected):
            collected.add(block)
        texts = collected.texts()
        return JSONResponse({"text": texts[0], "texts": texts, **_summary(plan, started)})

    @app.post(
        "/v1/beam",
        tags=["sampling"],
        dependencies=secured,
        openapi_extra=request_body_schema(models.beam),
        response_model=BeamAnswer,
        responses=error_responses(*posted),
    )
    async def beam(request: Request):
        """The most likely continuations of the seed by beam search, as ``shakegen generate --beam``: deterministic,
        on the NumPy engine, each with its log-probability, best first."""
        body = parse_body(await request.body(), models.beam, models.beam_allowed)
        started = time.perf_counter()
        try:
            found = await worker.beam(
                body.seed,
                body.length,
                body.beams,
                stop=body.stop,
                keep_stop=body.keep_stop,
                lines=body.lines,
                ban=body.ban,
                skip_unknown=body.skip_unknown,
            )
        except (ShakegenError, ValueError) as error:
            raise _library_error(error, model, "seed", models.beam_allowed) from None
        seconds = round(time.perf_counter() - started, 4)
        return JSONResponse(
            {"texts": [b["text"] for b in found], "beams": found, "engine": "numpy", "seconds": seconds}
        )

    @app.post(
        "/v1/suggest",
        tags=["sampling"],
        dependencies=secured,
        openapi_extra=request_body_schema(models.suggest),
        response_model=SuggestAnswer,
        responses=error_responses(*posted),
    )
    async def suggest(request: Request):
        """The model's proposals for a text, as ``shakegen write`` shows them (the page's suggest mode): the
        likeliest next characters and words with their probabilities, and a continuation to the line end."""
        body = parse_body(await request.body(), models.suggest, models.allowed)
        try:
            answer = await worker.suggest(body.text, body.count, body.temperature, body.random_seed, body.ban)
        except (ShakegenError, ValueError) as error:
            raise _library_error(error, model, "text", models.allowed) from None
        return JSONResponse(answer)

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
        body = parse_body(await request.body(), models.evaluate, models.allowed, models.max_evaluate_characters)
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
            raise _library_error(error, model, "text", models.allowed) from None
        if report is None:  # the client went away: nobody to answer
            return Response(status_code=204)
        return JSONResponse({**report.to_json(), "run": run_name(model)})

    @app.post(
        "/v1/inspect",
        tags=["scoring"],
        dependencies=secured,
        openapi_extra=request_body_schema(inspect_models.request),
        response_model=InspectAnswer,
        responses=error_responses(*posted),
    )
    async def inspect(request: Request):
        """What the model expected at each character, as ``shakegen inspect --json``: per character its
        log-probability, bits, rank and top guesses (and the hidden units asked for), and a summary.

        The text is inspected in turns with every other request, a piece at a time; a client that
        goes away stops its inspection."""
        from shakegen.use.inspect import summarize

        body = parse_body(await request.body(), inspect_models.request, inspect_models.allowed)
        if len(body.text) > inspect_models.max_characters:
            raise ApiError(
                413,
                f"The text has {len(body.text):,} characters, more than this server's limit of "
                f"{inspect_models.max_characters:,} for /v1/inspect; send a shorter text, or inspect it in parts.",
                "text",
                inspect_models.allowed["text"],
            )
        try:
            found = await worker.inspect(body.text, body.top_k, body.units, request.is_disconnected)
        except (ShakegenError, ValueError) as error:
            message = str(error)
            field = "units" if message.startswith(("A unit", "Layer", "Unit")) else "text"
            field = "top_k" if message.startswith("top_k") else field
            raise ApiError(422, str(error), field, inspect_models.allowed[field]) from None
        if found is None:
            return Response(status_code=204)
        return AsciiJSONResponse({"run": run_name(model), **found.to_json(), "summary": summarize(found).to_json()})

    return app


async def _events(worker: ModelWorker, plan, request: Request):
    """The server-sent events of one streamed request; joined per sample, the texts equal the plain answer's."""
    started = time.perf_counter()
    yield _event("start", {"random_seed": plan.random_seed, "num_samples": plan.num_samples, "length": plan.length})
    try:
        if plan.prefix:
            yield "".join(_event("text", {"sample": index, "text": plan.prefix}) for index in range(plan.num_samples))
        async for block in worker.sample(plan, request.is_disconnected):
            yield "".join(_event("text", {"sample": index, "text": text}) for index, text in enumerate(block))
    except Exception as error:  # the status line is sent: an error can only be an event now
        yield _event("error", {"detail": str(error)})
        return
    yield _event("done", _summary(plan, started))


def _event(name: str, data: dict) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _summary(plan, started: float) -> dict:
    seconds = time.perf_counter() - started
    characters = plan.length * plan.num_samples
    return {
        "random_seed": plan.random_seed,
        "engine": plan.engine,
        "length": plan.length,
        "num_samples": plan.num_samples,
        "dropped": plan.dropped,
        "characters": characters,
        "seconds": round(seconds, 4),
        "characters_per_second": round(characters / seconds, 1) if seconds > 0 else None,
        "stopped": [
            {"stop_reason": "length", "stop_text": None} if ended is None else ended.as_dict()
            for ended in (plan.endings or [None] * plan.num_samples)
        ],
    }


def _library_error(error: Exception, model, field: str, allowed: dict) -> ApiError:
    """A library ValueError as a 422: its message in the API's terms, naming the field it is about."""
    message = str(error).replace(str(model.run_dir), run_name(model)).replace("--skip-unknown", '"skip_unknown": true')
    if message.startswith(("Cannot ban", "That bans")):
        field = "ban"
    for name in ("temperature", "top_k", "top_p", "min_p", "ban", "stop", "lines", "window", "protocol"):
        if message.lower().startswith(name.replace("_", "-")) or message.lower().startswith(name):
            field = name
    if field == "seed":
        return ApiError(422, message, field, "text with at least one character the model knows (GET /v1/model)")
    return ApiError(422, message, field, allowed.get(field))
