"""Request bodies of the HTTP API, and the one-line errors a bad one gets.

A body is parsed here rather than by FastAPI: any content type is read as JSON, NaN and
Infinity are refused, unknown fields are refused (a request cannot name a file or a
checkpoint), and every error names the field and the range it allows. The pydantic models
are built per server, so the ranges in the OpenAPI schema are the server's own limits.
"""

import json
from dataclasses import dataclass
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shakegen.serve.limits import MAX_RANDOM_SEED, MAX_TEMPERATURE, Limits


class ApiError(Exception):
    """An error answered as ``{"detail": ..., "field": ..., "allowed": ...}`` with ``status``."""

    def __init__(self, status: int, detail: str, field: Optional[str] = None, allowed: Optional[str] = None):
        super().__init__(detail)
        self.status, self.detail, self.field, self.allowed = status, detail, field, allowed

    def to_json(self) -> dict:
        body = {"detail": self.detail}
        if self.field is not None:
            body["field"] = self.field
        if self.allowed is not None:
            body["allowed"] = self.allowed
        return body


@dataclass(frozen=True)
class RequestModels:
    generate: type
    evaluate: type
    allowed: dict  # field name -> what it accepts, in words


def request_models(limits: Limits, vocab_size: int) -> RequestModels:
    """The request models for a server with these ``limits`` serving a ``vocab_size`` model."""
    default_length = min(500, limits.max_length)
    strict = ConfigDict(extra="forbid", strict=True)

    class GenerateRequest(BaseModel):
        """Sample text: the seed followed by ``length`` new characters, as ``shakegen generate``."""

        model_config = ConfigDict(
            **strict,
            json_schema_extra={"examples": [{"seed": "ROMEO:", "length": 200, "temperature": 0.8, "random_seed": 7}]},
        )
        seed: Optional[str] = Field(
            None,
            max_length=limits.max_seed_characters,
            description="Text to start from; null starts after a newline and returns only the new text.",
        )
        length: int = Field(default_length, ge=1, le=limits.max_length, description="New characters per sample.")
        temperature: float = Field(
            0.8, ge=0, le=MAX_TEMPERATURE, allow_inf_nan=False, description="0 is greedy; higher is wilder."
        )
        top_k: Optional[int] = Field(None, ge=1, le=vocab_size, description="Sample among the k likeliest only.")
        top_p: Optional[float] = Field(
            None, gt=0, le=1, allow_inf_nan=False, description="Sample in the nucleus reaching p only."
        )
        random_seed: Optional[int] = Field(
            None,
            ge=0,
            le=MAX_RANDOM_SEED,
            description="Same seed and options, same text (sample i uses random_seed + i); null draws one.",
        )
        num_samples: int = Field(1, ge=1, le=limits.max_samples, description="Independent samples.")
        skip_unknown: bool = Field(False, description="Drop seed characters the model does not know.")
        stream: bool = Field(False, description="Answer with server-sent events as the text is sampled.")

    class EvaluateRequest(BaseModel):
        """Score a text: cross-entropy, perplexity and bits per character, as ``shakegen eval --text``."""

        model_config = ConfigDict(
            **strict, json_schema_extra={"examples": [{"text": "First Citizen:\nBefore we proceed any further"}]}
        )
        text: str = Field(..., description="The text to score (characters the model does not know are left out).")
        protocol: Literal["streaming", "windows"] = Field(
            "streaming", description="streaming: state carried through; windows: each window from a zero state."
        )
        window: Optional[int] = Field(
            None, ge=1, le=limits.max_request_bytes, description="Characters per window (protocol windows; 256)."
        )

    allowed = {
        "seed": f"a string of at most {limits.max_seed_characters:,} characters, or null",
        "length": f"an integer from 1 to {limits.max_length:,}",
        "temperature": f"a number from 0 (greedy) to {MAX_TEMPERATURE:g}",
        "top_k": f"an integer from 1 to {vocab_size} (the vocabulary size), or null",
        "top_p": "a number in (0, 1], or null",
        "random_seed": f"an integer from 0 to {MAX_RANDOM_SEED}, or null",
        "num_samples": f"an integer from 1 to {limits.max_samples}",
        "skip_unknown": "true or false",
        "stream": "true or false",
        "text": f"a string (the whole request at most {limits.max_request_bytes:,} bytes)",
        "protocol": '"streaming" or "windows"',
        "window": f"an integer from 1 to {limits.max_request_bytes:,}, with protocol windows only",
    }
    return RequestModels(GenerateRequest, EvaluateRequest, allowed)


def request_body_schema(model: type) -> dict:
    """The OpenAPI ``requestBody`` of a route that parses ``model`` itself."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


def parse_body(raw: bytes, model: type, allowed: dict):
    """``raw`` as an instance of ``model``.

    Raises:
        ApiError: 400 for a body that is not JSON, 422 for one that is not an object of
            ``model``'s fields in their ranges (naming the first bad field).
    """

    def refuse_constant(name: str):
        raise ValueError(f"{name} is not a JSON number")

    try:
        data = json.loads(raw or b"{}", parse_constant=refuse_constant)
    except (ValueError, UnicodeDecodeError) as error:
        raise ApiError(
            400,
            f'The request body is not valid JSON ({error}); send an object such as {{"seed": "ROMEO:", "length": 200}}.',
        ) from None
    if not isinstance(data, dict):
        raise ApiError(422, f"The request body must be a JSON object, got a JSON {_json_type(data)}.")
    fields = list(model.model_fields)
    unknown = [key for key in data if key not in fields]
    if unknown:
        raise ApiError(
            422,
            f"Unknown field {unknown[0]!r}: a request cannot choose a file, a checkpoint or anything but "
            f"{', '.join(fields)}.",
            field=unknown[0],
            allowed=", ".join(fields),
        )
    try:
        return model.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else None
        if first["type"] == "missing":
            raise ApiError(422, f"{field} is required: {allowed[field]}.", field, allowed[field]) from None
        raise ApiError(
            422, f"{field} must be {allowed[field]}; got {_shown(data.get(field))}.", field, allowed[field]
        ) from None


def _json_type(value) -> str:
    names = {list: "array", str: "string", bool: "boolean", int: "number", float: "number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _shown(value) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else f"{_json_type(value)} {text[:37]}..."
