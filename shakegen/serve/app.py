"""The FastAPI app of ``shakegen serve``: routes, bearer token, request-size cap, page and docs.

Routes call the Python API only (through ``ModelWorker``), the same functions as
``shakegen generate`` and ``eval``, so the same request gives the same text as the CLI.
"""

from __future__ import annotations

import hmac
import json
import time
from pathlib import Path

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from fastapi.security import HTTPBearer
from fastapi_offline import FastAPIOffline

import shakegen
from shakegen.errors import ShakegenError
from shakegen.serve.schemas import ApiError, parse_body, request_body_schema, request_models
from shakegen.serve.worker import ModelWorker, run_name

PAGE = Path(__file__).parent / "static" / "index.html"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def create_app(worker: ModelWorker, token: str | None = None) -> FastAPIOffline:
    """The app serving ``worker``'s model; with ``token``, every /v1 route needs ``Bearer token``."""
    model, limits = worker.model, worker.limits
    models = request_models(limits, len(model.vocabulary))
    app = FastAPIOffline(
        title="shakegen",
        version=shakegen.__version__,
        description=f"Character-level text generation from the run **{run_name(model)}** ({model.which} weights). "
        "Docs served from this machine: nothing is fetched from outside.",
        swagger_ui_parameters={"validatorUrl": None},  # Swagger UI would send the schema to an outside validator
    )
    app.add_middleware(Gate, token=token, max_request_bytes=limits.max_request_bytes)
    # Declared for the docs' Authorize button only; the Gate middleware enforces the token.
    secured = [Depends(HTTPBearer(auto_error=False))] if token else []
    page = PAGE.read_text(encoding="utf-8")

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError):
        return JSONResponse(error.to_json(), status_code=error.status)

    @app.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/healthz", tags=["server"])
    async def healthz() -> dict:
        """Liveness: answers at once, even while a long sample runs. No token needed."""
        return {"status": "ok", "run": worker.card["run"], **worker.counters.to_json()}

    @app.get("/v1/model", tags=["model"], dependencies=secured)
    async def model_card() -> dict:
        """The run served: architecture, parameters, vocabulary, validation loss, training time, parent, limits."""
        return worker.card

    @app.post(
        "/v1/generate", tags=["sampling"], dependencies=secured, openapi_extra=request_body_schema(models.generate)
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
            )
        except (ShakegenError, ValueError) as error:
            raise _library_error(error, model, "seed", models.allowed) from None
        if body.stream:
            return StreamingResponse(
                _events(worker, plan, request), media_type="text/event-stream", headers=SSE_HEADERS
            )
        started = time.perf_counter()
        pieces = [[plan.prefix] for _ in range(plan.num_samples)]
        async for block in worker.sample(plan, request.is_disconnected):
            for parts, text in zip(pieces, block, strict=True):
                parts.append(text)
        texts = ["".join(parts) for parts in pieces]
        return {"text": texts[0], "texts": texts, **_summary(plan, started)}

    @app.post(
        "/v1/evaluate", tags=["scoring"], dependencies=secured, openapi_extra=request_body_schema(models.evaluate)
    )
    async def evaluate(request: Request) -> dict:
        """Score a text as ``shakegen eval --text`` does: loss (nats per character), perplexity, bits per character."""
        body = parse_body(await request.body(), models.evaluate, models.allowed)
        if body.window is not None and body.protocol != "windows":
            raise ApiError(
                422,
                'window applies to protocol "windows" only; streaming carries the state through the whole text.',
                "window",
                models.allowed["window"],
            )
        try:
            report = await worker.evaluate(body.text, body.protocol, body.window)
        except (ShakegenError, ValueError) as error:
            raise _library_error(error, model, "text", models.allowed) from None
        return {**report.to_json(), "run": run_name(model)}

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
        "length": plan.length,
        "num_samples": plan.num_samples,
        "dropped": plan.dropped,
        "characters": characters,
        "seconds": round(seconds, 4),
        "characters_per_second": round(characters / seconds, 1) if seconds > 0 else None,
    }


def _library_error(error: Exception, model, field: str, allowed: dict) -> ApiError:
    """A library ValueError as a 422: its message in the API's terms, naming the field it is about."""
    message = str(error).replace(str(model.run_dir), run_name(model)).replace("--skip-unknown", '"skip_unknown": true')
    for name in ("temperature", "top_k", "top_p", "window", "protocol"):
        if message.lower().startswith(name.replace("_", "-")) or message.lower().startswith(name):
            field = name
    if field == "seed":
        return ApiError(422, message, field, "text with at least one character the model knows (GET /v1/model)")
    return ApiError(422, message, field, allowed.get(field))


class Gate:
    """Pure ASGI middleware: the bearer token on /v1 routes, then the cap on a request body's bytes.

    The body is read here (at most ``max_request_bytes`` of it) and handed on whole, so an
    oversized request is refused before anything parses it, whatever its Content-Length says.
    """

    def __init__(self, app, token: str | None, max_request_bytes: int):
        self.app, self.token, self.max_request_bytes = app, token, max_request_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        if self.token is not None and scope["path"].startswith("/v1") and not self._authorized(headers):
            return await _answer(
                send,
                401,
                {"detail": "This server needs a token: send the header 'Authorization: Bearer TOKEN'."},
                [(b"www-authenticate", b"Bearer")],
            )
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        too_large = {
            "detail": f"The request body is larger than this server's limit of {self.max_request_bytes:,} bytes "
            "(shakegen serve --max-request-bytes).",
            "allowed": f"at most {self.max_request_bytes:,} bytes",
        }
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_request_bytes:
            return await _answer(send, 413, too_large)
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_request_bytes:
                return await _answer(send, 413, too_large)
        handed = False

        async def replay():
            nonlocal handed
            if not handed:
                handed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()  # after the body: a disconnect, when the client goes

        await self.app(scope, replay, send)

    def _authorized(self, headers: dict) -> bool:
        scheme, _, given = headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.token.encode())


async def _answer(send, status: int, body: dict, headers: list | None = None) -> None:
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
