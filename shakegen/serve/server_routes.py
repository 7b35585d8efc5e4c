"""The server's own routes: the page at ``/``, ``/healthz`` (liveness and counters) and ``/v1/model`` (the card)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from shakegen.serve.answers import error_responses
from shakegen.serve.worker import ModelWorker

PAGE = Path(__file__).parent / "static" / "index.html"
INSPECT_VIEW = Path(__file__).parent / "static" / "inspect_view.js"  # shared with shakegen inspect --html


def page_html() -> str:
    """The served page: ``index.html`` with the inspect view's script put in."""
    return PAGE.read_text(encoding="utf-8").replace("/*INSPECT_VIEW*/", INSPECT_VIEW.read_text(encoding="utf-8"))


def add_server_routes(app: FastAPI, worker: ModelWorker, secured: list, gated: tuple):
    """Register ``/``, ``/healthz`` and ``/v1/model`` on ``app``.

    Args:
        secured: the card's dependencies (the bearer token, for the docs' Authorize button).
        gated: the statuses the Gate can answer a /v1 request with.
    """
    page = page_html()

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
