"""The request bodies each route accepts, built per server, and what each field accepts in words.

The pydantic models are built for one server, so the ranges in the OpenAPI schema are that
server's own limits (``Limits``) and its model's vocabulary size. ``allowed`` says in words
what each field accepts: every refusal quotes it (see ``parsing.parse_body``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from typing_extensions import Annotated

from shakegen.serve.limits import MAX_RANDOM_SEED, MAX_TEMPERATURE, Limits
from shakegen.serve.parsing import TextLimit

MAX_STOPS, MAX_STOP_CHARACTERS = 8, 64  # stop texts per request, characters per stop text
MAX_SUGGESTIONS = 10  # characters and words /v1/suggest proposes at most
# /v1/beam runs its whole search in one turn of the model's thread: bounded so one request cannot hold it long.
MAX_BEAMS, MAX_BEAM_LENGTH = 16, 1000
STRICT = ConfigDict(extra="forbid", strict=True)
StopText = Annotated[str, StringConstraints(min_length=1, max_length=MAX_STOP_CHARACTERS)]


@dataclass(frozen=True)
class RequestModels:
    generate: type
    evaluate: type
    allowed: dict  # field name -> what it accepts, in words
    evaluate_limit: TextLimit
    suggest: type | None = None
    beam: type | None = None
    beam_allowed: dict | None = None  # as allowed, with /v1/beam's own length range


@dataclass(frozen=True)
class InspectModels:
    request: type
    allowed: dict
    limit: TextLimit


def request_models(limits: Limits, vocab_size: int) -> RequestModels:
    """The request models for a server with these ``limits`` serving a ``vocab_size`` model."""
    generate = _generate_request(limits, vocab_size)
    allowed = allowed_values(limits, vocab_size)
    beam_length = min(MAX_BEAM_LENGTH, limits.max_length)
    beam_allowed = {**allowed, "length": f"an integer from 1 to {beam_length:,}"}
    beam_allowed.update(
        lines=f"an integer from 1 to {beam_length:,}, or null", beams=f"an integer from 1 to {MAX_BEAMS}"
    )
    return RequestModels(
        generate,
        _evaluate_request(limits),
        allowed,
        TextLimit(limits.max_evaluate_characters, "/v1/evaluate (shakegen serve --max-evaluate-characters)", "score"),
        _suggest_request(limits, vocab_size),
        _beam_request(limits, vocab_size, generate),
        beam_allowed,
    )


def allowed_values(limits: Limits, vocab_size: int) -> dict:
    """What each field of /v1/generate, /v1/suggest and /v1/evaluate accepts, in words."""
    return {
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


def _generate_request(limits: Limits, vocab_size: int) -> type:
    class GenerateRequest(BaseModel):
        """Sample text: the seed followed by ``length`` new characters, as ``shakegen generate``."""

        model_config = ConfigDict(
            **STRICT,
            json_schema_extra={"examples": [{"seed": "ROMEO:", "length": 200, "temperature": 0.8, "random_seed": 7}]},
        )
        seed: Optional[str] = Field(
            None,
            max_length=limits.max_seed_characters,
            description="Text to start from; null starts after a newline and returns only the new text. "
            "It must hold at least one character the model knows (GET /v1/model lists them), and with "
            "skip_unknown false only such characters.",
        )
        length: int = Field(
            min(500, limits.max_length), ge=1, le=limits.max_length, description="New characters per sample."
        )
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
        stop: Optional[list[StopText]] = Field(
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

    return GenerateRequest


def _suggest_request(limits: Limits, vocab_size: int) -> type:
    class SuggestRequest(BaseModel):
        """The model's proposals for a text, as ``shakegen write`` shows them: the next characters and
        words with their probabilities, and a sampled continuation to the end of the line."""

        model_config = ConfigDict(**STRICT, json_schema_extra={"examples": [{"text": "ROMEO:\nBut soft, what"}]})
        text: str = Field(
            ..., max_length=limits.max_seed_characters, description="The text so far (unknown characters skipped)."
        )
        count: int = Field(5, ge=1, le=MAX_SUGGESTIONS, description="Characters and words to propose.")
        temperature: float = Field(
            0.8, ge=0, le=MAX_TEMPERATURE, allow_inf_nan=False, description="Of the continuation; 0 is greedy."
        )
        random_seed: int = Field(0, ge=0, le=MAX_RANDOM_SEED, description="Of the continuation.")
        ban: Optional[str] = Field(None, max_length=vocab_size, description="Characters never proposed.")

    return SuggestRequest


def _beam_request(limits: Limits, vocab_size: int, generate: type) -> type:
    beam_length = min(MAX_BEAM_LENGTH, limits.max_length)

    class BeamRequest(BaseModel):
        """The most likely continuations of the seed by beam search, as ``shakegen generate --beam``: ranked by
        total log-probability at the fixed length, per character when stop texts end beams early."""

        model_config = ConfigDict(**STRICT, json_schema_extra={"examples": [{"seed": "ROMEO:", "length": 60}]})
        seed: Optional[str] = generate.model_fields["seed"]
        length: int = Field(
            min(100, beam_length), ge=1, le=beam_length, description="New characters per beam (at most)."
        )
        beams: int = Field(5, ge=1, le=MAX_BEAMS, description="How many continuations.")
        stop: Optional[list[StopText]] = Field(
            None, max_length=MAX_STOPS, description="Texts that end a beam where one first appears."
        )
        keep_stop: bool = Field(False, description="Keep the stop text at the end of the beam's text.")
        lines: Optional[int] = Field(None, ge=1, le=beam_length, description="End a beam after this many line ends.")
        ban: Optional[str] = Field(None, max_length=vocab_size, description="Characters never chosen.")
        skip_unknown: bool = Field(False, description="Drop seed characters the model does not know.")

    return BeamRequest


def _evaluate_request(limits: Limits) -> type:
    class EvaluateRequest(BaseModel):
        """Score a text: cross-entropy, perplexity and bits per character, as ``shakegen eval --text``.

        ``window`` is for protocol ``windows`` only: with it, ``protocol`` must be ``"windows"``."""

        model_config = ConfigDict(
            **STRICT,
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

    return EvaluateRequest


def inspect_request_model(limits: Limits, vocab_size: int) -> InspectModels:
    """The /v1/inspect request model for a server with these ``limits`` serving a ``vocab_size`` model."""

    class InspectRequest(BaseModel):
        """Inspect a text: per character its probability, its rank and the model's top guesses, as
        ``shakegen inspect --json``."""

        model_config = ConfigDict(
            **STRICT, json_schema_extra={"examples": [{"text": "ROMEO:\nBut soft, what light", "top_k": 5}]}
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
    return InspectModels(InspectRequest, allowed, TextLimit(limits.max_inspect_characters, "/v1/inspect", "inspect"))
