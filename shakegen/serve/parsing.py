"""Reading a request body into its request model, with one-line errors naming the field and its range.

A body is parsed here rather than by FastAPI (the ``Gate`` middleware has already checked
that it is ``application/json`` and within the size cap): an empty body, NaN and Infinity,
nesting too deep to parse and lone surrogates (text that is not Unicode) are refused as not
JSON, unknown fields are refused (a request cannot name a file or a checkpoint), an
integer-valued number such as 7.0 is an integer (as JSON Schema says), a text over its
route's cap is a 413 (``check_text_length``, the one check), and every error names the field
and the range it allows.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

from pydantic import ValidationError

from shakegen.serve.answers import ApiError

EXAMPLE = '{"seed": "ROMEO:", "length": 200}'
TOO_DEEP = f"The request body is nested too deeply to be read; send an object such as {EXAMPLE}."


@dataclass(frozen=True)
class TextLimit:
    """A route's cap on the characters of its ``text``, and how its 413 names the route and the way out."""

    max_characters: int
    route: str  # as the refusal names it, with the flag that sets the cap where there is one
    verb: str  # what to do with the text in parts: "score", "inspect"


def check_text_length(text, limit: TextLimit, allowed: str) -> None:
    """Raise ApiError 413 when ``text`` is a string longer than ``limit`` allows."""
    if isinstance(text, str) and len(text) > limit.max_characters:
        raise ApiError(
            413,
            f"The text has {len(text):,} characters, more than this server's limit of {limit.max_characters:,} for "
            f"{limit.route}; send a shorter text, or {limit.verb} it in parts.",
            "text",
            allowed,
        )


def request_body_schema(model: type) -> dict:
    """The OpenAPI ``requestBody`` of a route that parses ``model`` itself: required, JSON only."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


def parse_body(raw: bytes, model: type, allowed: dict, text_limit: TextLimit | None = None):
    """``raw`` as an instance of ``model``.

    Raises:
        ApiError: 400 for a body that is not JSON, 413 for a ``text`` longer than
            ``text_limit`` allows, 422 for one that is not an object of ``model``'s fields
            in their ranges (naming the first bad field).
    """
    data = _json_object(raw)
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
    if text_limit is not None:
        check_text_length(data.get("text"), text_limit, allowed["text"])
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


def _json_object(raw: bytes) -> dict:
    """``raw`` parsed as a JSON object of Unicode text; ApiError 400 (not JSON) or 422 (not an object)."""

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
    return data


@functools.lru_cache(maxsize=None)
def _integer_fields(model: type) -> frozenset[str]:
    """The fields whose schema type is integer (or integer or null)."""
    names = set()
    for name, schema in model.model_json_schema()["properties"].items():
        types = [schema.get("type")] + [option.get("type") for option in schema.get("anyOf", [])]
        if "integer" in types:
            names.add(name)
    return frozenset(names)


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
