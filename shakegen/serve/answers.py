"""What the HTTP API answers: the one-line error, the answer models, and the statuses each route documents.

Every refusal is ``{"detail": ..., "field": ..., "allowed": ...}`` (``ApiError``); a library
error (a bad seed, ban or option) becomes one naming the request field it is about
(``library_error``). The answer models and ``SSE_EVENT`` are what the OpenAPI schema shows
of each answer: the error model of each status, and both content types of ``/v1/generate``.
"""

from __future__ import annotations

import json
from typing import Literal, Optional

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from shakegen.serve.card import run_name


class ApiError(Exception):
    """An error answered as ``{"detail": ..., "field": ..., "allowed": ...}`` with ``status``."""

    def __init__(self, status: int, detail: str, field: Optional[str] = None, allowed: Optional[str] = None):
        super().__init__(detail)
        self.status, self.detail, self.field, self.allowed = status, detail, field, allowed

    def to_json(self) -> dict:
        body: dict = {"detail": self.detail}
        if self.field is not None:
            body["field"] = self.field
        if self.allowed is not None:
            body["allowed"] = self.allowed
        return body


class AsciiJSONResponse(JSONResponse):
    """JSON with every non-ASCII character escaped: an error quoting any text always encodes."""

    def render(self, content) -> bytes:
        return json.dumps(content, allow_nan=False, separators=(",", ":")).encode("ascii")


def library_error(error: Exception, model, field: str, allowed: dict) -> ApiError:
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


class ErrorAnswer(BaseModel):
    """Every refusal: what happened and how to fix it in one line, and the field it is about."""

    detail: str = Field(..., description="One line: what was wrong, what is expected, how to fix it.")
    field: Optional[str] = Field(None, description="The request field the error is about, when there is one.")
    allowed: Optional[str] = Field(None, description="What that field accepts, in words.")


class GenerateAnswer(BaseModel):
    """The plain (not streamed) answer of ``/v1/generate``."""

    text: str = Field(..., description="The first sample: the seed (as the model sees it) and the new text.")
    texts: list[str] = Field(..., description="Every sample; sample i used random_seed + i.")
    random_seed: int
    engine: Literal["numpy", "tensorflow"] = Field(..., description="What sampled it: the NumPy engine or TensorFlow.")
    length: int
    num_samples: int
    dropped: list[str] = Field(..., description="Seed characters left out (skip_unknown).")
    characters: int = Field(..., description="New characters sampled in all.")
    seconds: float
    characters_per_second: Optional[float]
    stopped: list[dict] = Field(
        ...,
        description='Per sample, why it ended: {"stop_reason": "length", "stop" or "lines", "stop_text": the stop '
        "text that ended it or null}.",
    )


class BeamAnswer(BaseModel):
    """What ``/v1/beam`` answers: the most likely continuations, best first, as ``shakegen generate --beam``."""

    texts: list[str] = Field(..., description="Each beam's text: the seed (as the model sees it) and the new text.")
    beams: list[dict] = Field(
        ...,
        description='Per beam: {"text", "log_prob" (nats, every character generated, a stop text included), '
        '"log_prob_per_character", "characters", "stop_reason", "stop_text"}.',
    )
    engine: Literal["numpy"]
    seconds: float


class SuggestAnswer(BaseModel):
    """What ``/v1/suggest`` answers: the model's proposals for a text, as ``shakegen write`` shows them."""

    characters: list[dict] = Field(..., description='The likeliest next characters: [{"text", "probability"}].')
    words: list[dict] = Field(
        ...,
        description='The likeliest next words (beam search; leading spaces and punctuation included): [{"text", '
        '"probability"}], the probability that of the word followed by a space or punctuation.',
    )
    continuation: str = Field(..., description="A sampled continuation to the end of its line (random_seed).")
    random_seed: int


class EvaluateAnswer(BaseModel):
    """The figures of ``/v1/evaluate`` (as ``shakegen eval --text --json``; further fields may follow)."""

    model_config = ConfigDict(extra="allow")
    run: str = Field(..., description="The run's folder name.")
    protocol: Literal["streaming", "windows"]
    window: Optional[int]
    characters: int = Field(..., description="Characters predicted (all the known ones but the first).")
    loss: float = Field(..., description="Cross-entropy in nats per character.")
    perplexity: float
    bits_per_character: float
    left_out_characters: int = Field(..., description="Characters the model does not know, left out of the figure.")


class InspectAnswer(BaseModel):
    """What ``/v1/inspect`` answers: per character its record, as ``shakegen inspect --json`` prints them."""

    model_config = ConfigDict(extra="allow")
    run: str = Field(..., description="The run's folder name.")
    text: str = Field(..., description="The text as the model sees it (unknown characters left out).")
    characters_predicted: int
    bits_per_character: float
    total_log_prob: float = Field(..., description="Sum of the records' log_prob: the streaming cross-entropy's total.")
    left_out_characters: list[str]
    records: list[dict] = Field(
        ...,
        description="Per character: position, char, log_prob (nats) and bits (null for the first character, which "
        "nothing predicts), rank (1: the model's top guess), top ([{char, probability}], most likely first) and "
        'units ({"L:N": value after reading the character}).',
    )
    summary: dict = Field(..., description="Mean bits per character, most surprising spans, most confidently wrong.")


SSE_EVENT = {
    "type": "object",
    "description": 'With "stream": true: server-sent events, as sampled. `start` (data: random_seed, num_samples, '
    'length), then `text` (data: {"sample": i, "text": "..."}: the seed first, then one block of new text per sample '
    "at a time; joined per sample they equal the plain answer's texts), then `done` (data: the plain answer's "
    'summary fields) or, if sampling failed after the answer started, `error` (data: {"detail": "..."}).',
    "properties": {
        "event": {"type": "string", "enum": ["start", "text", "done", "error"]},
        "data": {"type": "string", "description": "A JSON object, as described above."},
    },
    "required": ["event", "data"],
}


def error_responses(*statuses: int) -> dict:
    """FastAPI ``responses`` documenting ``statuses`` with the error model and what each means."""
    meanings = {
        400: "The body is not JSON (empty, malformed, NaN, nested too deep, or holding lone surrogates).",
        401: "No valid token: send 'Authorization: Bearer TOKEN'.",
        403: "The request comes from a web page of another site (its Origin is not allowed: --cors-origin).",
        413: "The body is over --max-request-bytes, or the text over --max-evaluate-characters.",
        415: "The body is not sent as Content-Type: application/json (UTF-8).",
        421: "The Host header names a host this server does not answer to (--allow-host).",
        422: "A field is unknown, of the wrong type, or out of range; or the seed or text cannot be used.",
    }
    return {status: {"model": ErrorAnswer, "description": meanings[status]} for status in statuses}
