"""The sampling routes: /v1/generate (plain or as server-sent events), /v1/beam and /v1/suggest.

Each calls the Python API through ``ModelWorker``, the same functions as ``shakegen generate``
and ``shakegen write``, so the same request gives the same text as the CLI.
"""

from __future__ import annotations

import json
import time

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from shakegen.errors import ShakegenError
from shakegen.serve.answers import SSE_EVENT, BeamAnswer, GenerateAnswer, SuggestAnswer, error_responses, library_error
from shakegen.serve.generation_plan import plan_generation
from shakegen.serve.parsing import parse_body, request_body_schema
from shakegen.serve.request_models import RequestModels
from shakegen.serve.worker import ModelWorker
from shakegen.use.sampling import TextCollector

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def add_sampling_routes(app: FastAPI, worker: ModelWorker, models: RequestModels, secured: list, posted: tuple):
    """Register /v1/generate, /v1/beam and /v1/suggest on ``app``.

    Args:
        secured: the routes' dependencies (the bearer token, for the docs' Authorize button).
        posted: the error statuses a posted request can get.
    """
    _add_generate(app, worker, models, secured, posted)
    _add_beam(app, worker, models, secured, posted)
    _add_suggest(app, worker, models, secured, posted)


def _add_generate(app: FastAPI, worker: ModelWorker, models: RequestModels, secured: list, posted: tuple):
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
            plan = plan_generation(
                worker.model,
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
            raise library_error(error, worker.model, "seed", models.allowed) from None
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


def _add_beam(app: FastAPI, worker: ModelWorker, models: RequestModels, secured: list, posted: tuple):
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
            raise library_error(error, worker.model, "seed", models.beam_allowed) from None
        seconds = round(time.perf_counter() - started, 4)
        return JSONResponse(
            {"texts": [b["text"] for b in found], "beams": found, "engine": "numpy", "seconds": seconds}
        )


def _add_suggest(app: FastAPI, worker: ModelWorker, models: RequestModels, secured: list, posted: tuple):
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
            raise library_error(error, worker.model, "text", models.allowed) from None
        return JSONResponse(answer)


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
