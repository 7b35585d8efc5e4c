"""Request bodies of the HTTP API, and the one-line errors a bad one gets.

A body is parsed here rather than by FastAPI (the ``Gate`` middleware has already checked
that it is ``application/json`` and within the size cap): an empty body, NaN and Infinity,
nesting too deep to parse and lone surrogates (text that is not Unicode) are refused as not
JSON, unknown fields are refused (a request cannot name a file or a checkpoint), an
integer-valued number such as 7.0 is an integer (as JSON Schema says), and every error
names the field and the range it allows. The pydantic models are built per server, so the
ranges in the OpenAPI schema are the server's own limits, and the schema documents every
answer the server gives: the error model of each status, and both content types of
``/v1/generate``.
"""

import functools
import json
from dataclasses import dataclass
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from typing_extensions import Annotated

from shakegen.serve.limits import MAX_RANDOM_SEED, MAX_TEMPERATURE, Limits

MAX_STOPS, MAX_STOP_CHARACTERS = 8, 64  # stop texts per request, characters per stop text
MAX_SUGGESTIONS = 10  # characters and words /v1/suggest proposes at most
# /v1/beam runs its whole search in one turn of the model's thread: bounded so one request cannot hold it long.
MAX_BEAMS, MAX_BEAM_LENGTH = 16, 1000


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


@dataclass(frozen=True)
class RequestModels:
    generate: type
    evaluate: type
    allowed: dict  # field name -> what it accepts, in words
    max_evaluate_characters: int
    suggest: type | None = None
    beam: type | None = None
    beam_allowed: dict | None = None  # as allowed, with /v1/beam's own length range


def request_models(limits: Limits, vocab_size: int) -> RequestModels:
    """The request models for a server with these ``limits`` serving a ``vocab_size`` model."""
    default_length = min(500, limits.max_length)
    beam_length = min(MAX_BEAM_LENGTH, limits.max_length)
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
            description="Text to start from; null starts after a newline and returns only the new text. "
            "It must hold at least one character the model knows (GET /v1/model lists them), and with "
            "skip_unknown false only such characters.",
        )
        length: int = Field(default_length, ge=1, le=limits.max_length, description="New characters per sample.")
        temperature: float = Field(
            0.8, ge=0, le=MAX_TEMPERATURE, allow_inf_nan=False, description="0 is greedy; higher is wilder."
        )
        top_k: Optional[int] = Field(None, ge=1, le=vocab_size, description="Sample among the k likeliest only.")
        top_p: Optional[float] = Field(
            None, gt=0, le=1, allow_inf_nan=False, description="Sample in the nucleus reaching p only."
        )
        min_p: Optional[float] = Field(
            None,
            ge=0,
            le=1,
            allow_inf_nan=False,
            description="Sample only characters at least min_p times as likely as the likeliest.",
        )
        ban: Optional[str] = Field(
            None, max_length=vocab_size, description="Characters never emitted: characters the model knows, not all."
        )
        stop: Optional[list[Annotated[str, StringConstraints(min_length=1, max_length=MAX_STOP_CHARACTERS)]]] = Field(
            None, max_length=MAX_STOPS, description="Texts that end a sample where one first appears."
        )
        keep_stop: bool = Field(False, description="Keep the stop text at the end of the sample (dropped otherwise).")
        lines: Optional[int] = Field(
            None, ge=1, le=limits.max_length, description="End each sample once this many line ends are generated."
        )
        random_seed: Optional[int] = Field(
            None,
            ge=0,
            le=MAX_RANDOM_SEED,
            description="Same seed and options, same text (sample i uses random_seed + i, modulo 2**32); "
            "null draws one, reported in the answer.",
        )
        num_samples: int = Field(1, ge=1, le=limits.max_samples, description="Independent samples.")
        skip_unknown: bool = Field(False, description="Drop seed characters the model does not know.")
        stream: bool = Field(
            False, description="Answer with server-sent events (text/event-stream) as the text is sampled."
        )

    class SuggestRequest(BaseModel):
        """The model's proposals for a text, as ``shakegen write`` shows them: the next characters and
        words with their probabilities, and a sampled continuation to the end of the line."""

        model_config = ConfigDict(**strict, json_schema_extra={"examples": [{"text": "ROMEO:\nBut soft, what"}]})
        text: str = Field(
            ..., max_length=limits.max_seed_characters, description="The text so far (unknown characters skipped)."
        )
        count: int = Field(5, ge=1, le=MAX_SUGGESTIONS, description="Characters and words to propose.")
        temperature: float = Field(
            0.8, ge=0, le=MAX_TEMPERATURE, allow_inf_nan=False, description="Of the continuation; 0 is greedy."
        )
        random_seed: int = Field(0, ge=0, le=MAX_RANDOM_SEED, description="Of the continuation.")
        ban: Optional[str] = Field(None, max_length=vocab_size, description="Characters never proposed.")

    class BeamRequest(BaseModel):
        """The most likely continuations of the seed by beam search, as ``shakegen generate --beam``: ranked by
        total log-probability at the fixed length, per character when stop texts end beams early."""

        model_config = ConfigDict(**strict, json_schema_extra={"examples": [{"seed": "ROMEO:", "length": 60}]})
        seed: Optional[str] = GenerateRequest.model_fields["seed"]
        length: int = Field(
            min(100, beam_length), ge=1, le=beam_length, description="New characters per beam (at most)."
        )
        beams: int = Field(5, ge=1, le=MAX_BEAMS, description="How many continuations.")
        stop: Optional[list[Annotated[str, StringConstraints(min_length=1, max_length=MAX_STOP_CHARACTERS)]]] = Field(
            None, max_length=MAX_STOPS, description="Texts that end a beam where one first appears."
        )
        keep_stop: bool = Field(False, description="Keep the stop text at the end of the beam's text.")
        lines: Optional[int] = Field(None, ge=1, le=beam_length, description="End a beam after this many line ends.")
        ban: Optional[str] = Field(None, max_length=vocab_size, description="Characters never chosen.")
        skip_unknown: bool = Field(False, description="Drop seed characters the model does not know.")

    class EvaluateRequest(BaseModel):
        """Score a text: cross-entropy, perplexity and bits per character, as ``shakegen eval --text``.

        ``window`` is for protocol ``windows`` only: with it, ``protocol`` must be ``"windows"``."""

        model_config = ConfigDict(
            **strict,
            json_schema_extra={
                "examples": [{"text": "First Citizen:\nBefore we proceed any further"}],
                # The cross-field rule, in the schema: a window (not null) needs protocol "windows".
                "if": {"properties": {"window": {"type": "integer"}}, "required": ["window"]},
                "then": {"properties": {"protocol": {"const": "windows"}}, "required": ["protocol"]},
            },
        )
        text: str = Field(
            ...,
            max_length=limits.max_evaluate_characters,
            description="The text to score; characters the model does not know are left out, and at least 2 it "
            f"knows are needed. At most {limits.max_evaluate_characters:,} characters (413 beyond).",
        )
        protocol: Literal["streaming", "windows"] = Field(
            "streaming", description="streaming: state carried through; windows: each window from a zero state."
        )
        window: Optional[int] = Field(
            None,
            ge=1,
            le=limits.max_evaluate_characters,
            description='Characters per window, with protocol "windows" only (null: 256).',
        )

    allowed = {
        "seed": f"a string of at most {limits.max_seed_characters:,} characters, or null",
        "length": f"an integer from 1 to {limits.max_length:,}",
        "temperature": f"a number from 0 (greedy) to {MAX_TEMPERATURE:g}",
        "top_k": f"an integer from 1 to {vocab_size} (the vocabulary size), or null",
        "top_p": "a number in (0, 1], or null",
        "min_p": "a number in [0, 1], or null",
        "ban": f"a string of at most {vocab_size} characters the model knows (GET /v1/model), not all of them, or null",
        "stop": f"a list of at most {MAX_STOPS} texts of 1 to {MAX_STOP_CHARACTERS} characters, or null",
        "keep_stop": "true or false",
        "lines": f"an integer from 1 to {limits.max_length:,}, or null",
        "count": f"an integer from 1 to {MAX_SUGGESTIONS}",
        "random_seed": f"an integer from 0 to {MAX_RANDOM_SEED}, or null",
        "num_samples": f"an integer from 1 to {limits.max_samples}",
        "skip_unknown": "true or false",
        "stream": "true or false",
        "text": f"a string of at most {limits.max_evaluate_characters:,} characters "
        f"(and the whole request at most {limits.max_request_bytes:,} bytes)",
        "protocol": '"streaming" or "windows"',
        "window": f'an integer from 1 to {limits.max_evaluate_characters:,}, with protocol "windows" only, or null',
    }
    beam_allowed = {**allowed, "length": f"an integer from 1 to {beam_length:,}"}
    beam_allowed.update(
        lines=f"an integer from 1 to {beam_length:,}, or null", beams=f"an integer from 1 to {MAX_BEAMS}"
    )
    return RequestModels(
        GenerateRequest,
        EvaluateRequest,
        allowed,
        limits.max_evaluate_characters,
        SuggestRequest,
        BeamRequest,
        beam_allowed,
    )


def request_body_schema(model: type) -> dict:
    """The OpenAPI ``requestBody`` of a route that parses ``model`` itself: required, JSON only."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


@functools.lru_cache(maxsize=None)
def _integer_fields(model: type) -> frozenset[str]:
    """The fields whose schema type is integer (or integer or null)."""
    names = set()
    for name, schema in model.model_json_schema()["properties"].items():
        types = [schema.get("type")] + [option.get("type") for option in schema.get("anyOf", [])]
        if "integer" in types:
            names.add(name)
    return frozenset(names)


EXAMPLE = '{"seed": "ROMEO:", "length": 200}'
TOO_DEEP = f"The request body is nested too deeply to be read; send an object such as {EXAMPLE}."


def parse_body(raw: bytes, model: type, allowed: dict, max_text_characters: int | None = None):
    """``raw`` as an instance of ``model``.

    Raises:
        ApiError: 400 for a body that is not JSON, 413 for a ``text`` longer than
            ``max_text_characters``, 422 for one that is not an object of ``model``'s fields
            in their ranges (naming the first bad field).
    """

    def refuse_constant(name: str):
        raise ValueError(f"{name} is not a JSON number")

    if not raw.strip():
        raise ApiError(400, f"The request body is empty; send a JSON object such as {EXAMPLE}.")
    try:
        data = json.loads(raw, parse_constant=refuse_constant)
    except RecursionError:
        raise ApiError(400, TOO_DEEP) from None
    except (ValueError, UnicodeDecodeError) as error:
        raise ApiError(
            400, f"The request body is not valid JSON ({error}); send an object such as {EXAMPLE}."
        ) from None
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(
            400,
            "The request body is not valid JSON text: it holds a lone surrogate escape (such as \\ud800), which "
            "is no Unicode character; send text as UTF-8, or escape characters beyond U+FFFF as a surrogate pair.",
        ) from None
    except RecursionError:
        raise ApiError(400, TOO_DEEP) from None
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
    for name in _integer_fields(model):  # JSON Schema's integer: 7.0 is one
        value = data.get(name)
        if isinstance(value, float) and value.is_integer():
            data[name] = int(value)
    text = data.get("text")
    if max_text_characters is not None and isinstance(text, str) and len(text) > max_text_characters:
        raise ApiError(
            413,
            f"The text has {len(text):,} characters, more than this server's limit of {max_text_characters:,} for "
            "/v1/evaluate (shakegen serve --max-evaluate-characters); send a shorter text, or score it in parts.",
            "text",
            allowed["text"],
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
    names = {
        dict: "object",
        list: "array",
        str: "string",
        bool: "boolean",
        int: "number",
        float: "number",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)


def _shown(value) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except RecursionError:
        return f"a deeply nested {_json_type(value)}"
    return text if len(text) <= 40 else f"{_json_type(value)} {text[:37]}..."


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


@dataclass(frozen=True)
class InspectModels:
    request: type
    allowed: dict
    max_characters: int


def inspect_request_model(limits: Limits, vocab_size: int) -> InspectModels:
    """The /v1/inspect request model for a server with these ``limits`` serving a ``vocab_size`` model."""
    strict = ConfigDict(extra="forbid", strict=True)

    class InspectRequest(BaseModel):
        """Inspect a text: per character its probability, its rank and the model's top guesses, as
        ``shakegen inspect --json``."""

        model_config = ConfigDict(
            **strict, json_schema_extra={"examples": [{"text": "ROMEO:\nBut soft, what light", "top_k": 5}]}
        )
        text: str = Field(
            ...,
            description="The text to inspect; characters the model does not know are left out, and at least 2 it "
            f"knows are needed. At most {limits.max_inspect_characters:,} characters (413 beyond).",
        )
        top_k: int = Field(5, ge=1, le=vocab_size, description="Guesses per character.")
        units: list[str] = Field(
            [], max_length=64, description='Hidden units whose values to return, as "LAYER:INDEX" (both from 0).'
        )

    allowed = {
        "text": f"a string of at most {limits.max_inspect_characters:,} characters "
        f"(and the whole request at most {limits.max_request_bytes:,} bytes)",
        "top_k": f"an integer from 1 to {vocab_size} (the vocabulary size)",
        "units": 'a list of at most 64 units as "LAYER:INDEX" strings, such as ["2:17"]',
    }
    return InspectModels(InspectRequest, allowed, limits.max_inspect_characters)
