"""shakegen serve's OpenAPI schema says what the server does: property-based fuzzing with schemathesis.

Requests generated from /openapi.json (valid ones, and ones the schema forbids) go to a real
server process on 127.0.0.1 and every answer is checked against the schema: never a 5xx,
every status and content type documented, every body of the documented shape, every
request the schema forbids refused. Bounded (a few dozen examples per route and mode, a
fixed derandomized seed, no example database), so it takes seconds and gives the same
requests on every run.
"""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve]'")
schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed: pip install -e '.[test]'")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.test_serve import Server, tiny_run  # noqa: E402, F401

EXAMPLES = 40  # per route and mode
OPERATIONS = [("/v1/generate", "POST"), ("/v1/evaluate", "POST"), ("/v1/model", "GET"), ("/healthz", "GET")]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def refused(ctx, response, case):
    """schemathesis's negative_data_rejection, with 413 a refusal too: a text over maxLength gets 413, as documented."""
    if response.status_code == 413:
        return None
    return negative_data_rejection(ctx, response, case)


@pytest.fixture(scope="module")
def server(tiny_run):  # noqa: F811
    # Small limits: generated requests stay quick on any machine.
    running = Server(tiny_run, tiny_run.parent, "--max-length", "200", "--max-samples", "2")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def schema(server):
    return schemathesis.openapi.from_url(server.url + "/openapi.json")


def fuzz(schema, server, path: str, method: str, mode: GenerationMode, checks: list) -> None:
    strategy = schema[path][method].as_strategy(generation_mode=mode)

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case):
        case.call_and_validate(base_url=server.url, checks=checks, timeout=120)

    run()


@pytest.mark.parametrize("path, method", OPERATIONS, ids=[f"{method} {path}" for path, method in OPERATIONS])
def test_schema_valid_requests_get_documented_answers(schema, server, path, method):
    fuzz(schema, server, path, method, GenerationMode.POSITIVE, CHECKS)


@pytest.mark.parametrize("path", ["/v1/generate", "/v1/evaluate"])
def test_requests_the_schema_forbids_are_refused_as_documented(schema, server, path):
    fuzz(schema, server, path, "POST", GenerationMode.NEGATIVE, [*CHECKS, refused])


def test_the_schema_documents_errors_both_content_types_and_the_cross_field_rule(server):
    document = server.get("/openapi.json").json()
    generate = document["paths"]["/v1/generate"]["post"]
    evaluate = document["paths"]["/v1/evaluate"]["post"]
    for operation in (generate, evaluate):
        assert {"200", "400", "413", "415", "422"} <= set(operation["responses"])
        error = operation["responses"]["422"]["content"]["application/json"]["schema"]
        assert error == {"$ref": "#/components/schemas/ErrorAnswer"}
        assert operation["requestBody"]["required"] is True
        assert list(operation["requestBody"]["content"]) == ["application/json"]
    assert set(generate["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}
    body = evaluate["requestBody"]["content"]["application/json"]["schema"]
    assert body["if"]["required"] == ["window"] and body["then"]["properties"]["protocol"] == {"const": "windows"}
    assert document["components"]["schemas"]["ErrorAnswer"]["required"] == ["detail"]
